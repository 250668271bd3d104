"""The rest of the catalogue: each rule fires, does not fire, and its boundary. Reference data
is the shipped sample folder unless a test writes its own (reference.copy_default + edits)."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import OTHER_NPI, row
from test_rules import TEST_REFERENCE, fired, night

from therapy_claims import reference, rules

# a second line of the same patient and clinician after the factory default (09:00-09:30):
# overlapping time counts once (TIME_OVERLAP_SAME_PATIENT)
LATER = {"start_time": "09:30", "end_time": "10:00"}


def lines_of(f: pd.DataFrame) -> list[str]:
    return sorted(f["line_id"].tolist())


def codes_for(n: rules.Night, line_id: str) -> list[str]:
    f = rules.run_all(n)
    return sorted(f.loc[f["line_id"] == line_id, "code"])


# ---------------------------------------------------------------- identity and dates


@pytest.mark.parametrize(
    ("dos", "fires"),
    [
        ("2026-11-28", False),  # the run date itself
        ("2026-11-29", True),  # future
        ("2025-11-28", False),  # exactly 365 days before
        ("2025-11-27", True),  # 366 days
        ("1950-03-03", True),  # before birth (dob 1950-03-04)
    ],
)
def test_date_invalid(dos, fires):
    n = night([row(date_of_service=dos)])
    assert (len(fired(n, "DATE_INVALID")) == 1) is fires


# ---------------------------------------------------------------- time


def test_not_one_on_one_group_size():
    n = night(
        [
            row(group_size="3"),
            row(
                line_id="L2",
                cpt_code="97150",
                group_size="3",
                minutes="",
                start_time="",
                end_time="",
            ),
            row(line_id="L3", group_size="1"),
        ]
    )
    assert lines_of(fired(n, "NOT_ONE_ON_ONE")) == ["L1"]


def overlap_rows(second_start: str, second_end: str, same_patient=False) -> list[dict]:
    return [
        row(line_id="A", encounter_id="EA", patient_id="P1", start_time="09:00", end_time="09:30"),
        row(
            line_id="B",
            encounter_id="EB",
            patient_id="P1" if same_patient else "P2",
            start_time=second_start,
            end_time=second_end,
            minutes="15",
        ),
    ]


def test_provider_overlap_fires_on_both_lines():
    f = fired(night(overlap_rows("09:15", "09:45")), "PROVIDER_OVERLAP")
    assert lines_of(f) == ["A", "B"]
    assert "09:15-09:45 for patient P2 overlaps 09:00-09:30 for patient P1" in " ".join(
        f["message"]
    )


def test_touching_intervals_do_not_overlap():
    assert fired(night(overlap_rows("09:30", "10:00")), "PROVIDER_OVERLAP").empty


def test_same_patient_or_other_clinician_is_not_overlap():
    assert fired(night(overlap_rows("09:15", "09:45", same_patient=True)), "PROVIDER_OVERLAP").empty
    rows = overlap_rows("09:15", "09:45")
    rows[1]["rendering_npi"] = OTHER_NPI
    assert fired(night(rows), "PROVIDER_OVERLAP").empty


def test_overlap_found_past_a_short_block():
    # P1 09:00-10:00, P2 09:10-09:20 (inside), P3 09:30-09:40 (inside P1, after P2)
    rows = [
        row(
            line_id="A",
            encounter_id="EA",
            patient_id="P1",
            start_time="09:00",
            end_time="10:00",
            minutes="60",
        ),
        row(
            line_id="B",
            encounter_id="EB",
            patient_id="P2",
            start_time="09:10",
            end_time="09:20",
            minutes="10",
        ),
        row(
            line_id="C",
            encounter_id="EC",
            patient_id="P3",
            start_time="09:30",
            end_time="09:40",
            minutes="10",
        ),
    ]
    assert lines_of(fired(night(rows), "PROVIDER_OVERLAP")) == ["A", "B", "C"]


# ---------------------------------------------------------------- modifiers


def test_assistant_modifier_added_for_medicare_pta():
    n = night(
        [
            row(rendering_credential="PTA"),
            row(line_id="L2", rendering_credential="PTA", payer_id="COM01"),
            row(line_id="L3", rendering_credential="PTA", modifiers="GP;CQ"),
        ]
    )
    f = fired(n, "ASSISTANT_MODIFIER_ADDED")
    assert lines_of(f) == ["L1"] and f["after"].iloc[0] == "GP;CQ" and f["before"].iloc[0] == "GP"
    assert n.lines.set_index("line_id").loc["L1", "modifiers"] == "GP;CQ"
    assert n.change_lists().iloc[0] == ["modifiers +CQ"]


def test_ota_gets_co_after_go():
    n = night([row(rendering_credential="OTA", discipline="OT", modifiers="", cpt_code="97530")])
    rules.run_all(n)
    assert n.lines["modifiers"].tolist() == ["GO;CO"]
    assert n.change_lists().iloc[0] == ["modifiers +GO", "modifiers +CO"]


def test_unknown_modifier_and_at_misuse():
    n = night(
        [
            row(modifiers="GP;ZZ"),
            row(line_id="L2", modifiers="GP;AT"),
            row(
                line_id="L3",
                cpt_code="98940",
                discipline="CHIRO",
                rendering_credential="DC",
                modifiers="AT;GA",
                minutes="",
                body_region="lumbar",
            ),
        ]
    )
    f = fired(n, "MODIFIER_INVALID")
    assert lines_of(f) == ["L1", "L2", "L3"]
    assert "ZZ" in f.set_index("line_id").loc["L1", "message"]


def test_cq_with_go_is_mismatch():
    n = night(
        [
            row(modifiers="GP;CQ"),
            row(line_id="L2", modifiers="GO;CQ", discipline="OT", rendering_credential="OT"),
        ]
    )
    assert lines_of(fired(n, "THERAPY_MODIFIER_MISMATCH")) == ["L2"]


# ---------------------------------------------------------------- documentation


def test_manual_therapy_documentation():
    full = {
        "cpt_code": "97140",
        "body_region": "lumbar",
        "technique": "joint_mobilization",
        "goal_id": "G1",
        "patient_response": "less pain",
    }
    n = night(
        [
            row(line_id="OK", encounter_id="E1", **full),
            row(line_id="NOTECH", encounter_id="E2", **{**full, "technique": ""}),
            row(
                line_id="HEAT",
                encounter_id="E3",
                **{**full, "technique": "joint_mobilization;ultrasound"},
            ),
            row(line_id="NOGOAL", encounter_id="E4", **{**full, "goal_id": ""}),
            row(line_id="OTHER", encounter_id="E5", cpt_code="97110"),
        ]
    )
    assert lines_of(fired(n, "TECHNIQUE_MISSING")) == ["NOTECH"]
    inv = fired(n, "TECHNIQUE_INVALID")
    assert lines_of(inv) == ["HEAT"] and "'ultrasound'" in inv["message"].iloc[0]
    doc = fired(n, "DOCUMENTATION_INCOMPLETE")
    assert lines_of(doc) == ["NOGOAL"] and doc["severity"].iloc[0] == "warning"


# ---------------------------------------------------------------- region, CMT and NCCI


def chiro_day(
    mt_region: str, mt_mods: str, cmt_region="lumbar;thoracic", payer="COM02"
) -> list[dict]:
    common = {
        "discipline": "CHIRO",
        "rendering_credential": "DC",
        "payer_id": payer,
        "prior_auth_number": "A1",
    }
    return [
        row(
            line_id="CMT",
            cpt_code="98940",
            modifiers="AT",
            minutes="",
            start_time="",
            end_time="",
            body_region=cmt_region,
            **common,
        ),
        row(
            line_id="MT",
            cpt_code="97140",
            modifiers=mt_mods,
            body_region=mt_region,
            technique="myofascial_release",
            goal_id="G",
            patient_response="ok",
            **common,
        ),
    ]


def test_cmt_same_region_fires_only_on_shared_region():
    f = fired(night(chiro_day("lumbar", "XS")), "CMT_SAME_REGION")
    assert (
        lines_of(f) == ["MT"]
        and "97140 on lumbar, same region as 98940 on lumbar, 2026-11-20" in f["message"].iloc[0]
    )
    assert fired(night(chiro_day("cervical", "XS")), "CMT_SAME_REGION").empty


def test_ncci_indicator_1_needs_distinct_modifier_on_the_column_2_code():
    n = night(chiro_day("cervical", ""))
    f = fired(n, "NCCI_MODIFIER_MISSING")
    assert lines_of(f) == ["MT"]
    assert (
        "98940/97140 modifier_indicator=1" in f["evidence"].iloc[0]
        and "ncci_ptp.csv@" in f["evidence"].iloc[0]
    )
    assert "XS" in f["suggested_fix"].iloc[0]  # COM02 prefers X modifiers
    assert fired(night(chiro_day("cervical", "XS")), "NCCI_MODIFIER_MISSING").empty
    rows = chiro_day("cervical", "")
    # the tests' payers.csv leaves distinct_modifier_on out: column2, so 59 on the column-1
    # line alone does not bypass (distinct_modifier_on=either: tests/test_rules_reported_edits.py)
    rows[0]["modifiers"] = "AT;59"
    f = fired(night(rows), "NCCI_MODIFIER_MISSING")
    assert (
        lines_of(f) == ["MT"]
        and "the modifier on 98940 (column 1) does not bypass" in (f["message"].iloc[0])
    )


def test_ncci_pair_needs_same_provider_and_date():
    rows = chiro_day("cervical", "")
    rows[1]["rendering_npi"] = OTHER_NPI
    assert fired(night(rows), "NCCI_MODIFIER_MISSING").empty
    rows = chiro_day("cervical", "")
    rows[1]["date_of_service"] = "2026-11-21"
    assert fired(night(rows), "NCCI_MODIFIER_MISSING").empty


def test_xs_same_region():
    f = fired(night(chiro_day("lumbar", "XS")), "XS_SAME_REGION")
    assert lines_of(f) == ["MT"] and "lumbar" in f["message"].iloc[0]
    assert fired(night(chiro_day("cervical", "XS")), "XS_SAME_REGION").empty


def own_reference(tmp_path, **files: str) -> reference.Reference:
    """The tests' reference folder with some files replaced."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for f in TEST_REFERENCE.glob("*.csv"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
    return reference.load(str(tmp_path))


NCCI_HEADER = "column1,column2,effective_date,deletion_date,modifier_indicator\n"


@pytest.mark.parametrize(
    ("effective", "deletion", "fires"),
    [
        ("2026-11-20", "", True),  # effective on the date of service
        ("2026-11-21", "", False),  # not yet in effect
        ("2020-01-01", "2026-11-20", False),  # deleted on the date of service
        ("2020-01-01", "2026-11-21", True),  # deleted the day after
    ],
)
def test_ncci_dates_against_date_of_service(tmp_path, effective, deletion, fires):
    ref = own_reference(tmp_path, ncci_ptp=NCCI_HEADER + f"97110,97140,{effective},{deletion},1\n")
    rows = [
        row(),
        row(
            line_id="L2",
            cpt_code="97140",
            **LATER,
            body_region="lumbar",
            technique="joint_mobilization",
        ),
    ]
    assert (len(fired(night(rows, ref), "NCCI_MODIFIER_MISSING")) == 1) is fires


def test_ncci_indicator_0_is_not_bypassable_and_9_ignored(tmp_path):
    rows = [
        row(),
        row(
            line_id="L2",
            cpt_code="97140",
            **LATER,
            modifiers="GP;59",
            body_region="lumbar",
            technique="joint_mobilization",
        ),
    ]
    ref0 = own_reference(tmp_path / "a", ncci_ptp=NCCI_HEADER + "97110,97140,2020-01-01,,0\n")
    f = fired(night(rows, ref0), "NCCI_NOT_BYPASSABLE")
    assert lines_of(f) == ["L2"]
    ref9 = own_reference(tmp_path / "b", ncci_ptp=NCCI_HEADER + "97110,97140,2020-01-01,,9\n")
    n9 = night(rows, ref9)
    assert fired(n9, "NCCI_NOT_BYPASSABLE").empty and fired(n9, "NCCI_MODIFIER_MISSING").empty


def test_cms_quarterly_ptp_file_drives_the_rule(tmp_path):
    # CMS's own layout: notice lines, long headers, YYYYMMDD dates, '*' for no deletion date
    ref = own_reference(
        tmp_path,
        ncci_ptp=(
            "CPT only copyright 2025 American Medical Association. All rights reserved.\n"
            'Column 1,Column 2,"*=in existence prior to 1996",Effective Date,Deletion Date *=no data,'
            "Modifier 0=not allowed 1=allowed 9=not applicable,PTP Edit Rationale\n"
            "97110,97140,,20200101,*,1,Mutually exclusive procedures\n"
            "97112,97140,,20200101,20200401,1,Deleted\n"
        ),
    )
    assert ref.ncci["deletion_date"].isna().tolist() == [True, False]
    rows = [
        row(),
        row(
            line_id="L2",
            cpt_code="97140",
            **LATER,
            body_region="lumbar",
            technique="joint_mobilization",
        ),
    ]
    assert lines_of(fired(night(rows, ref), "NCCI_MODIFIER_MISSING")) == ["L2"]


def test_cms_mue_layout(tmp_path):
    ref = own_reference(
        tmp_path,
        mue=(
            "HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,MUE Rationale,"
            "effective_date\n"
            "97110,2,3 Date of Service Edit: Clinical,Clinical: Data,20260101\n"
        ),
    )
    assert ref.mue[["code", "mue_value", "mai"]].values.tolist() == [["97110", 2, "3"]]
    with pytest.raises(reference.ReferenceError, match="no effective_date column"):
        own_reference(
            tmp_path / "b",
            mue="HCPCS/CPT Code,Practitioner Services MUE Values,"
            "MUE Adjudication Indicator\n97110,2,3 Date of Service Edit: Clinical\n",
        )


# ---------------------------------------------------------------- limits


MUE_HEADER = "code,mue_value,mai,effective_date\n"


@pytest.mark.parametrize(
    ("mai", "expect"), [("1", ["L2"]), ("2", ["L1", "L2"]), ("3", ["L1", "L2"])]
)
def test_mue_by_mai(tmp_path, mai, expect):
    ref = own_reference(tmp_path, mue=MUE_HEADER + f"97110,2,{mai},2020-01-01\n")
    rows = [
        row(minutes="30", units_charted=""),  # 2 units
        row(line_id="L2", minutes="38", units_charted="", start_time="10:00", end_time="10:40"),
    ]
    # CMS pool 68 min -> 5 units: 2 + 3; MAI 1 per line: only the 3-unit line; MAI 2/3: day total 5
    f = fired(night(rows, ref), "MUE_EXCEEDED")
    assert lines_of(f) == expect
    assert f"mai={mai}" in f["evidence"].iloc[0]


def test_mue_boundary_and_effective_date(tmp_path):
    ref = own_reference(tmp_path, mue=MUE_HEADER + "97110,2,3,2020-01-01\n97110,1,3,2026-11-21\n")
    rows = [row(minutes="30", units_charted="")]  # 2 units = MUE in effect on 2026-11-20
    assert fired(night(rows, ref), "MUE_EXCEEDED").empty
    later = [row(minutes="30", units_charted="", date_of_service="2026-11-21")]
    assert len(fired(night(later, ref), "MUE_EXCEEDED")) == 1  # the stricter row applies from 11-21


def test_daily_unit_cap():
    # COM01 caps timed units at 4 per day (per-code units)
    rows = [
        row(payer_id="COM01", minutes="38", units_charted=""),  # 3
        row(
            line_id="L2",
            payer_id="COM01",
            cpt_code="97112",
            minutes="8",
            units_charted="",
            start_time="10:00",
            end_time="10:08",
        ),
    ]  # 1 -> total 4: at the cap
    assert fired(night(rows), "DAILY_UNIT_CAP_EXCEEDED").empty
    rows[1]["minutes"], rows[1]["end_time"] = "23", "10:23"  # 2 -> total 5
    f = fired(night(rows), "DAILY_UNIT_CAP_EXCEEDED")
    assert lines_of(f) == ["L1", "L2"] and "5 timed units" in f["message"].iloc[0]


def test_auth_visits_and_plan_of_care():
    n = night(
        [
            row(line_id="A1", encounter_id="E1", payer_id="MA01"),  # MA01 requires auth
            row(line_id="A2", encounter_id="E1", payer_id="MA01", cpt_code="97112"),
            row(
                line_id="B",
                encounter_id="E2",
                payer_id="MA01",
                prior_auth_number="PA9",
                visit_number="13",
                authorized_visits="12",
            ),
            row(
                line_id="C",
                encounter_id="E3",
                visit_number="12",
                authorized_visits="12",
                plan_of_care_start="2026-11-21",
                plan_of_care_end="2027-01-01",
            ),
            row(
                line_id="D",
                encounter_id="E4",
                plan_of_care_start="2026-10-01",
                plan_of_care_end="2026-11-20",
            ),
        ]
    )
    assert lines_of(fired(n, "AUTH_MISSING")) == ["A1"]  # one finding per claim
    assert lines_of(fired(n, "VISIT_LIMIT_EXCEEDED")) == ["B"]
    assert lines_of(fired(n, "POC_EXPIRED")) == ["C"]  # D's last day of the plan is the DOS


# ---------------------------------------------------------------- payer-class edits, CMT AT, KX


def test_code_not_covered_for_medicare():
    n = night(
        [
            row(cpt_code="97014", minutes="", start_time="", end_time=""),
            row(
                line_id="L2",
                cpt_code="97014",
                minutes="",
                payer_id="COM01",
                start_time="",
                end_time="",
            ),
        ]
    )
    f = fired(n, "CODE_NOT_COVERED")
    assert lines_of(f) == ["L1"] and "G0283" in f["suggested_fix"].iloc[0]


def test_cmt_at_missing_medicare_only():
    base = {
        "cpt_code": "98940",
        "discipline": "CHIRO",
        "rendering_credential": "DC",
        "minutes": "",
        "start_time": "",
        "end_time": "",
        "body_region": "lumbar",
    }
    n = night(
        [
            row(modifiers="", **base),
            row(line_id="L2", modifiers="AT", **base),
            row(line_id="L3", modifiers="", payer_id="COM01", **base),
        ]
    )
    assert lines_of(fired(n, "CMT_AT_MISSING")) == ["L1"]


def test_kx_required_across_earlier_nights_and_tonight():
    # threshold 2026 PT/SLP $2,480: earlier nights billed $2,400; tonight 2 lines of $50
    history = pd.DataFrame(
        {"patient_id": ["P1"], "year": [2026], "bucket": ["PT/SLP"], "charges": [2400.0]}
    )
    rows = [
        row(charge_amount="50", date_of_service="2026-11-20"),
        row(
            line_id="L2",
            encounter_id="E2",
            charge_amount="50",
            date_of_service="2026-11-21",
            modifiers="GP",
        ),
    ]
    n = night(rows)
    n.kx_history = history
    f = fired(n, "KX_REQUIRED")
    assert (
        lines_of(f) == ["L2"]
        and "$2500" in f["message"].iloc[0]
        and "$2480" in f["message"].iloc[0]
    )
    n2 = night([rows[0], {**rows[1], "modifiers": "GP;KX"}])
    n2.kx_history = history
    assert fired(n2, "KX_REQUIRED").empty
    # OT has its own bucket: the same history does not count
    n3 = night(
        [{**r, "discipline": "OT", "rendering_credential": "OT", "modifiers": "GO"} for r in rows]
    )
    n3.kx_history = history
    assert fired(n3, "KX_REQUIRED").empty


def test_every_rule_code_is_in_the_catalogue():
    from therapy_claims.catalogue import CATALOGUE

    for r in rules.REGISTRY:
        for code in r.codes:
            assert code in CATALOGUE, code


def test_every_catalogue_code_names_who_works_it():
    from therapy_claims.catalogue import CATALOGUE, OWNERS

    assert {code for code, spec in CATALOGUE.items() if spec.owner not in OWNERS} == set()
    assert CATALOGUE["TECHNIQUE_MISSING"].owner == "clinician"
    assert CATALOGUE["AUTH_MISSING"].owner == "front desk"


def test_cq_pairing_only_where_payer_uses_therapy_modifiers():
    # COM01 does not require therapy modifiers: CQ alone is not a mismatch there
    n = night([row(payer_id="COM01", modifiers="CQ", rendering_credential="PTA")])
    assert fired(n, "THERAPY_MODIFIER_MISMATCH").empty
