"""Tests for the 837P writer (therapy_claims.x12), checked by pyx12 and by independent checks."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import reference, x12

SAMPLES = Path(__file__).resolve().parent / "data" / "x12_samples"  # valid synthetic 837s
CREATED = datetime(2024, 1, 15, 12, 30)


@pytest.fixture(scope="module")
def ref():
    return reference.load()


def line(**overrides) -> dict:
    row = {
        "claim_id": "PCN0001",
        "line_id": "L1",
        "clinic_id": "CLN01",
        "payer_id": "COM01",
        "date_of_service": pd.Timestamp("2024-01-10"),
        "patient_last_name": "Doe",
        "patient_first_name": "John",
        "patient_dob": pd.Timestamp("1980-01-01"),
        "patient_sex": "M",
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
        "cpt_code": "97110",
        "modifiers": ["GP"],
        "units": 4,
        "charge_amount": 100.0,
        "diagnosis_codes": ["M54.50", "M62.81"],
        "diagnosis_pointers": [1, 2],
        "place_of_service": "11",
        "injury_date": pd.NaT,
    }
    row.update(overrides)
    return row


# the sample payers.csv's MCD01 requires a referring provider (NM1*DN)
MCD01_REFERRER = {
    "referring_npi": "1800456786",
    "referring_last_name": "Referrer",
    "referring_first_name": "Rita",
}


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


def build(ref, df: pd.DataFrame, **kw) -> str:
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 17,
        "created": CREATED,
    }
    args.update(kw)
    return x12.build_837p(df, **args)


def segments(text: str) -> list[str]:
    return [s for s in text.split("~\n") if s]


def assert_valid(text: str) -> None:
    ok, report = pyx12_validate(text)
    assert ok, report
    assert "IK5*A" in report
    assert independent_checks(text) == []


# ---- the helper itself ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p_self.x12", "p_dep.x12"])
def test_helper_accepts_known_good_samples(name):
    ok, report = pyx12_validate(SAMPLES / name)
    assert ok, report
    assert independent_checks((SAMPLES / name).read_text()) == []
    ok_text, _ = pyx12_validate((SAMPLES / name).read_text())
    assert ok_text


def test_helper_rejects_broken_se_count():
    good = (SAMPLES / "p_self.x12").read_text()
    bad = good.replace("SE*31*0001~", "SE*32*0001~")
    assert bad != good
    ok, report = pyx12_validate(bad)
    assert not ok
    assert "SE" in report
    assert any("SE01" in p for p in independent_checks(bad))


def test_independent_checks_catch_business_errors():
    good = (SAMPLES / "p_self.x12").read_text()
    problems = independent_checks(
        good.replace("CLM*PCN0001*150*", "CLM*PCN0001*140*")
        .replace("XX*1245319599", "XX*1245319598")
        .replace("N4*SPRINGFIELD*IL*627011234", "N4*SPRINGFIELD*IL*62701")
        .replace("N3*456 OAK AVE", "N3*456 OAK AVE#")
        .replace("HL*2*1*22*0", "HL*2*9*22*0")
        .replace("GE*1*1~", "GE*1*2~")
    )
    text = "\n".join(problems)
    for expected in ("CLM02", "NPI", "ZIP", "charset", "parent", "GE02"):
        assert expected in text, (expected, problems)


def test_helper_reports_pyx12_crash_on_non_ascii(tmp_path):
    path = tmp_path / "bad.x12"
    good = (SAMPLES / "p_self.x12").read_text()
    path.write_bytes(good.replace("DOE*JOHN", "DOÉ*JOHN").encode("utf-8"))
    ok, report = pyx12_validate(path)
    assert not ok
    assert "EXCEPTION" in report


# ---- clean_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "max_len", "expected"),
    [
        ("José Müller", None, "JOSE MULLER"),
        ("O*BRIEN~", None, "O BRIEN"),
        ("12 MAIN ST:APT^4", None, "12 MAIN ST APT 4"),
        ("Straße", None, "STRASSE"),
        ("Ærø Øster Œuvre Łódź", None, "AERO OSTER OEUVRE LODZ"),
        ("  a \t b\n\nc  ", None, "A B C"),
        ("Ann 😀 Lee", None, "ANN LEE"),
        ("שלום Dana", None, "DANA"),
        ("O’Neil — Smith", None, "O'NEIL - SMITH"),
        ("a@b#c$%d|e\\f", None, "ABCD EF"),
        ("ok !\"&'()+,-./;?=", None, "OK !\"&'()+,-./;?="),
        ("ABCDEFGHIJ", 5, "ABCDE"),
        ("ABCD FGH", 5, "ABCD"),
        (None, None, ""),
        (pd.NA, 10, ""),
        (float("nan"), None, ""),
        (12345, None, "12345"),
    ],
)
def test_clean_text(raw, max_len, expected):
    assert x12.clean_text(raw, max_len) == expected


def test_money_format():
    assert [x12.money(c) for c in (15000, 8750, 8725, 5, 0, 123456789)] == [
        "150",
        "87.5",
        "87.25",
        "0.05",
        "0",
        "1234567.89",
    ]


def test_amounts_in_the_file(ref):
    """SV1/CLM amounts as R elements: no trailing zeros after the point, none before it."""
    amounts = [0.05, 0.1, 0.0, 10.0, 1234567.89, 99.99]
    df = frame(*[line(line_id=f"L{i}", charge_amount=a) for i, a in enumerate(amounts)])
    segs = segments(build(ref, df))
    assert [s.split("*")[2] for s in segs if s.startswith("SV1")] == [
        "0.05",
        "0.1",
        "0",
        "10",
        "1234567.89",
        "99.99",
    ]
    assert "CLM*PCN0001*1234678.03***11:B:1*Y*A*Y*Y" in segs


# ---- build_837p ------------------------------------------------------------------------------


def test_self_subscriber_claim_validates(ref):
    text = build(
        ref,
        frame(
            line(prior_auth_number="AUTH12345", injury_date=pd.Timestamp("2024-01-02")),
            line(
                line_id="L2",
                cpt_code="97140",
                modifiers=["GP", "59"],
                units=1,
                charge_amount=50.0,
                diagnosis_pointers=[1],
            ),
        ),
    )
    assert_valid(text)
    segs = segments(text)
    assert "SBR*P*18*GRP123******CI" in segs
    assert "NM1*IL*1*DOE*JOHN****MI*MEMBER123" in segs
    assert "DMG*D8*19800101*M" in segs
    assert "CLM*PCN0001*150***11:B:1*Y*A*Y*Y" in segs
    assert "DTP*431*D8*20240102" in segs
    assert "REF*G1*AUTH12345" in segs
    assert "HI*ABK:M5450*ABF:M6281" in segs
    assert "NM1*82*1*SMITH*ROBERT****XX*1245319599" in segs
    assert "SV1*HC:97110:GP*100*UN*4***1:2" in segs
    assert "SV1*HC:97140:GP:59*50*UN*1***1" in segs
    assert "NM1*85*2*RIVERSIDE PHYSICAL THERAPY*****XX*1500123454" in segs
    assert "N4*SPRINGFIELD*IL*627011234" in segs
    assert not any(s.startswith("HL*3") or s.startswith("PAT") for s in segs)


def test_dependent_patient_claim_validates(ref):
    text = build(
        ref,
        frame(
            line(
                subscriber_relationship="child",
                subscriber_last_name="Doe",
                subscriber_first_name="Mary",
                subscriber_dob=pd.Timestamp("1975-05-05"),
                patient_first_name="Jane",
                patient_sex="F",
                patient_dob=pd.Timestamp("2010-01-01"),
                patient_zip="62702-1234",
            )
        ),
    )
    assert_valid(text)
    segs = segments(text)
    i = segs.index("HL*2*1*22*1")
    assert segs[i : i + 10] == [
        "HL*2*1*22*1",
        "SBR*P**GRP123******CI",
        "NM1*IL*1*DOE*MARY****MI*MEMBER123",
        "NM1*PR*2*SAMPLE COMMERCIAL PPO*****PI*99COM",
        "HL*3*2*23*0",
        "PAT*19",
        "NM1*QC*1*DOE*JANE",
        "N3*456 OAK AVE",
        "N4*SPRINGFIELD*IL*627021234",
        "DMG*D8*20100101*F",
    ]


@pytest.mark.parametrize(("relationship", "pat01"), [("spouse", "01"), ("other", "G8")])
def test_other_relationships(ref, relationship, pat01):
    text = build(
        ref,
        frame(
            line(
                subscriber_relationship=relationship,
                subscriber_last_name="Roe",
                subscriber_first_name="Pat",
            )
        ),
    )
    assert_valid(text)
    assert f"PAT*{pat01}" in segments(text)


def test_several_claims_and_clinics(ref):
    df = frame(
        line(claim_id="A1"),
        line(claim_id="B1", clinic_id="CLN02", payer_id="MCR01", line_id="B1L1"),
        line(
            claim_id="A2",
            payer_id="MCD01",
            **MCD01_REFERRER,  # the sample MCD01 requires a referring provider
            subscriber_relationship="spouse",
            subscriber_last_name="Doe",
            subscriber_first_name="Ann",
        ),
        line(claim_id="B1", clinic_id="CLN02", payer_id="MCR01", line_id="B1L2", cpt_code="97112"),
        line(claim_id="A1", line_id="A1L2", cpt_code="97530", modifiers=["GP", "KX", "59", "XU"]),
    )
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    # one 2000A per clinic; claims grouped under their clinic in first-appearance order
    assert [s for s in segs if s.endswith("**20*1")] == ["HL*1**20*1", "HL*5**20*1"]
    clms = [s.split("*")[1] for s in segs if s.startswith("CLM")]
    assert clms == ["A1", "A2", "B1"]
    assert "SBR*P*18*GRP123******MB" in segs
    assert "SV1*HC:97530:GP:KX:59:XU*100*UN*4***1:2" in segs
    # lines of B1 in input order
    b1 = segs[segs.index("CLM*B1*200***11:B:1*Y*A*Y*Y") :]
    assert [s for s in b1 if s.startswith("SV1")] == [
        "SV1*HC:97110:GP*100*UN*4***1:2",
        "SV1*HC:97112:GP*100*UN*4***1:2",
    ]
    assert segs[0][35:50] == "RIVERSIDEPT01  "  # ISA06: the first claim's clinic submits


def test_pointers_and_many_diagnoses(ref):
    codes = ["M54.50", "M62.81", "M25.511", "S13.4XXA", "G89.29", "M79.1", "R26.89"]
    df = frame(
        line(diagnosis_codes=codes, diagnosis_pointers=[7, 3, 1, 4]),
        line(line_id="L2", diagnosis_codes=codes, diagnosis_pointers=[2]),
    )
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert "HI*ABK:M5450*ABF:M6281*ABF:M25511*ABF:S134XXA*ABF:G8929*ABF:M791*ABF:R2689" in segs
    assert "SV1*HC:97110:GP*100*UN*4***7:3:1:4" in segs


def test_clm02_is_exact_sum_of_lines(ref):
    df = frame(
        line(charge_amount=100.00),
        line(line_id="L2", charge_amount=50.50),
        line(line_id="L3", charge_amount=0.25),
    )
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert "CLM*PCN0001*150.75***11:B:1*Y*A*Y*Y" in segs
    assert [s.split("*")[2] for s in segs if s.startswith("SV1")] == ["100", "50.5", "0.25"]


def test_float_noise_is_summed_in_cents(ref):
    df = frame(*[line(line_id=f"L{i}", charge_amount=0.1) for i in range(3)])
    text = build(ref, df)
    assert "CLM*PCN0001*0.3***11:B:1*Y*A*Y*Y" in segments(text)
    assert independent_checks(text) == []


def test_hostile_text_is_cleaned_and_validates(ref):
    df = frame(
        line(
            patient_last_name="O*BRIEN~",
            patient_first_name="JOSÉ",
            patient_address="12 MAIN ST:APT^4 😀",
            patient_city="שלום Chicago",
            subscriber_relationship="spouse",
            subscriber_last_name="MÜLLER",
            subscriber_first_name="Zoë\tŁucja",
            group_number="grp 1",
            prior_auth_number="auth-1/a",
            rendering_last_name="مرحبا Nguyễn",
            rendering_first_name="Bảo",
        )
    )
    text = build(ref, df)
    assert_valid(text)
    text.encode("ascii")
    segs = segments(text)
    assert "NM1*QC*1*O BRIEN*JOSE" in segs
    assert "N3*12 MAIN ST APT 4" in segs
    assert "N4*CHICAGO*IL*62702" in segs
    assert "NM1*IL*1*MULLER*ZOE LUCJA****MI*MEMBER123" in segs
    assert "SBR*P**GRP 1******CI" in segs
    assert "REF*G1*AUTH-1/A" in segs
    assert "NM1*82*1*NGUYEN*BAO****XX*1245319599" in segs


def test_long_text_is_cut_to_element_length(ref):
    df = frame(line(patient_last_name="X" * 80, patient_address="Y" * 70, patient_city="Z" * 40))
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert f"NM1*IL*1*{'X' * 60}*JOHN****MI*MEMBER123" in segs
    assert f"N3*{'Y' * 55}" in segs
    assert f"N4*{'Z' * 30}*IL*62702" in segs


def test_rendering_same_as_billing_omits_2310b(ref):
    text = build(ref, frame(line(rendering_npi="1500123454")))
    assert_valid(text)
    assert not any(s.startswith("NM1*82") for s in segments(text))


def test_line_renderer_differs_gets_2420a(ref):
    df = frame(
        line(),
        line(line_id="L2", rendering_npi="1558598797", rendering_last_name="Jones"),
    )
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    nm1_82 = [i for i, s in enumerate(segs) if s.startswith("NM1*82")]
    assert [segs[i] for i in nm1_82] == [
        "NM1*82*1*SMITH*ROBERT****XX*1245319599",
        "NM1*82*1*JONES*ROBERT****XX*1558598797",
    ]
    # 2420A follows the line's 2400 DTP*472 and REF*6R (its line_id)
    assert segs[nm1_82[1] - 2 : nm1_82[1]] == ["DTP*472*D8*20240110", "REF*6R*L2"]


def test_line_place_of_service_differs(ref):
    df = frame(line(), line(line_id="L2", place_of_service="12"))
    text = build(ref, df)
    assert_valid(text)
    assert "SV1*HC:97110:GP*100*UN*4*12**1:2" in segments(text)


def test_isa_is_106_chars_and_envelope(ref):
    text = build(ref, frame(line()), interchange_control_number=123, usage="P")
    isa = text.split("\n")[0]
    assert len(isa) == 106
    assert isa == (
        "ISA*00*          *00*          *ZZ*RIVERSIDEPT01  *ZZ*CLEARHOUSE1    "
        "*240115*1230*^*00501*000000123*0*P*:~"
    )
    segs = segments(text)
    assert segs[1] == "GS*HC*RIVERSIDEPT01*CLEARHOUSE1*20240115*1230*123*X*005010X222A1"
    assert segs[-2:] == ["GE*1*123", "IEA*1*000000123"]
    assert text.endswith("~\n")
    assert not text.startswith("\ufeff")


def test_several_transaction_sets(ref, monkeypatch):
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 2)
    df = frame(*[line(claim_id=f"C{i}", clinic_id="CLN01" if i % 2 else "CLN02") for i in range(5)])
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert [s for s in segs if s.startswith("ST*")] == [
        "ST*837*0001*005010X222A1",
        "ST*837*0002*005010X222A1",
        "ST*837*0003*005010X222A1",
    ]
    assert "GE*3*17" in segs


def test_deterministic(ref):
    df = frame(line(), line(line_id="L2", claim_id="X2", clinic_id="CLN02"))
    a = build(ref, df).encode("ascii")
    b = build(ref, df.copy()).encode("ascii")
    assert a == b


def test_accepts_numpy_lists_and_plain_object_columns(ref):
    import numpy as np

    df = pd.DataFrame(
        [
            line(
                modifiers=np.array(["GP"], dtype=object),
                diagnosis_pointers=np.array([1, 2]),
                diagnosis_codes=np.array(["M54.50", "M62.81"], dtype=object),
            )
        ]
    )
    text = build(ref, df)
    assert_valid(text)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"patient_last_name": "😀 ~*"}, "patient_last_name"),
        ({"patient_first_name": "שלום"}, "patient_first_name"),
        ({"patient_address": pd.NA}, "patient_address"),
        ({"patient_zip": "6270"}, "patient_zip"),
        ({"patient_state": "Illinois"}, "patient_state"),
        (
            {"subscriber_relationship": "child", "subscriber_last_name": pd.NA},
            "subscriber_last_name",
        ),
        ({"subscriber_relationship": "cousin"}, "subscriber_relationship"),
        ({"rendering_last_name": "***"}, "rendering_last_name"),
        ({"diagnosis_codes": []}, "diagnosis_codes"),
        ({"diagnosis_codes": [f"M{i:02d}" for i in range(13)]}, "diagnosis_codes"),
        ({"diagnosis_pointers": [3]}, "diagnosis_pointers"),
        ({"diagnosis_pointers": [1, 2, 1, 2, 1]}, "diagnosis_pointers"),
        ({"modifiers": ["GP", "59", "KX", "XU", "CQ"]}, "modifiers"),
        ({"units": 0}, "units"),
        ({"charge_amount": -5.0}, "charge_amount"),
        ({"claim_id": "pcn*1"}, "claim_id"),
        ({"claim_id": "X" * 21}, "claim_id"),
        ({"clinic_id": "NOPE"}, "clinic_id"),
        ({"payer_id": "NOPE"}, "payer_id"),
        ({"rendering_npi": "1245319598"}, "rendering_npi"),
        ({"patient_sex": "X"}, "patient_sex"),
        ({"patient_dob": pd.NaT}, "patient_dob"),
        ({"member_id": "~"}, "member_id"),
        ({"member_id": "AB*12"}, "member_id"),
        ({"member_id": "M" * 81}, "member_id"),
        ({"group_number": "G:1"}, "group_number"),
        ({"prior_auth_number": "AUTH~1"}, "prior_auth_number"),
        ({"prior_auth_number": "A" * 51}, "prior_auth_number"),
        ({"cpt_code": "9711"}, "cpt_code"),
        ({"place_of_service": "1"}, "place_of_service"),
    ],
)
def test_invalid_input_raises_value_error_naming_claim_and_field(ref, overrides, field):
    with pytest.raises(ValueError) as info:
        build(ref, frame(line(**overrides)))
    message = str(info.value)
    assert field in message
    if "claim_id" not in overrides:
        assert "PCN0001" in message


def test_phi_is_not_in_error_messages(ref):
    with pytest.raises(ValueError) as info:
        build(ref, frame(line(patient_zip="99")))
    assert "99" not in str(info.value).replace("PCN0001", "")


def test_envelope_arguments_are_checked(ref):
    with pytest.raises(ValueError):
        build(ref, frame(line()), interchange_control_number=0)
    with pytest.raises(ValueError):
        build(ref, frame(line()), usage="X")
    with pytest.raises(ValueError):
        build(ref, frame(line()), receiver_id="A" * 16)
    with pytest.raises(ValueError):
        build(ref, frame(line()).iloc[:0])


# ---- 837I (005010X223A2) ---------------------------------------------------------------------


def inst_line(**overrides) -> dict:
    base = {"clinic_id": "CLN03", "discipline": "PT", "claim_id": "ICN0001"}
    base.update(overrides)
    return line(**base)


def build_i(ref, df: pd.DataFrame, **kw) -> str:
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 18,
        "created": CREATED,
    }
    args.update(kw)
    return x12.build_837i(df, **args)


def test_helper_accepts_the_837i_sample():
    ok, report = pyx12_validate(SAMPLES / "i_therapy.x12")
    assert ok, report
    assert independent_checks((SAMPLES / "i_therapy.x12").read_text()) == []


def test_837i_claim_validates(ref):
    df = frame(
        inst_line(prior_auth_number="AUTH12345", diagnosis_codes=["M54.50", "M62.81", "R26.89"]),
        inst_line(
            line_id="L2",
            cpt_code="97140",
            modifiers=["GP", "59"],
            units=2,
            date_of_service=pd.Timestamp("2024-01-17"),
            rendering_npi="1558598797",
            rendering_last_name="Jones",
            rendering_first_name="Mary",
        ),
        inst_line(
            line_id="L3",
            discipline="OT",
            cpt_code="97535",
            modifiers=["GO"],
            units=1,
            charge_amount=45.5,
        ),
        inst_line(line_id="L4", discipline="SLP", cpt_code="92507", modifiers=["GN"], units=1),
    )
    text = build_i(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert segs[1] == "GS*HC*LAKEVIEWHOSP03*CLEARHOUSE1*20240115*1230*18*X*005010X223A2"
    assert segs[2] == "ST*837*0001*005010X223A2"
    i = segs.index("CLM*ICN0001*345.5***13:A:1**A*Y*Y")
    assert segs[i : i + 7] == [
        "CLM*ICN0001*345.5***13:A:1**A*Y*Y",
        "DTP*434*RD8*20240110-20240117",
        "CL1*3*1*01",
        "REF*G1*AUTH12345",
        "HI*ABK:M5450",
        "HI*ABF:M6281*ABF:R2689",
        "NM1*71*1*SMITH*ROBERT****XX*1245319599",
    ]
    assert [s for s in segs if s.startswith("SV2")] == [
        "SV2*0420*HC:97110:GP*100*UN*4",
        "SV2*0420*HC:97140:GP:59*100*UN*2",
        "SV2*0430*HC:97535:GO*45.5*UN*1",
        "SV2*0440*HC:92507:GN*100*UN*1",
    ]
    assert [s for s in segs if s.startswith("DTP*472")] == [
        "DTP*472*D8*20240110",
        "DTP*472*D8*20240117",
        "DTP*472*D8*20240110",
        "DTP*472*D8*20240110",
    ]
    assert [s for s in segs if s.startswith("REF*6R")] == [f"REF*6R*L{i}" for i in range(1, 5)]
    # 2420C only for the line whose clinician is not the attending one, right after its DTP
    # and REF*6R
    j = segs.index("NM1*82*1*JONES*MARY****XX*1558598797")
    assert segs[j - 2 : j] == ["DTP*472*D8*20240117", "REF*6R*L2"]
    assert sum(s.startswith("NM1*82") for s in segs) == 1
    assert not any(s.startswith(("SV1", "PRV*PE", "DTP*431")) for s in segs)
    assert "NM1*85*2*LAKEVIEW COMMUNITY HOSPITAL OUTPATIENT REHAB*****XX*1700890126" in segs
    assert "PRV*BI*PXC*282N00000X" in segs


def test_837i_dependent_patient(ref):
    df = frame(
        inst_line(
            subscriber_relationship="child",
            subscriber_last_name="Doe",
            subscriber_first_name="Mary",
            patient_first_name="Jane",
            patient_sex="F",
        )
    )
    text = build_i(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert "SBR*P**GRP123******CI" in segs and "HL*3*2*23*0" in segs and "PAT*19" in segs
    assert segs[segs.index("PAT*19") + 1] == "NM1*QC*1*DOE*JANE"


def test_837i_hostile_text(ref):
    df = frame(
        inst_line(
            patient_last_name="O*BRIEN~",
            patient_first_name="JOSÉ",
            patient_address="12 MAIN ST:APT^4 😀",
            patient_city="שלום Chicago",
            rendering_last_name="MÜLLER",
        )
    )
    text = build_i(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert "NM1*IL*1*O BRIEN*JOSE****MI*MEMBER123" in segs
    assert "N3*12 MAIN ST APT 4" in segs and "N4*CHICAGO*IL*62702" in segs
    assert "NM1*71*1*MULLER*ROBERT****XX*1245319599" in segs


def test_837i_many_lines_one_claim(ref):
    # 837I allows 999 lines per claim: 60 lines stay one claim
    df = frame(*[inst_line(line_id=f"L{i}", units=1, charge_amount=10.0) for i in range(60)])
    text = build_i(ref, df)
    assert_valid(text)
    assert "CLM*ICN0001*600***13:A:1**A*Y*Y" in segments(text)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"modifiers": []}, "modifiers"),  # 0420 needs GP
        ({"modifiers": ["GP", "GO"]}, "modifiers"),
        ({"discipline": "OT"}, "modifiers"),  # GP on an OT (0430) line
        ({"discipline": "CHIRO"}, "discipline"),
        ({"clinic_id": "CLN01"}, "claim_type"),  # a professional clinic cannot bill 837I
        ({"rendering_npi": "1245319598"}, "rendering_npi"),
        ({"patient_last_name": "~~"}, "patient_last_name"),
    ],
)
def test_837i_invalid_input_raises(ref, overrides, field):
    with pytest.raises(ValueError) as info:
        build_i(ref, frame(inst_line(**overrides)))
    assert field in str(info.value)


def test_837i_type_of_bill_from_the_clinic(ref):
    clinics = ref.clinics.copy()
    clinics.loc["CLN03", "type_of_bill"] = "0137"
    text = build_i(ref, frame(inst_line()), clinics=clinics)
    assert_valid(text)
    assert "CLM*ICN0001*100***13:A:7**A*Y*Y" in segments(text)
    clinics.loc["CLN03", "type_of_bill"] = ""
    rejected: dict = {}
    assert build_i(ref, frame(inst_line()), clinics=clinics, rejected=rejected) == ""
    assert "type_of_bill" in rejected["ICN0001"]


def test_837p_refuses_institutional_clinic(ref):
    with pytest.raises(ValueError, match="claim_type"):
        build(ref, frame(inst_line()))


def test_placed_records_st02_per_claim(ref, monkeypatch):
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 2)
    df = frame(*[line(claim_id=f"C{i}", line_id=f"L{i}") for i in range(5)])
    placed: dict = {}
    text = build(ref, df, placed=placed)
    assert_valid(text)
    assert placed == {
        "C0": "0001",
        "C1": "0001",
        "C2": "0002",
        "C3": "0002",
        "C4": "0003",
    }


def test_837p_over_50_lines_is_refused(ref):
    df = frame(*[line(line_id=f"L{i}", units=1) for i in range(51)])
    with pytest.raises(ValueError, match="exceed 50"):
        build(ref, df)
    df50 = frame(*[line(line_id=f"L{i}", units=1) for i in range(50)])
    assert_valid(build(ref, df50))


def test_independent_checks_on_837i_catch_errors():
    good = (SAMPLES / "i_therapy.x12").read_text()
    problems = independent_checks(
        good.replace("CLM*PCN0002*300*", "CLM*PCN0002*290*")
        .replace("NM1*71*1*JONES*MARY****XX*1245319599", "NM1*71*1*JONES*MARY****XX*1245319598")
        .replace("SV2*0420*HC:97110:GP*200*UN*4", "SV2*042*HC:97110:GP*200*UN*4***1")
    )
    text = "\n".join(problems)
    for expected in ("CLM02", "NPI", "revenue code", "pointers"):
        assert expected in text, (expected, problems)


def test_rejected_claims_keep_their_place_in_the_transaction_sets(ref, monkeypatch):
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 2)
    df = frame(
        line(claim_id="C1", line_id="L1"),
        line(claim_id="C2", line_id="L2", patient_last_name="~*:^"),
        line(claim_id="C3", line_id="L3", patient_first_name="José"),
        line(claim_id="C4", line_id="L4", clinic_id="NOPE"),
        line(claim_id="C5", line_id="L5"),
    )
    rejected: dict[str, str] = {}
    placed: dict[str, str] = {}
    text = build(ref, df, rejected=rejected, placed=placed)
    assert_valid(text)
    # claims go clinic by clinic (C1 C2 C3 C5, then C4) and the sets take them two by two,
    # rejected ones included; the third set, left empty, is dropped
    assert list(rejected) == ["C2", "C4"]
    assert rejected["C2"] == (
        "claim C2: patient_last_name is empty after removing characters X12 cannot carry"
    )
    assert rejected["C4"] == "claim C4: clinic_id is not in clinics.csv"
    assert placed == {"C1": "0001", "C3": "0002", "C5": "0002"}
    assert "NM1*IL*1*DOE*JOSE****MI*MEMBER123" in segments(text)


@pytest.mark.parametrize("institutional", [False, True])
@pytest.mark.parametrize(
    "first, second", [(17, 263320004), (263320009, 1), (5, 5), (999_999_999, 1)]
)
def test_renumber_gives_the_bytes_built_with_that_number(
    ref, monkeypatch, institutional, first, second
):
    """Publish builds claim files under provisional numbers and renumbers them in order: the
    result is the same bytes as building with the final number, in ISA13, GS06, every BHT03,
    GE02 and IEA02, and nothing else moves (several transaction sets, so several BHTs), as
    text or as bytes."""
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 2)
    make, builder = (inst_line, build_i) if institutional else (line, build)
    df = frame(*[make(line_id=f"L{i}", claim_id=f"C{i}") for i in range(5)])
    built_first = builder(ref, df, interchange_control_number=first)
    built_second = builder(ref, df, interchange_control_number=second)
    assert x12.renumber(built_first, second) == built_second
    assert x12.renumber(built_second, first) == built_first
    assert x12.renumber(built_first.encode("ascii"), second) == built_second.encode("ascii")
    assert_valid(x12.renumber(built_first, second))
    bht = [s for s in segments(built_second) if s.startswith("BHT*")]
    assert len(bht) == 3 and all(s.split("*")[3].startswith(str(second)) for s in bht)


def test_the_content_digest_is_the_file_built_under_the_provisional_number(ref):
    """Publish numbers files by their content: the file with its control numbers normalised.
    A file built under any number has the digest of its bytes built under the provisional
    one; other content has another digest."""
    from therapy_claims.x12.envelope import PROVISIONAL, content_digest

    df = frame(line())
    provisional = build(ref, df, interchange_control_number=PROVISIONAL)
    expected = hashlib.sha256(provisional.encode("ascii")).hexdigest()
    for number in (1, 263320004, PROVISIONAL):
        assert content_digest(build(ref, df, interchange_control_number=number)) == expected
    other = build(ref, frame(line(charge_amount=99.0)), interchange_control_number=1)
    assert content_digest(other) != expected


def test_renumber_checks_the_number(ref):
    with pytest.raises(ValueError, match="interchange_control_number"):
        x12.renumber(build(ref, frame(line())), 0)


# ---- the column-wise writer: a batch writes each claim as it would be written alone --------


def claim_segments(text: str) -> dict[str, list[str]]:
    """Per CLM01, the claim's segments from its 2000B subscriber loop to its last line, without
    the HL segments (their numbers depend on the claims before it)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for seg in segments(text):
        level = seg.split("*")[3] if seg.startswith("HL*") else None
        if level in ("20", "22") or seg.startswith("SE*"):
            current = [] if level == "22" else None  # a subscriber loop starts a claim
        elif current is not None and level is None:
            current.append(seg)
            if seg.startswith("CLM*"):
                out[seg.split("*")[1]] = current
    return out


def varied_lines(institutional: bool = False) -> pd.DataFrame:
    """Claims that share some values and differ in others: dependants, repeated and differing
    lines, a line renderer, dirty and clean text, repeated dates and charges."""
    make = inst_line if institutional else line
    rows = []
    for c in range(12):
        claim = {
            "claim_id": f"C{c:02d}",
            "clinic_id": ("CLN03" if institutional else ["CLN01", "CLN02"][c % 2]),
            "payer_id": ["COM01", "MCR01", "MCD01"][c % 3],
            "patient_last_name": ["Doe", "García", "o'brien", "DOE"][c % 4],
            "patient_address": ["456 Oak Ave", "12 Elm St #4", "456 OAK AVE"][c % 3],
            "patient_zip": ["62702", "62702-1234", " 62704 "][c % 3],
            "patient_dob": pd.Timestamp("1980-01-01") + pd.Timedelta(days=c % 5),
            "member_id": f"M{c % 7}",
            "prior_auth_number": pd.NA if c % 4 else f"AUTH{c}",
            **(MCD01_REFERRER if c % 3 == 2 else {}),
            # (Medicare 837I claims carry the date treatment started: occurrence codes)
            "plan_of_care_start": pd.Timestamp("2024-01-02") + pd.Timedelta(days=c % 2),
        }
        if c % 3 == 1:
            claim |= {
                "subscriber_relationship": "child",
                "subscriber_last_name": "Doe",
                "subscriber_first_name": ["Mary", "Ann"][c % 2],
            }
        for i in range(1 + c % 4):
            rows.append(
                make(
                    **claim,
                    line_id=f"C{c}L{i}",
                    cpt_code=["97110", "97140", "97530"][i % 3],
                    units=1 + (c + i) % 3,
                    charge_amount=[100.0, 50.5, 75.25][(c + i) % 3],
                    date_of_service=pd.Timestamp("2024-01-10") + pd.Timedelta(days=i % 2),
                    **(
                        {"rendering_npi": "1881234565", "rendering_last_name": "Jones"}
                        if i == 2
                        else {}
                    ),
                )
            )
    return frame(*rows)


@pytest.mark.parametrize("institutional", [False, True])
def test_a_batch_writes_each_claim_as_alone(ref, institutional):
    """The writer works per column and per distinct value; each claim's segments must still be
    exactly those it gets when written on its own."""
    builder = build_i if institutional else build
    df = varied_lines(institutional)
    text = builder(ref, df)
    assert_valid(text)
    together = claim_segments(text)
    assert len(together) == df["claim_id"].nunique()
    for claim_id, part in df.groupby("claim_id", sort=False):
        alone = claim_segments(builder(ref, part))
        assert together[claim_id] == alone[claim_id], claim_id


def test_dirty_and_clean_values_of_one_column_each_keep_their_text(ref):
    df = frame(
        line(claim_id="A", patient_address="12 Elm St #4", patient_last_name="o'brien"),
        line(claim_id="B", patient_address="12 ELM ST 4", patient_last_name="OBRIEN"),
        line(claim_id="C", patient_address="  9   Pine  Rd ", patient_last_name="Núñez"),
    )
    text = build(ref, df)
    assert_valid(text)
    segs = segments(text)
    assert [s for s in segs if s.startswith("N3*")][1:] == [
        "N3*12 ELM ST 4",
        "N3*12 ELM ST 4",
        "N3*9 PINE RD",
    ]
    assert [s.split("*")[3] for s in segs if s.startswith("NM1*IL")] == [
        "O'BRIEN",
        "OBRIEN",
        "NUNEZ",
    ]


@pytest.mark.parametrize(
    ("zip_code", "n4"),
    [("62701-", "62701"), (" 62701 ", "62701"), ("62-701", "62701"), ("62701-0001", "627010001")],
)
def test_patient_zip_keeps_its_digits(ref, zip_code, n4):
    segs = segments(build(ref, frame(line(patient_zip=zip_code))))
    assert f"N4*SPRINGFIELD*IL*{n4}" in segs


@pytest.mark.parametrize("zip_code", ["627011", "6270112345", "", "ABCDE"])
def test_patient_zip_of_other_lengths_is_refused(ref, zip_code):
    rejected: dict[str, str] = {}
    assert build(ref, frame(line(patient_zip=zip_code)), rejected=rejected) == ""
    assert rejected == {"PCN0001": "claim PCN0001: patient_zip is not 5 or 9 digits"}


def test_dates_as_text_and_with_a_time_zone(ref):
    """D8 dates are the calendar date as given: text dates are parsed, a zoned timestamp keeps
    its local date, a time of day is dropped."""
    df = frame(
        line(claim_id="A", patient_dob=pd.Timestamp("1980-01-01 23:30")),
        line(claim_id="B", patient_dob=pd.Timestamp("1899-12-31")),
    )
    segs = segments(build(ref, df))
    assert [s for s in segs if s.startswith("DMG")] == ["DMG*D8*19800101*M", "DMG*D8*18991231*M"]
    text_dates = frame(line()).astype({"date_of_service": object, "patient_dob": object})
    text_dates["date_of_service"] = ["2024-01-10"]
    text_dates["patient_dob"] = ["1980-01-01"]
    assert build(ref, text_dates) == build(ref, frame(line()))
    zoned = frame(line())
    zoned["patient_dob"] = pd.Series([pd.Timestamp("1980-01-01 23:30", tz="America/Chicago")])
    assert "DMG*D8*19800101*M" in segments(build(ref, zoned))


def test_modifiers_as_an_arrow_list_column(ref):
    """The pipeline may hand over ``list<string>`` columns (pandas ArrowDtype): the same file,
    a missing list being an empty one."""
    import pyarrow as pa

    rows = [
        line(claim_id="A", modifiers=["GP"]),
        line(claim_id="A", line_id="L2", modifiers=["GP", "59"], cpt_code="97140"),
        line(claim_id="B", modifiers=[]),
        line(claim_id="C", modifiers=None, cpt_code="97161"),
        line(claim_id="D", modifiers=["GP", "G\x1fP"]),
    ]
    as_lists = frame(*rows)
    as_arrow = as_lists.copy()
    cells = [None if m is None else list(m) for m in as_lists["modifiers"]]
    as_arrow["modifiers"] = pd.Series(
        pd.arrays.ArrowExtensionArray(pa.array(cells, type=pa.list_(pa.string())))
    )
    rejected_lists: dict[str, str] = {}
    rejected_arrow: dict[str, str] = {}
    text = build(ref, as_arrow, rejected=rejected_arrow)
    assert text == build(ref, as_lists, rejected=rejected_lists)
    assert (
        rejected_arrow
        == rejected_lists
        == {
            "D": "claim D: cpt_code/modifiers must be a 5-character code and 0-4 two-character "
            "modifiers"
        }
    )
    segs = segments(text)
    assert "SV1*HC:97140:GP:59*100*UN*4***1:2" in segs
    assert "SV1*HC:97161*100*UN*4***1:2" in segs


def test_integer_claim_ids_in_an_object_column(ref):
    df = frame(line(), line(line_id="L2"))
    df["claim_id"] = pd.Series([101, 101], dtype=object)
    text = build(ref, df)
    assert_valid(text)
    assert "CLM*101*200***11:B:1*Y*A*Y*Y" in segments(text)


def test_claim_ids_that_cannot_be_sent_are_refused_even_unencodable_ones(ref):
    df = frame(line(claim_id="A"), line(claim_id="B", line_id="L2"), line(claim_id="C"))
    df["claim_id"] = pd.Series(["A", "B\ud800", "c*1"], dtype=object)
    rejected: dict[str, str] = {}
    text = build(ref, df, rejected=rejected)
    assert_valid(text)
    assert [s.split("*")[1] for s in segments(text) if s.startswith("CLM*")] == ["A"]
    assert list(rejected) == ["B\ud800", "c*1"]
    assert all("claim_id must be" in m for m in rejected.values())


# ---- REF*6R: each line's line item control number (its line_id) ----------------------------

LINE_ID_BAD = (
    "line_id must be 1-50 characters of A-Z 0-9 and X12 basic punctuation (REF*6R carries it as is)"
)
LINE_ID_REPEATED = "line_id repeats another line's of the claim (REF*6R must be unique)"


def ref_6r(text: str) -> list[str]:
    return [s for s in segments(text) if s.startswith("REF*6R*")]


def test_each_line_carries_its_line_id_as_ref_6r_after_its_dtp(ref):
    longest = "L-" + "9" * 48  # REF02 is AN 1-50
    df = frame(
        line(line_id="A-1/2 (B)"),
        line(line_id=longest, cpt_code="97112"),
        line(claim_id="PCN0002", line_id="A-1/2 (B)"),  # unique within its claim is enough
    )
    text = build(ref, df)
    assert_valid(text)
    assert ref_6r(text) == ["REF*6R*A-1/2 (B)", f"REF*6R*{longest}", "REF*6R*A-1/2 (B)"]
    segs = segments(text)
    for at in (i for i, s in enumerate(segs) if s.startswith("REF*6R*")):
        assert segs[at - 1].startswith("DTP*472*D8*") and segs[at - 3].startswith("LX*")
    # SE01 counts them (ST to SE inclusive)
    se = next(s for s in segs if s.startswith("SE*"))
    assert int(se.split("*")[1]) == segs.index(se) - segs.index("ST*837*0001*005010X222A1") + 1


def test_integer_line_ids_go_out_as_their_digits(ref):
    df = frame(line(line_id=7), line(line_id=12, cpt_code="97112"))
    assert df["line_id"].dtype.kind == "i"
    text = build(ref, df)
    assert_valid(text)
    assert ref_6r(text) == ["REF*6R*7", "REF*6R*12"]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["L1", "l2"], LINE_ID_BAD),  # lower case: cleaning would change it
        (["L1", "L" * 51], LINE_ID_BAD),  # longer than REF02's 50
        (["L1*2", "L2"], LINE_ID_BAD),  # an element separator
        (["L1", "L#2"], LINE_ID_BAD),  # outside the basic character set
        (["L1", ""], LINE_ID_BAD),
        (["L1", pd.NA], LINE_ID_BAD),
        (["L1", "L1"], LINE_ID_REPEATED),  # an 835 line could not be told apart
    ],
)
@pytest.mark.parametrize("institutional", [False, True])
def test_a_line_id_ref_6r_cannot_carry_as_is_holds_its_claim(ref, ids, message, institutional):
    make = inst_line if institutional else line
    other = "ICN0002" if institutional else "PCN0002"
    held = "ICN0001" if institutional else "PCN0001"
    df = frame(
        make(line_id=ids[0]),
        make(line_id=ids[1], cpt_code="97112"),
        make(claim_id=other, line_id="L9"),
    )
    rejected: dict[str, str] = {}
    text = (build_i if institutional else build)(ref, df, rejected=rejected)
    assert rejected == {held: f"claim {held}: {message}"}
    # score holds the same claim for the same reason (CLAIM_DATA_INVALID)
    checks = {"clinics": ref.clinics, "payers": ref.payers}
    assert x12.unwritable_claims(df, institutional=institutional, **checks) == rejected
    assert_valid(text)
    assert ref_6r(text) == ["REF*6R*L9"] and held not in text


def test_a_line_id_problem_comes_after_the_lines_earlier_checks(ref):
    """The line's own SV1 values are met first (a writer going through the line), then its
    REF*6R; an earlier line's REF*6R comes before a later line's charge."""
    rejected: dict[str, str] = {}
    build(ref, frame(line(line_id="l1", units=0), line(line_id="L2")), rejected=rejected)
    assert rejected == {"PCN0001": "claim PCN0001: units is not a positive whole number"}
    rejected = {}
    df = frame(line(line_id="l1"), line(line_id="L2", charge_amount=-1.0))
    build(ref, df, rejected=rejected)
    assert rejected == {"PCN0001": f"claim PCN0001: {LINE_ID_BAD}"}
