"""Checked claims handed over: the columns a checked batch writes with, so that building the
same claims later needs no second check.

Score checks every billed claim (:class:`therapy_claims.x12.checks.Batch`: each value cleaned
and checked once per distinct value) and publish then builds the same claims. :func:`export`
gives a checked batch's columns (per line, and per claim: codes into texts per field, numbers,
flags, whether the claim can be written); :class:`Checked` rebuilds, from those columns for
the lines of one claim file, the ``LineColumns`` / ``ClaimColumns`` attributes the assembly
reads, and ``build_837p`` / ``build_837i`` with ``checked=`` write them: the same bytes as a
build of the lines themselves, with nothing cleaned or checked again
(``tests/test_x12_prepared.py``).

A claim's values are its first line's, so a claim exported must have had its first written
line (by date of service, then line_id) first in the batch (``moved_first_lines`` finds those
that did not); the claims' order and their clinics' and payers' rows are worked out again per
file.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.checks import Batch, FirstProblem, correction_problems
from therapy_claims.x12.constants import OCCURRENCE_CODES
from therapy_claims.x12.joiner import Texts, large

# a claim's texts (``ClaimColumns`` attributes, each a ``Texts`` of one code per claim)
CLAIM_TEXTS = (
    "address", "city", "state", "zip", "dob", "sex", "group", "pat_last", "pat_first",
    "member", "pc_number", "employer_name", "sub_last", "sub_first", "pat01", "hi", "auth",
    "accident_state", "onset", "started", "accident", "plan_of_care",
)  # fmt: skip
# of those, the ones the assembly reads as Python strings (few distinct texts on a night)
CLAIM_OBJECTS = ("accident_state", "onset", "started", "accident", "plan_of_care")
CLAIM_FLAGS = ("dependent", "employer", "has_y4", "needs_start", "renderer2310")
DISCIPLINES = tuple(f"disc_{d}" for d in OCCURRENCE_CODES)  # 837I: the claim has a line of d
# a line's texts: (codes attribute, texts attribute) on ``LineColumns``, codes in claim order
LINE_CODES = {
    "dos": ("dos", "dos_str"),
    "r_last": ("r_last_code", "r_last_texts"),
    "r_first": ("r_first_code", "r_first_texts"),
    "npi": ("npi_code", "npi_texts"),
    "tax": ("tax_code", "tax_texts"),
    "place": ("place", "place_texts"),  # 837P
}
# ``Texts`` (ptr 837P, revenue 837I; ref: REF*6R, the line_id, a text per line)
LINE_TEXTS = ("svc_text", "ptr_text", "revenue_text", "ref_text")
REFERRER = {"ref_last": "last", "ref_first": "first"}  # Person's (codes, texts) pairs
# every field with texts, in the order their pools are kept
TEXT_FIELDS = (*CLAIM_TEXTS, *REFERRER, "ref_npi", "problem", *LINE_CODES, *LINE_TEXTS)
# the columns exported per line, and per claim (a claim's: its first line's values)
LINE_FIELDS = (
    "cents", "units", "line_renderer", "dos", "svc_text", "r_last", "r_first", "npi", "tax",
    "revenue_text", "ptr_text", "place", "ref_text",
)  # fmt: skip
CLAIM_FIELDS = (
    *CLAIM_TEXTS, *REFERRER, "ref_npi", "problem", *CLAIM_FLAGS, "bad", "ref_usable",
    *DISCIPLINES, "cause",
)  # fmt: skip
NO_TEXTS = np.array([""], dtype=object)


@dataclass
class Exported:
    """A checked batch's columns: ``lines[f]`` per line (in the order of the batch's input
    rows; ``LINE_FIELDS`` and ``claim``, its claim's row in ``claims``), ``claims[f]`` per
    claim (``CLAIM_FIELDS``); a text field's values are codes (int32) into ``pools[f]``
    (pyarrow large strings), numbers int64, flags uint8 (0/1)."""

    lines: dict[str, np.ndarray]
    claims: dict[str, np.ndarray]
    pools: dict[str, pa.Array]


def export(batch: Batch) -> Exported:
    """The columns of a checked batch a build of its claims reads. ``problem`` is why a
    ``bad`` claim cannot be written ('' for the others)."""
    lines, claims, verdict = batch.lines, batch.claims, batch.verdict
    order, n = lines.order, len(lines.order)
    out = Exported({}, {}, {})

    def per_line(values: np.ndarray, dtype) -> np.ndarray:
        at = np.empty(n, dtype=dtype)
        at[order] = values
        return at

    def put(field: str, codes: np.ndarray, texts, per_claim: bool) -> None:
        if per_claim:
            out.claims[field] = np.asarray(codes).astype(np.int32)
        else:
            out.lines[field] = per_line(codes, np.int32)
        out.pools[field] = texts.arrow() if isinstance(texts, Texts) else large(texts)

    for field in CLAIM_TEXTS:
        texts = getattr(claims, field)
        put(field, texts.codes, texts, per_claim=True)
    r = claims.referrer
    for field, name in REFERRER.items():
        put(field, *getattr(r, name), per_claim=True)
    put("ref_npi", r.npi_code, r.npi_texts, per_claim=True)
    bad = verdict.bad
    messages = np.array(["", *(verdict.message(k) for k in np.flatnonzero(bad))], dtype=object)
    problem = np.zeros(len(bad), dtype=np.int64)
    problem[bad] = np.arange(1, len(messages))
    put("problem", problem, messages, per_claim=True)
    for field, (codes, texts) in LINE_CODES.items():
        if hasattr(lines, codes):
            put(field, getattr(lines, codes), getattr(lines, texts), per_claim=False)
        else:  # the other claim type's
            out.lines[field], out.pools[field] = np.zeros(n, dtype=np.int32), large(NO_TEXTS)
    for field in LINE_TEXTS:
        texts = getattr(lines, field, None)
        if texts is None:
            out.lines[field], out.pools[field] = np.zeros(n, dtype=np.int32), large(NO_TEXTS)
        else:
            put(field, texts.codes, texts, per_claim=False)
    out.lines["cents"] = per_line(lines.cents, np.int64)
    out.lines["units"] = per_line(lines.units, np.int64)
    out.lines["line_renderer"] = per_line(lines.line_renderer, np.uint8)
    out.lines["claim"] = per_line(lines.line_claim, np.int32)
    out.claims["cause"] = np.asarray(claims.cause, dtype=np.int64)
    flags = {f: getattr(claims, f) for f in CLAIM_FLAGS} | {"bad": bad, "ref_usable": r.usable}
    for d, field in zip(OCCURRENCE_CODES, DISCIPLINES, strict=True):
        flags[field] = getattr(claims, "disciplines", {}).get(d, np.zeros(len(bad), dtype=bool))
    for field, values in flags.items():
        out.claims[field] = np.asarray(values, dtype=np.uint8)
    return out


def moved_first_lines(df: pd.DataFrame, lines: LineColumns) -> np.ndarray:
    """The claims (numbered as in ``lines``) whose first line in ``df`` (a batch's input) is
    not the one written first: the claim's lines are written by date of service, then
    line_id (missing values last), and a claim's values are its first line's. Only those
    claims' exported values can differ from what a build of the written order takes."""
    first = lines.first[lines.line_claim]  # per line (claim order): its claim's first row
    rows = lines.order
    days = pd.to_datetime(df["date_of_service"]).to_numpy().astype("datetime64[ns]").view("i8")
    days = np.where(days == np.iinfo(np.int64).min, np.iinfo(np.int64).max, days)  # NaT last
    ids = pa.array(df["line_id"].array)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    # a line before its claim's first one (a missing line_id: taken as before, to be safe)
    earlier_id = pc.less(ids.take(pa.array(rows)), ids.take(pa.array(first)))
    earlier_id = earlier_id.fill_null(True).to_numpy(zero_copy_only=False)
    d, d0 = days[rows], days[first]
    before = (d < d0) | ((d == d0) & earlier_id & (rows != first))
    return np.unique(lines.line_claim[before])


# --------------------------------------------------------------------------- building


class Pools:
    """The texts of each field (pyarrow large strings) the codes of exported columns point
    into, with each field's texts as Python strings when asked (once)."""

    def __init__(self, pools: dict[str, pa.Array]):
        self._arrow = pools
        self._objects: dict[str, np.ndarray] = {}

    def arrow(self, field: str) -> pa.Array:
        return self._arrow[field]

    def objects(self, field: str) -> np.ndarray:
        if field not in self._objects:
            self._objects[field] = self._arrow[field].to_numpy(zero_copy_only=False)
        return self._objects[field]

    def texts(self, codes: np.ndarray, field: str, as_objects: bool = False) -> Texts:
        objects = self.objects(field) if as_objects else None
        return Texts(codes, objects, arrow=self._arrow[field])


class Columns(Protocol):
    """Exported columns of one claim file's lines (``at``: positions among its lines)."""

    def lines(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        """``LINE_FIELDS`` of the lines ``at``."""

    def claims(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        """``CLAIM_FIELDS`` of the claims of the lines ``at``."""


class Held:
    """``Columns`` of an ``Exported`` at hand, for the lines at ``rows`` of it."""

    def __init__(self, exported: Exported, rows: np.ndarray | None = None):
        self.exported = exported
        n = len(exported.lines["claim"])
        self.rows = np.arange(n) if rows is None else np.asarray(rows)

    def lines(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        return {f: self.exported.lines[f][self.rows[at]] for f in fields}

    def claims(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        claim = self.exported.lines["claim"][self.rows[at]]
        return {f: self.exported.claims[f][claim] for f in fields}


class CheckedLines(LineColumns):
    """``LineColumns`` of exported columns (``take``: the file's), lines in any order: only
    what the assembly reads."""

    def __init__(self, claim_ids: pd.Series, take: Columns, pools: Pools, institutional: bool):
        self.institutional = institutional
        columns = take.lines(LINE_FIELDS, self._group(pd.DataFrame({"claim_id": claim_ids})))

        def codes(field: str) -> np.ndarray:
            return columns[field].astype(np.int64)

        self.cents = columns["cents"]
        self.units = columns["units"]
        self.dos = codes("dos")
        self.dos_str = pools.objects("dos")
        self.dates = pools.texts(self.dos, "dos", as_objects=True)
        self.svc_text = pools.texts(codes("svc_text"), "svc_text")
        self.ref_text = pools.texts(codes("ref_text"), "ref_text")
        for field in ("r_last", "r_first", "npi", "tax"):
            code_attr, texts_attr = LINE_CODES[field]
            setattr(self, code_attr, codes(field))
            setattr(self, texts_attr, pools.objects(field))
        self.line_renderer = columns["line_renderer"].astype(bool)
        if institutional:
            self.revenue_text = pools.texts(codes("revenue_text"), "revenue_text")
        else:
            self.ptr_text = pools.texts(codes("ptr_text"), "ptr_text")
            self.place = codes("place")
            self.place_texts = pools.objects("place")
            # places by value (a night's pool may hold a text twice)
            self.place_code = pd.factorize(self.place_texts)[0]


class CheckedClaims(ClaimColumns):
    """``ClaimColumns`` of exported columns (``take``): each claim's values from its first
    line's row; its clinic's and payer's rows checked again (few: the order of the file's
    claims depends on them). ``refs``: the lines' ``clinic_id`` and ``payer_id`` (string
    columns) and, for corrected claims, ``claim_frequency`` and ``original_reference``
    (decided after the lines were checked: checked here, a claim failing them is bad)."""

    def __init__(
        self,
        refs: pd.DataFrame,
        lines: CheckedLines,
        take: Columns,
        pools: Pools,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
    ):
        self._df, self._first = refs, lines.first
        self.institutional = lines.institutional
        self.problems = {}
        self._references(clinics, payers)
        self._frequency()
        del self._df, self._first
        columns = take.claims(CLAIM_FIELDS, lines.first)

        def codes(field: str) -> np.ndarray:
            return columns[field].astype(np.int64)

        for field in CLAIM_TEXTS:
            setattr(self, field, pools.texts(codes(field), field, field in CLAIM_OBJECTS))
        for field in CLAIM_FLAGS:
            setattr(self, field, columns[field].astype(bool))
        self.cause = codes("cause")
        self.disciplines = {
            d: columns[f].astype(bool) for d, f in zip(OCCURRENCE_CODES, DISCIPLINES, strict=True)
        }
        self.referrer = SimpleNamespace(
            usable=columns["ref_usable"].astype(bool),
            last=(codes("ref_last"), pools.objects("ref_last")),
            first=(codes("ref_first"), pools.objects("ref_first")),
            npi_code=codes("ref_npi"),
            npi_texts=pools.objects("ref_npi"),
        )
        self.id_texts = Texts(np.arange(len(lines.first)), lines.ids)
        self.bad = columns["bad"].astype(bool)
        self.messages = pools.objects("problem")[columns["problem"]]
        corrections = FirstProblem(len(self.bad))
        correction_problems(corrections, self)
        for k in np.flatnonzero(corrections.bad & ~self.bad).tolist():
            self.messages[k] = f"claim {lines.ids[k]}: {corrections.problem[k]}"
        self.bad |= corrections.bad


class Checked:
    """The lines of one claim file as exported columns (``take``), with their ``claim_id``
    (CLM01), ``clinic_id`` and ``payer_id`` (``refs``, a row per line): what a build with
    ``checked=`` writes. ``bad``: per claim (as numbered in ``lines``), the checks found it
    unwritable, ``messages[k]`` why."""

    def __init__(
        self,
        refs: pd.DataFrame,
        take: Columns,
        pools: Pools,
        *,
        institutional: bool,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
    ):
        refs = refs.reset_index(drop=True)
        self.lines = CheckedLines(refs["claim_id"], take, pools, institutional)
        self.claims = CheckedClaims(refs, self.lines, take, pools, clinics, payers)
        self.bad, self.messages = self.claims.bad, self.claims.messages
