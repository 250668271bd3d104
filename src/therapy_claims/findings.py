"""Findings: one row per rule firing, the exception report's rows.

Every rule returns a DataFrame with ``FINDING_COLUMNS``; ``make`` builds one vectorised from
the rows a rule selected, so no rule loops over rows in Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims.catalogue import CATALOGUE

FINDING_COLUMNS: list[str] = [
    "line_id",
    "encounter_id",
    "code",
    "severity",
    "message",
    "suggested_fix",
    "evidence",
    "before",
    "after",
    "source_file",
    "source_row",
]


def _empty_frame() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="string") for c in FINDING_COLUMNS})
    df["source_row"] = pd.Series(dtype="Int64")
    return df


_EMPTY = _empty_frame()


def empty() -> pd.DataFrame:
    """No findings, with the columns and dtypes of every findings frame (a copy of one frame
    built once: rules return it often)."""
    return _EMPTY.copy()


def _col(rows: pd.DataFrame, name: str, default=pd.NA) -> pd.Series:
    if name in rows.columns:
        return rows[name]
    return pd.Series(default, index=rows.index)


# what a finding takes from the rows it is about
FINDING_SOURCE_COLUMNS: tuple[str, ...] = ("line_id", "encounter_id", "source_file", "source_row")


def _column(value, index: pd.Index, name: str) -> pd.Series:
    """``value`` as the column ``name`` of a findings frame over ``index``, aligned as a
    column assignment aligns it (a Series on its index, an array by position, a scalar to
    every row), with the dtype ``normalise`` gives."""
    if isinstance(value, pd.Series):
        if not value.index.equals(index):
            value = value.reindex(index)
        column = pd.Series(value.array, index=index, copy=False)
    else:
        column = pd.Series(value, index=index)
    if name == "source_row":
        return pd.to_numeric(column, errors="coerce").astype("Int64")
    return column.astype("string")


def make(
    code: str,
    rows: pd.DataFrame,
    message: pd.Series | str,
    *,
    evidence: pd.Series | str = "",
    before: pd.Series | str | None = None,
    after: pd.Series | str | None = None,
    suggested_fix: pd.Series | str | None = None,
) -> pd.DataFrame:
    """Findings of ``code`` for every row of ``rows`` (which carry line_id, encounter_id,
    source_file and source_row where known). Strings broadcast; Series align on the index.
    The frame is built column by column in its final dtypes (``normalise``'s result)."""
    spec = CATALOGUE[code]
    if rows.empty:
        return empty()
    values = {
        "line_id": _col(rows, "line_id"),
        "encounter_id": _col(rows, "encounter_id"),
        "code": code,
        "severity": spec.severity,
        "message": message,
        "suggested_fix": spec.suggested_fix if suggested_fix is None else suggested_fix,
        "evidence": evidence,
        "before": before if before is not None else pd.NA,
        "after": after if after is not None else pd.NA,
        "source_file": _col(rows, "source_file"),
        "source_row": _col(rows, "source_row"),
    }
    columns = {c: _column(values[c], rows.index, c).array for c in FINDING_COLUMNS}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)), copy=False)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Same columns, order and dtypes for every findings frame."""
    df = df.reindex(columns=FINDING_COLUMNS).reset_index(drop=True)
    for c in FINDING_COLUMNS:
        if c == "source_row":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        else:
            df[c] = df[c].astype("string")
    return df


def _is_normal(df: pd.DataFrame) -> bool:
    """``df`` has the columns and dtypes ``normalise`` gives (its index aside)."""
    return list(df.columns) == FINDING_COLUMNS and all(
        df[c].dtype == _EMPTY[c].dtype for c in FINDING_COLUMNS
    )


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return empty()
    out = pd.concat(frames, ignore_index=True)
    # frames made here are normal already: normalise only what came from elsewhere
    return out if all(_is_normal(f) for f in frames) else normalise(out)


def owners(codes: pd.Series) -> pd.Series:
    """Who acts on each finding: the catalogue's owner of its code (looked up once per distinct
    code: a night has ~300k findings of a few dozen codes). Unknown or missing codes: null."""
    at, distinct = pd.factorize(codes)
    table = [CATALOGUE[c].owner if c in CATALOGUE else None for c in distinct]
    owner = np.array([*table, None], dtype=object)[at]  # code -1 (missing): the None
    return pd.Series(pd.array(owner, dtype="string"), index=codes.index)
