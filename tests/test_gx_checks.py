"""GX suites on the typed raw rows: therapy_claims.gx_checks + expectations/*.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from therapy_claims import findings, gx_checks, layout

RUN_DATE = "2025-01-16"


def _time_minute(hhmm: str | None):
    if hhmm is None:
        return pd.NA
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _base_row(i: int) -> dict:
    return {
        "line_id": f"L{i:04d}",
        "encounter_id": f"E{i // 2:04d}",
        "clinic_id": "C01",
        "date_of_service": "2025-01-15",
        "patient_id": f"P{i:04d}",
        "patient_last_name": "Doe",
        "patient_first_name": "Jane",
        "patient_dob": "1970-03-02",
        "patient_sex": "F",
        "patient_address": "1 Main St",
        "patient_city": "Springfield",
        "patient_state": "IL",
        "patient_zip": "62701",
        "payer_id": "MCR",
        "member_id": "1EG4TE5MK72",
        "subscriber_relationship": "self",
        "rendering_npi": "1234567893",
        "rendering_last_name": "Smith",
        "rendering_first_name": "Pat",
        "rendering_credential": "PT",
        "discipline": "PT",
        "cpt_code": "97140",
        "modifiers": "GP",
        "minutes": 30,
        "start_time": "09:00",
        "end_time": "09:30",
        "units_charted": 2,
        "charge_amount": 120.0,
        "diagnosis_codes": "M54.50",
        "diagnosis_pointers": "1",
        "body_region": "lumbar",
        "technique": "joint_mobilization",
        "group_size": 1,
        "place_of_service": "11",
    }


def typed_frame(*overrides: dict) -> pd.DataFrame:
    """One typed raw row per ``overrides`` dict (None = missing), as the raw layer holds them."""
    rows = []
    for i, ov in enumerate(overrides, start=1):
        row = _base_row(i)
        row.update(ov)
        rows.append(row)
    data = {}
    for col in layout.COLUMNS:
        values = [r.get(col.name) for r in rows]
        if col.kind == "date":
            data[col.name] = pd.to_datetime(pd.Series(values, dtype="object"))
        elif col.kind == "int":
            data[col.name] = pd.array(values, dtype="Int64")
        elif col.kind == "decimal":
            data[col.name] = pd.Series(values, dtype="float64")
        else:  # str, enum, list, time
            data[col.name] = pd.array(values, dtype="string")
    df = pd.DataFrame(data)
    df["start_minute"] = pd.array([_time_minute(r.get("start_time")) for r in rows], dtype="Int64")
    df["end_minute"] = pd.array([_time_minute(r.get("end_time")) for r in rows], dtype="Int64")
    df["source_file"] = pd.array(["encounters_20250116.csv"] * len(rows), dtype="string")
    df["source_row"] = pd.array(range(2, len(rows) + 2), dtype="Int64")
    df["ingested_at"] = pd.Timestamp("2025-01-16T02:00:00Z")
    return df


def _codes_by_line(f: pd.DataFrame, code: str) -> set[str]:
    return set(f.loc[f["code"] == code, "line_id"])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / f"validation/run_date={RUN_DATE}"
    df = typed_frame({}, {"cpt_code": "97110", "body_region": None, "technique": None}, {})
    f, summary = gx_checks.run_suites(df, str(out), RUN_DATE)
    return f, summary, out


@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty") / f"validation/run_date={RUN_DATE}"
    df = typed_frame(
        {},  # L0001 clean
        {"start_time": "10:00", "end_time": "10:00"},  # L0002 end == start
        {"minutes": 45, "start_time": "09:00", "end_time": "09:30"},  # L0003 45 in 30
        {"minutes": 30, "start_time": "11:00", "end_time": "11:30"},  # L0004 30 in 30: fine
        {"patient_state": None},  # L0005 required column missing
        {"minutes": 500, "start_time": None, "end_time": None},  # L0006 > 480
        {"start_time": None, "end_time": "09:30"},  # L0007 incomplete times: not checkable
        {"patient_sex": "X", "rendering_npi": "12345"},  # L0008 enum + pattern
    )
    df.index = range(100, 100 + len(df))  # a non-default index must not matter
    f, summary = gx_checks.run_suites(df, str(out), RUN_DATE)
    return f, summary, out


def test_clean_frame_has_no_findings_and_succeeds(clean_run):
    f, summary, _ = clean_run
    assert f.empty
    assert list(f.columns) == findings.FINDING_COLUMNS
    assert set(summary) == set(gx_checks.SUITES)
    for name, s in summary.items():
        assert s["success"] is True, name
        assert s["failed_expectations"] == 0 and s["failing_rows"] == 0
        assert s["evaluated"] == len(gx_checks.load_suite(name).expectations)
    json.dumps(summary)  # small and JSON-able (goes to XCom / the manifest)


def test_findings_frame_has_exactly_the_finding_columns(dirty_run):
    f, _, _ = dirty_run
    assert list(f.columns) == findings.FINDING_COLUMNS
    assert f.equals(findings.normalise(f))


def test_end_not_after_start_fires_time_inconsistent_for_that_line(dirty_run):
    f, _, _ = dirty_run
    pair = f[f["evidence"].str.contains("expect_column_pair_values_a_to_be_greater_than_b")]
    assert set(pair["line_id"]) == {"L0002"}
    row = pair.iloc[0]
    assert row["code"] == "TIME_INCONSISTENT" and row["severity"] == "error"
    assert row["message"] == "end_time 10:00 is not after start_time 10:00"
    assert row["encounter_id"] == "E0001"
    assert row["source_file"] == "encounters_20250116.csv" and row["source_row"] == 3
    assert row["evidence"].startswith("GX suite time_consistency: ")


def test_minutes_beyond_the_time_window_fire_and_the_boundary_does_not(dirty_run):
    f, _, _ = dirty_run
    span = f[f["evidence"].str.contains("expect_multicolumn_value_to_be_at_most_span")]
    # L0003 (45 in 30) fires; L0004 (30 in 30) passes; L0002 (end == start) is the
    # end-after-start expectation's finding and is not reported a second time here
    assert set(span["line_id"]) == {"L0003"}
    assert len(f[f["line_id"] == "L0002"]) == 1
    msg = span.loc[span["line_id"] == "L0003", "message"].iloc[0]
    assert msg == "minutes 45 exceed end_time - start_time = 30 (09:00-09:30)"
    assert "L0004" not in set(f["line_id"])
    assert _codes_by_line(f, "TIME_INCONSISTENT") == {"L0002", "L0003", "L0006"}


def test_minutes_sanity_cap_and_missing_times(dirty_run):
    f, _, _ = dirty_run
    cap = f[f["line_id"] == "L0006"]
    assert list(cap["code"]) == ["TIME_INCONSISTENT"]
    assert cap["message"].iloc[0] == "minutes 500 is above the maximum 480"
    assert "L0007" not in set(f["line_id"])  # start missing: nothing to compare


def test_null_required_column_fires_row_invalid_naming_the_column(dirty_run):
    f, _, _ = dirty_run
    bad = f[(f["line_id"] == "L0005")]
    assert list(bad["code"]) == ["ROW_INVALID"]
    assert "patient_state" in bad["message"].iloc[0]
    assert "expect_column_values_to_not_be_null" in bad["evidence"].iloc[0]
    assert '"column": "patient_state"' in bad["evidence"].iloc[0]


def test_enum_and_pattern_violations_name_column_and_value(dirty_run):
    f, _, _ = dirty_run
    msgs = set(f.loc[f["line_id"] == "L0008", "message"])
    assert "patient_sex 'X' is not one of M, F, U" in msgs
    assert any(m.startswith("rendering_npi '12345' does not match") for m in msgs)
    assert set(f.loc[f["line_id"] == "L0008", "code"]) == {"ROW_INVALID"}


def test_summary_counts(dirty_run):
    _, summary, _ = dirty_run
    t = summary["time_consistency"]
    assert t == {"success": False, "evaluated": 3, "failed_expectations": 3, "failing_rows": 3}
    s = summary["extract_schema"]
    assert s["success"] is False and s["failed_expectations"] == 3 and s["failing_rows"] == 2


def test_results_json_and_data_docs_are_written(dirty_run, clean_run):
    _, _, out = dirty_run
    for name in gx_checks.SUITES:
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["meta"]["run_date"] == RUN_DATE
        assert doc["statistics"]["evaluated_expectations"] == len(doc["results"])
    doc = json.loads((out / "time_consistency.json").read_text())
    failing = {
        r["expectation_config"]["type"]: r["failing_line_ids"]
        for r in doc["results"]
        if not r["success"]
    }
    assert failing["expect_column_pair_values_a_to_be_greater_than_b"] == ["L0002"]
    assert sorted(failing["expect_multicolumn_value_to_be_at_most_span"]) == ["L0003"]
    # SUMMARY level: no full unexpected lists in the file
    assert all("unexpected_index_list" not in r["result"] for r in doc["results"])
    index = out / "data_docs" / "index.html"
    assert index.is_file() and "time_consistency" in index.read_text()
    assert (clean_run[2] / "data_docs" / "index.html").is_file()
    assert not Path("gx").exists()  # no GX project folder left in the working directory


def test_batches_are_not_fingerprinted_and_gx_is_left_as_it_was(dirty_run):
    """GX's batch fingerprint (an md5 of the whole frame, 0.7 s at 1M lines) is skipped within
    run_suites only: GX's own threshold is back afterwards."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    _, _, out = dirty_run
    for name in gx_checks.SUITES:
        text = (out / f"{name}.json").read_text()
        assert "batch_markers" in text and "pandas_data_fingerprint" not in text
    assert engine.HASH_THRESHOLD == 1e9


@pytest.mark.parametrize("ids", [["L3", "L1", "L2"], ["L3", "L1", "L3"], ["L3", None, "L2"]])
def test_line_ids_become_the_same_categorical_as_any_text_column(ids):
    """Distinct line_ids skip the dictionary (each its own category, in row order); repeated
    or missing ones take the general path; either way the same Categorical as another column."""
    s = pd.Series(pd.array(ids, dtype="string"), name=gx_checks.ID_COLUMN)
    got = gx_checks._gx_column(s)
    general = gx_checks._gx_column(s.rename("encounter_id"))
    assert list(got.cat.categories) == list(general.cat.categories)
    assert got.cat.codes.tolist() == general.cat.codes.tolist()
    assert got.astype(object).where(got.notna(), None).tolist() == ids


def test_duplicate_line_id_is_reported_and_findings_stay_on_the_right_twin(tmp_path):
    df = typed_frame({}, {}, {"start_time": "10:00", "end_time": "09:50"}, {"line_id": None})
    df.loc[2, "line_id"] = "L0001"  # third row reuses the first row's id
    f, summary = gx_checks.run_suites(df, str(tmp_path / "v"), RUN_DATE)
    dup = f[f["code"] == "DUPLICATE_LINE"]
    assert sorted(dup["source_row"].tolist()) == [2, 4]
    assert set(dup["message"]) == {"line_id 'L0001' occurs more than once in the night"}
    time_rows = f.loc[f["code"] == "TIME_INCONSISTENT", "source_row"]
    assert set(time_rows) == {4}  # only the twin with the bad times
    assert summary["time_consistency"]["failing_rows"] == 1
    missing_id = f[f["code"] == "ROW_INVALID"]
    assert missing_id["source_row"].tolist() == [5]
    assert missing_id["message"].iloc[0] == "required column line_id is empty"


def test_missing_column_is_a_clear_error(tmp_path):
    df = typed_frame({}).drop(columns=["end_minute"])
    with pytest.raises(ValueError, match="end_minute"):
        gx_checks.run_suites(df, str(tmp_path / "v"), RUN_DATE, suites=("time_consistency",))


# ------------------------------------------------------------------------ loading suites


def test_expectations_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(gx_checks.ENV_EXPECTATIONS, raising=False)
    project = gx_checks.expectations_dir()
    assert (project / "great_expectations.yml").is_file()
    assert (project / "expectations" / "extract_schema.json").is_file()
    shutil.copytree(project, tmp_path / "p")
    monkeypatch.setenv(gx_checks.ENV_EXPECTATIONS, str(tmp_path / "p"))
    assert gx_checks.expectations_dir() == tmp_path / "p"
    # a folder without great_expectations.yml is not a GX project: an error, not a fallback
    monkeypatch.setenv(gx_checks.ENV_EXPECTATIONS, str(tmp_path))
    with pytest.raises(gx_checks.SuiteError, match="not found"):
        gx_checks.expectations_dir()
    monkeypatch.setenv(gx_checks.ENV_EXPECTATIONS, str(tmp_path / "nope"))
    with pytest.raises(gx_checks.SuiteError, match="not found"):
        gx_checks.expectations_dir()


@pytest.mark.parametrize("name", gx_checks.SUITES)
def test_every_suite_loads_fully_with_catalogue_rule_codes(name):
    listed = json.loads(_suite_file(gx_checks.expectations_dir(), name).read_text())
    suite = gx_checks.load_suite(name)
    assert len(suite.expectations) == len(listed["expectations"]) > 0
    assert all(e.meta["rule_code"] for e in suite.expectations)


def test_schema_suite_covers_the_layout():
    suite = gx_checks.load_suite("extract_schema")
    by_type: dict[str, set[str]] = {}
    for e in suite.expectations:
        by_type.setdefault(e.expectation_type, set()).add(e.configuration.kwargs.get("column"))
    assert set(layout.REQUIRED_COLUMNS) <= by_type["expect_column_values_to_not_be_null"]
    enums = {c.name for c in layout.COLUMNS if c.kind == "enum"}
    assert enums <= by_type["expect_column_values_to_be_in_set"]
    patterns = {c.name for c in layout.COLUMNS if c.pattern}
    assert patterns <= by_type["expect_column_values_to_match_regex_per_value"]
    assert "line_id" in by_type["expect_column_values_to_be_unique"]
    assert {"minutes", "units_charted", "group_size", "charge_amount"} <= by_type[
        "expect_column_values_to_be_between"
    ]


def _suite_file(project: Path, name: str) -> Path:
    return project / "expectations" / f"{name}.json"


def _temp_expectations(tmp_path, monkeypatch, name="time_consistency", edit=None) -> Path:
    """A copy of the GX project holding only the suite ``name`` (edited by ``edit``)."""
    d = tmp_path / "project"
    shutil.copytree(gx_checks.expectations_dir(), d)
    data = json.loads(_suite_file(d, name).read_text())
    if edit:
        edit(data)
    for other in (d / "expectations").glob("*.json"):
        other.unlink()
    _suite_file(d, name).write_text(json.dumps(data))
    monkeypatch.setenv(gx_checks.ENV_EXPECTATIONS, str(d))
    return d


def test_load_suite_raises_on_unknown_expectation_type(tmp_path, monkeypatch):
    def edit(data):
        data["expectations"][0]["type"] = "expect_minutes_to_be_made_up"

    _temp_expectations(tmp_path, monkeypatch, edit=edit)
    with pytest.raises(gx_checks.SuiteError, match="expect_minutes_to_be_made_up"):
        gx_checks.load_suite("time_consistency")


def test_load_suite_raises_on_empty_suite(tmp_path, monkeypatch):
    _temp_expectations(tmp_path, monkeypatch, edit=lambda d: d.update(expectations=[]))
    with pytest.raises(gx_checks.SuiteError, match="0 loaded"):
        gx_checks.load_suite("time_consistency")


def test_load_suite_raises_on_unknown_rule_code(tmp_path, monkeypatch):
    def edit(data):
        data["expectations"][0]["meta"]["rule_code"] = "TIME_WEIRD"

    _temp_expectations(tmp_path, monkeypatch, edit=edit)
    with pytest.raises(gx_checks.SuiteError, match="TIME_WEIRD"):
        gx_checks.load_suite("time_consistency")


def test_load_suite_raises_on_missing_suite_file(tmp_path, monkeypatch):
    _temp_expectations(tmp_path, monkeypatch)
    with pytest.raises(gx_checks.SuiteError, match="not found"):
        gx_checks.load_suite("extract_schema")


def test_load_suite_raises_when_custom_expectations_are_not_importable(monkeypatch):
    monkeypatch.setitem(sys.modules, gx_checks.CUSTOM_EXPECTATIONS_MODULE, None)
    with pytest.raises(gx_checks.SuiteError, match="custom GX expectations"):
        gx_checks.load_suite("time_consistency")


def test_fresh_process_imports_no_gx_at_import_and_loads_the_custom_expectation(tmp_path):
    """The GX gotcha: in a fresh process a suite naming a custom type loads EMPTY unless the
    class was imported. load_suite imports it; importing gx_checks does not import GX."""
    code = (
        "import sys\n"
        "import therapy_claims.gx_checks as g\n"
        "assert 'great_expectations' not in sys.modules, 'GX imported at module import'\n"
        "s = g.load_suite('time_consistency')\n"
        "print(sorted(e.expectation_type for e in s.expectations))\n"
    )
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    env.pop(gx_checks.ENV_EXPECTATIONS, None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "expect_multicolumn_value_to_be_at_most_span" in done.stdout
    assert not (tmp_path / "gx").exists()


def test_rerun_replaces_data_docs(tmp_path):
    out = tmp_path / "v"
    df = typed_frame({})
    gx_checks.run_suites(df, str(out), RUN_DATE, suites=("time_consistency",))
    first = sorted(p for p in (out / "data_docs" / "validations").rglob("*.html"))
    gx_checks.run_suites(df, str(out), RUN_DATE, suites=("time_consistency",))
    second = sorted(p for p in (out / "data_docs" / "validations").rglob("*.html"))
    assert len(first) == len(second) == 1
    shutil.rmtree(out)


def test_positions_are_sorted_unique_index_labels():
    assert gx_checks._positions([3, 1, 3]).tolist() == [1, 3]
    assert gx_checks._positions([]).tolist() == []
    assert gx_checks._positions(None).tolist() == []


def test_many_failing_rows_are_rerun_and_land_on_their_own_rows(tmp_path):
    """More failing rows than SUMMARY lists (20) take the COMPLETE re-run; a duplicated or
    missing line_id among them must not move a finding to another row."""
    bad_times = {"start_time": "10:00", "end_time": "09:00"}
    rows = [{} for _ in range(60)]
    for i in range(5, 60, 2):  # 28 rows with end before start
        rows[i] = dict(bad_times)
    for i in range(0, 50, 2):  # 25 rows with an unknown sex
        rows[i] = {**rows[i], "patient_sex": "X"}
    df = typed_frame(*rows)
    df.loc[7, "line_id"] = df.loc[0, "line_id"]  # a failing row shares its id with a clean one
    df.loc[9, "line_id"] = None
    f, summary = gx_checks.run_suites(df, str(tmp_path / "v"), RUN_DATE)

    def source_rows(code: str, text: str) -> list[int]:
        hit = f[(f["code"] == code) & f["evidence"].str.contains(text, regex=False)]
        return sorted(hit["source_row"].tolist())

    # source_row is the 0-based position + 2
    assert source_rows("TIME_INCONSISTENT", "a_to_be_greater_than_b") == [
        i + 2 for i in range(5, 60, 2)
    ]
    assert source_rows("ROW_INVALID", '"patient_sex", "value_set"') == [
        i + 2 for i in range(0, 50, 2)
    ]
    assert summary["time_consistency"]["failing_rows"] == 28
    doc = json.loads((tmp_path / "v" / "time_consistency.json").read_text())
    failing = [r for r in doc["results"] if not r["success"]]
    assert len(failing) == 1 and len(failing[0]["failing_line_ids"]) == 28
    assert failing[0]["result"]["unexpected_count"] == 28


def test_gx_is_given_only_the_columns_its_expectations_check():
    frame = typed_frame({})
    converted: dict = {}
    region = gx_checks._gx_columns(
        frame, gx_checks.load_suite("region_consistency"), "r", converted
    )
    # date_of_service is shown by the messages only; line_id is not checked by this suite
    assert set(region) == {"cpt_code", "body_region"}
    schema = gx_checks._gx_columns(frame, gx_checks.load_suite("extract_schema"), "s", converted)
    assert "line_id" in schema
    assert set(converted) == set(region) | set(schema)


def test_an_expectation_gx_cannot_evaluate_raises_after_writing_results(tmp_path):
    df = typed_frame({}, {"minutes": 45})
    df["minutes"] = df["minutes"].astype("string")  # typing bug upstream: between() raises
    out = tmp_path / "v"
    with pytest.raises(gx_checks.SuiteError, match="expect_column_values_to_be_between"):
        gx_checks.run_suites(df, str(out), RUN_DATE, suites=("time_consistency",))
    assert (out / "time_consistency.json").is_file()
    assert (out / "data_docs" / "index.html").is_file()


def test_empty_frame_passes(tmp_path):
    f, summary = gx_checks.run_suites(typed_frame({}).iloc[0:0], str(tmp_path / "v"), RUN_DATE)
    assert f.empty and list(f.columns) == findings.FINDING_COLUMNS
    assert all(s["success"] and s["failing_rows"] == 0 for s in summary.values())


# ------------------------------------------------------------------ custom expectations, per value


def test_per_value_evaluates_once_per_distinct_value_and_spreads_by_code():
    from therapy_claims.gx_expectations import per_value

    seen: list[list] = []

    def fn(values: pd.Series) -> pd.Series:
        seen.append(values.tolist())
        return values.astype("string").fillna("<NA>").str.len()

    values = pd.Series(
        pd.Categorical(["ab", None, "c", "ab", "c"], categories=["c", "ab", "unused"]),
        index=[10, 11, 12, 13, 14],
    )
    out = per_value(values, fn)
    assert out.tolist() == [2, 4, 1, 2, 1] and list(out.index) == [10, 11, 12, 13, 14]
    assert len(seen) == 1 and len(seen[0]) == 4  # 3 categories + the missing value
    # no missing row: the missing value is not evaluated
    assert per_value(values.dropna(), fn).tolist() == [2, 1, 2, 1] and len(seen[1]) == 3
    # anything but a Categorical goes to fn as it is
    plain = pd.Series(["ab", None], dtype="string")
    assert per_value(plain, fn).tolist() == [2, 4] and seen[2] == ["ab", pd.NA]


REGEX_CASES = [
    ("expect_column_values_to_match_regex", r"^[A-Z0-9]{2}(?:;[A-Z0-9]{2}){0,3}$", {}),
    ("expect_column_values_to_not_match_regex", r"(?:^|;)(?:GP|GO|GN)(?:;|$).*(?:GP|GO)", {}),
    ("expect_column_values_to_match_regex", r"^G", {"mostly": 0.5}),
    # lookaround: Python re, row by row for the built-in, value by value for the custom one
    ("expect_column_values_to_not_match_regex", r"^(?=.*59)(?=.*X)", {}),
    (
        "expect_column_values_to_not_match_regex",
        r"GO",
        {
            "row_condition": {
                "type": "comparison",
                "column": {"name": "discipline"},
                "operator": "==",
                "parameter": "PT",
            }
        },
    ),
]


@pytest.mark.parametrize(("builtin", "regex", "extra"), REGEX_CASES)
def test_per_value_regex_expectations_give_exactly_the_builtin_results(builtin, regex, extra):
    """Same success, counts, percentages and failing rows as GX's own regex expectations, for a
    Categorical column with missing values, newlines and unused categories."""
    import great_expectations as gx

    gx_checks.load_suite("modifier_consistency")  # registers the custom expectations
    values = ["GP", "GP;59", "GO;XS;59", None, "gp", "GP\nGO", "GO;GP", "", "59;XE", None, "X"]
    values = (values * 7)[:71]
    frame = pd.DataFrame(
        {
            "modifiers": pd.Categorical(values, categories=sorted({*filter(None, values), "ZZ"})),
            "discipline": pd.Categorical((["PT", "OT", "SLP"] * 24)[:71]),
        }
    )
    ctx = gx.get_context(mode="ephemeral")
    batch = (
        ctx.data_sources.add_pandas(name="p")
        .add_dataframe_asset(name="a")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    results = {}
    for etype in (builtin, builtin + gx_checks.PER_VALUE_SUFFIX):
        suite = gx.ExpectationSuite(
            name=etype,
            expectations=[
                {"type": etype, "kwargs": {"column": "modifiers", "regex": regex, **extra}}
            ],
        )
        for fmt in ("SUMMARY", "COMPLETE"):
            r = batch.validate(suite, result_format={"result_format": fmt}).results[0]
            assert not r.exception_info.get("raised_exception"), r.exception_info
            results[etype, fmt] = (r.success, r.result)
    for fmt in ("SUMMARY", "COMPLETE"):
        assert results[builtin, fmt] == results[builtin + gx_checks.PER_VALUE_SUFFIX, fmt]
    assert results[builtin, "COMPLETE"][1]["unexpected_count"] > 0
    if "row_condition" in extra:  # only the PT rows were checked
        assert results[builtin, "COMPLETE"][1]["element_count"] == 24
