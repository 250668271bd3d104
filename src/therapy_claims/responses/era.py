"""The 835 remittance (005010X221A1) as claim rows and service line rows, balanced.

Per transaction set: BPR (amount, date), TRN (the check or EFT trace), then per claim a CLP
with its claim-level CAS, and per service line an SVC with its DTM, CAS, REF*6R (the line id
our 837 sent), AMT*B6 (allowed) and LQ*HE (RARC); PLB adjustments in the footer.

An 835 that does not balance is refused whole. The guide requires, per line, SVC02 - its CAS
= SVC03; per claim, CLP03 - claim CAS - the lines' CAS = CLP04; per set, BPR02 = the sum of
CLP04 - the PLB amounts. Amounts we cannot reconcile must not move a claim to "paid"; the
error names the claim's position, not its values.
"""

from __future__ import annotations

from decimal import Decimal

from therapy_claims.responses.envelope import walk
from therapy_claims.responses.fields import At, parse_money
from therapy_claims.x12.reader import Separators, components

ZERO = Decimal("0.00")


def _adjustments(at: At) -> list[dict]:
    """One CAS: its group and up to six (reason, amount) pairs (the quantities are not kept)."""
    group = at.text(1, required=True, limit=2)
    found = []
    for pos in range(2, 20, 3):
        reason = at.text(pos, limit=5)
        if reason:
            found.append({"group": group, "reason": reason, "amount": at.money(pos + 1)})
        elif at.raw(pos + 1):
            raise at.fail("amount without a reason code", pos + 1)
    if not found:
        raise at.fail("CAS without a reason code", 2)
    return found


def _line(at: At, claim: dict, seps: Separators) -> dict:
    parts = components(at.text(1, required=True, limit=80) or "", seps)
    if len(parts) < 2 or not parts[1]:
        raise at.fail("procedure code is missing", 1)
    if any(len(p) > 48 for p in parts[:6]) or any(len(m) > 2 for m in parts[2:6]):
        raise at.fail("procedure code or modifier too long", 1)
    row = {k: claim[k] for k in _SHARED}
    row.update(
        line_number=len(claim["_lines"]) + 1,
        line_id=None,
        procedure_qualifier=parts[0] or None,
        procedure_code=parts[1],
        modifiers=[m for m in parts[2:6] if m],
        charge=at.money(2),
        paid=at.money(3),
        units=at.quantity(5, default=Decimal("1.00")),
        allowed=None,
        adjustments=[],
        remark_codes=[],
        service_date=None,
        _start=None,
    )
    return row


_SHARED = (
    "source_file",
    "interchange_control_number",
    "transaction_set_control_number",
    "response_date",
    "payment_trace",
    "payment_date",
    "claim_sequence",
    "claim_id",
    "claim_status_code",
    "payer_claim_control_number",
)


def _claim(at: At, lineage_row: dict, header: dict, sequence: int) -> dict:
    row = dict(lineage_row)
    row.update(
        payment_trace=header.get("payment_trace"),
        payment_date=header.get("payment_date"),
        claim_sequence=sequence,
        claim_id=at.text(1, required=True, limit=38),
        claim_status_code=at.text(2, required=True, limit=2),
        payer_claim_control_number=at.text(7, limit=50),
        charge=at.money(3),
        paid=at.money(4),
        patient_responsibility=at.money(5, required=False),
        filing_indicator=at.text(6, limit=2),
        adjustments=[],
        _lines=[],
        _at=at,
    )
    return row


def _line_segment(at: At, line: dict) -> None:
    if at.id == "CAS":
        line["adjustments"] += _adjustments(at)
    elif at.id == "REF" and at.raw(1) == "6R":
        line["line_id"] = at.text(2, required=True, limit=50)
    elif at.id == "AMT" and at.raw(1) == "B6":
        line["allowed"] = at.money(2)
    elif at.id == "LQ" and at.raw(1) == "HE":
        line["remark_codes"].append(at.text(2, required=True, limit=30))
    elif at.id == "DTM" and at.raw(1) == "472":
        line["service_date"] = at.date(2, required=True)
    elif at.id == "DTM" and at.raw(1) == "150":
        line["_start"] = at.date(2, required=True)


def _plb(at: At) -> Decimal:
    """The sum of one PLB's adjustment amounts (PLB04, 06, ... 14)."""
    total = ZERO
    for pos in range(3, 15, 2):
        if at.raw(pos):
            total += parse_money(at, pos + 1, at.raw(pos + 1)) or ZERO
    return total


def _total(adjustments: list[dict]) -> Decimal:
    return sum((a["amount"] for a in adjustments), ZERO)


def _check_set(claims: list[dict], header: dict, plb: Decimal, se: At) -> None:
    for claim in claims:
        at: At = claim["_at"]
        lines_adjusted = ZERO
        for line in claim["_lines"]:
            if line["charge"] - _total(line["adjustments"]) != line["paid"]:
                raise at.fail(f"service line {line['line_number']} does not balance")
            lines_adjusted += _total(line["adjustments"])
        if claim["charge"] - _total(claim["adjustments"]) - lines_adjusted != claim["paid"]:
            raise at.fail("claim does not balance (charge - adjustments != paid)")
    if "amount" not in header:
        raise se.fail("transaction set without BPR")
    if sum((c["paid"] for c in claims), ZERO) - plb != header["amount"]:
        raise se.fail("BPR02 is not the sum of the claims' paid amounts less PLB")


def read_835(text: str, source: str) -> tuple[list[dict], list[dict]]:
    """(claim rows, service line rows) of an 835 interchange."""
    claims: list[dict] = []
    lines: list[dict] = []
    set_claims: list[dict] = []
    header: dict = {}
    plb = ZERO
    claim: dict | None = None
    line: dict | None = None
    for event, at, lineage in walk(text, source, "835"):
        if event == "ST":
            set_claims, header, plb, claim, line = [], {}, ZERO, None, None
        elif event == "SE":
            _check_set(set_claims, header, plb, at)
            claims += set_claims
        elif at.id == "BPR" and claim is None:
            header.update(amount=at.money(2), payment_date=at.date(16, required=True))
        elif at.id == "TRN" and claim is None:
            header["payment_trace"] = at.text(2, required=True, limit=50)
        elif at.id == "CLP":
            claim = _claim(at, lineage.row(), header, len(claims) + len(set_claims) + 1)
            set_claims.append(claim)
            line = None
        elif at.id == "PLB":
            claim = line = None
            plb += _plb(at)
        elif claim is None:
            continue
        elif at.id == "SVC":
            line = _line(at, claim, lineage.separators)
            claim["_lines"].append(line)
        elif line is not None:
            _line_segment(at, line)
        elif at.id == "CAS":
            claim["adjustments"] += _adjustments(at)
    for claim in claims:
        claim.pop("_at")
        claim_lines = claim.pop("_lines")
        claim["line_count"] = len(claim_lines)
        for row in claim_lines:
            start = row.pop("_start")
            row["service_date"] = row["service_date"] or start
            lines.append(row)
    return claims, lines
