"""What an X12 file is, told from its content: the ISA header, then GS01, GS08 and ST01.

A landing zone gets extracts, our own 837s (when someone copies them back) and the payer's
999, 277CA and 835 files under whatever names the clearinghouse chose, so the file name says
nothing we can trust. The envelope does: GS01 is the functional identifier code (FA, HN, HP,
HC), GS08 the implementation guide and ST01 the transaction set. All three must agree, so a
277 claim status response (005010X212, the answer to a 276) is not taken for a 277CA.
"""

from __future__ import annotations

from therapy_claims.x12.reader import Segment, element, separators

# (GS01, GS08 prefix, ST01) -> kind. A prefix so that errata (…A1, …A2) still match.
_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("FA", "005010X231", "999", "999"),
    ("HN", "005010X214", "277", "277CA"),
    ("HP", "005010X221", "835", "835"),
    ("HC", "005010X222", "837", "837"),
    ("HC", "005010X223", "837", "837"),
)
RESPONSE_KINDS = ("999", "277CA", "835")

# kind_of looks at the head only: the envelope is in the first few hundred bytes, and a
# multi-megabyte file (or a hostile one) must not be decoded whole to be sorted.
_HEAD_BYTES = 4096
_MAX_SEGMENT = 512  # no envelope segment is longer; a longer one means this is not X12


def kind_of_group(gs: Segment, st: Segment) -> str | None:
    """The kind a GS/ST pair announces, or None when it is none we know."""
    gs01, gs08, st01 = element(gs, 1), element(gs, 8), element(st, 1)
    for code, guide, set_id, kind in _KINDS:
        if gs01 == code and gs08.startswith(guide) and st01 == set_id:
            return kind
    return None


def kind_of(data: bytes | str) -> str | None:
    """The file's kind from its envelope: "999", "277CA", "835", "837", or None for the rest.

    Never raises: junk, binary, non-ASCII or a truncated header all give None."""
    try:
        head = data[:_HEAD_BYTES]
        text = head.decode("ascii") if isinstance(head, bytes | bytearray) else str(head)
        text.encode("ascii")
        seps = separators(text)
    except (ValueError, UnicodeError, TypeError):
        return None
    gs: Segment | None = None
    body = text.lstrip("\r\n")
    for raw in body.split(seps.segment)[1:]:
        raw = raw.strip("\r\n")
        if len(raw) > _MAX_SEGMENT:
            return None
        seg = raw.split(seps.element)
        if seg[0] == "GS":
            gs = seg
        elif seg[0] == "ST":
            return kind_of_group(gs, seg) if gs is not None else None
        elif seg[0] not in ("", "TA1"):
            return None  # something other than the envelope before the first ST
    return None
