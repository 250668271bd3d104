"""A void (CLM05-3 ``8``) of a claim as it was sent, copied from its original 837 file.

A reviewed release can ask for a void of a claim whose lines will not come again (it should
never have gone out): the void repeats the claim as the payer has it, so it is built from the
sent file, not from tonight's extract. Of each claim (``reader.ClaimView``) the 2000A billing
provider, 2000B subscriber (and 2000C patient), 2300 claim and 2400 lines are copied as sent,
with CLM01 the void's own, CLM05-3 ``8`` and 2300 REF*F8 the payer's claim control number
(where the writer puts it for replacements: after REF*G1, before HI; a REF*F8 the sending
carried is replaced). The HL numbers are renumbered per transaction set and the envelope is
fresh (ISA/GS, ST/BHT with the sending's 1000A submitter and 1000B receiver, SE/GE/IEA), built
under :data:`envelope.PROVISIONAL` and numbered afterwards like every claim file
(:func:`envelope.renumber`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from therapy_claims.x12.constants import MAX_CLAIMS_PER_ST, VOID
from therapy_claims.x12.envelope import PROVISIONAL, transaction_set_number
from therapy_claims.x12.reader import ClaimView, Segment, element

# the separators the pipeline writes (and so the ones a copied segment must have been read with)
_ELEMENT, _COMPONENT, _REPETITION, _SEGMENT = "*", ":", "^", "~"


@dataclass
class VoidClaim:
    """One claim to void: the claim as it was sent, the void's CLM01 and its REF*F8."""

    view: ClaimView
    claim_id: str
    reference: str


def void_segments(void: VoidClaim, first_hl: int) -> list[Segment]:
    """The claim's 2000A..2400 segments as the void carries them, its HL numbers from
    ``first_hl``. ``ValueError`` when the sending cannot be copied (other separators, no
    CLM05 or no HI to place REF*F8 before)."""
    view = void.view
    if view.separators[:3] != (_ELEMENT, _COMPONENT, _REPETITION):
        raise ValueError("the sent file uses other separators than the pipeline's")
    numbers: dict[str, str] = {}
    out: list[Segment] = []
    for seg in [*view.billing, *view.subscriber]:
        seg = list(seg)
        if seg[0] == "HL":
            numbers[seg[1]] = str(first_hl + len(numbers))
            seg[1] = numbers[seg[1]]
            if element(seg, 2):
                seg[2] = numbers[seg[2]]
        out.append(seg)
    claim = [list(s) for s in view.claim if not (s[0] == "REF" and element(s, 1) == "F8")]
    clm = claim[0]
    parts = element(clm, 5).split(_COMPONENT)
    if clm[0] != "CLM" or len(parts) != 3:
        raise ValueError("the sent claim has no CLM05 facility code and frequency")
    clm[1] = void.claim_id
    clm[5] = _COMPONENT.join([*parts[:2], VOID])
    at = next((i for i, s in enumerate(claim) if s[0] == "HI"), None)
    if at is None:
        raise ValueError("the sent claim has no HI segment")
    claim.insert(at, ["REF", "F8", void.reference])
    out += claim
    for line in view.lines:
        out += [list(s) for s in line]
    return out


def build_void_file(
    voids: list[VoidClaim],
    *,
    created: datetime,
    usage: str,
) -> tuple[str, list[str]]:
    """The interchange voiding ``voids`` (all of one receiver, claim type and submitter: the
    first claim's 1000A/1000B are the file's), under the provisional control number; and per
    claim its ST02 (the ledger's ``transaction_set_control_number``)."""
    first = voids[0].view
    submitter = _header(first, "41")
    receiver = _header(first, "40")
    sender, receiver_id = element(submitter[0], 9), element(receiver[0], 9)
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    text = [
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver_id:<15}*{d6}*{hm}*^*00501*"
        f"{PROVISIONAL:09d}*0*{usage}*:~\n",
        f"GS*HC*{sender}*{receiver_id}*{d8}*{hm}*{PROVISIONAL}*X*{first.version}~\n",
    ]
    placed: list[str] = []
    sets = [voids[i : i + MAX_CLAIMS_PER_ST] for i in range(0, len(voids), MAX_CLAIMS_PER_ST)]
    for n_set, claims in enumerate(sets, 1):
        st02 = transaction_set_number(n_set)
        body: list[Segment] = [
            ["ST", "837", st02, first.version],
            ["BHT", "0019", "00", f"{PROVISIONAL}{st02}", d8, hm, "CH"],
            *submitter,
            *receiver,
        ]
        hl = 1
        for void in claims:
            segs = void_segments(void, hl)
            hl += sum(1 for s in segs if s[0] == "HL")
            body += segs
            placed.append(st02)
        body.append(["SE", str(len(body) + 1), st02])
        text += [_ELEMENT.join(s) + _SEGMENT + "\n" for s in body]
    text.append(f"GE*{len(sets)}*{PROVISIONAL}~\nIEA*1*{PROVISIONAL:09d}~\n")
    return "".join(text), placed


def _header(view: ClaimView, entity: str) -> list[Segment]:
    """The 1000A (``41``: NM1 and PER) or 1000B (``40``: NM1) loop of the sending's header."""
    out: list[Segment] = []
    for seg in view.header:
        if seg[0] == "NM1":
            if out:
                break
            if element(seg, 1) == entity:
                out.append(list(seg))
        elif out and seg[0] == "PER":
            out.append(list(seg))
    if not out or not element(out[0], 9):
        raise ValueError(f"the sent file has no NM1*{entity} in its header")
    return out
