"""A payer simulator: the 999, 277CA and 835 a clearinghouse and payer would send back for the
837 files a night sent, for the demo and for tests of the response readers.

Why a simulator: the response side (issue 17) needs realistic files to read, in volume and with
every outcome, and no payer will send them for synthetic claims. Each outcome is decided by a
hash of the seed and the claim's CLM01 (never by file order or a random generator's state), so
the same 837s and seed give the same bytes, and a claim keeps its fate wherever it is sent.

Outcomes, per claim:
- its transaction set rejected by the 999 (``set_reject_share`` of the sets, IK3/IK4/IK5*R):
  it never reaches the payer, so it is in no 277CA and no 835;
- rejected by the 277CA (``reject_share``, A3/A6/A7/A8 + status + entity codes);
- else in the 835: denied (``deny_share``, CLP02 = 4, CO-97/18/29/16 with a RARC), paid in
  full, or partially paid (CO-45 contractual, PR-1 deductible or PR-2 coinsurance).

Every 835 balances as the guide asks: per line and per claim, charge - sum(CAS) = paid, and
BPR02 = sum of CLP04. The responses come FROM the 837's receiver TO its submitter (ISA06/ISA08
and GS02/GS03 swapped) with their own control numbers. The 277CA and 835 carry the patient's
name and member id, as real ones do: they are PHI, written owner-only on a local folder; the
simulation record (``simulation.json``) holds claim ids, outcomes and amounts only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from therapy_claims import storage
from therapy_claims.x12 import reader

log = logging.getLogger(__name__)

KINDS = ("999", "277ca", "835")
CENT = Decimal("0.01")
ZERO = Decimal(0)
TIME = "1200"  # every response is stamped at noon of ``on``: same input, same bytes
_FREE_TEXT = 35  # names copied from the 837 are capped (hostile text stays short)

# 277CA 2200D rejections: (category, status, entity), the entity among the guide's codes
REJECTIONS = (
    ("A3", "21", "85"),  # returned as unprocessable: missing or invalid information, billing
    ("A6", "562", "82"),  # rejected for missing information: rendering provider's NPI
    ("A7", "562", "85"),  # rejected for invalid information: billing provider's NPI
    ("A8", "116", "40"),  # rejected for relational field: submitted to the wrong payer
)
ACCEPTED = ("A2", "20")  # accepted into adjudication
# 835 denials: (group, CARC, RARC)
DENIALS = (
    ("CO", "97", "M15"),  # bundled into another service
    ("CO", "18", "N522"),  # exact duplicate claim / service
    ("CO", "29", "N211"),  # time limit for filing has expired
    ("CO", "16", "MA130"),  # lacks information needed for adjudication
)
# 999 errors: (segment id, loop, IK4 position, data element number, IK403 code)
SET_ERRORS = (
    ("NM1", "2010AA", "9", "67", "7"),  # billing provider NPI: invalid code value
    ("CLM", "2300", "5:1", "1331", "7"),  # facility code: invalid code value
    ("DTP", "2400", "3", "1251", "8"),  # date of service: invalid date
)
# SBR09 claim filing indicators the 835's CLP06 does not list, and what a payer answers
FILING_835 = {"CI": "15", "BL": "12"}
CLP06_CODES = {"12", "13", "14", "15", "16", "17", "AM", "CH", "DS", "HM", "LM", "MA", "MB"}
CLP06_CODES |= {"MC", "OF", "TV", "VA", "WC", "ZZ"}
PAYER_SEQUENCE = {"P": "1", "S": "2", "T": "3"}
ST01 = {"FA": "999", "HN": "277", "HP": "835"}  # by GS01


def fraction(seed: int, *key: str) -> float:
    """A number in [0, 1) fixed by the seed and ``key`` (e.g. an outcome and a CLM01)."""
    digest = hashlib.sha256("\x1f".join([str(seed), *key]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(seed: int, options: tuple, *key: str):
    return options[int(fraction(seed, *key) * len(options))]


def _number(seed: int, digits: int, *key: str) -> str:
    """A control or claim number of ``digits`` digits fixed by the seed and ``key`` (not 0)."""
    value = int(fraction(seed, *key) * (10**digits - 1)) + 1
    return f"{value:0{digits}d}"


def money(value: Decimal) -> str:
    """An X12 amount: no trailing zeros, no needless point (``61.6``, ``112``, ``0``)."""
    text = format(value.quantize(CENT), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _text(value: str, limit: int = _FREE_TEXT) -> str:
    """Free text from the 837 made safe for ours: no separator, capped."""
    return "".join(ch for ch in value if ch not in "*:~^\r\n")[:limit].strip()


# ---------------------------------------------------------------- reading the 837


@dataclass
class Line:
    procedure: list[str]  # SV101 / SV202 components, e.g. ["HC", "97140", "GP"]
    charge: Decimal
    units: str
    served: str  # DTP*472 date (D8) or range
    revenue: str = ""  # SV201 on an 837I
    line_id: str = ""  # REF*6R when the 837 line carries one


@dataclass
class Claim:
    id: str
    charge: Decimal
    st02: str
    filing: str  # SBR09
    sequence: str  # SBR01
    facility: str  # CLM05-1
    frequency: str  # CLM05-3
    patient: tuple[str, str]  # last, first
    member_id: str
    insured: tuple[str, str, str] | None  # NM102, last, first when the patient is not him
    billing: tuple[str, str]  # name, NPI
    lines: list[Line] = field(default_factory=list)

    @property
    def served(self) -> tuple[str, str]:
        days = sorted(d for ln in self.lines for d in ln.served.split("-") if d)
        return (days[0], days[-1]) if days else ("", "")


@dataclass
class Submission:
    """One 837 interchange: its envelope, its transaction sets and its claims."""

    isa: list[str]
    gs: list[str]
    bht03: str
    submitter: tuple[str, str]  # 1000A name, id
    receiver: tuple[str, str]  # 1000B name, id
    billing: dict[tuple[str, str], list[str]]  # (name, NPI) -> [N3, N4 parts..., EIN]
    sets: dict[str, dict] = field(default_factory=dict)  # ST02 -> version, positions
    claims: list[Claim] = field(default_factory=list)


def _line(segs: list[list[str]], seps: reader.Separators) -> Line:
    line = Line([], ZERO, "", "")
    for seg in segs:
        el = lambda i, seg=seg: reader.element(seg, i)  # noqa: E731
        if seg[0] == "SV1":
            line.procedure = [_text(c, 48) for c in reader.components(el(1), seps)]
            line.charge, line.units = Decimal(el(2)), el(4)
        elif seg[0] == "SV2":
            line.revenue = el(1)
            line.procedure = [_text(c, 48) for c in reader.components(el(2), seps)]
            line.charge, line.units = Decimal(el(3)), el(5)
        elif seg[0] == "DTP" and el(1) == "472":
            line.served = el(3)
        elif seg[0] == "REF" and el(1) == "6R":
            line.line_id = _text(el(2), 50)
    return line


def _claim(view: reader.ClaimView) -> Claim:
    seps = view.separators

    def first(sid: str, qualifier: str) -> list[str]:
        return next((s for s in view.subscriber if s[:2] == [sid, qualifier]), [])

    sbr = next((s for s in view.subscriber if s[0] == "SBR"), [])
    il, qc = first("NM1", "IL"), first("NM1", "QC")
    nm85 = next((s for s in view.billing if s[:2] == ["NM1", "85"]), [])
    clm = view.claim[0]
    clm05 = reader.components(reader.element(clm, 5), seps) + ["", "", ""]
    patient = qc or il
    e = reader.element
    return Claim(
        id=view.id,
        charge=Decimal(view.charge),
        st02=e(view.header[0], 2) if view.header else "",
        filing=e(sbr, 9),
        sequence=e(sbr, 1),
        facility=clm05[0],
        frequency=clm05[2],
        patient=(_text(e(patient, 3)), _text(e(patient, 4))),
        member_id=_text(e(il, 9), 50),
        insured=(e(il, 2), _text(e(il, 3)), _text(e(il, 4))) if qc else None,
        billing=(_text(e(nm85, 3), 60), e(nm85, 9)),
        lines=[_line(segs, seps) for segs in view.lines],
    )


def read_837(text: str) -> Submission:
    """The parts of an 837 interchange the responses echo (through ``x12.reader``)."""
    isa: list[str] = []
    gs: list[str] = []
    sub = Submission([], [], "", ("", ""), ("", ""), {})
    current: dict | None = None
    for seg in reader.tokenize(text):
        sid, e = seg[0], (lambda i, s=seg: reader.element(s, i))
        if sid == "ISA":
            isa = seg
        elif sid == "GS" and not gs:
            gs = seg
        elif sid == "ST":
            current = {"version": e(3), "position": 0, "first": {}}
            sub.sets[e(2)] = current
        if current is not None:
            current["position"] += 1
            # where the segments a simulated 999 error can name first appear in the set
            key = {"NM1": e(1) == "85", "CLM": True, "DTP": e(1) == "472"}.get(sid) and sid
            if key and key not in current["first"]:
                current["first"][key] = current["position"]
        if sid == "BHT" and not sub.bht03:
            sub.bht03 = _text(e(3), 30)
        elif sid == "NM1" and e(1) == "41" and not sub.submitter[1]:
            sub.submitter = (_text(e(3), 60), _text(e(9), 80))
        elif sid == "NM1" and e(1) == "40" and not sub.receiver[1]:
            sub.receiver = (_text(e(3), 60), _text(e(9), 80))
        elif sid == "SE":
            current = None
    if not isa or not gs:
        raise ValueError("not an 837 interchange: no ISA or GS")
    sub.isa, sub.gs = isa, gs
    for view in reader.claims(text):
        claim = _claim(view)
        sub.claims.append(claim)
        if claim.billing not in sub.billing:
            sub.billing[claim.billing] = _billing_address(view)
    return sub


def _billing_address(view: reader.ClaimView) -> list[str]:
    """N3 line, N4 city, state, ZIP and the EIN (REF*EI) of the claim's billing provider."""
    e = reader.element
    n3 = next((s for s in view.billing if s[0] == "N3"), [])
    n4 = next((s for s in view.billing if s[0] == "N4"), [])
    ref = next((s for s in view.billing if s[:2] == ["REF", "EI"]), [])
    return [_text(e(n3, 1), 55), _text(e(n4, 1), 30), e(n4, 2), e(n4, 3), e(ref, 2)]


# ---------------------------------------------------------------- deciding the outcomes


@dataclass
class Adjudication:
    """What the payer decided on one claim that reached it (amounts per line, in 837 order)."""

    status: str  # CLP02
    paid: list[Decimal]  # per line
    adjustments: list[list[tuple[str, str, Decimal]]]  # per line: (group, CARC, amount)
    rarc: str = ""

    @property
    def total_paid(self) -> Decimal:
        return sum(self.paid, ZERO)

    @property
    def patient_responsibility(self) -> Decimal:
        return sum((a for adj in self.adjustments for g, _, a in adj if g == "PR"), ZERO)


@dataclass
class Outcome:
    """One claim's fate, as ``simulation.json`` records it (no PHI: ids and amounts)."""

    claim_id: str
    outcome: str  # rejected_999, rejected_277ca, paid, partially_paid, denied
    charge: Decimal
    status_277: str = ""  # e.g. A2:20 or A7:562:85
    payer_claim_control_number: str = ""
    adjudication: Adjudication | None = None
    carc: str = ""

    def record(self) -> dict:
        adj = self.adjudication
        return {
            "claim_id": self.claim_id,
            "outcome": self.outcome,
            "charge": money(self.charge),
            "status_277ca": self.status_277 or None,
            "payer_claim_control_number": self.payer_claim_control_number or None,
            "clp02": adj.status if adj else None,
            "paid": money(adj.total_paid) if adj else None,
            "patient_responsibility": money(adj.patient_responsibility) if adj else None,
            "carc": self.carc or None,
        }


def adjudicate(claim: Claim, seed: int, deny_share: float) -> tuple[str, Adjudication]:
    """Deny, pay in full or pay in part, from hashes of the seed and CLM01 only."""
    charges = [ln.charge for ln in claim.lines]
    if fraction(seed, "deny", claim.id) < deny_share:
        group, carc, rarc = _pick(seed, DENIALS, "carc", claim.id)
        adjustments = [[(group, carc, c)] for c in charges]
        return "denied", Adjudication("4", [ZERO] * len(charges), adjustments, rarc)
    status = PAYER_SEQUENCE.get(claim.sequence, "1")
    if fraction(seed, "partial", claim.id) < 0.5:
        return "paid", Adjudication(status, list(charges), [[] for _ in charges])
    # partial: the contract allows 70-90% of the charge, the patient owes a deductible (PR-1)
    # or a 20% coinsurance (PR-2) of what is allowed
    allowed_share = Decimal(_pick(seed, ("0.70", "0.75", "0.80", "0.85", "0.90"), "fee", claim.id))
    deductible = fraction(seed, "deductible", claim.id) < 0.3
    paid, adjustments = [], []
    for charge in charges:
        allowed = (charge * allowed_share).quantize(CENT, ROUND_HALF_UP)
        if deductible:
            owed = min(allowed, Decimal("20.00"))
        else:
            owed = (allowed * Decimal("0.20")).quantize(CENT, ROUND_HALF_UP)
        adj = [("CO", "45", charge - allowed), ("PR", "1" if deductible else "2", owed)]
        adjustments.append([a for a in adj if a[2] != 0])
        paid.append(allowed - owed)
    return "partially_paid", Adjudication(status, paid, adjustments)


def decide(
    sub: Submission, seed: int, reject_share: float, deny_share: float, set_reject_share: float
) -> tuple[dict[str, tuple | None], list[Outcome]]:
    """Each transaction set's 999 error (None: accepted) and each claim's outcome."""
    set_errors: dict[str, tuple | None] = {}
    for st02 in sub.sets:
        ids = sorted(c.id for c in sub.claims if c.st02 == st02)
        key = ids[0] if ids else st02
        rejected = fraction(seed, "999", key) < set_reject_share
        set_errors[st02] = _pick(seed, SET_ERRORS, "999-error", key) if rejected else None
    outcomes = []
    for claim in sub.claims:
        out = Outcome(claim.id, "", claim.charge)
        if set_errors.get(claim.st02):
            out.outcome = "rejected_999"
        elif fraction(seed, "277", claim.id) < reject_share:
            out.outcome = "rejected_277ca"
            out.status_277 = ":".join(_pick(seed, REJECTIONS, "277-reason", claim.id))
        else:
            out.status_277 = ":".join(ACCEPTED)
            out.payer_claim_control_number = _number(seed, 14, "pccn", claim.id)
            out.outcome, out.adjudication = adjudicate(claim, seed, deny_share)
            if out.outcome == "denied" and claim.lines:
                group, carc, _ = out.adjudication.adjustments[0][0]
                out.carc = f"{group}-{carc}"
        outcomes.append(out)
    return set_errors, outcomes


# ---------------------------------------------------------------- writing the responses


def _segment(*elements: str) -> str:
    """One segment, without trailing empty elements."""
    items = list(elements)
    while len(items) > 1 and items[-1] == "":
        items.pop()
    return "*".join(items) + "~\n"


def _interchange(
    sub: Submission, gs01: str, version: str, control: str, on: date, body: list[list[str]]
) -> str:
    """The transaction sets ``body`` (each a list of segments after ST, before SE) in an
    envelope FROM the 837's receiver TO its submitter, with control number ``control``."""
    isa, gs = sub.isa, sub.gs
    e = reader.element
    head = (
        f"ISA*00*{'':10}*00*{'':10}*{e(isa, 7)}*{e(isa, 8).strip():<15.15}*{e(isa, 5)}*"
        f"{e(isa, 6).strip():<15.15}*{on:%y%m%d}*{TIME}*^*00501*{control}*0*{e(isa, 15)}*:~\n"
    )
    group = str(int(control))
    out = [
        head,
        _segment("GS", gs01, e(gs, 3), e(gs, 2), f"{on:%Y%m%d}", TIME, group, "X", version),
    ]
    for n, segments in enumerate(body, start=1):
        st02 = f"{n:04d}"
        st = _segment("ST", ST01[gs01], st02, *([version] if gs01 != "HP" else []))
        out += [st, *segments, _segment("SE", str(len(segments) + 2), st02)]
    out += [_segment("GE", str(len(body)), group), _segment("IEA", "1", control)]
    return "".join(out)


def build_999(sub: Submission, set_errors: dict, seed: int, on: date) -> str:
    """One 999 for the 837's group: an AK2 per transaction set, IK5 A or R (with IK3/IK4)."""
    e = reader.element
    segs = [_segment("AK1", e(sub.gs, 1), e(sub.gs, 6), e(sub.gs, 8))]
    for st02, info in sub.sets.items():
        segs.append(_segment("AK2", "837", st02, info["version"]))
        error = set_errors.get(st02)
        if error:
            sid, loop, position, element_no, code = error
            where = info["first"].get(sid) or info["first"].get("CLM") or 1
            segs.append(_segment("IK3", sid, str(where), loop, "8"))
            segs.append(_segment("IK4", position, element_no, code))
            segs.append(_segment("IK5", "R", "5"))
        else:
            segs.append(_segment("IK5", "A"))
    n = len(sub.sets)
    accepted = sum(1 for st02 in sub.sets if not set_errors.get(st02))
    verdict = "A" if accepted == n else "R" if accepted == 0 else "P"
    segs.append(_segment("AK9", verdict, str(n), str(n), str(accepted)))
    control = _number(seed, 9, "999", e(sub.isa, 13), e(sub.isa, 6).strip())
    return _interchange(sub, "FA", "005010X231A1", control, on, [segs])


def _counts(outcomes: list[tuple[Claim, Outcome]], qty: tuple[str, str]) -> list[str]:
    """QTY accepted / rejected and AMT YU / YY of a 277CA summary level (only non-zero)."""
    ok = [c.charge for c, o in outcomes if o.outcome != "rejected_277ca"]
    bad = [c.charge for c, o in outcomes if o.outcome == "rejected_277ca"]
    segs = []
    if ok:
        segs.append(_segment("QTY", qty[0], str(len(ok))))
    if bad:
        segs.append(_segment("QTY", qty[1], str(len(bad))))
    if ok:
        segs.append(_segment("AMT", "YU", money(sum(ok, ZERO))))
    if bad:
        segs.append(_segment("AMT", "YY", money(sum(bad, ZERO))))
    return segs


def _patient_277(claim: Claim, out: Outcome, on: date) -> list[str]:
    """2100D and 2200D of one claim: its patient, TRN*2*CLM01, STC and REF*1K."""
    last, first = claim.patient
    rejected = out.outcome == "rejected_277ca"
    begin, end = claim.served
    segs = [
        _segment("NM1", "QC", "1", last or "UNKNOWN", first, "", "", "", "MI", claim.member_id),
        _segment("TRN", "2", claim.id),
        _segment(
            "STC", out.status_277, f"{on:%Y%m%d}", "U" if rejected else "WQ", money(claim.charge)
        ),
    ]
    if out.payer_claim_control_number:
        segs.append(_segment("REF", "1K", out.payer_claim_control_number))
    if begin:
        segs.append(_segment("DTP", "472", "RD8", f"{begin}-{end}"))
    return segs


def build_277ca(sub: Submission, outcomes: list[Outcome], seed: int, on: date) -> str:
    """One 277CA for the claims that reached the payer: per billing provider, per claim."""
    e = reader.element
    by_id = {o.claim_id: o for o in outcomes}
    pairs = [(c, by_id[c.id]) for c in sub.claims if by_id[c.id].outcome != "rejected_999"]
    total = money(sum((c.charge for c, _ in pairs), ZERO))
    day = f"{on:%Y%m%d}"
    control = _number(seed, 9, "277ca", e(sub.isa, 13), e(sub.isa, 6).strip())
    segs = [
        _segment("BHT", "0085", "08", control, day, TIME, "TH"),
        _segment("HL", "1", "", "20", "1"),
        _segment(
            "NM1", "PR", "2", sub.receiver[0] or "PAYER", "", "", "", "", "46", sub.receiver[1]
        ),
        _segment("TRN", "1", control),
        _segment("DTP", "050", "D8", e(sub.gs, 4)),
        _segment("DTP", "009", "D8", day),
        _segment("HL", "2", "1", "21", "1"),
        _segment("NM1", "41", "2", sub.submitter[0], "", "", "", "", "46", sub.submitter[1]),
        _segment("TRN", "2", sub.bht03 or e(sub.gs, 6)),
        _segment("STC", "A1:19", day, "WQ", total),
        *_counts(pairs, ("90", "AA")),
    ]
    hl = 2
    for billing in dict.fromkeys(c.billing for c, _ in pairs):
        hl += 1
        provider_hl = str(hl)
        mine = [(c, o) for c, o in pairs if c.billing == billing]
        segs += [
            _segment("HL", provider_hl, "2", "19", "1"),
            _segment("NM1", "85", "2", billing[0], "", "", "", "", "XX", billing[1]),
            _segment("TRN", "1", "0"),
            _segment("STC", "A1:19:85", "", "WQ", money(sum((c.charge for c, _ in mine), ZERO))),
            *_counts(mine, ("QA", "QC")),
        ]
        for claim, out in mine:
            hl += 1
            segs.append(_segment("HL", str(hl), provider_hl, "PT"))
            segs += _patient_277(claim, out, on)
    return _interchange(sub, "HN", "005010X214", control, on, [segs])


def _service_835(line: Line, paid: Decimal, adjustments: list, rarc: str) -> list[str]:
    """2110 of one line: SVC (echoing the 837's procedure), DTM*472, CAS, REF*6R, LQ*HE."""
    procedure, revenue = ":".join(line.procedure), line.revenue
    if len(line.procedure) < 2 and revenue:  # an 837I line without HCPCS: its revenue code
        procedure, revenue = f"NU:{revenue}", ""
    segs = [_segment("SVC", procedure, money(line.charge), money(paid), revenue, line.units)]
    begin, _, end = line.served.partition("-")
    if begin and (not end or end == begin):
        segs.append(_segment("DTM", "472", begin))
    elif begin:
        segs += [_segment("DTM", "150", begin), _segment("DTM", "151", end)]
    for group in ("CO", "PR", "OA", "PI"):  # one CAS per group, its reasons in order
        parts = [
            x for g, code, amount in adjustments if g == group for x in (code, money(amount), "")
        ]
        if parts:
            segs.append(_segment("CAS", group, *parts))
    if line.line_id:
        segs.append(_segment("REF", "6R", line.line_id))
    if rarc:
        segs.append(_segment("LQ", "HE", rarc))
    return segs


def _claim_835(claim: Claim, out: Outcome) -> list[str]:
    adj = out.adjudication
    assert adj is not None
    filing = claim.filing if claim.filing in CLP06_CODES else FILING_835.get(claim.filing, "ZZ")
    segs = [
        _segment(
            "CLP",
            claim.id,
            adj.status,
            money(claim.charge),
            money(adj.total_paid),
            money(adj.patient_responsibility) if adj.patient_responsibility else "",
            filing,
            out.payer_claim_control_number,
            claim.facility,
            claim.frequency,
        ),
        _segment(
            "NM1", "QC", "1", claim.patient[0], claim.patient[1], "", "", "", "MI", claim.member_id
        ),
    ]
    if claim.insured:
        kind, last, first = claim.insured
        segs.append(
            _segment("NM1", "IL", kind or "1", last, first, "", "", "", "MI", claim.member_id)
        )
    for line, paid, adjustments in zip(claim.lines, adj.paid, adj.adjustments, strict=True):
        segs += _service_835(line, paid, adjustments, adj.rarc)
    return segs


def build_835(sub: Submission, outcomes: list[Outcome], seed: int, on: date) -> str:
    """One 835 for the claims the payer adjudicated: a transaction set per payee (billing
    provider), each with BPR02 = sum of its CLP04 (no PLB)."""
    e = reader.element
    by_id = {o.claim_id: o for o in outcomes}
    pairs = [(c, by_id[c.id]) for c in sub.claims if by_id[c.id].adjudication is not None]
    control = _number(seed, 9, "835", e(sub.isa, 13), e(sub.isa, 6).strip())
    payees = dict.fromkeys(c.billing for c, _ in pairs) or {("", ""): None}
    body = []
    for n, payee in enumerate(payees, start=1):
        mine = [(c, o) for c, o in pairs if c.billing == payee]
        trace = _number(seed, 12, "835-trace", control, str(n))
        body.append(_remittance(sub, payee, mine, trace, seed, on))
    return _interchange(sub, "HP", "005010X221A1", control, on, body)


def _remittance(
    sub: Submission, payee: tuple[str, str], pairs: list, trace: str, seed: int, on: date
) -> list[str]:
    """The segments of one 835 transaction set (after ST, before SE)."""
    total = sum((o.adjudication.total_paid for _, o in pairs), ZERO)
    day = f"{on:%Y%m%d}"
    payer_tin = "1" + _number(seed, 9, "payer-tin", sub.receiver[1])
    if total:
        bpr = ["I", money(total), "C", "ACH", "CCP", "01", "999999992", "DA", "123456789"]
        bpr += [payer_tin, "", "01", "999999992", "DA", "987654321", day]
    else:  # nothing to pay: a notification only
        bpr = ["H", "0", "C", "NON", *[""] * 11, day]
    street, city, state, zip_code, ein = sub.billing.get(payee, ["", "", "", "", ""])
    segs = [
        _segment("BPR", *bpr),
        _segment("TRN", "1", trace, payer_tin),
        _segment("DTM", "405", day),
        _segment("N1", "PR", sub.receiver[0] or "PAYER"),
        _segment("N3", "PO BOX 1000"),
        _segment("N4", "SPRINGFIELD", "IL", "627010000"),
        _segment("PER", "BL", "EDI SUPPORT", "TE", "8005550100"),
        _segment("N1", "PE", payee[0] or sub.submitter[0] or "PAYEE", "XX", payee[1] or "0"),
    ]
    if street:
        segs.append(_segment("N3", street))
    if city:
        segs.append(_segment("N4", city, state, zip_code))
    if ein:
        segs.append(_segment("REF", "TJ", ein))
    if pairs:
        segs.append(_segment("LX", "1"))
    for claim, out in pairs:
        segs += _claim_835(claim, out)
    return segs


# ---------------------------------------------------------------- entry points


@dataclass
class Responses:
    files: dict[str, str]  # kind (999, 277ca, 835) -> X12 text
    outcomes: list[Outcome]


def respond(
    text837: str,
    *,
    seed: int = 0,
    reject_share: float = 0.0,
    deny_share: float = 0.0,
    on: date,
    set_reject_share: float = 0.0,
) -> Responses:
    """The responses to one 837 and each claim's outcome. A 277CA only when a claim passed
    the 999, an 835 only when a claim passed the 277CA (as a payer answers)."""
    for name, share in (
        ("reject_share", reject_share),
        ("deny_share", deny_share),
        ("set_reject_share", set_reject_share),
    ):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1, not {share}")
    sub = read_837(text837)
    set_errors, outcomes = decide(sub, seed, reject_share, deny_share, set_reject_share)
    files = {"999": build_999(sub, set_errors, seed, on)}
    if any(o.outcome != "rejected_999" for o in outcomes):
        files["277ca"] = build_277ca(sub, outcomes, seed, on)
    if any(o.adjudication is not None for o in outcomes):
        files["835"] = build_835(sub, outcomes, seed, on)
    return Responses(files, outcomes)


def simulate(
    text837: str,
    *,
    seed: int = 0,
    reject_share: float = 0.0,
    deny_share: float = 0.0,
    on: date,
    set_reject_share: float = 0.0,
) -> dict[str, str]:
    """Kind (``999``, ``277ca``, ``835``) -> X12 text of the responses to one 837."""
    return respond(
        text837,
        seed=seed,
        reject_share=reject_share,
        deny_share=deny_share,
        on=on,
        set_reject_share=set_reject_share,
    ).files


SIMULATION_FILE = "simulation.json"


def _stem(path: str) -> str:
    name = storage.name(path)
    return name[: -len(".x12")] if name.lower().endswith(".x12") else name


def run(
    claims_dir: str,
    out_dir: str,
    *,
    seed: int = 0,
    reject_share: float = 0.1,
    deny_share: float = 0.1,
    on: date | None = None,
    set_reject_share: float = 0.0,
) -> dict:
    """Answer every 837 (``*.x12``) under ``claims_dir``: ``<stem>.999.x12``,
    ``<stem>.277ca.x12``, ``<stem>.835.x12`` and ``simulation.json`` in ``out_dir``, each
    written atomically. Files that are not 837s (e.g. earlier responses) are skipped.
    Returns the simulation record."""
    on = on or date.today()
    if not storage.is_dir(claims_dir):
        raise storage.StorageNotFound("list", claims_dir, "no such folder")
    record: dict = {
        "seed": seed,
        "reject_share": reject_share,
        "deny_share": deny_share,
        "set_reject_share": set_reject_share,
        "date": on.isoformat(),
        "files": [],
        "claims": [],
    }
    stems: set[str] = set()
    for path in storage.list_files(claims_dir):
        if not path.lower().endswith(".x12"):
            continue
        try:
            text = storage.read_bytes(path).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not an ASCII X12 file") from None
        if not _is_837(text):
            continue
        stem = _stem(path)
        if stem in stems:
            raise ValueError(f"two 837 files named {stem}.x12 under {claims_dir}")
        stems.add(stem)
        try:
            result = respond(
                text,
                seed=seed,
                reject_share=reject_share,
                deny_share=deny_share,
                on=on,
                set_reject_share=set_reject_share,
            )
        except ArithmeticError as exc:  # an amount that is not a number
            raise ValueError(f"{path}: an amount is not a number ({type(exc).__name__})") from None
        written = {}
        for kind, x12 in result.files.items():
            target = storage.join(out_dir, f"{stem}.{kind}.x12")
            _write_private(target, x12.encode("ascii"))
            written[kind] = storage.name(target)
        record["files"].append({"claim_file": storage.name(path), "responses": written})
        record["claims"] += [
            dict(o.record(), claim_file=storage.name(path)) for o in result.outcomes
        ]
        log.info("answered %s: %d claims", storage.name(path), len(result.outcomes))
    body = json.dumps(record, indent=2, sort_keys=True) + "\n"
    storage.write_bytes(storage.join(out_dir, SIMULATION_FILE), body.encode("ascii"))
    return record


def _is_837(text: str) -> bool:
    try:
        return any(seg[:2] == ["ST", "837"] for seg in reader.tokenize(text))
    except ValueError:
        return False


def _write_private(path: str, data: bytes) -> None:
    """Write a response (it names patients) atomically, owner-only on a local folder."""
    storage.write_bytes(path, data)
    if not storage.is_s3(path):
        with storage.guard("write", path):
            os.chmod(path, storage.phi_modes(path)[0])
