"""Billing rules, vectorised over the night's lines.

``engine`` holds the machinery: the ``Night`` (the enriched lines, the reference data, the run
date), the ``@rule`` registry, ``run_all`` and the column-wise helpers rules are written with.
The rules themselves live in one module per family:

- ``input``: UNKNOWN_PAYER, UNKNOWN_CLINIC, CODE_UNKNOWN, NPI_INVALID, DIAGNOSIS_INVALID,
  DATE_INVALID
- ``time``: TIME_MISSING, the billable-minutes fixer (TIME_OVERLAP_SAME_PATIENT), the units
  fixer (UNITS_ZERO, UNITS_CORRECTED), NOT_ONE_ON_ONE, PROVIDER_OVERLAP
- ``modifiers``: the fixers THERAPY_MODIFIER_ADDED and ASSISTANT_MODIFIER_ADDED (MODIFIER_INVALID
  where a line has no room left), MODIFIER_INVALID, THERAPY_MODIFIER_MISMATCH
- ``providers``: ASSISTANT_SUPERVISOR_MISSING (an assistant's line with no supervising
  therapist to bill under), PROVIDER_UNKNOWN, REFERRING_MISSING
- ``region``: 97140 and CMT: TECHNIQUE_MISSING, TECHNIQUE_INVALID, DOCUMENTATION_INCOMPLETE,
  CMT_SAME_REGION
- ``ncci``: NCCI_MODIFIER_MISSING, NCCI_NOT_BYPASSABLE, XS_SAME_REGION
- ``limits``: MUE_EXCEEDED, DAILY_UNIT_CAP_EXCEEDED, AUTH_MISSING, VISIT_LIMIT_EXCEEDED,
  POC_EXPIRED
- ``coverage``: CODE_NOT_COVERED and DC_SERVICE_NOT_COVERED (line-level: the line is left off
  the claim, ``Night.exclude``, or billed with GY/GA/GZ), CMT_AT_MISSING (CMT_AT_MISSING_WARN),
  KX_REQUIRED (the fixer KX_ADDED, KX_REQUIRED_WARN; and ``kx_history``, the amounts of earlier
  nights it counts)
- ``charges``: the charge fixer CHARGE_CORRECTED, CHARGE_INVALID, CHARGE_ABOVE_SCHEDULE (and the
  fee_schedule.csv lookup the KX rule counts allowed amounts with)
- ``claim_content``: INITIAL_TREATMENT_DATE_MISSING, ACCIDENT_DATE_MISSING,
  ACCIDENT_STATE_MISSING, PC_CLAIM_NUMBER_MISSING, EMPLOYER_MISSING (what a claim carries by
  payer class and claim type)

Rules run in ``ORDER``, not in the order they are defined or imported. Fixers (rules that
change lines: units, added modifiers, lines left off the claim) run before every rule that
reads what they change (the rules declare both, and a test holds the order to it). Beyond
that the order is part of the output: findings are concatenated in it, and each scored
line's ``exception_codes`` lists its findings in it, so moving a rule changes outputs.

To add a rule: write it in its family's module with ``@rule(code, ...)`` (the code in
``catalogue.py``), declare ``changes=``/``reads=`` if it fixes or reads a fixed column, and
place it in ``ORDER``.
"""

from __future__ import annotations

import pandas as pd

from therapy_claims.rules import (
    charges,
    claim_content,
    coverage,
    input,
    limits,
    modifiers,
    ncci,
    providers,
    region,
    time,
)
from therapy_claims.rules.coverage import KX_HISTORY_COLUMNS, kx_history
from therapy_claims.rules.engine import (
    CMT_CODES,
    DISTINCT,
    EXCLUDED,
    FINDING_KEYS,
    MANUAL_THERAPY,
    REGISTRY,
    THERAPY_MODIFIER,
    Night,
    Rule,
    list_column,
)
from therapy_claims.rules.engine import run_all as _run

ORDER: tuple[Rule, ...] = (
    input.unknown_payer,
    input.unknown_clinic,
    input.code_unknown,
    input.npi_invalid,
    input.diagnosis_invalid,
    time.time_missing,
    time.time_overlap_same_patient,  # fixer: billable_minutes (what the units rule counts)
    time.compute_units,  # fixer: units
    charges.charge_follows_units,  # fixer: charge_amount, after the units
    modifiers.therapy_modifier_added,  # fixer: modifiers
    input.date_invalid,
    time.not_one_on_one,
    time.provider_overlap,
    # fixer: excluded, modifiers (GY/GA/GZ); after the therapy modifier, before the edits
    coverage.code_not_covered,
    coverage.kx_required,  # fixer: modifiers (KX), after the units, charges and coverage
    modifiers.assistant_modifier_added,  # fixer: modifiers, after the therapy modifier and KX
    providers.assistant_supervisor,
    providers.provider_unknown,
    providers.referring_missing,
    modifiers.modifier_unknown,
    modifiers.assistant_pairing,
    region.manual_therapy_documentation,
    region.cmt_same_region,
    ncci.ncci_pairs,
    limits.mue_exceeded,
    limits.daily_unit_cap,
    limits.authorization_and_plan,
    coverage.cmt_at_missing,
    charges.charge_checks,  # the billed lines' charges, after every fixer
    claim_content.claim_content,  # what the claim needs by payer class and claim type
)


def run_all(night: Night) -> pd.DataFrame:
    """Every rule on the night in ``ORDER``: their findings, in that order. Fixers change
    ``night.lines`` and record their changes on the night (``Night.change_lists``)."""
    return _run(night, ORDER)


__all__ = [
    "CMT_CODES",
    "DISTINCT",
    "EXCLUDED",
    "FINDING_KEYS",
    "KX_HISTORY_COLUMNS",
    "MANUAL_THERAPY",
    "ORDER",
    "REGISTRY",
    "THERAPY_MODIFIER",
    "Night",
    "Rule",
    "kx_history",
    "list_column",
    "run_all",
]
