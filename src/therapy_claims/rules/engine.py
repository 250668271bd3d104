"""The rule engine: the night the rules read and fix, the registry of rules, and the helpers
rule modules build on.

A rule is a function of the ``Night`` registered with ``@rule(code, ...)``; it returns findings
built with ``findings.make`` (empty when nothing fires). A rule that fixes something (units,
modifiers) changes ``night.lines`` through ``Night.update`` and records the change with
``Night.record_change``, and declares the columns it changes (``changes=``); a rule that reads
a column some fixer changes declares it (``reads=``), so the package's explicit order can be
checked to put fixers first.

A line is *reported* (it goes on the claim unless its claim is held) when it has units and no
rule left it off the claim: ``Night.reported``. A rule leaves a line off with
``Night.exclude`` (the column ``excluded``, declared ``changes=("excluded",)``); the line keeps
its units and is ``not_billed``. Edits that only concern what is reported (NCCI, MUE, CMT
region, daily caps) select ``Night.reported`` lines and declare ``reads=("units", "excluded")``.

The helpers work on whole columns, never row by row: select lines (``select``, ``take``),
check a column or the modifiers per distinct value (``isin``, ``has_modifier``, ``spread``,
``joined``, ``explode_list``), sort (``sort_order``), build list columns (``list_column``) and
the texts of findings (``message``, with ``code_on_date`` and ``iso_date`` for the usual parts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from therapy_claims import findings, timing
from therapy_claims.reference import Reference

# the columns of a line that every finding carries
FINDING_KEYS = ("line_id", "encounter_id", "source_file", "source_row")

# --------------------------------------------------------------------------- code sets

# therapy plan-of-care modifier per discipline
THERAPY_MODIFIER = {"PT": "GP", "OT": "GO", "SLP": "GN"}
# distinct-procedural-service modifiers (a ``has_modifier`` pattern)
DISTINCT = "59|XE|XS|XP|XU"
# chiropractic manipulative treatment, spinal
CMT_CODES = ("98940", "98941", "98942")
MANUAL_THERAPY = "97140"
# the line column ``Night.exclude`` sets: the line is left off the claim (``not_billed``)
EXCLUDED = "excluded"

# --------------------------------------------------------------------------- the night


@dataclass
class Night:
    """One night's enriched lines (with a unique, increasing index: the pipeline's RangeIndex),
    the reference data and the run date. Rules read the few columns they need; a ``;``-list or
    code column is factorised once (``distinct``) so checks run per distinct value."""

    lines: pd.DataFrame
    ref: Reference
    run_date: date
    kx_history: pd.DataFrame | None = None  # patient_id, year, bucket, charges (earlier nights)
    changes: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _distinct: dict[str, tuple[np.ndarray, pd.Series]] = field(
        default_factory=dict, init=False, repr=False
    )

    def record_change(self, mask: np.ndarray | pd.Series, text: pd.Series | str) -> None:
        """Record a change on the selected lines; ``text`` holds one string per selected line
        (in line order) or one for all. Lines whose text is missing record nothing."""
        pos = np.flatnonzero(np.asarray(mask, dtype=bool))
        if isinstance(text, str):
            values = np.full(len(pos), text, dtype=object)
        else:
            known = text.notna().to_numpy()
            pos, values = pos[known], text.to_numpy(dtype=object)[known]
        self.changes.append((pos, values))

    def exclude(self, mask: np.ndarray) -> None:
        """Leave the selected lines off the claim: they are ``not_billed`` whatever their units
        (which stay as computed), and the rest of their claim goes out. Lines excluded before
        stay excluded. The rule that decides it calls this on every night, with no line
        selected too, so the ``excluded`` column exists for the rules that read it."""
        mask = np.asarray(mask, dtype=bool)
        if EXCLUDED in self.lines.columns:
            mask = mask | self.lines[EXCLUDED].to_numpy(dtype=bool)
        self.lines[EXCLUDED] = mask

    def reported(self) -> np.ndarray:
        """Per line: it goes on its claim unless the claim is held, i.e. it has units > 0
        after the units rule and no rule excluded it (``exclude``). NCCI, MUE and CMT-region
        edits are about reported codes only: a 0-unit or excluded line cannot put its partner
        on hold. A rule calling this declares ``reads=("units", "excluded")``."""
        units = self.lines["units"].to_numpy(dtype="float64", na_value=0)
        return (units > 0) & ~self.lines[EXCLUDED].to_numpy(dtype=bool)

    def change_lists(self) -> pd.Series:
        """One list of change strings per line, in the order the rules made them."""
        n = len(self.lines)
        if not self.changes:
            return list_column(np.zeros(n, dtype=np.int64), [], self.lines.index)
        pos = np.concatenate([p for p, _ in self.changes])
        text = np.concatenate([t for _, t in self.changes])
        order = np.argsort(pos, kind="stable")  # keeps rule order within a line
        return list_column(np.bincount(pos, minlength=n), text[order], self.lines.index)

    def distinct(self, column: str) -> tuple[np.ndarray, pd.Series]:
        """``column`` factorised (cached; ``update`` keeps it current): per line the position of
        its value among the distinct values (-1 when missing), and those distinct values (after
        an ``update``, possibly also values that no line holds any more)."""
        if column not in self._distinct:
            codes, uniques = pd.factorize(self.lines[column])
            self._distinct[column] = (codes, pd.Series(uniques, dtype=self.lines[column].dtype))
        return self._distinct[column]

    def sort_codes(self, column: str) -> np.ndarray:
        """Per line: its value's rank in ``sort_values`` order (missing values last)."""
        codes, uniques = self.distinct(column)
        rank = np.empty(len(uniques) + 1, dtype="int64")
        rank[uniques.argsort(kind="stable").to_numpy()] = np.arange(len(uniques))
        rank[-1] = len(uniques)  # code -1: missing
        return rank[codes]

    def update(self, column: str, mask: np.ndarray, values: pd.Series) -> None:
        """Overwrite ``column`` on the selected lines (``values`` indexed like those lines).
        A cached factorisation gets codes for the new values (values not seen before are
        appended to the distinct values) rather than the whole column factorised again."""
        self.lines.loc[mask, column] = values
        if column not in self._distinct:
            return
        codes, uniques = self._distinct[column]
        new_codes, new_uniques = pd.factorize(values)
        at = pd.Index(uniques).get_indexer(new_uniques)
        unseen = at < 0
        at[unseen] = len(uniques) + np.arange(unseen.sum())
        uniques = pd.concat(
            [uniques, pd.Series(new_uniques[unseen], dtype=uniques.dtype)], ignore_index=True
        )
        codes = codes.copy()
        codes[np.asarray(mask, dtype=bool)] = np.append(at, -1)[new_codes]  # -1: missing
        self._distinct[column] = (codes, uniques)


# --------------------------------------------------------------------------- the registry

RuleFn = Callable[[Night], pd.DataFrame]


@dataclass(frozen=True, eq=False)
class Rule:
    """A registered rule: its function and the finding codes it can emit. ``changes`` names the
    line columns it fixes; ``reads`` the columns it reads that a fixer changes; ``timing`` the
    label its run time is recorded under."""

    fn: RuleFn
    codes: tuple[str, ...]
    changes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    timing: str = "rules"

    @property
    def name(self) -> str:
        return f"{self.fn.__module__.rsplit('.', 1)[-1]}.{self.fn.__name__}"

    def __call__(self, night: Night) -> pd.DataFrame:
        return self.fn(night)


# every rule, in the order its module registered it (not the order rules run in)
REGISTRY: list[Rule] = []


def rule(
    *codes: str,
    changes: Iterable[str] = (),
    reads: Iterable[str] = (),
    timing: str = "rules",
) -> Callable[[RuleFn], Rule]:
    """Register a rule emitting ``codes``; see ``Rule`` for the keywords."""

    def register(fn: RuleFn) -> Rule:
        r = Rule(fn, tuple(codes), tuple(changes), tuple(reads), timing)
        REGISTRY.append(r)
        return r

    return register


def run_all(night: Night, order: Iterable[Rule]) -> pd.DataFrame:
    """Run ``order``'s rules on the night, one after the other; their findings concatenated in
    that order (the order findings reach the outputs)."""
    out = []
    for r in order:
        with timing.record(r.timing):
            out.append(r(night))
    return findings.concat(out)


# --------------------------------------------------------------------------- helpers


def list_column(lengths: np.ndarray, values, index: pd.Index) -> pd.Series:
    """A list-of-text column (Arrow ``list<string>``): row i holds the next ``lengths[i]`` of
    ``values``. Built without a Python list per row."""
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.string()))
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index)


def as_mask(s: pd.Series) -> np.ndarray:
    """A (nullable) boolean column as a numpy mask, missing as False."""
    return s.to_numpy(dtype=bool, na_value=False)


def select(lines: pd.DataFrame, mask: np.ndarray | pd.Series, *columns: str) -> pd.DataFrame:
    """The selected lines with only the finding keys and ``columns`` (never the whole frame)."""
    if isinstance(mask, pd.Series):
        mask = as_mask(mask)
    return take(lines, np.flatnonzero(mask), *columns)


def take(lines: pd.DataFrame, positions: np.ndarray, *columns: str) -> pd.DataFrame:
    """Lines by position (repeats allowed), with only the finding keys and ``columns``: the
    frame ``iloc`` gives, built column by column (``iloc`` takes Arrow text with a take that
    allows missing positions, several times slower)."""
    positions = np.asarray(positions, dtype="int64")
    names = dict.fromkeys([*FINDING_KEYS, *columns])
    return pd.DataFrame(
        {c: lines[c].array.take(positions) for c in names}, index=lines.index[positions]
    )


def spread(codes: np.ndarray, per_value: np.ndarray | pd.Series, missing: object) -> np.ndarray:
    """Results computed per distinct value, spread back onto the lines by their codes; lines
    with a missing value (code -1, i.e. the appended last slot) get ``missing``."""
    values = np.asarray(per_value)
    return np.append(values, np.array([missing], dtype=values.dtype))[codes]


def _has_mod(mods: pd.Series, pattern: str) -> pd.Series:
    return mods.fillna("").str.contains(rf"(?:^|;)(?:{pattern})(?:;|$)", regex=True)


def has_modifier(night: Night, pattern: str) -> np.ndarray:
    """Per line: the modifiers hold one of ``pattern``'s codes (``"GP|GO"``; checked per
    distinct list)."""
    codes, uniques = night.distinct("modifiers")
    return spread(codes, _has_mod(uniques, pattern).to_numpy(dtype=bool), False)


def modifier_counts(night: Night) -> np.ndarray:
    """Per line: how many modifiers it carries (0 when none; an 837 line takes at most 4)."""
    codes, uniques = night.distinct("modifiers")
    count = np.where(uniques == "", 0, uniques.str.count(";") + 1)
    return spread(codes, count.astype("int64"), 0)


def isin(night: Night, column: str, values) -> np.ndarray:
    """Per line: ``column`` is one of ``values`` (missing: False), checked per distinct value
    (a factorised column is checked many times by the rules, the column itself once)."""
    codes, uniques = night.distinct(column)
    return spread(codes, uniques.isin(values).to_numpy(dtype=bool), False)


def sort_order(lines: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> np.ndarray:
    """The order of the lines at ``positions`` sorted by ``columns`` (ascending, missing values
    last, ties kept in order: a stable ``sort_values``), sorted by Arrow: pandas' multi-key
    sort of text factorises every key column first."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.Table.from_pandas(
        lines.iloc[positions, lines.columns.get_indexer(columns)], preserve_index=False
    )
    keys = [(c, "ascending", "at_end") for c in columns]
    return pc.sort_indices(table, sort_keys=keys).to_numpy()


def explode_list(
    night: Night, column: str, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``;``-joined list column of the selected lines as its items, in line then list order
    (each distinct list is split once): per item the line's position and the item's code, and
    the distinct items (``items[code]``). Codes, not texts: joins on them are cheaper."""
    codes, uniques = night.distinct(column)
    tokens = uniques.str.split(";").explode()
    token_codes, items = pd.factorize(tokens.to_numpy(dtype=object))
    counts = np.bincount(tokens.index.to_numpy(dtype="int64"), minlength=len(uniques))
    starts = np.cumsum(counts) - counts
    pos = np.flatnonzero(mask & (codes >= 0))
    n = counts[codes[pos]]
    first = np.cumsum(n) - n  # where each line's tokens start in the output
    at = np.repeat(starts[codes[pos]] - first, n) + np.arange(n.sum())
    return np.repeat(pos, n), token_codes[at], np.asarray(items, dtype=object)


def joined(
    night: Night, column: str, keep: Callable[[pd.Series], pd.Series]
) -> tuple[np.ndarray, np.ndarray]:
    """The values of each distinct ``;``-list of ``column`` that ``keep`` selects, joined with
    ', ' (None where none): the column's codes per line and those texts per distinct list, to
    be spread (``spread``) onto the lines, the texts only onto the few lines reported."""
    codes, uniques = night.distinct(column)
    tokens = uniques.str.split(";").explode()
    kept = tokens[keep(tokens)].groupby(level=0).agg(lambda v: ", ".join(v))
    return codes, kept.reindex(uniques.index).to_numpy(dtype=object)


# --------------------------------------------------------------------------- texts of findings


def iso_date(s: pd.Series) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` text, ``?`` where missing."""
    return s.dt.strftime("%Y-%m-%d").astype("string").fillna("?")


def code_on_date(rows: pd.DataFrame) -> pd.Series:
    """``<cpt_code> on <date_of_service>``, the line a message is about (``?`` for a missing
    code; the rows must carry both columns)."""
    return message(
        rows,
        rows["cpt_code"].fillna("?"),
        " on ",
        rows["date_of_service"].dt.strftime("%Y-%m-%d"),
    )


def message(rows: pd.DataFrame | pd.Index, *parts: object) -> pd.Series:
    """One text per row of ``rows`` (a finding's message, evidence or fix): ``parts`` joined
    left to right. A part is a text, the same for every row, or one value per row: a Series
    (matched by position, whatever its index) or an array; values that are not text become
    text with ``astype("string")`` (round numbers before). A missing part leaves the row's
    text missing."""
    index = rows if isinstance(rows, pd.Index) else rows.index
    if len(index) == 0:  # most rules select no lines on most nights
        return pd.Series(pd.array([], dtype="string"), index=index)
    out: object = None
    for part in parts:
        if not isinstance(part, str):
            if not (isinstance(part, pd.Series) and part.index.equals(index)):
                values = part.array if isinstance(part, pd.Series) else np.asarray(part)
                part = pd.Series(values, index=index)
            if not isinstance(part.dtype, pd.StringDtype):
                part = part.astype("string")
        out = part if out is None else out + part
    if not isinstance(out, pd.Series):  # no per-row part
        return pd.Series("" if out is None else out, index=index, dtype="string")
    return out
