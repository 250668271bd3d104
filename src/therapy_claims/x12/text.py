"""Text as X12 elements carry it: cleaning free text to the basic character set, amounts.

Every free-text element goes through :func:`clean_text` (upper-case, ASCII, X12 *basic*
character set; delimiters, control characters and whitespace become a space) cut to the
element's maximum length. Money is handled in integer cents, so a claim's total is exactly the
sum of its lines' amounts (:func:`money`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd

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


# word breaks: whitespace (any Unicode space, tabs, line ends), the X12 delimiters (this
# writer's element *, component :, repetition ^ and segment ~ separators, and |, which other
# senders use as one) and control characters (C0, DEL, C1). Each becomes a space, not nothing,
# so that O'BRIEN*SMITH stays two words (issue 15).
_BREAKS = re.compile(r"[\s*:^~|\x00-\x1f\x7f-\x9f]+")


_MULTI_SPACE = re.compile(r" {2,}")


_NOT_CODE = re.compile(r"[^A-Z0-9]")

# what clean_text leaves unchanged: X12 basic characters, single inner spaces (a pyarrow
# regex, so whole columns of already clean values pass without Python)
CLEAN_RE = r"^[A-Z0-9!\"&'()+,\-./;?=]+(?: [A-Z0-9!\"&'()+,\-./;?=]+)*$"


def is_na(value: object) -> bool:
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
    text = _BREAKS.sub(" ", text.upper())  # delimiters, controls, whitespace -> one space
    text = _NOT_BASIC.sub("", text)  # any other character outside the basic set: dropped
    return _MULTI_SPACE.sub(" ", text).strip()


def clean_text(value: object, max_len: int | None = None) -> str:
    """Make ``value`` safe for an X12 element.

    Upper-cases, transliterates to ASCII (``JOSÉ`` -> ``JOSE``, ``ß`` -> ``SS``, ``Ø`` -> ``O``),
    turns every word break into a space: whitespace, the X12 delimiters ``* : ^ ~ |`` and
    control characters (U+0000-U+001F, U+007F-U+009F), so ``O'BRIEN*SMITH`` ->
    ``O'BRIEN SMITH``; then drops any other character outside the X12 basic character set
    ``A-Z 0-9`` space ``! " & ' ( ) + , - . / ; ? =`` (``#``, ``@``, ``%``, emoji, letters
    with no ASCII form, zero-width and other format characters), collapses runs of spaces,
    strips, and cuts to ``max_len`` (then strips the cut's trailing spaces). A compatibility
    form is transliterated first, so a full-width ``＊`` is a delimiter too. None/NA -> ``""``.
    """
    if isinstance(value, str):
        return _clean_cut(value, max_len)
    if is_na(value):
        return ""
    return _clean_cut(str(value), max_len)


@lru_cache(maxsize=1 << 18)
def _clean_cut(text: str, max_len: int | None) -> str:
    text = _clean_str(text)
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


@lru_cache(maxsize=1 << 16)
def hi_codes(codes: tuple) -> list[str]:
    """ICD-10-CM codes as HI carries them: cleaned, without the dot, empties dropped."""
    out = [_NOT_CODE.sub("", clean_text(d)) for d in codes]
    return [d for d in out if d]


def digits_of(value: object) -> str:
    return "" if is_na(value) else re.sub(r"\D", "", str(value))


def money(cents: int) -> str:
    """X12 R-type amount from integer cents: 150, 87.5, 87.25 (no trailing zeros)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def as_list(value: object) -> list:
    """A list from a list/array, or from the extract's ``;``-joined text (``"GP;59"``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(";") if v]
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return list(value)
    return [] if is_na(value) else [value]


def as_tuple(value: object) -> tuple:
    """``tuple(as_list(value))``, quicker for the numpy array cells of a parquet list column."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return tuple(value.tolist())
    return tuple(as_list(value))
