"""Input rules: what a line must carry before anything else about it can be judged, namely a
known payer, clinic and procedure code, NPIs that pass the check digit, ICD-10-CM diagnosis
codes with pointers into them, and a date of service that is neither in the future, before
birth nor past timely filing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, npi
from therapy_claims.rules.engine import (
    Night,
    code_on_date,
    isin,
    iso_date,
    message,
    rule,
    select,
    spread,
)

ICD10_SHAPE = r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"


@rule("UNKNOWN_PAYER")
def unknown_payer(night: Night) -> pd.DataFrame:
    lines = night.lines
    rows = select(lines, lines["payer_name"].isna(), "payer_id", "cpt_code", "date_of_service")
    return findings.make(
        "UNKNOWN_PAYER",
        rows,
        message(
            rows,
            "payer_id '",
            rows["payer_id"],
            "' is not in payers.csv (",
            code_on_date(rows),
            ")",
        ),
        evidence=night.ref.version("payers.csv"),
    )


@rule("UNKNOWN_CLINIC")
def unknown_clinic(night: Night) -> pd.DataFrame:
    lines = night.lines
    rows = select(lines, lines["billing_npi"].isna(), "clinic_id")
    return findings.make(
        "UNKNOWN_CLINIC",
        rows,
        message(rows, "clinic_id '", rows["clinic_id"], "' is not in clinics.csv"),
        evidence=night.ref.version("clinics.csv"),
    )


@rule("CODE_UNKNOWN")
def code_unknown(night: Night) -> pd.DataFrame:
    """A procedure code the code table does not hold. Nothing about such a line can be
    judged (timed or not, one-on-one, always-therapy: enrich reads them all as false, and
    units would bill it as 1 untimed unit), so it must never be billed silently: its claim
    is held until the code is corrected or added to cpt_codes.csv."""
    lines = night.lines
    unknown = ~isin(night, "cpt_code", night.ref.cpt.index) & lines["cpt_code"].notna().to_numpy()
    rows = select(lines, unknown, "cpt_code", "date_of_service")
    return findings.make(
        "CODE_UNKNOWN",
        rows,
        message(
            rows,
            "procedure code '",
            rows["cpt_code"],
            "' of line ",
            rows["line_id"],
            " is not in cpt_codes.csv (",
            code_on_date(rows),
            "); the claim is held rather than billed as an untimed 1-unit code",
        ),
        evidence=night.ref.version("cpt_codes.csv"),
    )


@rule("NPI_INVALID")
def npi_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    # checked once per distinct NPI: a night has few clinicians and clinics
    codes, uniques = night.distinct("rendering_npi")
    bad_r = ~spread(codes, npi.valid_mask(uniques).to_numpy(dtype=bool), False)
    codes, uniques = night.distinct("billing_npi")
    bad_b = (codes >= 0) & ~spread(codes, npi.valid_mask(uniques).to_numpy(dtype=bool), False)
    r = select(lines, bad_r, "rendering_npi", "rendering_last_name")
    b = select(lines, bad_b, "billing_npi", "clinic_id")
    return findings.concat(
        [
            findings.make(
                "NPI_INVALID",
                r,
                message(
                    r,
                    "rendering NPI ",
                    r["rendering_npi"],
                    " of ",
                    r["rendering_last_name"].fillna(""),
                    " fails the NPI check digit (Luhn with prefix 80840)",
                ),
                evidence="CMS NPI check-digit algorithm",
            ),
            findings.make(
                "NPI_INVALID",
                b,
                message(
                    b,
                    "billing NPI ",
                    b["billing_npi"],
                    " of clinic ",
                    b["clinic_id"],
                    " fails the NPI check digit (Luhn with prefix 80840)",
                ),
                evidence=night.ref.version("clinics.csv"),
            ),
        ]
    )


@rule("DIAGNOSIS_INVALID")
def diagnosis_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    # checked once per distinct (codes, pointers) pair: a night repeats the same few lists
    dx_pos, dx_uniq = pd.factorize(lines["diagnosis_codes"].fillna(""))
    pt_pos, pt_uniq = pd.factorize(lines["diagnosis_pointers"].fillna("1"))
    pos, uniq = pd.factorize(dx_pos * len(pt_uniq) + pt_pos)
    u_dx = pd.Series(np.asarray(dx_uniq, dtype=object)[uniq // len(pt_uniq)], dtype="string")
    u_pt = pd.Series(np.asarray(pt_uniq, dtype=object)[uniq % len(pt_uniq)], dtype="string")
    codes = u_dx.str.split(";")
    u_n = codes.str.len()
    exploded = codes.explode()
    bad_code = ~exploded.str.fullmatch(ICD10_SHAPE).fillna(False).astype(bool)
    u_first_bad = exploded[bad_code].groupby(level=0).first().reindex(u_dx.index)
    ptrs = u_pt.str.split(";").explode()
    ptr_num = pd.to_numeric(ptrs, errors="coerce")
    u_ptr_bad = (
        (ptr_num.isna() | (ptr_num < 1) | (ptr_num > u_n.reindex(ptr_num.index)))
        .groupby(level=0)
        .any()
        .reindex(u_dx.index)
        .fillna(False)
        .astype(bool)
    ) | (u_pt.str.count(";") + 1 > 4)
    n = u_n.to_numpy()[pos]
    u_first_bad = u_first_bad.to_numpy(dtype=object)
    shape_bad = pd.notna(u_first_bad)[pos]
    # the 837P carries 12 diagnoses (HI01-HI12), the 837I a principal and 24 others
    institutional = lines["claim_type"].eq("institutional").fillna(False).to_numpy(dtype=bool)
    limit = np.where(institutional, 25, 12)
    too_many = n > limit
    ptr_bad = u_ptr_bad.to_numpy()[pos]
    only_many = too_many & ~shape_bad
    only_ptr = ptr_bad & ~shape_bad & ~too_many
    a = select(lines, shape_bad, "cpt_code", "date_of_service")
    b = select(lines, only_many)
    c = select(lines, only_ptr, "diagnosis_pointers")
    return findings.concat(
        [
            findings.make(
                "DIAGNOSIS_INVALID",
                a,
                message(
                    a,
                    "diagnosis code '",
                    u_first_bad[pos[shape_bad]],
                    "' is not an ICD-10-CM code (",
                    code_on_date(a),
                    ")",
                ),
                evidence="ICD-10-CM code shape",
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                b,
                message(
                    b,
                    n[only_many],
                    " diagnosis codes; a",
                    np.where(institutional[only_many], "n institutional", " professional"),
                    " claim holds at most ",
                    limit[only_many],
                ),
                evidence=message(
                    b,
                    np.where(
                        institutional[only_many],
                        "X12 837I HI: a principal (ABK) and 24 other (ABF) diagnoses",
                        "X12 837P HI segment: 12 codes",
                    ),
                ),
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                c,
                message(
                    c,
                    "diagnosis pointers '",
                    c["diagnosis_pointers"].fillna("1"),
                    "' point outside the ",
                    n[only_ptr],
                    " diagnosis code(s) or are more than 4",
                ),
                evidence="X12 837 SV107: 1-4 pointers into HI",
            ),
        ]
    )


def add_calendar(dos: np.ndarray, count: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """``dos`` (datetime64[D]) plus ``count`` days, months or years (``unit`` per date), with
    calendar arithmetic: a month later is the same day of the next month, clamped to its last
    day (2025-01-31 + 1 month = 2025-02-28; 2024-02-29 + 1 year = 2025-02-28). Vectorised:
    numpy's month arithmetic, no loop per date or setting."""
    dos = np.asarray(dos, dtype="datetime64[D]")
    count = np.asarray(count, dtype="int64")
    months = np.where(unit == "months", count, np.where(unit == "years", 12 * count, 0))
    days = np.where(unit == "days", count, 0)
    month = dos.astype("datetime64[M]")
    day_of_month = dos - month.astype("datetime64[D]")  # 0 for the 1st
    target = month + months.astype("timedelta64[M]")
    last = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    return np.minimum(target.astype("datetime64[D]") + day_of_month, last) + days.astype(
        "timedelta64[D]"
    )


# a line whose payer is unknown (UNKNOWN_PAYER holds it anyway) is checked against the default
# timely_filing of payers.csv (reference.OPTIONAL_PAYER_SETTINGS): one year
_DEFAULT_FILING = (1, "years")


def _filing_deadlines(night: Night) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The timely filing deadline of every distinct (date of service, payer) of the night:
    per payer (its distinct values, then a slot for a missing one) the limit's count and unit,
    the deadlines as a flat grid (date-major), and per line its cell of the grid."""
    d_codes, d_values = night.distinct("date_of_service")
    p_codes, p_values = night.distinct("payer_id")
    payers = night.ref.payers
    n_p = len(p_values) + 1
    count = p_values.map(payers["timely_filing_count"]).to_numpy(dtype="float64", na_value=np.nan)
    unit = p_values.map(payers["timely_filing_unit"]).to_numpy(dtype=object, na_value=None)
    count = np.append(count, np.nan)
    unit = np.append(unit, None)
    unknown = np.isnan(count)
    count = np.where(unknown, _DEFAULT_FILING[0], np.nan_to_num(count)).astype("int64")
    unit = np.where(unknown, _DEFAULT_FILING[1], unit).astype(object)
    days = np.append(d_values.to_numpy(dtype="datetime64[D]"), np.datetime64("NaT", "D"))
    grid_dos = np.repeat(days, n_p)
    deadline = add_calendar(grid_dos, np.tile(count, len(days)), np.tile(unit, len(days)))
    d_at = np.where(d_codes >= 0, d_codes, len(days) - 1)
    p_at = np.where(p_codes >= 0, p_codes, n_p - 1)
    return count, unit, deadline, d_at * n_p + p_at


@rule("DATE_INVALID")
def date_invalid(night: Night) -> pd.DataFrame:
    """A date of service after the run date, before the patient's birth, or past the payer's
    timely filing limit (payers.csv ``timely_filing``: the deadline is the date of service plus
    that many days, months or years, calendar arithmetic; the run date may be the deadline
    itself, a day later is too late)."""
    lines = night.lines
    dos = lines["date_of_service"]
    run = pd.Timestamp(night.run_date)
    future = (dos > run).to_numpy()
    before_birth = (dos < lines["patient_dob"]).to_numpy()
    # the deadline of each distinct (date of service, payer): a night has few of both
    count, unit, deadline, at = _filing_deadlines(night)
    too_old = (deadline < np.datetime64(night.run_date, "D"))[at]  # NaT compares False
    f = select(lines, future, "date_of_service")
    b = select(lines, before_birth & ~future, "date_of_service")
    late = too_old & ~future & ~before_birth
    o = select(lines, late, "date_of_service", "payer_id", "payer_class")
    payer = at[late] % len(count)
    limit = pd.Series(count[payer]).astype("string") + " " + pd.Series(unit[payer], dtype="string")
    limit = limit.where(count[payer] != 1, limit.str.removesuffix("s"))  # 1 year, 90 days
    deadline_text = pd.Series(deadline[at[late]]).dt.strftime("%Y-%m-%d")
    evidence = "date of service checks: run date " + night.run_date.isoformat()
    return findings.concat(
        [
            findings.make(
                "DATE_INVALID",
                f,
                message(
                    f,
                    "date of service ",
                    iso_date(f["date_of_service"]),
                    " is after the run date " + night.run_date.isoformat(),
                ),
                evidence=evidence,
            ),
            findings.make(
                "DATE_INVALID",
                b,
                message(
                    b,
                    "date of service ",
                    iso_date(b["date_of_service"]),
                    # the date of birth is PHI: exceptions are the analysts' layer (the
                    # raw layer's row has it)
                    " is before the patient's date of birth (patient_dob, not shown: PHI)",
                ),
                evidence="extract: patient_dob",
            ),
            findings.make(
                "DATE_INVALID",
                o,
                message(
                    o,
                    "date of service ",
                    iso_date(o["date_of_service"]),
                    " is past the timely filing limit of ",
                    o["payer_id"].fillna("?"),
                    " (",
                    limit,
                    "): the claim was due by ",
                    deadline_text,
                    ", the run date is " + night.run_date.isoformat(),
                ),
                evidence=message(
                    o,
                    "payers.csv ",
                    o["payer_id"].fillna("?"),
                    " timely_filing=",
                    limit,
                    " (" + night.ref.version("payers.csv") + ")",
                    np.where(
                        (o["payer_class"] == "medicare").to_numpy(dtype=bool, na_value=False),
                        "; 42 CFR 424.44",
                        "",
                    ),
                ),
            ),
        ]
    )
