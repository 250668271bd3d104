"""Claim content by payer class and claim type: what a payer needs on the claim beyond the
lines, held here (in score) so that the 837 writer never meets a claim it cannot carry.

- INITIAL_TREATMENT_DATE_MISSING: a Medicare (payer class medicare) 837P claim with a CMT line
  (98940-98942) carries DTP*454, and a Medicare 837I claim carries occurrence codes 35/44/45,
  the date treatment started: ``initial_treatment_date``, else ``plan_of_care_start``.
- ACCIDENT_DATE_MISSING: a claim with a related cause (``related_cause``, else employment for
  payer class workers_comp, auto accident for auto) carries the accident date (837P DTP*439,
  837I occurrence code 04/01/05): ``accident_date``, else ``injury_date``.
- ACCIDENT_STATE_MISSING: an 837P auto accident claim carries the state in CLM11-4 (the 837I
  has no place for it).
- PC_CLAIM_NUMBER_MISSING (warning): workers' comp and auto carriers find the claim by their
  own claim number (REF*Y4); the claim goes out without it.
- EMPLOYER_MISSING: a workers' comp claim names the employer as the insured.

The values are claim-level (the writer reads a claim's first line) and the extract repeats them
on every line of a visit: a claim gets one finding, on its lowest line_id among the lines that
lack the value. Every column is checked once per distinct value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings
from therapy_claims.rules.engine import (
    CMT_CODES,
    Night,
    code_on_date,
    isin,
    message,
    rule,
    select,
    spread,
)

CONTENT_CODES = (
    "INITIAL_TREATMENT_DATE_MISSING",
    "ACCIDENT_DATE_MISSING",
    "ACCIDENT_STATE_MISSING",
    "PC_CLAIM_NUMBER_MISSING",
    "EMPLOYER_MISSING",
)


def empty(night: Night, column: str) -> np.ndarray:
    """Per line: the optional ``column`` is missing or blank (every line when the frame has
    no such column)."""
    lines = night.lines
    if column not in lines.columns:
        return np.ones(len(lines), dtype=bool)
    if lines[column].dtype.kind == "M":
        return lines[column].isna().to_numpy()
    codes, uniques = night.distinct(column)
    blank = uniques.astype("string").str.strip().eq("").fillna(True)
    return spread(codes, blank.to_numpy(dtype=bool), True)


def related_causes(night: Night) -> dict[str, np.ndarray]:
    """Per line, each related cause: the ``related_cause`` column, else employment for payer
    class workers_comp and auto_accident for auto."""
    lines = night.lines
    given = np.full((len(lines),), "", dtype=object)
    if "related_cause" in lines.columns:
        codes, uniques = night.distinct("related_cause")
        norm = uniques.astype("string").str.strip().str.lower().fillna("")
        given = spread(codes, norm.to_numpy(dtype=object), "")
    none = given == ""
    return {
        "employment": (given == "employment")
        | (none & isin(night, "payer_class", ["workers_comp"])),
        "auto_accident": (given == "auto_accident") | (none & isin(night, "payer_class", ["auto"])),
        "other_accident": given == "other_accident",
    }


def one_per_claim(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (the lowest line_id): the findings are about the claim."""
    if rows.empty:
        return rows
    return rows.sort_values("line_id", kind="mergesort").drop_duplicates("claim_id", keep="first")


def per_claim(night: Night, mask: np.ndarray) -> np.ndarray:
    """Per line: some line of its claim (``claim_id``) is in ``mask``."""
    codes, _ = pd.factorize(night.lines["claim_id"], use_na_sentinel=False)
    return (np.bincount(codes, weights=mask, minlength=codes.max(initial=-1) + 1) > 0)[codes]


# what each related cause is, as messages name it
CAUSE_TEXT = {
    "employment": "employment (837P CLM11 EM, 837I occurrence code 04)",
    "auto_accident": "an auto accident (837P CLM11 AA, 837I occurrence code 01)",
    "other_accident": "another accident (837P CLM11 OA, 837I occurrence code 05)",
}


@rule(*CONTENT_CODES)
def claim_content(night: Night) -> pd.DataFrame:
    """Each code of the module's list, on the lines that lack what their claim needs."""
    lines = night.lines
    institutional = lines["claim_type"].eq("institutional").fillna(False).to_numpy(dtype=bool)
    causes = related_causes(night)
    related = causes["employment"] | causes["auto_accident"] | causes["other_accident"]
    workers_comp = isin(night, "payer_class", ["workers_comp"])
    p_and_c = workers_comp | isin(night, "payer_class", ["auto"])
    no_accident = empty(night, "accident_date") & empty(night, "injury_date")
    return findings.concat(
        [
            _treatment_started(night, institutional),
            _accident_date(night, causes, related & no_accident),
            _accident_state(night, causes["auto_accident"] & ~institutional),
            _simple(
                night,
                "PC_CLAIM_NUMBER_MISSING",
                p_and_c & empty(night, "pc_claim_number"),
                "has no pc_claim_number: REF*Y4 (the carrier's claim number) is left out",
                "X12 837 2010BA REF*Y4 property and casualty claim number",
            ),
            _simple(
                night,
                "EMPLOYER_MISSING",
                workers_comp & empty(night, "employer_name"),
                "has no employer_name: the employer is the insured (2010BA NM1*IL*2)",
                "state workers' compensation e-billing rules: the employer is the insured",
            ),
        ]
    )


def _treatment_started(night: Night, institutional: np.ndarray) -> pd.DataFrame:
    """INITIAL_TREATMENT_DATE_MISSING on Medicare CMT 837P claims and Medicare 837I claims."""
    lines = night.lines
    medicare = isin(night, "payer_class", ["medicare"])
    cmt_claim = per_claim(night, isin(night, "cpt_code", CMT_CODES)) & ~institutional
    no_start = empty(night, "initial_treatment_date") & empty(night, "plan_of_care_start")
    hit = medicare & (cmt_claim | institutional) & no_start
    columns = ("claim_id", "claim_type", "payer_id", "cpt_code", "date_of_service")
    rows = one_per_claim(select(lines, hit, *columns))
    inst = rows["claim_type"].eq("institutional").fillna(False).to_numpy(dtype=bool)
    what = np.where(
        inst,
        "therapy claim (837I) cannot carry occurrence codes 35/44/45 (date treatment started)",
        "chiropractic (CMT) claim cannot carry DTP*454 (initial treatment date)",
    )
    evidence = np.where(
        inst,
        "CMS MCPM ch.5 §20: occurrence codes 35/44/45 and 29/17/30 on institutional therapy",
        "X12 837P 2300 DTP*454; clearinghouse front-end edit on Medicare CMT claims",
    )
    return findings.make(
        "INITIAL_TREATMENT_DATE_MISSING",
        rows,
        message(
            rows,
            "Medicare (payer ",
            rows["payer_id"],
            ") ",
            what,
            ": ",
            code_on_date(rows),
            " has no initial_treatment_date and no plan_of_care_start",
        ),
        evidence=message(rows, evidence),
    )


def _accident_date(night: Night, causes: dict[str, np.ndarray], hit: np.ndarray) -> pd.DataFrame:
    """ACCIDENT_DATE_MISSING: a related cause without accident_date or injury_date."""
    at = np.flatnonzero(hit)
    cause = np.select([causes[c][at] for c in CAUSE_TEXT], list(CAUSE_TEXT.values()), "")
    columns = ("claim_id", "payer_id", "cpt_code", "date_of_service")
    rows = select(night.lines, hit, *columns).assign(cause=cause)
    rows = one_per_claim(rows)
    return findings.make(
        "ACCIDENT_DATE_MISSING",
        rows,
        message(
            rows,
            "the claim (payer ",
            rows["payer_id"],
            ") is related to ",
            rows["cause"],
            ": ",
            code_on_date(rows),
            " has no accident_date and no injury_date, so the accident date (DTP*439) "
            "cannot be sent",
        ),
        evidence="X12 837P CLM11 and DTP*439; 837I occurrence codes 01-06 with the date",
    )


def _accident_state(night: Night, hit: np.ndarray) -> pd.DataFrame:
    """ACCIDENT_STATE_MISSING: an 837P auto accident claim without accident_state."""
    hit = hit & empty(night, "accident_state")
    columns = ("claim_id", "payer_id", "cpt_code", "date_of_service")
    rows = one_per_claim(select(night.lines, hit, *columns))
    return findings.make(
        "ACCIDENT_STATE_MISSING",
        rows,
        message(
            rows,
            "auto accident claim (payer ",
            rows["payer_id"],
            "): ",
            code_on_date(rows),
            " has no accident_state, so CLM11-4 (the state of the accident) cannot be sent",
        ),
        evidence="X12 837P CLM11-4: required with related cause AA",
    )


def _simple(night: Night, code: str, hit: np.ndarray, problem: str, evidence: str) -> pd.DataFrame:
    """A claim of a workers' comp / auto payer without a value it should carry."""
    columns = ("claim_id", "payer_id", "payer_class", "cpt_code", "date_of_service")
    rows = one_per_claim(select(night.lines, hit, *columns))
    return findings.make(
        code,
        rows,
        message(
            rows,
            rows["payer_class"].fillna("?"),
            " claim (payer ",
            rows["payer_id"],
            "): ",
            code_on_date(rows),
            " ",
            problem,
        ),
        evidence=evidence,
    )
