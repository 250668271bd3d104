"""Manual therapy (97140) and chiropractic manipulation (CMT) rules: what a 97140 line must
document (technique, goal, response) and 97140 on a region manipulated the same day."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, units
from therapy_claims.layout import MANUAL_TECHNIQUES
from therapy_claims.rules.engine import (
    CMT_CODES,
    MANUAL_THERAPY,
    Night,
    code_on_date,
    explode_list,
    isin,
    iso_date,
    joined,
    message,
    rule,
    select,
    spread,
    take,
)


@rule("TECHNIQUE_MISSING", "TECHNIQUE_INVALID", "DOCUMENTATION_INCOMPLETE")
def manual_therapy_documentation(night: Night) -> pd.DataFrame:
    lines = night.lines
    mt = isin(night, "cpt_code", [MANUAL_THERAPY])
    missing = mt & lines["technique"].isna().to_numpy()
    codes, bad = joined(night, "technique", lambda v: ~v.isin(MANUAL_TECHNIQUES))
    invalid = mt & spread(codes, pd.notna(bad), False)
    no_goal = lines["goal_id"].isna().to_numpy()
    no_resp = lines["patient_response"].isna().to_numpy()
    doc = mt & (no_goal | no_resp)
    m = select(lines, missing, "cpt_code", "date_of_service")
    b = select(lines, invalid, "cpt_code", "date_of_service")
    d = select(lines, doc, "cpt_code", "date_of_service")
    what = np.where(
        no_goal[doc] & no_resp[doc],
        "goal_id and patient_response",
        np.where(no_goal[doc], "goal_id", "patient_response"),
    )
    return findings.concat(
        [
            findings.make(
                "TECHNIQUE_MISSING",
                m,
                message(m, "97140 without a documented manual technique (", code_on_date(m), ")"),
                evidence="Palmetto GBA Manual Therapy (billing-rules.md 8.2)",
            ),
            findings.make(
                "TECHNIQUE_INVALID",
                b,
                message(
                    b,
                    "97140 technique '",
                    spread(codes[invalid], bad, None),
                    "' is not manual therapy (",
                    code_on_date(b),
                    "); manual techniques: " + ", ".join(MANUAL_TECHNIQUES),
                ),
                evidence="CPT 97140 descriptor (billing-rules.md 2.1, 8.2)",
            ),
            findings.make(
                "DOCUMENTATION_INCOMPLETE",
                d,
                message(d, "97140 without ", what, " (", code_on_date(d), ")"),
                evidence="MBPM ch. 15 220.3; billing-rules.md 8.2",
            ),
        ]
    )


@rule("CMT_SAME_REGION", reads=("units", "excluded"))
def cmt_same_region(night: Night) -> pd.DataFrame:
    """97140 on a region a CMT line of the same patient and date manipulates, among the lines
    that will be reported (units > 0, not excluded): a 0-unit or excluded 97140 is not
    billed, so it bundles into nothing; an excluded CMT bundles nothing."""
    lines = night.lines
    cpt = lines["cpt_code"]
    reported = night.reported()
    mt_pos, mt_item, items = explode_list(
        night, "body_region", reported & isin(night, "cpt_code", [MANUAL_THERAPY])
    )
    cmt_pos, cmt_item, _ = explode_list(
        night, "body_region", reported & isin(night, "cpt_code", CMT_CODES)
    )
    if len(mt_pos) == 0 or len(cmt_pos) == 0:
        return findings.empty()
    # the same patient and date (missing values match each other, as in a merge) and region
    both = np.concatenate([mt_pos, cmt_pos])
    visit = units.group_ids([night.distinct(k)[0][both] for k in ("patient_id", "date_of_service")])
    key = visit * len(items) + np.concatenate([mt_item, cmt_item])
    hit = (
        pd.DataFrame({"key": key[: len(mt_pos)], "pos": mt_pos, "item": mt_item})
        .merge(pd.DataFrame({"key": key[len(mt_pos) :], "pos_cmt": cmt_pos}), on="key")
        .drop_duplicates("pos")
    )
    region = items[hit["item"].to_numpy()]
    r = take(lines, hit["pos"].to_numpy(), "date_of_service")
    cmt_code = cpt.iloc[hit["pos_cmt"].to_numpy()]
    return findings.make(
        "CMT_SAME_REGION",
        r,
        message(
            r,
            "97140 on ",
            region,
            ", same region as ",
            cmt_code,
            " on ",
            region,
            ", ",
            iso_date(r["date_of_service"]),
        ),
        evidence="NCCI: manual therapy to a manipulated region is included in CMT (billing-rules.md 3.1)",
    )
