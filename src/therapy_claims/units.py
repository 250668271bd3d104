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


def allocate(
    frame: pd.DataFrame, keys: list[str], minutes_col: str = "minutes", code_col: str = "cpt_code"
) -> pd.Series:
    """Largest-remainder allocation of pooled units over the lines of each group.

    ``frame`` holds only timed lines with known minutes. Returns units per row (int64)."""
    if frame.empty:
        return pd.Series(np.zeros(0, dtype="int64"), index=frame.index)
    m = frame[minutes_col].astype("int64")
    total = m.groupby([frame[k] for k in keys], sort=False, dropna=False).transform("sum")
    pool_units = units_for_minutes(total.to_numpy())
    full = (m // 15).to_numpy()
    leftover = (m % 15).to_numpy()
    full_sum = (
        pd.Series(full, index=frame.index)
        .groupby([frame[k] for k in keys], sort=False, dropna=False)
        .transform("sum")
        .to_numpy()
    )
    remaining = pool_units - full_sum  # >= 0 always
    order = pd.DataFrame(
        {
            "g": frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy(),
            "left": -leftover,
            "mins": -m.to_numpy(),
            "code": frame[code_col].astype("string").fillna("").to_numpy(),
            "line": frame["line_id"].astype("string").fillna("").to_numpy(),
        },
        index=frame.index,
    )
    order = order.sort_values(["g", "left", "mins", "code", "line"], kind="mergesort")
    rank = order.groupby("g", sort=False).cumcount().reindex(frame.index).to_numpy()
    extra = (rank < remaining).astype("int64")
    return pd.Series(full + extra, index=frame.index, dtype="int64")


def compute(lines: pd.DataFrame) -> pd.Series:
    """Units for every line. ``lines`` needs line_id, payer_id, patient_id, date_of_service,
    discipline, cpt_code, minutes (Int64), timed (bool) and unit_method ('cms'/'per_code').
    Timed lines without minutes get 0 (TIME_MISSING reports them)."""
    units = pd.Series(np.ones(len(lines), dtype="int64"), index=lines.index)
    timed = lines["timed"].fillna(False).astype(bool)
    units[timed] = 0
    has_min = timed & lines["minutes"].notna()
    base = list(POOL_KEYS)
    for method, keys in (("cms", base), ("per_code", [*base, "cpt_code"])):
        sel = has_min & (lines["unit_method"] == method)
        if sel.any():
            units[sel] = allocate(lines[sel], keys)
    return units
