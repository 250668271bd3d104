"""Segment templates shared by the 837P and the 837I: the billing provider (2000A/2010AA),
the subscriber and patient (2000B/2010BA/2010BB, 2000C/2010CA), rendering and attending
providers (2310A/B, 2420A/C), the claim total, authorisation and the payer claim control number
a replacement or void corrects (REF*F8), and a service line's common
pieces (and its REF*6R line item control number).

A template is a list of pieces: constant strings and :class:`Texts` (a text per claim or per
line, from few distinct texts), joined by pyarrow (:mod:`therapy_claims.x12.joiner`). ``w`` are
the claims written, in file order; ``rows`` lines in claim order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.constants import MAX_LINES_PER_CLAIM_I
from therapy_claims.x12.joiner import (
    Texts,
    blank,
    groups,
    join,
    join_columns,
    join_distinct,
    large,
    money_texts,
    objects,
)


def written(n_claims: int, w: np.ndarray, codes: np.ndarray, texts: np.ndarray | Texts) -> Texts:
    """A text per claim (of ``n_claims``) from the ``codes`` of the written claims ``w`` (file
    order) into ``texts`` (or into the texts of a ``Texts``)."""
    by_claim = np.zeros(n_claims, dtype=np.int64)
    by_claim[w] = codes
    return texts.recode(by_claim) if isinstance(texts, Texts) else Texts(by_claim, texts)


def written_lines(lines: LineColumns, w: np.ndarray) -> np.ndarray:
    """Positions (claim order) of the lines of claims ``w``, claim after claim."""
    n_lines = lines.sizes[w]
    offsets = np.cumsum(n_lines) - n_lines
    return np.repeat(lines.starts[w] - offsets, n_lines) + np.arange(int(n_lines.sum()))


def billing_provider(e: dict[str, str]) -> str:
    """2000A after its HL: PRV, NM1*85, N3, N4, REF*EI."""
    return (
        f"PRV*BI*PXC*{e['taxonomy']}~\nNM1*85*2*{e['name']}*****XX*{e['npi']}~\n"
        f"N3*{e['address']}~\nN4*{e['city']}*{e['state']}*{e['zip']}~\nREF*EI*{e['tax_id']}~\n"
    )


def masked(texts: Texts, keep: np.ndarray) -> Texts:
    """``texts`` where ``keep`` holds, else ''."""
    arrow = pa.concat_arrays([texts.arrow(), large([""])])
    return Texts(np.where(keep, texts.codes, texts.n_texts), arrow=arrow)


def optional_segment(start: str, value: Texts, show: np.ndarray) -> list:
    """``<start><value>~`` where ``show`` holds, else nothing: pieces per claim."""
    code = show.astype(np.int64)
    return [
        Texts(code, np.array(["", start], dtype=object)),
        masked(value, show),
        Texts(code, np.array(["", "~\n"], dtype=object)),
    ]


def subscriber_items(claims: ClaimColumns, common: list, dependant_hl: list) -> tuple[list, list]:
    """2000B (SBR), 2010BA (NM1*IL, and for a self subscriber N3, N4, DMG; REF*Y4), 2010BB
    (NM1*PR), and for a dependant 2000C (``dependant_hl``: its HL's pieces, then PAT) and
    2010CA (NM1*QC, N3, N4, DMG): the pieces of a self and of a dependant claim, after
    ``common`` (the 2000A, if any, and the 2000B HL up to its parent). A workers' comp claim
    with an employer is a dependant one: the employer (``NM1*IL*2``) is the insured and the
    patient its employee (PAT*20)."""
    key = "sbr09_i" if claims.institutional else "sbr09"
    sbr09 = Texts(claims.payer_code, claims.entry_values(claims.payer_entries, key))
    pr = objects(
        (
            f"NM1*PR*2*{e['name']}*****PI*{e['id']}~\n" if isinstance(e, dict) else ""
            for e in claims.payer_entries
        ),
        len(claims.payer_entries),
    )
    pr = Texts(claims.payer_code, pr)
    c = claims
    demographics = [
        "~\nN3*", c.address, "~\nN4*", c.city, "*", c.state, "*",
        c.zip, "~\nDMG*D8*", c.dob, "*", c.sex, "~\n",
    ]  # fmt: skip
    y4 = optional_segment("REF*Y4*", c.pc_number, c.has_y4)
    employer = c.employer
    entity = Texts(employer.astype(np.int64), np.array(["1", "2"], dtype=object))
    # the demographics' leading "~\n" ends NM1*IL (self) or NM1*QC (dependant)
    self_items = [
        *common, "*22*0~\nSBR*P*18*", c.group, "******", sbr09,
        "~\nNM1*IL*1*", c.pat_last, "*", c.pat_first, "****MI*", c.member,
        *demographics, *y4, pr,
    ]  # fmt: skip
    dep_items = [
        *common, "*22*1~\nSBR*P**", c.group, "******", sbr09,
        "~\nNM1*IL*", entity, "*", masked(c.sub_last, ~employer),
        masked(c.employer_name, employer), "*", masked(c.sub_first, ~employer),
        "****MI*", c.member, "~\n", *y4, pr, *dependant_hl, "*23*0~\nPAT*", c.pat01,
        "~\nNM1*QC*1*", c.pat_last, "*", c.pat_first, *demographics,
    ]  # fmt: skip
    return self_items, dep_items


def renderers(
    lines: LineColumns, claims: ClaimColumns, rows: np.ndarray, entity: str = "82"
) -> tuple[np.ndarray, Texts]:
    """``NM1*82`` (837P: with ``PRV*PE``) or ``NM1*71`` (with ``PRV*AT``) of the effective
    rendering provider of each line in ``rows`` (an assistant's supervisor where the payer
    does not let assistants render) and its taxonomy, joined once per distinct provider:
    (code per row, texts by code); code 0 is ''. 837I 2420C (``NM1*82``) has no PRV."""
    last, first, npi = lines.r_last_code[rows], lines.r_first_code[rows], lines.npi_code[rows]
    prv = "PRV*AT*PXC*" if entity == "71" else "" if lines.institutional else "PRV*PE*PXC*"
    taxonomy = lines.tax_code[rows] if prv else np.zeros(len(rows), dtype=np.int64)
    key, rep = groups(last, first, npi, taxonomy)
    items = [
        f"NM1*{entity}*1*", Texts(last, lines.r_last_texts), "*",
        Texts(first, lines.r_first_texts), "****XX*", Texts(npi, lines.npi_texts), "~\n",
    ]  # fmt: skip
    if prv:  # (written claims have a clinic, so a taxonomy)
        items += [prv, Texts(taxonomy, lines.tax_texts), "~\n"]
    texts = pa.concat_arrays([large([""]), join_columns(items, rep)])
    return key + 1, Texts(np.zeros(1, dtype=np.int64), arrow=texts)


def referring(claims: ClaimColumns) -> Texts:
    """Per claim: the referring provider, ``NM1*DN`` (837P 2310A, 837I 2310F), when its first
    line names one with a valid NPI and a name; '' otherwise. Joined once per distinct
    provider."""
    r = claims.referrer
    use = np.flatnonzero(r.usable)
    if len(use) == 0:
        return blank(len(r.npi_code))
    key, rep = groups(r.last[0][use], r.first[0][use], r.npi_code[use])
    items = [
        "NM1*DN*1*", Texts(r.last[0], r.last[1]), "*", Texts(r.first[0], r.first[1]),
        "****XX*", Texts(r.npi_code, r.npi_texts), "~\n",
    ]  # fmt: skip
    codes = np.zeros(len(r.npi_code), dtype=np.int64)
    codes[use] = key + 1
    texts = pa.concat_arrays([large([""]), join_columns(items, use[rep])])
    return Texts(codes, arrow=texts)


def claim_total(lines: LineColumns, w: np.ndarray, rows: np.ndarray) -> Texts:
    """CLM02 of claims ``w``: the sum of their lines' charges (``rows``: their lines)."""
    n_lines = lines.sizes[w]
    offsets = np.cumsum(n_lines) - n_lines
    cents = lines.cents[rows]
    if cents.max() > np.iinfo(np.int64).max // MAX_LINES_PER_CLAIM_I:
        cents = cents.astype(object)  # integer sums that int64 cannot hold
    codes, totals = pd.factorize(np.add.reduceat(cents, offsets))
    return written(len(lines.ids), w, codes, money_texts(totals))


def prior_authorisation(claims: ClaimColumns) -> list:
    """REF*G1 when the claim has an authorisation number."""
    # on the pyarrow texts: a checked batch's (x12.prepared) are the whole night's, which as
    # Python strings would cost more than the claims they are read for
    auth = claims.auth
    has_auth = pc.not_equal(auth.arrow(), "").fill_null(False).to_numpy(zero_copy_only=False)
    has_auth = has_auth[auth.codes].astype(np.int64)
    return [
        Texts(has_auth, np.array(["", "REF*G1*"], dtype=object)),
        claims.auth,
        Texts(has_auth, np.array(["", "~\n"], dtype=object)),
    ]


def payer_claim_reference(claims: ClaimColumns) -> list:
    """REF*F8, the payer's claim control number of the claim a replacement or void corrects
    (2300, after REF*G1 in the guide's REF order), when the claim has one."""
    return optional_segment("REF*F8*", claims.f8, claims.has_f8)


def line_pieces(
    lines: LineColumns, claims: ClaimColumns, rows: np.ndarray
) -> tuple[Texts, Texts, Texts, Texts, Texts]:
    """Per line (of all lines; ``rows`` those written): ``LX`` segment, charge, units, date of
    service and the line's rendering provider (2420A / 2420C, when it differs from the
    claim's; '' otherwise)."""
    n_lx = int(lines.lx.max()) + 1
    lx = Texts(lines.lx, objects((f"LX*{i}~\n" for i in range(n_lx)), n_lx))
    codes, cents = pd.factorize(lines.cents)
    money = money_texts(cents).recode(codes)
    codes, units = pd.factorize(lines.units)
    units = Texts(codes, objects(map(str, units), len(units)))
    date = lines.dates.recode(lines.dos)
    need = rows[lines.line_renderer[rows]]
    renderer = np.zeros(len(lines.lx), dtype=np.int64)
    renderer[need], texts = renderers(lines, claims, need)
    return lx, money, units, date, texts.recode(renderer)


def service_lines(head: list, lines: LineColumns, rows: np.ndarray, renderer: Texts) -> pa.Array:
    """The 2400 loops of ``rows``: ``head`` (the pieces from LX up to the DTP*472 date) joined
    once per distinct service line, then per line its ``REF*6R`` (the line_id: every line's
    own, so it is not part of the distinct text) and the 2420 renderer, if any."""
    distinct = join_distinct([*head, "~\nREF*6R*"], rows)
    return join([distinct, lines.ref_text.take(rows), "~\n", renderer.take(rows)])
