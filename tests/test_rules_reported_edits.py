"""Issue 14, "edits apply to what is reported": hand-worked cases for each class.

1. NCCI PTP, CMT_SAME_REGION, MUE and the daily cap look at reported lines only (units > 0
   after the units rule, not left off as non-covered): NCCI edits codes reported on a claim
   (payer-edits.md "Edits"; NCCI Policy Manual ch. 1).
2. Where 59/X{EPSU} must sit is payers.csv ``distinct_modifier_on`` (column2 | either).
3. A non-covered code is decided per line: not billed (the rest of the claim goes out), or
   billed with GY/GA/GZ (already on the line, or added from payers.csv noncovered_modifier).
4. A chiropractor's non-CMT service to Medicare is not covered (MBPM ch. 15 240.1.1) and never
   gets GP/GO/GN.

Units are worked by hand from the CMS table (MCPM ch. 5 20.2: 8-22 minutes 1 unit, 23-37 2,
38-52 3) and, for per_code payers, the AMA midpoint rule (the same table per code)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from factories import OTHER_NPI, row, write_csv
from test_rules import TEST_REFERENCE, fired, night
from test_rules_catalogue import chiro_day, own_reference
from x12_validate import pyx12_validate

from therapy_claims import pipeline, rules, storage


def payers_with(settings: dict[str, dict[str, str]]) -> str:
    """The tests' payers.csv with optional setting columns added (empty: the default)."""
    with open(TEST_REFERENCE / "payers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) + sorted({k for s in settings.values() for k in s})
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", restval="")
    w.writeheader()
    for r in rows:
        w.writerow({**r, **settings.get(r["payer_id"], {})})
    return out.getvalue()


def by_line(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {r["line_id"]: r for _, r in f.iterrows()}


def reported(n: rules.Night) -> dict[str, bool]:
    return dict(zip(n.lines["line_id"], n.reported().tolist(), strict=True))


def untimed(**kw) -> dict:
    return row(minutes="", start_time="", end_time="", units_charted="1", **kw)


# ------------------------------------------------------------ 1. only reported lines are edited


@pytest.mark.parametrize(("minutes", "units"), [(7, 0), (8, 1)])
def test_a_0_unit_97140_puts_no_ncci_pair_or_region_edit_on_its_cmt(minutes, units):
    # a DC at a Medicaid plan (cms, column2): 98940 + 97140 on the same region, no 59/XS.
    # 97140 is the visit's only timed line: 7 minutes -> 0 units (not reported), 8 -> 1
    rows = chiro_day("lumbar", "", cmt_region="lumbar", payer="MCD01")
    rows[1].update(minutes=str(minutes), units_charted="")
    n = night(rows)
    f = rules.run_all(n)
    assert n.lines.set_index("line_id")["units"].to_dict() == {"CMT": 1, "MT": units}
    assert reported(n) == {"CMT": True, "MT": units > 0}
    codes = set(f.loc[f["line_id"] == "MT", "code"])
    edits = {"NCCI_MODIFIER_MISSING", "CMT_SAME_REGION"}
    if units == 0:
        assert not codes & edits and "UNITS_ZERO" in codes
        assert f.loc[f["severity"] == "error", "line_id"].empty  # nothing holds the claim
    else:
        assert edits <= codes


def test_mue_counts_only_reported_lines(tmp_path):
    # MUE 97140 = 2 per line (MAI 1). 38 minutes alone -> 3 units (CMS: 38-52 = 3) on both
    # lines; the DC's line to Medicare is not covered (excluded), so only the PT's is over
    ref = own_reference(
        tmp_path,
        mue="code,mue_value,mai,effective_date\n97140,2,1,2020-01-01\n",
    )
    common = {"cpt_code": "97140", "minutes": "38", "end_time": "09:40", "units_charted": "3"}
    rows = [
        row(line_id="PT", modifiers="GP", technique="joint_mobilization", **common),
        row(
            line_id="DC",
            patient_id="P2",
            encounter_id="E2",
            rendering_npi=OTHER_NPI,
            rendering_credential="DC",
            discipline="CHIRO",
            modifiers="",
            body_region="upper_extremity",
            technique="joint_mobilization",
            **common,
        ),
    ]
    n = night(rows, ref)
    f = fired(n, "MUE_EXCEEDED")
    assert n.lines["units"].tolist() == [3, 3]
    assert f["line_id"].tolist() == ["PT"]
    assert "3 units per line (MAI 1) exceed the MUE of 2" in f["message"].iloc[0]


def test_daily_cap_counts_only_reported_lines(tmp_path):
    # COM01: per_code units, cap 4 timed units a day. 97110 30 min -> 2, 97112 38 min -> 3:
    # 5 > 4. With 97112 not covered for commercial payers (code_edits) only 2 are reported
    rows = [
        row(payer_id="COM01", modifiers="", minutes="30", units_charted="2"),
        row(
            line_id="L2",
            payer_id="COM01",
            cpt_code="97112",
            modifiers="",
            minutes="38",
            start_time="09:30",
            end_time="10:10",
            units_charted="3",
        ),
    ]
    f = fired(night(rows), "DAILY_UNIT_CAP_EXCEEDED")
    assert sorted(f["line_id"]) == ["L1", "L2"] and "5 timed units" in f["message"].iloc[0]
    edits = (TEST_REFERENCE / "code_edits.csv").read_text() + (
        "commercial,97112,97112 not covered (test row),Remove the line,test\n"
    )
    n = night(rows, own_reference(tmp_path, code_edits=edits))
    assert fired(n, "DAILY_UNIT_CAP_EXCEEDED").empty
    assert reported(n) == {"L1": True, "L2": False}


# ------------------------------------------------------------ 2. where the modifier must sit


def test_xs_on_the_cmt_only_does_not_bypass_with_column2():
    # the tests' payers.csv leaves distinct_modifier_on out: column2 for every payer
    rows = chiro_day("cervical", "")
    rows[0]["modifiers"] = "AT;XS"
    f = fired(night(rows), "NCCI_MODIFIER_MISSING")
    assert f["line_id"].tolist() == ["MT"]
    msg = f["message"].iloc[0]
    assert msg == (
        "97140 with 98940 on 2026-11-20: NCCI pair (indicator 1) without 59/XE/XS/XP/XU on "
        "97140 (column 2); the modifier on 98940 (column 1) does not bypass the pair for "
        "COM02; add XS/59 to 97140 if it was distinct"
    )
    assert "payers.csv COM02 distinct_modifier_on=column2 (payers.csv@" in f["evidence"].iloc[0]
    # on 97140 itself it bypasses
    assert fired(night(chiro_day("cervical", "XS")), "NCCI_MODIFIER_MISSING").empty


def test_either_accepts_the_modifier_on_the_cmt(tmp_path):
    ref = own_reference(tmp_path, payers=payers_with({"COM02": {"distinct_modifier_on": "either"}}))
    rows = chiro_day("cervical", "")
    rows[0]["modifiers"] = "AT;XS"
    assert fired(night(rows, ref), "NCCI_MODIFIER_MISSING").empty
    # with no modifier anywhere it still fires, and says either line would do
    f = fired(night(chiro_day("cervical", ""), ref), "NCCI_MODIFIER_MISSING")
    assert f["line_id"].tolist() == ["MT"]
    assert "without 59/XE/XS/XP/XU on either line; add XS/59 to 97140" in f["message"].iloc[0]
    assert "distinct_modifier_on=either" in f["evidence"].iloc[0]


def test_xs_same_region_only_where_xs_counts(tmp_path):
    # XS on 98940 only, both on lumbar: with column2 the XS does not count (the pair is
    # NCCI_MODIFIER_MISSING), with either it does, and claims a separate structure wrongly
    rows = chiro_day("lumbar", "", cmt_region="lumbar")
    rows[0]["modifiers"] = "AT;XS"
    n = night(rows)
    assert fired(n, "XS_SAME_REGION").empty
    assert fired(night(rows), "NCCI_MODIFIER_MISSING")["line_id"].tolist() == ["MT"]
    ref = own_reference(tmp_path, payers=payers_with({"COM02": {"distinct_modifier_on": "either"}}))
    f = fired(night(rows, ref), "XS_SAME_REGION")
    assert f["line_id"].tolist() == ["MT"] and "both treat lumbar" in f["message"].iloc[0]


# ------------------------------------------------------------ 3. non-covered codes, per line


def medicare_visit(mods_97014: str) -> list[dict]:
    """Medicare PT visit: 97110 30 min (2 units, CMS) and 97014 (untimed, 1 unit), which
    code_edits.csv says Medicare does not pay (bill G0283)."""
    return [
        row(minutes="30", units_charted="2"),
        untimed(line_id="L2", cpt_code="97014", modifiers=mods_97014),
    ]


def test_one_non_covered_line_is_not_billed_and_the_rest_goes_out():
    n = night(medicare_visit("GP"))
    f = rules.run_all(n)
    nc = f[f["code"] == "CODE_NOT_COVERED"]
    assert nc["line_id"].tolist() == ["L2"] and nc["severity"].iloc[0] == "warning"
    assert nc["message"].iloc[0] == (
        "97014 (unattended e-stim) is not valid for Medicare (payer MCR01, 2026-11-20); "
        "not billed, the rest of the claim goes out"
    )
    assert "Bill G0283 instead of 97014" == nc["suggested_fix"].iloc[0]
    assert "noncovered_modifier=(empty)" in nc["evidence"].iloc[0]
    assert reported(n) == {"L1": True, "L2": False}
    assert n.lines["units"].tolist() == [2, 1]  # the units stay as computed
    assert (f["severity"] != "error").all()  # nothing holds the claim


@pytest.mark.parametrize("mod", ["GY", "GA", "GZ"])
def test_a_line_already_carrying_gy_ga_gz_is_billed_not_held(mod):
    n = night(medicare_visit(f"GP;{mod}"))
    f = rules.run_all(n)
    nc = f[f["code"] == "CODE_NOT_COVERED"]
    assert (
        nc["message"]
        .iloc[0]
        .endswith(f"; billed with {mod} already on the line (for the denial), not held")
    )
    assert pd.isna(nc["before"].iloc[0]) and pd.isna(nc["after"].iloc[0])
    assert reported(n) == {"L1": True, "L2": True}
    assert n.lines["modifiers"].tolist() == ["GP", f"GP;{mod}"]
    assert (f["severity"] != "error").all()


def test_payer_setting_adds_the_modifier_before_after(tmp_path):
    ref = own_reference(tmp_path, payers=payers_with({"MCR01": {"noncovered_modifier": "GY"}}))
    n = night(medicare_visit("GP"), ref)
    nc = fired(n, "CODE_NOT_COVERED")
    assert nc[["before", "after"]].iloc[0].tolist() == ["GP", "GP;GY"]
    assert "billed with GY added for the denial" in nc["message"].iloc[0]
    assert "payers.csv MCR01 noncovered_modifier=GY" in nc["evidence"].iloc[0]
    assert n.lines["modifiers"].tolist() == ["GP", "GP;GY"]
    assert n.change_lists().tolist() == [[], ["modifiers +GY"]]
    assert reported(n) == {"L1": True, "L2": True}
    # four modifiers already: no room for GY (an 837 line takes 4), so not billed
    n = night(medicare_visit("GP;KX;59;CQ"), ref)
    nc = fired(n, "CODE_NOT_COVERED")
    assert "not billed: no room to add GY (4 modifiers)" in nc["message"].iloc[0]
    assert n.lines["modifiers"].tolist()[1] == "GP;KX;59;CQ"
    assert reported(n) == {"L1": True, "L2": False}


@pytest.mark.parametrize(("minutes", "fires"), [(7, False), (8, True)])
def test_only_a_line_with_units_is_looked_at(tmp_path, minutes, fires):
    # a timed code not covered (test row): 7 minutes -> 0 units, not billed anyway: no finding
    edits = (TEST_REFERENCE / "code_edits.csv").read_text() + (
        "medicare,97110,97110 not covered (test row),Remove the line,test\n"
    )
    n = night(
        [row(minutes=str(minutes), units_charted="")], own_reference(tmp_path, code_edits=edits)
    )
    assert (len(fired(n, "CODE_NOT_COVERED")) == 1) is fires
    assert reported(n) == {"L1": False}


# ------------------------------------------------------------ 4. chiropractors and Medicare


def dc_medicare(mt_mods: str = "", discipline: str = "CHIRO", payer: str = "MCR01") -> list[dict]:
    rows = chiro_day("cervical", mt_mods, payer=payer)
    for r in rows:
        # (a Medicare CMT claim carries the initial treatment date: issue 15)
        r.update(discipline=discipline, initial_treatment_date="2026-11-02")
    return rows


@pytest.mark.parametrize("discipline", ["CHIRO", "PT"])
def test_dc_97140_to_medicare_is_not_billed_and_gets_no_gp(discipline):
    # even charted under discipline PT, a DC's line never gets GP (and is not covered)
    n = night(dc_medicare(discipline=discipline))
    f = rules.run_all(n)
    assert "THERAPY_MODIFIER_ADDED" not in set(f["code"])
    assert n.lines["modifiers"].fillna("").tolist() == ["AT", ""]
    dc = f[f["code"] == "DC_SERVICE_NOT_COVERED"]
    assert dc["line_id"].tolist() == ["MT"] and dc["severity"].iloc[0] == "warning"
    assert dc["message"].iloc[0] == (
        "97140 by a chiropractor (DC) is not covered by Medicare: only spinal manipulation "
        "98940-98942 is (payer MCR01, 2026-11-20); not billed, the rest of the claim goes out"
    )
    assert dc["evidence"].iloc[0].startswith("MBPM ch. 15 240.1.1")
    assert reported(n) == {"CMT": True, "MT": False}
    # the 98940/97140 pair is not reported, so no NCCI edit; the CMT (with AT) goes out
    assert not {"NCCI_MODIFIER_MISSING", "CODE_NOT_COVERED"} & set(f["code"])
    assert (f["severity"] != "error").all()


def test_dc_97140_with_gy_is_billed_for_the_denial():
    n = night(dc_medicare("XS;GY"))
    f = fired(n, "DC_SERVICE_NOT_COVERED")
    assert (
        f["message"]
        .iloc[0]
        .endswith("billed with GY already on the line (for the denial), not held")
    )
    assert reported(n) == {"CMT": True, "MT": True}


def test_dc_rule_scope():
    # Medicare Advantage and commercial plans: no DC finding (NCCI applies as usual there)
    for payer in ("MA01", "COM01"):
        assert fired(night(dc_medicare(payer=payer)), "DC_SERVICE_NOT_COVERED").empty
    # a PT's 97140 to Medicare: covered
    assert fired(
        night([row(cpt_code="97140", technique="joint_mobilization")]), "DC_SERVICE_NOT_COVERED"
    ).empty
    # a DC's 97110 to Medicare: not covered either; 98943 has its own code_edits row: that
    # finding only, not both
    dc = {"rendering_credential": "DC", "discipline": "CHIRO"}
    n = night(
        [
            row(line_id="EX", modifiers="", **dc),
            untimed(
                line_id="XS", cpt_code="98943", modifiers="", body_region="upper_extremity", **dc
            ),
        ]
    )
    f = rules.run_all(n)
    got = f[f["code"].isin(["DC_SERVICE_NOT_COVERED", "CODE_NOT_COVERED"])]
    assert sorted(zip(got["line_id"], got["code"], strict=True)) == [
        ("EX", "DC_SERVICE_NOT_COVERED"),
        ("XS", "CODE_NOT_COVERED"),
    ]
    assert reported(n) == {"EX": False, "XS": False}


# ------------------------------------------------------------ the whole night: score statuses

RD = date(2026, 11, 28)


def night_rows() -> list[dict]:
    dc = {
        "rendering_credential": "DC",
        "discipline": "CHIRO",
        "rendering_npi": OTHER_NPI,
        "initial_treatment_date": "2026-11-02",  # a Medicare CMT claim needs it (issue 15)
    }
    chiro = {**dc, "technique": "myofascial_release", "goal_id": "G", "patient_response": "ok"}
    return [
        # E1 Medicare PT: 97110 30 min (2 units) billed; 97014 not covered -> not_billed
        row(line_id="L1", start_time="08:00", end_time="08:30", minutes="30", units_charted="2"),
        untimed(line_id="L2", cpt_code="97014", modifiers="GP", charge_amount="20.00"),
        # E2 Medicare DC: 98940 AT billed; 97140 8 min not covered -> not_billed, no NCCI
        untimed(
            line_id="C2",
            encounter_id="E2",
            patient_id="P2",
            cpt_code="98940",
            modifiers="AT",
            body_region="lumbar",
            charge_amount="55.00",
            **dc,
        ),
        row(
            line_id="M2",
            encounter_id="E2",
            patient_id="P2",
            cpt_code="97140",
            modifiers="",
            minutes="8",
            start_time="10:00",
            end_time="10:08",
            units_charted="1",
            charge_amount="45.00",
            body_region="upper_extremity",
            **chiro,
        ),
        # E3 commercial DC: 98940 billed; 97140 5 min (0 units, per_code), same region and no
        # 59/XS: not reported, so neither NCCI nor CMT_SAME_REGION holds the 98940
        untimed(
            line_id="C3",
            encounter_id="E3",
            patient_id="P3",
            payer_id="COM02",
            member_id="XYZ123",
            prior_auth_number="A1",
            cpt_code="98940",
            modifiers="",
            body_region="lumbar",
            charge_amount="55.00",
            **dc,
        ),
        row(
            line_id="M3",
            encounter_id="E3",
            patient_id="P3",
            payer_id="COM02",
            member_id="XYZ123",
            prior_auth_number="A1",
            cpt_code="97140",
            modifiers="",
            minutes="5",
            start_time="11:00",
            end_time="11:05",
            units_charted="1",
            charge_amount="45.00",
            body_region="lumbar",
            **chiro,
        ),
        # E4 Medicare PT: 97010 with GP;GY -> billed for the denial
        untimed(
            line_id="L7",
            encounter_id="E4",
            patient_id="P4",
            cpt_code="97010",
            modifiers="GP;GY",
            charge_amount="18.00",
        ),
    ]


def test_score_statuses_manifest_and_claim_files(tmp_path):
    inp = write_csv(tmp_path / "landing" / "night.csv", night_rows())
    cfg = pipeline.RunConfig(inputs=[str(inp.parent)], out=str(tmp_path / "out"), run_date=RD)
    m = pipeline.run(cfg)
    s = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet")).set_index(
        "line_id"
    )
    assert s["status"].to_dict() == {
        "L1": "billed",
        "L2": "not_billed",
        "C2": "billed",
        "M2": "not_billed",
        "C3": "billed",
        "M3": "not_billed",
        "L7": "billed",
    }
    # the excluded lines keep their units; the reasons are in exception_codes
    assert s.loc["L2", "units"] == 1 and s.loc["M2", "units"] == 1 and s.loc["M3", "units"] == 0
    assert list(s.loc["L2", "exception_codes"]) == ["CODE_NOT_COVERED"]
    assert list(s.loc["M2", "exception_codes"]) == ["DC_SERVICE_NOT_COVERED"]
    assert "UNITS_ZERO" in list(s.loc["M3", "exception_codes"])
    assert list(s.loc["L7", "exception_codes"]) == ["CODE_NOT_COVERED"]
    assert list(s.loc["L7", "modifiers"]) == ["GP", "GY"]
    # the manifest balances: 4 billed + 0 held + 3 not billed = 7 scored, 4 claims billed
    assert (m["lines_billed"], m["lines_held"], m["lines_not_billed"]) == (4, 0, 3)
    assert m["rows_scored"] == 7 and m["claims_billed"] == 4 and m["claims_held"] == 0
    assert m["balanced"] is True
    assert "NCCI_MODIFIER_MISSING" not in m["exceptions_by_code"]
    assert "CMT_SAME_REGION" not in m["exceptions_by_code"]
    # the 837s carry the billed lines only, and pass pyx12
    assert sum(f["lines"] for f in m["claim_files"]) == 4
    text = ""
    for f in sorted(Path(cfg.final("claims")).glob("*.x12")):
        ok, report = pyx12_validate(str(f))
        assert ok, report
        text += f.read_text(encoding="ascii")
    services = [seg.split("*")[1] for seg in text.split("~") if seg.strip().startswith("SV1")]
    assert sorted(services) == ["HC:97010:GP:GY", "HC:97110:GP", "HC:98940", "HC:98940:AT"]
    totals = [float(seg.split("*")[2]) for seg in text.split("~") if seg.strip().startswith("CLM")]
    assert round(sum(totals), 2) == round(90.00 + 55.00 + 55.00 + 18.00, 2)
