"""Billable units from minutes (docs/rules.md, "Units").

- ``cms``: CMS total-time 8-minute rule (MCPM ch. 5 section 20.2), **per code for the day**.
  Minutes of all 15-minute timed codes for one payer, billing provider (clinic), patient, date
  of service and discipline are pooled; the pool's units come from the table (8-22 -> 1,
  23-37 -> 2, ...). Lines of the same code in a pool (two visits, a code charted twice) are
  one code: their minutes are added first. Each code gets floor(code minutes/15) units and
  the pool's remaining units go one at a time to the codes with the largest leftover
  (code minutes mod 15; ties: more code minutes, then the lower code). A code's units are then
  spread over its lines by the same rule one level down: each line floor(minutes/15), the
  code's remaining units one at a time to its lines with the largest leftover (ties: more
  minutes, then the lower line id), so a code's lines always sum to the code's units.
- ``per_code``: AMA/CPT midpoint rule: the same table applied to each code on its own (lines
  of the same code on the same pool keys are pooled and spread likewise).
Untimed codes bill 1 unit and add no minutes. The minutes are the billable ones: overlapping
time of one patient and one clinician is taken out before (rules/time.py,
TIME_OVERLAP_SAME_PATIENT). Everything here is vectorised over the frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# the units pool: one billing provider's minutes of one patient, date and discipline (a second
# clinic does not bill units from minutes documented at another)
POOL_KEYS = ("payer_id", "clinic_id", "patient_id", "date_of_service", "discipline")


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


def _packed(keys: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray | None:
    """Integer or boolean keys packed into one int64 per row, the last key highest (so the
    packed values sort as ``np.lexsort`` sorts the keys); None where a key is not integer or
    the keys' ranges do not fit in 62 bits together."""
    packed = np.zeros(len(keys[0]), dtype="int64")
    span = 1
    for key in reversed(keys):  # the primary key first
        k = np.asarray(key)
        if k.dtype.kind not in "ib":
            return None
        k = k.astype("int64")
        low = int(k.min())
        width = int(k.max()) - low + 1
        span *= width
        if span >= 2**62:
            return None
        packed = packed * width + (k - low)
    return packed


def _ties(order: np.ndarray, same: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """``order`` with each run of tied slots (``same[i]``: slots i and i+1 tie) put in the
    order of ``tiebreak`` (one value per tied slot, in ``order``'s order of those slots)."""
    tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # slots of equal keys
    run = np.cumsum(np.r_[True, ~same])[tied]
    order[tied] = order[tied][lexsort((tiebreak(order[tied]), run))]
    return order


def lexsort(keys: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)``: the order sorting by the last key, then the one before, ...; ties
    keep their order. Integer or boolean keys whose ranges fit in 62 bits together are packed
    into one int64 and sorted once with numpy's fastest (unstable) sort; rows with equal keys,
    which that leaves in any order, are then put back in theirs. Several times faster than
    ``np.lexsort``, which sorts once per key."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.intp)
    packed = _packed(keys)
    if packed is None:
        return np.lexsort(keys)
    order = np.argsort(packed)
    ranked = packed[order]
    same = ranked[1:] == ranked[:-1]
    if same.any():
        order = _ties(order, same, lambda rows: rows)
    return order


def _sort_rank(values: pd.Series) -> np.ndarray:
    """Each value's rank in sorted order (equal values share a rank)."""
    return pd.factorize(values, sort=True)[0]


def lexsort_by_line_id(
    keys: tuple[np.ndarray, ...] | list[np.ndarray], line_id: pd.Series, at: np.ndarray
) -> np.ndarray:
    """``lexsort(keys)``, but rows equal in every key go in line id order. ``line_id`` is a
    column of a larger frame in which ``at`` are the rows' positions: only the tied rows' ids
    are taken and ranked (ranking every id would sort hundreds of thousands of texts where a
    handful tie)."""
    if len(keys[0]) < 2:
        return np.arange(len(keys[0]))
    packed = _packed(keys)
    if packed is None:
        order = np.lexsort(keys)
        same = np.ones(len(order) - 1, dtype=bool)
        for key in keys:
            ranked = np.asarray(key)[order]
            same &= ranked[1:] == ranked[:-1]
    else:
        order = np.argsort(packed)
        ranked = packed[order]
        same = ranked[1:] == ranked[:-1]
    if same.any():
        order = _ties(
            order,
            same,
            lambda rows: _sort_rank(line_id.iloc[at[rows]].astype("string").fillna("")),
        )
    return order


def allocate(
    minutes: np.ndarray,
    group: np.ndarray,
    code_rank: np.ndarray,
    line_id: pd.Series,
    at: np.ndarray | None = None,
    pool_units: np.ndarray | None = None,
) -> np.ndarray:
    """Largest-remainder allocation of pooled units over the members of each group.

    ``minutes`` (int64) are the members' known minutes, ``group`` their dense pool ids,
    ``code_rank`` their codes' ranks in sorted order and ``line_id`` the last tie-breaker:
    aligned with ``minutes``, or, given ``at``, a column of a larger frame in which ``at`` are
    the members' positions (so that only members that need it are taken out of it).
    ``pool_units`` (per group id) are the units to hand out; by default the CMS table on the
    group's pooled minutes. Each member gets floor(minutes/15), then the group's remaining
    units one at a time in the order (leftover desc, minutes desc, code, line id). Returns
    units per member (int64)."""
    if len(minutes) == 0:
        return np.zeros(0, dtype="int64")
    if at is None:
        at = np.arange(len(minutes))
    full = minutes // 15
    leftover = minutes % 15
    pool_full = np.bincount(group, weights=full).astype("int64")
    if pool_units is None:
        pool_units = units_for_minutes(np.bincount(group, weights=minutes).astype("int64"))
    # >= 0 always, and at most one per member with a leftover (see allocate_by_code)
    remaining = (pool_units - pool_full)[group]
    size = np.bincount(group)[group]
    # a pool of one member gets its remaining unit; only pools of several members with units
    # left over need the order (leftover, minutes, code, line id)
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
        # members equal in all those keys go by line id
        order = lexsort_by_line_id(keys, line_id, at[contested])
        g_sorted = g[order]
        first = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        slots = contested[order]
        extra[slots] = (rank < remaining[slots]).astype("int64")
    return full + extra


# bits set in each byte value: a popcount that needs no numpy 2
_BITS = np.array([bin(b).count("1") for b in range(256)], dtype="int64")


def _pools_repeating_a_code(pool: np.ndarray, code: np.ndarray) -> np.ndarray | None:
    """Per pool id: does one code occur on two or more of its lines? None where the lines hold
    more than 64 codes (too many to tell this way).

    Each code present gets a bit of its own; per pool the bits of its lines are added
    (uint64, wrapping). Adding powers of two sets as many bits as there are terms exactly when
    no two are equal (a carry loses a bit), so a pool repeats a code iff the sum has fewer bits
    set than the pool has lines: one scatter-add, not a hash of every (pool, code) pair."""
    present = np.flatnonzero(np.bincount(code))
    if len(present) > 64:
        return None
    bit = np.zeros(int(code.max()) + 1, dtype=np.uint64)
    bit[present] = np.left_shift(np.uint64(1), np.arange(len(present), dtype=np.uint64))
    acc = np.zeros(int(pool.max()) + 1, dtype=np.uint64)
    np.add.at(acc, pool, bit[code])
    bits = _BITS[acc.view(np.uint8)].reshape(-1, 8).sum(axis=1)
    return bits < np.bincount(pool)


def allocate_by_code(
    minutes: np.ndarray,
    pool: np.ndarray,
    code: np.ndarray,
    code_rank: np.ndarray,
    line_id: pd.Series,
    at: np.ndarray | None = None,
) -> np.ndarray:
    """The total-time rule per code for the day: units per line (int64).

    ``pool`` are the lines' pool ids and ``code`` their codes (non-negative int64; equal codes
    in a pool are one code). First the pool's units over its codes, each code with its lines'
    minutes added (a code of 15+ minutes in the day thus gets its full units before any
    remainder is handed out); then each code's units over its own lines by the same
    largest-remainder rule. Why this always adds up: a code gets floor(M/15) or one more, and
    its lines' floors add up to at least floor(M/15) - (k - 1) for k lines with leftovers, so
    at most one unit per line is left to hand out, and only to lines with leftover minutes.

    In a pool where no code has two lines a code is its line: one allocation over the lines
    is the same. Only pools repeating a code (few) take the two steps."""
    if len(minutes) == 0:
        return np.zeros(0, dtype="int64")
    if at is None:
        at = np.arange(len(minutes))
    repeating = _pools_repeating_a_code(pool, code)
    if repeating is None:  # more codes than bits: every pool takes the two steps
        return _two_steps(minutes, pool, code, code_rank, line_id, at)
    units = allocate(minutes, pool, code_rank, line_id, at)
    two = np.flatnonzero(repeating[pool])
    if len(two):
        units[two] = _two_steps(
            minutes[two], group_ids([pool[two]]), code[two], code_rank[two], line_id, at[two]
        )
    return units


def _two_steps(
    minutes: np.ndarray,
    pool: np.ndarray,
    code: np.ndarray,
    code_rank: np.ndarray,
    line_id: pd.Series,
    at: np.ndarray,
) -> np.ndarray:
    """``allocate_by_code``'s two steps: the pool's units over its codes, then each code's over
    its lines. Ties between codes of a pool never reach the line id (a pool's codes differ,
    and the code is a key), so each code stands in with its first line."""
    per_code = group_ids([pool, code])  # numbered in order of first appearance
    first = np.flatnonzero(per_code > np.maximum.accumulate(np.r_[-1, per_code[:-1]]))
    code_minutes = np.bincount(per_code, weights=minutes).astype("int64")
    code_units = allocate(code_minutes, pool[first], code_rank[first], line_id, at[first])
    return allocate(minutes, per_code, code_rank, line_id, at, pool_units=code_units)


def _taken(column: pd.Series, at: np.ndarray) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column's values at positions ``at``: a numpy array where the column holds one
    (``iloc`` costs more than the take itself), else its own array type."""
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()[at]
    return column.array.take(at)


def compute(lines: pd.DataFrame) -> pd.Series:
    """Units for every line. ``lines`` needs line_id, the ``POOL_KEYS``, cpt_code, minutes
    (Int64: the billable minutes), timed (bool) and unit_method ('cms'/'per_code'). Timed
    lines without minutes get 0 (TIME_MISSING reports them)."""
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
        units[sel] = allocate_by_code(
            _taken(lines["minutes"], sel).astype("int64"),
            group_ids(keys),
            codes[sel].astype("int64"),
            code_rank,
            lines["line_id"],
            at=sel,
        )
    return pd.Series(units, index=lines.index)
