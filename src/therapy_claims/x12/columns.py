"""Column work, once per distinct value: encoding columns, cleaning, dates, amounts.

A night is about a million lines and most columns hold few distinct values, so every value is
cleaned or checked once per distinct value: a column becomes ``(codes, keys)`` with row i's
value ``keys[codes[i]]`` (dictionary-encoded by pyarrow for string columns), and a function of
the column is a function of its keys, indexed by the codes. Values already clean are let
through by a pyarrow regex, so Python only runs on the few that need it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims.x12.joiner import Texts, objects
from therapy_claims.x12.text import CLEAN_RE, as_tuple, clean_text


def arrow_strings(series: pd.Series) -> pa.Array | None:
    """The pyarrow string array of a pandas string column (None for other columns)."""
    if not isinstance(series.dtype, pd.StringDtype):
        return None
    arr = pa.array(series.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


Values = pd.Series | np.ndarray | pa.Array


def encode(values: Values, listish: bool = False) -> tuple[np.ndarray, np.ndarray, pa.Array | None]:
    """``distinct`` plus, for values from pyarrow, the keys (but the last, ``None``) as a
    pyarrow string array, so vectorised checks of the keys need not convert them back."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        values = arrow_strings(values)
    if isinstance(values, pa.Array):  # encoded by pyarrow, Python strings only for the keys
        encoded = pc.dictionary_encode(values)
        n_keys = len(encoded.dictionary)
        codes = encoded.indices.fill_null(n_keys).to_numpy(zero_copy_only=False)
        keys = np.empty(n_keys + 1, dtype=object)  # the last, None, stands for NA
        keys[:n_keys] = encoded.dictionary.to_numpy(zero_copy_only=False)
        if listish:
            return codes.astype(np.int64), objects(map(as_tuple, keys), len(keys)), None
        return codes.astype(np.int64), keys, encoded.dictionary
    return (*distinct(values, listish), None)


def distinct(values: Values, listish: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, keys)`` with ``values[i]`` standing for ``keys[codes[i]]``.

    Strings share a key when equal and every NA becomes the key ``None`` (this module treats
    all NAs alike); with ``listish`` the keys are ``tuple(as_list(value))``. Other values are
    each their own key, so a function of the key always equals the function of the value.
    """
    if isinstance(values, pa.Array) or (
        isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype)
    ):
        return encode(values, listish)[:2]
    if listish and isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        by_content = _list_codes(values)
        if by_content is not None:
            codes, rep = by_content
            cells = values.iloc[rep].to_numpy(dtype=object)
            return codes, objects(map(as_tuple, cells), len(cells))
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(values)
        keys = np.append(uniques.astype(object), None)
        codes = np.where(codes < 0, len(uniques), codes)
        if listish:
            keys = objects(map(as_tuple, keys), len(keys))
        return codes, keys
    if listish:
        try:  # parquet list cells: 1-d arrays (len() rejects 0-d ones)
            sum(map(len, values))
            tuples = map(tuple, map(np.ndarray.tolist, values))
            codes, keys = pd.factorize(objects(tuples, len(values)))
        except TypeError:
            codes, keys = pd.factorize(objects(map(as_tuple, values), len(values)))
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


def is_clean(keys: np.ndarray, max_len: int | None, strings: pa.Array | None = None) -> np.ndarray:
    """Which keys ``clean_text(key, max_len)`` returns unchanged (vectorised; False if unsure).

    ``strings``: the keys but the last (``None``) as pyarrow strings, if at hand (``encode``).
    """
    if strings is None:
        try:
            arr = pa.array(keys, type=pa.string(), from_pandas=True)
        except (pa.ArrowException, UnicodeError):
            return np.zeros(len(keys), dtype=bool)
    else:
        arr = strings
    ok = pc.match_substring_regex(arr, CLEAN_RE)
    if max_len is not None:
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(arr), max_len))
    ok = ok.fill_null(False).to_numpy(zero_copy_only=False)
    return ok if strings is None else np.append(ok, False)


class Cleaned(Texts):
    """The texts of :func:`cleaned`, and those cut to ``max_len``: ``uncut`` maps the
    position of each key whose text was cut to its text before the cut (``TEXT_TRUNCATED``'s
    before; the cut text, its after, is ``texts[position]``)."""

    def __init__(self, codes, texts, strings, changed, max_len: int | None, uncut: dict):
        super().__init__(codes, texts, strings, changed)
        self.max_len, self.uncut = max_len, uncut

    def cut(self) -> np.ndarray:
        """Per key: its text was cut."""
        out = np.zeros(self.n_texts, dtype=bool)
        out[list(self.uncut)] = True
        return out


def cleaned(values: Values, max_len: int | None = None) -> Cleaned:
    """``clean_text(value, max_len)`` of every value. A value that is cut is longer than
    ``max_len``, never clean: only the keys cleaned here in Python can have been cut."""
    codes, keys, strings = encode(values)
    texts = keys.copy()
    uncut = {}
    dirty = np.flatnonzero(~is_clean(keys, max_len, strings))
    for i in dirty:
        text = texts[i] = clean_text(keys[i], max_len)
        # a cut text keeps at least max_len - 1 characters (spaces come single: the cut
        # strips one at most), so only those can have been cut
        if max_len is not None and len(text) >= max_len - 1:
            if len(whole := clean_text(keys[i])) > max_len:
                uncut[int(i)] = whole
    return Cleaned(codes, texts, strings, dirty, max_len, uncut)


def text_codes(texts: Texts) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct texts): two rows share a code iff their texts are equal (distinct
    values may clean to one text), so codes can be compared instead of texts."""
    same, distinct = pd.factorize(texts.texts)
    return same[texts.codes], np.asarray(distinct, dtype=object)


def matching(keys: np.ndarray, pattern: str, strings: pa.Array | None = None) -> np.ndarray:
    """Which keys are strings that ``pattern`` (an RE2 regex, anchored) matches (vectorised).

    ``strings``: the keys but the last (``None``) as pyarrow strings, if at hand (``encode``).
    """
    if strings is None:
        if pd.api.types.infer_dtype(keys, skipna=True) not in ("string", "empty"):
            return np.zeros(len(keys), dtype=bool)
        arr = pa.array(keys, type=pa.string(), from_pandas=True)
    else:
        arr = strings
    ok = pc.match_substring_regex(arr, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    return ok if strings is None else np.append(ok, False)


def d8_texts(series: pd.Series, rows: np.ndarray | None = None) -> Texts:
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
            return Texts(codes, np.append(strings.to_numpy(zero_copy_only=False), ""), strings)
    return Texts(codes, np.append(dates.strftime("%Y%m%d").to_numpy(dtype=object), ""))


def cents_of(series: pd.Series) -> np.ndarray:
    """Integer cents per line; -1 where the amount is missing or negative."""
    amounts = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    cents = np.round(amounts * 100.0)
    bad = ~np.isfinite(cents) | (cents < 0)
    return np.where(bad, -1, cents).astype(np.int64)


def units_of(series: pd.Series) -> np.ndarray:
    """Units per line; 0 where missing, not whole or not positive."""
    u = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(u) | (u <= 0) | (u != np.floor(u))
    return np.where(bad, 0, u).astype(np.int64)


def first_seen(values: np.ndarray) -> tuple[np.ndarray, list]:
    """(index of each value among the distinct ones, the distinct ones) by first appearance,
    with dict equality (as a dict keyed by the values would see them)."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # no NA: same as a dict
        codes, uniques = pd.factorize(values)
        return codes, uniques.tolist()
    seen: dict = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), np.int64, len(values))
    return codes, list(seen)
