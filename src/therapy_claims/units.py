"""Billable units from minutes (outputs-and-rules.md "Units"; billing-rules.md section 1).

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


def group_ids(keys: list[pd.Series]) -> np.ndarray:
    """Dense ids (0..groups-1) of the distinct key combinations, grouped as
    ``groupby(dropna=False)`` groups them: a missing value is a key value of its own."""
    ids = np.zeros(len(keys[0]), dtype="int64")
    for key in keys:
        codes, uniques = pd.factorize(key, use_na_sentinel=False)
        ids, _ = pd.factorize(ids * len(uniques) + codes)
    return ids


def _sort_rank(values: pd.Series) -> np.ndarray:
    """Each value's rank in sorted order (equal values share a rank)."""
    return pd.factorize(values, sort=True)[0]


def allocate(
    minutes: np.ndarray, group: np.ndarray, code: pd.Series, line_id: pd.Series
) -> np.ndarray:
    """Largest-remainder allocation of pooled units over the lines of each group.

    ``minutes`` (int64) are the known minutes of timed lines, ``group`` their dense pool ids,
    ``code`` and ``line_id`` the tie-breakers. Returns units per line (int64)."""
    if len(minutes) == 0:
        return np.zeros(0, dtype="int64")
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
        code_rank = _sort_rank(code.iloc[contested].astype("string").fillna(""))
        line_rank = _sort_rank(line_id.iloc[contested].astype("string").fillna(""))
        g = group[contested]
        order = np.lexsort(
            (line_rank, code_rank, -minutes[contested], -leftover[contested], g)
        )  # stable, like the mergesort of the same keys
        g_sorted = g[order]
        first = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
        at = contested[order]
        extra[at] = (rank < remaining[at]).astype("int64")
    return full + extra


def compute(lines: pd.DataFrame) -> pd.Series:
    """Units for every line. ``lines`` needs line_id, payer_id, patient_id, date_of_service,
    discipline, cpt_code, minutes (Int64), timed (bool) and unit_method ('cms'/'per_code').
    Timed lines without minutes get 0 (TIME_MISSING reports them)."""
    timed = lines["timed"].to_numpy(dtype=bool, na_value=False)
    units = np.where(timed, 0, 1).astype("int64")
    has_min = timed & lines["minutes"].notna().to_numpy()
    base = list(POOL_KEYS)
    for method, keys in (("cms", base), ("per_code", [*base, "cpt_code"])):
        sel = np.flatnonzero(
            has_min & (lines["unit_method"] == method).to_numpy(dtype=bool, na_value=False)
        )
        if len(sel):
            rows = lines.iloc[sel]
            units[sel] = allocate(
                rows["minutes"].to_numpy(dtype="int64"),
                group_ids([rows[k] for k in keys]),
                rows["cpt_code"],
                rows["line_id"],
            )
    return pd.Series(units, index=lines.index)
