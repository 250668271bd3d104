"""The column joiner: texts kept as codes into few distinct texts, joined by pyarrow.

No Python string is made per segment, claim or line: each piece of a segment is a column of
codes into few distinct texts (:class:`Texts`), and pyarrow concatenates such columns row by
row (:func:`join_columns`), joining a constant onto the distinct texts next to it first, and
repeated rows once (:func:`join_distinct`); runs of rows become one text (:func:`join_runs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims.x12.text import money

LARGE = pa.large_string()


def objects(items, n: int) -> np.ndarray:
    return np.fromiter(items, dtype=object, count=n)


def lengths(texts: np.ndarray) -> np.ndarray:
    return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def large(texts: np.ndarray | list) -> pa.Array:
    """Python strings as pyarrow large strings."""
    arr = pa.array(texts, pa.string()).cast(LARGE)
    if arr.null_count:
        raise TypeError("a text of the file is None")  # a bug: every text is a str
    return arr


class Texts:
    """A text per row, kept as a code into few distinct texts: row i's is ``texts[codes[i]]``.

    Values are cleaned and checked once per distinct value, and the file is joined by pyarrow
    from such columns (:meth:`take`), so a row's text needs no Python string of its own.
    ``strings`` (optional) holds the first texts as pyarrow strings, except at the positions
    ``changed``: the keys of ``encode``, of which cleaning changed a few, need no conversion.
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
                self._arrow = large(self.texts)
            else:
                known = len(self._strings)
                arr = pa.concat_arrays([self._strings.cast(LARGE), large(self.texts[known:])])
                changed = np.zeros(len(self.texts), dtype=bool)
                changed[self._changed] = True
                changed[known:] = False
                if changed.any():
                    arr = pc.replace_with_mask(arr, pa.array(changed), large(self.texts[changed]))
                self._arrow = arr
        return self._arrow

    def lengths(self) -> np.ndarray:
        """The length of each distinct text."""
        if self._strings is None:
            return lengths(self.texts)
        known = len(self._strings)
        size = np.empty(len(self.texts), dtype=np.int64)
        size[:known] = pc.utf8_length(self._strings).to_numpy(zero_copy_only=False)
        for i in [*self._changed.tolist(), *range(known, len(self.texts))]:
            size[i] = len(self.texts[i])
        return size

    def recode(self, codes: np.ndarray) -> Texts:
        """The same texts (converted once) for other rows: ``codes``."""
        return Texts(codes, self._texts, arrow=self.arrow())

    def take(self, rows: np.ndarray, prefix: str = "", suffix: str = "") -> pa.Array:
        """The texts of ``rows`` (pyarrow large strings), each as ``prefix + text + suffix``
        (joined once per distinct text)."""
        texts = self.arrow()
        if prefix or suffix:
            texts = join([prefix, texts, suffix])
        return texts.take(self.codes[rows])


def blank(n: int) -> Texts:
    """``n`` empty texts."""
    return Texts(np.zeros(n, dtype=np.int64), np.array([""], dtype=object))


def join(items: list) -> pa.Array:
    """Row by row concatenation of ``items``: strings and pyarrow string arrays of one length."""
    return pc.binary_join_element_wise(
        *(pa.scalar(i, LARGE) if isinstance(i, str) else i for i in items),
        pa.scalar("", LARGE),
    )


def join_columns(items: list, rows: np.ndarray) -> pa.Array:
    """Row by row concatenation of ``items`` (strings and ``Texts``) for ``rows``.

    A string next to a column of few distinct texts is joined onto those texts (once per
    distinct text: as the suffix of the column before it, else as the prefix of the one
    after), so pyarrow joins fewer pieces per row; other strings are joined per row.
    """

    def few(texts: Texts) -> bool:
        return 4 * texts.n_texts <= len(rows)

    columns: list = []  # strings, and [prefix, Texts, suffix]
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
    return join([c if isinstance(c, str) else c[1].take(rows, c[0], c[2]) for c in columns])


def groups(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def join_distinct(items: list, rows: np.ndarray) -> pa.Array:
    """``join_columns(items, rows)``, joining each distinct combination of the columns'
    texts once (for rows that repeat: a night has few distinct service lines)."""
    key, rep = groups(*(i.codes[rows] for i in items if not isinstance(i, str)))
    return join_columns(items, rows[rep]).take(key)


def join_runs(texts: pa.Array, sizes: np.ndarray) -> pa.Array:
    """The concatenation of each run of consecutive ``texts``, runs of ``sizes``."""
    offsets = pa.array(np.r_[0, np.cumsum(sizes)], pa.int64())
    return pc.binary_join(pa.LargeListArray.from_arrays(offsets, texts), pa.scalar("", LARGE))


# the text of money() after the point, by cents 0..99: "", ".01" .. ".09", ".1", ".11" ..
_FRACTIONS = ["" if f == 0 else f".{f:02d}".rstrip("0") for f in range(100)]


def money_texts(cents: np.ndarray) -> Texts:
    """``money`` of each amount (integer cents), as texts by position; int64 amounts are
    formatted by pyarrow, the (rare) larger Python ints by ``money``."""
    positions = np.arange(len(cents))
    if cents.dtype == object:
        return Texts(positions, objects((money(int(c)) for c in cents), len(cents)))
    whole, fraction = np.divmod(np.abs(cents), 100)
    texts = join([
        pa.array(np.where(cents < 0, "-", "")).cast(LARGE),
        pc.cast(pa.array(whole), LARGE),
        large(_FRACTIONS).take(fraction),
    ])  # fmt: skip
    return Texts(positions, arrow=texts)


def segment_counts(texts: pa.Array, sizes: np.ndarray) -> np.ndarray:
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
