"""Reading X12: a tokenizer for any transaction, and a per-claim view of an 837.

The tokenizer learns the separators from the interchange's fixed-length ISA header (element
after ``ISA``, repetition in ISA11 from version 00402 on, component in ISA16, the segment
terminator right after it), so it reads an 837, a 999, a 277CA or an 835 alike and whatever
separators the sender chose. Line breaks around segments are dropped. A segment is a list of
its elements, the segment id first (``["CLM", "PCN1", "150", ...]``).

The claim view (:func:`claims`) cuts an 837 into claims: each CLM with the segments of its
transaction set's header, its 2000A billing provider, its 2000B subscriber (with a 2000C
patient), its 2300 claim (with the 2310 loops) and its 2400 service lines (with the 2420
loops).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

Segment = list[str]
ISA_LENGTH = 106  # the ISA segment with its terminator


class Separators(NamedTuple):
    """The delimiters of one interchange (``repetition`` is "" before version 00402)."""

    element: str
    component: str
    repetition: str
    segment: str


def _as_text(data: str | bytes) -> str:
    return data.decode("ascii") if isinstance(data, bytes | bytearray | memoryview) else data


def separators(data: str | bytes) -> Separators:
    """The separators an interchange declares in its ISA header.

    Raises ``ValueError`` when ``data`` does not start (after line breaks) with an ISA."""
    body = _as_text(data).lstrip("\r\n")
    if not body.startswith("ISA") or len(body) < ISA_LENGTH:
        raise ValueError("not an X12 interchange: it does not start with a 106-character ISA")
    element = body[3]
    isa = body[:ISA_LENGTH].split(element)
    version = isa[12] if len(isa) > 12 else ""
    repetition = body[82] if version >= "00402" else ""
    return Separators(element, body[104], repetition, body[105])


def tokenize(data: str | bytes) -> Iterator[Segment]:
    """The segments of an interchange, in order, each as its list of elements."""
    text = _as_text(data)
    seps = separators(text)
    for raw in text.lstrip("\r\n").split(seps.segment):
        raw = raw.strip("\r\n")
        if raw:
            yield raw.split(seps.element)


def element(segment: Segment, position: int) -> str:
    """Element ``position`` (the id is 0), or "" when the segment is shorter."""
    return segment[position] if len(segment) > position else ""


def components(value: str, seps: Separators) -> list[str]:
    """The components of a composite element."""
    return value.split(seps.component)


@dataclass
class ClaimView:
    """One CLM of an 837 and the segments that describe it, each part in file order."""

    id: str  # CLM01
    charge: str  # CLM02, as written
    version: str  # ST03, e.g. 005010X222A1
    separators: Separators
    header: list[Segment] = field(default_factory=list)  # ST, BHT, 1000A, 1000B
    billing: list[Segment] = field(default_factory=list)  # 2000A: HL*20, 2010AA
    subscriber: list[Segment] = field(default_factory=list)  # 2000B, 2010Bx, 2000C, 2010CA
    claim: list[Segment] = field(default_factory=list)  # 2300 (CLM first) and 2310x
    lines: list[list[Segment]] = field(default_factory=list)  # per 2400 (LX first) with 2420x

    @property
    def institutional(self) -> bool:
        return self.version.startswith("005010X223")


_CLAIM_ENDS = {"HL", "CLM", "SE", "GE", "IEA", "ST"}


def claims(data: str | bytes) -> Iterator[ClaimView]:
    """Each claim of an 837 interchange, in file order."""
    text = _as_text(data)
    seps = separators(text)
    version = ""
    header: list[Segment] = []
    billing: list[Segment] = []
    subscriber: list[Segment] = []
    b_loop: list[Segment] = []  # the 2000B's own segments (shared by its 2000C loops)
    current: ClaimView | None = None
    part: list[Segment] = header
    for seg in tokenize(text):
        sid = seg[0]
        if current is not None and sid in _CLAIM_ENDS:
            yield current
            current = None
        if sid == "ST":
            version, header, billing, subscriber, b_loop = element(seg, 3), [], [], [], []
            part = header
        elif sid == "HL":
            level = element(seg, 3)
            if level == "20":
                billing, subscriber, b_loop = [], [], []
                part = billing
            elif level == "22":
                subscriber = b_loop = []
                part = subscriber
            else:  # 2000C patient (or a deeper level): after its 2000B
                subscriber = list(b_loop)
                part = subscriber
        elif sid == "CLM":
            current = ClaimView(
                element(seg, 1), element(seg, 2), version, seps, header, billing, subscriber
            )
            part = current.claim
        elif sid == "LX" and current is not None:
            current.lines.append([])
            part = current.lines[-1]
        elif sid in ("SE", "GE", "IEA"):
            part = []
        part.append(seg)
    if current is not None:
        yield current


def find_claim(data: str | bytes, claim_id: str) -> ClaimView | None:
    """The first claim whose CLM01 is ``claim_id``, or None."""
    return next((c for c in claims(data) if c.id == claim_id), None)
