"""Which values a batch's 837 carries cut to their element's maximum length (``TEXT_TRUNCATED``).

The writer cleans every free-text element and cuts it to the element's size (``NM103`` 60,
``NM104`` 35, ``N301`` 55, ``N401`` 30, ...). A cut name or address still goes out, but a payer
matching eligibility may not find the patient, so each cut is reported: per claim that can be
written, each written value that was cut, with its text before and after the cut. The values
are returned here as they are; what of them may be shown where (names and addresses are PHI)
is the caller's to decide (score: lengths only for ``layout.PHI_COLUMNS``).

Work is per distinct value: the checked columns of :mod:`therapy_claims.x12.batch` already
know which of their keys were cut (:class:`therapy_claims.x12.columns.Cleaned`); the clinic
and payer rows are few.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.checks import Batch
from therapy_claims.x12.columns import Cleaned
from therapy_claims.x12.text import clean_text, digits_of

# the claim's own texts: (ClaimColumns attribute, field, element); written for every claim
# (patient: 2010BA for a self subscriber, else 2010CA) or, for the subscriber, for dependants
PATIENT_TEXTS = (
    ("pat_last", "patient_last_name", "NM103"),
    ("pat_first", "patient_first_name", "NM104"),
    ("address", "patient_address", "N301"),
    ("city", "patient_city", "N401"),
)
SUBSCRIBER_TEXTS = (
    ("sub_last", "subscriber_last_name", "NM103"),
    ("sub_first", "subscriber_first_name", "NM104"),
)

# reference rows: (column, field as messages name it, max length, element (loop))
CLINIC_TEXTS = (
    ("billing_name", "clinic billing_name", 60, "NM103 (2010AA)"),
    ("address", "clinic address", 55, "N301 (2010AA)"),
    ("city", "clinic city", 30, "N401 (2010AA)"),
    ("submitter_name", "clinic submitter_name", 60, "NM103 (1000A)"),
    ("contact_phone", "clinic contact_phone", 256, "PER04 (1000A)"),  # its digits
)
PAYER_TEXTS = (("payer_name", "payer_name", 60, "NM103 (2010BB)"),)

COLUMNS = ["claim_id", "row", "field", "element", "max_len", "before", "after"]
SUPERVISING_NAMES = ("supervising_last_name", "supervising_first_name")
REFERRING_NAMES = ("referring_last_name", "referring_first_name")


def text_truncations(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    providers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The values the 837I (``institutional``) or 837P of ``lines`` would carry cut, one row
    per claim that can be written (``unwritable_claims`` names the others) and cut value:
    ``claim_id`` (CLM01), ``row`` (the position in ``lines`` of the line whose own value was
    cut, a 2420A/2420C renderer; -1 for a value of the whole claim), ``field``, ``element``
    (e.g. ``NM103 (2010BA)``), ``max_len``, ``before`` (the cleaned text, whole) and
    ``after`` (as written). No lines, no rows."""
    if lines is None or len(lines) == 0:
        return pd.DataFrame(columns=COLUMNS)
    batch = Batch(lines.reset_index(drop=True), institutional, clinics, payers, providers)
    return truncations(batch, clinics, payers)


def checked_claims(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    providers: pd.DataFrame | None = None,
) -> tuple[dict[str, str], pd.DataFrame]:
    """``(unwritable_claims(...), text_truncations(...))`` of the same arguments, checking the
    lines once (score asks both of every billed line)."""
    return checked_batch(
        lines, institutional=institutional, clinics=clinics, payers=payers, providers=providers
    )[:2]


def checked_batch(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    providers: pd.DataFrame | None = None,
) -> tuple[dict[str, str], pd.DataFrame, Batch | None]:
    """``checked_claims(...)`` and the checked batch itself (None for no lines), whose
    columns a later build of the same claims can take (``x12.prepared.export``)."""
    if lines is None or len(lines) == 0:
        return {}, pd.DataFrame(columns=COLUMNS), None
    batch = Batch(lines.reset_index(drop=True), institutional, clinics, payers, providers)
    verdict = batch.verdict
    bad = {verdict.ids[k]: verdict.message(k) for k in verdict.failing()}
    return bad, truncations(batch, clinics, payers), batch


def truncations(batch: Batch, clinics: pd.DataFrame, payers: pd.DataFrame) -> pd.DataFrame:
    """``text_truncations`` of a batch already checked."""
    lines, claims = batch.lines, batch.claims
    ok = ~batch.verdict.bad
    rows: list[tuple] = []
    dependant = claims.dependent
    patient_loop = np.where(dependant, "2010CA", "2010BA")
    for attr, field, element in PATIENT_TEXTS:
        rows += _claim_cuts(getattr(claims, attr), ok, field, element, patient_loop)
    # the subscriber's names go out for an insured person other than the patient; a workers'
    # comp claim's insured is the employer instead (NM1*IL*2)
    for attr, field, element in SUBSCRIBER_TEXTS:
        rows += _claim_cuts(
            getattr(claims, attr), ok & claims.insured_person, field, element, "2010BA"
        )
    rows += _claim_cuts(
        claims.employer_name, ok & claims.employer, "employer_name", "NM103", "2010BA"
    )
    rows += _renderer_cuts(lines, claims, ok)
    rows += _supervisor_cuts(lines, claims, ok)
    rows += _referrer_cuts(lines, claims, ok)
    rows += _reference_cuts(claims, ok, clinics, "clinic", CLINIC_TEXTS)
    rows += _reference_cuts(claims, ok, payers, "payer", PAYER_TEXTS)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["claim_id"] = [str(lines.ids[k]) for k in out["claim_id"]]
    return out


def _claim_cuts(
    texts: Cleaned, where: np.ndarray, field: str, element: str, loop: np.ndarray | str
) -> list[tuple]:
    """Rows for the claims ``where`` whose value (a claim column of ``texts``) was cut."""
    if not texts.uncut:
        return []
    hit = np.flatnonzero(texts.cut()[texts.codes] & where)
    loops = np.broadcast_to(np.asarray(loop, dtype=object), where.shape)
    return [
        (k, -1, field, f"{element} ({loops[k]})", texts.max_len, *_before_after(texts, k))
        for k in hit.tolist()
    ]


def _before_after(texts: Cleaned, at: int) -> tuple[str, str]:
    key = texts.codes[at]
    return texts.uncut[int(key)], texts.texts[key]


def _renderer_cuts(lines: LineColumns, claims: ClaimColumns, ok: np.ndarray) -> list[tuple]:
    """The rendering provider's names: the claim's (its first line's: 837P 2310B where it
    differs from the billing provider, 837I 2310A attending) and a line's own where it
    differs from the claim's (837P 2420A, 837I 2420C)."""
    claim_loop, line_loop = ("2310A", "2420C") if lines.institutional else ("2310B", "2420A")
    # (an assistant's line billed under its supervisor does not carry the rendering columns'
    # names: those cuts are not on the claim)
    written = ok & claims.renderer2310 & ~lines.subst[lines.starts]
    own = lines.line_renderer & ok[lines.line_claim] & ~lines.subst
    rows: list[tuple] = []
    for texts, field, element in (
        (lines.r_last, "rendering_last_name", "NM103"),
        (lines.r_first, "rendering_first_name", "NM104"),
    ):
        if not texts.uncut:
            continue
        cut = texts.cut()[texts.codes[lines.order]]  # per line, claim order
        for k in np.flatnonzero(cut[lines.starts] & written).tolist():
            row = int(lines.order[lines.starts[k]])
            rows.append((k, -1, field, f"{element} ({claim_loop})", texts.max_len,
                         *_before_after(texts, row)))  # fmt: skip
        for i in np.flatnonzero(cut & own).tolist():
            row = int(lines.order[i])
            rows.append((int(lines.line_claim[i]), row, field, f"{element} ({line_loop})",
                         texts.max_len, *_before_after(texts, row)))  # fmt: skip
    return rows


def _supervisor_cuts(lines: LineColumns, claims: ClaimColumns, ok: np.ndarray) -> list[tuple]:
    """The supervising therapist's names from the extract's columns, where an assistant's
    line goes out under them: as the claim's renderer (837P 2310B, 837I 2310A) when its first
    line does, else on the line (837P 2420A, 837I 2420C) when it is the line's own renderer."""
    sup = getattr(lines, "supervisor", None)
    if sup is None or not lines.subst.any():
        return []
    claim_loop, line_loop = ("2310A", "2420C") if lines.institutional else ("2310B", "2420A")
    from_columns = (lines.subst & ~sup.from_directory[lines.order]) & ok[lines.line_claim]
    rows: list[tuple] = []
    for texts, field, element in zip(
        sup.cleaned, SUPERVISING_NAMES, ("NM103", "NM104"), strict=True
    ):
        if not texts.uncut:
            continue
        cut = texts.cut()[texts.codes[lines.order]] & from_columns  # per line, claim order
        first = np.zeros(len(cut), dtype=bool)
        first[lines.starts] = True
        for i in np.flatnonzero(cut & (first & claims.renderer2310[lines.line_claim])).tolist():
            k, row = int(lines.line_claim[i]), int(lines.order[i])
            rows.append((k, -1, field, f"{element} ({claim_loop})", texts.max_len,
                         *_before_after(texts, row)))  # fmt: skip
        for i in np.flatnonzero(cut & lines.line_renderer & ~first).tolist():
            row = int(lines.order[i])
            rows.append((int(lines.line_claim[i]), row, field, f"{element} ({line_loop})",
                         texts.max_len, *_before_after(texts, row)))  # fmt: skip
    return rows


def _referrer_cuts(lines: LineColumns, claims: ClaimColumns, ok: np.ndarray) -> list[tuple]:
    """The referring provider's names from the extract's columns, on the claims that carry
    NM1*DN (837P 2310A, 837I 2310F)."""
    ref = getattr(claims, "referrer", None)
    if ref is None:
        return []
    loop = "2310F" if lines.institutional else "2310A"
    written = ok & ref.usable & ~ref.from_directory
    rows: list[tuple] = []
    for texts, field, element in zip(ref.cleaned, REFERRING_NAMES, ("NM103", "NM104"), strict=True):
        if texts.uncut:
            rows += _claim_cuts(texts, written, field, element, loop)
    return rows


def _reference_cuts(
    claims: ClaimColumns, ok: np.ndarray, frame: pd.DataFrame, scope: str, fields: tuple
) -> list[tuple]:
    """A clinic's or payer's cut values, on each claim written with that row."""
    entries = claims.clinic_entries if scope == "clinic" else claims.payer_entries
    rank = claims.clinic_rank if scope == "clinic" else claims.payer_code
    ids = claims.scope_ids[scope]
    codes, claim = np.unique(rank, return_index=True)
    first = dict(zip(codes.tolist(), claim.tolist(), strict=True))  # a claim of each row
    rows: list[tuple] = []
    for at, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue  # the row failed its check: its claims are not written
        row = frame.loc[ids[first[at]]]
        for column, field, max_len, element in fields:
            if column not in row.index:
                continue
            value = digits_of(row[column]) if column == "contact_phone" else row[column]
            whole = clean_text(value)
            if len(whole) > max_len:
                after = clean_text(value, max_len)
                hit = np.flatnonzero((rank == at) & ok).tolist()
                rows += [(k, -1, field, element, max_len, whole, after) for k in hit]
    return rows
