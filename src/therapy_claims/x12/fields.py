"""Field checks: a value a claim cannot carry gives an :class:`Invalid` problem.

Each check exists for one value (``req``, ``exact``, ``ident``, ``zip_code``, ...: the value as
the 837 carries it, or ``Invalid``) and, where a column is checked, for a whole column once per
distinct value (``required``, ``identifiers``, ``zips``, ``checked_values``: the texts and the
problems per row as a :class:`PerRow`). Messages name the field and the problem, never the
value (the values are PHI). The order in which a claim's checks run, and so which problem it
is held for, is :mod:`therapy_claims.x12.checks`'.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from therapy_claims import npi as npi_check
from therapy_claims.x12.columns import Values, cleaned, encode, is_clean, matching
from therapy_claims.x12.constants import (
    FREQUENCY_CODES,
    MAX_DIAGNOSES,
    MAX_DIAGNOSES_I,
    RELATED_CAUSES,
    RELATIONSHIP_PAT01,
    REVENUE_CODES,
    THERAPY_MODIFIERS,
)
from therapy_claims.x12.joiner import Texts, objects
from therapy_claims.x12.text import clean_text, digits_of, hi_codes, is_na

_CPT = re.compile(r"[A-Z0-9]{5}")


_MOD = re.compile(r"[A-Z0-9]{2}")


_POS = re.compile(r"\d{2}")


EMPTY = "is empty after removing characters X12 cannot carry"


BAD_NPI = "is not a valid NPI (10 digits with a correct check digit)"


NOT_ZIP = "is not 5 or 9 digits"


class Invalid(Exception):
    """``field problem`` for a value a claim cannot carry (never the value: it is PHI).

    ``scope`` is ``"clinic"`` or ``"payer"`` when the problem is in that reference row; the
    message then names the row: ``claim X (clinic C): ...``.
    """

    def __init__(self, field: str, problem: str, scope: str = ""):
        super().__init__(f"{field} {problem}")
        self.scope = scope


def req(value: object, field: str, max_len: int, min_len: int = 1) -> str:
    text = clean_text(value, max_len)
    if not text:
        raise Invalid(field, EMPTY)
    if len(text) < min_len:
        raise Invalid(field, f"is shorter than {min_len} characters after cleaning")
    return text


def exact(value: object, field: str, pattern: str, what: str) -> str:
    """An identifier that must already be clean: it is sent as is or not at all."""
    text = "" if is_na(value) else str(value).strip()
    if not re.fullmatch(pattern, text) or clean_text(text) != text:
        raise Invalid(field, f"must be {what}")
    return text


def ident(value: object, field: str, max_len: int, min_len: int = 0) -> str:
    """An identifier from the extract (member, group, authorisation number).

    Upper-casing and space collapsing are fine; dropping characters or cutting would send a
    different identifier, so that raises instead.
    """
    text = clean_text(value)
    original = "" if is_na(value) else " ".join(str(value).upper().split())
    if text != original:
        raise Invalid(field, "contains characters X12 cannot carry")
    if not min_len <= len(text) <= max_len:
        raise Invalid(field, f"must be {min_len or 1}-{max_len} characters")
    return text


def zip_code(value: object, field: str, nine: bool = False) -> str:
    z = digits_of(value)
    if len(z) not in ((9,) if nine else (5, 9)):
        raise Invalid(field, "is not a 9-digit ZIP+4" if nine else NOT_ZIP)
    return z


def state_code(value: object, field: str) -> str:
    s = clean_text(value)
    if not re.fullmatch(r"[A-Z]{2}", s):
        raise Invalid(field, "is not a 2-letter state code")
    return s


def npi_number(value: object, field: str) -> str:
    s = clean_text(value)
    if not valid_npi(s):
        raise Invalid(field, BAD_NPI)
    return s


@lru_cache(maxsize=1 << 14)
def valid_npi(value: str) -> bool:
    return npi_check.is_valid(value)


def clinic_entry(clinics: pd.DataFrame, cid: object, institutional: bool) -> dict[str, str]:
    """The clinic's checked billing provider / submitter values (raises ``Invalid``)."""
    if is_na(cid) or cid not in clinics.index:
        raise Invalid("clinic_id", "is not in clinics.csv")
    row = clinics.loc[cid]
    claim_type = "institutional" if institutional else "professional"
    try:
        if str(row.get("claim_type", "professional")).strip() != claim_type:
            raise Invalid(
                "clinic claim_type", f"is not {claim_type} ({'837I' if institutional else '837P'})"
            )
        tob = ""
        if institutional:
            tob = digits_of(row.get("type_of_bill", ""))
            if len(tob) == 4 and tob[0] == "0":
                tob = tob[1:]
            if not re.fullmatch(r"[1-9]\d[0-9A-Z]", tob):
                raise Invalid("clinic type_of_bill", "must be 3 digits, e.g. 131")
        sub_id = exact(
            row["submitter_id"], "clinic submitter_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9"
        )
        return {
            "name": req(row["billing_name"], "clinic billing_name", 60),
            "npi": npi_number(row["billing_npi"], "clinic billing_npi"),
            "tax_id": exact(digits_of(row["tax_id"]), "clinic tax_id", r"\d{9}", "9 digits"),
            "taxonomy": exact(
                row["taxonomy"], "clinic taxonomy", r"[0-9A-Z]{9}X", "a 10-character taxonomy"
            ),
            "address": req(row["address"], "clinic address", 55),
            "city": req(row["city"], "clinic city", 30, 2),
            "state": state_code(row["state"], "clinic state"),
            "zip": zip_code(row["zip"], "clinic zip", nine=True),
            "submitter_id": sub_id,
            "submitter_name": req(row["submitter_name"], "clinic submitter_name", 60),
            "phone": req(digits_of(row["contact_phone"]), "clinic contact_phone", 256),
            "clm05": f"{tob[:2]}:A:{tob[2:]}" if tob else "",
            "point_of_origin": point_of_origin(row) if institutional else "",
        }
    except Invalid as exc:
        exc.scope = "clinic"
        raise


def point_of_origin(row: pd.Series) -> str:
    """837I CL102 (UB-04 FL15) of a clinic: its ``point_of_origin``, "1" when empty."""
    value = row.get("point_of_origin", "")
    text = "" if is_na(value) else str(value).strip()
    return exact(text or "1", "clinic point_of_origin", r"[0-9A-Z]", "a 1-character code")


def payer_entry(payers: pd.DataFrame, pid: object) -> dict[str, str]:
    """The payer's checked 2010BB / SBR09 values and its class (raises ``Invalid``). NM109 is
    the clearinghouse's payer ID (what claims are routed by), not the internal key; SBR09 is
    the 837P's or the 837I's (``sbr09_i``: Medicare Part A on institutional claims)."""
    if is_na(pid) or pid not in payers.index:
        raise Invalid("payer_id", "is not in payers.csv")
    row = payers.loc[pid]
    what = "a 2-character SBR09 code"
    try:
        name = req(row["payer_name"], "payer_name", 60)
        routing_id = exact(
            row.get("clearinghouse_payer_id"),
            "payer clearinghouse_payer_id",
            r"[A-Z0-9 .\-]{2,80}",
            "2-80 of A-Z 0-9",
        )
        filing = exact(
            row["claim_filing_indicator"], "payer claim_filing_indicator", r"[A-Z0-9]{2}", what
        )
        filing_i = row.get("claim_filing_indicator_institutional", "")
        filing_i = "" if is_na(filing_i) else str(filing_i).strip()
        filing_i = exact(
            filing_i or ("MA" if filing == "MB" else filing),
            "payer claim_filing_indicator_institutional",
            r"[A-Z0-9]{2}",
            what,
        )
        payer_class = row.get("payer_class")
        return {
            "name": name,
            "id": routing_id,
            "sbr09": filing,
            "sbr09_i": filing_i,
            "class": "" if is_na(payer_class) else str(payer_class),
        }
    except Invalid as exc:
        exc.scope = "payer"
        raise


def checked(fn, *args) -> object:
    """``fn(*args)``, or the ``Invalid`` it raises (without its traceback: a kept traceback
    would keep the frames of the build, and every text they made, alive)."""
    try:
        return fn(*args)
    except Invalid as exc:
        return exc.with_traceback(None)


def frequency_code(value: object) -> str:
    """CLM05-3 of a claim: ``1`` (original) when not given, else 1, 7 or 8 as given."""
    text = "" if is_na(value) else str(value).strip()
    if not text:
        return FREQUENCY_CODES[0]
    if text not in FREQUENCY_CODES:
        raise Invalid("claim_frequency", "is not 1 (original), 7 (replacement) or 8 (void)")
    return text


def relationship(value: object) -> str:
    relation = "self" if is_na(value) else str(value).strip().lower() or "self"
    if relation != "self" and relation not in RELATIONSHIP_PAT01:
        raise Invalid("subscriber_relationship", "is not self/spouse/child/other")
    return relation


def related_cause(value: object) -> str:
    """The extract's ``related_cause`` ('' for none)."""
    cause = "" if is_na(value) else str(value).strip().lower()
    if cause and cause not in RELATED_CAUSES:
        raise Invalid("related_cause", "is not employment, auto_accident or other_accident")
    return cause


def sex_code(value: object) -> str:
    sex = clean_text(value) or "U"
    if sex not in ("M", "F", "U"):
        raise Invalid("patient_sex", "is not M, F or U")
    return sex


@lru_cache(maxsize=4096)
def sv101(cpt: object, modifiers: tuple) -> str | None:
    """``HC:code[:mod...]`` or None when the code or a modifier is malformed."""
    code = clean_text(cpt)
    mods = [clean_text(m) for m in modifiers]
    if not _CPT.fullmatch(code) or len(mods) > 4 or not all(_MOD.fullmatch(m) for m in mods):
        return None
    return ":".join(["HC", code, *mods])


@lru_cache(maxsize=4096)
def pointer_composite(pointers: tuple) -> tuple[str, int] | None:
    """(``1:2`` composite, highest pointer) or None when not 1-4 whole numbers 1..12."""
    try:
        values = [int(p) for p in pointers]
    except (TypeError, ValueError):
        return None
    if not 1 <= len(values) <= 4 or any(not 1 <= v <= MAX_DIAGNOSES for v in values):
        return None
    if any(float(p) != v for p, v in zip(pointers, values, strict=True)):
        return None
    return ":".join(map(str, values)), max(values)


@lru_cache(maxsize=256)
def place_of_service(value: object) -> str | None:
    text = clean_text(value)
    return text if _POS.fullmatch(text) else None


def diagnoses(codes: tuple, institutional: bool) -> tuple[int, str]:
    """(number of codes, the HI segment text) of a claim's diagnosis list."""
    dx = hi_codes(codes)
    if not dx:
        raise Invalid("diagnosis_codes", "is empty")
    limit = MAX_DIAGNOSES_I if institutional else MAX_DIAGNOSES
    if len(dx) > limit:
        raise Invalid("diagnosis_codes", f"has more than {limit} codes")
    if institutional:  # the other diagnoses in HI*ABF segments of 12
        others = dx[1:]
        other = "".join(
            "HI*" + "*".join("ABF:" + d for d in others[at : at + 12]) + "~\n"
            for at in range(0, len(others), 12)
        )
        return len(dx), f"HI*ABK:{dx[0]}~\n{other}"
    return len(dx), "HI*ABK:" + dx[0] + "".join("*ABF:" + d for d in dx[1:]) + "~\n"


def modifier_problem(service: str | None, discipline: str) -> Invalid | None:
    """837I: the revenue code's therapy modifier must be there, and no other one."""
    if service is None:
        return None  # reported as cpt_code/modifiers before
    rev = REVENUE_CODES.get(discipline)
    if rev is None:
        return Invalid("discipline", "has no outpatient therapy revenue code (PT, OT, SLP)")
    revenue_code, modifier = rev
    line_mods = service.split(":")[2:]
    if modifier not in line_mods:
        return Invalid("modifiers", f"lack {modifier}, required with revenue code {revenue_code}")
    if any(m in THERAPY_MODIFIERS and m != modifier for m in line_mods):
        return Invalid("modifiers", f"carry a therapy modifier other than {modifier}")
    return None


# ---- whole columns, once per distinct value ----------------------------------------------
def problem_array(n: int, mask: np.ndarray | None = None, problem: Invalid | None = None):
    """An object array of ``problem`` where ``mask`` holds, else None."""
    out = np.full(n, None, dtype=object)
    if mask is not None:
        out[mask] = problem
    return out


class PerRow:
    """Problems (or None) per row as ``problems[codes[row]]``: kept per key, not per row."""

    def __init__(self, codes: np.ndarray, problems: np.ndarray):
        self.codes, self.problems = codes, problems

    def __getitem__(self, rows: np.ndarray) -> PerRow:
        return PerRow(self.codes[rows], self.problems)

    def mask(self) -> np.ndarray:
        """Which rows have a problem."""
        return np.not_equal(self.problems, None)[self.codes]

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self.problems[self.codes[rows]]


def by_row(codes: np.ndarray, problems: np.ndarray) -> PerRow | None:
    """Per-key problems as per-row ones; None when no key has a problem."""
    return PerRow(codes, problems) if np.not_equal(problems, None).any() else None


def required(
    values: Values, field: str, max_len: int, min_len: int = 1
) -> tuple[Texts, np.ndarray | None]:
    """``req`` of every value: (texts, problems per value or None)."""
    texts = cleaned(values, max_len)
    size = texts.lengths()
    problems = problem_array(
        len(size),
        size < min_len,
        Invalid(field, f"is shorter than {min_len} characters after cleaning"),
    )
    problems[size == 0] = Invalid(field, EMPTY)
    return texts, by_row(texts.codes, problems)


def identifiers(
    values: Values, field: str, max_len: int, min_len: int = 0
) -> tuple[Texts, np.ndarray | None]:
    """``ident`` of every value: (texts, problems per value or None)."""
    codes, keys, strings = encode(values)
    clean = is_clean(keys, None, strings)
    texts = keys.copy()
    problems = problem_array(len(keys))
    dirty = np.flatnonzero(~clean)
    for i in dirty:
        got = checked(ident, keys[i], field, max_len, min_len)
        texts[i], problems[i] = ("", got) if isinstance(got, Invalid) else (got, None)
    texts = Texts(codes, texts, strings, dirty)
    size = texts.lengths()
    problems[clean & ((size < min_len) | (size > max_len))] = Invalid(
        field, f"must be {min_len or 1}-{max_len} characters"
    )
    return texts, by_row(codes, problems)


def split_results(results: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, problems) from an array of values or ``Invalid`` (values '' where invalid)."""
    bad = np.fromiter((isinstance(r, Invalid) for r in results), bool, len(results))
    values, problems = results.copy(), problem_array(len(results))
    problems[bad], values[bad] = results[bad], ""
    return values, problems


def checked_values(
    fn, values: Values, listish: bool = False, unchanged: str | None = None
) -> tuple[Texts, np.ndarray | None]:
    """``fn`` (giving a str) of every value, once per distinct value: (texts, problems or
    None); '' where ``fn`` raises ``Invalid``.

    ``unchanged``: a regex of strings that ``fn`` returns as they are (e.g. a 5-digit ZIP);
    those are matched by pyarrow, so ``fn`` only runs on the other values.
    """
    codes, keys, strings = encode(values, listish)
    results, problems = keys.copy(), problem_array(len(keys))
    todo = np.arange(len(keys))
    if unchanged is not None:
        todo = np.flatnonzero(~matching(keys, unchanged, strings))
    for i in todo:
        got = checked(fn, keys[i])
        results[i], problems[i] = ("", got) if isinstance(got, Invalid) else (got, None)
    return Texts(codes, results, strings, todo), by_row(codes, problems)


def zips(values: Values, field: str) -> tuple[Texts, np.ndarray | None]:
    """``zip_code(value, field)`` of every value, once per distinct value: (texts, problems or
    None). pyarrow strips the non-digits of ASCII strings (on ASCII its ``\\D`` is Python's);
    ``zip_code`` does the other values."""
    codes, keys, strings = encode(values)
    results, problems = keys.copy(), problem_array(len(keys))
    todo = np.ones(len(keys), dtype=bool)
    if strings is not None:  # the keys but the last (None)
        quick = np.flatnonzero(pc.string_is_ascii(strings).to_numpy(zero_copy_only=False))
        digits = pc.replace_substring_regex(strings, r"\D", "").take(quick)
        size = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
        results[quick] = digits.to_numpy(zero_copy_only=False)
        bad = quick[(size != 5) & (size != 9)]
        results[bad], problems[bad] = "", Invalid(field, NOT_ZIP)
        todo[quick] = False
    for i in np.flatnonzero(todo):
        got = checked(zip_code, keys[i], field)
        results[i], problems[i] = ("", got) if isinstance(got, Invalid) else (got, None)
    return Texts(codes, results), by_row(codes, problems)


def line_item_refs(
    values: Values, max_len: int, rows: np.ndarray
) -> tuple[Texts, np.ndarray, np.ndarray]:
    """REF*6R (line item control number) of the lines ``rows``: each one's ``line_id`` as is,
    or '' where the id cannot go out as is (missing, longer than ``max_len``, or anything
    ``clean_text`` would change: lower case, characters outside the basic set). An 835 names
    the line by this value (SVC's REF*6R), so it is never cleaned into another id: such a line
    is held instead (``checks.line_problems``). Returns (texts, ok, same): ``same`` equal for
    rows with equal texts (to find an id repeated within a claim)."""
    codes, keys, strings = encode(values)
    ok = is_clean(keys, max_len, strings)
    for i in np.flatnonzero(~ok):  # non-string ids (ints...): as str, if that is clean
        if is_na(keys[i]):
            continue
        text = str(keys[i])
        ok[i] = text != "" and clean_text(text, max_len) == text
    codes = codes[rows]
    if strings is None:
        texts = objects(
            (str(k) if good else "" for k, good in zip(keys, ok, strict=True)), len(keys)
        )
        # distinct keys may give one text (5 and "5"), and non-strings are each their own key
        same = pd.factorize(texts)[0][codes]
        return Texts(codes, texts), ok[codes], same
    texts = keys.copy()
    bad = np.flatnonzero(~ok)
    texts[bad] = ""
    return Texts(codes, texts, strings, bad), ok[codes], codes  # (the keys are distinct)
