"""Limit rules: units per code per date (MUE), a payer's daily cap on timed units, and what the
visit is authorised for (prior authorisation, visit count, plan-of-care dates)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, units
from therapy_claims.rules.engine import (
    FINDING_KEYS,
    Night,
    isin,
    iso_date,
    message,
    rule,
    select,
    take,
)


def _first_per_claim(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (the lowest line_id): for visit-level findings."""
    if rows.empty:
        return rows
    return rows.sort_values("line_id", kind="mergesort").drop_duplicates("claim_id", keep="first")


@rule("MUE_EXCEEDED", reads=("units", "excluded"))
def mue_exceeded(night: Night) -> pd.DataFrame:
    """MUE by the row in effect on the date of service: MAI 1 per line, MAI 2/3 summed over the
    patient's lines of the code on that date at the clinic. Only reported lines count (units
    > 0, not excluded): a 0-unit or excluded line adds no units to the day."""
    lines, mue = night.lines, night.ref.mue
    billable = night.reported() & isin(night, "cpt_code", mue["code"])
    if not billable.any():
        return findings.empty()
    left = lines.loc[
        billable, ["cpt_code", "date_of_service", "units", "patient_id", "clinic_id"]
    ].reset_index(names="idx")
    left = left.sort_values("date_of_service", kind="mergesort")
    right = mue.assign(effective=pd.to_datetime(mue["effective_date"])).sort_values("effective")
    left["date_of_service"] = left["date_of_service"].astype("datetime64[ns]")
    right["effective"] = right["effective"].astype("datetime64[ns]")
    left["cpt_code"] = left["cpt_code"].astype(object)
    right["code"] = right["code"].astype(object)
    m = pd.merge_asof(
        left,
        right,
        left_on="date_of_service",
        right_on="effective",
        left_by="cpt_code",
        right_by="code",
        direction="backward",
    ).dropna(subset=["mue_value"])
    if m.empty:
        return findings.empty()
    day_units = m.groupby(["patient_id", "date_of_service", "cpt_code", "clinic_id"])[
        "units"
    ].transform("sum")
    per_line = m["mai"] == "1"
    counted = np.where(per_line, m["units"], day_units)
    over = counted > m["mue_value"]
    m = m[over]
    counted = counted[over.to_numpy()]
    mai_text = np.where(
        m["mai"] == "1",
        "per line (MAI 1)",
        np.where(m["mai"] == "2", "per day, policy (MAI 2)", "per day, clinical (MAI 3)"),
    )
    rows = lines.loc[m["idx"].to_numpy(), list(FINDING_KEYS)]
    msg = message(
        rows,
        m["cpt_code"],
        ": ",
        counted,
        " units ",
        mai_text,
        " exceed the MUE of ",
        m["mue_value"].astype(int),
        " on ",
        iso_date(m["date_of_service"]),
    )
    evidence = message(
        rows,
        night.ref.version("mue.csv") + ": ",
        m["code"],
        " mue_value=",
        m["mue_value"].astype(int),
        " mai=",
        m["mai"],
        " effective ",
        m["effective_date"],
        np.where(
            m.get("sample", pd.Series("", index=m.index)).astype("string") == "true",
            " (sample row)",
            "",
        ),
    )
    return findings.make("MUE_EXCEEDED", rows, msg, evidence=evidence)


@rule("DAILY_UNIT_CAP_EXCEEDED", reads=("units", "excluded"))
def daily_unit_cap(night: Night) -> pd.DataFrame:
    """A payer's cap on timed units per patient, date and discipline, over the reported lines
    (units > 0, not excluded)."""
    lines = night.lines
    cap = lines["max_timed_units_per_day"]
    timed = lines["timed"].to_numpy(dtype=bool) & night.reported() & cap.notna().to_numpy()
    if not timed.any():
        return findings.empty()
    # timed units per payer, patient, date and discipline: summed by dense group id
    pos = np.flatnonzero(timed)
    codes = [
        night.distinct(k)[0][pos]
        for k in ("payer_id", "patient_id", "date_of_service", "discipline")
    ]
    group = units.group_ids(codes)
    day_units = np.bincount(group, weights=lines["units"].to_numpy()[pos]).astype("int64")
    total = pd.Series(day_units[group])
    known = np.logical_and.reduce([c >= 0 for c in codes])
    if not known.all():  # a line with a missing key is in no group (groupby): no total
        total = total.where(known)
    over = (total > cap.iloc[pos].to_numpy(dtype="int64")).to_numpy()
    r = take(
        lines, pos[over], "discipline", "date_of_service", "payer_id", "max_timed_units_per_day"
    )
    return findings.make(
        "DAILY_UNIT_CAP_EXCEEDED",
        r,
        message(
            r,
            total.to_numpy()[over],
            " timed units for ",
            r["discipline"],
            " on ",
            iso_date(r["date_of_service"]),
            " exceed ",
            r["payer_id"],
            "'s daily cap of ",
            r["max_timed_units_per_day"],
        ),
        evidence=message(
            r,
            "payers.csv ",
            r["payer_id"],
            " max_timed_units_per_day=",
            r["max_timed_units_per_day"],
            " (" + night.ref.version("payers.csv") + ")",
        ),
    )


@rule("AUTH_MISSING", "VISIT_LIMIT_EXCEEDED", "POC_EXPIRED")
def authorization_and_plan(night: Night) -> pd.DataFrame:
    lines = night.lines
    no_auth = (
        lines["requires_prior_auth"].fillna(False).astype(bool) & lines["prior_auth_number"].isna()
    )
    a = _first_per_claim(select(lines, no_auth, "claim_id", "payer_id", "date_of_service"))
    over = (
        lines["visit_number"].notna()
        & lines["authorized_visits"].notna()
        & (lines["visit_number"] > lines["authorized_visits"])
    )
    v = _first_per_claim(
        select(lines, over, "claim_id", "visit_number", "authorized_visits", "date_of_service")
    )
    dos = lines["date_of_service"]
    early = lines["plan_of_care_start"].notna() & (dos < lines["plan_of_care_start"])
    late = lines["plan_of_care_end"].notna() & (dos > lines["plan_of_care_end"])
    p = _first_per_claim(
        select(
            lines,
            early | late,
            "claim_id",
            "date_of_service",
            "plan_of_care_start",
            "plan_of_care_end",
        )
    )
    return findings.concat(
        [
            findings.make(
                "AUTH_MISSING",
                a,
                message(
                    a,
                    a["payer_id"],
                    " requires prior authorization; the visit on ",
                    iso_date(a["date_of_service"]),
                    " has no prior_auth_number",
                ),
                evidence=message(
                    a,
                    "payers.csv ",
                    a["payer_id"],
                    " requires_prior_auth=true (" + night.ref.version("payers.csv") + ")",
                ),
            ),
            findings.make(
                "VISIT_LIMIT_EXCEEDED",
                v,
                message(
                    v,
                    "visit ",
                    v["visit_number"],
                    " of ",
                    v["authorized_visits"],
                    " authorized (",
                    iso_date(v["date_of_service"]),
                    ")",
                ),
                evidence="extract: authorized_visits, visit_number",
            ),
            findings.make(
                "POC_EXPIRED",
                p,
                message(
                    p,
                    "date of service ",
                    iso_date(p["date_of_service"]),
                    " is outside the plan of care ",
                    iso_date(p["plan_of_care_start"]),
                    " to ",
                    iso_date(p["plan_of_care_end"]),
                ),
                evidence="MBPM ch. 15 220.1 (certified plan of care)",
            ),
        ]
    )
