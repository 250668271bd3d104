"""The two acknowledgments: 999 (per transaction set) and 277CA (per claim), as table rows.

999 (005010X231A1): AK1 names the group we sent (our GS06 and GS08), each AK2 one of its
transaction sets (our ST02), IK3/IK4 the segment and element that failed and IK5 the set's
verdict; AK9 the group's. The failing places are kept as short text ("CLM@22:8",
"CLM02:1") because they are read by people deciding what to fix, not computed with.

277CA (005010X214): the 2200D loop under each patient HL is one claim: TRN02 is our CLM01,
STC its status (category:status:entity), REF*1K the payer's claim control number. Service
line (2220D) statuses are not kept: the brief asks for the claim, and a claim is accepted or
rejected whole.
"""

from __future__ import annotations

from bisect import bisect_right

from therapy_claims.responses.envelope import walk
from therapy_claims.responses.fields import At
from therapy_claims.x12.reader import Separators, components, tokenize

ACCEPTED_SETS = {"A", "E"}  # accepted, or accepted with errors: forwarded either way
ACCEPTED_CATEGORIES = {"A1", "A2"}


def _element_label(at: At, segment_id: str, seps: Separators) -> str:
    """IK4's place as "CLM02" or "SV101-2" (the segment id from the IK3 it follows)."""
    parts = components(at.text(1, required=True, limit=9) or "", seps)
    if not all(p.isdigit() and len(p) <= 3 for p in parts[:2]):
        raise at.fail("is not an element position", 1)
    label = f"{segment_id or '?'}{int(parts[0]):02d}"
    if len(parts) > 1 and parts[1]:
        label += f"-{int(parts[1])}"
    return f"{label}:{at.text(3, required=True, limit=3)}"


def _parties(text: str) -> tuple[list[int], list[tuple[str | None, str | None]]]:
    """Each ISA's segment number and its (ISA06, ISA08) without the padding, in file order.

    The 999 answers a group by its GS06 alone, and our GS06 counts per submitter: which
    submitter's group it is, the 999 says only in its envelope (ISA08 = the submitter, our
    837's ISA06). The envelope walk hands the readers no ISA, so they are found here by
    position (``At.number`` counts the same segments)."""
    numbers: list[int] = []
    parties: list[tuple[str | None, str | None]] = []
    for number, seg in enumerate(tokenize(text), start=1):
        if seg[0] == "ISA":
            at = At(number, seg)
            numbers.append(number)
            parties.append(tuple(_isa_id(at, p) for p in (6, 8)))
    return numbers, parties


def _isa_id(at: At, position: int) -> str | None:
    return (at.text(position, required=True, limit=15) or "").strip() or None


def read_999(text: str, source: str) -> list[dict]:
    """One row per AK2; a group answered without any AK2 gives one row for the whole group."""
    rows: list[dict] = []
    set_rows: list[dict] = []
    group: dict = {}
    current: dict | None = None
    segment_id = ""
    isa_at, parties = _parties(text)
    sender = receiver = None
    for event, at, lineage in walk(text, source, "999"):
        seps = lineage.separators
        if event == "ST":
            set_rows, group, current = [], {}, None
            sender, receiver = parties[bisect_right(isa_at, at.number) - 1]
        elif event == "SE":
            if not set_rows and group:  # AK9 only: the verdict is the group's
                set_rows.append(_row(lineage.row(), group))
                set_rows[-1].update(
                    set_status=group.get("group_status"),
                    accepted=group.get("group_status") in ACCEPTED_SETS,
                    set_error_codes=group.get("_group_codes", []),
                )
            for row in set_rows:
                row.update(
                    group_status=group.get("group_status"),
                    sender_id=sender,
                    receiver_id=receiver,
                )
            rows += set_rows
        elif at.id == "AK1":
            group = {
                "sent_group_control_number": at.text(2, required=True, limit=9),
                "sent_version": at.text(3, limit=12),
            }
        elif at.id == "AK2":
            current = _row(lineage.row(), group)
            current.update(
                sent_set_type=at.text(1, limit=3),
                sent_set_control_number=at.text(2, required=True, limit=9),
            )
            current["_at"] = at
            set_rows.append(current)
            segment_id = ""
        elif at.id == "IK3" and current is not None:
            segment_id = at.text(1, required=True, limit=3) or ""
            place = f"{segment_id}@{at.text(2, limit=10) or ''}"
            code = at.text(4, limit=3)
            current["_segments"].append(place + (f":{code}" if code else ""))
        elif at.id == "IK4" and current is not None:
            current["_elements"].append(_element_label(at, segment_id, seps))
        elif at.id == "IK5" and current is not None:
            status = at.text(1, required=True, limit=1)
            current.update(
                set_status=status,
                accepted=status in ACCEPTED_SETS,
                set_error_codes=[c for c in (at.text(i, limit=3) for i in range(2, 7)) if c],
            )
        elif at.id == "AK9":
            group["group_status"] = at.text(1, required=True, limit=1)
            group["_group_codes"] = [c for c in (at.text(i, limit=3) for i in range(5, 10)) if c]
    for row in rows:
        at = row.pop("_at", None)
        if row.get("set_status") is None and at is not None:
            raise at.fail("AK2 without IK5")
        row["error_segments"] = "; ".join(row.pop("_segments")) or None
        row["error_elements"] = "; ".join(row.pop("_elements")) or None
    return rows


def _row(lineage: dict, group: dict) -> dict:
    row = dict(lineage)
    row.update(
        sent_group_control_number=group.get("sent_group_control_number"),
        sent_version=group.get("sent_version"),
        sent_set_type=None,
        sent_set_control_number=None,
        set_status=None,
        accepted=None,
        set_error_codes=[],
        group_status=None,
        _segments=[],
        _elements=[],
    )
    return row


def read_277ca(text: str, source: str) -> list[dict]:
    """One row per 2200D claim (TRN*2 under a patient HL)."""
    rows: list[dict] = []
    claim: dict | None = None
    level = ""
    batch: str | None = None
    in_line = False
    for event, at, lineage in walk(text, source, "277CA"):
        seps = lineage.separators
        if event != "SEG" or at.id in ("HL", "TRN"):
            if claim is not None:
                rows.append(_finish_claim(claim))
                claim = None
            if event == "ST":
                batch, level = None, ""
        if event != "SEG":
            continue
        if at.id == "HL":
            level = at.text(3, required=True, limit=2) or ""
        elif at.id == "TRN" and level == "21" and at.raw(1) == "2":
            batch = at.text(2, limit=50)
        elif at.id == "TRN" and level == "PT" and at.raw(1) == "2":
            claim = dict(lineage.row())
            claim.update(
                batch_reference=batch,
                claim_id=at.text(2, required=True, limit=50),
                payer_claim_control_number=None,
                clearinghouse_trace=None,
                service_date=None,
                _stc=[],
                _at=at,
            )
            in_line = False
        elif claim is None:
            continue
        elif at.id == "SVC":
            in_line = True
        elif in_line:
            continue  # 2220D service line status: not kept
        elif at.id == "STC":
            claim["_stc"].append(_status(at, seps))
        elif at.id == "REF" and at.raw(1) == "1K":
            claim["payer_claim_control_number"] = at.text(2, required=True, limit=50)
        elif at.id == "REF" and at.raw(1) == "D9":
            claim["clearinghouse_trace"] = at.text(2, limit=50)
        elif at.id == "DTP" and at.raw(1) == "472":
            claim["service_date"] = at.date(3)
    return rows


def _status(at: At, seps: Separators) -> dict:
    parts = components(at.text(1, required=True, limit=40) or "", seps)
    parts = parts + ["", "", ""]
    return {
        "category": parts[0] or None,
        "status": parts[1] or None,
        "entity": parts[2] or None,
        "status_date": at.date(2),
        "action_code": at.text(3, limit=2),
        "charge": at.money(4, required=False),
        "_label": ":".join(p for p in parts[:3] if p),
    }


def _finish_claim(claim: dict) -> dict:
    statuses = claim.pop("_stc")
    trn: At = claim.pop("_at")
    if not statuses:
        raise trn.fail("claim without STC")
    rejecting = [s for s in statuses if s["category"] not in ACCEPTED_CATEGORIES]
    deciding = rejecting[0] if rejecting else statuses[0]
    claim.update({k: v for k, v in deciding.items() if not k.startswith("_")})
    claim["accepted"] = not rejecting
    claim["other_statuses"] = [s["_label"] for s in statuses if s is not deciding]
    return claim
