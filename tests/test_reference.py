from __future__ import annotations

from datetime import date

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
    assert all(len(f["sha256"]) == 64 and f["rows"] > 0 for f in ref.files)
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
