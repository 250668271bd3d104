"""837P (005010X222A1) claim and service line templates: 2300 (CLM with the claim frequency in
CLM05-3 and CLM11 related causes, DTP*431 onset, DTP*454 initial treatment, DTP*439 accident,
REF*G1, REF*F8, HI),
2310B (the rendering provider, when not the billing one), 2400 (LX, SV1, DTP*472, REF*6R) and 2420A
(a line's rendering provider when it differs from the claim's)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.constants import RELATED_CAUSES
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
    claim_pos = Texts(lines.place[lines.starts], lines.place_texts)
    need = claims.renderer2310[w]
    rendering = np.zeros(len(w), dtype=np.int64)
    rendering[need], texts = renderers(lines, claims, lines.starts[w][need])
    return [
        "CLM*", claims.id_texts, "*", claim_total(lines, w, rows), "***", claim_pos,
        ":B:", claims.frequency, "*Y*A*Y*Y", clm11_and_dates(claims),
        *prior_authorisation(claims), *payer_claim_reference(claims), claims.hi,
        referring(claims),
        written(len(lines.ids), w, rendering, texts),
    ]  # fmt: skip


def clm11_and_dates(claims: ClaimColumns) -> Texts:
    """Per claim, from CLM11 on: the related cause (``**EM``, ``**AA:::<state>``, ``**OA``)
    ending CLM, then DTP*431 (onset), DTP*454 (initial treatment: Medicare CMT claims) and
    DTP*439 (accident: claims with a related cause); made once per distinct combination."""
    c = claims
    show454 = c.needs_start.astype(np.int64)
    related = c.cause > 0
    # values only where they are written (few distinct combinations on a night)
    key, rep = groups(
        c.cause,
        np.where(related, c.accident_state.codes + 1, 0),
        c.onset.codes,
        np.where(show454, c.started.codes + 1, 0),
        np.where(related, c.accident.codes + 1, 0),
    )
    causes = [code for code, _ in RELATED_CAUSES.values()]

    def text(r: int) -> str:
        cause, out = c.cause[r], "~\n"
        if cause:
            code = causes[cause - 1]
            state = c.accident_state.texts[c.accident_state.codes[r]]
            out = f"**{code}:::{state}~\n" if code == "AA" else f"**{code}~\n"
        onset, started = c.onset.texts[c.onset.codes[r]], c.started.texts[c.started.codes[r]]
        accident = c.accident.texts[c.accident.codes[r]]
        if onset:
            out += f"DTP*431*D8*{onset}~\n"
        if show454[r] and started:
            out += f"DTP*454*D8*{started}~\n"
        if cause and accident:
            out += f"DTP*439*D8*{accident}~\n"
        return out

    return Texts(key, objects(map(text, rep.tolist()), len(rep)))


def line_texts(lines: LineColumns, claims: ClaimColumns, rows: np.ndarray) -> pa.Array:
    """The 2400 loops (with 2420A) of ``rows``: LX, SV1, DTP*472 joined once per distinct
    service line, then each line's REF*6R and renderer. SV105 (place of service) only when it
    differs from the claim's."""
    lx, money, units, date, renderer = line_pieces(lines, claims, rows)
    claim_place = lines.place[lines.starts[lines.line_claim]]
    same = lines.place_code[lines.place] == lines.place_code[claim_place]
    place = Texts(np.where(same, 0, lines.place + 1), np.array(["", *lines.place_texts]))
    return service_lines([
        lx, "SV1*", lines.svc_text, "*", money, "*UN*", units, "*", place, "**",
        lines.ptr_text, "~\nDTP*472*D8*", date,
    ], lines, rows, renderer)  # fmt: skip
