"""The catalogue rules the Great Expectations suites implement (region and modifier
consistency), through the real suites on typed rows."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import row

from therapy_claims import extract, gx_checks
from therapy_claims.layout import COLUMN_NAMES


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    rows = [
        row(
            line_id="OK",
            cpt_code="97140",
            body_region="lumbar;cervical",
            technique="joint_mobilization",
        ),
        row(line_id="NOREG", cpt_code="97140", body_region=""),
        row(line_id="BADREG", cpt_code="97140", body_region="lumbar;knee"),
        row(
            line_id="CMT1",
            cpt_code="98940",
            body_region="lumbar;thoracic",
            discipline="CHIRO",
            rendering_credential="DC",
            modifiers="AT",
        ),
        row(
            line_id="CMT3",
            cpt_code="98940",
            body_region="lumbar;thoracic;cervical",
            discipline="CHIRO",
            rendering_credential="DC",
            modifiers="AT",
        ),
        row(
            line_id="CMT41",
            cpt_code="98941",
            body_region="lumbar;thoracic;cervical;upper_extremity",
            discipline="CHIRO",
            rendering_credential="DC",
            modifiers="AT",
        ),
        row(
            line_id="CMT5",
            cpt_code="98942",
            body_region="lumbar;thoracic;cervical;sacral;pelvic",
            discipline="CHIRO",
            rendering_credential="DC",
            modifiers="AT",
        ),
        row(line_id="EX", cpt_code="97110", body_region=""),  # no region needed
        row(line_id="MODLONG", modifiers="GP;59;KX;76;77"),
        row(line_id="MODBAD", modifiers="GP;5"),
        row(line_id="59X", modifiers="GP;59;XS"),
        row(line_id="XONLY", modifiers="GP;XS"),
        row(line_id="TWOTHER", modifiers="GP;GO"),
        row(line_id="PTGO", modifiers="GO"),
        row(line_id="OTGO", modifiers="GO", discipline="OT", rendering_credential="OT"),
    ]
    strings = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows]).astype("string")
    strings["source_file"] = "t.csv"
    strings["source_row"] = pd.array(range(2, len(rows) + 2), dtype="Int64")
    typed, _, bad = extract.type_rows(strings)
    assert not bad.any()
    f, summary = gx_checks.run_suites(typed, str(tmp_path_factory.mktemp("gx")), "2026-11-28")
    return f, summary


def lines(f, code):
    return sorted(f.loc[f["code"] == code, "line_id"])


def test_region_rules(found):
    f, summary = found
    assert lines(f, "REGION_MISSING") == ["NOREG"]
    assert lines(f, "REGION_INVALID") == ["BADREG"]
    msg = f.loc[f["code"] == "REGION_INVALID", "message"].iloc[0]
    assert "body_region 'lumbar;knee' is not from the documented list" in msg
    assert not summary["region_consistency"]["success"]


def test_cmt_region_count_boundaries(found):
    f, _ = found
    # 98940 with 3 spinal regions fails; 98941 with 3 spinal (+1 extraspinal) passes; 98942 with 5 passes
    assert lines(f, "CMT_REGION_COUNT") == ["CMT3"]


def test_modifier_rules(found):
    f, _ = found
    assert lines(f, "MODIFIER_INVALID") == ["MODBAD", "MODLONG"]
    assert lines(f, "MODIFIER_59_WITH_X") == ["59X"]
    assert lines(f, "THERAPY_MODIFIER_MISMATCH") == ["PTGO", "TWOTHER"]
    msg = f.loc[
        (f["code"] == "THERAPY_MODIFIER_MISMATCH") & (f["line_id"] == "PTGO"), "message"
    ].iloc[0]
    assert "is a PT line but carries 'GO'" in msg


def test_clean_lines_have_no_gx_findings(found):
    f, _ = found
    for line_id in ("OK", "CMT1", "CMT41", "CMT5", "EX", "XONLY", "OTGO"):
        assert line_id not in set(f["line_id"]), f[f["line_id"] == line_id][["code", "message"]]


def test_all_four_suites_ran(found):
    _, summary = found
    assert set(summary) == {
        "extract_schema",
        "time_consistency",
        "region_consistency",
        "modifier_consistency",
    }
