"""Walking a response interchange: the envelope (ISA/GS/ST .. SE/GE/IEA) and its lineage.

The kind readers (999, 277CA, 835) only see the segments inside transaction sets plus a call
at each ST and SE; this module keeps the lineage every row carries and refuses an
interchange whose groups are not all of one kind (a 999 group next to an 835 group would be
applied half by one reader and half by none).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from therapy_claims.responses.fields import At, ResponseError
from therapy_claims.responses.kinds import kind_of_group
from therapy_claims.x12.reader import Segment, Separators, element, separators, tokenize

Event = Literal["ST", "SE", "SEG"]


@dataclass
class Lineage:
    """Where a row comes from; ``row()`` is the lineage columns of the tables."""

    source_file: str
    interchange_control_number: str | None = None
    transaction_set_control_number: str | None = None
    response_date: date | None = None
    separators: Separators = Separators("*", ":", "^", "~")

    def row(self) -> dict:
        return {
            "source_file": self.source_file,
            "interchange_control_number": self.interchange_control_number,
            "transaction_set_control_number": self.transaction_set_control_number,
            "response_date": self.response_date,
        }


def walk(text: str, source: str, kind: str) -> Iterator[tuple[Event, At, Lineage]]:
    """The interchange's events: ("ST", at, lineage) when a set opens, ("SEG", ...) for each
    segment inside it, ("SE", ...) when it closes. Raises ``ResponseError`` on an envelope
    that does not hold together (a group of another kind, a segment outside any set, an
    unclosed set)."""
    seps = separators(text)
    lineage = Lineage(source_file=source, separators=seps)
    gs: Segment | None = None
    in_set = False
    for number, seg in enumerate(tokenize(text), start=1):
        at = At(number, seg)
        sid = seg[0]
        if sid == "ISA":
            lineage.interchange_control_number = at.text(13, required=True, limit=9)
        elif sid == "GS":
            gs = seg
            lineage.response_date = at.date(4)
        elif sid == "ST":
            if gs is None or in_set:
                raise at.fail("ST outside a functional group or inside another set")
            if kind_of_group(gs, seg) != kind:
                raise at.fail(f"transaction set is not a {kind} (mixed interchange)")
            lineage.transaction_set_control_number = at.text(2, required=True, limit=9)
            in_set = True
            yield "ST", at, lineage
        elif sid == "SE":
            if not in_set:
                raise at.fail("SE without ST")
            yield "SE", at, lineage
            in_set = False
        elif sid in ("GE", "IEA", "TA1"):
            if in_set:
                raise at.fail("envelope segment inside a transaction set")
        elif in_set:
            yield "SEG", at, lineage
        else:
            raise at.fail("segment outside a transaction set")
    if in_set:
        raise ResponseError("the interchange ends inside a transaction set (no SE)")
    if element(gs or [], 0) != "GS":
        raise ResponseError("the interchange has no functional group")
