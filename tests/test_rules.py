"""Each rule: a firing case, a non-firing case and its boundary. Reference data is the shipped
sample folder unless a test writes its own."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from factories import OTHER_NPI, row

from therapy_claims import extract, ledger, reference, rules
from therapy_claims.layout import COLUMN_NAMES

# the rule tests' own reference data (tests/reference), not the shipped samples
TEST_REFERENCE = Path(__file__).parent / "reference"
REF = reference.load(str(TEST_REFERENCE))


def night(rows: list[dict], ref=REF) -> rules.Night:
    strings = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows]).astype("string")
    strings["source_file"] = "t.csv"
    strings["source_row"] = pd.array(range(2, len(rows) + 2), dtype="Int64")
    typed, found, bad = extract.type_rows(strings)
    assert not bad.any(), found["message"].tolist()
    lines = reference.enrich(typed, ref)
    lines["claim_id"] = ledger.claim_ids(lines)
    return rules.Night(lines=lines, ref=ref, run_date=date(2026, 11, 28))


def fired(n: rules.Night, code: str) -> pd.DataFrame:
    f = rules.run_all(n)
    return f[f["code"] == code]


def test_unknown_payer_and_clinic():
    n = night([row(), row(line_id="L2", payer_id="NOPE"), row(line_id="L3", clinic_id="CLN99")])
    up, uc = fired(n, "UNKNOWN_PAYER"), fired(n, "UNKNOWN_CLINIC")
    assert (
        up["line_id"].tolist() == ["L2"] and "'NOPE' is not in payers.csv" in up["message"].iloc[0]
    )
    assert up["evidence"].iloc[0].startswith("payers.csv@")
    assert uc["line_id"].tolist() == ["L3"] and "CLN99" in uc["message"].iloc[0]


def test_time_missing_only_for_timed_codes():
    n = night([row(minutes=""), row(line_id="L2", cpt_code="97161", minutes="", modifiers="GP")])
    f = fired(n, "TIME_MISSING")
    assert f["line_id"].tolist() == ["L1"] and f["severity"].iloc[0] == "error"


@pytest.mark.parametrize(("minutes", "zero"), [(7, True), (8, False)])
def test_units_zero_boundary_7_vs_8_minutes(minutes, zero):
    n = night([row(cpt_code="97140", minutes=str(minutes), units_charted="")])
    f = fired(n, "UNITS_ZERO")
    assert (len(f) == 1) is zero
    assert n.lines["units"].tolist() == [0 if zero else 1]
    if zero:
        assert f["severity"].iloc[0] == "info" and "7 min" in f["message"].iloc[0]


def test_units_corrected_records_before_after_and_change():
    n = night([row(minutes="33", units_charted="3")])  # 33 min alone -> 2 units
    f = fired(n, "UNITS_CORRECTED")
    assert len(f) == 1 and f["before"].iloc[0] == "3" and f["after"].iloc[0] == "2"
    assert "charted 3 unit(s), computed 2" in f["message"].iloc[0]
    # the charge follows the units: $90.00 for 3 units charted, 2 billed -> $60.00
    assert n.change_lists().tolist() == [["units 3->2", "charge 90.00->60.00"]]
    assert fired(night([row(minutes="33", units_charted="2")]), "UNITS_CORRECTED").empty


def test_units_use_payer_method():
    rows = [
        row(cpt_code="97110", minutes="8", units_charted=""),
        row(
            line_id="L2",
            cpt_code="97140",
            minutes="8",
            units_charted="",
            start_time="09:30",
            end_time="09:45",
        ),
    ]
    cms = night(rows)
    rules.run_all(cms)
    assert cms.lines["units"].tolist() == [1, 0]  # 16 pooled minutes -> 1 unit (tie -> lower code)
    ama = night([{**r, "payer_id": "COM01"} for r in rows])
    rules.run_all(ama)
    assert ama.lines["units"].tolist() == [1, 1]


def test_therapy_modifier_added_when_payer_requires():
    n = night(
        [
            row(modifiers=""),
            row(line_id="L2", modifiers="59", start_time="09:30", end_time="10:00"),
            row(line_id="L3", modifiers="GP", start_time="10:00", end_time="10:30"),
        ]
    )
    f = fired(n, "THERAPY_MODIFIER_ADDED")
    assert f["line_id"].tolist() == ["L1", "L2"]
    assert f.set_index("line_id").loc["L2", ["before", "after"]].tolist() == ["59", "59;GP"]
    assert f["severity"].iloc[0] == "warning"
    assert n.lines["modifiers"].tolist() == ["GP", "59;GP", "GP"]
    assert n.change_lists().tolist()[:2] == [["modifiers +GP"], ["modifiers +GP"]]


def test_therapy_modifier_not_added_when_payer_does_not_require_or_chiro():
    n = night(
        [
            row(payer_id="COM01", modifiers=""),
            row(
                line_id="L2",
                cpt_code="98940",
                discipline="CHIRO",
                rendering_credential="DC",
                modifiers="",
                minutes="",
                body_region="lumbar",
            ),
        ]
    )
    assert fired(n, "THERAPY_MODIFIER_ADDED").empty


def test_therapy_modifier_for_ot_is_go():
    n = night([row(discipline="OT", rendering_credential="OT", modifiers="", cpt_code="97530")])
    rules.run_all(n)
    assert n.lines["modifiers"].tolist() == ["GO"]


def test_npi_invalid_rendering():
    n = night([row(rendering_npi="1234567898"), row(line_id="L2", rendering_npi=OTHER_NPI)])
    f = fired(n, "NPI_INVALID")
    assert f["line_id"].tolist() == ["L1"] and "1234567898" in f["message"].iloc[0]


def test_diagnosis_invalid_shape_and_pointer():
    n = night(
        [
            row(diagnosis_codes="M54.50;XYZ"),
            row(line_id="L2", diagnosis_pointers="3"),
            row(line_id="L3", diagnosis_pointers="1;2"),
            row(line_id="L4", diagnosis_codes="M5450"),
        ]
    )
    f = fired(n, "DIAGNOSIS_INVALID").set_index("line_id")
    assert sorted(f.index) == ["L1", "L2"]
    assert "'XYZ'" in f.loc["L1", "message"] and "'3'" in f.loc["L2", "message"]


def test_every_finding_has_fix_and_catalogue_severity():
    from therapy_claims.catalogue import CATALOGUE

    n = night([row(minutes="", payer_id="NOPE", modifiers="", rendering_npi="1234567898")])
    f = rules.run_all(n)
    assert not f.empty
    for _, x in f.iterrows():
        assert x["severity"] == CATALOGUE[x["code"]].severity
        assert x["suggested_fix"] and x["message"]


def test_therapy_modifier_added_on_institutional_claims_whatever_the_payer():
    # COM01 does not require therapy modifiers, but an 837I revenue-code line does
    n = night([row(payer_id="COM01", modifiers="", clinic_id="CLN03")])
    f = fired(n, "THERAPY_MODIFIER_ADDED")
    assert f["line_id"].tolist() == ["L1"] and "837I" in f["evidence"].iloc[0]
    assert n.lines["modifiers"].tolist() == ["GP"]


def test_changes_of_several_rules_on_one_line_keep_rule_order():
    # units corrected (3 -> 2), the charge following them, then the therapy modifier added
    n = night(
        [
            row(minutes="33", units_charted="3", modifiers=""),
            row(line_id="L2", start_time="09:30", end_time="10:00"),  # after L1: no overlap
        ]
    )
    rules.run_all(n)
    assert n.change_lists().tolist() == [
        ["units 3->2", "charge 90.00->60.00", "modifiers +GP"],
        [],
    ]
    assert n.lines["modifiers"].tolist() == ["GP", "GP"]


def test_overlap_of_two_patients_reports_both_lines():
    a = dict(start_time="09:00", end_time="09:30", minutes="30")
    b = dict(start_time="09:15", end_time="09:45", minutes="30", line_id="L2", encounter_id="E2")
    overlapping = night([row(**a), row(patient_id="P2", **b)])
    assert fired(overlapping, "PROVIDER_OVERLAP")["line_id"].tolist() == ["L1", "L2"]


def _kx_night(charges_and_ids: list[tuple[str, str, str]], earlier: float) -> rules.Night:
    """Medicare PT lines of patient P1 (line id, date, charge) and earlier nights' charges."""
    n = night(
        [
            # one half hour each, one after the other (never the same time twice)
            row(
                line_id=i,
                encounter_id="E1",
                date_of_service=d,
                charge_amount=c,
                start_time=f"{9 + k // 2:02d}:{30 * (k % 2):02d}",
                end_time=f"{9 + (k + 1) // 2:02d}:{30 * ((k + 1) % 2):02d}",
            )
            for k, (i, d, c) in enumerate(charges_and_ids)
        ]
    )
    n.kx_history = pd.DataFrame(
        {"patient_id": ["P1"], "year": [2026], "bucket": ["PT/SLP"], "charges": [earlier]}
    )
    return n


def test_kx_fires_on_the_line_that_passes_the_threshold_even_if_a_credit_follows():
    # 2026 PT/SLP threshold $2,480: $2,400 earlier, +$100 (now $2,500), then a -$200 credit
    # (the extract rejects negative charges; the rule does not count on it)
    n = _kx_night([("L1", "2026-11-20", "100"), ("L2", "2026-11-21", "200")], 2400.0)
    n.lines.loc[n.lines["line_id"] == "L2", "charge_amount"] = -200.0
    f = fired(n, "KX_REQUIRED")
    assert f["line_id"].tolist() == ["L1"] and "reach $2500.0" in f["message"].iloc[0]


def test_kx_threshold_itself_is_not_over_it():
    assert fired(_kx_night([("L1", "2026-11-20", "50")], 2430.0), "KX_REQUIRED").empty
    f = fired(_kx_night([("L1", "2026-11-20", "50.01")], 2430.0), "KX_REQUIRED")
    assert f["line_id"].tolist() == ["L1"]


def test_kx_lines_of_one_date_add_up_in_line_id_order():
    # L2 comes first in the file, but L1 is added first: only L2 passes $2,480
    n = _kx_night([("L2", "2026-11-20", "50"), ("L1", "2026-11-20", "50")], 2400.0)
    assert fired(n, "KX_REQUIRED")["line_id"].tolist() == ["L2"]


def test_update_keeps_the_factorised_column_current():
    n = night([row(modifiers=""), row(line_id="L2", modifiers="59"), row(line_id="L3")])
    codes, values = n.distinct("modifiers")
    n.update("modifiers", [True, True, False], pd.Series(["59", "XU;GP"], index=[0, 1]))
    codes, values = n.distinct("modifiers")
    assert values.to_numpy(dtype=object)[codes].tolist() == ["59", "XU;GP", "GP"]
    assert n.lines["modifiers"].tolist() == ["59", "XU;GP", "GP"]
