"""Provider rules (issue 15): who the claim names as rendering and referring provider.

- A PTA/OTA line to a payer that does not let assistants render (payers.csv
  ``assistants_may_render``: false by default for Medicare and Medicare Advantage) goes out
  under the supervising therapist (``supervising_npi``, with CQ/CO: the modifier fixer adds
  them). Without a usable supervisor (a valid NPI and a name, from the columns or
  providers.csv) the line is held (ASSISTANT_SUPERVISOR_MISSING). With one, the substitution
  is the payer's rule applied to every such line, not an exception to work: no finding (a
  quarter of a night's lines would carry one); the claim file names the supervisor and
  ``show CLAIM_ID`` the assistant who charted the line.
- A payer with ``requires_referring`` needs a referring provider (REFERRING_MISSING).
- When providers.csv lists providers, an NPI the claim names that it does not list is a
  warning (PROVIDER_UNKNOWN): the taxonomy then comes from the extract or the credential.

The 837 writer (``x12.providers``) decides the same from the same columns; these rules hold
the claims first, with findings a person can act on. Only reported lines count (a line left
off the claim names nobody). NPIs are not PHI and are named; names are not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, npi
from therapy_claims.rules.engine import (
    Night,
    as_mask,
    code_on_date,
    isin,
    message,
    rule,
    select,
    spread,
)

ASSISTANTS = ("PTA", "OTA")
SUPERVISING = ("supervising_npi", "supervising_last_name", "supervising_first_name")
REFERRING = ("referring_npi", "referring_last_name", "referring_first_name")


def billed_under_supervisor(night: Night) -> np.ndarray:
    """Per line: an assistant's (PTA/OTA) line to a payer that does not let assistants render
    (an unknown payer: no; it is held for that)."""
    may_render = night.lines["assistants_may_render"]
    return isin(night, "rendering_credential", ASSISTANTS) & as_mask(~may_render)


def _filled(night: Night, column: str) -> np.ndarray:
    """Per line: the column holds something besides spaces (per distinct value)."""
    if column not in night.lines:
        return np.zeros(len(night.lines), dtype=bool)
    codes, uniques = night.distinct(column)
    return spread(codes, (uniques.str.strip() != "").to_numpy(dtype=bool, na_value=False), False)


def _npi_checks(night: Night, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per line: (the NPI passes its check digit, providers.csv lists it)."""
    n = len(night.lines)
    if column not in night.lines:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    codes, uniques = night.distinct(column)
    valid = spread(codes, npi.valid_mask(uniques).to_numpy(dtype=bool), False)
    listed = spread(codes, uniques.isin(night.ref.providers.index).to_numpy(dtype=bool), False)
    return valid, listed


def person(night: Night, columns: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per line: (the NPI of ``columns`` is valid, there is a name for it: both name columns
    filled, or providers.csv lists the NPI) — what the writer needs to name the provider."""
    valid, listed = _npi_checks(night, columns[0])
    named = (_filled(night, columns[1]) & _filled(night, columns[2])) | listed
    return valid, named


def _npi_text(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[column].fillna("").str.strip().replace("", "(none)")


def _why(rows: pd.DataFrame, column: str, valid: np.ndarray, named: np.ndarray) -> pd.Series:
    """Why a provider cannot be named: missing NPI, failing NPI, or no name."""
    values = rows[column].fillna("").str.strip()
    empty = (values == "").to_numpy(dtype=bool)
    return message(
        rows,
        np.where(
            empty,
            f"{column} is missing",
            np.where(
                ~valid,
                column + " " + values + " fails the NPI check digit",
                np.where(
                    ~named,
                    column + " " + values + " has no name (name columns empty, not in "
                    "providers.csv)",
                    "",
                ),
            ),
        ),
    )


@rule("ASSISTANT_SUPERVISOR_MISSING", reads=("units", "excluded"))
def assistant_supervisor(night: Night) -> pd.DataFrame:
    """Assistants' reported lines the payer does not take as rendered by them, without a
    usable supervisor to bill under: held."""
    lines = night.lines
    under = billed_under_supervisor(night) & night.reported()
    valid, named = person(night, SUPERVISING)
    usable = valid & named
    columns = ("cpt_code", "date_of_service", "rendering_credential", "rendering_npi")
    columns += ("payer_id", "supervising_npi")
    held = under & ~usable
    h = select(lines, held, *columns)
    missing = findings.make(
        "ASSISTANT_SUPERVISOR_MISSING",
        h,
        message(
            h,
            code_on_date(h),
            " was furnished by a ",
            h["rendering_credential"],
            " (rendering NPI ",
            _npi_text(h, "rendering_npi"),
            ") and payer ",
            h["payer_id"],
            " does not let assistants render: no supervising therapist to bill under (",
            _why(h, "supervising_npi", valid[held], named[held]),
            ")",
        ),
        evidence=message(
            h,
            "payers.csv ",
            h["payer_id"],
            " assistants_may_render=false (" + night.ref.version("payers.csv") + ")",
        ),
    )
    return missing


@rule("PROVIDER_UNKNOWN", reads=("units", "excluded"))
def provider_unknown(night: Night) -> pd.DataFrame:
    """NPIs the claim names that providers.csv (when it lists anyone) does not: the
    rendering one (unless the line goes out under its supervisor), the supervising one
    (when it does), the referring one. Invalid NPIs have their own findings."""
    reported = night.reported()
    if len(night.ref.providers) == 0:
        return findings.empty()
    lines = night.lines
    under = billed_under_supervisor(night)
    out = []
    for role, column, where in (
        ("rendering", "rendering_npi", ~under),
        ("supervising", "supervising_npi", under),
        ("referring", "referring_npi", np.ones(len(lines), dtype=bool)),
    ):
        valid, listed = _npi_checks(night, column)
        r = select(lines, reported & where & valid & ~listed, "cpt_code", "date_of_service", column)
        out.append(
            findings.make(
                "PROVIDER_UNKNOWN",
                r,
                message(
                    r,
                    code_on_date(r),
                    f": {role} NPI ",
                    r[column].str.strip(),
                    " is not in providers.csv (its taxonomy comes from the extract or the "
                    "credential)",
                ),
                evidence=night.ref.version("providers.csv"),
            )
        )
    return findings.concat(out)


@rule("REFERRING_MISSING", reads=("units", "excluded"))
def referring_missing(night: Night) -> pd.DataFrame:
    """Reported lines of a payer that requires a referring provider (payers.csv
    ``requires_referring``) without a usable one: valid referring_npi and a name."""
    lines = night.lines
    need = night.reported() & as_mask(lines["requires_referring"])
    valid, named = person(night, REFERRING)
    bad = need & ~(valid & named)
    r = select(lines, bad, "cpt_code", "date_of_service", "payer_id", "referring_npi")
    return findings.make(
        "REFERRING_MISSING",
        r,
        message(
            r,
            code_on_date(r),
            ": payer ",
            r["payer_id"],
            " requires a referring/ordering provider (837 NM1*DN): ",
            _why(r, "referring_npi", valid[bad], named[bad]),
        ),
        evidence=message(
            r,
            "payers.csv ",
            r["payer_id"],
            " requires_referring=true (" + night.ref.version("payers.csv") + ")",
        ),
    )
