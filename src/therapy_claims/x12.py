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
* Speed (a night is ~1M lines): nothing runs per segment, nor per claim or line in Python.
  Each column is cleaned/checked once per distinct value (dictionary-encoded by pyarrow; most
  values are already clean: a pyarrow regex lets them through), checks run over whole columns
  with each claim keeping its first problem in the order a claim-by-claim writer would meet
  them, and the text is joined by pyarrow from columns of codes into few distinct texts
  (``_Texts``): per claim, per distinct service line, then once for the whole interchange.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from functools import lru_cache

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


_NOT_ZIP = "is not 5 or 9 digits"


def _zip(value: object, field: str, nine: bool = False) -> str:
    z = _digits(value)
    if len(z) not in ((9,) if nine else (5, 9)):
        raise _Invalid(field, "is not a 9-digit ZIP+4" if nine else _NOT_ZIP)
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


def _arrow(series: pd.Series) -> pa.Array | None:
    """The pyarrow string array of a pandas string column (None for other columns)."""
    if not isinstance(series.dtype, pd.StringDtype):
        return None
    arr = pa.array(series.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


_Values = pd.Series | np.ndarray | pa.Array


def _encode(
    values: _Values, listish: bool = False
) -> tuple[np.ndarray, np.ndarray, pa.Array | None]:
    """``_distinct`` plus, for values from pyarrow, the keys (but the last, ``None``) as a
    pyarrow string array, so vectorised checks of the keys need not convert them back."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        values = _arrow(values)
    if isinstance(values, pa.Array):  # encoded by pyarrow, Python strings only for the keys
        encoded = pc.dictionary_encode(values)
        n_keys = len(encoded.dictionary)
        codes = encoded.indices.fill_null(n_keys).to_numpy(zero_copy_only=False)
        keys = np.empty(n_keys + 1, dtype=object)  # the last, None, stands for NA
        keys[:n_keys] = encoded.dictionary.to_numpy(zero_copy_only=False)
        if listish:
            return codes.astype(np.int64), _objects(map(_as_tuple, keys), len(keys)), None
        return codes.astype(np.int64), keys, encoded.dictionary
    return (*_distinct(values, listish), None)


def _distinct(values: _Values, listish: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, keys)`` with ``values[i]`` standing for ``keys[codes[i]]``.

    Strings share a key when equal and every NA becomes the key ``None`` (this module treats
    all NAs alike); with ``listish`` the keys are ``tuple(_listish(value))``. Other values are
    each their own key, so a function of the key always equals the function of the value.
    """
    if isinstance(values, pa.Array) or (
        isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype)
    ):
        return _encode(values, listish)[:2]
    if listish and isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        by_content = _list_codes(values)
        if by_content is not None:
            codes, rep = by_content
            cells = values.iloc[rep].to_numpy(dtype=object)
            return codes, _objects(map(_as_tuple, cells), len(cells))
    if isinstance(values, pd.Series):
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


def _list_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, first row per code) of a pyarrow ``list<string>`` column, equal codes for equal
    lists (a missing list is an empty one), numbered by first appearance; None for other
    columns or when an item is missing or holds the separator used here."""
    arrow_type = values.dtype.pyarrow_dtype
    if not (
        (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type))
        and (
            pa.types.is_string(arrow_type.value_type)
            or pa.types.is_large_string(arrow_type.value_type)
        )
    ):
        return None
    lists = pa.array(values.array)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    items = pc.list_flatten(lists)
    if items.null_count or pc.any(pc.match_substring(items, "\x1f")).as_py():
        return None
    size = pc.cast(pc.fill_null(pc.list_value_length(lists), 0), pa.string())
    key = pc.binary_join_element_wise(size, pc.fill_null(pc.binary_join(lists, "\x1f"), ""), ":")
    codes = pc.dictionary_encode(key).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    rep = np.empty(int(codes.max(initial=-1)) + 1, dtype=np.int64)
    rep[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # first row of each list
    return codes, rep


def _is_clean(keys: np.ndarray, max_len: int | None, strings: pa.Array | None = None) -> np.ndarray:
    """Which keys ``clean_text(key, max_len)`` returns unchanged (vectorised; False if unsure).

    ``strings``: the keys but the last (``None``) as pyarrow strings, if at hand (``_encode``).
    """
    if strings is None:
        try:
            arr = pa.array(keys, type=pa.string(), from_pandas=True)
        except (pa.ArrowException, UnicodeError):
            return np.zeros(len(keys), dtype=bool)
    else:
        arr = strings
    ok = pc.match_substring_regex(arr, _CLEAN_RE)
    if max_len is not None:
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(arr), max_len))
    ok = ok.fill_null(False).to_numpy(zero_copy_only=False)
    return ok if strings is None else np.append(ok, False)


_LARGE = pa.large_string()


def _large(texts: np.ndarray | list) -> pa.Array:
    """Python strings as pyarrow large strings."""
    arr = pa.array(texts, pa.string()).cast(_LARGE)
    if arr.null_count:
        raise TypeError("a text of the file is None")  # a bug: every text is a str
    return arr


class _Texts:
    """A text per row, kept as a code into few distinct texts: row i's is ``texts[codes[i]]``.

    Values are cleaned and checked once per distinct value, and the file is joined by pyarrow
    from such columns (:meth:`take`), so a row's text needs no Python string of its own.
    ``strings`` (optional) holds the first texts as pyarrow strings, except at the positions
    ``changed``: the keys of ``_encode``, of which cleaning changed a few, need no conversion.
    Texts made by pyarrow come as ``arrow`` instead of ``texts``.
    """

    def __init__(
        self,
        codes: np.ndarray,
        texts: np.ndarray | None = None,
        strings: pa.Array | None = None,
        changed: np.ndarray | tuple = (),
        arrow: pa.Array | None = None,
    ):
        self.codes, self._texts = codes, texts
        self._strings = strings
        self._changed = np.asarray(changed, dtype=np.int64)  # positions, not a mask
        self._arrow = arrow

    @property
    def texts(self) -> np.ndarray:
        """The distinct texts (an object array)."""
        if self._texts is None:
            self._texts = self._arrow.to_numpy(zero_copy_only=False)
        return self._texts

    @property
    def n_texts(self) -> int:
        return len(self._arrow if self._texts is None else self._texts)

    def arrow(self) -> pa.Array:
        """The distinct texts as pyarrow large strings."""
        if self._arrow is None:
            if self._strings is None:
                self._arrow = _large(self.texts)
            else:
                known = len(self._strings)
                arr = pa.concat_arrays([self._strings.cast(_LARGE), _large(self.texts[known:])])
                changed = np.zeros(len(self.texts), dtype=bool)
                changed[self._changed] = True
                changed[known:] = False
                if changed.any():
                    arr = pc.replace_with_mask(arr, pa.array(changed), _large(self.texts[changed]))
                self._arrow = arr
        return self._arrow

    def lengths(self) -> np.ndarray:
        """The length of each distinct text."""
        if self._strings is None:
            return _lengths(self.texts)
        known = len(self._strings)
        size = np.empty(len(self.texts), dtype=np.int64)
        size[:known] = pc.utf8_length(self._strings).to_numpy(zero_copy_only=False)
        for i in [*self._changed.tolist(), *range(known, len(self.texts))]:
            size[i] = len(self.texts[i])
        return size

    def recode(self, codes: np.ndarray) -> _Texts:
        """The same texts (converted once) for other rows: ``codes``."""
        return _Texts(codes, self._texts, arrow=self.arrow())

    def take(self, rows: np.ndarray, prefix: str = "", suffix: str = "") -> pa.Array:
        """The texts of ``rows`` (pyarrow large strings), each as ``prefix + text + suffix``
        (joined once per distinct text)."""
        texts = self.arrow()
        if prefix or suffix:
            texts = _join([prefix, texts, suffix])
        return texts.take(self.codes[rows])


def _blank(n: int) -> _Texts:
    """``n`` empty texts."""
    return _Texts(np.zeros(n, dtype=np.int64), np.array([""], dtype=object))


def _join(items: list) -> pa.Array:
    """Row by row concatenation of ``items``: strings and pyarrow string arrays of one length."""
    return pc.binary_join_element_wise(
        *(pa.scalar(i, _LARGE) if isinstance(i, str) else i for i in items),
        pa.scalar("", _LARGE),
    )


def _join_columns(items: list, rows: np.ndarray) -> pa.Array:
    """Row by row concatenation of ``items`` (strings and ``_Texts``) for ``rows``.

    A string next to a column of few distinct texts is joined onto those texts (once per
    distinct text: as the suffix of the column before it, else as the prefix of the one
    after), so pyarrow joins fewer pieces per row; other strings are joined per row.
    """

    def few(texts: _Texts) -> bool:
        return 4 * texts.n_texts <= len(rows)

    columns: list = []  # strings, and [prefix, _Texts, suffix]
    for item in items:
        last = columns[-1] if columns else None
        if isinstance(item, str):
            if isinstance(last, list) and few(last[1]):
                last[2] += item
            else:
                columns.append(item)
        elif isinstance(last, str) and few(item):
            columns[-1] = [last, item, ""]
        else:
            columns.append(["", item, ""])
    return _join([c if isinstance(c, str) else c[1].take(rows, c[0], c[2]) for c in columns])


def _join_distinct(items: list, rows: np.ndarray) -> pa.Array:
    """``_join_columns(items, rows)``, joining each distinct combination of the columns'
    texts once (for rows that repeat: a night has few distinct service lines)."""
    key, rep = _groups(*(i.codes[rows] for i in items if not isinstance(i, str)))
    return _join_columns(items, rows[rep]).take(key)


def _join_runs(texts: pa.Array, sizes: np.ndarray) -> pa.Array:
    """The concatenation of each run of consecutive ``texts``, runs of ``sizes``."""
    offsets = pa.array(np.r_[0, np.cumsum(sizes)], pa.int64())
    return pc.binary_join(pa.LargeListArray.from_arrays(offsets, texts), pa.scalar("", _LARGE))


# _money's text after the point, by cents 0..99: "", ".01" .. ".09", ".1", ".11" ..
_FRACTIONS = ["" if f == 0 else f".{f:02d}".rstrip("0") for f in range(100)]


def _money_texts(cents: np.ndarray) -> _Texts:
    """``_money`` of each amount (integer cents), as texts by position; int64 amounts are
    formatted by pyarrow, the (rare) larger Python ints by ``_money``."""
    positions = np.arange(len(cents))
    if cents.dtype == object:
        return _Texts(positions, _objects((_money(int(c)) for c in cents), len(cents)))
    whole, fraction = np.divmod(np.abs(cents), 100)
    texts = _join([
        pa.array(np.where(cents < 0, "-", "")).cast(_LARGE),
        pc.cast(pa.array(whole), _LARGE),
        _large(_FRACTIONS).take(fraction),
    ])  # fmt: skip
    return _Texts(positions, arrow=texts)


def _segment_counts(texts: pa.Array, sizes: np.ndarray) -> np.ndarray:
    """The ``~`` (segment ends) in each run of consecutive ``texts`` (large strings), runs of
    ``sizes``: counted on pyarrow's bytes, quicker than ``str.count``."""
    _, offsets, data = texts.buffers()
    offsets = np.frombuffer(offsets, np.int64)[texts.offset : texts.offset + len(texts) + 1]
    ends = offsets[np.r_[0, np.cumsum(sizes)]]
    data = np.frombuffer(data, np.uint8)
    return np.array(
        [np.count_nonzero(data[a:b] == ord("~")) for a, b in zip(ends[:-1], ends[1:], strict=True)],
        dtype=np.int64,
    )


class _Sets:
    """The transaction sets to write, in order: each set's claims and segments (from its
    first 2000A HL to its last claim's end), and the claims' texts as pyarrow string columns
    (file order) that joined make the sets' bodies."""

    def __init__(self, claims: list[np.ndarray], segments: list[int], columns: list[pa.Array]):
        self.claims, self.segments, self.columns = claims, segments, columns

    def text(self, before: list[str], after: list[str]) -> str:
        """The sets, each between its ``before`` and ``after`` text, as one string (joined
        by pyarrow, which copies the text once, and once more into Python)."""
        sizes = np.array([len(c) for c in self.claims])
        ends = np.cumsum(sizes)
        head = np.zeros(int(ends[-1]), dtype=np.int64)
        head[ends - sizes] = np.arange(1, len(sizes) + 1)
        tail = np.zeros(int(ends[-1]), dtype=np.int64)
        tail[ends - 1] = np.arange(1, len(sizes) + 1)
        claims = _join([
            _large(["", *before]).take(head), *self.columns, _large(["", *after]).take(tail)
        ])  # fmt: skip
        self.columns = []  # joined: let them go before the text is copied twice more
        return _join_runs(claims, ends[-1:]).to_pylist()[0]


def _cleaned(values: _Values, max_len: int | None = None) -> _Texts:
    """``clean_text(value, max_len)`` of every value."""
    codes, keys, strings = _encode(values)
    texts = keys.copy()
    dirty = np.flatnonzero(~_is_clean(keys, max_len, strings))
    for i in dirty:
        texts[i] = clean_text(keys[i], max_len)
    return _Texts(codes, texts, strings, dirty)


def _text_codes(texts: _Texts) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct texts): two rows share a code iff their texts are equal (distinct
    values may clean to one text), so codes can be compared instead of texts."""
    same, distinct = pd.factorize(texts.texts)
    return same[texts.codes], np.asarray(distinct, dtype=object)


def _lengths(texts: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def _problems(n: int, mask: np.ndarray | None = None, problem: _Invalid | None = None):
    """An object array of ``problem`` where ``mask`` holds, else None."""
    out = np.full(n, None, dtype=object)
    if mask is not None:
        out[mask] = problem
    return out


class _PerRow:
    """Problems (or None) per row as ``problems[codes[row]]``: kept per key, not per row."""

    def __init__(self, codes: np.ndarray, problems: np.ndarray):
        self.codes, self.problems = codes, problems

    def __getitem__(self, rows: np.ndarray) -> _PerRow:
        return _PerRow(self.codes[rows], self.problems)

    def mask(self) -> np.ndarray:
        """Which rows have a problem."""
        return np.not_equal(self.problems, None)[self.codes]

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self.problems[self.codes[rows]]


def _by_row(codes: np.ndarray, problems: np.ndarray) -> _PerRow | None:
    """Per-key problems as per-row ones; None when no key has a problem."""
    return _PerRow(codes, problems) if np.not_equal(problems, None).any() else None


def _required(
    values: _Values, field: str, max_len: int, min_len: int = 1
) -> tuple[_Texts, np.ndarray | None]:
    """``_req`` of every value: (texts, problems per value or None)."""
    texts = _cleaned(values, max_len)
    size = texts.lengths()
    problems = _problems(
        len(size),
        size < min_len,
        _Invalid(field, f"is shorter than {min_len} characters after cleaning"),
    )
    problems[size == 0] = _Invalid(field, _EMPTY)
    return texts, _by_row(texts.codes, problems)


def _identifiers(
    values: _Values, field: str, max_len: int, min_len: int = 0
) -> tuple[_Texts, np.ndarray | None]:
    """``_ident`` of every value: (texts, problems per value or None)."""
    codes, keys, strings = _encode(values)
    clean = _is_clean(keys, None, strings)
    texts = keys.copy()
    problems = _problems(len(keys))
    dirty = np.flatnonzero(~clean)
    for i in dirty:
        got = _checked(_ident, keys[i], field, max_len, min_len)
        texts[i], problems[i] = ("", got) if isinstance(got, _Invalid) else (got, None)
    texts = _Texts(codes, texts, strings, dirty)
    size = texts.lengths()
    problems[clean & ((size < min_len) | (size > max_len))] = _Invalid(
        field, f"must be {min_len or 1}-{max_len} characters"
    )
    return texts, _by_row(codes, problems)


def _split(results: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, problems) from an array of values or ``_Invalid`` (values '' where invalid)."""
    bad = np.fromiter((isinstance(r, _Invalid) for r in results), bool, len(results))
    values, problems = results.copy(), _problems(len(results))
    problems[bad], values[bad] = results[bad], ""
    return values, problems


def _matching(keys: np.ndarray, pattern: str, strings: pa.Array | None = None) -> np.ndarray:
    """Which keys are strings that ``pattern`` (an RE2 regex, anchored) matches (vectorised).

    ``strings``: the keys but the last (``None``) as pyarrow strings, if at hand (``_encode``).
    """
    if strings is None:
        if pd.api.types.infer_dtype(keys, skipna=True) not in ("string", "empty"):
            return np.zeros(len(keys), dtype=bool)
        arr = pa.array(keys, type=pa.string(), from_pandas=True)
    else:
        arr = strings
    ok = pc.match_substring_regex(arr, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    return ok if strings is None else np.append(ok, False)


def _checked_values(
    fn, values: _Values, listish: bool = False, unchanged: str | None = None
) -> tuple[_Texts, np.ndarray | None]:
    """``fn`` (giving a str) of every value, once per distinct value: (texts, problems or
    None); '' where ``fn`` raises ``_Invalid``.

    ``unchanged``: a regex of strings that ``fn`` returns as they are (e.g. a 5-digit ZIP);
    those are matched by pyarrow, so ``fn`` only runs on the other values.
    """
    codes, keys, strings = _encode(values, listish)
    results, problems = keys.copy(), _problems(len(keys))
    todo = np.arange(len(keys))
    if unchanged is not None:
        todo = np.flatnonzero(~_matching(keys, unchanged, strings))
    for i in todo:
        got = _checked(fn, keys[i])
        results[i], problems[i] = ("", got) if isinstance(got, _Invalid) else (got, None)
    return _Texts(codes, results, strings, todo), _by_row(codes, problems)


def _zips(values: _Values, field: str) -> tuple[_Texts, np.ndarray | None]:
    """``_zip(value, field)`` of every value, once per distinct value: (texts, problems or
    None). pyarrow strips the non-digits of ASCII strings (on ASCII its ``\\D`` is Python's);
    ``_zip`` does the other values."""
    codes, keys, strings = _encode(values)
    results, problems = keys.copy(), _problems(len(keys))
    todo = np.ones(len(keys), dtype=bool)
    if strings is not None:  # the keys but the last (None)
        quick = np.flatnonzero(pc.string_is_ascii(strings).to_numpy(zero_copy_only=False))
        digits = pc.replace_substring_regex(strings, r"\D", "").take(quick)
        size = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
        results[quick] = digits.to_numpy(zero_copy_only=False)
        bad = quick[(size != 5) & (size != 9)]
        results[bad], problems[bad] = "", _Invalid(field, _NOT_ZIP)
        todo[quick] = False
    for i in np.flatnonzero(todo):
        got = _checked(_zip, keys[i], field)
        results[i], problems[i] = ("", got) if isinstance(got, _Invalid) else (got, None)
    return _Texts(codes, results), _by_row(codes, problems)


def _d8(series: pd.Series, rows: np.ndarray | None = None) -> _Texts:
    """CCYYMMDD of every value (only of ``rows``, if given); '' for NaT.

    A column that is not datetime64 is parsed whole (text dates: pandas infers one format from
    the column); each distinct date is formatted once.
    """
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "M":  # numpy datetime64
        s = series.to_numpy()
        s = s if rows is None else s[rows]
    else:
        s = pd.to_datetime(series, errors="coerce")
        s = s if rows is None else s.iloc[rows]
    codes, uniques = pd.factorize(s)
    codes = np.where(codes < 0, len(uniques), codes)
    dates = pd.Index(uniques)
    if isinstance(dates, pd.DatetimeIndex) and dates.tz is None and len(dates):
        days = dates.to_numpy().astype("datetime64[D]")
        months, years = days.astype("datetime64[M]"), days.astype("datetime64[Y]")
        year = years.astype(np.int64) + 1970
        if 1000 <= year.min() and year.max() <= 9999:
            # 4-digit years: the number yyyymmdd is the text (quicker than strftime)
            month = (months - years).astype(np.int64) + 1
            number = year * 10000 + month * 100 + (days - months).astype(np.int64) + 1
            strings = pc.cast(pa.array(number), pa.string())
            return _Texts(codes, np.append(strings.to_numpy(zero_copy_only=False), ""), strings)
    return _Texts(codes, np.append(dates.strftime("%Y%m%d").to_numpy(dtype=object), ""))


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


def _groups(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group per row, a representative row per group) of the distinct tuples of codes
    (non-negative), groups numbered by first appearance."""
    key, size = np.zeros(len(codes[0]), dtype=np.int64), 1
    for c in codes:
        c = np.asarray(c, dtype=np.int64)
        n = int(c.max(initial=0)) + 1
        if size * n >= 1 << 62:  # number the tuples so far, so the key stays in int64
            key, uniques = pd.factorize(key)
            size = len(uniques)
        key, size = key * n + c, size * n
    key, _ = pd.factorize(key)
    rep = np.empty(int(key.max(initial=-1)) + 1, dtype=np.int64)
    rep[key[::-1]] = np.arange(len(key) - 1, -1, -1)  # first row of each group
    return key, rep


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

    def note(self, problems: np.ndarray | _PerRow | None, where: np.ndarray | None = None) -> None:
        """Note ``problems`` (None entries: none), only ``where`` given."""
        if problems is None:
            return
        per_row = isinstance(problems, _PerRow)
        new = (problems.mask() if per_row else np.not_equal(problems, None)) & ~self.bad
        if where is not None:
            new &= where
        if new.any():
            self.problem[new] = problems.at(new) if per_row else problems[new]
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
    if sets is None:
        return ""
    submitter = batch.clinic_entries[batch.clinic_rank[sets.claims[0][0]]]
    sender = submitter["submitter_id"]
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    before, after = [], []  # each set's text before and after its body
    for n_set, (claims, segments) in enumerate(zip(sets.claims, sets.segments, strict=True), 1):
        st02 = f"{n_set:04d}"
        if placed is not None:
            placed.update(dict.fromkeys(ids[claims].tolist(), st02))
        before.append(
            f"ST*837*{st02}*{version}~\n"
            f"BHT*0019*00*{icn}{st02}*{d8}*{hm}*CH~\n"
            f"NM1*41*2*{submitter['submitter_name']}*****46*{sender}~\n"
            f"PER*IC*{submitter['submitter_name']}*TE*{submitter['phone']}~\n"
            f"NM1*40*2*{rcv_name}*****46*{rcv_id}~\n"
        )
        after.append(f"SE*{segments + 6}*{st02}~\n")
    before[0] = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{rcv_id:<15}*{d6}*{hm}*^*00501*"
        f"{icn:09d}*0*{usage}*:~\n"
        f"GS*HC*{sender}*{rcv_id}*{d8}*{hm}*{icn}*X*{version}~\n"
    ) + before[0]
    after[-1] += f"GE*{len(sets.claims)}*{icn}~\nIEA*1*{icn:09d}~\n"
    text = sets.text(before, after)
    if not text.isascii():  # guaranteed by clean_text; fail loudly if a path slipped through
        text.encode("ascii")
    return text


def control_number(run_date: date, sequence: int) -> int:
    """ISA13/GS06: YYDDD of the run date then a 4-digit sequence. The same inputs give the same
    numbers; another run date never reuses them (until the two-digit year wraps in 100 years)."""
    if not 1 <= sequence <= 9999:
        raise ValueError(f"too many claim files for one night ({sequence})")
    return int(run_date.strftime("%y%j")) * 10000 + sequence


def unwritable_claims(
    lines: pd.DataFrame, *, institutional: bool, clinics: pd.DataFrame, payers: pd.DataFrame
) -> dict[str, str]:
    """The claims of ``lines`` (as ``build_837p``/``build_837i`` take them) that the writer
    would leave out, with the reason it would give: ``{claim_id: message}``."""
    if len(lines) == 0:
        return {}
    batch = _Batch(lines.reset_index(drop=True), institutional, clinics, payers)
    return {batch.ids[k]: batch.message(k) for k in batch.failing()}


def renumber(text: str | bytes, interchange_control_number: int) -> str | bytes:
    """The interchange ``text`` (as :func:`build_837p`/:func:`build_837i` give it, or those
    bytes) with another interchange control number: the same text (or bytes) as building it
    with that number. The number is in ISA13, GS06, each BHT03 (``<number><ST02>``), GE02 and
    IEA02; nothing else depends on it, so claim files can be built apart and numbered in order
    afterwards. The file is copied once, with the numbers patched in."""
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    data = text.encode("ascii") if isinstance(text, str) else text
    isa_end = data.index(b"~\n") + 2
    gs_end = data.index(b"~\n", isa_end) + 2
    ge_start = data.rindex(b"\nGE*", 0, len(data) - 1) + 1

    def element(start: int, stop: int, n: int) -> tuple[int, int]:
        """Where element ``n`` of the segment in ``data[start:stop]`` starts and ends."""
        at = start - 1
        for _ in range(n):
            at = data.index(b"*", at + 1, stop)
        return at + 1, data.index(b"*", at + 1, stop)

    isa13 = element(0, isa_end, 13)
    old = int(data[isa13[0] : isa13[1]])
    if old == icn:
        return text
    new = str(icn).encode()
    edits = [(*isa13, b"%09d" % icn), (*element(isa_end, gs_end, 6), new)]
    bht = b"\nBHT*0019*00*" + str(old).encode()
    at = data.find(bht, gs_end, ge_start)
    while at >= 0:
        edits.append((at + len(bht) - len(str(old)), at + len(bht), new))
        at = data.find(bht, at + len(bht), ge_start)
    ge, iea = bytes(data[ge_start:]).splitlines()
    n_sets, n_groups = ge.split(b"*")[1], iea.split(b"*")[1]
    edits.append((ge_start, len(data), b"GE*%s*%d~\nIEA*%s*%09d~\n" % (n_sets, icn, n_groups, icn)))
    view, pieces, done = memoryview(data), [], 0
    for start, stop, value in edits:
        pieces += [view[done:start], value]
        done = stop
    out = b"".join(pieces)
    return out.decode("ascii") if isinstance(text, str) else out


class _Batch:
    """The claims of one interchange, worked out column by column.

    Lines are kept grouped by claim ("claim order": claims by first appearance, lines in input
    order); every per-line value is computed once per distinct value, every check over whole
    columns, and each claim's first problem decides whether it is written: checks run in the
    order a claim-by-claim writer meets them (clinic, CLM01, line count, payer, patient,
    subscriber, diagnoses, authorisation, the claim's renderer, its lines in order, then the
    2310B/attending names), so the message is the same. Texts are joined by pyarrow.
    """

    def __init__(
        self, df: pd.DataFrame, institutional: bool, clinics: pd.DataFrame, payers: pd.DataFrame
    ):
        self.institutional = institutional
        n = len(df)
        claim_col = df["claim_id"]
        raw_ids = id_strings = None
        if isinstance(claim_col.dtype, pd.StringDtype):
            codes, keys, id_strings = _encode(claim_col)
            raw_ids = keys[:-1]  # by first appearance: claim k's id (a str) is the k-th
            codes = np.where(codes == len(raw_ids), -1, codes)
        else:
            claim_col = claim_col.astype(object)
            codes, _ = pd.factorize(claim_col, sort=False)
        if (codes < 0).any():
            raise ValueError("a service line has no claim_id")
        order = np.argsort(codes, kind="stable")
        self.sizes = np.bincount(codes)
        self.starts = np.cumsum(self.sizes) - self.sizes  # claim k: lines starts[k]..+sizes[k]
        first = order[self.starts]  # each claim's first row
        self.line_claim = codes[order]
        self.lx = np.arange(n) - np.repeat(self.starts, self.sizes) + 1
        if raw_ids is None:
            raw_ids = claim_col.to_numpy()[first]
        # CLM01 and the messages' ids (ids from pyarrow are str already)
        self.ids = raw_ids if id_strings is not None else _objects(map(str, raw_ids), len(raw_ids))
        self._lines(df, order)
        self._claims(df, first, raw_ids, id_strings, clinics, payers)

    # ---- per line (in claim order) --------------------------------------------------------
    def _lines(self, df: pd.DataFrame, order: np.ndarray) -> None:
        n = len(df)
        self.dates = _d8(df["date_of_service"])
        self.dos, self.dos_str = self.dates.codes[order], self.dates.texts
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
        self.svc_text = _Texts(self.svc, _objects((v or "" for v in svc_values), len(rep)))
        if self.institutional:
            codes, texts = _text_codes(_cleaned(df["discipline"]))
            self.disc_code = codes[order]
            self.discipline = texts[self.disc_code]
            revenue = _objects((REVENUE_CODES.get(d, ("",))[0] for d in texts), len(texts))
            self.revenue_text = _Texts(self.disc_code, revenue)
        else:
            codes, keys = _distinct(df["diagnosis_pointers"], listish=True)
            self.ptr, self.ptr_values = codes[order], _objects(map(_pointers, keys), len(keys))
            ptr_texts = _objects((v[0] if v else "" for v in self.ptr_values), len(keys))
            self.ptr_text = _Texts(self.ptr, ptr_texts)
            codes, keys = _distinct(df["place_of_service"])
            self.place, self.place_values = codes[order], _objects(map(_place, keys), len(keys))
            # places by value (keys " 11" and "11" are one place)
            self.place_code = pd.factorize(self.place_values, use_na_sentinel=False)[0]
            self.place_texts = _objects((v or "" for v in self.place_values), len(keys))
        # rendering providers: codes per line (equal codes, equal texts) and texts by code
        codes, self.npi_texts = _text_codes(_cleaned(df["rendering_npi"]))
        self.npi_code = codes[order]
        npi_ok = np.fromiter(map(_npi_ok, self.npi_texts), bool, len(self.npi_texts))
        self.npi_ok = npi_ok[self.npi_code]
        self.npi_empty = (self.npi_texts == "")[self.npi_code]
        texts, problem = _required(df["rendering_last_name"], "rendering_last_name", 60)
        self.r_last_problem = None if problem is None else problem[order]
        codes, self.r_last_texts = _text_codes(texts)
        self.r_last_code = codes[order]
        texts, problem = _required(df["rendering_first_name"], "rendering_first_name", 35)
        self.r_first_problem = None if problem is None else problem[order]
        codes, self.r_first_texts = _text_codes(texts)
        self.r_first_code = codes[order]

    # ---- per claim (values of its first line) and the checks, in the order they run ------
    def _claims(
        self,
        df: pd.DataFrame,
        first: np.ndarray,
        raw_ids: np.ndarray,
        id_strings: pa.Array | None,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
    ) -> None:
        k = len(first)
        starts, inst = self.starts, self.institutional
        self.dob = _d8(df["patient_dob"], first)
        self.injury = _blank(k)
        if "injury_date" in df:
            injury = _d8(df["injury_date"], first)
            segment = (f"DTP*431*D8*{d}~\n" if d else "" for d in injury.texts)
            self.injury = _Texts(injury.codes, _objects(segment, len(injury.texts)))

        def values(name: str) -> _Values:
            """The column's value on each claim's first line."""
            if name not in df:
                return np.full(k, None, dtype=object)
            strings = _arrow(df[name])
            return df[name].iloc[first] if strings is None else strings.take(first)

        def reference_ids(name: str) -> tuple[np.ndarray, list, np.ndarray]:
            """(index among the distinct ids, the distinct ids, the id) per claim, the ids
            in order of first appearance; NAs as pandas gives them (they fail the walk in
            ``failing``)."""
            strings = values(name)
            if isinstance(strings, pa.Array) and strings.null_count == 0:
                codes, keys = _distinct(strings)
                return codes, keys[:-1].tolist(), keys[codes]
            ids = np.asarray(df[name].iloc[first] if name in df else strings, dtype=object)
            return *_first_seen(ids), ids

        # reference rows, in order of first appearance (claims are written clinic by clinic)
        self.clinic_rank, seen, clinic_ids = reference_ids("clinic_id")
        self.clinic_entries = [_checked(_clinic_entry, clinics, c, inst) for c in seen]
        self.claim_order = np.argsort(self.clinic_rank, kind="stable")
        self.payer_code, seen, payer_ids = reference_ids("payer_id")
        self.payer_entries = [_checked(_payer_entry, payers, p) for p in seen]
        self.scope_ids = {"clinic": clinic_ids, "payer": payer_ids}
        clinic_problem = _split(_objects(self.clinic_entries, len(self.clinic_entries)))[1]
        payer_problem = _split(_objects(self.payer_entries, len(self.payer_entries)))[1]

        p = self.problems = _FirstProblem(k)
        p.note(_by_row(self.clinic_rank, clinic_problem))
        # CLM01 is the id as is: a clean one passes, any other only if cleaning leaves it so
        clm01_ok = np.zeros(k, dtype=bool)
        if id_strings is not None:  # the ids by first appearance, as pyarrow strings
            clm01_ok = _is_clean(raw_ids, 20, id_strings)[:k]
        elif pd.api.types.infer_dtype(raw_ids, skipna=False) == "string":
            clm01_ok = _is_clean(raw_ids, 20)
        for i in np.flatnonzero(~clm01_ok):
            text = clean_text(raw_ids[i], 20)
            clm01_ok[i] = text != "" and text == self.ids[i]
        p.note_mask(
            ~clm01_ok,
            _Invalid("claim_id", "must be 1-20 characters of A-Z 0-9 and X12 basic punctuation"),
        )
        # CLM01 texts: pyarrow's strings, or the ids that can be sent (others are never written,
        # and may not even convert: a lone surrogate in an object column)
        written_ids = self.ids if id_strings is not None else np.where(clm01_ok, self.ids, "")
        self.id_texts = _Texts(np.arange(k), written_ids, id_strings)
        max_lines = MAX_LINES_PER_CLAIM_I if inst else MAX_LINES_PER_CLAIM
        p.note_mask(
            self.sizes > max_lines, _Invalid("service lines", f"exceed {max_lines} per claim")
        )
        p.note(_by_row(self.payer_code, payer_problem))
        codes, keys = _distinct(values("subscriber_relationship"))
        relation, problem = _split(_objects((_checked(_relation, v) for v in keys), len(keys)))
        p.note(_by_row(codes, problem))
        self.dependent = (relation != "self")[codes]
        pat01 = _objects((RELATIONSHIP_PAT01.get(r, "") for r in relation), len(keys))
        self.pat01 = _Texts(codes, pat01)
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
            lambda v: _state(v, "patient_state"), values("patient_state"), unchanged="^[A-Z]{2}$"
        )
        p.note(problem)
        self.zip, problem = _zips(values("patient_zip"), "patient_zip")
        p.note(problem)
        p.note_mask((self.dob.texts == "")[self.dob.codes], _Invalid("patient_dob", "is missing"))
        self.sex, problem = _checked_values(_sex, values("patient_sex"), unchanged="^[MFU]$")
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
        self.hi = _Texts(dx_codes, _objects((d[1] if d else "" for d in dx), len(dx)))
        self.auth, problem = _identifiers(values("prior_auth_number"), "prior_auth_number", 50)
        p.note(problem)

        # renderers: the claim's (2310B / attending) is its first line's
        npi_ok = self.npi_ok
        self.npi0 = self.npi_texts[self.npi_code[starts]]
        has_npi0 = ~self.npi_empty[starts]
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
        if self.institutional:
            group, rep = _groups(self.svc, self.disc_code)
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
        claim_npi = self.npi_code[self.starts][self.line_claim]
        self.line_renderer = ~self.npi_empty & (self.npi_code != claim_npi)
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
        order, bad = self.claim_order, self.problems.bad
        clinic_ids = self.scope_ids["clinic"]
        if pd.api.types.infer_dtype(clinic_ids, skipna=False) == "string":
            yield from order[bad[order]].tolist()
            return
        order = order.tolist()
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
    def transaction_sets(self) -> _Sets | None:
        """The transaction sets that have a claim to write (None if none has).

        A set takes ``MAX_CLAIMS_PER_ST`` claims of the claim order (written or not); HL
        numbers restart in each set, with a 2000A billing provider HL whenever the clinic
        changes. A set's body runs from its first 2000A HL to its last claim's last segment.
        The texts are joined by pyarrow, column by column.
        """
        ok = ~self.problems.bad[self.claim_order]
        w = self.claim_order[ok]  # the claims written, in file order
        if not len(w):
            return None
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
        n_num = int(hl_sub.max()) + 2
        num = _Texts(np.zeros(1, dtype=np.int64), _objects(map(str, range(n_num)), n_num))

        blocks = [_billing_provider(e) if isinstance(e, dict) else "" for e in self.clinic_entries]
        heads = [f"HL*{hl[j]}**20*1~\n{blocks[rank[j]]}" for j in np.flatnonzero(header)]
        hdr_code = np.zeros(n_w, dtype=np.int64)
        hdr_code[header] = np.arange(1, len(heads) + 1)
        hdr = self._written(w, hdr_code, np.array(["", *heads], dtype=object))
        payer = self.payer_entries
        sbr09 = _objects((e["sbr09"] if isinstance(e, dict) else "" for e in payer), len(payer))
        sbr09 = _Texts(self.payer_code, sbr09)
        pr = _objects(
            (
                f"NM1*PR*2*{e['name']}*****PI*{e['id']}~\n" if isinstance(e, dict) else ""
                for e in payer
            ),
            len(payer),
        )
        pr = _Texts(self.payer_code, pr)
        demographics = [
            "~\nN3*", self.address, "~\nN4*", self.city, "*", self.state, "*",
            self.zip, "~\nDMG*D8*", self.dob, "*", self.sex, "~\n",
        ]  # fmt: skip
        common = [hdr, "HL*", self._written(w, hl_sub, num), "*", self._written(w, parent, num)]
        self_items = [
            *common, "*22*0~\nSBR*P*18*", self.group, "******", sbr09,
            "~\nNM1*IL*1*", self.pat_last, "*", self.pat_first, "****MI*", self.member,
            *demographics, pr,
        ]  # fmt: skip
        dep_items = [
            *common, "*22*1~\nSBR*P**", self.group, "******", sbr09,
            "~\nNM1*IL*1*", self.sub_last, "*", self.sub_first, "****MI*", self.member,
            "~\n", pr, "HL*", self._written(w, hl_sub + 1, num), "*",
            self._written(w, hl_sub, num), "*23*0~\nPAT*", self.pat01, "~\nNM1*QC*1*",
            self.pat_last, "*", self.pat_first, *demographics,
        ]  # fmt: skip
        # the demographics' leading "~\n" ends NM1*IL (self) or NM1*QC (dependant)
        lines = self._written_lines(w)
        claim_items = self._claim_items(w, lines)
        self_items += claim_items
        dep_items += claim_items

        # each claim's text up to its first LX, for the self and the dependant ones apart
        at_self, at_dep = np.flatnonzero(~dep), np.flatnonzero(dep)
        position = np.empty(n_w, dtype=np.int64)
        position[np.r_[at_self, at_dep]] = at
        claim_heads = pa.concat_arrays([
            _join_columns(self_items, w[at_self]), _join_columns(dep_items, w[at_dep])
        ]).take(position)  # fmt: skip
        claim_lines = _join_runs(self._line_texts(lines), self.sizes[w])
        set_at = np.flatnonzero(new_set)
        set_end = np.r_[set_at[1:], n_w]
        segments = _segment_counts(claim_heads, set_end - set_at)
        segments += _segment_counts(claim_lines, set_end - set_at)
        claims = [w[a:b] for a, b in zip(set_at, set_end, strict=True)]
        return _Sets(claims, segments.tolist(), [claim_heads, claim_lines])

    def _written(self, w: np.ndarray, codes: np.ndarray, texts: np.ndarray | _Texts) -> _Texts:
        """A text per claim from the ``codes`` of the written claims ``w`` (file order) into
        ``texts`` (or into the texts of a ``_Texts``)."""
        by_claim = np.zeros(len(self.ids), dtype=np.int64)
        by_claim[w] = codes
        return texts.recode(by_claim) if isinstance(texts, _Texts) else _Texts(by_claim, texts)

    def _written_lines(self, w: np.ndarray) -> np.ndarray:
        """Positions (claim order) of the lines of claims ``w``, claim after claim."""
        n_lines = self.sizes[w]
        offsets = np.cumsum(n_lines) - n_lines
        return np.repeat(self.starts[w] - offsets, n_lines) + np.arange(int(n_lines.sum()))

    def _renderers(self, rows: np.ndarray, entity: str = "82") -> tuple[np.ndarray, _Texts]:
        """``NM1*82`` (837P: with ``PRV*PE``) of the rendering provider of each line in rows,
        joined once per distinct provider: (code per row, texts by code); code 0 is ''."""
        clinic = self.clinic_rank[self.line_claim[rows]]
        last, first, npi = self.r_last_code[rows], self.r_first_code[rows], self.npi_code[rows]
        key, rep = _groups(last, first, npi, np.zeros(len(rows)) if self.institutional else clinic)
        items = [
            f"NM1*{entity}*1*", _Texts(last, self.r_last_texts), "*",
            _Texts(first, self.r_first_texts), "****XX*", _Texts(npi, self.npi_texts), "~\n",
        ]  # fmt: skip
        if not self.institutional:  # (written claims have a clinic, so a taxonomy)
            entries = self.clinic_entries
            taxonomy = (e["taxonomy"] if isinstance(e, dict) else "" for e in entries)
            items += ["PRV*PE*PXC*", _Texts(clinic, _objects(taxonomy, len(entries))), "~\n"]
        texts = pa.concat_arrays([_large([""]), _join_columns(items, rep)])
        return key + 1, _Texts(np.zeros(1, dtype=np.int64), arrow=texts)

    def _claim_items(self, w: np.ndarray, lines: np.ndarray) -> list:
        """Pieces of the 2300 loop (CLM up to the first LX) of claims ``w``."""
        first = self.starts[w]
        n_lines = self.sizes[w]
        offsets = np.cumsum(n_lines) - n_lines
        cents = self.cents[lines]
        if cents.max() > np.iinfo(np.int64).max // MAX_LINES_PER_CLAIM_I:
            cents = cents.astype(object)  # integer sums that int64 cannot hold
        codes, totals = pd.factorize(np.add.reduceat(cents, offsets))
        total = self._written(w, codes, _money_texts(totals))
        has_auth = np.not_equal(self.auth.texts, "")[self.auth.codes].astype(np.int64)
        ref_g1 = [
            _Texts(has_auth, np.array(["", "REF*G1*"], dtype=object)),
            self.auth,
            _Texts(has_auth, np.array(["", "~\n"], dtype=object)),
        ]
        if self.institutional:
            clm05 = _objects(
                (e["clm05"] if isinstance(e, dict) else "" for e in self.clinic_entries),
                len(self.clinic_entries),
            )
            by_date = np.argsort(self.dos_str, kind="stable")
            date_rank = np.empty(len(by_date), dtype=np.int64)
            date_rank[by_date] = np.arange(len(by_date))
            ranks = date_rank[self.dos[lines]]
            first_date = by_date[np.minimum.reduceat(ranks, offsets)]
            last_date = by_date[np.maximum.reduceat(ranks, offsets)]
            key, attending = self._renderers(first, "71")
            return [
                "CLM*", self.id_texts, "*", total, "***", _Texts(self.clinic_rank, clm05),
                "**A*Y*Y~\nDTP*434*RD8*", self._written(w, first_date, self.dates), "-",
                self._written(w, last_date, self.dates), "~\nCL1*3**01~\n", *ref_g1, self.hi,
                self._written(w, key, attending),
            ]  # fmt: skip
        claim_pos = _Texts(self.place[self.starts], self.place_texts)
        need = self.renderer2310[w]
        rendering = np.zeros(len(w), dtype=np.int64)
        rendering[need], texts = self._renderers(first[need])
        return [
            "CLM*", self.id_texts, "*", total, "***", claim_pos, ":B:1*Y*A*Y*Y~\n", self.injury,
            *ref_g1, self.hi, self._written(w, rendering, texts),
        ]  # fmt: skip

    def _line_texts(self, lines: np.ndarray) -> pa.Array:
        """``LX``, ``SV1``/``SV2``, ``DTP*472`` and the line's rendering provider (2420A /
        2420C, when it differs from the claim's) of each of ``lines``, joined by pyarrow from
        texts built once per distinct value."""
        n_lx = int(self.lx.max()) + 1
        lx = _Texts(self.lx, _objects((f"LX*{i}~\n" for i in range(n_lx)), n_lx))
        codes, cents = pd.factorize(self.cents)
        money = _money_texts(cents).recode(codes)
        codes, units = pd.factorize(self.units)
        units = _Texts(codes, _objects(map(str, units), len(units)))
        date = self.dates.recode(self.dos)
        need = lines[self.line_renderer[lines]]
        renderer = np.zeros(len(self.lx), dtype=np.int64)
        renderer[need], texts = self._renderers(need)
        renderer = texts.recode(renderer)
        if self.institutional:
            return _join_distinct([
                lx, "SV2*", self.revenue_text, "*", self.svc_text, "*", money, "*UN*", units,
                "~\nDTP*472*D8*", date, "~\n", renderer,
            ], lines)  # fmt: skip
        claim_place = self.place[self.starts[self.line_claim]]
        same = self.place_code[self.place] == self.place_code[claim_place]
        place = _Texts(np.where(same, 0, self.place + 1), np.array(["", *self.place_texts]))
        return _join_distinct([
            lx, "SV1*", self.svc_text, "*", money, "*UN*", units, "*", place, "**",
            self.ptr_text, "~\nDTP*472*D8*", date, "~\n", renderer,
        ], lines)  # fmt: skip


def _billing_provider(e: dict[str, str]) -> str:
    """2000A after its HL: PRV, NM1*85, N3, N4, REF*EI."""
    return (
        f"PRV*BI*PXC*{e['taxonomy']}~\nNM1*85*2*{e['name']}*****XX*{e['npi']}~\n"
        f"N3*{e['address']}~\nN4*{e['city']}*{e['state']}*{e['zip']}~\nREF*EI*{e['tax_id']}~\n"
    )
