"""Typed, capped access to one segment's elements, for hostile response files.

Every value that leaves a response file goes through here: text is capped (no X12 element we
keep is longer than 80 characters, so a longer one is an attack or garbage, not data), money
must be a plain X12 decimal with at most two places, dates CCYYMMDD. A problem raises
``ResponseError`` naming the segment's position and id and the element's position, never its
value: the files carry names and member ids.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from therapy_claims.x12.reader import Segment, element

TEXT_MAX = 80
CENT = Decimal("0.01")
_MONEY = re.compile(r"-?(?:\d{1,10}(?:\.\d{0,2})?|\.\d{1,2})")
_QUANTITY = re.compile(r"-?(?:\d{1,9}(?:\.\d{0,2})?|\.\d{1,2})")
_DATE = re.compile(r"\d{8}")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")


class ResponseError(ValueError):
    """A response file that cannot be applied; the message names positions, never values."""


class At:
    """One segment and where it is, for reading its elements and naming it in errors."""

    __slots__ = ("number", "seg")

    def __init__(self, number: int, seg: Segment) -> None:
        self.number = number
        self.seg = seg

    @property
    def id(self) -> str:
        return self.seg[0]

    def where(self, position: int | None = None) -> str:
        sid = self.seg[0] if _SEGMENT_ID.fullmatch(self.seg[0]) else "?"
        at = f"segment {self.number} ({sid})"
        return at if position is None else f"{at} element {position}"

    def fail(self, what: str, position: int | None = None) -> ResponseError:
        return ResponseError(f"{self.where(position)}: {what}")

    def raw(self, position: int) -> str:
        return element(self.seg, position)

    def text(self, position: int, required: bool = False, limit: int = TEXT_MAX) -> str | None:
        value = element(self.seg, position)
        if len(value) > limit:
            raise self.fail(f"longer than {limit} characters", position)
        if not value and required:
            raise self.fail("is missing", position)
        return value or None

    def money(self, position: int, required: bool = True) -> Decimal | None:
        return parse_money(self, position, element(self.seg, position), required)

    def quantity(self, position: int, default: Decimal | None = None) -> Decimal | None:
        value = element(self.seg, position)
        if not value:
            return default
        if not _QUANTITY.fullmatch(value):
            raise self.fail("is not a quantity", position)
        return Decimal(value).quantize(CENT)

    def date(self, position: int, required: bool = False) -> date | None:
        return parse_date(self, position, element(self.seg, position), required)


def parse_money(at: At, position: int, value: str, required: bool = True) -> Decimal | None:
    """An X12 amount as Decimal cents (``decimal(12, 2)`` holds it)."""
    if not value:
        if required:
            raise at.fail("amount is missing", position)
        return None
    if not _MONEY.fullmatch(value):
        raise at.fail("is not an amount with at most 2 decimals", position)
    return Decimal(value).quantize(CENT)


def parse_date(at: At, position: int, value: str, required: bool = False) -> date | None:
    """A CCYYMMDD date (the first one of an RD8 range ``CCYYMMDD-CCYYMMDD``)."""
    value = value.split("-", 1)[0]
    if not value:
        if required:
            raise at.fail("date is missing", position)
        return None
    if not _DATE.fullmatch(value):
        raise at.fail("is not a CCYYMMDD date", position)
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise at.fail("is not a calendar date", position) from None
