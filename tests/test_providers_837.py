"""Issue 15, "Providers": assistants billed under the supervising therapist, a taxonomy per
renderer, the referring provider (NM1*DN) — the rules, the 837P/837I text, and a night.

Expectations are worked by hand from the contract (docs/rules.md "Providers on the claim"):
a PTA/OTA line to a payer that does not let assistants render (Medicare by default; payers.csv
``assistants_may_render``) goes out with the supervisor's NPI and name and CQ/CO; taxonomy:
the line's ``rendering_taxonomy``, else providers.csv's, else by credential (PT 225100000X,
PTA 225200000X, OT 225X00000X, OTA 224Z00000X, DC 111N00000X), a supervisor's PT/OT. Every
837 written here passes pyx12, and the plain oracle (tests/oracle_837.py) writes the same
bytes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import oracle_837
import pandas as pd
import pytest
from factories import RENDERING_NPI, row, write_csv
from test_rules import fired, night
from test_rules_catalogue import own_reference
from test_rules_reported_edits import payers_with
from test_x12 import CREATED, assert_valid, build, build_i, frame, inst_line, line, segments

from therapy_claims import npi, pipeline, reference, rules, storage, x12

PTA_NPI = npi.make_valid("133344455")
OTA_NPI = npi.make_valid("133344466")
PT_SUPERVISOR = npi.make_valid("144455566")
OT_SUPERVISOR = npi.make_valid("144455577")
REFERRER = npi.make_valid("155566677")
BAD_NPI = "1234567890"  # fails the check digit
SUPERVISED = {
    "supervising_npi": PT_SUPERVISOR,
    "supervising_last_name": "Superv",
    "supervising_first_name": "Paula",
}
REFERRED = {
    "referring_npi": REFERRER,
    "referring_last_name": "Referrer",
    "referring_first_name": "Rita",
}
# Medicare 837I claims carry the date treatment started (occurrence codes): the plan of care's
EPISODE = {"plan_of_care_start": pd.Timestamp("2024-01-02")}
PROVIDERS_HEADER = "npi,last_name,first_name,credential,taxonomy\n"


@pytest.fixture(scope="module")
def ref() -> reference.Reference:
    return reference.load()  # the sample: MCR01 medicare, COM02 no assistants, MCD01 referrer


def codes_by_line(found: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line_id, code in zip(found["line_id"], found["code"], strict=True):
        out.setdefault(line_id, []).append(code)
    return out


def pta(**kw) -> dict:
    """A PTA's 97110 (the tests' reference: MCR01, with GP)."""
    base = {"rendering_npi": PTA_NPI, "rendering_credential": "PTA", "rendering_last_name": "ASST"}
    return row(**(base | kw))


# ---- the rules ---------------------------------------------------------------------------


def rules_found(n: rules.Night) -> pd.DataFrame:
    return rules.run_all(n)


def test_medicare_assistant_without_a_supervisor_is_held_with_cq_added():
    n = night([pta(line_id="A1")])
    f = rules_found(n)
    missing = f[f["code"] == "ASSISTANT_SUPERVISOR_MISSING"]
    assert missing["line_id"].tolist() == ["A1"]
    assert (missing["severity"] == "error").all()
    text = missing["message"].iloc[0]
    assert f"rendering NPI {PTA_NPI}" in text and "payer MCR01" in text
    assert "supervising_npi is missing" in text
    assert n.lines["modifiers"].tolist() == ["GP;CQ"]  # ASSISTANT_MODIFIER_ADDED


def test_medicare_assistant_with_a_supervisor_is_billed_under_the_supervisor():
    n = night([pta(line_id="A1", **SUPERVISED)])
    f = rules_found(n)
    # billed under the supervisor is the payer's rule, not an exception: no finding at all
    # but the CQ the modifier fixer adds (the claim file is checked below and in the night)
    assert set(f["code"]) == {"ASSISTANT_MODIFIER_ADDED"}
    assert n.lines["modifiers"].tolist() == ["GP;CQ"]


@pytest.mark.parametrize(
    ("supervisor", "why"),
    [
        ({"supervising_npi": BAD_NPI}, f"supervising_npi {BAD_NPI} fails the NPI check digit"),
        (
            {"supervising_npi": PT_SUPERVISOR, "supervising_last_name": "Superv"},
            f"supervising_npi {PT_SUPERVISOR} has no name",
        ),
    ],
)
def test_an_unusable_supervisor_holds_the_line(supervisor, why):
    f = fired(night([pta(line_id="A1", **supervisor)]), "ASSISTANT_SUPERVISOR_MISSING")
    assert f["line_id"].tolist() == ["A1"] and why in f["message"].iloc[0]


def test_a_supervisor_named_by_providers_csv_is_usable(tmp_path):
    providers = PROVIDERS_HEADER + f"{PT_SUPERVISOR},SUPERV,PAULA,PT,225100000X\n"
    n = night(
        [pta(line_id="A1", supervising_npi=PT_SUPERVISOR)],
        own_reference(tmp_path, providers=providers),
    )
    codes = set(rules_found(n)["code"])
    assert "ASSISTANT_SUPERVISOR_MISSING" not in codes


def test_the_payer_setting_decides_for_other_payers(tmp_path):
    """COM01 (commercial, assistants render by default) vs COM02 set to
    assistants_may_render=false: only COM02's PTA line goes out under (or waits for) a
    supervisor, and only it gets CQ."""
    ref = own_reference(tmp_path, payers=payers_with({"COM02": {"assistants_may_render": "false"}}))
    common = {"member_id": "XYZ123", "prior_auth_number": "A1"}
    n = night(
        [
            pta(line_id="C1", payer_id="COM01", **common),
            pta(line_id="C2", payer_id="COM02", encounter_id="E2", patient_id="P2", **common),
            pta(
                line_id="C3",
                payer_id="COM02",
                encounter_id="E3",
                patient_id="P3",
                **common,
                **SUPERVISED,
            ),
        ],
        ref,
    )
    by_line = codes_by_line(rules_found(n))
    assert "ASSISTANT_SUPERVISOR_MISSING" not in by_line.get("C1", [])
    assert "ASSISTANT_SUPERVISOR_MISSING" in by_line["C2"]
    assert "ASSISTANT_SUPERVISOR_MISSING" not in by_line.get("C3", [])
    mods = dict(zip(n.lines["line_id"], n.lines["modifiers"], strict=True))
    assert mods == {"C1": "GP", "C2": "GP;CQ", "C3": "GP;CQ"}


def test_an_ota_line_gets_co_under_its_ot_supervisor():
    n = night(
        [
            row(
                line_id="O1",
                rendering_npi=OTA_NPI,
                rendering_credential="OTA",
                discipline="OT",
                modifiers="GO",
                supervising_npi=OT_SUPERVISOR,
                supervising_last_name="Overseer",
                supervising_first_name="Olga",
            )
        ]
    )
    assert "ASSISTANT_SUPERVISOR_MISSING" not in set(rules_found(n)["code"])
    assert n.lines["modifiers"].tolist() == ["GO;CO"]


def test_provider_unknown_only_with_a_directory(tmp_path):
    rows = [
        row(line_id="R1", **REFERRED),  # PT renderer (listed below), referrer not listed
        pta(line_id="R2", encounter_id="E2", patient_id="P2", **SUPERVISED),
    ]
    assert fired(night(rows), "PROVIDER_UNKNOWN").empty  # no providers.csv: no directory
    providers = PROVIDERS_HEADER + f"{RENDERING_NPI},SMITH,ANN,PT,225100000X\n"
    f = fired(night(rows, own_reference(tmp_path, providers=providers)), "PROVIDER_UNKNOWN")
    found = sorted(zip(f["line_id"], f["message"], strict=True))
    assert [(line_id, m.split(": ", 1)[1]) for line_id, m in found] == [
        (
            "R1",
            f"referring NPI {REFERRER} is not in providers.csv (its taxonomy comes from the "
            "extract or the credential)",
        ),
        (
            "R2",
            f"supervising NPI {PT_SUPERVISOR} is not in providers.csv (its taxonomy comes "
            "from the extract or the credential)",
        ),
    ]  # the PTA's own NPI is not on the claim, so not looked up
    assert (f["severity"] == "warning").all()


@pytest.mark.parametrize(
    ("referring", "why"),
    [
        ({}, "referring_npi is missing"),
        ({**REFERRED, "referring_npi": BAD_NPI}, f"referring_npi {BAD_NPI} fails the NPI check"),
        ({"referring_npi": REFERRER}, f"referring_npi {REFERRER} has no name"),
        (REFERRED, None),
    ],
)
def test_referring_missing_where_the_payer_requires_one(tmp_path, referring, why):
    ref = own_reference(tmp_path, payers=payers_with({"MCD01": {"requires_referring": "true"}}))
    rows = [
        row(line_id="M1", payer_id="MCD01", member_id="XYZ123", **referring),
        row(line_id="M2", encounter_id="E2", patient_id="P2", **referring),  # MCR01: not needed
    ]
    f = fired(night(rows, ref), "REFERRING_MISSING")
    if why is None:
        assert f.empty
    else:
        assert f["line_id"].tolist() == ["M1"] and f["severity"].iloc[0] == "error"
        assert "payer MCD01 requires a referring/ordering provider" in f["message"].iloc[0]
        assert why in f["message"].iloc[0]


# ---- the 837 text --------------------------------------------------------------------------


def both_writers(ref, df: pd.DataFrame, institutional: bool = False, **kw) -> tuple[str, dict]:
    """The fast writer's text and rejections, checked against the oracle's and pyx12."""
    rejected: dict[str, str] = {}
    make = build_i if institutional else build
    text = make(ref, df, rejected=rejected, **kw)
    oracle_rejected: dict[str, str] = {}
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 18 if institutional else 17,
        "created": CREATED,
    } | kw
    oracle = (oracle_837.build_837i if institutional else oracle_837.build_837p)(
        df, rejected=oracle_rejected, **args
    )
    assert text == oracle
    assert rejected == oracle_rejected
    unwritable = x12.unwritable_claims(
        df,
        institutional=institutional,
        clinics=ref.clinics,
        payers=ref.payers,
        providers=kw.get("providers"),
    )
    assert unwritable == rejected
    if text:
        assert_valid(text)
    return text, rejected


def professional_claim(payer: str, **second) -> pd.DataFrame:
    """A claim of a PT's line and a second line (``second``: its overrides) at CLN01."""
    extra = {"referring_npi": pd.NA} if payer != "MCD01" else REFERRED
    return frame(
        line(claim_id="P1", payer_id=payer, rendering_credential="PT", **extra),
        line(claim_id="P1", line_id="L2", payer_id=payer, cpt_code="97112", **extra, **second),
    )


PTA_LINE = {
    "rendering_npi": PTA_NPI,
    "rendering_last_name": "Asst",
    "rendering_first_name": "Andy",
    "rendering_credential": "PTA",
    "modifiers": ["GP", "CQ"],
}


def test_837p_medicare_assistant_line_goes_out_under_the_supervisor(ref):
    text, rejected = both_writers(ref, professional_claim("MCR01", **PTA_LINE, **SUPERVISED))
    segs = segments(text)
    assert rejected == {}
    assert PTA_NPI not in text
    claim = segs[segs.index("CLM*P1*200***11:B:1*Y*A*Y*Y") :]
    # 2310B: the PT (the claim's first line), PT taxonomy; 2420A: the supervisor, PT taxonomy
    assert claim[2:4] == ["NM1*82*1*SMITH*ROBERT****XX*1245319599", "PRV*PE*PXC*225100000X"]
    line2 = claim[claim.index("LX*2") :]
    assert line2[1] == "SV1*HC:97112:GP:CQ*100*UN*4***1:2"
    assert line2[4:6] == [f"NM1*82*1*SUPERV*PAULA****XX*{PT_SUPERVISOR}", "PRV*PE*PXC*225100000X"]


def test_837p_assistant_renders_for_a_payer_that_allows_it(ref):
    text, _ = both_writers(ref, professional_claim("COM01", **PTA_LINE, **SUPERVISED))
    segs = segments(text)
    line2 = segs[segs.index("LX*2") :]
    assert line2[4:6] == [f"NM1*82*1*ASST*ANDY****XX*{PTA_NPI}", "PRV*PE*PXC*225200000X"]
    assert PT_SUPERVISOR not in text


def test_837p_assistant_without_a_supervisor_cannot_be_written(ref):
    text, rejected = both_writers(ref, professional_claim("MCR01", **PTA_LINE))
    assert text == ""
    assert rejected == {
        "P1": "claim P1: supervising_npi is missing (an assistant (PTA/OTA) cannot be the "
        "rendering provider for this payer: payers.csv assistants_may_render is false)"
    }


@pytest.mark.parametrize(
    ("credential", "overrides", "taxonomy"),
    [
        ("OT", {}, "225X00000X"),
        ("DC", {}, "111N00000X"),
        ("SLP", {}, "235Z00000X"),
        ("MD", {}, "225100000X"),  # the clinic's (CLN01)
        ("OT", {"rendering_taxonomy": "225xr0403x"}, "225XR0403X"),  # the line's own
    ],
)
def test_837p_taxonomy_per_renderer(ref, credential, overrides, taxonomy):
    other = {
        "rendering_npi": "1881234565",
        "rendering_last_name": "Jones",
        "rendering_first_name": "Amy",
        "rendering_credential": credential,
        **overrides,
    }
    text, _ = both_writers(ref, professional_claim("COM01", **other))
    segs = segments(text)
    line2 = segs[segs.index("LX*2") :]
    assert line2[4:6] == ["NM1*82*1*JONES*AMY****XX*1881234565", f"PRV*PE*PXC*{taxonomy}"]


def test_837p_taxonomy_and_supervisor_name_from_providers_csv(ref):
    providers = pd.DataFrame(
        {
            "npi": ["1881234565", PT_SUPERVISOR],
            "last_name": ["Jones", "Directory"],
            "first_name": ["Amy", "Dana"],
            "credential": ["PT", "PT"],
            "taxonomy": ["2251X0800X", "225100000X"],
        }
    ).set_index("npi", drop=False)
    df = frame(
        line(
            claim_id="P1", payer_id="MCR01", rendering_npi="1881234565", rendering_credential="PT"
        ),
        line(
            claim_id="P1",
            line_id="L2",
            payer_id="MCR01",
            **PTA_LINE,
            supervising_npi=PT_SUPERVISOR,  # no name in the columns: providers.csv's
        ),
    )
    text, _ = both_writers(ref, df, providers=providers)
    segs = segments(text)
    assert "PRV*PE*PXC*2251X0800X" in segs  # the 2310B renderer's own taxonomy
    assert f"NM1*82*1*DIRECTORY*DANA****XX*{PT_SUPERVISOR}" in segs


def test_837p_referring_provider_nm1_dn(ref):
    text, rejected = both_writers(ref, professional_claim("MCD01"))
    segs = segments(text)
    at = segs.index(f"NM1*DN*1*REFERRER*RITA****XX*{REFERRER}")
    assert segs[at - 1].startswith("HI*ABK:") and segs[at + 1].startswith("NM1*82*")
    # not required by COM01, but written when the claim names one
    df = professional_claim("COM01")
    df["referring_npi"], df["referring_last_name"] = REFERRER, "Referrer"
    df["referring_first_name"] = "Rita"
    assert f"NM1*DN*1*REFERRER*RITA****XX*{REFERRER}" in segments(both_writers(ref, df)[0])
    # an invalid one is left off where the payer does not require it
    df["referring_npi"] = BAD_NPI
    assert not any(s.startswith("NM1*DN") for s in segments(both_writers(ref, df)[0]))


@pytest.mark.parametrize(
    ("referring", "problem"),
    [
        ({"referring_npi": pd.NA}, "referring_npi is missing (the payer requires a referring"),
        ({"referring_npi": BAD_NPI}, "referring_npi is not a valid NPI"),
        ({"referring_last_name": "*"}, "referring_last_name is empty"),
    ],
)
def test_837p_required_referrer_missing_cannot_be_written(ref, referring, problem):
    df = professional_claim("MCD01")
    for column, value in referring.items():
        df[column] = pd.Series([value] * len(df), dtype="string")
    text, rejected = both_writers(ref, df)
    assert text == "" and rejected["P1"].startswith(f"claim P1: {problem}")


def test_837i_attending_is_the_supervisor_with_prv_at_and_referrer(ref):
    df = frame(
        inst_line(payer_id="MCR01", **PTA_LINE, **SUPERVISED, **REFERRED, **EPISODE),
        inst_line(
            payer_id="MCR01",
            line_id="L2",
            **EPISODE,
            rendering_credential="OT",
            rendering_npi="1881234565",
            rendering_last_name="Jones",
            discipline="OT",
            modifiers=["GO"],
            **REFERRED,
        ),
    )
    text, rejected = both_writers(ref, df, institutional=True)
    segs = segments(text)
    assert rejected == {} and PTA_NPI not in text
    at = segs.index(f"NM1*71*1*SUPERV*PAULA****XX*{PT_SUPERVISOR}")
    assert segs[at + 1 : at + 3] == [
        "PRV*AT*PXC*225100000X",
        f"NM1*DN*1*REFERRER*RITA****XX*{REFERRER}",
    ]
    line2 = segs[segs.index("LX*2") :]
    assert line2[3] == "REF*6R*L2"  # the line item control number, before 2420C
    assert line2[4] == "NM1*82*1*JONES*ROBERT****XX*1881234565"  # 2420C: no PRV
    assert not line2[5].startswith("PRV")


def test_837i_assistant_without_a_supervisor_cannot_be_the_attending(ref):
    df = frame(inst_line(payer_id="MCR01", **PTA_LINE, **EPISODE))
    text, rejected = both_writers(ref, df, institutional=True)
    assert text == "" and rejected["ICN0001"].startswith(
        "claim ICN0001: supervising_npi is missing"
    )


# ---- a night ------------------------------------------------------------------------------

RD = date(2026, 11, 28)


def test_a_night_holds_the_unsupervised_assistant_and_bills_the_supervised_one(tmp_path):
    rows = [
        pta(line_id="H1", encounter_id="E1", patient_id="P1"),
        pta(
            line_id="B1",
            encounter_id="E2",
            patient_id="P2",
            patient_last_name="ROE",
            member_id="2EG4TE5MK73",
            start_time="10:00",  # the PTA's next patient
            end_time="10:30",
            **SUPERVISED,
        ),
    ]
    inp = write_csv(tmp_path / "landing" / "night.csv", rows)
    cfg = pipeline.RunConfig(inputs=[str(inp.parent)], out=str(tmp_path / "out"), run_date=RD)
    m = pipeline.run(cfg)
    scored = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet"))
    s = scored.set_index("line_id")
    assert s["status"].to_dict() == {"H1": "held", "B1": "billed"}
    assert "ASSISTANT_SUPERVISOR_MISSING" in list(s.loc["H1", "exception_codes"])
    assert list(s.loc["B1", "modifiers"]) == ["GP", "CQ"]
    assert m["claims_billed"] == 1 and m["claims_held"] == 1 and m["balanced"] is True
    files = sorted(Path(cfg.final("claims")).glob("*.x12"))
    text = "".join(f.read_text(encoding="ascii") for f in files)
    assert_valid(text)
    segs = segments(text)
    assert f"NM1*82*1*SUPERV*PAULA****XX*{PT_SUPERVISOR}" in segs
    assert "PRV*PE*PXC*225100000X" in segs
    assert PTA_NPI not in text
    assert [s for s in segs if s.startswith("SV1")] == ["SV1*HC:97110:GP:CQ*90*UN*2***1"]
