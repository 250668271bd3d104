"""Billable units from minutes (docs/rules.md, "Units").

- ``cms``: CMS total-time 8-minute rule (MCPM ch. 5 section 20.2). Minutes of all 15-minute
  timed codes for one patient, date of service and discipline are pooled; the pool's units come
  from the table (8-22 -> 1, 23-37 -> 2, ...); each line gets floor(minutes/15) units and the
  remaining units go one at a time to the lines with the largest leftover minutes (ties: more
  total minutes, then the lower code, then the line id).
- ``per_code``: AMA/CPT midpoint rule: the same table applied to each code on its own (lines
  of the same code on the same patient/date/discipline are pooled and allocated likewise).
Untimed codes bill 1 unit and add no minutes. Everything here is vectorised over the frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

POOL_KEYS = ("payer_id", "patient_id", "date_of_service", "discipline")


def units_for_minutes(total: np.ndarray | pd.Series) -> np.ndarray:
    """The CMS table in closed form: floor(T/15) + (1 if T mod 15 >= 8)."""
    t = np.asarray(total, dtype="int64")
    return t // 15 + (t % 15 >= 8).astype("int64")


def _dense_codes(key: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """``key`` as int64 codes in 0..width-1 (equal values, and all missing values, share a
    code) and that width. Integer keys that are dense already (such as factorised codes, -1
    for missing) are shifted to start at 0 rather than factorised again."""
    values = key
    if isinstance(key, pd.Series) and pd.api.types.is_integer_dtype(key.dtype) and not key.hasnans:
        values = key.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind == "i" and len(values):
        low = int(values.min())
        width = int(values.max()) - low + 1
        if width <= len(values):
            return values.astype("int64") - low, width
    codes, uniques = pd.factorize(key, use_na_sentinel=False)
    return codes.astype("int64"), max(len(uniques), 1)


def group_ids(keys: list[pd.Series] | list[np.ndarray]) -> np.ndarray:
    """Dense ids (0..groups-1, in order of first appearance) of the distinct key combinations,
    grouped as ``groupby(dropna=False)`` groups them: a missing value is a key value of its own.

    The keys' codes are packed into one int64 per row (renumbered when the next key would not
    fit) and that is factorised once: one hash pass instead of two per key."""
    packed = np.zeros(len(keys[0]), dtype="int64")
    span = 1
    for key in keys:
        codes, width = _dense_codes(key)
        if span * width >= 2**62:
            packed, uniques = pd.factorize(packed)
            span = len(uniques)
        packed = packed * width + codes
        span *= width
    return pd.factorize(packed)[0]


def lexsort(keys: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)``: the order sorting by the last key, then the one before, ...; ties
    keep their order. Integer or boolean keys whose ranges fit in 62 bits together are packed
    into one int64 and sorted once with numpy's fastest (unstable) sort; rows with equal keys,
    which that leaves in any order, are then put back in theirs. Several times faster than
    ``np.lexsort``, which sorts once per key."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    packed = np.zeros(n, dtype="int64")
    span = 1
    for key in reversed(keys):  # the primary key first
        k = np.asarray(key)
        if k.dtype.kind not in "ib":
            return np.lexsort(keys)
        k = k.astype("int64")
        low = int(k.min())
        width = int(k.max()) - low + 1
        span *= width
        if span >= 2**62:
            return np.lexsort(keys)
        packed = packed * width + (k - low)
    order = np.argsort(packed)
    ranked = packed[order]
    same = ranked[1:] == ranked[:-1]
    if same.any():
        tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # slots of equal keys
        run = np.cumsum(np.r_[True, ~same])[tied]
        order[tied] = order[tied][np.lexsort((order[tied], run))]
    return order


def _sort_rank(values: pd.Series) -> np.ndarray:
    """Each value's rank in sorted order (equal values share a rank)."""
    return pd.factorize(values, sort=True)[0]


def allocate(
    minutes: np.ndarray,
    group: np.ndarray,
    code_rank: np.ndarray,
    line_id: pd.Series,
    at: np.ndarray | None = None,
) -> np.ndarray:
    """Largest-remainder allocation of pooled units over the lines of each group.

    ``minutes`` (int64) are the known minutes of timed lines, ``group`` their dense pool ids,
    ``code_rank`` their codes' ranks in sorted order and ``line_id`` the last tie-breaker:
    aligned with ``minutes``, or, given ``at``, a column of a larger frame in which ``at`` are
    the lines' positions (so that only lines that need it are taken out of it). Returns units
    per line (int64)."""
    if len(minutes) == 0:
        return np.zeros(0, dtype="int64")
    if at is None:
        at = np.arange(len(minutes))
    full = minutes // 15
    leftover = minutes % 15
    pool_minutes = np.bincount(group, weights=minutes).astype("int64")
    pool_full = np.bincount(group, weights=full).astype("int64")
    remaining = (units_for_minutes(pool_minutes) - pool_full)[group]  # >= 0 always
    size = np.bincount(group)[group]
    # a pool of one line gets its remaining unit; only pools of several lines with units left
    # over need the order (leftover, minutes, code, line id)
    extra = ((size == 1) & (remaining > 0)).astype("int64")
    contested = np.flatnonzero((size > 1) & (remaining > 0))
    if len(contested):
        g = group[contested]
        keys = (
            code_rank[contested],
            -minutes[contested],
            -leftover[contested],
            g,
        )
        order = lexsort(keys)
        # lines equal in all those keys (now side by side) go by line id: only they are
        # ranked by it (ranking every contested line id sorts hundreds of thousands of texts)
        same = np.ones(len(order) - 1, dtype=bool)
        for key in keys:
            ranked = key[order]
            same &= ranked[1:] == ranked[:-1]
        if same.any():
            tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # sorted slots
            run = np.cumsum(np.r_[True, ~same])[tied]
            line_rank = _sort_rank(
                line_id.iloc[at[contested[order[tied]]]].astype("string").fillna("")
            )
            order[tied] = order[tied][lexsort((line_rank, run))]
        g_sorted = g[order]
        first = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        slots = contested[order]
        extra[slots] = (rank < remaining[slots]).astype("int64")
    return full + extra


def _taken(column: pd.Series, at: np.ndarray) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column's values at positions ``at``: a numpy array where the column holds one
    (``iloc`` costs more than the take itself), else its own array type."""
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()[at]
    return column.array.take(at)


def compute(lines: pd.DataFrame) -> pd.Series:
    """Units for every line. ``lines`` needs line_id, payer_id, patient_id, date_of_service,
    discipline, cpt_code, minutes (Int64), timed (bool) and unit_method ('cms'/'per_code').
    Timed lines without minutes get 0 (TIME_MISSING reports them)."""
    timed = lines["timed"].to_numpy(dtype=bool, na_value=False)
    units = np.where(timed, 0, 1).astype("int64")
    has_min = timed & lines["minutes"].notna().to_numpy()
    method = lines["unit_method"]
    cms = (method == "cms").to_numpy(dtype=bool, na_value=False)
    per_code = (method == "per_code").to_numpy(dtype=bool, na_value=False)
    sel = np.flatnonzero(has_min & (cms | per_code))
    if len(sel):
        # both methods in one allocation: a per_code pool is also keyed by its code, and the
        # method is part of the key, so pools of the two methods never mix
        by_code = per_code[sel]
        codes, distinct = pd.factorize(lines["cpt_code"], use_na_sentinel=False)
        code_rank = _sort_rank(pd.Series(distinct).astype("string").fillna(""))[codes[sel]]
        code_key = np.where(by_code, codes[sel], -1)
        keys = [*(_taken(lines[k], sel) for k in POOL_KEYS), by_code.astype("int64"), code_key]
        units[sel] = allocate(
            _taken(lines["minutes"], sel).astype("int64"),
            group_ids(keys),
            code_rank,
            lines["line_id"],
            at=sel,
        )
    return pd.Series(units, index=lines.index)
