"""837P (005010X222A1) claim and service line templates: 2300 (CLM, DTP*431, REF*G1, HI),
2310B (the rendering provider, when not the billing one), 2400 (LX, SV1, DTP*472) and 2420A
(a line's rendering provider when it differs from the claim's)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.joiner import Texts, join_distinct
from therapy_claims.x12.loops import (
    claim_total,
    line_pieces,
    prior_authorisation,
    referring,
    renderers,
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
        ":B:1*Y*A*Y*Y~\n", claims.injury, *prior_authorisation(claims), claims.hi,
        referring(claims),
        written(len(lines.ids), w, rendering, texts),
    ]  # fmt: skip


def line_texts(lines: LineColumns, claims: ClaimColumns, rows: np.ndarray) -> pa.Array:
    """The 2400 loops (with 2420A) of ``rows``, joined once per distinct service line. SV105
    (place of service) only when it differs from the claim's."""
    lx, money, units, date, renderer = line_pieces(lines, claims, rows)
    claim_place = lines.place[lines.starts[lines.line_claim]]
    same = lines.place_code[lines.place] == lines.place_code[claim_place]
    place = Texts(np.where(same, 0, lines.place + 1), np.array(["", *lines.place_texts]))
    return join_distinct([
        lx, "SV1*", lines.svc_text, "*", money, "*UN*", units, "*", place, "**",
        lines.ptr_text, "~\nDTP*472*D8*", date, "~\n", renderer,
    ], rows)  # fmt: skip
