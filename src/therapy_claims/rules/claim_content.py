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
- POC_DATE_MISSING: a Medicare 837I claim carries occurrence code 29/17/30, the date the plan
  of care was established (``plan_of_care_start``; MCPM ch.5 §20: intermediaries' claims report
  both dates). A claim with neither date is INITIAL_TREATMENT_DATE_MISSING alone.

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
)

CONTENT_CODES = (
    "INITIAL_TREATMENT_DATE_MISSING",
    "ACCIDENT_DATE_MISSING",
    "ACCIDENT_STATE_MISSING",
    "PC_CLAIM_NUMBER_MISSING",
    "EMPLOYER_MISSING",
    "POC_DATE_MISSING",
)


def empty(night: Night, column: str, where: np.ndarray | None = None) -> np.ndarray:
    """Per line: the optional ``column`` is missing or blank (every line when the frame has
    no such column). Only the lines ``where`` are looked at (the others are False): the
    columns checked here are claim details few lines need, and most hold one value per
    patient, so looking at a night's million values would cost more than the lines asked."""
    lines = night.lines
    n = len(lines)
    at = np.arange(n) if where is None else np.flatnonzero(where)
    out = np.zeros(n, dtype=bool)
    if column not in lines.columns:
        out[at] = True
        return out
    values = lines[column].iloc[at]
    if values.dtype.kind == "M":
        out[at] = values.isna().to_numpy()
    else:
        out[at] = values.astype("string").str.strip().eq("").fillna(True).to_numpy(dtype=bool)
    return out


def related_causes(night: Night) -> dict[str, np.ndarray]:
    """Per line, each related cause: the ``related_cause`` column, else employment for payer
    class workers_comp and auto_accident for auto."""
    lines = night.lines
    causes = ("employment", "auto_accident", "other_accident")
    given = np.zeros(len(lines), dtype=np.int8)  # 0: none, else 1 + the cause's position
    if "related_cause" in lines.columns:
        col = lines["related_cause"]
        at = np.flatnonzero(col.notna().to_numpy())  # few lines name a cause
        norm = col.iloc[at].astype("string").str.strip().str.lower()
        given[at] = norm.map({c: i + 1 for i, c in enumerate(causes)}).fillna(0).to_numpy(np.int8)
    none = given == 0
    return {
        "employment": (given == 1) | (none & isin(night, "payer_class", ["workers_comp"])),
        "auto_accident": (given == 2) | (none & isin(night, "payer_class", ["auto"])),
        "other_accident": given == 3,
    }


def one_per_claim(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (the lowest line_id): the findings are about the claim."""
    if rows.empty:
        return rows
    return rows.sort_values("line_id", kind="mergesort").drop_duplicates("claim_id", keep="first")


def per_claim(night: Night, mask: np.ndarray) -> np.ndarray:
    """Per line: some line of its claim (``claim_id``) is in ``mask``."""
    codes, uniques = night.distinct("claim_id")  # (every line has a claim id)
    hit = np.bincount(codes[mask], minlength=len(uniques)) > 0
    return hit[codes]


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
    no_accident = empty(night, "accident_date", related)
    no_accident &= empty(night, "injury_date", no_accident)
    return findings.concat(
        [
            _treatment_started(night, institutional),
            _accident_date(night, causes, related & no_accident),
            _accident_state(night, causes["auto_accident"] & ~institutional),
            _simple(
                night,
                "PC_CLAIM_NUMBER_MISSING",
                p_and_c & empty(night, "pc_claim_number", p_and_c),
                "has no pc_claim_number: REF*Y4 (the carrier's claim number) is left out",
                "X12 837 2010BA REF*Y4 property and casualty claim number",
            ),
            _simple(
                night,
                "EMPLOYER_MISSING",
                workers_comp & empty(night, "employer_name", workers_comp),
                "has no employer_name: the employer is the insured (2010BA NM1*IL*2)",
                "state workers' compensation e-billing rules: the employer is the insured",
            ),
            _simple(
                night,
                "POC_DATE_MISSING",
                _started_without_poc(night, institutional),
                "has no plan_of_care_start: occurrence code 29/17/30 (the date the plan of care "
                "was established) cannot be sent",
                "CMS MCPM ch.5 §20: occurrence codes 35/44/45 and 29/17/30 on institutional therapy",
            ),
        ]
    )


def _started_without_poc(night: Night, institutional: np.ndarray) -> np.ndarray:
    """Per line: a Medicare 837I line with the date treatment started but no plan of care."""
    medicare_i = isin(night, "payer_class", ["medicare"]) & institutional
    no_poc = empty(night, "plan_of_care_start", medicare_i)
    return no_poc & ~empty(night, "initial_treatment_date", no_poc)


def _treatment_started(night: Night, institutional: np.ndarray) -> pd.DataFrame:
    """INITIAL_TREATMENT_DATE_MISSING on Medicare CMT 837P claims and Medicare 837I claims."""
    lines = night.lines
    medicare = isin(night, "payer_class", ["medicare"])
    cmt_claim = per_claim(night, isin(night, "cpt_code", CMT_CODES)) & ~institutional
    need = medicare & (cmt_claim | institutional)
    no_start = empty(night, "initial_treatment_date", need)
    hit = no_start & empty(night, "plan_of_care_start", no_start)
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
    hit = empty(night, "accident_state", hit)
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
    """A claim of a payer (workers' comp, auto, Medicare) without a value it should carry."""
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
