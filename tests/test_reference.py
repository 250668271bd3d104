from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from therapy_claims import npi, reference


def test_default_reference_loads_and_records_versions():
    ref = reference.load()
    assert {"MCR01", "COM01"} <= set(ref.payers.index)
    assert ref.payers.loc["COM01", "unit_method"] == "per_code"
    assert ref.payers.loc["COM01", "max_timed_units_per_day"] == 4
    assert bool(ref.payers.loc["MCR01", "requires_therapy_modifiers"]) is True
    assert bool(ref.payers.loc["COM01", "requires_therapy_modifiers"]) is False
    assert bool(ref.cpt.loc["97140", "timed"]) and not bool(ref.cpt.loc["97161", "timed"])
    names = {f["name"] for f in ref.files}
    assert names == set(reference.FILES)
    quarters = {f["name"]: f.get("effective_quarter") for f in ref.files}
    assert quarters["ncci_ptp.csv"] == "2020Q4" and quarters["mue.csv"] == "2017Q1"
    assert all(len(f["sha256"]) == 64 for f in ref.files)
    # the sample provider directory is the header alone: no PROVIDER_UNKNOWN on made-up NPIs
    assert all(f["rows"] > 0 for f in ref.files if f["name"] != "providers.csv")
    assert ref.providers.empty
    for n in ref.clinics["billing_npi"]:
        assert npi.is_valid(n)
    assert ref.clinics["zip"].str.fullmatch(r"\d{9}").all()
    # starter NCCI/MUE rows are marked as samples and cite a source
    assert (ref.ncci["sample"] == "true").all() and ref.ncci["source"].str.len().gt(10).all()
    assert (ref.mue["sample"] == "true").all()


def test_cms_quarterly_layout_dates(tmp_path):
    reference.copy_default(tmp_path)
    (tmp_path / "ncci_ptp.csv").write_text(
        "column1,column2,prior_1996,effective_date,deletion_date,modifier_indicator,rationale\n"
        "97140,97530,,20130101,*,1,Mutually exclusive\n"
        "97161,97140,,20200101,20200401,1,x\n"
    )
    ref = reference.load(str(tmp_path))
    assert ref.ncci["effective_date"].tolist() == [date(2013, 1, 1), date(2020, 1, 1)]
    assert ref.ncci["deletion_date"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("payers.csv", ",cms,x,", ",eight,x,", "column unit_method: unknown value 'eight'"),
        (
            "payers.csv",
            ",false,true",
            ",maybe,true",
            "column requires_prior_auth: unknown value 'maybe'",
        ),
        (
            "clinics.csv",
            ",professional,",
            ",hospital,",
            "column claim_type: unknown value 'hospital'",
        ),
        ("mue.csv", ",1,3,", ",1,7,", "column mai: unknown value '7'"),
    ],
)
def test_unknown_setting_values_fail_at_start(tmp_path, file, old, new, expected):
    reference.copy_default(tmp_path)
    p = tmp_path / file
    p.write_text(p.read_text().replace(old, new, 1))
    with pytest.raises(reference.ReferenceError) as exc:
        reference.load(str(tmp_path))
    assert expected in str(exc.value) and file in str(exc.value)


def test_missing_file_is_clear(tmp_path):
    reference.copy_default(tmp_path)
    (tmp_path / "mue.csv").unlink()
    with pytest.raises(reference.ReferenceError, match="mue.csv not found"):
        reference.load(str(tmp_path))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "mue.csv",
            "97012,1,3,",
            "97012,1e308,3,",
            "row 2 column mue_value: '1e308' is not a whole number from 0 to 99,999",
        ),
        (
            "mue.csv",
            "97012,1,3,",
            "97012,-4,3,",
            "row 2 column mue_value: '-4' is not a whole number from 0 to 99,999",
        ),
        (
            "mue.csv",
            "97012,1,3,",
            "97012,1.5,3,",
            "row 2 column mue_value: '1.5' is not a whole number from 0 to 99,999",
        ),
        (
            "mue.csv",
            "97012,1,3,",
            "97012,inf,3,",
            "row 2 column mue_value: 'inf' is not a whole number from 0 to 99,999",
        ),
        (
            "mue.csv",
            "97012,1,3,",
            "97012,,3,",
            "row 2 column mue_value: '' is not a whole number from 0 to 99,999",
        ),
        (
            "payers.csv",
            ",cms,x,,",
            ",cms,x,1e30,",
            "row 2 column max_timed_units_per_day: '1e30' is not a whole number from 1 to 96",
        ),
        (
            "payers.csv",
            ",cms,x,,",
            ",cms,x,-3,",
            "row 2 column max_timed_units_per_day: '-3' is not a whole number from 1 to 96",
        ),
        (
            "payers.csv",
            ",cms,x,,",
            ",cms,x,nan,",
            "row 2 column max_timed_units_per_day: 'nan' is not a whole number from 1 to 96",
        ),
        (
            "kx_thresholds.csv",
            "2022,2150,2150",
            "2022,inf,2150",
            "row 2 column pt_slp: 'inf' is not an amount from 1 to 100,000",
        ),
        (
            "kx_thresholds.csv",
            "2022,2150,2150",
            "2022,2150,nan",
            "row 2 column ot: 'nan' is not an amount from 1 to 100,000",
        ),
        (
            "kx_thresholds.csv",
            "2022,2150,2150",
            f"2022,{10**30},2150",
            f"row 2 column pt_slp: '{10**30}' is not an amount from 1 to 100,000",
        ),
        (
            "kx_thresholds.csv",
            "2022,2150,2150",
            "99999999999999999999,2150,2150",
            "row 2 column year: '99999999999999999999' is not a whole number from 1999 to 2100",
        ),
        (
            "kx_thresholds.csv",
            "2023,2230",
            "2022,2230",
            "row 3 column year: '2022' is listed twice",
        ),
        (
            "mue.csv",
            "97012,1,3,2017-01-01",
            "97012,1,3,today",
            "row 2 column effective_date: not a date: 'today'",
        ),
        (
            "ncci_ptp.csv",
            "98940,97140,2002-01-01,,1",
            "98940,97140,2002-01-01,now,1",
            "row 2 column deletion_date: not a date: 'now'",
        ),
    ],
)
def test_absurd_numbers_and_wall_clock_dates_fail_at_start(tmp_path, file, old, new, expected):
    reference.copy_default(tmp_path)
    p = tmp_path / file
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(reference.ReferenceError) as exc:
        reference.load(str(tmp_path))
    assert str(exc.value) == f"{p} {expected}"


def test_shipped_numbers_are_within_their_ranges():
    ref = reference.load()
    checked = {
        ("payers.csv", "max_timed_units_per_day"): ref.payers["max_timed_units_per_day"].dropna(),
        ("mue.csv", "mue_value"): ref.mue["mue_value"],
        ("kx_thresholds.csv", "year"): ref.kx["year"],
        ("kx_thresholds.csv", "pt_slp"): ref.kx["pt_slp"],
        ("kx_thresholds.csv", "ot"): ref.kx["ot"],
        ("fee_schedule.csv", "unit_charge"): ref.fee_schedule["unit_charge"].dropna(),
        ("fee_schedule.csv", "allowed_amount"): ref.fee_schedule["allowed_amount"].dropna(),
    }
    assert set(checked) == set(reference.NUMBER_RANGES)
    for key, values in checked.items():
        low, high, _whole = reference.NUMBER_RANGES[key]
        assert len(values) and values.between(low, high).all(), key
    assert str(ref.mue["mue_value"].dtype) == "int64"
    assert str(ref.payers["max_timed_units_per_day"].dtype) == "Int64"
    assert ref.kx["year"].is_unique and str(ref.kx["year"].dtype) == "int64"


def test_rows_of_a_cms_file_count_its_notice_lines(tmp_path):
    reference.copy_default(tmp_path)
    (tmp_path / "mue.csv").write_text(
        "CPT codes and descriptions only are copyright 2024 American Medical Association.\n"
        "Notice line two\n"
        "HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,"
        "effective_date\n"
        "97012,1,3 Date of Service Edit: Clinical,20240101\n"
        "97140,1e308,3 Date of Service Edit: Clinical,20240101\n"
    )
    with pytest.raises(reference.ReferenceError) as exc:
        reference.load(str(tmp_path))
    # notice lines 1-2, header 3, rows 4 and 5
    assert str(exc.value).endswith(
        "mue.csv row 5 column mue_value: '1e308' is not a whole number from 0 to 99,999"
    )


def _payers_without(tmp_path, columns: tuple[str, ...]):
    reference.copy_default(tmp_path)
    p = tmp_path / "payers.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False).drop(columns=list(columns))
    df.to_csv(p, index=False)
    return reference.load(str(tmp_path)).payers


def test_payer_settings_left_out_take_their_defaults(tmp_path):
    payers = _payers_without(tmp_path, tuple(reference.OPTIONAL_PAYER_SETTINGS))
    assert set(payers["distinct_modifier_on"]) == {"column2"}
    assert set(payers["noncovered_modifier"]) == {""}
    # KX and AT hold for Medicare (the line is denied otherwise) and warn for the rest
    assert payers.loc["MCR01", "kx_action"] == "hold"
    assert payers.loc["MCR01", "cmt_at_action"] == "hold"
    assert payers.loc["MA01", "kx_action"] == "warn"
    assert payers.loc["COM01", "cmt_at_action"] == "warn"
    assert set(payers["timely_filing_count"]) == {1}
    assert set(payers["timely_filing_unit"]) == {"years"}


def test_shipped_payer_settings():
    payers = reference.load().payers
    assert payers.loc["COM01", ["timely_filing_count", "timely_filing_unit"]].tolist() == [
        90,
        "days",
    ]
    assert payers.loc["MCD01", "timely_filing_unit"] == "months"
    assert payers.loc["MA01", "distinct_modifier_on"] == "either"


@pytest.mark.parametrize(
    "column,value,expected",
    [
        ("distinct_modifier_on", "column1", "column distinct_modifier_on: unknown value 'column1'"),
        ("noncovered_modifier", "GX", "column noncovered_modifier: unknown value 'GX'"),
        ("kx_action", "ignore", "column kx_action: unknown value 'ignore'"),
        ("timely_filing", "90", "column timely_filing: '90' is not a whole number"),
        ("timely_filing", "0 days", "column timely_filing: '0 days' is not"),
        ("timely_filing", "3 weeks", "column timely_filing: '3 weeks' is not"),
    ],
)
def test_bad_payer_settings_fail_at_start(tmp_path, column, value, expected):
    reference.copy_default(tmp_path)
    p = tmp_path / "payers.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df.loc[2, column] = value
    df.to_csv(p, index=False)
    with pytest.raises(reference.ReferenceError, match="row 4 " + re.escape(expected)):
        reference.load(str(tmp_path))


# ---- issue 15: payer routing ids, assistants, referring, SBR09 by claim type, providers ----


def _edit_payers(folder, column, values: dict[str, str]):
    """Set ``column`` of the named payers in the folder's payers.csv (other rows unchanged)."""
    path = folder / "payers.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for pid, value in values.items():
        df.loc[df["payer_id"] == pid, column] = value
    df.to_csv(path, index=False)


def test_payer_settings_of_issue_15_and_their_defaults():
    ref = reference.load()
    p = ref.payers
    # the internal key and the clearinghouse's payer id are apart
    assert p.loc["MCR01", "clearinghouse_payer_id"] == "99MCR"
    # assistants: Medicare classes never let them render (the sample leaves the cell empty)
    assert not p.loc["MCR01", "assistants_may_render"]
    assert not p.loc["MA01", "assistants_may_render"]
    assert p.loc["COM01", "assistants_may_render"] and not p.loc["COM02", "assistants_may_render"]
    assert p.loc["MCD01", "requires_referring"] and not p.loc["MCR01", "requires_referring"]
    # SBR09 on 837I: Medicare Part A where the 837P's is Part B, else the same
    assert p.loc["MCR01", "claim_filing_indicator_institutional"] == "MA"
    assert p.loc["COM01", "claim_filing_indicator_institutional"] == "CI"
    assert (ref.clinics["point_of_origin"] == "1").all()


def test_a_folder_without_the_optional_columns_takes_the_defaults():
    ref = reference.load(str(Path(__file__).parent / "reference"))
    p = ref.payers
    assert p["assistants_may_render"].tolist() == [False, False, True, True, True, True, True]
    assert not p["requires_referring"].any()
    assert p.loc["MCR01", "claim_filing_indicator_institutional"] == "MA"
    assert ref.providers.empty


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", "row 3 column clearinghouse_payer_id: payer 'MA01' has no clearinghouse payer ID"),
        ("AB*C", "row 3 column clearinghouse_payer_id: payer 'MA01' has 'AB*C', not 2-80 of"),
    ],
)
def test_a_payer_without_a_clearinghouse_id_stops_the_run(tmp_path, value, expected):
    reference.copy_default(tmp_path)
    _edit_payers(tmp_path, "clearinghouse_payer_id", {"MA01": value})
    with pytest.raises(reference.ReferenceError, match=re.escape(expected)):
        reference.load(str(tmp_path))


def test_a_payers_file_without_the_clearinghouse_column_names_it(tmp_path):
    reference.copy_default(tmp_path)
    df = pd.read_csv(tmp_path / "payers.csv", dtype=str, keep_default_na=False)
    df.drop(columns="clearinghouse_payer_id").to_csv(tmp_path / "payers.csv", index=False)
    with pytest.raises(reference.ReferenceError, match="missing column.*clearinghouse_payer_id"):
        reference.load(str(tmp_path))


@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("assistants_may_render", "maybe", "assistants_may_render"),
        ("requires_referring", "sometimes", "requires_referring"),
        ("claim_filing_indicator_institutional", "PARTA", "is not a 2-character SBR09 code"),
    ],
)
def test_bad_issue_15_payer_settings_stop_the_run(tmp_path, column, value, expected):
    reference.copy_default(tmp_path)
    _edit_payers(tmp_path, column, {"COM01": value})
    with pytest.raises(reference.ReferenceError, match=expected):
        reference.load(str(tmp_path))


def test_point_of_origin_is_checked(tmp_path):
    reference.copy_default(tmp_path)
    df = pd.read_csv(tmp_path / "clinics.csv", dtype=str, keep_default_na=False)
    df["point_of_origin"] = ["2", "", "7"]
    df.to_csv(tmp_path / "clinics.csv", index=False)
    with pytest.raises(reference.ReferenceError, match="point_of_origin"):
        reference.load(str(tmp_path))
    df["point_of_origin"] = ["2", "", "d"]
    df.to_csv(tmp_path / "clinics.csv", index=False)
    assert reference.load(str(tmp_path)).clinics["point_of_origin"].tolist() == ["2", "1", "D"]


PROVIDERS = "npi,last_name,first_name,credential,taxonomy\n"


def test_providers_file_loads_by_npi(tmp_path):
    reference.copy_default(tmp_path)
    good = npi.make_valid("123456789")
    (tmp_path / "providers.csv").write_text(PROVIDERS + f"{good},SMITH,ANA,ot,225x00000x\n")
    ref = reference.load(str(tmp_path))
    row = ref.providers.loc[good]
    assert (row["credential"], row["taxonomy"], row["last_name"]) == ("OT", "225X00000X", "SMITH")


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "1234567890,SMITH,ANA,OT,225X00000X\n",
            "row 2 column npi: '1234567890' is not a valid NPI",
        ),
        (
            "{n},SMITH,ANA,OT,225X00000X\n{n},DOE,JO,PT,225100000X\n",
            "row 3 column npi: '{n}' is listed twice",
        ),
        ("{n},,ANA,OT,225X00000X\n", "row 2 column last_name: '' is empty"),
        ("{n},SMITH,ANA,RN,225X00000X\n", "row 2 column credential: 'RN' is not one of"),
        ("{n},SMITH,ANA,OT,225X0000\n", "row 2 column taxonomy: '225X0000' is not a 10-character"),
    ],
)
def test_bad_provider_rows_stop_the_run(tmp_path, body, expected):
    reference.copy_default(tmp_path)
    n = npi.make_valid("123456789")
    (tmp_path / "providers.csv").write_text(PROVIDERS + body.format(n=n))
    with pytest.raises(reference.ReferenceError, match=re.escape(expected.format(n=n))):
        reference.load(str(tmp_path))
