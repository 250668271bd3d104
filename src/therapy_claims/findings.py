"""Findings: one row per rule firing, the exception report's rows.

Every rule returns a DataFrame with ``FINDING_COLUMNS``; ``make`` builds one vectorised from
the rows a rule selected, so no rule loops over rows in Python.
"""

from __future__ import annotations

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


def empty() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="string") for c in FINDING_COLUMNS})
    df["source_row"] = pd.Series(dtype="Int64")
    return df


def _col(rows: pd.DataFrame, name: str, default=pd.NA) -> pd.Series:
    if name in rows.columns:
        return rows[name]
    return pd.Series(default, index=rows.index)


# what a finding takes from the rows it is about
FINDING_SOURCE_COLUMNS: tuple[str, ...] = ("line_id", "encounter_id", "source_file", "source_row")


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
    source_file and source_row where known). Strings broadcast; Series align on the index."""
    spec = CATALOGUE[code]
    if rows.empty:
        return empty()
    out = pd.DataFrame(index=rows.index)
    out["line_id"] = _col(rows, "line_id")
    out["encounter_id"] = _col(rows, "encounter_id")
    out["code"] = code
    out["severity"] = spec.severity
    out["message"] = message
    out["suggested_fix"] = spec.suggested_fix if suggested_fix is None else suggested_fix
    out["evidence"] = evidence
    out["before"] = before if before is not None else pd.NA
    out["after"] = after if after is not None else pd.NA
    out["source_file"] = _col(rows, "source_file")
    out["source_row"] = _col(rows, "source_row")
    return normalise(out)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Same columns, order and dtypes for every findings frame."""
    df = df.reindex(columns=FINDING_COLUMNS).reset_index(drop=True)
    for c in FINDING_COLUMNS:
        if c == "source_row":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        else:
            df[c] = df[c].astype("string")
    return df


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    if not frames:
        return empty()
    return normalise(pd.concat(frames, ignore_index=True))
