"""837I (005010X223A2) outpatient therapy claim and service line templates: 2300 (CLM with
the type of bill, DTP*434 statement period, CL1, REF*G1, HI), 2310A (the attending provider:
the first line's clinician), 2400 (LX, SV2 with the discipline's revenue code, DTP*472) and
2420C (a line's rendering provider when it differs from the attending one)."""

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
    n_claims = len(lines.ids)
    clm05 = claims.entry_values(claims.clinic_entries, "clm05")
    # the statement period: the first and last date of service of each claim
    by_date = np.argsort(lines.dos_str, kind="stable")
    date_rank = np.empty(len(by_date), dtype=np.int64)
    date_rank[by_date] = np.arange(len(by_date))
    ranks = date_rank[lines.dos[rows]]
    n_lines = lines.sizes[w]
    offsets = np.cumsum(n_lines) - n_lines
    first_date = by_date[np.minimum.reduceat(ranks, offsets)]
    last_date = by_date[np.maximum.reduceat(ranks, offsets)]
    key, attending = renderers(lines, claims, lines.starts[w], "71")
    return [
        "CLM*", claims.id_texts, "*", claim_total(lines, w, rows), "***",
        Texts(claims.clinic_rank, clm05), "**A*Y*Y~\nDTP*434*RD8*",
        written(n_claims, w, first_date, lines.dates), "-",
        written(n_claims, w, last_date, lines.dates), "~\nCL1*3**01~\n",
        *prior_authorisation(claims), claims.hi, written(n_claims, w, key, attending),
        referring(claims),
    ]  # fmt: skip


def line_texts(lines: LineColumns, claims: ClaimColumns, rows: np.ndarray) -> pa.Array:
    """The 2400 loops (with 2420C) of ``rows``, joined once per distinct service line."""
    lx, money, units, date, renderer = line_pieces(lines, claims, rows)
    return join_distinct([
        lx, "SV2*", lines.revenue_text, "*", lines.svc_text, "*", money, "*UN*", units,
        "~\nDTP*472*D8*", date, "~\n", renderer,
    ], rows)  # fmt: skip
