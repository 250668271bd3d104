"""Billing rules, vectorised over the night's lines.

Each rule is a function registered with ``@rule(code, ...)``: it receives the ``Night`` (the
enriched line frame, the reference data and the run date) and returns findings built with
``findings.make``. Rules that fix something automatically (units, therapy modifiers) change
``night.lines`` and record the change as before -> after, on the finding and in the line's
``changes``; nothing changes silently. Rules run in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from therapy_claims import findings, npi, storage, timing, units
from therapy_claims.reference import Reference

THERAPY_MODIFIER = {"PT": "GP", "OT": "GO", "SLP": "GN"}
ICD10_SHAPE = r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"


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


def list_column(lengths: np.ndarray, values, index: pd.Index) -> pd.Series:
    """A list-of-text column (Arrow ``list<string>``): row i holds the next ``lengths[i]`` of
    ``values``. Built without a Python list per row."""
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.string()))
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index)


RuleFn = Callable[[Night], pd.DataFrame]
REGISTRY: list[tuple[tuple[str, ...], RuleFn]] = []


def rule(*codes: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        REGISTRY.append((codes, fn))
        return fn

    return register


def run_all(night: Night) -> pd.DataFrame:
    out = []
    for _, fn in REGISTRY:
        with timing.record("units" if fn is compute_units else "rules"):
            out.append(fn(night))
    return findings.concat(out)


FINDING_KEYS = ("line_id", "encounter_id", "source_file", "source_row")


def _rows(lines: pd.DataFrame, mask: np.ndarray | pd.Series, *columns: str) -> pd.DataFrame:
    """The selected lines with only the finding keys and ``columns`` (never the whole frame)."""
    if isinstance(mask, pd.Series):
        mask = _mask(mask)
    return _take(lines, np.flatnonzero(mask), *columns)


def _take(lines: pd.DataFrame, positions: np.ndarray, *columns: str) -> pd.DataFrame:
    """Lines by position (repeats allowed), with only the finding keys and ``columns``: the
    frame ``iloc`` gives, built column by column (``iloc`` takes Arrow text with a take that
    allows missing positions, several times slower)."""
    positions = np.asarray(positions, dtype="int64")
    names = dict.fromkeys([*FINDING_KEYS, *columns])
    return pd.DataFrame(
        {c: lines[c].array.take(positions) for c in names}, index=lines.index[positions]
    )


def _spread(codes: np.ndarray, per_value: np.ndarray | pd.Series, missing: object) -> np.ndarray:
    """Results computed per distinct value, spread back onto the lines by their codes; lines
    with a missing value (code -1, i.e. the appended last slot) get ``missing``."""
    values = np.asarray(per_value)
    return np.append(values, np.array([missing], dtype=values.dtype))[codes]


def _has_mod(mods: pd.Series, pattern: str) -> pd.Series:
    return mods.fillna("").str.contains(rf"(?:^|;)(?:{pattern})(?:;|$)", regex=True)


def _has(night: Night, pattern: str) -> np.ndarray:
    """Per line: the modifiers hold one of ``pattern``'s codes (checked per distinct list)."""
    codes, uniques = night.distinct("modifiers")
    return _spread(codes, _has_mod(uniques, pattern).to_numpy(dtype=bool), False)


def _isin(night: Night, column: str, values) -> np.ndarray:
    """Per line: ``column`` is one of ``values`` (missing: False), checked per distinct value
    (a factorised column is checked many times by the rules, the column itself once)."""
    codes, uniques = night.distinct(column)
    return _spread(codes, uniques.isin(values).to_numpy(dtype=bool), False)


def _sort_order(lines: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> np.ndarray:
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


def _mask(s: pd.Series) -> np.ndarray:
    """A (nullable) boolean column as a numpy mask, missing as False."""
    return s.to_numpy(dtype=bool, na_value=False)


def _where(lines: pd.DataFrame) -> pd.Series:
    return lines["cpt_code"].fillna("?") + " on " + lines["date_of_service"].dt.strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- reference lookups


@rule("UNKNOWN_PAYER")
def unknown_payer(night: Night) -> pd.DataFrame:
    lines = night.lines
    rows = _rows(lines, lines["payer_name"].isna(), "payer_id", "cpt_code", "date_of_service")
    return findings.make(
        "UNKNOWN_PAYER",
        rows,
        "payer_id '" + rows["payer_id"] + "' is not in payers.csv (" + _where(rows) + ")",
        evidence=night.ref.version("payers.csv"),
    )


@rule("UNKNOWN_CLINIC")
def unknown_clinic(night: Night) -> pd.DataFrame:
    lines = night.lines
    rows = _rows(lines, lines["billing_npi"].isna(), "clinic_id")
    return findings.make(
        "UNKNOWN_CLINIC",
        rows,
        "clinic_id '" + rows["clinic_id"] + "' is not in clinics.csv",
        evidence=night.ref.version("clinics.csv"),
    )


@rule("NPI_INVALID")
def npi_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    # checked once per distinct NPI: a night has few clinicians and clinics
    codes, uniques = night.distinct("rendering_npi")
    bad_r = ~_spread(codes, npi.valid_mask(uniques).to_numpy(dtype=bool), False)
    codes, uniques = night.distinct("billing_npi")
    bad_b = (codes >= 0) & ~_spread(codes, npi.valid_mask(uniques).to_numpy(dtype=bool), False)
    r = _rows(lines, bad_r, "rendering_npi", "rendering_last_name")
    b = _rows(lines, bad_b, "billing_npi", "clinic_id")
    return findings.concat(
        [
            findings.make(
                "NPI_INVALID",
                r,
                "rendering NPI "
                + r["rendering_npi"]
                + " of "
                + r["rendering_last_name"].fillna("")
                + " fails the NPI check digit (Luhn with prefix 80840)",
                evidence="CMS NPI check-digit algorithm",
            ),
            findings.make(
                "NPI_INVALID",
                b,
                "billing NPI "
                + b["billing_npi"]
                + " of clinic "
                + b["clinic_id"]
                + " fails the NPI check digit (Luhn with prefix 80840)",
                evidence=night.ref.version("clinics.csv"),
            ),
        ]
    )


@rule("DIAGNOSIS_INVALID")
def diagnosis_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    # checked once per distinct (codes, pointers) pair: a night repeats the same few lists
    dx_pos, dx_uniq = pd.factorize(lines["diagnosis_codes"].fillna(""))
    pt_pos, pt_uniq = pd.factorize(lines["diagnosis_pointers"].fillna("1"))
    pos, uniq = pd.factorize(dx_pos * len(pt_uniq) + pt_pos)
    u_dx = pd.Series(np.asarray(dx_uniq, dtype=object)[uniq // len(pt_uniq)], dtype="string")
    u_pt = pd.Series(np.asarray(pt_uniq, dtype=object)[uniq % len(pt_uniq)], dtype="string")
    codes = u_dx.str.split(";")
    u_n = codes.str.len()
    exploded = codes.explode()
    bad_code = ~exploded.str.fullmatch(ICD10_SHAPE).fillna(False).astype(bool)
    u_first_bad = exploded[bad_code].groupby(level=0).first().reindex(u_dx.index)
    ptrs = u_pt.str.split(";").explode()
    ptr_num = pd.to_numeric(ptrs, errors="coerce")
    u_ptr_bad = (
        (ptr_num.isna() | (ptr_num < 1) | (ptr_num > u_n.reindex(ptr_num.index)))
        .groupby(level=0)
        .any()
        .reindex(u_dx.index)
        .fillna(False)
        .astype(bool)
    ) | (u_pt.str.count(";") + 1 > 4)
    n = u_n.to_numpy()[pos]
    u_first_bad = u_first_bad.to_numpy(dtype=object)
    shape_bad = pd.notna(u_first_bad)[pos]
    too_many = n > 12
    ptr_bad = u_ptr_bad.to_numpy()[pos]
    only_many = too_many & ~shape_bad
    only_ptr = ptr_bad & ~shape_bad & ~too_many
    a = _rows(lines, shape_bad, "cpt_code", "date_of_service")
    b = _rows(lines, only_many)
    c = _rows(lines, only_ptr, "diagnosis_pointers")
    return findings.concat(
        [
            findings.make(
                "DIAGNOSIS_INVALID",
                a,
                "diagnosis code '"
                + pd.Series(u_first_bad[pos[shape_bad]], index=a.index, dtype="string")
                + "' is not an ICD-10-CM code ("
                + _where(a)
                + ")",
                evidence="ICD-10-CM code shape",
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                b,
                pd.Series(n[only_many], index=b.index).astype("string")
                + " diagnosis codes; a claim holds at most 12",
                evidence="X12 837 HI segment: 12 codes",
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                c,
                "diagnosis pointers '"
                + c["diagnosis_pointers"].fillna("1")
                + "' point outside the "
                + pd.Series(n[only_ptr], index=c.index).astype("string")
                + " diagnosis code(s) or are more than 4",
                evidence="X12 837 SV107: 1-4 pointers into HI",
            ),
        ]
    )


# --------------------------------------------------------------------------- time and units


@rule("TIME_MISSING")
def time_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["timed"] & lines["minutes"].isna()
    rows = _rows(lines, bad, "cpt_code", "date_of_service")
    return findings.make(
        "TIME_MISSING",
        rows,
        rows["cpt_code"]
        + " is a timed 15-minute code but no minutes were charted ("
        + _where(rows)
        + ")",
        evidence=night.ref.version("cpt_codes.csv") + ": timed=true",
    )


UNIT_COLUMNS = ["line_id", "cpt_code", "minutes", "timed", "unit_method"]


@rule("UNITS_ZERO", "UNITS_CORRECTED")
def compute_units(night: Night) -> pd.DataFrame:
    lines = night.lines
    known = lines["unit_method"].notna().to_numpy()
    # the pool keys only group lines: their codes (cached on the night) group them alike
    keys = {k: night.distinct(k)[0] for k in units.POOL_KEYS}
    inputs = lines[UNIT_COLUMNS].assign(**keys)
    computed = units.compute(inputs.assign(unit_method=inputs["unit_method"].fillna("cms")))
    lines["units"] = computed
    timed = lines["timed"].to_numpy()
    has_min = lines["minutes"].notna().to_numpy()
    timed_min = timed & has_min & known
    charted = lines["units_charted"]
    zero = timed_min & (computed.to_numpy() == 0)
    diff = known & _mask(charted.notna() & (charted != computed)) & ~(timed & ~has_min)
    # the wording (pooled minutes, payer, method) only for the lines reported
    report = zero | diff
    sub = _rows(
        lines,
        report,
        "cpt_code",
        "date_of_service",
        "minutes",
        "unit_method",
        "discipline",
        "payer_id",
        "units_charted",
    )
    # the pooled minutes of the reported lines' pools: only their patients' lines are pooled
    patient = keys["patient_id"] + 1  # 0: missing
    reported = np.zeros(len(night.distinct("patient_id")[1]) + 1, dtype=bool)
    reported[patient[report]] = True
    pool = np.flatnonzero((timed_min | report) & reported[patient])
    pool_ids = units.group_ids([keys[k][pool] for k in units.POOL_KEYS])
    pool_min = np.bincount(
        pool_ids,
        weights=lines["minutes"].iloc[pool].fillna(0).to_numpy(dtype="int64") * timed_min[pool],
    ).astype("int64")[pool_ids]
    in_sub = report[pool]
    pool_min = pd.Series(pool_min[in_sub], index=sub.index)
    method_txt = np.where(
        sub["unit_method"] == "cms", "CMS 8-minute rule, pooled", "AMA per-code rule"
    )
    basis = (
        sub["minutes"].astype("string")
        + " min; "
        + method_txt
        + np.where(
            sub["unit_method"] == "cms",
            " timed minutes for "
            + sub["discipline"].fillna("")
            + " that day = "
            + pool_min.astype("Int64").astype("string"),
            "",
        )
    )
    evidence = (
        "payers.csv "
        + sub["payer_id"]
        + " unit_method="
        + sub["unit_method"].fillna("")
        + " ("
        + night.ref.version("payers.csv")
        + ")"
    )
    sub_computed = computed[report]
    sub_zero, sub_diff = zero[report], diff[report]
    z = sub[sub_zero]
    out = [
        findings.make(
            "UNITS_ZERO",
            z,
            z["cpt_code"] + " gets 0 units: " + basis[sub_zero] + " (" + _where(z) + ")",
            evidence=evidence[sub_zero],
        )
    ]
    d = sub[sub_diff]
    before = d["units_charted"].astype("string")
    after = sub_computed[sub_diff].astype("string")
    out.append(
        findings.make(
            "UNITS_CORRECTED",
            d,
            d["cpt_code"]
            + ": charted "
            + before
            + " unit(s), computed "
            + after
            + " from "
            + basis[sub_diff]
            + " ("
            + _where(d)
            + ")",
            evidence=evidence[sub_diff],
            before=before,
            after=after,
        )
    )
    night.record_change(diff, "units " + before + "->" + after)
    return findings.concat(out)


# --------------------------------------------------------------------------- modifiers


def _modifier_counts(night: Night) -> np.ndarray:
    """Per line: how many modifiers it carries (0 when none)."""
    codes, uniques = night.distinct("modifiers")
    count = np.where(uniques == "", 0, uniques.str.count(";") + 1)
    return _spread(codes, count.astype("int64"), 0)


@rule("THERAPY_MODIFIER_ADDED")
def therapy_modifier_added(night: Night) -> pd.DataFrame:
    lines = night.lines
    codes, uniques = night.distinct("discipline")
    has_wanted = _spread(codes, uniques.map(THERAPY_MODIFIER).notna().to_numpy(), False)
    # 837I: every 042x/043x/044x line needs its GP/GO/GN whatever the payer
    institutional = _mask(lines["claim_type"] == "institutional")
    need = (
        (_mask(lines["requires_therapy_modifiers"]) | institutional)
        & lines["always_therapy"].to_numpy()
        & has_wanted
        & ~_has(night, "GP|GO|GN")
    )
    count = _modifier_counts(night)
    room = need & (count < 4)
    r = _rows(
        lines,
        room,
        "cpt_code",
        "date_of_service",
        "discipline",
        "clinic_id",
        "payer_id",
        "modifiers",
    )
    wanted = r["discipline"].map(THERAPY_MODIFIER)
    mods = r["modifiers"].fillna("")
    after = pd.Series(
        np.where(mods == "", wanted, mods + ";" + wanted), index=r.index, dtype="string"
    )
    out = findings.make(
        "THERAPY_MODIFIER_ADDED",
        r,
        r["cpt_code"]
        + " had no therapy modifier; added "
        + wanted
        + " from discipline "
        + r["discipline"]
        + " ("
        + _where(r)
        + ")",
        evidence=pd.Series(
            np.where(
                institutional[room],
                "837I: revenue codes 042x/043x/044x need GP/GO/GN (clinic " + r["clinic_id"] + ")",
                "payers.csv "
                + r["payer_id"]
                + " requires_therapy_modifiers=true ("
                + night.ref.version("payers.csv")
                + ")",
            ),
            index=r.index,
        ),
        before=mods.replace("", "(none)"),
        after=after,
    )
    night.record_change(room, "modifiers +" + wanted.astype("string"))
    night.update("modifiers", room, after)
    f = _rows(lines, need & ~room, "cpt_code", "discipline", "modifiers")
    out2 = findings.make(
        "MODIFIER_INVALID",
        f,
        f["cpt_code"]
        + " needs therapy modifier "
        + f["discipline"].map(THERAPY_MODIFIER)
        + " but already carries 4 modifiers ("
        + f["modifiers"]
        + ")",
        evidence="X12 837 SV101: at most 4 modifiers",
    )
    return findings.concat([out, out2])


# --------------------------------------------------------------------------- shared helpers

DISTINCT = "59|XE|XS|XP|XU"
CMT_CODES = ("98940", "98941", "98942")
MANUAL_THERAPY = "97140"


def _first_per_claim(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (the lowest line_id): for visit-level findings."""
    if rows.empty:
        return rows
    return rows.sort_values("line_id", kind="mergesort").drop_duplicates("claim_id", keep="first")


def _explode_list(
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


def _joined(
    night: Night, column: str, keep: Callable[[pd.Series], pd.Series]
) -> tuple[np.ndarray, np.ndarray]:
    """The values of each distinct ``;``-list of ``column`` that ``keep`` selects, joined with
    ', ' (None where none): the column's codes per line and those texts per distinct list, to
    be spread (``_spread``) onto the lines, the texts only onto the few lines reported."""
    codes, uniques = night.distinct(column)
    tokens = uniques.str.split(";").explode()
    kept = tokens[keep(tokens)].groupby(level=0).agg(lambda v: ", ".join(v))
    return codes, kept.reindex(uniques.index).to_numpy(dtype=object)


def _d(s: pd.Series) -> pd.Series:
    return s.dt.strftime("%Y-%m-%d").astype("string").fillna("?")


# --------------------------------------------------------------------------- identity and dates


@rule("DATE_INVALID")
def date_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    dos = lines["date_of_service"]
    run = pd.Timestamp(night.run_date)
    future = (dos > run).to_numpy()
    before_birth = (dos < lines["patient_dob"]).to_numpy()
    too_old = (dos < run - pd.Timedelta(days=365)).to_numpy()
    out = []
    for mask, text in (
        (future, lambda _: " is after the run date " + night.run_date.isoformat()),
        (
            before_birth & ~future,
            lambda rows: " is before the patient's date of birth " + _d(rows["patient_dob"]),
        ),
        (
            too_old & ~future & ~before_birth,
            lambda _: " is more than 365 days before the run date (timely filing limit)",
        ),
    ):
        rows = _rows(lines, mask, "date_of_service", "patient_dob")
        msg = "date of service " + _d(rows["date_of_service"]) + text(rows)
        out.append(
            findings.make(
                "DATE_INVALID", rows, msg, evidence="timely filing: 365 days (42 CFR 424.44)"
            )
        )
    return findings.concat(out)


# --------------------------------------------------------------------------- time


@rule("NOT_ONE_ON_ONE")
def not_one_on_one(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["one_on_one"] & (lines["group_size"].fillna(1) > 1)
    r = _rows(lines, bad, "cpt_code", "group_size", "date_of_service")
    return findings.make(
        "NOT_ONE_ON_ONE",
        r,
        r["cpt_code"]
        + " is a one-on-one timed code but group_size is "
        + r["group_size"].astype("string")
        + " ("
        + _where(r)
        + "); group treatment is 97150",
        evidence=night.ref.version("cpt_codes.csv") + ": one_on_one=true",
    )


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Run ids (0, 1, ...) of consecutive equal key tuples in sorted arrays."""
    change = np.zeros(len(keys[0]), dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.cumsum(change) - 1


def _running_max(values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """The running maximum of int ``values`` restarting with each run (``runs``: ascending run
    ids, as ``_runs`` gives): each run is lifted above all earlier ones so that one
    ``maximum.accumulate`` over the whole array never carries a maximum into the next run."""
    if len(values) == 0:
        return values
    low = int(values.min())
    lift = int(values.max()) - low + 1
    if lift * (int(runs[-1]) + 1) >= 2**62:  # too wide to lift: per run with pandas
        return pd.Series(values).groupby(runs).cummax().to_numpy()
    lifted = (values - low) + runs * lift
    return np.maximum.accumulate(lifted) - runs * lift + low


@rule("PROVIDER_OVERLAP")
def provider_overlap(night: Night) -> pd.DataFrame:
    """One clinician's one-on-one intervals for different patients overlapping on a date.

    Each patient's intervals are first merged into blocks (touching intervals do not overlap);
    blocks are then swept in start order per clinician and date: a block starting before the
    latest end seen so far overlaps that earlier block, which is another patient's."""
    lines = night.lines
    sel = (
        lines["one_on_one"].to_numpy()
        & lines["start_minute"].notna().to_numpy()
        & lines["end_minute"].notna().to_numpy()
        & _mask(lines["end_minute"] > lines["start_minute"])
    )
    if not sel.any():
        return findings.empty()
    pos = np.flatnonzero(sel)
    clin = night.sort_codes("rendering_npi")[pos]
    day = night.sort_codes("date_of_service")[pos]
    pat = night.sort_codes("patient_id")[pos]
    start = lines["start_minute"].iloc[pos].to_numpy(dtype="int64")
    end = lines["end_minute"].iloc[pos].to_numpy(dtype="int64")
    # a missing key leaves a line out of the groupings (groupby drops missing keys)
    missing = {k: night.distinct(k)[0][pos] < 0 for k in ("rendering_npi", "date_of_service")}
    no_clin_day = missing["rendering_npi"] | missing["date_of_service"]
    no_key = no_clin_day | (night.distinct("patient_id")[0][pos] < 0)
    order = units.lexsort((end, start, pat, day, clin))  # stable: the mergesort of these keys
    pos, clin, day, pat, start, end, no_clin_day, no_key = (
        a[order] for a in (pos, clin, day, pat, start, end, no_clin_day, no_key)
    )

    # blocks: a patient's intervals merged while each starts before the latest end so far
    patient_run = _runs(clin, day, pat)
    latest = _running_max(end, patient_run)
    first_of_run = np.r_[True, patient_run[1:] != patient_run[:-1]]
    new_block = first_of_run | no_key | (start >= np.r_[0, latest[:-1]])
    block = np.cumsum(new_block)  # 1, 2, ...
    heads = np.flatnonzero(new_block)
    b_clin, b_day, b_start = clin[heads], day[heads], np.minimum.reduceat(start, heads)
    b_end = np.maximum.reduceat(end, heads)
    b_label = np.arange(1, len(heads) + 1)
    b_swept = ~no_clin_day[heads]

    # sweep the blocks per clinician and date in (start, end) order
    border = units.lexsort((b_end, b_start, b_day, b_clin))
    s_clin, s_day, s_start, s_end = b_clin[border], b_day[border], b_start[border], b_end[border]
    s_label = b_label[border]
    ckey = _runs(s_clin, s_day)
    run_max = _running_max(s_end, ckey)
    # the block holding the running maximum: the last one (of the run) whose end is that max;
    # a run's first block always is, so a running max of positions stays within the run
    holder = s_label[np.maximum.accumulate(np.where(s_end == run_max, np.arange(len(s_end)), 0))]
    # compared with the blocks before it in its run (the first of a run has none)
    later = np.r_[False, ckey[1:] == ckey[:-1]]
    prev_max, prev_holder = np.r_[0, run_max[:-1]], np.r_[0, holder[:-1]]
    hit = later & (s_start < prev_max) & b_swept[border]
    if not hit.any():
        return findings.empty()
    pairs = pd.DataFrame({"block": s_label[hit], "other": prev_holder[hit]})
    both = pd.concat(
        [pairs, pairs.rename(columns={"block": "other", "other": "block"})], ignore_index=True
    )
    o = both["other"].to_numpy() - 1  # block label -> block position
    both["o_head"], both["o_start"], both["o_end"] = pos[heads[o]], b_start[o], b_end[o]
    t2 = pd.DataFrame({"pos": pos, "block": block, "start": start, "end": end}).merge(
        both, on="block"
    )
    t2 = t2[(t2["start"] < t2["o_end"]) & (t2["o_start"] < t2["end"])]
    t2 = t2.drop_duplicates("pos")
    rows = _take(
        lines,
        t2["pos"].to_numpy(),
        "cpt_code",
        "start_time",
        "end_time",
        "patient_id",
        "rendering_npi",
        "date_of_service",
    )
    other_patient = lines["patient_id"].iloc[t2["o_head"].to_numpy()]

    def hhmm(m: pd.Series) -> pd.Series:
        m = m.astype("int64")
        return (
            (m // 60).astype("string").str.zfill(2) + ":" + (m % 60).astype("string").str.zfill(2)
        )

    msg = (
        rows["cpt_code"]
        + " "
        + rows["start_time"]
        + "-"
        + rows["end_time"]
        + " for patient "
        + rows["patient_id"]
        + " overlaps "
        + hhmm(t2["o_start"]).to_numpy()
        + "-"
        + hhmm(t2["o_end"]).to_numpy()
        + " for patient "
        + other_patient.astype("string").to_numpy()
        + ": clinician NPI "
        + rows["rendering_npi"]
        + " on "
        + _d(rows["date_of_service"])
    )
    return findings.make(
        "PROVIDER_OVERLAP", rows, msg, evidence="one-on-one time (MBPM ch. 15 220.3)"
    )


# --------------------------------------------------------------------------- modifiers after the fixes


@rule("ASSISTANT_MODIFIER_ADDED")
def assistant_modifier_added(night: Night) -> pd.DataFrame:
    lines = night.lines
    medicare = _isin(night, "payer_class", ["medicare", "medicare_advantage"])
    credential, discipline = lines["rendering_credential"], lines["discipline"]
    cq = _mask((credential == "PTA") & (discipline == "PT"))
    co = _mask((credential == "OTA") & (discipline == "OT"))
    need = medicare & lines["always_therapy"].to_numpy() & (cq | co) & ~_has(night, "CQ|CO")
    room = need & (_modifier_counts(night) < 4)
    r = _rows(
        lines,
        room,
        "cpt_code",
        "date_of_service",
        "rendering_credential",
        "payer_id",
        "payer_class",
        "modifiers",
    )
    want = pd.Series(np.where(co[room], "CO", "CQ"), index=r.index, dtype="string")
    mods = r["modifiers"].fillna("")
    after = pd.Series(np.where(mods == "", want, mods + ";" + want), index=r.index, dtype="string")
    out = findings.make(
        "ASSISTANT_MODIFIER_ADDED",
        r,
        r["cpt_code"]
        + " was furnished by a "
        + r["rendering_credential"]
        + "; added "
        + want
        + " ("
        + _where(r)
        + ")",
        evidence="payers.csv "
        + r["payer_id"]
        + " payer_class="
        + r["payer_class"]
        + "; CQ/CO required from 2020 (billing-rules.md 5.3)",
        before=mods.replace("", "(none)"),
        after=after,
    )
    night.record_change(room, "modifiers +" + want)
    night.update("modifiers", room, after)
    full = need & ~room
    f = _rows(lines, full, "cpt_code")
    return findings.concat(
        [
            out,
            findings.make(
                "MODIFIER_INVALID",
                f,
                f["cpt_code"]
                + " needs assistant modifier "
                + pd.Series(np.where(co[full], "CO", "CQ"), index=f.index, dtype="string")
                + " but already carries 4 modifiers",
                evidence="X12 837 SV101: at most 4 modifiers",
            ),
        ]
    )


@rule("MODIFIER_INVALID")
def modifier_unknown(night: Night) -> pd.DataFrame:
    """Well-formed modifiers that are not in modifiers.csv, and AT off a CMT code (format and
    count are checked by the modifier_consistency GX suite)."""
    lines = night.lines
    known = night.ref.modifiers.index
    codes, unknown = _joined(
        night,
        "modifiers",
        lambda v: v.str.fullmatch(r"[A-Z0-9]{2}").fillna(False).astype(bool) & ~v.isin(known),
    )
    bad = _spread(codes, pd.notna(unknown), False)
    r = _rows(lines, bad, "cpt_code", "date_of_service")
    out = [
        findings.make(
            "MODIFIER_INVALID",
            r,
            r["cpt_code"]
            + ": modifier(s) "
            + pd.Series(_spread(codes[bad], unknown, None), index=r.index).astype("string")
            + " not in modifiers.csv ("
            + _where(r)
            + ")",
            evidence=night.ref.version("modifiers.csv"),
            suggested_fix="Correct the modifier; if it is valid for this payer, add it to modifiers.csv.",
        )
    ]
    has_at = _has(night, "AT")
    a = _rows(lines, has_at & ~_isin(night, "cpt_code", CMT_CODES), "cpt_code")
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            a,
            a["cpt_code"] + " carries AT, which is only for CMT 98940-98942",
            evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
        )
    )
    b = _rows(lines, has_at & _has(night, "GA|GX|GY|GZ"), "cpt_code", "modifiers")
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            b,
            b["cpt_code"] + ": AT cannot be combined with GA/GX/GY/GZ (" + b["modifiers"] + ")",
            evidence="billing-rules.md 5.5 (DOS >= 2015-11-01)",
        )
    )
    return findings.concat(out)


@rule("THERAPY_MODIFIER_MISMATCH")
def assistant_pairing(night: Night) -> pd.DataFrame:
    """CQ only with GP, CO only with GO (after automatic additions)."""
    lines = night.lines
    # only where the payer uses therapy modifiers (Medicare, MA, or payers.csv says so)
    uses = _mask(lines["requires_therapy_modifiers"]) | _isin(
        night, "payer_class", ["medicare", "medicare_advantage"]
    )
    bad = uses & (
        (_has(night, "CQ") & ~_has(night, "GP")) | (_has(night, "CO") & ~_has(night, "GO"))
    )
    r = _rows(lines, bad, "cpt_code", "modifiers", "date_of_service")
    return findings.make(
        "THERAPY_MODIFIER_MISMATCH",
        r,
        r["cpt_code"]
        + ": modifiers "
        + r["modifiers"].fillna("")
        + " pair an assistant modifier with the wrong "
        "plan (CQ goes with GP, CO with GO) (" + _where(r) + ")",
        evidence="billing-rules.md 5.3",
    )


# --------------------------------------------------------------------------- documentation


@rule("TECHNIQUE_MISSING", "TECHNIQUE_INVALID", "DOCUMENTATION_INCOMPLETE")
def manual_therapy_documentation(night: Night) -> pd.DataFrame:
    from therapy_claims.layout import MANUAL_TECHNIQUES

    lines = night.lines
    mt = _isin(night, "cpt_code", [MANUAL_THERAPY])
    missing = mt & lines["technique"].isna().to_numpy()
    codes, bad = _joined(night, "technique", lambda v: ~v.isin(MANUAL_TECHNIQUES))
    invalid = mt & _spread(codes, pd.notna(bad), False)
    no_goal = lines["goal_id"].isna().to_numpy()
    no_resp = lines["patient_response"].isna().to_numpy()
    doc = mt & (no_goal | no_resp)
    m = _rows(lines, missing, "cpt_code", "date_of_service")
    b = _rows(lines, invalid, "cpt_code", "date_of_service")
    d = _rows(lines, doc, "cpt_code", "date_of_service")
    what = pd.Series(
        np.where(
            no_goal[doc] & no_resp[doc],
            "goal_id and patient_response",
            np.where(no_goal[doc], "goal_id", "patient_response"),
        ),
        index=d.index,
    )
    return findings.concat(
        [
            findings.make(
                "TECHNIQUE_MISSING",
                m,
                "97140 without a documented manual technique (" + _where(m) + ")",
                evidence="Palmetto GBA Manual Therapy (billing-rules.md 8.2)",
            ),
            findings.make(
                "TECHNIQUE_INVALID",
                b,
                "97140 technique '"
                + pd.Series(_spread(codes[invalid], bad, None), index=b.index).astype("string")
                + "' is not manual therapy ("
                + _where(b)
                + "); manual techniques: "
                + ", ".join(MANUAL_TECHNIQUES),
                evidence="CPT 97140 descriptor (billing-rules.md 2.1, 8.2)",
            ),
            findings.make(
                "DOCUMENTATION_INCOMPLETE",
                d,
                "97140 without " + what.astype("string") + " (" + _where(d) + ")",
                evidence="MBPM ch. 15 220.3; billing-rules.md 8.2",
            ),
        ]
    )


# --------------------------------------------------------------------------- region and NCCI


@rule("CMT_SAME_REGION")
def cmt_same_region(night: Night) -> pd.DataFrame:
    lines = night.lines
    cpt = lines["cpt_code"]
    mt_pos, mt_item, items = _explode_list(
        night, "body_region", _isin(night, "cpt_code", [MANUAL_THERAPY])
    )
    cmt_pos, cmt_item, _ = _explode_list(night, "body_region", _isin(night, "cpt_code", CMT_CODES))
    if len(mt_pos) == 0 or len(cmt_pos) == 0:
        return findings.empty()
    # the same patient and date (missing values match each other, as in a merge) and region
    both = np.concatenate([mt_pos, cmt_pos])
    visit = units.group_ids([night.distinct(k)[0][both] for k in ("patient_id", "date_of_service")])
    key = visit * len(items) + np.concatenate([mt_item, cmt_item])
    hit = (
        pd.DataFrame({"key": key[: len(mt_pos)], "pos": mt_pos, "item": mt_item})
        .merge(pd.DataFrame({"key": key[len(mt_pos) :], "pos_cmt": cmt_pos}), on="key")
        .drop_duplicates("pos")
    )
    region = items[hit["item"].to_numpy()]
    r = _take(lines, hit["pos"].to_numpy(), "date_of_service")
    cmt_code = cpt.iloc[hit["pos_cmt"].to_numpy()]
    return findings.make(
        "CMT_SAME_REGION",
        r,
        "97140 on "
        + region
        + ", same region as "
        + cmt_code.astype("string").to_numpy()
        + " on "
        + region
        + ", "
        + _d(r["date_of_service"]),
        evidence="NCCI: manual therapy to a manipulated region is included in CMT (billing-rules.md 3.1)",
    )


@rule("NCCI_MODIFIER_MISSING", "NCCI_NOT_BYPASSABLE", "XS_SAME_REGION")
def ncci_pairs(night: Night) -> pd.DataFrame:
    """NCCI PTP pairs per patient, rendering provider and date of service; the PTP row must be
    in effect on the date (effective <= DOS, and DOS before the deletion date)."""
    lines, ncci = night.lines, night.ref.ncci
    if ncci.empty:
        return findings.empty()
    cand = np.flatnonzero(
        _isin(night, "cpt_code", list(set(ncci["column1"]) | set(ncci["column2"])))
    )
    keys = ["patient_id", "rendering_npi", "date_of_service"]
    visit = units.group_ids([night.distinct(k)[0][cand] for k in keys])
    cpt_codes, cpt_values = night.distinct("cpt_code")
    code = cpt_codes[cand]
    code_of = dict(zip(cpt_values, range(len(cpt_values)), strict=True))
    dos = lines["date_of_service"].to_numpy()[cand]
    found = []
    # a loop over the PTP table's rows whose two codes are billed tonight (a CMS file has
    # hundreds of thousands of rows), each joined vectorised over the night
    table = ncci[["column1", "column2", "effective_date", "deletion_date", "modifier_indicator"]]
    tonight = table["column1"].isin(list(code_of)) & table["column2"].isin(list(code_of))
    for k, (col1, col2, effective, deletion, indicator) in zip(
        np.flatnonzero(tonight), table[tonight].itertuples(index=False), strict=True
    ):
        if indicator == "9":
            continue
        active = dos >= pd.Timestamp(effective).to_datetime64()
        if not pd.isna(deletion):
            active &= dos < pd.Timestamp(deletion).to_datetime64()
        first = np.flatnonzero((code == code_of.get(col1, -2)) & active)
        second = np.flatnonzero(code == code_of.get(col2, -2))
        pair = pd.DataFrame({"visit": visit[first], "i1": first}).merge(
            pd.DataFrame({"visit": visit[second], "i2": second}), on="visit"
        )
        found.append(pair.assign(k=k)[pair["i1"] != pair["i2"]])
    if not found:
        return findings.empty()
    found_all = pd.concat(found, ignore_index=True)
    if found_all.empty:
        return findings.empty()
    # the order of a self-join of the night merged with the table: first line, second, PTP row
    i1, i2, k = (found_all[c].to_numpy() for c in ("i1", "i2", "k"))
    order = units.lexsort((k, i2, i1))
    pos_1, pos_2, k = cand[i1[order]], cand[i2[order]], k[order]
    distinct = _has(night, DISTINCT)
    zero = (ncci["modifier_indicator"] == "0").to_numpy()[k]
    one = ~zero
    miss = one & ~(distinct[pos_1] | distinct[pos_2])
    has_xs = _has(night, "XS")
    xs = np.flatnonzero(one & (has_xs[pos_1] | has_xs[pos_2]))
    xs_same = np.zeros(len(k), dtype=bool)
    shared = np.zeros(0, dtype=object)
    if len(xs):
        shared = _shared_regions(night, pos_1[xs], pos_2[xs])
        xs_same[xs[shared != ""]] = True
        shared = shared[shared != ""]
    # the wording only for the pairs reported: most pairs carry a distinct-service modifier
    report = np.flatnonzero(zero | miss | xs_same)
    pos_1, pos_2, k = pos_1[report], pos_2[report], k[report]
    zero, miss, xs_same = zero[report], miss[report], xs_same[report]

    def side(positions: np.ndarray, names: list[str]) -> pd.DataFrame:
        return lines.iloc[positions, lines.columns.get_indexer(names)].reset_index(drop=True)

    pairs = pd.concat(
        [
            side(pos_1, ["date_of_service"]),
            ncci.iloc[k].reset_index(drop=True),
            side(pos_2, ["distinct_modifier"]).add_suffix("_2"),
        ],
        axis=1,
    )
    version = night.ref.version("ncci_ptp.csv")
    evidence = (
        version
        + ": "
        + pairs["column1"]
        + "/"
        + pairs["column2"]
        + " modifier_indicator="
        + pairs["modifier_indicator"]
        + " effective "
        + pairs["effective_date"].astype("string")
        + " deletion "
        + pairs["deletion_date"].astype("string").fillna("none")
        + np.where(
            pairs.get("sample", pd.Series("", index=pairs.index)).astype("string") == "true",
            " (sample row)",
            "",
        )
    ).to_numpy()
    where = pairs["column2"] + " with " + pairs["column1"] + " on " + _d(pairs["date_of_service"])
    prefer_x = (pairs["distinct_modifier_2"] == "x").to_numpy()
    cmt_pair = pairs["column1"].isin(CMT_CODES).to_numpy()
    fix_mod = np.where(
        cmt_pair, np.where(prefer_x, "XS", "59"), np.where(prefer_x, "XU or XE", "59")
    )
    fix = (
        "If "
        + pairs["column2"]
        + " was distinct from "
        + pairs["column1"]
        + " (different region or time block, documented), append "
        + fix_mod
        + " to "
        + pairs["column2"]
        + "; otherwise remove "
        + pairs["column2"]
        + "."
    )
    out = [
        findings.make(
            "NCCI_NOT_BYPASSABLE",
            _take(lines, pos_2[zero]),
            (where + ": NCCI pair with modifier indicator 0; no modifier allows both").to_numpy()[
                zero
            ],
            evidence=evidence[zero],
        ),
        findings.make(
            "NCCI_MODIFIER_MISSING",
            _take(lines, pos_2[miss]),
            (where + ": NCCI pair (indicator 1) without 59/XE/XS/XP/XU on either line").to_numpy()[
                miss
            ],
            evidence=evidence[miss],
            suggested_fix=fix.to_numpy()[miss],
        ),
    ]
    q = pairs[xs_same]
    out.append(
        findings.make(
            "XS_SAME_REGION",
            _take(lines, pos_2[xs_same]),
            (
                q["column2"]
                + " and "
                + q["column1"]
                + " claim XS (separate structure) but both treat "
                + shared
                + " on "
                + _d(q["date_of_service"])
            ).to_numpy(),
            evidence=evidence[xs_same],
        )
    )
    return findings.concat(out)


def _shared_regions(night: Night, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair of lines: the body regions both treat, sorted and joined with ', ' ('' when
    none); worked out once per distinct pair of region lists."""
    codes, regions = night.distinct("body_region")
    sets = [set(v.split(";")) - {""} for v in regions] + [set()]  # [-1]: no regions
    width = len(regions) + 1
    pair_pos, pairs = pd.factorize((codes[first] + 1) * width + codes[second] + 1)
    shared = [
        ", ".join(sorted(sets[a] & sets[b]))
        for a, b in zip(pairs // width - 1, pairs % width - 1, strict=True)
    ]
    return np.asarray(shared, dtype=object)[pair_pos]


# --------------------------------------------------------------------------- limits


@rule("MUE_EXCEEDED")
def mue_exceeded(night: Night) -> pd.DataFrame:
    """MUE by the row in effect on the date of service: MAI 1 per line, MAI 2/3 summed over the
    patient's lines of the code on that date at the clinic."""
    lines, mue = night.lines, night.ref.mue
    billable = (lines["units"] > 0).to_numpy() & _isin(night, "cpt_code", mue["code"])
    if not billable.any():
        return findings.empty()
    left = lines.loc[
        billable, ["cpt_code", "date_of_service", "units", "patient_id", "clinic_id"]
    ].reset_index(names="idx")
    left = left.sort_values("date_of_service", kind="mergesort")
    right = mue.assign(effective=pd.to_datetime(mue["effective_date"])).sort_values("effective")
    left["date_of_service"] = left["date_of_service"].astype("datetime64[ns]")
    right["effective"] = right["effective"].astype("datetime64[ns]")
    left["cpt_code"] = left["cpt_code"].astype(object)
    right["code"] = right["code"].astype(object)
    m = pd.merge_asof(
        left,
        right,
        left_on="date_of_service",
        right_on="effective",
        left_by="cpt_code",
        right_by="code",
        direction="backward",
    ).dropna(subset=["mue_value"])
    if m.empty:
        return findings.empty()
    day_units = m.groupby(["patient_id", "date_of_service", "cpt_code", "clinic_id"])[
        "units"
    ].transform("sum")
    per_line = m["mai"] == "1"
    counted = np.where(per_line, m["units"], day_units)
    over = counted > m["mue_value"]
    m = m[over]
    counted = counted[over.to_numpy()]
    mai_text = np.where(
        m["mai"] == "1",
        "per line (MAI 1)",
        np.where(m["mai"] == "2", "per day, policy (MAI 2)", "per day, clinical (MAI 3)"),
    )
    rows = lines.loc[m["idx"].to_numpy(), list(FINDING_KEYS)]
    msg = (
        m["cpt_code"]
        + ": "
        + pd.Series(counted, index=m.index).astype("string")
        + " units "
        + mai_text
        + " exceed the MUE of "
        + m["mue_value"].astype(int).astype("string")
        + " on "
        + _d(m["date_of_service"])
    )
    evidence = (
        night.ref.version("mue.csv")
        + ": "
        + m["code"]
        + " mue_value="
        + m["mue_value"].astype(int).astype("string")
        + " mai="
        + m["mai"]
        + " effective "
        + m["effective_date"].astype("string")
        + np.where(
            m.get("sample", pd.Series("", index=m.index)).astype("string") == "true",
            " (sample row)",
            "",
        )
    )
    return findings.make("MUE_EXCEEDED", rows, msg.to_numpy(), evidence=evidence.to_numpy())


@rule("DAILY_UNIT_CAP_EXCEEDED")
def daily_unit_cap(night: Night) -> pd.DataFrame:
    lines = night.lines
    cap = lines["max_timed_units_per_day"]
    timed = lines["timed"] & (lines["units"] > 0) & cap.notna()
    if not timed.any():
        return findings.empty()
    # timed units per payer, patient, date and discipline: summed by dense group id
    pos = np.flatnonzero(timed.to_numpy())
    codes = [
        night.distinct(k)[0][pos]
        for k in ("payer_id", "patient_id", "date_of_service", "discipline")
    ]
    group = units.group_ids(codes)
    day_units = np.bincount(group, weights=lines["units"].to_numpy()[pos]).astype("int64")
    total = pd.Series(day_units[group])
    known = np.logical_and.reduce([c >= 0 for c in codes])
    if not known.all():  # a line with a missing key is in no group (groupby): no total
        total = total.where(known)
    over = (total > cap.iloc[pos].to_numpy(dtype="int64")).to_numpy()
    r = _take(
        lines, pos[over], "discipline", "date_of_service", "payer_id", "max_timed_units_per_day"
    )
    total = pd.Series(total.to_numpy()[over], index=r.index)
    return findings.make(
        "DAILY_UNIT_CAP_EXCEEDED",
        r,
        total.astype("string")
        + " timed units for "
        + r["discipline"]
        + " on "
        + _d(r["date_of_service"])
        + " exceed "
        + r["payer_id"]
        + "'s daily cap of "
        + r["max_timed_units_per_day"].astype("string"),
        evidence="payers.csv "
        + r["payer_id"]
        + " max_timed_units_per_day="
        + r["max_timed_units_per_day"].astype("string")
        + " ("
        + night.ref.version("payers.csv")
        + ")",
    )


@rule("AUTH_MISSING", "VISIT_LIMIT_EXCEEDED", "POC_EXPIRED")
def authorization_and_plan(night: Night) -> pd.DataFrame:
    lines = night.lines
    no_auth = (
        lines["requires_prior_auth"].fillna(False).astype(bool) & lines["prior_auth_number"].isna()
    )
    a = _first_per_claim(_rows(lines, no_auth, "claim_id", "payer_id", "date_of_service"))
    over = (
        lines["visit_number"].notna()
        & lines["authorized_visits"].notna()
        & (lines["visit_number"] > lines["authorized_visits"])
    )
    v = _first_per_claim(
        _rows(lines, over, "claim_id", "visit_number", "authorized_visits", "date_of_service")
    )
    dos = lines["date_of_service"]
    early = lines["plan_of_care_start"].notna() & (dos < lines["plan_of_care_start"])
    late = lines["plan_of_care_end"].notna() & (dos > lines["plan_of_care_end"])
    p = _first_per_claim(
        _rows(
            lines,
            early | late,
            "claim_id",
            "date_of_service",
            "plan_of_care_start",
            "plan_of_care_end",
        )
    )
    return findings.concat(
        [
            findings.make(
                "AUTH_MISSING",
                a,
                a["payer_id"]
                + " requires prior authorization; the visit on "
                + _d(a["date_of_service"])
                + " has no prior_auth_number",
                evidence="payers.csv "
                + a["payer_id"]
                + " requires_prior_auth=true ("
                + night.ref.version("payers.csv")
                + ")",
            ),
            findings.make(
                "VISIT_LIMIT_EXCEEDED",
                v,
                "visit "
                + v["visit_number"].astype("string")
                + " of "
                + v["authorized_visits"].astype("string")
                + " authorized ("
                + _d(v["date_of_service"])
                + ")",
                evidence="extract: authorized_visits, visit_number",
            ),
            findings.make(
                "POC_EXPIRED",
                p,
                "date of service "
                + _d(p["date_of_service"])
                + " is outside the plan of care "
                + _d(p["plan_of_care_start"])
                + " to "
                + _d(p["plan_of_care_end"]),
                evidence="MBPM ch. 15 220.1 (certified plan of care)",
            ),
        ]
    )


# --------------------------------------------------------------------------- payer-class edits


@rule("CODE_NOT_COVERED")
def code_not_covered(night: Night) -> pd.DataFrame:
    lines, edits = night.lines, night.ref.code_edits
    if edits.empty:
        return findings.empty()
    cand = _isin(night, "cpt_code", edits["code"]) & _isin(
        night, "payer_class", edits["payer_class"]
    )
    m = (
        lines.loc[cand, ["payer_class", "cpt_code"]]
        .reset_index(names="idx")
        .merge(edits, left_on=["payer_class", "cpt_code"], right_on=["payer_class", "code"])
    )
    r = lines.loc[m["idx"].to_numpy(), [*FINDING_KEYS, "payer_id", "date_of_service"]]
    return findings.make(
        "CODE_NOT_COVERED",
        r,
        (
            m["problem"]
            + " (payer "
            + r["payer_id"].to_numpy()
            + ", "
            + _d(r["date_of_service"]).to_numpy()
            + ")"
        ).to_numpy(),
        evidence=(
            night.ref.version("code_edits.csv")
            + ": "
            + m["payer_class"]
            + "/"
            + m["code"]
            + " ("
            + m.get("source", pd.Series("", index=m.index)).astype("string")
            + ")"
        ).to_numpy(),
        suggested_fix=m["fix"].to_numpy(),
    )


@rule("CMT_AT_MISSING")
def cmt_at_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = (
        _isin(night, "payer_class", ["medicare"])
        & _isin(night, "cpt_code", CMT_CODES)
        & ~_has(night, "AT|GA")
    )
    r = _rows(lines, bad, "cpt_code", "date_of_service")
    return findings.make(
        "CMT_AT_MISSING",
        r,
        r["cpt_code"]
        + " to Medicare without AT ("
        + _where(r)
        + ") is processed as maintenance care and denied",
        evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
    )


@rule("KX_REQUIRED")
def kx_required(night: Night) -> pd.DataFrame:
    """Medicare Part B therapy: once a patient's billed therapy charges this calendar year (earlier
    nights plus tonight, in date order) pass the year's threshold, each further line needs KX.
    PT and SLP share one threshold, OT has its own. Charges stand in for allowed amounts."""
    lines, kx = night.lines, night.ref.kx
    sel = (
        _isin(night, "payer_class", ["medicare"])
        & lines["always_therapy"].to_numpy()
        & (lines["units"] > 0).to_numpy()
        & _isin(night, "discipline", ["PT", "SLP", "OT"])
    )
    if not sel.any() or kx.empty:
        return findings.empty()
    pos = np.flatnonzero(sel)
    year = lines["date_of_service"].iloc[pos].dt.year.reset_index(drop=True)
    ot = _isin(night, "discipline", ["OT"])[pos]
    bucket = np.where(ot, "OT", "PT/SLP")
    # the running charges are per patient, year and bucket (a line without a patient or a year
    # is in no group, as groupby leaves it out: it is never over)
    patient = night.distinct("patient_id")[0][pos]
    known = (patient >= 0) & year.notna().to_numpy()
    group = units.group_ids([patient, year, ot])
    first = np.unique(group, return_index=True)[1]  # a line of each group
    threshold = np.where(
        ot[first], year.iloc[first].map(kx["ot"]), year.iloc[first].map(kx["pt_slp"])
    )
    prior = night.kx_history
    if prior is not None and not prior.empty:
        t = pd.DataFrame(
            {
                "patient_id": lines["patient_id"].iloc[pos[first]].reset_index(drop=True),
                "year": year.iloc[first].reset_index(drop=True),
                "bucket": bucket[first],
            }
        )
        earlier = t.merge(prior, on=["patient_id", "year", "bucket"], how="left")["charges"]
        if len(earlier) != len(t):
            raise ValueError("kx_history repeats a (patient_id, year, bucket)")
        earlier = earlier.fillna(0).to_numpy()
    else:
        earlier = np.zeros(len(first))
    # only groups whose earlier charges plus all of tonight's positive charges could pass the
    # threshold need the running sum (in date order, the costly part); the slack covers the
    # rounding of float sums taken in another order
    charge = lines["charge_amount"].to_numpy()[pos]
    most = earlier + np.bincount(group, weights=np.where(charge > 0, charge, 0.0))
    scale = np.abs(earlier) + np.bincount(group, weights=np.abs(np.nan_to_num(charge)))
    could = known[first] & (most + 1e-6 * (scale + 1) > threshold)
    rows = np.flatnonzero(could[group])
    if len(rows) == 0:
        return findings.empty()
    # those lines in date order (then claim, then line id): the order the charges add up in
    rows = rows[_sort_order(lines, pos[rows], ["date_of_service", "claim_id", "line_id"])]
    g = group[rows]
    running = pd.Series(charge[rows]).groupby(g, sort=False).cumsum().to_numpy() + earlier[g]
    need = (running > threshold[g]) & ~_has(night, "KX")[pos[rows]]
    need &= ~pd.isna(threshold[g])
    if not need.any():
        return findings.empty()
    over = rows[need]
    r = _take(lines, pos[over], "date_of_service", "patient_id", "cpt_code")
    r = r.assign(year=year.to_numpy()[over], bucket=bucket[over])
    running, threshold = running[need], threshold[g][need]
    return findings.make(
        "KX_REQUIRED",
        r,
        "Medicare "
        + r["bucket"]
        + " therapy charges for patient "
        + r["patient_id"]
        + " in "
        + r["year"].astype("string")
        + " reach $"
        + pd.Series(running, index=r.index).round(2).astype("string")
        + ", above the $"
        + pd.Series(threshold, index=r.index).round(0).astype(int).astype("string")
        + " KX threshold; "
        + r["cpt_code"]
        + " on "
        + _d(r["date_of_service"])
        + " lacks KX",
        evidence=night.ref.version("kx_thresholds.csv")
        + ": "
        + r["year"].astype("string")
        + " "
        + r["bucket"]
        + " threshold (charges of earlier nights from scored/)",
    )


def kx_history(out: str, run_date: str, ref, lines: pd.DataFrame) -> pd.DataFrame:
    """Billed Medicare therapy charges of earlier run dates, per patient, year and KX bucket
    (PT/SLP, OT), read from the scored layer for the calendar years tonight's lines fall in."""
    cols = ["patient_id", "year", "bucket", "charges"]
    medicare = set(ref.payers.index[ref.payers["payer_class"] == "medicare"])
    if lines.empty or not medicare:
        return pd.DataFrame(columns=cols)
    years = set(lines["date_of_service"].dt.year.dropna().astype(int))
    root = storage.join(out, "scored")
    parts = []
    for path in storage.list_files(root) if storage.is_dir(root) else []:
        part = next(
            (p for p in path.replace("\\", "/").split("/") if p.startswith("run_date=")), None
        )
        if not part or not path.endswith(".parquet"):
            continue
        rd = part.split("=", 1)[1]
        if rd >= run_date or int(rd[:4]) < min(years):
            continue
        df = storage.read_parquet(
            path,
            columns=[
                "patient_id",
                "payer_id",
                "date_of_service",
                "discipline",
                "cpt_code",
                "charge_amount",
                "status",
            ],
        )
        df = df[
            (df["status"] == "billed")
            & df["payer_id"].isin(medicare)
            & df["discipline"].isin(["PT", "SLP", "OT"])
        ]
        df = df[df["cpt_code"].map(ref.cpt["always_therapy"]).fillna(False).astype(bool)]
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=cols)
    h = pd.concat(parts, ignore_index=True)
    h["year"] = h["date_of_service"].dt.year
    h["bucket"] = np.where(h["discipline"] == "OT", "OT", "PT/SLP")
    h = h[h["year"].isin(years)]
    return (
        h.groupby(["patient_id", "year", "bucket"], as_index=False)["charge_amount"]
        .sum()
        .rename(columns={"charge_amount": "charges"})
    )
