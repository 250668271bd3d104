"""837P (ASC X12 005010X222A1) and 837I (005010X223A2) writer.

``build_837p`` / ``build_837i`` turn billable service lines into one interchange (ISA..IEA) as
an ASCII string, one segment per line. Layout, element sizes and code values follow the pyx12
maps ``837.5010.X222.A1.xml`` / ``837Q3.I.5010.X223.A1.xml`` and
../shared/reference/x12-837.md (samples p_self.x12, p_dep.x12, i_therapy.x12).

Design notes
* Delimiters: ``*`` element, ``:`` component, ``^`` repetition, ``~`` segment (+ newline).
* Every free-text element goes through :func:`clean_text` (upper-case, ASCII, X12 *basic*
  character set without the delimiters) cut to the element's maximum length.
* Money is handled in integer cents, so CLM02 is exactly the sum of the SV102 values.
* Hierarchy: per transaction set (ST, up to ``MAX_CLAIMS_PER_ST`` claims), one 2000A billing
  provider HL per clinic, one 2000B subscriber HL per claim, and a 2000C patient HL when the
  patient is not the subscriber. Claims are grouped by clinic (clinics in order of first
  appearance, claims in order of first appearance within a clinic); lines keep their order.
* Problems in the input that would make an invalid or misleading claim (a required name or
  address that is empty after cleaning, a bad ZIP, too many diagnoses, a pointer outside the
  diagnosis list, ...) raise ``ValueError`` naming the claim and the field, never the value
  (the values are PHI). The caller turns that into a finding and holds the claim.
* Speed (a night is ~1M lines): nothing runs per segment. Each column is cleaned/checked once
  per distinct value (most values are already clean: a pyarrow regex lets them through),
  checks run over whole columns with each claim keeping its first problem in the order a
  claim-by-claim writer would meet them, and the text is joined once per transaction set from
  per-claim and per-line pieces.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache
from itertools import repeat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import npi as npi_check

VERSION = "005010X222A1"  # 837P
VERSION_I = "005010X223A2"  # 837I
MAX_CLAIMS_PER_ST = 5000  # TR3 recommendation
MAX_LINES_PER_CLAIM = 50  # 837P 2400 loop repeat
MAX_LINES_PER_CLAIM_I = 999  # 837I 2400 loop repeat
MAX_DIAGNOSES = 12  # HI01..HI12
LINE_LIMITS = {"professional": MAX_LINES_PER_CLAIM, "institutional": MAX_LINES_PER_CLAIM_I}

# 837I outpatient therapy: revenue code and the therapy modifier every such line carries
REVENUE_CODES = {"PT": ("0420", "GP"), "OT": ("0430", "GO"), "SLP": ("0440", "GN")}
THERAPY_MODIFIERS = ("GP", "GO", "GN")

RELATIONSHIP_PAT01 = {"spouse": "01", "child": "19", "other": "G8"}

# Characters NFKD does not decompose into ASCII.
_TRANSLIT = str.maketrans(
    {
        "ß": "SS",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "AE",
        "Ø": "O",
        "ø": "O",
        "Œ": "OE",
        "œ": "OE",
        "Ł": "L",
        "ł": "L",
        "Đ": "D",
        "đ": "D",
        "Ð": "D",
        "ð": "D",
        "Þ": "TH",
        "þ": "TH",
        "ı": "I",
        "Ħ": "H",
        "ħ": "H",
        "Ŧ": "T",
        "ŧ": "T",
        "‘": "'",
        "’": "'",
        "‚": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
    }
)
_NOT_BASIC = re.compile(r"[^A-Z0-9 !\"&'()+,\-./;?=]")
_SPACES = re.compile(r"\s+")
_MULTI_SPACE = re.compile(r" {2,}")
_CPT = re.compile(r"[A-Z0-9]{5}")
_MOD = re.compile(r"[A-Z0-9]{2}")
_POS = re.compile(r"\d{2}")


def _is_na(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return False
    if isinstance(value, float):
        return value != value
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes
        return False


@lru_cache(maxsize=1 << 16)
def _clean_str(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.translate(_TRANSLIT)  # NFKD may expose more (e.g. compatibility forms)
    text = _SPACES.sub(" ", text.upper())  # tabs, newlines, unicode spaces -> one space
    text = _NOT_BASIC.sub("", text)
    return _MULTI_SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1 << 14)
def _npi_ok(value: str) -> bool:
    return npi_check.is_valid(value)


_NOT_CODE = re.compile(r"[^A-Z0-9]")


@lru_cache(maxsize=1 << 16)
def _dx_codes(codes: tuple) -> list[str]:
    """ICD-10-CM codes as HI carries them: cleaned, without the dot, empties dropped."""
    out = [_NOT_CODE.sub("", clean_text(d)) for d in codes]
    return [d for d in out if d]


def clean_text(value: object, max_len: int | None = None) -> str:
    """Make ``value`` safe for an X12 element.

    Upper-cases, transliterates to ASCII (``JOSÉ`` -> ``JOSE``, ``ß`` -> ``SS``, ``Ø`` -> ``O``),
    keeps only the X12 basic character set ``A-Z 0-9`` space and ``! " & ' ( ) + , - . / ; ? =``
    (so the delimiters ``* : ~ ^`` and everything else are dropped; whitespace becomes a
    space), collapses runs of spaces, strips, and cuts to ``max_len``. None/NA -> ``""``.
    """
    if isinstance(value, str):
        return _clean_cut(value, max_len)
    if _is_na(value):
        return ""
    return _clean_cut(str(value), max_len)


@lru_cache(maxsize=1 << 18)
def _clean_cut(text: str, max_len: int | None) -> str:
    text = _clean_str(text)
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


def _digits(value: object) -> str:
    return "" if _is_na(value) else re.sub(r"\D", "", str(value))


def _money(cents: int) -> str:
    """X12 R-type amount from integer cents: 150, 87.5, 87.25 (no trailing zeros)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def _listish(value: object) -> list:
    """A list from a list/array, or from the extract's ``;``-joined text (``"GP;59"``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(";") if v]
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return list(value)
    return [] if _is_na(value) else [value]


def _as_tuple(value: object) -> tuple:
    """``tuple(_listish(value))``, quicker for the numpy array cells of a parquet list column."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return tuple(value.tolist())
    return tuple(_listish(value))


# ---- checks: a value a claim cannot carry raises _Invalid ------------------------------------

_EMPTY = "is empty after removing characters X12 cannot carry"
_BAD_NPI = "is not a valid NPI (10 digits with a correct check digit)"


class _Invalid(Exception):
    """``field problem`` for a value a claim cannot carry (never the value: it is PHI).

    ``scope`` is ``"clinic"`` or ``"payer"`` when the problem is in that reference row; the
    message then names the row: ``claim X (clinic C): ...``.
    """

    def __init__(self, field: str, problem: str, scope: str = ""):
        super().__init__(f"{field} {problem}")
        self.scope = scope


def _req(value: object, field: str, max_len: int, min_len: int = 1) -> str:
    text = clean_text(value, max_len)
    if not text:
        raise _Invalid(field, _EMPTY)
    if len(text) < min_len:
        raise _Invalid(field, f"is shorter than {min_len} characters after cleaning")
    return text


def _exact(value: object, field: str, pattern: str, what: str) -> str:
    """An identifier that must already be clean: it is sent as is or not at all."""
    text = "" if _is_na(value) else str(value).strip()
    if not re.fullmatch(pattern, text) or clean_text(text) != text:
        raise _Invalid(field, f"must be {what}")
    return text


def _ident(value: object, field: str, max_len: int, min_len: int = 0) -> str:
    """An identifier from the extract (member, group, authorisation number).

    Upper-casing and space collapsing are fine; dropping characters or cutting would send a
    different identifier, so that raises instead.
    """
    text = clean_text(value)
    original = "" if _is_na(value) else " ".join(str(value).upper().split())
    if text != original:
        raise _Invalid(field, "contains characters X12 cannot carry")
    if not min_len <= len(text) <= max_len:
        raise _Invalid(field, f"must be {min_len or 1}-{max_len} characters")
    return text


def _zip(value: object, field: str, nine: bool = False) -> str:
    z = _digits(value)
    if len(z) not in ((9,) if nine else (5, 9)):
        raise _Invalid(field, "is not a 9-digit ZIP+4" if nine else "is not 5 or 9 digits")
    return z


def _state(value: object, field: str) -> str:
    s = clean_text(value)
    if not re.fullmatch(r"[A-Z]{2}", s):
        raise _Invalid(field, "is not a 2-letter state code")
    return s


def _npi(value: object, field: str) -> str:
    s = clean_text(value)
    if not _npi_ok(s):
        raise _Invalid(field, _BAD_NPI)
    return s


def _clinic_entry(clinics: pd.DataFrame, cid: object, institutional: bool) -> dict[str, str]:
    """The clinic's checked billing provider / submitter values (raises ``_Invalid``)."""
    if _is_na(cid) or cid not in clinics.index:
        raise _Invalid("clinic_id", "is not in clinics.csv")
    row = clinics.loc[cid]
    claim_type = "institutional" if institutional else "professional"
    try:
        if str(row.get("claim_type", "professional")).strip() != claim_type:
            raise _Invalid(
                "clinic claim_type", f"is not {claim_type} ({'837I' if institutional else '837P'})"
            )
        tob = ""
        if institutional:
            tob = _digits(row.get("type_of_bill", ""))
            if len(tob) == 4 and tob[0] == "0":
                tob = tob[1:]
            if not re.fullmatch(r"[1-9]\d[0-9A-Z]", tob):
                raise _Invalid("clinic type_of_bill", "must be 3 digits, e.g. 131")
        sub_id = _exact(
            row["submitter_id"], "clinic submitter_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9"
        )
        return {
            "name": _req(row["billing_name"], "clinic billing_name", 60),
            "npi": _npi(row["billing_npi"], "clinic billing_npi"),
            "tax_id": _exact(_digits(row["tax_id"]), "clinic tax_id", r"\d{9}", "9 digits"),
            "taxonomy": _exact(
                row["taxonomy"], "clinic taxonomy", r"[0-9A-Z]{9}X", "a 10-character taxonomy"
            ),
            "address": _req(row["address"], "clinic address", 55),
            "city": _req(row["city"], "clinic city", 30, 2),
            "state": _state(row["state"], "clinic state"),
            "zip": _zip(row["zip"], "clinic zip", nine=True),
            "submitter_id": sub_id,
            "submitter_name": _req(row["submitter_name"], "clinic submitter_name", 60),
            "phone": _req(_digits(row["contact_phone"]), "clinic contact_phone", 256),
            "clm05": f"{tob[:2]}:A:{tob[2:]}" if tob else "",
        }
    except _Invalid as exc:
        exc.scope = "clinic"
        raise


def _payer_entry(payers: pd.DataFrame, pid: object) -> dict[str, str]:
    """The payer's checked 2010BB / SBR09 values (raises ``_Invalid``)."""
    if _is_na(pid) or pid not in payers.index:
        raise _Invalid("payer_id", "is not in payers.csv")
    row = payers.loc[pid]
    try:
        return {
            "name": _req(row["payer_name"], "payer_name", 60),
            "id": _exact(row["payer_id"], "payer_id", r"[A-Z0-9 .\-]{2,80}", "2-80 of A-Z 0-9"),
            "sbr09": _exact(
                row["claim_filing_indicator"],
                "payer claim_filing_indicator",
                r"[A-Z0-9]{2}",
                "a 2-character SBR09 code",
            ),
        }
    except _Invalid as exc:
        exc.scope = "payer"
        raise


def _checked(fn, *args) -> object:
    """``fn(*args)``, or the ``_Invalid`` it raises (without its traceback: a kept traceback
    would keep the frames of the build, and every text they made, alive)."""
    try:
        return fn(*args)
    except _Invalid as exc:
        return exc.with_traceback(None)


# ---- column work, once per distinct value -----------------------------------------------------

# what clean_text leaves unchanged: X12 basic characters, single inner spaces
_CLEAN_RE = r"^[A-Z0-9!\"&'()+,\-./;?=]+(?: [A-Z0-9!\"&'()+,\-./;?=]+)*$"


def _objects(items, n: int) -> np.ndarray:
    return np.fromiter(items, dtype=object, count=n)


def _distinct(
    values: pd.Series | np.ndarray, listish: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, keys)`` with ``values[i]`` standing for ``keys[codes[i]]``.

    Strings share a key when equal and every NA becomes the key ``None`` (this module treats
    all NAs alike); with ``listish`` the keys are ``tuple(_listish(value))``. Other values are
    each their own key, so a function of the key always equals the function of the value.
    """
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.StringDtype):  # encoded by pyarrow, no Python strings
            encoded = pc.dictionary_encode(pa.array(values.array))
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.combine_chunks()
            uniques = encoded.dictionary.to_pylist()
            codes = encoded.indices.fill_null(len(uniques)).to_numpy(zero_copy_only=False)
            keys = _objects([*uniques, None], len(uniques) + 1)
            if listish:
                keys = _objects(map(_as_tuple, keys), len(keys))
            return codes.astype(np.int64), keys
        values = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values)
        keys = np.append(uniques.astype(object), None)
        codes = np.where(codes < 0, len(uniques), codes)
        if listish:
            keys = _objects(map(_as_tuple, keys), len(keys))
        return codes, keys
    if listish:
        try:  # parquet list cells: 1-d arrays (len() rejects 0-d ones)
            sum(map(len, values))
            tuples = map(tuple, map(np.ndarray.tolist, values))
            codes, keys = pd.factorize(_objects(tuples, len(values)))
        except TypeError:
            codes, keys = pd.factorize(_objects(map(_as_tuple, values), len(values)))
        return codes, keys.astype(object)
    return np.arange(len(values)), values


def _per_value(fn, values: np.ndarray, listish: bool = False) -> np.ndarray:
    """``fn`` of every value (an object array), computed once per distinct value."""
    codes, keys = _distinct(values, listish)
    return _objects(map(fn, keys), len(keys))[codes]


def _is_clean(keys: np.ndarray, max_len: int | None) -> np.ndarray:
    """Which keys ``clean_text(key, max_len)`` returns unchanged (vectorised; False if unsure)."""
    try:
        arr = pa.array(keys, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError):
        return np.zeros(len(keys), dtype=bool)
    ok = pc.match_substring_regex(arr, _CLEAN_RE)
    if max_len is not None:
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(arr), max_len))
    return ok.fill_null(False).to_numpy(zero_copy_only=False)


def _cleaned_keys(
    values: pd.Series | np.ndarray, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``clean_text(value, max_len)`` of every value as (codes, texts by code)."""
    codes, keys = _distinct(values)
    texts = keys.copy()
    for i in np.flatnonzero(~_is_clean(keys, max_len)):
        texts[i] = clean_text(keys[i], max_len)
    return codes, texts


def _cleaned(values: pd.Series | np.ndarray, max_len: int | None = None) -> np.ndarray:
    """``clean_text(value, max_len)`` of every value (object array)."""
    codes, texts = _cleaned_keys(values, max_len)
    return texts[codes]


def _lengths(texts: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def _problems(n: int, mask: np.ndarray | None = None, problem: _Invalid | None = None):
    """An object array of ``problem`` where ``mask`` holds, else None."""
    out = np.full(n, None, dtype=object)
    if mask is not None:
        out[mask] = problem
    return out


def _by_row(codes: np.ndarray, problems: np.ndarray) -> np.ndarray | None:
    """Per-key problems as per-row ones; None when no key has a problem."""
    return problems[codes] if problems.astype(bool).any() else None


def _required(
    values: np.ndarray, field: str, max_len: int, min_len: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``_req`` of every value: (texts, problems)."""
    codes, texts = _cleaned_keys(values, max_len)
    size = _lengths(texts)
    problems = _problems(
        len(texts),
        size < min_len,
        _Invalid(field, f"is shorter than {min_len} characters after cleaning"),
    )
    problems[size == 0] = _Invalid(field, _EMPTY)
    return texts[codes], _by_row(codes, problems)


def _identifiers(
    values: np.ndarray, field: str, max_len: int, min_len: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``_ident`` of every value: (texts, problems)."""
    codes, keys = _distinct(values)
    clean = _is_clean(keys, None)
    texts = keys.copy()
    problems = _problems(len(keys))
    for i in np.flatnonzero(~clean):
        got = _checked(_ident, keys[i], field, max_len, min_len)
        texts[i], problems[i] = ("", got) if isinstance(got, _Invalid) else (got, None)
    size = _lengths(texts)
    problems[clean & ((size < min_len) | (size > max_len))] = _Invalid(
        field, f"must be {min_len or 1}-{max_len} characters"
    )
    return texts[codes], _by_row(codes, problems)


def _split(results: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, problems) from an array of values or ``_Invalid`` (values '' where invalid)."""
    bad = np.fromiter((isinstance(r, _Invalid) for r in results), bool, len(results))
    values, problems = results.copy(), _problems(len(results))
    problems[bad], values[bad] = results[bad], ""
    return values, problems


def _checked_values(
    fn, values: pd.Series | np.ndarray, listish: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """``fn`` of every value, once per distinct value: (results, problems or None)."""
    codes, keys = _distinct(values, listish)
    results, problems = _split(_objects((_checked(fn, k) for k in keys), len(keys)))
    return results[codes], _by_row(codes, problems)


def _d8(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """CCYYMMDD per value as (codes, strings by code); '' for NaT."""
    s = pd.to_datetime(series, errors="coerce")
    codes, uniques = pd.factorize(s)
    strings = np.append(pd.Index(uniques).strftime("%Y%m%d").to_numpy(dtype=object), "")
    return np.where(codes < 0, len(uniques), codes), strings


def _cents(series: pd.Series) -> np.ndarray:
    """Integer cents per line; -1 where the amount is missing or negative."""
    amounts = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    cents = np.round(amounts * 100.0)
    bad = ~np.isfinite(cents) | (cents < 0)
    return np.where(bad, -1, cents).astype(np.int64)


def _units(series: pd.Series) -> np.ndarray:
    """Units per line; 0 where missing, not whole or not positive."""
    u = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(u) | (u <= 0) | (u != np.floor(u))
    return np.where(bad, 0, u).astype(np.int64)


def _concat(items: list, n: int) -> list[str]:
    """Row by row concatenation of ``items`` (strings, or arrays of ``n`` strings)."""
    columns = [repeat(item, n) if isinstance(item, str) else item.tolist() for item in items]
    return list(map("".join, zip(*columns, strict=True)))


def _groups(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group per row, a representative row per group) of the distinct tuples of codes."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    for c in codes:
        c = np.asarray(c, dtype=np.int64)
        key, _ = pd.factorize(key * (int(c.max(initial=0)) + 1) + c)
    rep = np.empty(int(key.max(initial=-1)) + 1, dtype=np.int64)
    rep[key[::-1]] = np.arange(len(key) - 1, -1, -1)  # first row of each group
    return key, rep


def _codes(values: np.ndarray) -> np.ndarray:
    return pd.factorize(values, use_na_sentinel=False)[0]


@lru_cache(maxsize=4096)
def _sv101(cpt: object, modifiers: tuple) -> str | None:
    """``HC:code[:mod...]`` or None when the code or a modifier is malformed."""
    code = clean_text(cpt)
    mods = [clean_text(m) for m in modifiers]
    if not _CPT.fullmatch(code) or len(mods) > 4 or not all(_MOD.fullmatch(m) for m in mods):
        return None
    return ":".join(["HC", code, *mods])


@lru_cache(maxsize=4096)
def _pointers(pointers: tuple) -> tuple[str, int] | None:
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
def _place(value: object) -> str | None:
    text = clean_text(value)
    return text if _POS.fullmatch(text) else None


def _diagnoses(codes: tuple, institutional: bool) -> tuple[int, str]:
    """(number of codes, the HI segment text) of a claim's diagnosis list."""
    dx = _dx_codes(codes)
    if not dx:
        raise _Invalid("diagnosis_codes", "is empty")
    if len(dx) > MAX_DIAGNOSES:
        raise _Invalid("diagnosis_codes", f"has more than {MAX_DIAGNOSES} codes")
    if institutional:
        other = "HI*" + "*".join("ABF:" + d for d in dx[1:]) + "~\n" if len(dx) > 1 else ""
        return len(dx), f"HI*ABK:{dx[0]}~\n{other}"
    return len(dx), "HI*ABK:" + dx[0] + "".join("*ABF:" + d for d in dx[1:]) + "~\n"


def _modifier_problem(service: str | None, discipline: str) -> _Invalid | None:
    """837I: the revenue code's therapy modifier must be there, and no other one."""
    if service is None:
        return None  # reported as cpt_code/modifiers before
    rev = REVENUE_CODES.get(discipline)
    if rev is None:
        return _Invalid("discipline", "has no outpatient therapy revenue code (PT, OT, SLP)")
    revenue_code, modifier = rev
    line_mods = service.split(":")[2:]
    if modifier not in line_mods:
        return _Invalid("modifiers", f"lack {modifier}, required with revenue code {revenue_code}")
    if any(m in THERAPY_MODIFIERS and m != modifier for m in line_mods):
        return _Invalid("modifiers", f"carry a therapy modifier other than {modifier}")
    return None


class _FirstProblem:
    """The first problem noted per item (claim or line), in the order the checks run."""

    def __init__(self, n: int):
        self.problem = np.full(n, None, dtype=object)
        self.bad = np.zeros(n, dtype=bool)

    def note(self, problems: np.ndarray | None, where: np.ndarray | None = None) -> None:
        """Note ``problems`` (None entries: none), only ``where`` given."""
        if problems is None:
            return
        new = problems.astype(bool) & ~self.bad
        if where is not None:
            new &= where
        if new.any():
            self.problem[new] = problems[new]
            self.bad |= new

    def note_mask(self, mask: np.ndarray, problem: _Invalid) -> None:
        new = mask & ~self.bad
        if new.any():
            self.problem[new] = problem
            self.bad |= new


def _first_seen(values: np.ndarray) -> tuple[np.ndarray, list]:
    """(index of each value among the distinct ones, the distinct ones) by first appearance,
    with dict equality (as a dict keyed by the values would see them)."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # no NA: same as a dict
        codes, uniques = pd.factorize(values)
        return codes, uniques.tolist()
    seen: dict = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), np.int64, len(values))
    return codes, list(seen)


def _relation(value: object) -> str:
    relation = "self" if _is_na(value) else str(value).strip().lower() or "self"
    if relation != "self" and relation not in RELATIONSHIP_PAT01:
        raise _Invalid("subscriber_relationship", "is not self/spouse/child/other")
    return relation


def _sex(value: object) -> str:
    sex = clean_text(value) or "U"
    if sex not in ("M", "F", "U"):
        raise _Invalid("patient_sex", "is not M, F or U")
    return sex


def build_837p(lines: pd.DataFrame, **kw) -> str:
    """Build one 837P interchange (005010X222A1); see :func:`_build` for the arguments."""
    return _build(lines, institutional=False, **kw)


def build_837i(lines: pd.DataFrame, **kw) -> str:
    """Build one 837I interchange (005010X223A2) for outpatient institutional therapy.

    Same arguments as :func:`build_837p`; ``lines`` also needs ``discipline`` (PT/OT/SLP, which
    picks the revenue code 0420/0430/0440; the line must carry the matching GP/GO/GN).
    ``diagnosis_pointers`` and ``place_of_service`` are not used (837I has none). Per claim:
    ``CLM05`` from the clinic's ``type_of_bill`` (``131`` -> ``13:A:1``), ``DTP*434`` statement
    period (first to last line date), ``CL1*3**01``, ``REF*G1`` prior authorisation,
    ``HI*ABK`` then ``HI*ABF`` (other diagnoses), the attending provider (``NM1*71``, the
    first line's clinician), then ``LX``/``SV2``/``DTP*472`` per line, with a 2420C rendering
    provider when a line's clinician differs from the attending one.
    """
    return _build(lines, institutional=True, **kw)


def _build(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    receiver_id: str,
    receiver_name: str,
    interchange_control_number: int,
    created: datetime,
    usage: str = "T",
    rejected: dict[str, str] | None = None,
    placed: dict[str, str] | None = None,
) -> str:
    """Build one 837P (or, with ``institutional``, 837I) interchange (ISA..IEA) for ``lines``; returns ASCII text, ``~\\n`` per segment.

    ``lines`` holds one row per service line (columns: see the module's callers / x12 tests);
    rows sharing a ``claim_id`` form one claim and must share clinic, payer, patient,
    subscriber and diagnosis list (the first row's values are used). ``clinics`` and
    ``payers`` are the frames of ``therapy_claims.reference.load()``, indexed by id.

    The submitter (ISA06, GS02, 1000A) is the clinic of the first claim.

    Raises ``ValueError`` naming the claim and field (never the value) when the input cannot
    make a valid claim, e.g. a required name/address empty after :func:`clean_text`, a ZIP
    that is not 5/9 digits (9 for the billing provider), an NPI failing its check digit, a
    CLM01 / member / group / authorisation number that cleaning would alter (only
    upper-casing is allowed for those), no or more than 12 diagnoses, a pointer outside the
    diagnosis list, more than 50 lines or 4 modifiers, non-positive units, a negative or
    missing charge, or an unknown clinic/payer. Envelope problems (bad control number,
    usage, receiver) raise too.

    With ``rejected`` (a dict), a claim that cannot be written is left out of the file and its
    problem is recorded as ``rejected[claim_id] = message`` instead of raising; the rest of the
    file is still valid. If no claim is left the result is ``""``.

    With ``placed`` (a dict), each written claim is recorded as ``placed[claim_id] = ST02`` of
    the transaction set that carries it (for the claim ledger).

    Free text (names, addresses, cities) is cleaned and cut to the element's length
    (NM103 60, NM104 35, N301 55, N401 30) rather than rejected.
    A line without a rendering NPI is taken as rendered by the claim's renderer; a claim
    whose first line has none, or whose renderer is the billing NPI, gets no 2310B.
    """
    if lines is None or len(lines) == 0:
        raise ValueError("no service lines to bill")
    version = VERSION_I if institutional else VERSION
    if usage not in ("T", "P"):
        raise ValueError(f"usage must be 'T' or 'P', not {usage!r}")
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    try:
        rcv_id = _exact(receiver_id, "receiver_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9")
        rcv_name = _req(receiver_name, "receiver_name", 60)
    except _Invalid as exc:
        raise ValueError(f"claim (envelope): {exc}") from None

    batch = _Batch(lines.reset_index(drop=True), institutional, clinics, payers)
    ids = batch.ids
    for k in batch.failing():
        if rejected is None:
            raise ValueError(batch.message(k))
        rejected[ids[k]] = batch.message(k)
    sets = batch.transaction_sets()
    if not sets:
        return ""
    submitter = batch.clinic_entries[batch.clinic_rank[sets[0][0][0]]]
    sender = submitter["submitter_id"]
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    out = [
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{rcv_id:<15}*{d6}*{hm}*^*00501*"
        f"{icn:09d}*0*{usage}*:~\n"
        f"GS*HC*{sender}*{rcv_id}*{d8}*{hm}*{icn}*X*{version}~\n"
    ]
    for n_set, (claims, body) in enumerate(sets, start=1):
        st02 = f"{n_set:04d}"
        if placed is not None:
            placed.update(dict.fromkeys((ids[k] for k in claims), st02))
        out += [
            f"ST*837*{st02}*{version}~\n"
            f"BHT*0019*00*{icn}{st02}*{d8}*{hm}*CH~\n"
            f"NM1*41*2*{submitter['submitter_name']}*****46*{sender}~\n"
            f"PER*IC*{submitter['submitter_name']}*TE*{submitter['phone']}~\n"
            f"NM1*40*2*{rcv_name}*****46*{rcv_id}~\n",
            body,
            f"SE*{body.count('~') + 6}*{st02}~\n",
        ]
    out.append(f"GE*{len(sets)}*{icn}~\nIEA*1*{icn:09d}~\n")
    text = "".join(out)
    text.encode("ascii")  # guaranteed by clean_text; fail loudly if a path slipped through
    return text


def renumber(text: str, interchange_control_number: int) -> str:
    """The interchange ``text`` (as :func:`build_837p`/:func:`build_837i` give it) with another
    interchange control number: the same bytes as building it with that number. The number is
    in ISA13, GS06, each BHT03 (``<number><ST02>``), GE02 and IEA02; nothing else depends on it,
    so claim files can be built apart and numbered in order afterwards."""
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    isa_end = text.index("~\n") + 2
    gs_end = text.index("~\n", isa_end) + 2
    ge_start = text.rindex("\nGE*", 0, len(text) - 1) + 1
    isa, gs, body, trailer = (
        text[:isa_end],
        text[isa_end:gs_end],
        text[gs_end:ge_start],
        text[ge_start:],
    )
    isa_fields = isa.split("*")
    old = int(isa_fields[13])
    if old == icn:
        return text
    isa_fields[13] = f"{icn:09d}"
    gs_fields = gs.split("*")
    gs_fields[6] = str(icn)
    ge, iea = trailer.splitlines()
    n_sets = ge.split("*")[1]
    return (
        "*".join(isa_fields)
        + "*".join(gs_fields)
        + body.replace(f"\nBHT*0019*00*{old}", f"\nBHT*0019*00*{icn}")
        + f"GE*{n_sets}*{icn}~\nIEA*{iea.split('*')[1]}*{icn:09d}~\n"
    )


class _Batch:
    """The claims of one interchange, worked out column by column.

    Lines are kept grouped by claim ("claim order": claims by first appearance, lines in input
    order); every per-line value is computed once per distinct value, every check over whole
    columns, and each claim's first problem decides whether it is written: checks run in the
    order a claim-by-claim writer meets them (clinic, CLM01, line count, payer, patient,
    subscriber, diagnoses, authorisation, the claim's renderer, its lines in order, then the
    2310B/attending names), so the message is the same. Texts are joined once per set.
    """

    def __init__(
        self, df: pd.DataFrame, institutional: bool, clinics: pd.DataFrame, payers: pd.DataFrame
    ):
        self.institutional = institutional
        n = len(df)
        claim_col = df["claim_id"].astype(object)
        codes, _ = pd.factorize(claim_col, sort=False)
        if (codes < 0).any():
            raise ValueError("a service line has no claim_id")
        order = np.argsort(codes, kind="stable")
        self.sizes = np.bincount(codes)
        self.starts = np.cumsum(self.sizes) - self.sizes  # claim k: lines starts[k]..+sizes[k]
        first = order[self.starts]  # each claim's first row
        self.line_claim = codes[order]
        self.lx = np.arange(n) - np.repeat(self.starts, self.sizes) + 1
        self.ids = [str(v) for v in claim_col.to_numpy()[first]]
        self._lines(df, order)
        self._claims(df, first, claim_col.to_numpy()[first], clinics, payers)

    # ---- per line (in claim order) --------------------------------------------------------
    def _lines(self, df: pd.DataFrame, order: np.ndarray) -> None:
        n = len(df)
        dos_codes, self.dos_str = _d8(df["date_of_service"])
        self.dos = dos_codes[order]
        self.cents = _cents(df["charge_amount"])[order]
        self.units = _units(df["units"])[order]
        mods = df["modifiers"] if "modifiers" in df else np.full(n, None, dtype=object)
        cpt_codes, cpt_keys = _distinct(df["cpt_code"])
        mod_codes, mod_keys = _distinct(mods, listish=True)
        svc, rep = _groups(cpt_codes, mod_codes)
        svc_values = _objects(
            (_sv101(cpt_keys[cpt_codes[r]], mod_keys[mod_codes[r]]) for r in rep), len(rep)
        )
        self.svc = svc[order]
        self.svc_values = svc_values
        if self.institutional:
            self.discipline = _cleaned(df["discipline"])[order]
        else:
            codes, keys = _distinct(df["diagnosis_pointers"], listish=True)
            self.ptr, self.ptr_values = codes[order], _objects(map(_pointers, keys), len(keys))
            codes, keys = _distinct(df["place_of_service"])
            self.place, self.place_values = codes[order], _objects(map(_place, keys), len(keys))
        self.npi = _cleaned(df["rendering_npi"])[order]
        r_last, r_last_problem = _required(df["rendering_last_name"], "rendering_last_name", 60)
        r_first, r_first_problem = _required(df["rendering_first_name"], "rendering_first_name", 35)
        self.r_last, self.r_first = r_last[order], r_first[order]
        self.r_last_problem = None if r_last_problem is None else r_last_problem[order]
        self.r_first_problem = None if r_first_problem is None else r_first_problem[order]

    # ---- per claim (values of its first line) and the checks, in the order they run ------
    def _claims(
        self,
        df: pd.DataFrame,
        first: np.ndarray,
        raw_ids: np.ndarray,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
    ) -> None:
        k = len(first)
        starts, inst = self.starts, self.institutional
        dob_codes, dob_str = _d8(df["patient_dob"])
        self.dob = dob_str[dob_codes[first]]
        if "injury_date" in df:
            inj_codes, inj_str = _d8(df["injury_date"])
            inj_seg = _objects((f"DTP*431*D8*{d}~\n" if d else "" for d in inj_str), len(inj_str))
            self.injury = inj_seg[inj_codes[first]]
        else:
            self.injury = np.full(k, "", dtype=object)

        def values(name: str) -> pd.Series | np.ndarray:
            return df[name].iloc[first] if name in df else np.full(k, None, dtype=object)

        # reference rows, in order of first appearance (claims are written clinic by clinic)
        clinic_ids, payer_ids = (
            np.asarray(values(c), dtype=object) for c in ("clinic_id", "payer_id")
        )
        self.clinic_rank, seen = _first_seen(clinic_ids)
        self.clinic_entries = [_checked(_clinic_entry, clinics, c, inst) for c in seen]
        self.claim_order = np.argsort(self.clinic_rank, kind="stable")
        self.payer_code, seen = _first_seen(payer_ids)
        self.payer_entries = [_checked(_payer_entry, payers, p) for p in seen]
        self.scope_ids = {"clinic": clinic_ids, "payer": payer_ids}
        clinic_problem = _split(_objects(self.clinic_entries, len(self.clinic_entries)))[1]
        payer_problem = _split(_objects(self.payer_entries, len(self.payer_entries)))[1]

        p = self.problems = _FirstProblem(k)
        p.note(_by_row(self.clinic_rank, clinic_problem))
        clm01 = _cleaned(raw_ids, 20)
        p.note_mask(
            (clm01 == "") | (clm01 != np.array(self.ids, dtype=object)),
            _Invalid("claim_id", "must be 1-20 characters of A-Z 0-9 and X12 basic punctuation"),
        )
        max_lines = MAX_LINES_PER_CLAIM_I if inst else MAX_LINES_PER_CLAIM
        p.note_mask(
            self.sizes > max_lines, _Invalid("service lines", f"exceed {max_lines} per claim")
        )
        p.note(_by_row(self.payer_code, payer_problem))
        codes, keys = _distinct(values("subscriber_relationship"))
        relation, problem = _split(_objects((_checked(_relation, v) for v in keys), len(keys)))
        p.note(_by_row(codes, problem))
        self.dependent = (relation != "self")[codes]
        self.pat01 = _objects((RELATIONSHIP_PAT01.get(r, "") for r in relation), len(keys))[codes]
        self.pat_last, problem = _required(values("patient_last_name"), "patient_last_name", 60)
        p.note(problem)
        self.pat_first, problem = _required(values("patient_first_name"), "patient_first_name", 35)
        p.note(problem)
        self.member, problem = _identifiers(values("member_id"), "member_id", 80, 2)
        p.note(problem)
        self.address, problem = _required(values("patient_address"), "patient_address", 55)
        p.note(problem)
        self.city, problem = _required(values("patient_city"), "patient_city", 30, 2)
        p.note(problem)
        self.state, problem = _checked_values(
            lambda v: _state(v, "patient_state"), values("patient_state")
        )
        p.note(problem)
        self.zip, problem = _checked_values(lambda v: _zip(v, "patient_zip"), values("patient_zip"))
        p.note(problem)
        p.note_mask(self.dob == "", _Invalid("patient_dob", "is missing"))
        self.sex, problem = _checked_values(_sex, values("patient_sex"))
        p.note(problem)
        self.group, problem = _identifiers(values("group_number"), "group_number", 50)
        p.note(problem)
        self.sub_last, problem = _required(
            values("subscriber_last_name"), "subscriber_last_name", 60
        )
        p.note(problem, where=self.dependent)
        self.sub_first, problem = _required(
            values("subscriber_first_name"), "subscriber_first_name", 35
        )
        p.note(problem, where=self.dependent)
        dx_codes, dx_keys = _distinct(values("diagnosis_codes"), listish=True)
        dx = _objects((_checked(_diagnoses, d, inst) for d in dx_keys), len(dx_keys))
        dx, problem = _split(dx)
        p.note(_by_row(dx_codes, problem))
        self.n_dx = np.fromiter((d[0] if d else 0 for d in dx), np.int64, len(dx))[dx_codes]
        self.hi = _objects((d[1] if d else "" for d in dx), len(dx))[dx_codes]
        self.auth, problem = _identifiers(values("prior_auth_number"), "prior_auth_number", 50)
        p.note(problem)

        # renderers: the claim's (2310B / attending) is its first line's
        npi_ok = _per_value(_npi_ok, self.npi).astype(bool)
        self.npi0 = self.npi[starts]
        has_npi0 = self.npi0 != ""
        bad_npi = _Invalid("rendering_npi", _BAD_NPI)
        if inst:
            p.note_mask(
                ~has_npi0,
                _Invalid("rendering_npi", "is missing (needed for the attending provider)"),
            )
        p.note_mask(has_npi0 & ~npi_ok[starts], bad_npi)
        p.note(self._line_problems(npi_ok, bad_npi))
        if inst:
            after = np.ones(k, dtype=bool)  # the attending provider, NM1*71
        else:  # 2310B only when it differs from 2010AA
            billing_npi = _objects(
                (e["npi"] if isinstance(e, dict) else "" for e in self.clinic_entries),
                len(self.clinic_entries),
            )[self.clinic_rank]
            after = has_npi0 & (self.npi0 != billing_npi)
        self.renderer2310 = after
        for problem in (self.r_last_problem, self.r_first_problem):
            p.note(None if problem is None else problem[starts], where=after)

    def _line_problems(self, npi_ok: np.ndarray, bad_npi: _Invalid) -> np.ndarray:
        """Each claim's first problem on a service line (lines in order), or None."""
        n = len(self.line_claim)
        p = _FirstProblem(n)
        p.note_mask(self.cents < 0, _Invalid("charge_amount", "is missing or negative"))
        p.note_mask(self.units <= 0, _Invalid("units", "is not a positive whole number"))
        p.note_mask(
            np.equal(self.svc_values, None)[self.svc],
            _Invalid(
                "cpt_code/modifiers", "must be a 5-character code and 0-4 two-character modifiers"
            ),
        )
        p.note_mask((self.dos_str == "")[self.dos], _Invalid("date_of_service", "is missing"))
        claim_npi = self.npi[self.starts][self.line_claim]
        if self.institutional:
            disc_codes = _codes(self.discipline)
            group, rep = _groups(self.svc, disc_codes)
            problem = _objects(
                (_modifier_problem(self.svc_values[self.svc[r]], self.discipline[r]) for r in rep),
                len(rep),
            )
            p.note(_by_row(group, problem))
        else:
            ptr_max = np.fromiter(
                (v[1] if v else MAX_DIAGNOSES + 1 for v in self.ptr_values),
                np.int64,
                len(self.ptr_values),
            )
            p.note_mask(
                ptr_max[self.ptr] > self.n_dx[self.line_claim],
                _Invalid("diagnosis_pointers", "must be 1-4 positions in diagnosis_codes"),
            )
            p.note_mask(
                np.equal(self.place_values, None)[self.place],
                _Invalid("place_of_service", "is not 2 digits"),
            )
        # a line renderer that differs from the claim's: 2420A (837P) / 2420C (837I)
        self.line_renderer = (self.npi != "") & (self.npi != claim_npi)
        p.note(self.r_last_problem, where=self.line_renderer)
        p.note(self.r_first_problem, where=self.line_renderer)
        p.note_mask(self.line_renderer & ~npi_ok, bad_npi)
        bad = np.flatnonzero(p.bad)
        claims, at = np.unique(self.line_claim[bad], return_index=True)
        out = _problems(len(self.starts))
        out[claims] = p.problem[bad[at]]
        return out

    def failing(self):
        """The claims that cannot be written, in claim order.

        Each set's claims are walked as a claim loop would: a claim's clinic id is compared
        (``!=``) with the last written claim's, which raises ``TypeError`` for an id such as
        ``pd.NA``. All-string ids cannot raise, so they skip the walk.
        """
        order, bad = self.claim_order.tolist(), self.problems.bad
        clinic_ids = self.scope_ids["clinic"]
        if pd.api.types.infer_dtype(clinic_ids, skipna=False) == "string":
            yield from (k for k in order if bad[k])
            return
        current: object = None
        for at, k in enumerate(order):
            if at % MAX_CLAIMS_PER_ST == 0:
                current = object()  # a new transaction set
            changed = bool(clinic_ids[k] != current)
            if bad[k]:
                yield k
            elif changed:
                current = clinic_ids[k]

    def message(self, k: int) -> str:
        """The ``ValueError`` text for claim k's first problem."""
        problem = self.problems.problem[k]
        scope = f" ({problem.scope} {self.scope_ids[problem.scope][k]})" if problem.scope else ""
        return f"claim {self.ids[k]}{scope}: {problem}"

    # ---- texts ------------------------------------------------------------------------------
    def transaction_sets(self) -> list[tuple[np.ndarray, str]]:
        """``(claims, body)`` per transaction set that has a claim to write, in order.

        A set takes ``MAX_CLAIMS_PER_ST`` claims of the claim order (written or not); HL
        numbers restart in each set, with a 2000A billing provider HL whenever the clinic
        changes. The body runs from the first 2000A HL to the last claim's last segment.
        """
        ok = ~self.problems.bad[self.claim_order]
        w = self.claim_order[ok]  # the claims written, in file order
        if not len(w):
            return []
        n_w = len(w)
        at = np.arange(n_w)
        st = np.flatnonzero(ok) // MAX_CLAIMS_PER_ST
        new_set = np.r_[True, st[1:] != st[:-1]]
        rank = self.clinic_rank[w]
        header = new_set | np.r_[True, rank[1:] != rank[:-1]]
        dep = self.dependent[w]
        step = header.astype(np.int64) + 1 + dep
        before = np.cumsum(step) - step
        hl = 1 + before - before[np.maximum.accumulate(np.where(new_set, at, 0))]
        hl_sub = hl + header
        parent = hl[np.maximum.accumulate(np.where(header, at, 0))]
        num = _objects(map(str, range(int(hl_sub.max()) + 2)), int(hl_sub.max()) + 2)

        hdr = np.full(n_w, "", dtype=object)
        blocks = [_billing_provider(e) if isinstance(e, dict) else "" for e in self.clinic_entries]
        for j in np.flatnonzero(header):
            hdr[j] = f"HL*{hl[j]}**20*1~\n{blocks[rank[j]]}"
        payer = self.payer_entries
        pcode = self.payer_code[w]
        sbr09 = _objects((e["sbr09"] if isinstance(e, dict) else "" for e in payer), len(payer))
        pr = _objects(
            (
                f"NM1*PR*2*{e['name']}*****PI*{e['id']}~\n" if isinstance(e, dict) else ""
                for e in payer
            ),
            len(payer),
        )
        demographics = [
            "~\nN3*", self.address[w], "~\nN4*", self.city[w], "*", self.state[w], "*",
            self.zip[w], "~\nDMG*D8*", self.dob[w], "*", self.sex[w], "~\n",
        ]  # fmt: skip
        common = [hdr, "HL*", num[hl_sub], "*", num[parent]]
        self_items = [
            *common, "*22*0~\nSBR*P*18*", self.group[w], "******", sbr09[pcode],
            "~\nNM1*IL*1*", self.pat_last[w], "*", self.pat_first[w], "****MI*", self.member[w],
            *demographics, pr[pcode],
        ]  # fmt: skip
        dep_items = [
            *common, "*22*1~\nSBR*P**", self.group[w], "******", sbr09[pcode],
            "~\nNM1*IL*1*", self.sub_last[w], "*", self.sub_first[w], "****MI*", self.member[w],
            "~\n", pr[pcode], "HL*", num[hl_sub + 1], "*", num[hl_sub], "*23*0~\nPAT*",
            self.pat01[w], "~\nNM1*QC*1*", self.pat_last[w], "*", self.pat_first[w],
            *demographics,
        ]  # fmt: skip
        # the demographics' leading "~\n" ends NM1*IL (self) or NM1*QC (dependant)
        lines = self._written_lines(w)
        claim_items = self._claim_items(w, lines)
        self_items += claim_items
        dep_items += claim_items

        n_lines = self.sizes[w]
        size = 1 + 3 * n_lines  # the claim's text up to its first LX, then 3 pieces a line
        base = np.cumsum(size) - size
        pieces = np.empty(int(size.sum()), dtype=object)
        for sel, items in ((~dep, self_items), (dep, dep_items)):
            pieces[base[sel]] = _concat(
                [item if isinstance(item, str) else item[sel] for item in items], int(sel.sum())
            )
        line_at = np.repeat(base + 1, n_lines) + 3 * (self.lx[lines] - 1)
        lx = self.lx[lines]
        pieces[line_at] = _objects((f"LX*{i}~\n" for i in range(lx.max() + 1)), lx.max() + 1)[lx]
        pieces[line_at + 1] = self._line_bodies(lines)
        renderer = np.full(len(lines), "", dtype=object)
        need = self.line_renderer[lines]
        renderer[need] = self._renderers(lines[need])
        pieces[line_at + 2] = renderer
        set_at = np.flatnonzero(new_set)
        ends = np.r_[base[set_at[1:]], len(pieces)]
        return [
            (w[a:b], "".join(pieces[p0:p1].tolist()))
            for a, b, p0, p1 in zip(set_at, np.r_[set_at[1:], n_w], base[set_at], ends, strict=True)
        ]

    def _written_lines(self, w: np.ndarray) -> np.ndarray:
        """Positions (claim order) of the lines of claims ``w``, claim after claim."""
        n_lines = self.sizes[w]
        offsets = np.cumsum(n_lines) - n_lines
        return np.repeat(self.starts[w] - offsets, n_lines) + np.arange(int(n_lines.sum()))

    def _renderers(self, rows: np.ndarray, entity: str = "82") -> np.ndarray:
        """``NM1*82`` (837P: with ``PRV*PE``) of the rendering provider of each line in rows."""
        clinic = self.clinic_rank[self.line_claim[rows]]
        key, rep = _groups(
            _codes(self.r_last[rows]),
            _codes(self.r_first[rows]),
            _codes(self.npi[rows]),
            np.zeros(len(rows)) if self.institutional else clinic,
        )
        texts = []
        for r in rep:
            row = rows[r]
            text = f"NM1*{entity}*1*{self.r_last[row]}*{self.r_first[row]}****XX*{self.npi[row]}~\n"
            if not self.institutional:
                text += f"PRV*PE*PXC*{self.clinic_entries[clinic[r]]['taxonomy']}~\n"
            texts.append(text)
        return _objects(texts, len(texts))[key]

    def _claim_items(self, w: np.ndarray, lines: np.ndarray) -> list:
        """Pieces of the 2300 loop (CLM up to the first LX) of claims ``w``."""
        first = self.starts[w]
        n_lines = self.sizes[w]
        offsets = np.cumsum(n_lines) - n_lines
        cents = self.cents[lines]
        if cents.max() > np.iinfo(np.int64).max // MAX_LINES_PER_CLAIM_I:
            cents = cents.astype(object)  # integer sums that int64 cannot hold
        codes, totals = pd.factorize(np.add.reduceat(cents, offsets))
        total = _objects((_money(int(t)) for t in totals), len(totals))[codes]
        ids = np.array(self.ids, dtype=object)[w]
        auth = self.auth[w]
        has_auth = auth != ""
        ref_g1 = [np.where(has_auth, "REF*G1*", ""), auth, np.where(has_auth, "~\n", "")]
        if self.institutional:
            clm05 = _objects(
                (e["clm05"] if isinstance(e, dict) else "" for e in self.clinic_entries),
                len(self.clinic_entries),
            )[self.clinic_rank[w]]
            by_date = np.argsort(self.dos_str, kind="stable")
            date_rank = np.empty(len(by_date), dtype=np.int64)
            date_rank[by_date] = np.arange(len(by_date))
            ranks = date_rank[self.dos[lines]]
            first_date = self.dos_str[by_date[np.minimum.reduceat(ranks, offsets)]]
            last_date = self.dos_str[by_date[np.maximum.reduceat(ranks, offsets)]]
            return [
                "CLM*", ids, "*", total, "***", clm05, "**A*Y*Y~\nDTP*434*RD8*", first_date,
                "-", last_date, "~\nCL1*3**01~\n", *ref_g1, self.hi[w],
                self._renderers(first, "71"),
            ]  # fmt: skip
        claim_pos = self.place_values[self.place[first]]
        rendering = np.full(len(w), "", dtype=object)
        need = self.renderer2310[w]
        rendering[need] = self._renderers(first[need])
        return [
            "CLM*", ids, "*", total, "***", claim_pos, ":B:1*Y*A*Y*Y~\n", self.injury[w],
            *ref_g1, self.hi[w], rendering,
        ]  # fmt: skip

    def _line_bodies(self, lines: np.ndarray) -> np.ndarray:
        """``SV1``/``SV2`` and ``DTP*472`` of each line, built once per distinct line."""
        cents_code = pd.factorize(self.cents[lines])[0]
        units_code = pd.factorize(self.units[lines])[0]
        svc, dos = self.svc[lines], self.dos[lines]
        if self.institutional:
            discipline = self.discipline[lines]
            key, rep = _groups(svc, cents_code, units_code, _codes(discipline), dos)
            texts = [
                f"SV2*{REVENUE_CODES[discipline[r]][0]}*{self.svc_values[svc[r]]}*"
                f"{_money(int(self.cents[lines[r]]))}*UN*{self.units[lines[r]]}~\n"
                f"DTP*472*D8*{self.dos_str[dos[r]]}~\n"
                for r in rep
            ]
        else:
            place = self.place[lines]
            claim_place = self.place[self.starts[self.line_claim[lines]]]
            same = self.place_values[place] == self.place_values[claim_place]
            ptr = self.ptr[lines]
            key, rep = _groups(svc, cents_code, units_code, np.where(same, 0, place + 1), ptr, dos)
            texts = [
                f"SV1*{self.svc_values[svc[r]]}*{_money(int(self.cents[lines[r]]))}*UN*"
                f"{self.units[lines[r]]}*{'' if same[r] else self.place_values[place[r]]}**"
                f"{self.ptr_values[ptr[r]][0]}~\nDTP*472*D8*{self.dos_str[dos[r]]}~\n"
                for r in rep
            ]
        return _objects(texts, len(texts))[key]


def _billing_provider(e: dict[str, str]) -> str:
    """2000A after its HL: PRV, NM1*85, N3, N4, REF*EI."""
    return (
        f"PRV*BI*PXC*{e['taxonomy']}~\nNM1*85*2*{e['name']}*****XX*{e['npi']}~\n"
        f"N3*{e['address']}~\nN4*{e['city']}*{e['state']}*{e['zip']}~\nREF*EI*{e['tax_id']}~\n"
    )
