"""837I (005010X223A2) outpatient therapy claim and service line templates: 2300 (CLM with
the type of bill, its frequency digit the claim's for a replacement or void, DTP*434 statement
period, CL1 with the clinic's point of origin, REF*G1, REF*F8, HI: diagnoses, then occurrence
codes), 2310A (the attending provider:
the first line's clinician), 2400 (LX, SV2 with the discipline's revenue code, DTP*472, REF*6R) and
2420C (a line's rendering provider when it differs from the attending one)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.constants import OCCURRENCE_CODES, ORIGINAL, RELATED_CAUSES
from therapy_claims.x12.joiner import Texts, groups, objects
from therapy_claims.x12.loops import (
    claim_total,
    line_pieces,
    payer_claim_reference,
    prior_authorisation,
    referring,
    renderers,
    service_lines,
    written,
)


def claim_items(lines: LineColumns, claims: ClaimColumns, w: np.ndarray, rows: np.ndarray) -> list:
    """Pieces of the 2300 loop (CLM up to the first LX) of claims ``w`` (lines ``rows``)."""
    n_claims = len(lines.ids)
    # the statement period: the first and last date of service of each claim
    by_date = np.argsort(lines.dos_str, kind="stable")
    date_rank = np.empty(len(by_date), dtype=np.int64)
    date_rank[by_date] = np.arange(len(by_date))
    ranks = date_rank[lines.dos[rows]]
    n_lines = lines.sizes[w]
    offsets = np.cumsum(n_lines) - n_lines
    first_date = by_date[np.minimum.reduceat(ranks, offsets)]
    last_date = by_date[np.maximum.reduceat(ranks, offsets)]
    origin = claims.entry_values(claims.clinic_entries, "point_of_origin")
    key, attending = renderers(lines, claims, lines.starts[w], "71")
    return [
        "CLM*", claims.id_texts, "*", claim_total(lines, w, rows), "***",
        facility_code(claims), "**A*Y*Y~\nDTP*434*RD8*",
        written(n_claims, w, first_date, lines.dates), "-",
        written(n_claims, w, last_date, lines.dates), "~\nCL1*3*",
        Texts(claims.clinic_rank, origin), "*01~\n", *prior_authorisation(claims),
        *payer_claim_reference(claims), claims.hi,
        occurrence_codes(claims), written(n_claims, w, key, attending),
        referring(claims),
    ]  # fmt: skip


def facility_code(claims: ClaimColumns) -> Texts:
    """CLM05 per claim: the clinic's type of bill (``131`` -> ``13:A:1``), whose last digit,
    the frequency, is the claim's own for a replacement (7) or void (8)."""
    clm05 = claims.entry_values(claims.clinic_entries, "clm05")
    if not claims.correcting.any():
        return Texts(claims.clinic_rank, clm05)
    freq = claims.frequency
    key, rep = groups(claims.clinic_rank, freq.codes)

    def text(r: int) -> str:
        base, f = clm05[claims.clinic_rank[r]], freq.texts[freq.codes[r]]
        return base if f == ORIGINAL or not base else f"{base.rsplit(':', 1)[0]}:{f}"

    return Texts(key, objects(map(text, rep.tolist()), len(rep)))


def occurrence_codes(claims: ClaimColumns) -> Texts:
    """Per claim, one ``HI*BH:<code>:D8:<date>*...`` segment (or nothing): to Medicare, the
    date treatment started (35 PT, 44 OT, 45 SLP) and the plan-of-care date (29, 17, 30) of
    each discipline on the claim; with a related cause, its code (04 employment, 01 auto, 05
    other accident) with the accident date. Made once per distinct combination."""
    c = claims
    has = [c.disciplines[d] for d in OCCURRENCE_CODES]
    medicare = c.needs_start.astype(np.int64)
    on = medicare > 0
    # values only where they are written (few distinct combinations on a night)
    key, rep = groups(
        *(on & h for h in has),
        np.where(on, c.started.codes + 1, 0),
        np.where(on, c.plan_of_care.codes + 1, 0),
        c.cause,
        np.where(c.cause > 0, c.accident.codes + 1, 0),
    )
    codes = list(OCCURRENCE_CODES.values())
    causes = [code for _, code in RELATED_CAUSES.values()]

    def text(r: int) -> str:
        started = c.started.texts[c.started.codes[r]]
        plan = c.plan_of_care.texts[c.plan_of_care.codes[r]]
        accident = c.accident.texts[c.accident.codes[r]]
        on_claim = [k for k, h in enumerate(has) if h[r]] if medicare[r] else []
        items = [f"BH:{codes[k][0]}:D8:{started}" for k in on_claim if started]
        items += [f"BH:{codes[k][1]}:D8:{plan}" for k in on_claim if plan]
        if c.cause[r] and accident:
            items.append(f"BH:{causes[c.cause[r] - 1]}:D8:{accident}")
        return "HI*" + "*".join(items) + "~\n" if items else ""

    return Texts(key, objects(map(text, rep.tolist()), len(rep)))


def line_texts(lines: LineColumns, claims: ClaimColumns, rows: np.ndarray) -> pa.Array:
    """The 2400 loops (with 2420C) of ``rows``: LX, SV2, DTP*472 joined once per distinct
    service line, then each line's REF*6R and renderer."""
    lx, money, units, date, renderer = line_pieces(lines, claims, rows)
    return service_lines([
        lx, "SV2*", lines.revenue_text, "*", lines.svc_text, "*", money, "*UN*", units,
        "~\nDTP*472*D8*", date,
    ], lines, rows, renderer)  # fmt: skip
