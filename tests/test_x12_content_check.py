"""The issue-15 content checker (tests/x12_content_check.py) on hand-written 837s built from
the shared samples (p_self.x12, i_therapy.x12): each compliant claim passes the checker and
pyx12, and each one broken in one way fails the checker naming the claim and the rule."""

from __future__ import annotations

import pandas as pd
import pytest
from x12_content_check import check_837, claims, duplicate_control_numbers
from x12_validate import pyx12_validate

from therapy_claims import reference

NPI = "1245319599"  # the samples' rendering/attending NPI (valid check digit)
OTHER = "1700345675"


@pytest.fixture(scope="module")
def payers() -> pd.DataFrame:
    return reference.load().payers


def _isa(icn: int, sender: str = "SUBMITTER01") -> str:
    return (
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*RECEIVER01     *240115*1200*^*00501*"
        f"{icn:09d}*0*T*:"
    )


def _interchange(version: str, body: list[str], *, icn: int = 1, sender: str = "SUBMITTER01"):
    """ISA..IEA around the segments after BHT (SE01 counted)."""
    st = [
        f"ST*837*0001*{version}",
        "BHT*0019*00*BATCH0001*20240115*1200*CH",
        f"NM1*41*2*ACME BILLING SERVICE*****46*{sender}",
        "PER*IC*JANE DOE*TE*5555551234",
        "NM1*40*2*EXAMPLE CLEARINGHOUSE*****46*RECEIVER01",
        *body,
    ]
    segs = [
        _isa(icn, sender),
        f"GS*HC*{sender}*RECEIVER01*20240115*1200*{icn}*X*{version}",
        *st,
        f"SE*{len(st) + 1}*0001",
        f"GE*1*{icn}",
        f"IEA*1*{icn:09d}",
    ]
    return "~\n".join(segs) + "~\n"


SELF = [
    "HL*2*1*22*0",
    "SBR*P*18*GRP123******{sbr09}",
    "NM1*IL*1*DOE*JOHN****MI*MEMBER123",
    "N3*456 OAK AVE",
    "N4*SPRINGFIELD*IL*62702",
    "DMG*D8*19500101*M",
    "NM1*PR*2*EXAMPLE HEALTH PLAN*****PI*{payer}",
]
EMPLOYER = [
    "HL*2*1*22*1",
    "SBR*P********WC",
    "NM1*IL*2*PRAIRIE STATE LOGISTICS LLC*****MI*WC12345678",
    "REF*Y4*WC24-1234567",
    "NM1*PR*2*SAMPLE WORKERS COMP CARRIER*****PI*{payer}",
    "HL*3*2*23*0",
    "PAT*20",
    "NM1*QC*1*DOE*JOHN",
    "N3*456 OAK AVE",
    "N4*SPRINGFIELD*IL*62702",
    "DMG*D8*19800101*M",
]


def p837(
    *,
    sbr09: str = "CI",
    payer: str = "99COM",
    clm11: str = "",
    dtps: tuple[str, ...] = ("DTP*431*D8*20240102",),
    hi: str = "HI*ABK:M5450*ABF:M6281",
    referring: bool = False,
    npi: str = NPI,
    taxonomy: str = "225100000X",
    code: str = "97110:GP",
    subscriber: list[str] | None = None,
) -> str:
    """An 837P of one claim (PCN0001) in the brief's shapes, from p_self.x12."""
    sub = [s.format(sbr09=sbr09, payer=payer) for s in (subscriber or SELF)]
    clm = "CLM*PCN0001*100***11:B:1*Y*A*Y*Y" + (f"**{clm11}" if clm11 else "")
    body = [
        "HL*1**20*1",
        "PRV*BI*PXC*225100000X",
        "NM1*85*2*ACME THERAPY CLINIC*****XX*1234567893",
        "N3*123 MAIN ST",
        "N4*SPRINGFIELD*IL*627011234",
        "REF*EI*123456789",
        *sub,
        clm,
        *dtps,
        hi,
        *(["NM1*DN*1*OKAFOR*ADAEZE****XX*" + OTHER] if referring else []),
        f"NM1*82*1*SMITH*ROBERT****XX*{npi}",
        f"PRV*PE*PXC*{taxonomy}",
        "LX*1",
        f"SV1*HC:{code}*100*UN*1***1:2",
        "DTP*472*D8*20240110",
    ]
    return _interchange("005010X222A1", body)


def i837(
    *,
    sbr09: str = "MA",
    payer: str = "99MCR",
    cl1: str = "CL1*3*1*01",
    occurrences: str = "HI*BH:35:D8:20240102*BH:29:D8:20240102",
    revenue: str = "0420",
    dx_others: int = 1,
    npi: str = NPI,
    subscriber: list[str] | None = None,
) -> str:
    """An 837I of one claim (PCN0002) in the brief's shapes, from i_therapy.x12."""
    sub = [s.format(sbr09=sbr09, payer=payer) for s in (subscriber or SELF)]
    others = [f"ABF:M62{81 + i:02d}" for i in range(dx_others)]
    his = ["HI*" + "*".join(others[i : i + 12]) for i in range(0, len(others), 12)]
    body = [
        "HL*1**20*1",
        "PRV*BI*PXC*282N00000X",
        "NM1*85*2*ACME HOSPITAL*****XX*1234567893",
        "N3*1 HOSPITAL DR",
        "N4*SPRINGFIELD*IL*627011234",
        "REF*EI*123456789",
        *sub,
        "CLM*PCN0002*200***13:A:1**A*Y*Y",
        "DTP*434*RD8*20240110-20240117",
        *([cl1] if cl1 else []),
        "HI*ABK:M5450",
        *his,
        *([occurrences] if occurrences else []),
        f"NM1*71*1*JONES*MARY****XX*{npi}",
        "PRV*AT*PXC*225100000X",
        "LX*1",
        f"SV2*{revenue}*HC:97110:GP*200*UN*4",
        "DTP*472*D8*20240110",
    ]
    return _interchange("005010X223A2", body)


# the compliant claims: each passes the checker and pyx12
COMPLIANT = {
    "commercial": lambda: p837(),
    "medicare_cmt_with_initial_date": lambda: p837(
        sbr09="MB",
        payer="99MCR",
        code="98941:AT",
        dtps=("DTP*431*D8*20240102", "DTP*454*D8*20240103"),
        hi="HI*ABK:M9903*ABF:M5450",
        taxonomy="111N00000X",
    ),
    "medicaid_with_referring": lambda: p837(sbr09="MC", payer="99MCD", referring=True),
    "workers_comp": lambda: p837(
        payer="99WCC",
        clm11="EM",
        dtps=("DTP*431*D8*20240102", "DTP*439*D8*20240101"),
        subscriber=EMPLOYER,
    ),
    "auto": lambda: p837(
        sbr09="AM",
        payer="99AUT",
        clm11="AA:::IL",
        dtps=("DTP*431*D8*20240102", "DTP*439*D8*20240101"),
    ),
    "twelve_diagnoses": lambda: p837(
        hi="HI*ABK:M5450*" + "*".join(f"ABF:M62{81 + i}" for i in range(11))
    ),
    "institutional_medicare": lambda: i837(),
    "institutional_medicare_ot": lambda: i837(
        revenue="0430", occurrences="HI*BH:44:D8:20240102*BH:17:D8:20240102"
    ),
    "institutional_25_diagnoses": lambda: i837(dx_others=24),
    "institutional_commercial": lambda: i837(sbr09="CI", payer="99COM", occurrences=""),
}


@pytest.mark.parametrize("name", sorted(COMPLIANT))
def test_compliant_claims_pass_the_checker_and_pyx12(name, payers):
    text = COMPLIANT[name]()
    assert check_837(text, payers=payers, assistants={OTHER}) == []
    ok, report = pyx12_validate(text)
    assert ok, report


# (claim text, what the problem line must say): each breaks one rule of a compliant claim
VIOLATIONS = {
    "unknown_payer_id": (lambda: p837(payer="PAYER01"), "is not a clearinghouse_payer_id"),
    "medicare_cmt_without_454": (
        lambda: p837(sbr09="MB", payer="99MCR", code="98940:AT", hi="HI*ABK:M9903"),
        "Medicare CMT claim without DTP*454",
    ),
    "assistant_renders_medicare": (
        lambda: p837(sbr09="MB", payer="99MCR", npi=OTHER, taxonomy="225200000X"),
        f"rendering NPI {OTHER} is an assistant and payer 99MCR",
    ),
    "assistant_renders_com02": (
        lambda: p837(sbr09="BL", payer="99BLU", npi=OTHER, taxonomy="225200000X"),
        f"rendering NPI {OTHER} is an assistant and payer 99BLU",
    ),
    "assistant_attends_medicare_837i": (
        lambda: i837(npi=OTHER),
        f"attending NPI {OTHER} is an assistant",
    ),
    "medicaid_without_referring": (
        lambda: p837(sbr09="MC", payer="99MCD"),
        "requires a referring provider, no NM1*DN",
    ),
    "workers_comp_without_em": (
        lambda: p837(
            payer="99WCC", dtps=("DTP*431*D8*20240102", "DTP*439*D8*20240101"), subscriber=EMPLOYER
        ),
        "workers' comp claim without CLM11 EM",
    ),
    "workers_comp_without_439": (
        lambda: p837(payer="99WCC", clm11="EM", subscriber=EMPLOYER),
        "workers' comp claim without DTP*439",
    ),
    "workers_comp_without_employer": (
        lambda: p837(
            sbr09="WC",
            payer="99WCC",
            clm11="EM",
            dtps=("DTP*431*D8*20240102", "DTP*439*D8*20240101"),
        ),
        "without the employer as insured (NM1*IL*1, PAT*-)",
    ),
    "auto_without_state": (
        lambda: p837(
            sbr09="AM",
            payer="99AUT",
            clm11="AA",
            dtps=("DTP*431*D8*20240102", "DTP*439*D8*20240101"),
        ),
        "auto claim without CLM11 AA and a state",
    ),
    "auto_without_439": (
        lambda: p837(sbr09="AM", payer="99AUT", clm11="AA:::IL"),
        "auto claim without DTP*439",
    ),
    "thirteen_diagnoses": (
        lambda: p837(hi="HI*ABK:M5450*" + "*".join(f"ABF:M62{81 + i}" for i in range(12))),
        "13 on an 837P, at most 12",
    ),
    "institutional_26_diagnoses": (lambda: i837(dx_others=25), "26 on an 837I, at most 25"),
    "institutional_medicare_sbr09_mb": (
        lambda: i837(sbr09="MB"),
        "Medicare 837I with SBR09 'MB', not MA",
    ),
    "institutional_medicare_without_35": (
        lambda: i837(occurrences="HI*BH:29:D8:20240102"),
        "without occurrence code 35",
    ),
    "institutional_medicare_without_plan": (
        lambda: i837(occurrences="HI*BH:35:D8:20240102"),
        "without occurrence code 29",
    ),
    "institutional_ot_under_pt_codes": (
        lambda: i837(revenue="0430"),
        "revenue 043x without occurrence code 44",
    ),
    "institutional_without_point_of_origin": (
        lambda: i837(cl1="CL1*3**01"),
        "CL1 without CL102",
    ),
    "institutional_workers_comp_without_04": (
        lambda: i837(sbr09="WC", payer="99WCC", occurrences="", subscriber=EMPLOYER),
        "workers' comp claim without occurrence code 04",
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_each_violation_fails_the_checker_naming_claim_and_rule(name, payers):
    make, expected = VIOLATIONS[name]
    problems = check_837(make(), payers=payers, assistants={OTHER})
    assert problems, name
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(("PCN0001: ", "PCN0002: ")) for p in problems), problems


def test_taxonomy_is_checked_against_providers_csv_when_given(payers):
    providers = pd.DataFrame({"npi": [NPI], "taxonomy": ["225X00000X"]})
    text = p837()  # PRV*PE 225100000X
    assert check_837(text, payers=payers) == []  # no provider directory: nothing to compare
    problems = check_837(text, payers=payers, providers=providers)
    assert problems == [
        f"PCN0001: taxonomy: rendering NPI {NPI} PRV 225100000X, providers.csv 225X00000X"
    ]
    same = pd.DataFrame({"npi": [NPI], "taxonomy": ["225100000X"]})
    assert check_837(text, payers=payers, providers=same) == []


def test_the_claims_are_read_with_their_subscriber_and_payer():
    [c] = claims(COMPLIANT["workers_comp"]())
    assert (c.id, c.kind, c.sbr09, c.payer_id) == ("PCN0001", "P", "WC", "99WCC")
    assert (c.insured_entity, c.patient_rel) == ("2", "20")
    assert c.dtp == {"431", "439", "472"} and c.codes == ["97110"]
    [i] = claims(COMPLIANT["institutional_medicare"]())
    assert i.occurrences == {"35": "20240102", "29": "20240102"} and i.revenue == ["0420"]
    assert i.dx == 2 and i.providers == [("71", NPI, "225100000X")]


def test_duplicate_control_numbers_per_sender():
    a = p837()
    b = p837(payer="99BLU")  # other content, same ISA13 and sender
    assert duplicate_control_numbers([a, a]) == []  # the same interchange again (a rerun)
    assert duplicate_control_numbers([a, b]) == [
        "file 1: ISA13 000000001 of sender SUBMITTER01 is used again"
    ]
    other_sender = a.replace("SUBMITTER01", "SUBMITTER02")
    assert duplicate_control_numbers([a, other_sender]) == []
    renumbered = b.replace("*000000001*0*T*", "*000000002*0*T*")
    assert duplicate_control_numbers([a, renumbered]) == []
