"""Corrected, resubmitted and voided claims (issue 17).

The 837 side first: a claim's frequency (CLM05-3: 1 original, 7 replacement, 8 void) and the
payer's claim control number it corrects (2300 REF*F8), written alike by the fast writer, its
prepared (checked columns) path and the plain oracle (``tests/oracle_837.py``), and accepted by
pyx12 in an 837P and an 837I.
"""

from __future__ import annotations

from datetime import datetime

import oracle_837
import pandas as pd
import pytest
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import reference, x12
from therapy_claims.x12 import prepared
from therapy_claims.x12.checks import Batch

CREATED = datetime(2026, 11, 27)


@pytest.fixture(scope="module")
def ref() -> reference.Reference:
    return reference.load()


def line(**overrides) -> dict:
    row = {
        "claim_id": "TC0001",
        "line_id": "L1",
        "clinic_id": "CLN01",
        "payer_id": "COM01",
        "date_of_service": pd.Timestamp("2026-11-20"),
        "patient_last_name": "Doe",
        "patient_first_name": "Jan",
        "patient_dob": pd.Timestamp("1980-01-01"),
        "patient_sex": "F",
        "patient_address": "456 Oak Ave",
        "patient_city": "Springfield",
        "patient_state": "IL",
        "patient_zip": "62702",
        "member_id": "MEMBER123",
        "subscriber_relationship": pd.NA,
        "subscriber_last_name": pd.NA,
        "subscriber_first_name": pd.NA,
        "subscriber_dob": pd.NaT,
        "group_number": "GRP123",
        "prior_auth_number": pd.NA,
        "rendering_npi": "1245319599",
        "rendering_last_name": "Smith",
        "rendering_first_name": "Robert",
        "discipline": "PT",
        "cpt_code": "97140",
        "modifiers": ["GP"],
        "units": 2,
        "charge_amount": 60.0,
        "diagnosis_codes": ["M54.50"],
        "diagnosis_pointers": [1],
        "place_of_service": "11",
        "injury_date": pd.NaT,
    }
    row.update(overrides)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in ("date_of_service", "patient_dob", "subscriber_dob", "injury_date"):
        df[c] = pd.to_datetime(df[c])
    for c in df.columns:
        if df[c].dtype == object and c not in (
            "modifiers",
            "diagnosis_codes",
            "diagnosis_pointers",
        ):
            df[c] = df[c].astype("string")
    return df


def three_claims(institutional: bool, **columns: list) -> pd.DataFrame:
    """An original (TC0001, with a prior authorisation), a replacement (TC0002-R1) and a void
    (TC0003-R1) at one clinic; ``columns`` replaces the correction columns."""
    clinic = "CLN03" if institutional else "CLN01"
    df = frame(
        line(claim_id="TC0001", line_id="L1", clinic_id=clinic, prior_auth_number="AUTH1"),
        line(claim_id="TC0002-R1", line_id="L2", clinic_id=clinic, prior_auth_number="AUTH2"),
        line(claim_id="TC0002-R1", line_id="L3", clinic_id=clinic, units=1, charge_amount=30.0),
        line(claim_id="TC0003-R1", line_id="L4", clinic_id=clinic),
    )
    df["claim_frequency"] = pd.array(columns.get("freq", [pd.NA, "7", "7", "8"]), "string")
    refs = columns.get("refs", [pd.NA, "PCN7788", "PCN7788", "PCN9900"])
    df["original_reference"] = pd.array(refs, "string")
    return df


def args(ref: reference.Reference) -> dict:
    return {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 263310001,
        "created": CREATED,
    }


def segments(text: str) -> list[str]:
    return [s for s in text.split("~\n") if s]


def both(ref, lines: pd.DataFrame, institutional: bool) -> tuple[str, dict[str, str]]:
    """The fast writer's and the oracle's build: the same bytes and rejections."""
    out = []
    for writer in (x12, oracle_837):
        build = writer.build_837i if institutional else writer.build_837p
        rejected: dict[str, str] = {}
        out.append((build(lines, rejected=rejected, **args(ref)), rejected))
    (fast, fast_rejected), (oracle, rejected) = out
    assert fast == oracle
    assert list(fast_rejected.items()) == list(rejected.items())
    return oracle, rejected


def clm_and_f8(text: str) -> dict[str, tuple[str, str | None]]:
    """Per CLM01: CLM05 and the REF*F8 control number of its 2300 (None without one)."""
    out: dict[str, list] = {}
    current = None
    for seg in segments(text):
        el = seg.split("*")
        if el[0] == "CLM":
            current = el[1]
            out[current] = [el[5], None]
        elif el[0] == "LX":
            current = None
        elif current and el[0] == "REF" and el[1] == "F8":
            out[current][1] = el[2]
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("institutional", [False, True])
def test_replacement_and_void_are_written_and_pass_pyx12(ref, institutional):
    text, rejected = both(ref, three_claims(institutional), institutional)
    assert rejected == {}
    ok, report = pyx12_validate(text)
    assert ok, report
    assert independent_checks(text) == []
    place = "13:A:" if institutional else "11:B:"
    assert clm_and_f8(text) == {
        "TC0001": (place + "1", None),
        "TC0002-R1": (place + "7", "PCN7788"),
        "TC0003-R1": (place + "8", "PCN9900"),
    }
    # REF*F8 in its place: after REF*G1, before HI
    segs = segments(text)
    at = segs.index("REF*F8*PCN7788")
    assert segs[at - 1] == "REF*G1*AUTH2" and segs[at + 1].startswith("HI*ABK")


@pytest.mark.parametrize("institutional", [False, True])
def test_without_the_columns_or_with_originals_the_bytes_do_not_change(ref, institutional):
    plain = three_claims(institutional).drop(columns=["claim_frequency", "original_reference"])
    before, _ = both(ref, plain, institutional)
    originals = three_claims(institutional, freq=["1", "", pd.NA, " 1"], refs=[pd.NA] * 4)
    assert both(ref, originals, institutional)[0] == before
    assert ":B:1*" in before or ":A:1*" in before
    assert "REF*F8" not in before


@pytest.mark.parametrize(
    ("freq", "refs", "problem"),
    [
        (
            ["1", "5", "5", "8"],
            [pd.NA, "PCN7788", "PCN7788", "PCN9900"],
            "claim_frequency is not 1",
        ),
        (["1", "7", "7", "8"], [pd.NA, pd.NA, pd.NA, "PCN9900"], "original_reference is missing"),
        (
            ["1", "7", "7", "8"],
            [pd.NA, "PCN*77", "PCN*77", "PCN9900"],
            "original_reference contains",
        ),
        (["1", "7", "7", "8"], [pd.NA, "P" * 51, "P" * 51, "PCN9900"], "must be 1-50"),
        (
            ["1", "1", "1", "8"],
            [pd.NA, "PCN7788", "PCN7788", "PCN9900"],
            "is given for an original",
        ),
    ],
)
@pytest.mark.parametrize("institutional", [False, True])
def test_a_correction_the_837_cannot_carry_holds_only_its_claim(
    ref, institutional, freq, refs, problem
):
    lines = three_claims(institutional, freq=freq, refs=refs)
    text, rejected = both(ref, lines, institutional)
    assert list(rejected) == ["TC0002-R1"]
    assert problem in rejected["TC0002-R1"]
    assert "PCN" not in rejected["TC0002-R1"]  # the value is not repeated in the message
    assert set(clm_and_f8(text)) == {"TC0001", "TC0003-R1"}
    assert pyx12_validate(text)[0]
    # the checks score runs say the same, without building
    assert x12.unwritable_claims(lines, institutional=institutional, **_refs(ref)) == rejected


def _refs(ref: reference.Reference) -> dict:
    return {"clinics": ref.clinics, "payers": ref.payers}


@pytest.mark.parametrize("institutional", [False, True])
def test_the_prepared_path_writes_the_same_bytes(ref, institutional):
    """Publish builds from the columns score checked the lines with, the corrections given
    beside them (``refs``): the same bytes as a build of the lines; a correction the 837
    cannot carry is caught there too."""
    lines = three_claims(institutional)
    expected, _ = both(ref, lines, institutional)
    plain = lines.drop(columns=["claim_frequency", "original_reference"])
    exported = prepared.export(Batch(plain, institutional, ref.clinics, ref.payers))
    columns = ["claim_id", "clinic_id", "payer_id", "claim_frequency", "original_reference"]

    def build(refs: pd.DataFrame) -> tuple[str, dict]:
        checked = prepared.Checked(
            refs,
            prepared.Held(exported),
            prepared.Pools(exported.pools),
            institutional=institutional,
            clinics=ref.clinics,
            payers=ref.payers,
        )
        writer = x12.build_837i if institutional else x12.build_837p
        rejected: dict = {}
        return writer(lines, checked=checked, rejected=rejected, **args(ref)), rejected

    assert build(lines[columns]) == (expected, {})
    bad = lines[columns].copy()
    bad["original_reference"] = pd.array([pd.NA, pd.NA, pd.NA, "PCN9900"], "string")
    text, rejected = build(bad)
    assert (
        list(rejected) == ["TC0002-R1"] and "original_reference is missing" in rejected["TC0002-R1"]
    )
    assert set(clm_and_f8(text)) == {"TC0001", "TC0003-R1"}
