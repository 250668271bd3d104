"""837P (ASC X12 005010X222A1) and 837I (005010X223A2) writer, its claim checks, and a reader.

``build_837p`` / ``build_837i`` turn billable service lines into one interchange (ISA..IEA) as
an ASCII string, one segment per line. Layout, element sizes and code values follow the pyx12
maps ``837.5010.X222.A1.xml`` / ``837Q3.I.5010.X223.A1.xml``.

Design notes
* Delimiters: ``*`` element, ``:`` component, ``^`` repetition, ``~`` segment (+ newline).
* Every free-text element goes through :func:`clean_text` (upper-case, ASCII, X12 *basic*
  character set; delimiters, control characters and whitespace become a space) cut to the
  element's maximum length; :func:`text_truncations` lists the values it cut.
* Money is handled in integer cents, so CLM02 is exactly the sum of the SV102 values.
* Hierarchy: per transaction set (ST, up to ``MAX_CLAIMS_PER_ST`` claims), one 2000A billing
  provider HL per clinic, one 2000B subscriber HL per claim, and a 2000C patient HL when the
  patient is not the subscriber. Claims are grouped by clinic (clinics in order of first
  appearance, claims in order of first appearance within a clinic); lines keep their order.
* Problems in the input that would make an invalid or misleading claim (a required name or
  address that is empty after cleaning, a bad ZIP, too many diagnoses, a pointer outside the
  diagnosis list, ...) hold the claim with a message naming the claim and the field, never
  the value (the values are PHI): :func:`unwritable_claims` lists them without building.
* Speed (a night is ~1M lines): nothing runs per segment, nor per claim or line in Python.
  Each column is cleaned/checked once per distinct value (dictionary-encoded by pyarrow; most
  values are already clean: a pyarrow regex lets them through), checks run over whole columns
  with each claim keeping its first problem in the order a claim-by-claim writer would meet
  them, and the text is joined by pyarrow from columns of codes into few distinct texts: per
  claim, per distinct service line, then once for the whole interchange.

Modules
* ``text``: :func:`clean_text`, :func:`money` and small value helpers.
* ``columns``: a column as codes into its distinct values; cleaning, dates, amounts per column.
* ``joiner``: ``Texts`` (a text per row as codes into few texts) and the pyarrow joins.
* ``fields``: a check per field (``Invalid`` problems), for one value or a whole column.
* ``batch``: an interchange's lines and claims as checked columns.
* ``checks``: the ordered claim checks, the messages, :func:`unwritable_claims`.
* ``truncation``: the values written cut to their element's size, :func:`text_truncations`.
* ``loops``, ``p837``, ``i837``: segment templates per loop (shared, 837P, 837I).
* ``assembly``: transaction sets and the HL hierarchy.
* ``envelope``: ISA/GS/ST/BHT/SE/GE/IEA, :func:`control_number`, :func:`renumber`.
* ``build``: :func:`build_837p` and :func:`build_837i` (of lines, or of the columns they were
  checked with before: ``checked``).
* ``prepared``: a checked batch's columns, handed from score to publish so that the claims are
  not cleaned and checked twice (:class:`prepared.Checked`).
* ``reader``: a tokenizer for any X12 transaction and a per-claim view of an 837.
"""

from __future__ import annotations

from therapy_claims.x12.build import build_837i, build_837p
from therapy_claims.x12.checks import unwritable_claims
from therapy_claims.x12.constants import (
    CREDENTIAL_TAXONOMY,
    LINE_LIMITS,
    MAX_CLAIMS_PER_ST,
    MAX_DIAGNOSES,
    MAX_DIAGNOSES_I,
    MAX_LINES_PER_CLAIM,
    MAX_LINES_PER_CLAIM_I,
    RELATIONSHIP_PAT01,
    REVENUE_CODES,
    SUPERVISOR_TAXONOMY,
    THERAPY_MODIFIERS,
    VERSION,
    VERSION_I,
)
from therapy_claims.x12.envelope import control_number, renumber
from therapy_claims.x12.text import clean_text, money
from therapy_claims.x12.truncation import checked_claims, text_truncations

__all__ = [
    "CREDENTIAL_TAXONOMY",
    "LINE_LIMITS",
    "MAX_CLAIMS_PER_ST",
    "MAX_DIAGNOSES",
    "MAX_DIAGNOSES_I",
    "MAX_LINES_PER_CLAIM",
    "MAX_LINES_PER_CLAIM_I",
    "RELATIONSHIP_PAT01",
    "REVENUE_CODES",
    "SUPERVISOR_TAXONOMY",
    "THERAPY_MODIFIERS",
    "VERSION",
    "VERSION_I",
    "build_837i",
    "build_837p",
    "checked_claims",
    "clean_text",
    "control_number",
    "money",
    "renumber",
    "text_truncations",
    "unwritable_claims",
]
