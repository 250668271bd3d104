"""``build_837p`` / ``build_837i``: billable service lines to one interchange (ISA..IEA).

The build checks the lines (:mod:`therapy_claims.x12.checks`), assembles the transaction sets
of the claims that can be written (:mod:`therapy_claims.x12.assembly`, with the loops of
:mod:`therapy_claims.x12.p837` / :mod:`therapy_claims.x12.i837`) and wraps them in the envelope
(:mod:`therapy_claims.x12.envelope`), as one ASCII string, one segment per line.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from therapy_claims.x12.assembly import transaction_sets
from therapy_claims.x12.checks import Batch
from therapy_claims.x12.constants import VERSION, VERSION_I
from therapy_claims.x12.envelope import (
    checked_number,
    envelopes,
    receiver,
    transaction_set_number,
)

if TYPE_CHECKING:
    from therapy_claims.x12.prepared import Checked


def build_837p(lines: pd.DataFrame, **kw) -> str:
    """Build one 837P interchange (005010X222A1); see :func:`_build` for the arguments."""
    return _build(lines, institutional=False, **kw)


def build_837i(lines: pd.DataFrame, **kw) -> str:
    """Build one 837I interchange (005010X223A2) for outpatient institutional therapy.

    Same arguments as :func:`build_837p`; ``lines`` also needs ``discipline`` (PT/OT/SLP, which
    picks the revenue code 0420/0430/0440; the line must carry the matching GP/GO/GN).
    ``diagnosis_pointers`` and ``place_of_service`` are not used (837I has none). Per claim:
    ``CLM05`` from the clinic's ``type_of_bill`` (``131`` -> ``13:A:1``), ``DTP*434`` statement
    period (first to last line date), ``CL1*3**01``, ``REF*G1`` prior authorisation,
    ``HI*ABK`` then ``HI*ABF`` (other diagnoses), the attending provider (``NM1*71``, the
    first line's clinician), then ``LX``/``SV2``/``DTP*472`` per line, with a 2420C rendering
    provider when a line's clinician differs from the attending one.
    """
    return _build(lines, institutional=True, **kw)


def _build(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    receiver_id: str,
    receiver_name: str,
    interchange_control_number: int,
    created: datetime,
    usage: str = "T",
    rejected: dict[str, str] | None = None,
    placed: dict[str, str] | None = None,
    providers: pd.DataFrame | None = None,
    checked: Checked | None = None,
) -> str:
    """Build one 837P (or, with ``institutional``, 837I) interchange (ISA..IEA) for ``lines``; returns ASCII text, ``~\\n`` per segment.

    ``lines`` holds one row per service line (columns: see the module's callers / x12 tests);
    rows sharing a ``claim_id`` form one claim and must share clinic, payer, patient,
    subscriber and diagnosis list (the first row's values are used). ``clinics`` and
    ``payers`` are the frames of ``therapy_claims.reference.load()``, indexed by id.

    The submitter (ISA06, GS02, 1000A) is the clinic of the first claim.

    Raises ``ValueError`` naming the claim and field (never the value) when the input cannot
    make a valid claim, e.g. a required name/address empty after :func:`clean_text`, a ZIP
    that is not 5/9 digits (9 for the billing provider), an NPI failing its check digit, a
    CLM01 / member / group / authorisation number that cleaning would alter (only
    upper-casing is allowed for those), no or more than 12 diagnoses, a pointer outside the
    diagnosis list, more than 50 lines or 4 modifiers, non-positive units, a negative or
    missing charge, or an unknown clinic/payer. Envelope problems (bad control number,
    usage, receiver) raise too.

    With ``rejected`` (a dict), a claim that cannot be written is left out of the file and its
    problem is recorded as ``rejected[claim_id] = message`` instead of raising; the rest of the
    file is still valid. If no claim is left the result is ``""``.

    With ``placed`` (a dict), each written claim is recorded as ``placed[claim_id] = ST02`` of
    the transaction set that carries it (for the claim ledger).

    Free text (names, addresses, cities) is cleaned and cut to the element's length
    (NM103 60, NM104 35, N301 55, N401 30) rather than rejected.
    A line without a rendering NPI is taken as rendered by the claim's renderer; a claim
    whose first line has none, or whose renderer is the billing NPI, gets no 2310B.

    With ``checked`` (:class:`therapy_claims.x12.prepared.Checked`: the columns these lines
    were checked with before, e.g. by score), nothing is cleaned or checked again: the file
    is built from those columns (the same bytes), ``lines`` is only counted, and a claim the
    earlier check found unwritable is left out (or raises) with that check's message.
    """
    if lines is None or len(lines) == 0:
        raise ValueError("no service lines to bill")
    envelope = _envelope(
        institutional, usage, interchange_control_number, receiver_id, receiver_name
    )
    if checked is not None:
        return _build_checked(checked, rejected, placed, created, envelope)
    batch = Batch(lines.reset_index(drop=True), institutional, clinics, payers, providers)
    verdict, ids = batch.verdict, batch.lines.ids
    for k in verdict.failing():
        if rejected is None:
            raise ValueError(verdict.message(k))
        rejected[ids[k]] = verdict.message(k)
    return assemble(
        batch.lines, batch.claims, verdict.bad, placed=placed, created=created, **envelope
    )


def _build_checked(
    part: Checked,
    rejected: dict[str, str] | None,
    placed: dict[str, str] | None,
    created: datetime,
    envelope: dict,
) -> str:
    """The build of lines checked before (``part``)."""
    ids = part.lines.ids
    for k in np.flatnonzero(part.bad).tolist():
        if rejected is None:
            raise ValueError(part.messages[k])
        rejected[ids[k]] = part.messages[k]
    return assemble(part.lines, part.claims, part.bad, placed=placed, created=created, **envelope)


def _envelope(
    institutional: bool, usage: str, interchange_control_number: int, receiver_id, receiver_name
) -> dict:
    """The envelope's checked values (raises ``ValueError`` as a build does, before any claim
    is looked at)."""
    if usage not in ("T", "P"):
        raise ValueError(f"usage must be 'T' or 'P', not {usage!r}")
    icn = checked_number(interchange_control_number)
    rcv_id, rcv_name = receiver(receiver_id, receiver_name)
    version = VERSION_I if institutional else VERSION
    return {"version": version, "icn": icn, "usage": usage, "rcv_id": rcv_id, "rcv_name": rcv_name}


def assemble(
    lines,
    claims,
    bad: np.ndarray,
    *,
    version: str,
    icn: int,
    usage: str,
    rcv_id: str,
    rcv_name: str,
    created: datetime,
    placed: dict[str, str] | None = None,
) -> str:
    """The interchange of the claims of checked columns (``lines``, ``claims``: a batch's
    ``LineColumns`` and ``ClaimColumns`` or their prepared equivalents) that are not ``bad``."""
    ids = lines.ids
    sets = transaction_sets(lines, claims, bad)
    if sets is None:
        return ""
    if placed is not None:
        for n_set, set_claims in enumerate(sets.claims, 1):
            placed.update(dict.fromkeys(ids[set_claims].tolist(), transaction_set_number(n_set)))
    before, after = envelopes(
        sets.segments,
        version=version,
        submitter=claims.clinic_entries[claims.clinic_rank[sets.claims[0][0]]],
        receiver_id=rcv_id,
        receiver_name=rcv_name,
        icn=icn,
        created=created,
        usage=usage,
    )
    text = sets.text(before, after)
    if not text.isascii():  # guaranteed by clean_text; fail loudly if a path slipped through
        text.encode("ascii")
    return text
