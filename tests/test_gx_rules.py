"""The catalogue rules the Great Expectations suites implement (region and modifier
consistency), through the real suites on typed rows."""

from __future__ import annotations

import itertools
import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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


# ------------------------------------------------------ modifier regexes without lookaround

# The modifier patterns as first written, with lookaround: Python ``re`` only. Pandas runs a pattern
# with pyarrow's RE2 (no lookaround) when it can, and otherwise calls Python ``re`` row by row.
LOOKAROUND = {
    "MODIFIER_59_WITH_X": r"^(?=.*(?:^|;)59(?:;|$))(?=.*(?:^|;)X[EPSU](?:;|$))",
    "PT": r"^(?!.*(?:^|;)GP(?:;|$)).*(?:^|;)(?:GO|GN)(?:;|$)",
    "OT": r"^(?!.*(?:^|;)GO(?:;|$)).*(?:^|;)(?:GP|GN)(?:;|$)",
    "SLP": r"^(?!.*(?:^|;)GN(?:;|$)).*(?:^|;)(?:GP|GO)(?:;|$)",
}


def _not_field(token: str) -> str:
    """A ``;``-separated field of the first line that is not ``token`` (two characters)."""
    a, b = token
    return rf"(?:[^;\n{a}][^;\n]*|{a}(?:[^;\n{b}][^;\n]*)?|{a}{b}[^;\n]+)?"


def _lacks_but_has(lacking: str, having: str) -> str:
    """Without lookaround: no ``lacking`` token but a ``having`` token (``GO|GN``) in the first
    line, tokens ending at ``;`` or ``$``. Every field is matched as not-``lacking`` up to the
    ``having`` token and after it; the last field counts as a token only where ``$`` matches
    after it (end of string or before a final newline), else any text and a newline follow."""
    n = _not_field(lacking)
    return rf"^(?:{n};)*(?:{having})(?:$|;(?:{n};)*(?:{n}$|[^;\n]*\n(?:.|\n)))"


# Without lookaround: the two tokens in either order on the first line; the first one is followed
# by ";" (the second token's ";" may be the same one).
WITHOUT_LOOKAROUND = {
    "MODIFIER_59_WITH_X": r"^.*(?:^|;)(?:59;(?:.*;)?X[EPSU]|X[EPSU];(?:.*;)?59)(?:;|$)",
    "PT": _lacks_but_has("GP", "GO|GN"),
    "OT": _lacks_but_has("GO", "GP|GN"),
    "SLP": _lacks_but_has("GN", "GP|GO"),
}

# every token the patterns name, and neighbours: near misses, lowercase, 3-character tokens, the
# empty field (leading, trailing and doubled ";") and newlines inside and at the end of a field
TOKENS = ["59", "XE", "XP", "XS", "XU", "GP", "GO", "GN", "", "X", "G", "5", "KX", "CQ", "59X",
          "GPO", "XEX", "xe", "gp", "go", "G\n", "GP\n", "\nGO", "\n"]  # fmt: skip
ODD = ["", ";", ";;", "\n", "\n\n", "59;XE\n", "59;XE\n\n", "59\n;XE", "GO\n", "GO\n\n", "GP\nGO"]


def _modifier_lists() -> list[str]:
    out = list(ODD)
    for k in range(1, 5):
        out += [";".join(combo) for combo in itertools.product(TOKENS, repeat=k)]
    return list(dict.fromkeys(out))


def _suite_regex(rule_code: str, discipline: str | None) -> str:
    suite = json.loads(
        (gx_checks.expectations_dir() / "expectations" / "modifier_consistency.json").read_text()
    )
    for e in suite["expectations"]:
        condition = e["kwargs"].get("row_condition")
        if e["meta"]["rule_code"] == rule_code and (
            (condition or {}).get("parameter") == discipline
        ):
            return e["kwargs"]["regex"]
    raise AssertionError(f"no {rule_code} expectation for {discipline}")


def test_suite_modifier_regexes_are_the_ones_proven_here():
    assert _suite_regex("MODIFIER_59_WITH_X", None) == WITHOUT_LOOKAROUND["MODIFIER_59_WITH_X"]
    for discipline in ("PT", "OT", "SLP"):
        assert (
            _suite_regex("THERAPY_MODIFIER_MISMATCH", discipline)
            == (WITHOUT_LOOKAROUND[discipline])
        )


@pytest.mark.parametrize("name", list(LOOKAROUND))
def test_modifier_regex_without_lookaround_matches_exactly_what_the_lookaround_one_did(name):
    old, new = re.compile(LOOKAROUND[name]), WITHOUT_LOOKAROUND[name]
    assert not any(tok in new for tok in ("(?=", "(?!", "(?<"))
    values = _modifier_lists()
    assert len(values) > 300_000
    expected = [old.search(v) is not None for v in values]
    assert 0 < sum(expected) < len(values)
    # Python re, every value (newlines included: Python's "$" also matches before a final "\n")
    new_re = re.compile(new)
    assert [new_re.search(v) is not None for v in values] == expected
    # RE2 (pyarrow) on every value without a newline ("$" is end of text there)
    flat = [v for v in values if "\n" not in v]
    flat_expected = [old.search(v) is not None for v in flat]
    assert pc.match_substring_regex(pa.array(flat), new).to_pylist() == flat_expected
    # and pandas, as GX calls it: RE2 for the flat values, Python re once a value has a newline
    assert pd.Series(flat, dtype="str").str.contains(new).tolist() == flat_expected
    assert pd.Series(values, dtype="str").str.contains(new).tolist() == expected


def test_cmt_region_count_is_the_same_on_categoricals_and_on_text():
    """GX is handed text as Categoricals; the CMT check works on their distinct values and must
    give what it gives on the plain text."""
    import great_expectations as gx

    gx_checks.load_suite("region_consistency")  # registers the custom expectation
    regions = [
        "lumbar",
        "lumbar;thoracic",
        "lumbar;thoracic;cervical",
        "lumbar;thoracic;cervical;upper_extremity",
        "cervical;thoracic;lumbar;sacral;pelvic",
        "lumbar;lumbar",
        "Lumbar;knee",
        None,
        "head;rib_cage",
    ]
    codes = ["98940", "98941", "98942", "97140", None, "9894"]
    rows = [(c, r) for c in codes for r in regions]
    text = pd.DataFrame(
        {
            "cpt_code": pd.array([c for c, _ in rows], dtype="string"),
            "body_region": pd.array([r for _, r in rows], dtype="string"),
        }
    )
    categorical = text.astype("category")
    ctx = gx.get_context(mode="ephemeral")
    bd = (
        ctx.data_sources.add_pandas(name="p")
        .add_dataframe_asset(name="a")
        .add_batch_definition_whole_dataframe("b")
    )
    suite = gx.ExpectationSuite(
        name="cmt",
        expectations=[
            {
                "type": "expect_column_pair_cmt_region_count",
                "kwargs": {"column_A": "cpt_code", "column_B": "body_region"},
            }
        ],
    )
    out = []
    for frame in (text, categorical):
        batch = bd.get_batch(batch_parameters={"dataframe": frame})
        r = batch.validate(suite, result_format={"result_format": "COMPLETE"}).results[0]
        out.append(r.result)
    assert out[0] == out[1]
    # spinal regions per list: 1, 2, 3, 3, 5, 1 (lumbar twice), 0 (case matters), -, 0;
    # 98940 (1-2) fails 5 of the 8 lists with a region, 98941 (3-4) 6, 98942 (5) 7
    assert out[0]["unexpected_count"] == 5 + 6 + 7
