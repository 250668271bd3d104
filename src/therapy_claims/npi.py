"""NPI check digit: Luhn over the 80840 prefix (CMS NPI check-digit requirements)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_digit(first9: str) -> int:
    total = 24  # the implied 80840 prefix
    for i, ch in enumerate(reversed(first9)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


def is_valid(npi: str) -> bool:
    return (
        isinstance(npi, str)
        and len(npi) == 10
        and npi.isdigit()
        and npi[0] in "12"
        and check_digit(npi[:9]) == int(npi[9])
    )


def valid_mask(values: pd.Series) -> pd.Series:
    """Vectorised is_valid over a Series of strings."""
    s = values.astype("string").fillna("")
    shape_ok = s.str.fullmatch(r"[12]\d{9}").fillna(False).astype(bool)
    padded = s.where(shape_ok, "1000000000")
    digits = np.frombuffer("".join(padded.tolist()).encode("ascii"), dtype=np.uint8).reshape(
        -1, 10
    ) - ord("0")
    doubled = digits[:, [8, 6, 4, 2, 0]] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = 24 + doubled.sum(axis=1) + digits[:, [7, 5, 3, 1]].sum(axis=1)
    ok = (10 - total % 10) % 10 == digits[:, 9]
    return pd.Series(ok, index=values.index) & shape_ok


def make_valid(first9: str) -> str:
    return first9 + str(check_digit(first9))
