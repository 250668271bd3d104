"""Charges, thresholds and time limits (issue 14): the charge follows the billed units, a claim
totalling $0 is held, a unit charge far above the fee schedule warns, KX counts allowed amounts
and holds or warns by the payer's kx_action (or is added where the plan of care is current and
a goal is named), and timely filing is the payer's limit in calendar days, months or years.

Every expected value is worked by hand here; the rules cited are payer-edits.md "Edits"
(charges, KX on allowed amounts, timely filing; 42 CFR 424.44) and billing-rules.md 5.4 (KX)."""

from __future__ import annotations

import json
import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest
from factories import row
from test_rules import REF, TEST_REFERENCE, fired, night
from test_x12 import build, frame, line, segments

from therapy_claims import reference, rules
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.rules import charges, coverage
from therapy_claims.rules.input import add_calendar
from therapy_claims.x12.columns import cents_of

FEE_HEADER = "clinic_id,payer_class,code,unit_charge,allowed_amount,effective_date,source\n"


def ref_with(tmp_path, fees: str | None = None, **payer_settings: dict[str, str]):
    """The rule tests' reference folder with a fee_schedule.csv of ``fees`` rows and payer
    settings (column -> {payer_id: value})."""
    folder = tmp_path / "ref"
    shutil.copytree(TEST_REFERENCE, folder)
    if fees is not None:
        (folder / "fee_schedule.csv").write_text(FEE_HEADER + fees)
    if payer_settings:
        p = folder / "payers.csv"
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        for column, values in payer_settings.items():
            df[column] = df["payer_id"].map(values).fillna("")
        df.to_csv(p, index=False)
    return reference.load(str(folder))


def by_line(n: rules.Night, code: str) -> pd.DataFrame:
    return fired(n, code).set_index("line_id")


def charge_of(n: rules.Night) -> dict[str, float]:
    return dict(zip(n.lines["line_id"], n.lines["charge_amount"], strict=True))


# --------------------------------------------------------------------------- the charge fixer


def test_charge_follows_corrected_units_by_the_charted_unit_charge():
    # 38 minutes alone: 2 x 15 + 8 -> 3 units (MCPM ch.5 20.2); charted 4 for $200.00, so the
    # unit charge is $50.00 and 3 billed units are $150.00
    n = night([row(minutes="38", end_time="09:38", units_charted="4", charge_amount="200")])
    f = by_line(n, "CHARGE_CORRECTED")
    assert charge_of(n) == {"L1": 150.0}
    assert n.lines["units"].tolist() == [3]
    assert (f.loc["L1", "before"], f.loc["L1", "after"]) == ("200.00", "150.00")
    assert f.loc["L1", "severity"] == "warning"
    assert "charge 200.00 -> 150.00" in f.loc["L1", "message"]
    assert "$200.00 x 3/4" in f.loc["L1", "message"]
    assert n.change_lists().tolist() == [["units 4->3", "charge 200.00->150.00"]]


def test_charge_follows_the_fee_schedule_unit_charge(tmp_path):
    # fee_schedule.csv: CLN01 / medicare / 97110 at $45.50 a unit: 3 units -> $136.50
    ref = ref_with(tmp_path, "CLN01,medicare,97110,45.50,,,test\n")
    n = night(
        [row(minutes="38", end_time="09:38", units_charted="4", charge_amount="200")], ref=ref
    )
    f = by_line(n, "CHARGE_CORRECTED")
    assert charge_of(n) == {"L1": 136.5}
    assert f.loc["L1", "after"] == "136.50" and "3 x $45.50" in f.loc["L1", "message"]
    assert f.loc["L1", "evidence"].startswith("fee_schedule.csv@")
    assert "CLN01/medicare/97110" in f.loc["L1", "evidence"]
    # another payer class or clinic has no schedule row: the charted unit charge
    n = night(
        [
            row(
                minutes="38",
                end_time="09:38",
                units_charted="4",
                charge_amount="200",
                payer_id="MA01",
                prior_auth_number="PA1",
            )
        ],
        ref=ref,
    )
    rules.run_all(n)
    assert charge_of(n) == {"L1": 150.0}


def test_charge_rounds_half_up_to_the_cent():
    rows = [
        # $100.06 for 4 units, 3 billed: 10006 x 3 / 4 = 7504.5 cents -> 7505 (half up; half
        # to even would give 7504)
        row(minutes="38", end_time="09:38", units_charted="4", charge_amount="100.06"),
        # $100.00 for 3 units, 2 billed (33 minutes): 10000 x 2 / 3 = 6666.67 cents -> 6667
        row(
            line_id="L2",
            encounter_id="E2",
            patient_id="P2",
            minutes="33",
            end_time="09:33",
            units_charted="3",
            charge_amount="100",
        ),
    ]
    n = night(rows)
    rules.run_all(n)
    assert charge_of(n) == {"L1": 75.05, "L2": 66.67}
    # the 837 writer's cents of those charges are the same cents: SV102 75.05 and 66.67, and
    # CLM02 their sum 141.72 (x12-837.md: CLM02 must equal the sum of the SV102 values)
    assert cents_of(n.lines["charge_amount"]).tolist() == [7505, 6667]


def test_corrected_charges_give_an_837_whose_clm02_is_their_sum():
    rows = [
        row(minutes="38", end_time="09:38", units_charted="4", charge_amount="100.06"),
        row(
            line_id="L2",
            cpt_code="97140",
            minutes="33",
            start_time="10:00",
            end_time="10:33",
            units_charted="3",
            charge_amount="100",
            patient_id="P2",
            encounter_id="E2",
        ),
    ]
    n = night(rows)
    rules.run_all(n)
    amounts = n.lines["charge_amount"].tolist()
    df = frame(
        line(charge_amount=amounts[0], units=3),
        line(line_id="L2", cpt_code="97140", charge_amount=amounts[1], units=2),
    )
    segs = segments(build(reference.load(), df))
    assert "CLM*PCN0001*141.72***11:B:1*Y*A*Y*Y" in segs
    assert [s.split("*")[2] for s in segs if s.startswith("SV1")] == ["75.05", "66.67"]


def test_charge_unchanged_where_units_are_not_corrected_or_not_billed():
    rows = [
        row(units_charted="2", charge_amount="90"),  # 30 min: 2 units as charted
        row(line_id="L2", encounter_id="E2", patient_id="P2", units_charted=""),  # no charted
        # 7 minutes alone: 0 units, not billed: its charge is not sent and stays as charted
        row(
            line_id="L3",
            encounter_id="E3",
            patient_id="P3",
            minutes="7",
            end_time="09:07",
            units_charted="1",
            charge_amount="45",
        ),
    ]
    n = night(rows)
    assert fired(n, "CHARGE_CORRECTED").empty
    assert charge_of(n) == {"L1": 90.0, "L2": 90.0, "L3": 45.0}
    assert n.lines["units"].tolist() == [2, 2, 0]
    assert n.change_lists().tolist() == [[], [], ["units 1->0"]]


def test_charted_zero_units_follow_only_a_fee_schedule(tmp_path):
    # charted 0 units for $90: no charted unit charge; 30 minutes bill 2 units
    r = row(units_charted="0", charge_amount="90")
    n = night([r])
    assert fired(n, "CHARGE_CORRECTED").empty and charge_of(n) == {"L1": 90.0}
    ref = ref_with(tmp_path, "CLN01,medicare,97110,45.50,,,test\n")
    n = night([r], ref=ref)
    assert by_line(n, "CHARGE_CORRECTED").loc["L1", "after"] == "91.00"  # 2 x 45.50


def test_fee_schedule_row_in_effect_on_the_date_of_service(tmp_path):
    r = row(minutes="38", end_time="09:38", units_charted="4", charge_amount="200")
    # a row without a date is in effect from the start; a later-dated row replaces it from
    # its date on (2026-11-20 is the date of service itself); a row dated after it is not
    ref = ref_with(
        tmp_path,
        "CLN01,medicare,97110,40.00,,,old\n"
        "CLN01,medicare,97110,45.50,,2026-11-20,new\n"
        "CLN01,medicare,97110,99.00,,2026-11-21,future\n",
    )
    n = night([r], ref=ref)
    f = by_line(n, "CHARGE_CORRECTED")
    assert charge_of(n) == {"L1": 136.5}  # 3 x 45.50
    assert "effective 2026-11-20" in f.loc["L1", "evidence"]
    n = night([{**r, "date_of_service": "2026-11-19"}], ref=ref)
    rules.run_all(n)
    assert charge_of(n) == {"L1": 120.0}  # 3 x 40.00


# --------------------------------------------------------------------------- CHARGE_INVALID


def test_a_claim_whose_billed_lines_total_zero_is_held():
    rows = [
        # claim of E1: two billed lines of $0.00
        row(charge_amount="0"),
        row(
            line_id="L2",
            cpt_code="97112",
            start_time="09:30",
            end_time="10:00",
            charge_amount="0",
        ),
        # claim of E2: a billed $0.00 line and a 0-unit line with a charge (not sent)
        row(line_id="L3", encounter_id="E2", patient_id="P2", charge_amount="0"),
        row(
            line_id="L4",
            encounter_id="E2",
            patient_id="P2",
            cpt_code="97140",
            minutes="7",
            start_time="09:30",
            end_time="09:37",
            units_charted="",
            charge_amount="45",
        ),
        # claim of E3: one cent is not $0 (the boundary)
        row(line_id="L5", encounter_id="E3", patient_id="P3", charge_amount="0"),
        row(
            line_id="L6",
            encounter_id="E3",
            patient_id="P3",
            cpt_code="97112",
            start_time="09:30",
            end_time="10:00",
            charge_amount="0.01",
        ),
    ]
    n = night(rows)
    f = by_line(n, "CHARGE_INVALID")
    assert sorted(f.index) == ["L1", "L3"]  # one finding per claim, on its first billed line
    assert set(f["severity"]) == {"error"}  # an error holds the claim
    assert "2 billed line(s) total $0.00" in f.loc["L1", "message"]
    assert "1 billed line(s) total $0.00" in f.loc["L3", "message"]
    assert n.lines["units"].tolist() == [2, 2, 2, 0, 2, 2]


# --------------------------------------------------------------------------- above the schedule


def test_unit_charge_more_than_three_times_the_schedule_warns(tmp_path):
    assert charges.CHARGE_ABOVE_SCHEDULE_FACTOR == 3
    assert "3x" in CATALOGUE["CHARGE_ABOVE_SCHEDULE"].fires_when
    ref = ref_with(tmp_path, "CLN01,medicare,97110,45.50,,,test\n")
    # 2 units at 3 x $45.50 = $273.00 is not more than 3x; $273.01 is
    rows = [
        row(charge_amount="273.00"),
        row(line_id="L2", encounter_id="E2", patient_id="P2", charge_amount="273.01"),
        # a code the schedule does not list is never above it
        row(
            line_id="L3",
            encounter_id="E3",
            patient_id="P3",
            cpt_code="97112",
            charge_amount="5000",
        ),
    ]
    n = night(rows, ref=ref)
    f = by_line(n, "CHARGE_ABOVE_SCHEDULE")
    assert list(f.index) == ["L2"] and f.loc["L2", "severity"] == "warning"
    # 27301 cents / 2 units = 13650.5 -> $136.51 a unit (half up)
    assert "$273.01 for 2 unit(s) is $136.51 a unit" in f.loc["L2", "message"]
    assert "more than 3x the fee schedule's $45.50" in f.loc["L2", "message"]
    assert f.loc["L2", "evidence"].startswith("fee_schedule.csv@")


# --------------------------------------------------------------------------- KX


def _kx_lines(charge_2="45", **extra) -> list[dict]:
    """Medicare PT lines of patient P1: L1 on 2026-11-20 (30 min, 2 units, $90.00) and L2 on
    2026-11-21 (15 min, 1 unit)."""
    return [
        row(**extra),
        row(
            line_id="L2",
            encounter_id="E2",
            date_of_service="2026-11-21",
            minutes="15",
            end_time="09:15",
            units_charted="1",
            charge_amount=charge_2,
            **extra,
        ),
    ]


def _history(amount: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_id": ["P1"], "year": [2026], "bucket": ["PT/SLP"], "charges": [amount]}
    )


def _kx_night(rows, ref=REF, earlier=2400.0) -> rules.Night:
    n = night(rows, ref=ref)
    n.kx_history = _history(earlier)
    return n


def test_kx_counts_allowed_amounts_and_the_threshold_itself_is_not_over(tmp_path):
    # 2026 PT/SLP threshold $2,480 (kx_thresholds.csv, billing-rules.md 5.4); $2,400 earlier
    # allowed 97110 at $40.00 a unit: L1 2 x 40 = $80 -> $2,480.00, the threshold itself, not
    # over; L2 1 x 40 -> $2,520.00, over: KX on L2 only
    ref = ref_with(tmp_path, "CLN01,medicare,97110,45.00,40.00,,test\n")
    f = by_line(_kx_night(_kx_lines(), ref), "KX_REQUIRED")
    assert list(f.index) == ["L2"]
    assert "reach $2520.0" in f.loc["L2", "message"]
    assert "the allowed amount $40.0" in f.loc["L2", "message"]
    # the charges instead (no fee schedule: the documented fallback): L1's $90 -> $2,490, over
    f = by_line(_kx_night(_kx_lines()), "KX_REQUIRED")
    assert list(f.index) == ["L1", "L2"] and "its charge $90.0" in f.loc["L1", "message"]
    # a cent more allowed a unit: 2 x 40.01 = $80.02 -> $2,480.02, over on L1
    ref = ref_with(tmp_path / "b", "CLN01,medicare,97110,45.00,40.01,,test\n")
    assert list(by_line(_kx_night(_kx_lines(), ref), "KX_REQUIRED").index) == ["L1", "L2"]


def test_kx_history_counts_allowed_amounts_of_earlier_nights(tmp_path):
    ref = ref_with(tmp_path, "CLN01,medicare,97110,45.00,40.00,,test\n")
    scored = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1"],
            "payer_id": ["MCR01"] * 3,
            "clinic_id": ["CLN01", "CLN01", "CLN03"],
            "date_of_service": pd.to_datetime(["2026-11-02"] * 3),
            "discipline": ["PT"] * 3,
            "cpt_code": ["97110", "97112", "97110"],
            "units": [3, 2, 1],
            "charge_amount": [135.0, 88.0, 42.0],
            "status": ["billed"] * 3,
        }
    )
    d = tmp_path / "out" / "scored" / "run_date=2026-11-03" / "run=r1"
    d.mkdir(parents=True)
    scored.to_parquet(d / "scored.parquet", index=False)
    manifest = tmp_path / "out" / "manifest" / "run_date=2026-11-03.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"run_id": "r1", "outputs": {"scored": str(d)}}))
    h = coverage.kx_history(str(tmp_path / "out"), "2026-11-28", ref, night([row()]).lines)
    # 3 x $40.00 allowed + $88.00 (97112: no row, its charge) + $42.00 (CLN03: no row) = $250
    assert h.to_dict("records") == [
        {"patient_id": "P1", "year": 2026, "bucket": "PT/SLP", "charges": 250.0}
    ]


@pytest.mark.parametrize(
    ("action", "code", "severity"),
    [
        (None, "KX_REQUIRED", "error"),  # payers.csv without kx_action: Medicare holds
        ("hold", "KX_REQUIRED", "error"),
        ("warn", "KX_REQUIRED_WARN", "warning"),
    ],
)
def test_kx_action_holds_or_warns(tmp_path, action, code, severity):
    ref = ref_with(tmp_path, **({"kx_action": {"MCR01": action}} if action else {}))
    n = _kx_night(_kx_lines(), ref, earlier=2500.0)
    f = rules.run_all(n)
    kx = f[f["code"].str.startswith("KX_")]
    assert kx["code"].tolist() == [code, code] and set(kx["severity"]) == {severity}
    assert CATALOGUE[code].severity == severity
    assert f"kx_action={action or 'hold'}" in kx["evidence"].iloc[0]
    assert n.lines["modifiers"].tolist() == ["GP", "GP"]  # nothing added


@pytest.mark.parametrize(
    ("action", "code", "severity"),
    [(None, "CMT_AT_MISSING", "error"), ("warn", "CMT_AT_MISSING_WARN", "warning")],
)
def test_cmt_at_action_holds_or_warns(tmp_path, action, code, severity):
    ref = ref_with(tmp_path, **({"cmt_at_action": {"MCR01": action}} if action else {}))
    cmt = row(
        cpt_code="98940",
        discipline="CHIRO",
        rendering_credential="DC",
        minutes="",
        start_time="",
        end_time="",
        units_charted="1",
        body_region="lumbar",
        modifiers="",
    )
    f = rules.run_all(night([cmt, {**cmt, "line_id": "L2", "modifiers": "AT"}], ref=ref))
    at = f[f["code"].str.startswith("CMT_AT")]
    assert at["line_id"].tolist() == ["L1"] and at["code"].tolist() == [code]
    assert at["severity"].tolist() == [severity]


@pytest.mark.parametrize(
    ("overrides", "added", "reason"),
    [
        # the plan of care ends on the date of service: still current (inclusive)
        ({"plan_of_care_start": "2026-10-01", "plan_of_care_end": "2026-11-21"}, True, None),
        # and starts on it
        ({"plan_of_care_start": "2026-11-20", "plan_of_care_end": "2027-01-31"}, True, None),
        # ended the day before L2: not current
        (
            {"plan_of_care_start": "2026-10-01", "plan_of_care_end": "2026-11-20"},
            False,
            "no plan of care covers the date",
        ),
        ({"plan_of_care_start": "", "plan_of_care_end": ""}, False, "no plan of care"),
        (
            {"plan_of_care_start": "2026-10-01", "plan_of_care_end": "2026-12-31", "goal_id": ""},
            False,
            "no goal_id",
        ),
    ],
)
def test_kx_added_with_a_current_plan_of_care_and_a_goal(overrides, added, reason):
    # $2,470 earlier: L1 ($90, 2026-11-20) passes $2,480 already, so both lines need KX
    goal = {"goal_id": "STG1"}
    lines = [{**r, **goal, **overrides} for r in _kx_lines()]
    n = _kx_night([lines[1]], earlier=2470.0)  # L2 on 2026-11-21, $45 -> $2,515
    f = rules.run_all(n)
    codes = f.loc[f["code"].str.startswith("KX_"), "code"].tolist()
    if added:
        assert codes == ["KX_ADDED"]
        k = f[f["code"] == "KX_ADDED"].iloc[0]
        assert (k["before"], k["after"], k["severity"]) == ("GP", "GP;KX", "warning")
        assert "KX added: the plan of care" in k["message"] and "goal STG1" in k["message"]
        assert n.lines["modifiers"].tolist() == ["GP;KX"]
        assert n.change_lists().tolist() == [["modifiers +KX"]]
    else:
        assert codes == ["KX_REQUIRED"]
        assert reason in f.loc[f["code"] == "KX_REQUIRED", "message"].iloc[0]
        assert n.lines["modifiers"].tolist() == ["GP"]


def test_kx_added_keeps_the_factorised_modifiers_current():
    # the KX rule works in date order: L2 (2026-11-20) before L1 (2026-11-21); both get KX
    plan = {"goal_id": "STG1", "plan_of_care_start": "2026-10-01", "plan_of_care_end": "2026-12-31"}
    lines = [
        row(date_of_service="2026-11-21", modifiers="GP;59", **plan),
        row(line_id="L2", encounter_id="E2", **plan),
    ]
    n = _kx_night(lines, earlier=2500.0)
    rules.run_all(n)
    assert n.lines["modifiers"].tolist() == ["GP;59;KX", "GP;KX"]
    codes, values = n.distinct("modifiers")
    assert values.to_numpy(dtype=object)[codes].tolist() == ["GP;59;KX", "GP;KX"]


def test_kx_not_added_to_a_line_with_four_modifiers():
    r = {
        **_kx_lines()[1],
        "goal_id": "STG1",
        "plan_of_care_start": "2026-10-01",
        "plan_of_care_end": "2026-12-31",
        "modifiers": "GP;59;GA;CQ",
    }
    f = fired(_kx_night([r], earlier=2470.0), "KX_REQUIRED")
    assert "4 modifiers already" in f["message"].iloc[0]


# --------------------------------------------------------------------------- timely filing


@pytest.mark.parametrize(
    ("dos", "count", "unit", "deadline"),
    [
        ("2024-02-29", 1, "years", "2025-02-28"),  # no 29 February in 2025
        ("2024-02-28", 1, "years", "2025-02-28"),
        ("2025-01-31", 12, "months", "2026-01-31"),
        ("2025-01-31", 1, "months", "2025-02-28"),  # clamped to the month's last day
        ("2024-01-31", 1, "months", "2024-02-29"),  # a leap year
        ("2026-08-30", 90, "days", "2026-11-28"),
        ("2023-03-31", 2, "years", "2025-03-31"),
    ],
)
def test_add_calendar(dos, count, unit, deadline):
    got = add_calendar(np.array([dos], dtype="datetime64[D]"), np.array([count]), np.array([unit]))
    assert got.tolist() == [date.fromisoformat(deadline)]


def _late(n: rules.Night, run: str) -> list[str]:
    n.run_date = date.fromisoformat(run)
    return fired(n, "DATE_INVALID")["line_id"].tolist()


def test_timely_filing_one_calendar_year_across_a_leap_day():
    # Medicare (MCR01: the default 1 year): 2024-02-29 + 1 year = 2025-02-28 (42 CFR 424.44)
    n = night([row(date_of_service="2024-02-29")])
    assert _late(n, "2025-02-28") == []
    assert _late(n, "2025-03-01") == ["L1"]
    msg = fired(n, "DATE_INVALID")["message"].iloc[0]
    assert "timely filing limit of MCR01 (1 year)" in msg and "due by 2025-02-28" in msg


def test_timely_filing_in_days_and_months_is_the_payers(tmp_path):
    ref = ref_with(tmp_path, timely_filing={"COM01": "90 days", "MCD01": "12 months"})
    com = dict(payer_id="COM01", units_charted="2")
    # 90 days: 2026-08-30 + 90 days = 2026-11-28, the run date: in time; a day earlier is late
    n = night(
        [
            row(date_of_service="2026-08-30", **com),
            row(line_id="L2", encounter_id="E2", date_of_service="2026-08-29", **com),
        ],
        ref=ref,
    )
    assert _late(n, "2026-11-28") == ["L2"]
    f = fired(n, "DATE_INVALID")
    assert "COM01 (90 days)" in f["message"].iloc[0] and "due by 2026-11-27" in f["message"].iloc[0]
    assert "timely_filing=90 days" in f["evidence"].iloc[0]
    assert "424.44" not in f["evidence"].iloc[0]  # the CFR is Medicare's
    # 12 months: 2025-01-31 -> 2026-01-31
    mcd = dict(payer_id="MCD01", prior_auth_number="PA1", date_of_service="2025-01-31")
    n = night([row(**mcd)], ref=ref)
    assert _late(n, "2026-01-31") == [] and _late(n, "2026-02-01") == ["L1"]


# --------------------------------------------------------------------------- fee_schedule.csv


def test_a_folder_without_a_fee_schedule_loads_with_an_empty_one():
    assert REF.fee_schedule.empty
    assert "fee_schedule.csv" not in {f["name"] for f in REF.files}
    shipped = reference.load()
    assert not shipped.fee_schedule.empty
    assert set(shipped.fee_schedule["source"].str[:16]) == {"synthetic sample"}


@pytest.mark.parametrize(
    ("fees", "expected"),
    [
        (
            "CLN01,medicare,97110,45.505,,,x\n",
            "row 2 column unit_charge: '45.505' is not whole cents",
        ),
        (
            "CLN01,medicare,97110,1e308,,,x\n",
            "row 2 column unit_charge: '1e308' is not an amount from 1 to 10,000",
        ),
        ("CLN01,medicare,97110,45,-1,,x\n", "row 2 column allowed_amount: '-1' is not an amount"),
        ("CLN99,medicare,97110,45,,,x\n", "row 2 column clinic_id: unknown value 'CLN99'"),
        ("CLN01,medicaree,97110,45,,,x\n", "row 2 column payer_class: unknown value 'medicaree'"),
        ("CLN01,medicare,97110,,,,x\n", "row 2: neither unit_charge nor allowed_amount"),
        ("CLN01,medicare,97110,45,,today,x\n", "row 2 column effective_date: not a date"),
        (
            "CLN01,medicare,97110,45,,2026-01-01,x\nCLN01,medicare,97110,46,,2026-01-01,y\n",
            "row 3: clinic_id, payer_class and code are listed twice",
        ),
    ],
)
def test_bad_fee_schedule_values_stop_the_run(tmp_path, fees, expected):
    with pytest.raises(reference.ReferenceError) as exc:
        ref_with(tmp_path, fees)
    assert "fee_schedule.csv" in str(exc.value) and expected in str(exc.value)


def test_fee_schedule_without_optional_columns(tmp_path):
    folder = tmp_path / "ref"
    shutil.copytree(TEST_REFERENCE, folder)
    (folder / "fee_schedule.csv").write_text(
        "clinic_id,payer_class,code,unit_charge\nCLN01,medicare,97110,45.50\n"
    )
    ref = reference.load(str(folder))
    fees = ref.fee_schedule
    assert fees["unit_charge"].tolist() == [45.5] and fees["allowed_amount"].isna().all()
    assert fees["effective_date"].isna().all()
