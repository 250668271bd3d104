"""Issue 15, claim content by claim type and payer: the 837 shapes (hand-written expected
segments), the rules that hold a claim lacking what its payer needs (hand-worked cases and
their boundaries), and one night end to end.

Shapes (docs/rules.md "Claim content by payer and claim type"; payer-edits.md "Claim content
by type"): NM1*PR NM109 is payers.csv clearinghouse_payer_id; a Medicare CMT claim carries
DTP*454 (initial_treatment_date, else plan_of_care_start); a related cause (the column, else
employment for workers' comp, auto accident for auto) is CLM11 (EM; AA:::state; OA) with
DTP*439 (accident_date, else injury_date) and REF*Y4; a workers' comp claim with an employer
names it as the insured (NM1*IL*2, PAT*20); an 837I carries SBR09 from
claim_filing_indicator_institutional, CL1*3*<point_of_origin>*01, up to 25 diagnoses and one
HI*BH of occurrence codes. Every file is written by the fast writer and the oracle alike and
passes pyx12 and the independent checks.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import oracle_837
import pandas as pd
import pytest
from factories import OTHER_NPI, row, write_csv
from test_rules import fired, night
from test_x12 import CREATED, frame, inst_line, line
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import pipeline, reference, storage, x12

REF = reference.load()
DATES = ("initial_treatment_date", "plan_of_care_start", "accident_date", "injury_date")
T = pd.Timestamp


def typed(*rows: dict) -> pd.DataFrame:
    """The writer's input frame: ``test_x12.frame`` plus the new date columns as dates."""
    df = frame(*rows)
    for c in DATES:
        if c in df:
            df[c] = pd.to_datetime(df[c])
    return df


def write(
    rows: list[dict], institutional: bool = False, clinics: pd.DataFrame | None = None
) -> tuple[list[str], dict[str, str]]:
    """Build with the fast writer and the oracle (same bytes, same rejections); the file
    passes pyx12 and the independent checks. Returns (segments, rejected)."""
    df = typed(*rows)
    args = {
        "clinics": REF.clinics if clinics is None else clinics,
        "payers": REF.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 21,
        "created": CREATED,
    }
    out = []
    for writer in (x12, oracle_837):
        build = writer.build_837i if institutional else writer.build_837p
        rejected: dict[str, str] = {}
        out.append((build(df, rejected=rejected, **args), rejected))
    (fast, fast_rejected), (oracle, rejected) = out
    assert fast == oracle
    assert list(fast_rejected.items()) == list(rejected.items())
    if fast:
        ok, report = pyx12_validate(fast)
        assert ok, report
        assert "IK5*A" in report
        assert independent_checks(fast) == []
    return [s for s in fast.split("~\n") if s], rejected


def claim_part(segs: list[str], claim_id: str, until: str = "LX*") -> list[str]:
    """The segments of claim ``claim_id`` from its CLM up to (not with) ``until``."""
    start = next(i for i, s in enumerate(segs) if s.startswith(f"CLM*{claim_id}*"))
    end = next(i for i in range(start + 1, len(segs)) if segs[i].startswith(until))
    return segs[start:end]


def subscriber_part(segs: list[str], claim_id: str) -> list[str]:
    """The segments of the claim's 2000B (and 2000C) loops: from its 2000B HL to its CLM."""
    clm = next(i for i, s in enumerate(segs) if s.startswith(f"CLM*{claim_id}*"))
    start = max(i for i in range(clm) if segs[i].startswith("HL*") and "*22*" in segs[i])
    return segs[start:clm]


# ------------------------------------------------------------------------------ 837P shapes


def test_the_payer_loop_names_the_clearinghouse_payer_id():
    segs, _ = write([line(payer_id="COM01"), line(claim_id="M1", payer_id="MCR01")])
    assert [s for s in segs if s.startswith("NM1*PR")] == [
        "NM1*PR*2*SAMPLE COMMERCIAL PPO*****PI*99COM",
        "NM1*PR*2*MEDICARE PART B JURISDICTION SAMPLE*****PI*99MCR",
    ]


CMT = {"clinic_id": "CLN02", "payer_id": "MCR01", "cpt_code": "98941", "modifiers": ["AT"]}


@pytest.mark.parametrize(
    ("dates", "dtp454"),
    [
        ({"initial_treatment_date": T("2024-01-03"), "plan_of_care_start": T("2024-01-02")},
         "DTP*454*D8*20240103"),
        ({"initial_treatment_date": pd.NaT, "plan_of_care_start": T("2024-01-02")},
         "DTP*454*D8*20240102"),  # the fallback
    ],
)  # fmt: skip
def test_a_medicare_cmt_claim_carries_the_initial_treatment_date(dates, dtp454):
    segs, _ = write([line(**CMT, **dates, injury_date=T("2023-12-01"))])
    assert claim_part(segs, "PCN0001", until="NM1*82") == [
        "CLM*PCN0001*100***11:B:1*Y*A*Y*Y",
        "DTP*431*D8*20231201",
        dtp454,
        "HI*ABK:M5450*ABF:M6281",
    ]


def test_dtp454_only_on_medicare_claims_with_a_cmt_line():
    start = {"initial_treatment_date": T("2024-01-03")}
    rows = [
        # a Medicare chiropractic visit whose CMT is its second line
        line(claim_id="C1", clinic_id="CLN02", payer_id="MCR01", **start),
        line(claim_id="C1", line_id="L2", **{**CMT, "payer_id": "MCR01"}, **start),
        line(claim_id="C2", **{**CMT, "payer_id": "COM01"}, **start),  # commercial: no
        line(claim_id="C3", clinic_id="CLN02", payer_id="MCR01", **start),  # no CMT: no
        line(claim_id="C4", **{**CMT, "payer_id": "MA01"}, **start),  # Medicare Advantage: no
    ]
    segs, _ = write(rows)
    dtp454 = [s for s in segs if s.startswith("DTP*454")]
    assert dtp454 == ["DTP*454*D8*20240103"]
    assert claim_part(segs, "C1")[1] == "DTP*454*D8*20240103"


def test_workers_comp_employer_is_the_insured_and_the_claim_is_related_to_employment():
    wc = line(
        claim_id="WC1",
        payer_id="WC01",
        employer_name="Acme Widgets, Inc.",
        pc_claim_number="wc-2023-77",
        injury_date=T("2023-12-20"),  # no accident_date: the injury date is the accident's
    )
    segs, _ = write([wc])
    assert subscriber_part(segs, "WC1") == [
        "HL*2*1*22*1",
        "SBR*P**GRP123******WC",
        "NM1*IL*2*ACME WIDGETS, INC.*****MI*MEMBER123",
        "REF*Y4*WC-2023-77",
        "NM1*PR*2*SAMPLE WORKERS COMP CARRIER*****PI*99WCC",
        "HL*3*2*23*0",
        "PAT*20",
        "NM1*QC*1*DOE*JOHN",
        "N3*456 OAK AVE",
        "N4*SPRINGFIELD*IL*62702",
        "DMG*D8*19800101*M",
    ]
    assert claim_part(segs, "WC1", until="HI*") == [
        "CLM*WC1*100***11:B:1*Y*A*Y*Y**EM",
        "DTP*431*D8*20231220",
        "DTP*439*D8*20231220",
    ]


def test_workers_comp_without_employer_keeps_the_patient_as_the_insured():
    # (score holds it with EMPLOYER_MISSING; the writer has nothing better to send)
    segs, _ = write([line(payer_id="WC01", pc_claim_number="X7", injury_date=T("2023-12-20"))])
    assert subscriber_part(segs, "PCN0001") == [
        "HL*2*1*22*0",
        "SBR*P*18*GRP123******WC",
        "NM1*IL*1*DOE*JOHN****MI*MEMBER123",
        "N3*456 OAK AVE",
        "N4*SPRINGFIELD*IL*62702",
        "DMG*D8*19800101*M",
        "REF*Y4*X7",
        "NM1*PR*2*SAMPLE WORKERS COMP CARRIER*****PI*99WCC",
    ]


def test_an_auto_accident_claim_of_a_dependant():
    auto = line(
        claim_id="AU1",
        payer_id="AUTO01",
        subscriber_relationship="spouse",
        subscriber_last_name="Doe",
        subscriber_first_name="Mary",
        accident_date=T("2023-12-21"),
        injury_date=T("2023-12-22"),  # onset, not the accident
        accident_state="il",
        pc_claim_number="PIP9",
    )
    segs, _ = write([auto])
    assert subscriber_part(segs, "AU1")[1:5] == [
        "SBR*P**GRP123******AM",
        "NM1*IL*1*DOE*MARY****MI*MEMBER123",
        "REF*Y4*PIP9",
        "NM1*PR*2*SAMPLE AUTO PIP CARRIER*****PI*99AUT",
    ]
    assert claim_part(segs, "AU1", until="HI*") == [
        "CLM*AU1*100***11:B:1*Y*A*Y*Y**AA:::IL",
        "DTP*431*D8*20231222",
        "DTP*439*D8*20231221",
    ]


def test_other_accident_from_the_column_at_a_commercial_payer():
    rows = [
        line(claim_id="OA1", related_cause="other_accident", accident_date=T("2023-12-24")),
        line(claim_id="N1", pc_claim_number="P1"),  # no related cause: no CLM11, no REF*Y4
    ]
    segs, _ = write(rows)
    assert claim_part(segs, "OA1", until="HI*") == [
        "CLM*OA1*100***11:B:1*Y*A*Y*Y**OA",
        "DTP*439*D8*20231224",
    ]
    assert claim_part(segs, "N1", until="HI*") == ["CLM*N1*100***11:B:1*Y*A*Y*Y"]
    assert not any(s.startswith("REF*Y4") for s in segs)


# ------------------------------------------------------------------------------ 837I shapes


def test_a_medicare_837i_claim_carries_occurrence_codes_per_discipline():
    dates = {"initial_treatment_date": T("2024-01-03"), "plan_of_care_start": T("2024-01-02")}
    rows = [
        inst_line(payer_id="MCR01", **dates),
        inst_line(line_id="L2", discipline="OT", cpt_code="97535", modifiers=["GO"], **dates),
    ]
    segs, _ = write(rows, institutional=True)
    assert "SBR*P*18*GRP123******MA" in segs  # MB on the 837P: MA (Part A) on the 837I
    assert claim_part(segs, "ICN0001", until="NM1*71") == [
        "CLM*ICN0001*200***13:A:1**A*Y*Y",
        "DTP*434*RD8*20240110-20240110",
        "CL1*3*1*01",
        "HI*ABK:M5450",
        "HI*ABF:M6281",
        "HI*BH:35:D8:20240103*BH:44:D8:20240103*BH:29:D8:20240102*BH:17:D8:20240102",
    ]


def test_837i_slp_without_a_plan_of_care_date_and_a_related_cause():
    # SLP only: 45 (treatment started) but no 30 without plan_of_care_start; an accident at
    # a Medicare claim adds its own code (05, other accident) with the accident date
    rows = [
        inst_line(
            payer_id="MCR01",
            discipline="SLP",
            cpt_code="92507",
            modifiers=["GN"],
            initial_treatment_date=T("2024-01-04"),
            related_cause="other_accident",
            injury_date=T("2023-12-30"),
        )
    ]
    segs, _ = write(rows, institutional=True)
    assert [s for s in segs if s.startswith("HI*BH")] == ["HI*BH:45:D8:20240104*BH:05:D8:20231230"]
    assert segs[[s.startswith("CLM*") for s in segs].index(True)] == (
        "CLM*ICN0001*100***13:A:1**A*Y*Y"  # no CLM11 on the 837I
    )


def test_837i_workers_comp_claim_with_employer_and_point_of_origin():
    clinics = REF.clinics.copy()
    clinics.loc["CLN03", "point_of_origin"] = "2"
    rows = [
        inst_line(
            claim_id="IWC",
            payer_id="WC01",
            employer_name="Acme",
            pc_claim_number="C-9",
            accident_date=T("2023-12-19"),
        )
    ]
    segs, _ = write(rows, institutional=True, clinics=clinics)
    assert subscriber_part(segs, "IWC")[1:7] == [
        "SBR*P**GRP123******WC",
        "NM1*IL*2*ACME*****MI*MEMBER123",
        "REF*Y4*C-9",
        "NM1*PR*2*SAMPLE WORKERS COMP CARRIER*****PI*99WCC",
        "HL*3*2*23*0",
        "PAT*20",
    ]
    assert claim_part(segs, "IWC", until="NM1*71")[2:] == [
        "CL1*3*2*01",
        "HI*ABK:M5450",
        "HI*ABF:M6281",
        "HI*BH:04:D8:20231219",
    ]


DX = [f"M{54 + i // 10}.{i % 10}0" for i in range(26)]  # 26 distinct ICD-10-CM shapes


def test_837i_carries_a_principal_and_24_other_diagnoses_and_no_more():
    rows = [
        inst_line(claim_id="D25", diagnosis_codes=DX[:25]),
        inst_line(claim_id="D26", diagnosis_codes=DX),
    ]
    segs, rejected = write(rows, institutional=True)
    codes = [d.replace(".", "") for d in DX]
    assert [s for s in segs if s.startswith("HI*")] == [
        f"HI*ABK:{codes[0]}",
        "HI*" + "*".join(f"ABF:{d}" for d in codes[1:13]),
        "HI*" + "*".join(f"ABF:{d}" for d in codes[13:25]),
    ]
    assert rejected == {"D26": "claim D26: diagnosis_codes has more than 25 codes"}


def test_837p_carries_12_diagnoses_and_no_more():
    rows = [
        line(claim_id="P12", diagnosis_codes=DX[:12]),
        line(claim_id="P13", diagnosis_codes=DX[:13]),
    ]
    segs, rejected = write(rows)
    codes = [d.replace(".", "") for d in DX]
    assert [s for s in segs if s.startswith("HI*")] == [
        f"HI*ABK:{codes[0]}" + "".join(f"*ABF:{d}" for d in codes[1:12])
    ]
    assert rejected == {"P13": "claim P13: diagnosis_codes has more than 12 codes"}


# ------------------------------------------------------------------ the writer's safety net


def test_claims_without_what_their_payer_needs_are_left_out_of_the_file():
    rows = [
        line(claim_id="OK"),
        line(claim_id="CMT", **CMT),  # Medicare CMT without any date
        line(claim_id="AA", payer_id="AUTO01", accident_date=T("2023-12-21")),  # no state
        line(claim_id="WC", payer_id="WC01", employer_name="Acme"),  # no accident/injury date
        line(claim_id="RC", related_cause="work", accident_date=T("2023-12-21")),
        line(claim_id="PC", payer_id="AUTO01", accident_date=T("2023-12-21"),
             accident_state="IL", pc_claim_number="PC*1"),
    ]  # fmt: skip
    segs, rejected = write(rows)
    assert rejected == {
        "CMT": "claim CMT: initial_treatment_date is missing and so is plan_of_care_start "
        "(Medicare: the date treatment started)",
        "AA": "claim AA: accident_state is not a 2-letter state code",
        "WC": "claim WC: accident_date is missing and so is injury_date (the related cause's date)",
        "RC": "claim RC: related_cause is not employment, auto_accident or other_accident",
        "PC": "claim PC: pc_claim_number contains characters X12 cannot carry",
    }
    assert [s for s in segs if s.startswith("CLM*")] == ["CLM*OK*100***11:B:1*Y*A*Y*Y"]
    rows = [inst_line(claim_id="I", payer_id="MCR01"), inst_line(claim_id="J", payer_id="COM01")]
    _, rejected = write(rows, institutional=True)
    assert rejected == {
        "I": "claim I: initial_treatment_date is missing and so is plan_of_care_start "
        "(Medicare: the date treatment started)"
    }
    assert (
        x12.unwritable_claims(
            typed(*rows), institutional=True, clinics=REF.clinics, payers=REF.payers
        )
        == rejected
    )


# ------------------------------------------------------------------------------------ rules


def codes_on(n, code: str) -> list[str]:
    return fired(n, code)["line_id"].tolist()


DC = {"rendering_credential": "DC", "discipline": "CHIRO", "rendering_npi": OTHER_NPI}


def cmt_visit(payer: str = "MCR01", **dates: str) -> list[dict]:
    """A chiropractic visit: a 97110 (L1, the lower line_id) and a CMT 98940 with AT (L2)."""
    return [
        row(payer_id=payer, **dates),
        row(line_id="L2", cpt_code="98940", modifiers="AT", body_region="lumbar", minutes="",
            start_time="", end_time="", units_charted="1", payer_id=payer, **DC, **dates),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("payer", "dates", "expected"),
    [
        ("MCR01", {}, ["L1"]),  # one finding per claim: on its lowest line_id
        ("MCR01", {"plan_of_care_start": "2026-11-01"}, []),  # the fallback
        ("MCR01", {"initial_treatment_date": "2026-11-02"}, []),
        ("COM01", {}, []),  # not Medicare
        ("MA01", {}, []),  # Medicare Advantage is not payer class medicare
    ],
)
def test_initial_treatment_date_missing_on_medicare_cmt_claims(payer, dates, expected):
    n = night(cmt_visit(payer, **dates))
    assert codes_on(n, "INITIAL_TREATMENT_DATE_MISSING") == expected
    if expected:
        msg = fired(n, "INITIAL_TREATMENT_DATE_MISSING")["message"].iloc[0]
        assert msg == (
            "Medicare (payer MCR01) chiropractic (CMT) claim cannot carry DTP*454 (initial "
            "treatment date): 97110 on 2026-11-20 has no initial_treatment_date and no "
            "plan_of_care_start"
        )


def test_initial_treatment_date_missing_on_medicare_institutional_claims():
    rows = [
        row(clinic_id="CLN03"),  # Medicare PT at the institutional clinic, no dates
        row(line_id="L2", encounter_id="E2", clinic_id="CLN03", plan_of_care_start="2026-11-01",
            plan_of_care_end="2026-12-31"),
        row(line_id="L3", encounter_id="E3"),  # Medicare PT on an 837P: not needed
    ]  # fmt: skip
    f = fired(night(rows), "INITIAL_TREATMENT_DATE_MISSING")
    assert f["line_id"].tolist() == ["L1"]
    assert "therapy claim (837I) cannot carry occurrence codes 35/44/45" in f["message"].iloc[0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"payer_id": "WC01"}, ["L1"]),
        ({"payer_id": "WC01", "injury_date": "2026-11-02"}, []),  # the fallback
        ({"payer_id": "AUTO01", "accident_date": "2026-11-02"}, []),
        ({"payer_id": "COM01", "related_cause": "other_accident"}, ["L1"]),
        ({"payer_id": "COM01"}, []),  # no related cause
    ],
)
def test_accident_date_missing(values, expected):
    assert codes_on(night([row(**values)]), "ACCIDENT_DATE_MISSING") == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"payer_id": "AUTO01"}, ["L1"]),  # AA without state
        ({"payer_id": "AUTO01", "accident_state": "IL"}, []),
        ({"payer_id": "COM01", "related_cause": "auto_accident"}, ["L1"]),
        ({"payer_id": "AUTO01", "related_cause": "other_accident"}, []),  # OA needs no state
        ({"payer_id": "AUTO01", "clinic_id": "CLN03"}, []),  # 837I: no CLM11
    ],
)
def test_accident_state_missing(values, expected):
    assert codes_on(night([row(**values)]), "ACCIDENT_STATE_MISSING") == expected


def test_pc_claim_number_missing_is_a_warning_for_workers_comp_and_auto():
    rows = [
        row(payer_id="WC01"),
        row(line_id="L2", encounter_id="E2", payer_id="AUTO01"),
        row(line_id="L3", encounter_id="E3", payer_id="WC01", pc_claim_number="WC-1"),
        row(line_id="L4", encounter_id="E4", payer_id="COM01", related_cause="employment"),
    ]
    f = fired(night(rows), "PC_CLAIM_NUMBER_MISSING")
    assert f["line_id"].tolist() == ["L1", "L2"]
    assert set(f["severity"]) == {"warning"}
    assert f["message"].iloc[1] == (
        "auto claim (payer AUTO01): 97110 on 2026-11-20 has no pc_claim_number: REF*Y4 (the "
        "carrier's claim number) is left out"
    )


def test_employer_missing_on_workers_comp_only():
    rows = [
        row(payer_id="WC01"),
        row(line_id="L2", encounter_id="E2", payer_id="WC01", employer_name="Acme"),
        row(line_id="L3", encounter_id="E3", payer_id="AUTO01"),
    ]
    f = fired(night(rows), "EMPLOYER_MISSING")
    assert f["line_id"].tolist() == ["L1"] and f["severity"].iloc[0] == "error"


@pytest.mark.parametrize(
    ("clinic", "n_codes", "fires"),
    [("CLN01", 12, False), ("CLN01", 13, True), ("CLN03", 25, False), ("CLN03", 26, True)],
)
def test_diagnosis_limit_by_claim_type(clinic, n_codes, fires):
    f = fired(night([row(clinic_id=clinic, diagnosis_codes=";".join(DX[:n_codes]))]),
              "DIAGNOSIS_INVALID")  # fmt: skip
    assert (not f.empty) == fires
    if fires:
        limit = 25 if clinic == "CLN03" else 12
        kind = "an institutional" if clinic == "CLN03" else "a professional"
        assert f["message"].iloc[0] == (
            f"{n_codes} diagnosis codes; {kind} claim holds at most {limit}"
        )


# ------------------------------------------------------------------------ a night end to end

RD = date(2026, 11, 28)


def night_rows() -> list[dict]:
    """A Medicare CMT claim, a workers' comp claim, an auto claim, an 837I Medicare claim, and
    a workers' comp claim without an employer (held)."""
    cmt = cmt_visit(initial_treatment_date="2026-10-05")
    cmt[0].update(start_time="07:00", end_time="07:30")
    wc = {"payer_id": "WC01", "prior_auth_number": "WCA1", "pc_claim_number": "WC-77",
          "injury_date": "2026-11-02"}  # fmt: skip
    return [
        *cmt,
        row(line_id="W1", encounter_id="E2", patient_id="P2", employer_name="Acme Widgets",
            start_time="08:00", end_time="08:30", **wc),
        row(line_id="A1", encounter_id="E3", patient_id="P3", payer_id="AUTO01",
            accident_date="2026-11-03", accident_state="IL", pc_claim_number="PIP-5",
            start_time="10:00", end_time="10:30"),
        row(line_id="I1", encounter_id="E4", patient_id="P4", clinic_id="CLN03",
            initial_treatment_date="2026-11-04", plan_of_care_start="2026-11-03",
            plan_of_care_end="2026-12-31", start_time="11:00", end_time="11:30"),
        row(line_id="H1", encounter_id="E5", patient_id="P5", start_time="12:00",
            end_time="12:30", **wc),
    ]  # fmt: skip


def test_a_night_with_claim_content(tmp_path):
    inp = write_csv(tmp_path / "landing" / "night.csv", night_rows())
    cfg = pipeline.RunConfig(inputs=[str(inp.parent)], out=str(tmp_path / "out"), run_date=RD)
    m = pipeline.run(cfg)
    scored = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet"))
    s = scored.set_index("line_id")
    assert s["status"].to_dict() == {
        "L1": "billed",
        "L2": "billed",
        "W1": "billed",
        "A1": "billed",
        "I1": "billed",
        "H1": "held",
    }
    assert list(s.loc["H1", "exception_codes"]) == ["EMPLOYER_MISSING"]
    assert m["claims_billed"] == 4 and m["claims_held"] == 1 and m["balanced"] is True
    text = {}
    for f in sorted(Path(cfg.final("claims")).glob("*.x12")):
        ok, report = pyx12_validate(str(f))
        assert ok, report
        content = f.read_text(encoding="ascii")
        assert independent_checks(content) == []
        text[f.name] = [seg for seg in content.split("~\n") if seg]
    segs = [seg for file in text.values() for seg in file]
    assert "DTP*454*D8*20261005" in segs  # the Medicare CMT claim
    assert any(seg.endswith("*Y*A*Y*Y**EM") for seg in segs)  # workers' comp
    assert "NM1*IL*2*ACME WIDGETS*****MI*1EG4TE5MK72" in segs and "PAT*20" in segs
    assert "REF*Y4*WC-77" in segs and "DTP*439*D8*20261102" in segs
    assert any(seg.endswith("*Y*A*Y*Y**AA:::IL") for seg in segs)  # auto
    assert "REF*Y4*PIP-5" in segs and "DTP*439*D8*20261103" in segs
    # the 837I Medicare claim: Part A, point of origin, PT's occurrence codes
    assert "CL1*3*1*01" in segs and "SBR*P*18*******MA" in segs
    assert "HI*BH:35:D8:20261104*BH:29:D8:20261103" in segs
