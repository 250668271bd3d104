"""Text in claim files (issue 15): X12 delimiters and control characters in names and
addresses become a space (``O'BRIEN*SMITH`` stays two words), the column-wise cleaning equals
the per-value one and the oracle's plain copy, and a value cut to its element's size gets a
``TEXT_TRUNCATED`` warning (lengths only where the value is PHI). Every 837 written here is
validated by pyx12."""

from __future__ import annotations

import logging
import random
from datetime import date
from pathlib import Path

import numpy as np
import oracle_837
import pandas as pd
import pyarrow as pa
import pytest
from factories import row, write_csv
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import pipeline, reference, storage, x12
from therapy_claims.x12.columns import cleaned

LAST_61 = ("QUIXWELLMONTGOMERYFARNSWORTHBELLINGHAMSHIRE" * 2)[:61]
LAST_60 = LAST_61[:60]


@pytest.fixture(scope="module")
def ref():
    return reference.load()


# ---- clean_text: hand-written expectations ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'BRIEN*SMITH", "O'BRIEN SMITH"),
        ("O'Brien*Smith", "O'BRIEN SMITH"),
        ("A~B^C:D", "A B C D"),
        ("SMITH|JONES", "SMITH JONES"),
        ("*~O'BRIEN~*", "O'BRIEN"),  # breaks at the ends are stripped
        ("A * B", "A B"),  # a break next to a space: one space
        ("A**::~~B", "A B"),
        ("12 MAIN ST\tAPT 4\nREAR", "12 MAIN ST APT 4 REAR"),
        ("ANN\r\nLEE", "ANN LEE"),
        ("ANN\x00LEE", "ANN LEE"),  # NUL
        ("ANN\x1bLEE\x07", "ANN LEE"),  # ESC, BEL (C0)
        ("ANN\x7fLEE", "ANN LEE"),  # DEL
        ("ANN\x85LEE\x9fX", "ANN LEE X"),  # C1: NEL, APC
        ("ANN\u00a0LEE", "ANN LEE"),  # no-break space
        ("ANN\uff0aLEE", "ANN LEE"),  # full-width asterisk: NFKD makes it a delimiter
        ("José Müller*Ñúñez", "JOSE MULLER NUNEZ"),
        ("Straße:Øster", "STRASSE OSTER"),
        ("O’Brien—Smith", "O'BRIEN-SMITH"),
        ("Ann 😀 Lee", "ANN LEE"),  # outside the basic set and no ASCII form: dropped
        ("12 Elm St #4", "12 ELM ST 4"),  # # is not a delimiter: dropped, as before
        ("A@B", "AB"),
        ("ANN\u200bLEE", "ANNLEE"),  # a zero-width space is a format character: dropped
        ("مرحبا Nguyễn", "NGUYEN"),
        ("*~^:|\t\x00", ""),
    ],
)
def test_clean_text(raw, expected):
    assert x12.clean_text(raw) == expected
    assert oracle_837.clean_text(raw) == expected


def test_a_cut_ends_without_a_space():
    assert x12.clean_text("ABCD*EFGH", 5) == "ABCD"
    assert x12.clean_text("ABCDE*FGH", 6) == "ABCDE"
    assert x12.clean_text("A" * 61, 60) == "A" * 60
    assert x12.clean_text("A" * 60, 60) == "A" * 60


# ---- the column path, per value and against the oracle ---------------------------------------

# a hostile alphabet: basic characters, delimiters, controls, whitespace, letters with and
# without an ASCII form, compatibility forms, emoji, format characters
ALPHABET = (
    list("ABCxyz019 !\"&'()+,-./;?=*:^~|#@%$_[]{}<>\\`")
    + [chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))]
    + list("\u00a0\u2028\u2029\u3000\u200b\u200d\ufeff\u00ad")
    + list("éÉñÑüßẞæÆøØœŒłŁđĐÞþıħŧ‘’“”–—‐−ﬁＡ＊：～＾｜")
    + ["😀", "ש", "م", "\u0301", "\u0308", "\ud800"]  # a lone surrogate too
)


def hostile_strings(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        size = rnd.choice([0, 1, 2, 5, 20, 40, 61, 70])
        out.append("".join(rnd.choice(ALPHABET) for _ in range(size)))
    # repeats, already clean values and values just at / over a limit
    out += out[:50] + ["O'BRIEN SMITH", "A" * 60, "A" * 61, "A" * 59 + " B", " " * 3]
    return out


def test_writer_cleaning_equals_the_oracle_copy():
    for value in hostile_strings(3000, seed=15):
        for max_len in (None, 5, 35, 60):
            assert x12.clean_text(value, max_len) == oracle_837.clean_text(value, max_len), (
                repr(value),
                max_len,
            )


def column_forms(values: list[str]) -> dict[str, object]:
    """The same values as each column type the writer takes (surrogates cannot go to Arrow)."""
    encodable = [v for v in values if "\ud800" not in v]
    with_na = [*encodable, None]
    return {
        "object": np.array([*values, None], dtype=object),
        "pandas string": pd.Series(with_na, dtype="string"),
        "arrow": pa.array(with_na, pa.string()),
    }


@pytest.mark.parametrize("max_len", [None, 1, 5, 35, 60])
def test_column_cleaning_equals_clean_text_per_value(max_len):
    for form, column in column_forms(hostile_strings(2000, seed=max_len or 0)).items():
        values = column.tolist() if hasattr(column, "tolist") else column.to_pylist()
        texts = cleaned(column, max_len)
        got = texts.texts[texts.codes]
        expected = [x12.clean_text(v, max_len) for v in values]
        assert got.tolist() == expected, form
        # the values cut are exactly those whose text is longer than max_len, with it whole
        uncut = texts.uncut
        for i, v in enumerate(values):
            whole = x12.clean_text(v)
            was_cut = max_len is not None and len(whole) > max_len
            key = int(texts.codes[i])
            assert (key in uncut) == was_cut, (form, repr(v))
            if was_cut:
                assert uncut[key] == whole


# ---- claim files carry the words apart ---------------------------------------------------------

CREATED = pd.Timestamp("2024-01-15 12:30").to_pydatetime()


def line(**overrides) -> dict:
    base = {
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
        "group_number": "GRP123",
        "prior_auth_number": pd.NA,
        "rendering_npi": "1245319599",
        "rendering_last_name": "Smith",
        "rendering_first_name": "Robert",
        "cpt_code": "97110",
        "modifiers": ["GP"],
        "units": 4,
        "charge_amount": 100.0,
        "diagnosis_codes": ["M54.50"],
        "diagnosis_pointers": [1],
        "place_of_service": "11",
        "discipline": "PT",
    }
    base.update(overrides)
    return base


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in df.columns:
        if df[c].dtype == object and c not in (
            "modifiers",
            "diagnosis_codes",
            "diagnosis_pointers",
        ):
            df[c] = df[c].astype("string")
    return df


def write(ref, df: pd.DataFrame, institutional: bool = False, clinics=None) -> str:
    build = x12.build_837i if institutional else x12.build_837p
    text = build(
        df,
        clinics=ref.clinics if clinics is None else clinics,
        payers=ref.payers,
        receiver_id="CLEARHOUSE1",
        receiver_name="Sample Clearinghouse",
        interchange_control_number=15,
        created=CREATED,
        rejected={},  # claims that cannot be written are left out, not raised
    )
    ok, report = pyx12_validate(text)
    assert ok, report
    assert independent_checks(text) == []
    return text


def segments(text: str) -> list[str]:
    return [s for s in text.split("~\n") if s]


def test_837p_keeps_the_words_apart(ref):
    df = frame(
        line(
            patient_last_name="O'BRIEN*SMITH",
            patient_first_name="Mary\tAnn",
            patient_address="12 Main St:Apt^4~Rear\x00",
            patient_city="Spring\x7ffield|North",
            rendering_last_name="Nguyễn*Tran",
        )
    )
    segs = segments(write(ref, df))
    assert "NM1*IL*1*O'BRIEN SMITH*MARY ANN****MI*MEMBER123" in segs
    assert "N3*12 MAIN ST APT 4 REAR" in segs
    assert "N4*SPRING FIELD NORTH*IL*62702" in segs
    assert "NM1*82*1*NGUYEN TRAN*ROBERT****XX*1245319599" in segs


def test_837i_keeps_the_words_apart(ref):
    df = frame(
        line(
            claim_id="ICN0001",
            clinic_id="CLN03",
            patient_last_name="O'BRIEN*SMITH",
            patient_address="A~B^C:D",
            rendering_last_name="Müller\nSchmidt",
        )
    )
    segs = segments(write(ref, df, institutional=True))
    assert "NM1*IL*1*O'BRIEN SMITH*JOHN****MI*MEMBER123" in segs
    assert "N3*A B C D" in segs
    assert "NM1*71*1*MULLER SCHMIDT*ROBERT****XX*1245319599" in segs


# ---- which values the writer cut --------------------------------------------------------------


def cuts(ref, df: pd.DataFrame, institutional: bool = False, clinics=None) -> pd.DataFrame:
    return x12.text_truncations(
        df,
        institutional=institutional,
        clinics=ref.clinics if clinics is None else clinics,
        payers=ref.payers,
    )


def test_a_61_character_last_name_is_cut_and_listed(ref):
    df = frame(line(patient_last_name=LAST_61.lower()))
    segs = segments(write(ref, df))
    assert f"NM1*IL*1*{LAST_60}*JOHN****MI*MEMBER123" in segs
    got = cuts(ref, df)
    assert got.to_dict("records") == [
        {
            "claim_id": "PCN0001",
            "row": -1,
            "field": "patient_last_name",
            "element": "NM103 (2010BA)",
            "max_len": 60,
            "before": LAST_61,
            "after": LAST_60,
        }
    ]


def test_60_characters_fit(ref):
    df = frame(
        line(
            patient_last_name=LAST_60,
            patient_first_name="B" * 35,
            patient_address="C" * 55,
            patient_city="D" * 30,
            rendering_last_name="E" * 60,
            rendering_first_name="F" * 35,
        )
    )
    segs = segments(write(ref, df))
    assert f"NM1*IL*1*{LAST_60}*{'B' * 35}****MI*MEMBER123" in segs
    assert cuts(ref, df).empty


def test_a_value_cleaned_down_to_its_size_is_not_cut(ref):
    df = frame(line(patient_last_name="*" + LAST_60 + "~\t", patient_city="😀" * 5 + "D" * 30))
    write(ref, df)
    assert cuts(ref, df).empty


def test_every_written_cut_is_listed_and_only_those(ref):
    long_first = "Annabelle Genevieve Maximiliana Rosalind"  # 40 characters: NM104 holds 35
    df = frame(
        line(
            claim_id="A",
            line_id="A1",
            patient_address="1234 " + "Long Street Name " * 4,  # 73 characters
            patient_city="Llanfairpwllgwyngyllgogerychwyrndrob",  # 36 characters
            rendering_last_name="R" * 61,  # the claim's renderer: 2310B
        ),
        line(claim_id="A", line_id="A2", rendering_npi="1700345675",
             rendering_last_name="S" * 62, rendering_first_name=long_first),  # 2420A
        line(claim_id="B", line_id="B1", subscriber_relationship="spouse",
             subscriber_last_name="T" * 61, subscriber_first_name="Ann",
             patient_first_name=long_first),
        # a claim that cannot be written (no member id) is not listed
        line(claim_id="C", line_id="C1", patient_last_name="U" * 61, member_id=pd.NA),
    )  # fmt: skip
    write(ref, df)  # (claim C is left out of the file)
    got = cuts(ref, df).sort_values(["claim_id", "field", "row"]).reset_index(drop=True)
    assert got[["claim_id", "row", "field", "element", "max_len"]].to_dict("records") == [
        {"claim_id": "A", "row": -1, "field": "patient_address", "element": "N301 (2010BA)",
         "max_len": 55},
        {"claim_id": "A", "row": -1, "field": "patient_city", "element": "N401 (2010BA)",
         "max_len": 30},
        {"claim_id": "A", "row": 1, "field": "rendering_first_name", "element": "NM104 (2420A)",
         "max_len": 35},
        {"claim_id": "A", "row": -1, "field": "rendering_last_name", "element": "NM103 (2310B)",
         "max_len": 60},
        {"claim_id": "A", "row": 1, "field": "rendering_last_name", "element": "NM103 (2420A)",
         "max_len": 60},
        {"claim_id": "B", "row": -1, "field": "patient_first_name", "element": "NM104 (2010CA)",
         "max_len": 35},
        {"claim_id": "B", "row": -1, "field": "subscriber_last_name",
         "element": "NM103 (2010BA)", "max_len": 60},
    ]  # fmt: skip
    after = dict(zip(got["field"] + got["row"].astype(str), got["after"], strict=True))
    assert after["patient_address-1"] == "1234 LONG STREET NAME LONG STREET NAME LONG STREET NAME"
    assert after["patient_city-1"] == "LLANFAIRPWLLGWYNGYLLGOGERYCHWYRN"[:30]
    assert after["rendering_first_name1"] == "ANNABELLE GENEVIEVE MAXIMILIANA ROS"
    assert got.loc[3, "before"] == "R" * 61 and got.loc[4, "before"] == "S" * 62


def test_837i_attending_and_a_clinic_name_are_listed(ref):
    clinics = ref.clinics.copy()
    clinics.loc["CLN03", "billing_name"] = (
        "LAKEVIEW COMMUNITY HOSPITAL OUTPATIENT REHABILITATION CENTER NORTH"
    )
    df = frame(
        line(claim_id="I1", line_id="I1", clinic_id="CLN03", rendering_last_name="M" * 61),
        line(claim_id="I2", line_id="I2", clinic_id="CLN03"),
        line(claim_id="I2", line_id="I3", clinic_id="CLN03", rendering_npi="1700345675",
             rendering_last_name="N" * 61),  # its own renderer: 2420C
    )  # fmt: skip
    segs = segments(write(ref, df, institutional=True, clinics=clinics))
    assert f"NM1*82*1*{'N' * 60}*ROBERT****XX*1700345675" in segs
    assert (
        "NM1*85*2*LAKEVIEW COMMUNITY HOSPITAL OUTPATIENT REHABILITATION CENTER*****XX*1700890126"
        in segs
    )
    got = cuts(ref, df, institutional=True, clinics=clinics)
    got = got.sort_values(["claim_id", "field"]).reset_index(drop=True)
    assert got[["claim_id", "row", "field", "element", "after"]].to_dict("records") == [
        {"claim_id": "I1", "row": -1, "field": "clinic billing_name",
         "element": "NM103 (2010AA)",
         "after": "LAKEVIEW COMMUNITY HOSPITAL OUTPATIENT REHABILITATION CENTER"},
        {"claim_id": "I1", "row": -1, "field": "rendering_last_name",
         "element": "NM103 (2310A)", "after": "M" * 60},
        {"claim_id": "I2", "row": -1, "field": "clinic billing_name",
         "element": "NM103 (2010AA)",
         "after": "LAKEVIEW COMMUNITY HOSPITAL OUTPATIENT REHABILITATION CENTER"},
        {"claim_id": "I2", "row": 2, "field": "rendering_last_name",
         "element": "NM103 (2420C)", "after": "N" * 60},
    ]  # fmt: skip


# ---- TEXT_TRUNCATED through a night -------------------------------------------------------------


def test_text_truncated_findings_through_a_night(tmp_path, caplog):
    rows = [
        row(line_id="L1", encounter_id="E1", patient_id="P1", patient_last_name=LAST_61),
        row(line_id="L2", encounter_id="E1", patient_id="P1", patient_last_name=LAST_61,
            cpt_code="97112", start_time="09:30", end_time="10:00"),
        row(line_id="L3", encounter_id="E2", patient_id="P2", patient_last_name=LAST_60,
            start_time="11:00", end_time="11:30"),
        row(line_id="L4", encounter_id="E3", patient_id="P3", rendering_last_name="R" * 61,
            start_time="13:00", end_time="13:30"),
    ]  # fmt: skip
    cfg = pipeline.RunConfig(
        inputs=[str(write_csv(tmp_path / "in" / "a.csv", rows))],
        out=str(tmp_path / "out"),
        run_date=date(2026, 11, 28),
    )
    with caplog.at_level(logging.DEBUG):
        pipeline.run(cfg)
    exc = storage.read_parquet(str(Path(cfg.final("exceptions")) / "exceptions.parquet"))
    cut = exc[exc["code"] == "TEXT_TRUNCATED"].sort_values("line_id").reset_index(drop=True)
    assert cut["line_id"].tolist() == ["L1", "L2", "L4"]  # every line of the claim; not E2
    assert set(cut["severity"]) == {"warning"}
    scored = storage.read_parquet(str(Path(cfg.final("scored")) / "scored.parquet"))
    assert set(scored["status"]) == {"billed"}  # a warning holds nothing
    cid = scored.set_index("line_id")["claim_id"]
    # the patient's name is PHI: lengths only
    assert cut.loc[0, "message"] == (
        f"claim {cid['L1']}: patient_last_name is 61 characters after cleaning; NM103 (2010BA) "
        "holds 60, so it was sent cut to 60 characters (not shown: PHI; the raw layer's row has "
        "the value, the claim file the cut one)"
    )
    assert (cut.loc[0, "before"], cut.loc[0, "after"]) == ("61 characters", "60 characters")
    assert cut.loc[0, "evidence"] == "X12 837P 005010X222A1 NM103 maximum length 60"
    # a provider's name is not: the values
    assert (cut.loc[2, "before"], cut.loc[2, "after"]) == ("R" * 61, "R" * 60)
    assert cut.loc[2, "message"].endswith(f": '{'R' * 61}' -> '{'R' * 60}'")
    # the name is nowhere but in the claim file (and the owner-only raw layer)
    for kind in ("exceptions", "scored", "reports"):
        for f in Path(cfg.final(kind)).rglob("*"):
            if f.is_file():
                assert LAST_60.encode() not in f.read_bytes(), f
    assert LAST_60 not in caplog.text
    files = list(Path(cfg.final("claims")).glob("*.x12"))
    text = "".join(f.read_text() for f in files)
    for f in files:
        ok, report = pyx12_validate(f)
        assert ok, report
    assert f"NM1*IL*1*{LAST_60}*JOHN****MI*" in text and LAST_61 not in text


def test_a_workers_comp_employer_cut_is_listed_and_the_unsent_subscriber_is_not(ref):
    """The employer is the insured (NM1*IL*2, NM103 60) on a workers' comp claim; the
    subscriber's names are not sent there, so their length does not matter."""
    employer = "E" * 58 + " CO LLC"  # 65 characters
    df = frame(
        line(claim_id="W1", line_id="W1", payer_id="WC01", employer_name=employer,
             accident_date=pd.Timestamp("2024-01-02"), pc_claim_number="WC123",
             subscriber_relationship="spouse", subscriber_last_name="T" * 61,
             subscriber_first_name="ANN"),
    )  # fmt: skip
    text = write(ref, df)
    assert f"NM1*IL*2*{'E' * 58} C*****MI*MEMBER123" in segments(text)  # 60 characters
    got = cuts(ref, df)
    assert got[["claim_id", "field", "element", "max_len", "before", "after"]].to_dict(
        "records"
    ) == [
        {"claim_id": "W1", "field": "employer_name", "element": "NM103 (2010BA)", "max_len": 60,
         "before": employer, "after": "E" * 58 + " C"},
    ]  # fmt: skip


def test_supervisor_and_referrer_names_cut_are_listed(ref):
    """An assistant's line to Medicare goes out under the supervising therapist's names
    (2310B), a Medicaid claim names its referrer (2310A): cut names of both are listed, from
    the extract's columns (the NPIs pass the check digit)."""
    df = frame(
        line(claim_id="S1", line_id="S1", payer_id="MCR01", rendering_credential="PTA",
             rendering_npi="1700345675", modifiers=["GP", "CQ"],
             supervising_npi="1245319599", supervising_last_name="V" * 61,
             supervising_first_name="W" * 36),
        line(claim_id="R1", line_id="R1", payer_id="MCD01", prior_auth_number="AUTH1",
             referring_npi="1700345675", referring_last_name="Q" * 62,
             referring_first_name="Paula"),
    )  # fmt: skip
    text = write(ref, df)
    segs = segments(text)
    assert f"NM1*82*1*{'V' * 60}*{'W' * 35}****XX*1245319599" in segs
    assert f"NM1*DN*1*{'Q' * 60}*PAULA****XX*1700345675" in segs
    got = cuts(ref, df).sort_values(["claim_id", "field"]).reset_index(drop=True)
    assert got[["claim_id", "row", "field", "element", "max_len", "before"]].to_dict(
        "records"
    ) == [
        {"claim_id": "R1", "row": -1, "field": "referring_last_name",
         "element": "NM103 (2310A)", "max_len": 60, "before": "Q" * 62},
        {"claim_id": "S1", "row": -1, "field": "supervising_first_name",
         "element": "NM104 (2310B)", "max_len": 35, "before": "W" * 36},
        {"claim_id": "S1", "row": -1, "field": "supervising_last_name",
         "element": "NM103 (2310B)", "max_len": 60, "before": "V" * 61},
    ]  # fmt: skip
