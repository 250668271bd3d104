"""Test helpers for X12 837P and 837I output: pyx12 validation and our own independent checks.

Nothing here imports the writer (``therapy_claims.x12``) or ``therapy_claims.npi``: the checks
re-derive every rule from the text so that a bug in the writer cannot hide itself.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import traceback
from decimal import Decimal, InvalidOperation
from pathlib import Path

BASIC = re.compile(r"[A-Z0-9 !\"&'()+,\-./;?=]*")
OUTSIDE_BASIC = re.compile(r"[^A-Z0-9 !\"&'()+,\-./;?=]")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def _looks_like_text(value: str | os.PathLike) -> bool:
    return isinstance(value, str) and value.lstrip("\r\n").startswith("ISA")


def pyx12_validate(path_or_text: str | os.PathLike) -> tuple[bool, str]:
    """Validate an X12 file (path) or X12 text with pyx12 4.0.0.

    Returns ``(ok, report)``: ``ok`` is pyx12's verdict, ``report`` is the 999 it produced plus
    any warning/error lines pyx12 logged (or the traceback if pyx12 crashed, e.g. on non-ASCII).
    """
    import pyx12.params
    import pyx12.x12n_document

    tmp: str | None = None
    if _looks_like_text(path_or_text):
        fd, tmp = tempfile.mkstemp(suffix=".x12")
        with os.fdopen(fd, "w", encoding="ascii", errors="strict", newline="") as f:
            f.write(str(path_or_text))
        path = tmp
    else:
        path = str(Path(path_or_text))

    logger = logging.getLogger("pyx12")
    handler = _ListHandler()
    old_level = logger.level
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
    ack = io.StringIO()
    try:
        with open(path, encoding="ascii", newline="") as src:
            ok = bool(
                pyx12.x12n_document.x12n_document(
                    param=pyx12.params.params(),
                    src_file=src,
                    fd_997=ack,
                    fd_html=None,
                    fd_json=None,
                )
            )
    except Exception:  # pyx12 raises on non-ASCII input, unknown maps, ...
        ok = False
        handler.lines.append("EXCEPTION " + traceback.format_exc())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        if tmp:
            os.unlink(tmp)
    report = ack.getvalue()
    if handler.lines:
        report += "\n" + "\n".join(handler.lines)
    return ok, report


def _luhn_npi(npi: str) -> bool:
    """NPI check: plain Luhn over '80840' + NPI (CMS NPI check-digit requirements)."""
    if not re.fullmatch(r"[12]\d{9}", npi):
        return False
    digits = [int(ch) for ch in "80840" + npi]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _amount(value: str) -> Decimal | None:
    if not re.fullmatch(r"-?\d+(\.\d+)?|-?\.\d+", value):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def independent_checks(text: str) -> list[str]:
    """Our own structural and business checks on an 837P or 837I interchange; [] means no
    problems. CLM02 = sum of the line charges (SV102 / SV203), SE01 counts, envelope control
    numbers, HL numbering and parents, NPIs (billing, rendering, attending) pass the check
    digit, the billing ZIP has 9 digits, X12 basic charset, 837I lines carry no pointers and a
    revenue code, CLM01 at most 20 characters and unique within the interchange."""
    problems: list[str] = []
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        problems.append("text is not pure ASCII")
    body = text.lstrip("\r\n")
    if not body.startswith("ISA") or len(body) < 106:
        return problems + ["does not start with a 106-character ISA"]
    isa = body[:106]
    ele, comp, term = isa[3], isa[104], isa[105]
    if ele != "*" or comp != ":" or term != "~":
        problems.append(f"unexpected delimiters {ele!r} {comp!r} {term!r}")
    raw = [s.strip("\r\n") for s in body.split(term)]
    if raw and raw[-1] == "":
        raw.pop()
    segs = [s.split(ele) for s in raw]
    if any(not s or s == [""] for s in segs):
        problems.append("empty segment")
        segs = [s for s in segs if s and s != [""]]
    if len(raw[0]) != 105:
        problems.append(f"ISA is {len(raw[0]) + 1} characters, expected 106")

    # charset: after splitting on the delimiters every element/component must be X12 basic
    # (ISA11, the repetition separator, is the only exception)
    isa_elems = [e for j, e in enumerate(segs[0]) if j not in (11, 16)]
    if not all(BASIC.fullmatch(e) for e in isa_elems):
        problems.append("ISA: not X12 basic charset")
    for i, seg_text in enumerate(raw[1:], start=2):
        if OUTSIDE_BASIC.search(seg_text.replace(ele, "").replace(comp, "")):
            problems.append(f"segment {i} {seg_text.split(ele)[0]}: not X12 basic charset")
    for i, seg in enumerate(segs):
        if len(seg) > 1 and seg[-1] == "":
            problems.append(f"segment {i + 1} {seg[0]}: trailing empty element")

    # envelopes
    isa13 = segs[0][13] if len(segs[0]) > 13 else ""
    n_gs = 0
    gs06 = None
    st_in_group = 0
    st02 = None
    st_start = None
    hl_seen: set[str] = set()
    hl_expected = 1
    claim: dict | None = None
    prev_nm1 = None
    clm01_seen: set[str] = set()

    def close_claim() -> None:
        if claim is None:
            return
        total = sum(claim["lines"], Decimal(0))
        if claim["clm02"] is None or total != claim["clm02"]:
            problems.append(f"CLM {claim['id']}: CLM02 {claim['raw']} != sum of SV102 {total}")
        if not claim["lines"]:
            problems.append(f"CLM {claim['id']}: no service lines")

    for i, seg in enumerate(segs):
        sid = seg[0]
        if sid == "GS":
            n_gs += 1
            gs06 = seg[6] if len(seg) > 6 else None
            st_in_group = 0
        elif sid == "GE":
            if seg[1] != str(st_in_group):
                problems.append(f"GE01 {seg[1]} != {st_in_group} transaction sets")
            if seg[2] != gs06:
                problems.append(f"GE02 {seg[2]} != GS06 {gs06}")
        elif sid == "IEA":
            if seg[1] != str(n_gs):
                problems.append(f"IEA01 {seg[1]} != {n_gs} groups")
            if seg[2] != isa13:
                problems.append(f"IEA02 {seg[2]} != ISA13 {isa13}")
        elif sid == "ST":
            st_in_group += 1
            st02, st_start = seg[2], i
            hl_seen, hl_expected = set(), 1
        elif sid == "SE":
            close_claim()
            claim = None
            count = i - (st_start or 0) + 1
            if seg[1] != str(count):
                problems.append(f"SE01 {seg[1]} != {count} segments in ST {st02}")
            if seg[2] != st02:
                problems.append(f"SE02 {seg[2]} != ST02 {st02}")
        elif sid == "HL":
            close_claim()
            claim = None
            if seg[1] != str(hl_expected):
                problems.append(f"HL01 {seg[1]} out of sequence (expected {hl_expected})")
            hl_expected += 1
            parent = seg[2]
            if parent and parent not in hl_seen:
                problems.append(f"HL {seg[1]}: parent {parent} does not precede it")
            if seg[3] != "20" and not parent:
                problems.append(f"HL {seg[1]}: level {seg[3]} without a parent")
            hl_seen.add(seg[1])
        elif sid == "CLM":
            close_claim()
            claim = {"id": seg[1], "raw": seg[2], "clm02": _amount(seg[2]), "lines": []}
            if not 1 <= len(seg[1]) <= 20:
                problems.append(f"CLM01 {seg[1]} is not 1-20 characters")
            if seg[1] in clm01_seen:
                problems.append(f"CLM01 {seg[1]} repeated in the interchange")
            clm01_seen.add(seg[1])
        elif sid == "SV2":
            amount = _amount(seg[3]) if len(seg) > 3 else None
            if not re.fullmatch(r"\d{4}", seg[1] if len(seg) > 1 else ""):
                problems.append(f"SV2 in segment {i + 1}: SV201 is not a 4-digit revenue code")
            if len(seg) > 7:
                problems.append(f"SV2 in segment {i + 1}: more than 6 elements (pointers?)")
            if amount is None:
                problems.append(f"SV2 in segment {i + 1}: bad SV203")
            elif claim is None:
                problems.append(f"SV2 in segment {i + 1} outside a claim")
            else:
                claim["lines"].append(amount)
        elif sid == "SV1":
            amount = _amount(seg[2]) if len(seg) > 2 else None
            if amount is None:
                problems.append(f"SV1 in segment {i + 1}: bad SV102")
            elif claim is None:
                problems.append(f"SV1 in segment {i + 1} outside a claim")
            else:
                claim["lines"].append(amount)
        elif sid == "NM1":
            if seg[1] in ("85", "82", "71"):
                if len(seg) < 10 or seg[8] != "XX" or not _luhn_npi(seg[9]):
                    problems.append(f"NM1*{seg[1]} in segment {i + 1}: NPI fails the check digit")
        elif sid == "N4" and prev_nm1 == "85":
            if len(seg) < 4 or not re.fullmatch(r"\d{9}", seg[3]):
                problems.append(f"billing provider N4 in segment {i + 1}: ZIP is not 9 digits")
        if sid == "NM1":
            prev_nm1 = seg[1]
        elif sid in ("HL", "CLM", "LX"):
            prev_nm1 = None
    return problems
