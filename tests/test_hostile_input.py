"""Hostile input: files built to break a reader (nesting deeper than a parser recurses, a
header of a million columns, a file with nothing in it, dates that mean the wall clock, absurd
numbers) get a clear message naming file, row, column and value, and the night goes on and
balances. Each case is checked on the reader, then all of them in one night through the CLI."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import row, to_csv, write_csv

from therapy_claims import cli, extract, layout, reference, storage
from therapy_claims.layout import COLUMN_NAMES

RD = "2026-11-28"
WALL_CLOCK = date.today()  # what pandas would have read 'today' and 'now' as


def ingest(*paths):
    return extract.ingest([str(p) for p in paths], ingested_at="2026-11-28T02:00:00Z")


def messages(got, code: str) -> list[str]:
    return got.findings.loc[got.findings["code"] == code, "message"].tolist()


def deep_line(levels: int, line_id: str = "J1") -> str:
    """One extract row as a JSON object whose extra field ``notes`` holds ``levels`` nested
    arrays: the line nests ``levels + 1`` deep (its own object is level 1)."""
    flat = json.dumps(row(line_id=line_id, encounter_id=line_id))
    return flat[:-1] + ', "notes": ' + "[" * levels + "]" * levels + "}"


def wide_header(extra: int, *, required_first: bool) -> str:
    names = [f"c{i}" for i in range(extra)]
    return ",".join([*COLUMN_NAMES, *names] if required_first else names)


# --------------------------------------------------------------------------- 1. deep nesting


def test_json_nested_beyond_the_parser_rejects_the_file_naming_the_line(tmp_path):
    (tmp_path / "deep.jsonl").write_text(
        json.dumps(row(line_id="J0", encounter_id="J0")) + "\n\n" + deep_line(100_000) + "\n"
    )
    good = write_csv(tmp_path / "good.csv", [row()])
    got = ingest(tmp_path / "deep.jsonl", good)
    # line 3 (a blank line 2 in between): 100,000 arrays inside the line's object
    assert messages(got, "FILE_REJECTED") == [
        "deep.jsonl: line 3 nests arrays/objects 100,001 levels deep; at most 64 are read; "
        "nothing in it was billed"
    ]
    info = {Path(i.path).name: i for i in got.inputs}
    assert not info["deep.jsonl"].accepted and info["deep.jsonl"].rows == 2  # non-blank lines
    assert got.raw["line_id"].tolist() == ["L1"] and got.rows_in == 1  # the night goes on
    rejected = got.findings[got.findings["code"] == "FILE_REJECTED"].iloc[0]
    assert rejected["source_file"].endswith("deep.jsonl") and pd.isna(rejected["line_id"])


def test_the_depth_limit_is_exact_and_brackets_in_strings_do_not_count(tmp_path):
    at_limit = deep_line(63, "J1")  # 64 levels: read
    # each its own patient: one charge charted three times would keep only J1
    in_text = json.dumps(
        row(line_id="J2", encounter_id="J2", patient_id="P2", patient_response="[" * 5000)
    )
    escaped = json.dumps(
        row(line_id="J3", encounter_id="J3", patient_id="P3", patient_response='\\"' + "{" * 99)
    )
    (tmp_path / "ok.jsonl").write_text("\n".join([at_limit, in_text, escaped]) + "\n")
    got = ingest(tmp_path / "ok.jsonl")
    assert sorted(got.raw["line_id"]) == ["J1", "J2", "J3"]
    assert got.raw.set_index("line_id").loc["J2", "patient_response"] == "[" * 5000
    (tmp_path / "over.jsonl").write_text(deep_line(64, "J1") + "\n")  # 65 levels
    over = ingest(tmp_path / "over.jsonl")
    assert messages(over, "FILE_REJECTED") == [
        "over.jsonl: line 1 nests arrays/objects 65 levels deep; at most 64 are read; "
        "nothing in it was billed"
    ]


def test_parquet_nested_deeper_than_arrow_reads_is_rejected(tmp_path):
    nested = pa.string()
    for _ in range(60):
        nested = pa.list_(nested)
    table = pa.table(
        {**{c: pa.array(["x"], pa.string()) for c in COLUMN_NAMES}, "notes": pa.nulls(1, nested)}
    )
    pq.write_table(table, tmp_path / "deep.parquet")
    got = ingest(tmp_path / "deep.parquet")
    [msg] = messages(got, "FILE_REJECTED")
    assert msg.startswith("deep.parquet: cannot be read as Parquet:") and "nested" in msg


# --------------------------------------------------------------------------- 2. wide headers


@pytest.mark.parametrize("required_first", [False, True], ids=["unknown", "required+unknown"])
def test_a_million_column_header_is_rejected_for_its_width_quickly(tmp_path, required_first):
    extra = 1_000_000 - (len(COLUMN_NAMES) if required_first else 0)
    p = tmp_path / "wide.csv"
    p.write_text(wide_header(extra, required_first=required_first) + "\n" + "x," * 5 + "x\n")
    tracemalloc.start()
    t0 = time.perf_counter()
    got = ingest(p)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert messages(got, "FILE_REJECTED") == [
        "wide.csv: the header row has 1,000,000 columns; at most 1,000 are read; "
        "nothing in it was billed"
    ]
    # counted on the bytes: no million names parsed (the file itself is ~9 MB)
    assert seconds < 10 and peak < 64 << 20, (seconds, peak)


def test_header_width_and_length_limits(tmp_path):
    # within 64 KiB but wider than 1,000 columns: counted exactly
    p = tmp_path / "w.csv"
    p.write_text(wide_header(2000, required_first=True) + "\n")
    assert messages(ingest(p), "FILE_REJECTED") == [
        f"w.csv: the header row has {len(COLUMN_NAMES) + 2000:,} columns; at most 1,000 are "
        "read; nothing in it was billed"
    ]
    # 1,000 columns exactly: read, the extra ones kept
    extra = [f"c{i}" for i in range(1000 - len(COLUMN_NAMES))]
    p = write_csv(tmp_path / "ok.csv", [row()], columns=[*COLUMN_NAMES, *extra])
    got = ingest(p)
    assert got.inputs[0].accepted and got.raw["line_id"].tolist() == ["L1"]
    assert set(extra) <= set(got.raw.columns)
    # few columns, but a header longer than 64 KiB
    p = tmp_path / "long.csv"
    header = ",".join([*COLUMN_NAMES, "n" * 70_000])
    p.write_text(header + "\n")
    assert messages(ingest(p), "FILE_REJECTED") == [
        f"long.csv: the header row is {len(header):,} bytes long; at most 65,536 are read; "
        "nothing in it was billed"
    ]


def test_json_object_and_parquet_of_too_many_fields_are_rejected(tmp_path):
    wide = {**row(), **{f"c{i}": "" for i in range(1000)}}
    (tmp_path / "w.jsonl").write_text(json.dumps(row(line_id="J0")) + "\n" + json.dumps(wide))
    assert messages(ingest(tmp_path / "w.jsonl"), "FILE_REJECTED") == [
        f"w.jsonl: line 2 has {len(wide):,} fields; at most 1,000 are read; "
        "nothing in it was billed"
    ]
    pd.DataFrame([wide]).to_parquet(tmp_path / "w.parquet")
    got = ingest(tmp_path / "w.parquet")
    assert messages(got, "FILE_REJECTED") == [
        f"w.parquet: has {len(wide):,} columns; at most 1,000 are read; nothing in it was billed"
    ]
    assert got.inputs[0].rows == 1


# --------------------------------------------------------------------------- 3. empty files


def test_header_only_csv_and_zero_row_parquet_are_named_as_empty(tmp_path):
    csv_path = tmp_path / "h.csv"
    csv_path.write_text(",".join(COLUMN_NAMES) + "\n\n\n")
    pd.DataFrame({c: pd.Series([], dtype="string") for c in COLUMN_NAMES}).to_parquet(
        tmp_path / "z.parquet"
    )
    good = write_csv(tmp_path / "good.csv", [row()])
    got = ingest(csv_path, tmp_path / "z.parquet", good)
    empty = got.findings[got.findings["code"] == "FILE_EMPTY"]
    assert empty["message"].tolist() == [
        f"{name}: the file has its column names but no rows; nothing came from it tonight"
        for name in ("h.csv", "z.parquet")
    ]
    assert set(empty["severity"]) == {"warning"}
    assert empty["line_id"].isna().all() and empty["source_row"].isna().all()
    assert [Path(f).name for f in empty["source_file"]] == ["h.csv", "z.parquet"]
    assert all(i.accepted for i in got.inputs) and got.raw["line_id"].tolist() == ["L1"]


# --------------------------------------------------------------------------- 5. wall-clock dates


@pytest.mark.parametrize(
    "column", ["date_of_service", "patient_dob", "subscriber_dob", "plan_of_care_end"]
)
@pytest.mark.parametrize("word", ["today", "now", "yesterday"])
def test_words_for_dates_are_not_dates(tmp_path, column, word):
    p = write_csv(
        tmp_path / "d.csv", [row(), row(line_id="L2", encounter_id="E2", **{column: word})]
    )
    got = ingest(p)
    # a date of birth is PHI: the message (the analysts' exceptions layer) gives its length
    shown = (
        f"a value of {len(word)} characters (not shown: PHI)"
        if column in layout.PHI_COLUMNS
        else f"'{word}'"
    )
    assert messages(got, "ROW_INVALID") == [
        f"d.csv row 3, column {column}: {shown} is not a date (YYYY-MM-DD)"
    ]
    assert got.quarantined["line_id"].tolist() == ["L2"]
    assert got.raw["line_id"].tolist() == ["L1"]


def test_typing_does_not_read_the_wall_clock(tmp_path):
    rows = [
        row(line_id=f"L{i}", encounter_id=f"E{i}", injury_date=w)
        for i, w in enumerate(["today", "now", "2026-11-01", ""])
    ]
    got = ingest(write_csv(tmp_path / "d.csv", rows))
    dates = pd.to_datetime(got.raw["injury_date"]).dt.date.dropna().tolist()
    assert dates == [date(2026, 11, 1)] and WALL_CLOCK not in dates


# --------------------------------------------------------------------------- absurd numbers


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("minutes", "inf", "is not a whole number"),
        ("units_charted", "-Infinity", "is not a whole number"),
        ("visit_number", "1e30", "is out of range"),
        ("minutes", "99999999999999999999", "is out of range"),
        ("charge_amount", "inf", "is not an amount"),
        ("charge_amount", "1e308", "is not an amount"),
    ],
)
def test_absurd_numbers_in_an_extract_are_named_with_their_value(tmp_path, column, value, problem):
    p = write_csv(
        tmp_path / "n.csv", [row(), row(line_id="L2", encounter_id="E2", **{column: value})]
    )
    got = ingest(p)
    assert messages(got, "ROW_INVALID") == [f"n.csv row 3, column {column}: '{value}' {problem}"]
    assert got.raw["line_id"].tolist() == ["L1"]


# --------------------------------------------------------------------------- the whole night


@pytest.fixture(scope="module")
def hostile_night(tmp_path_factory):
    """Every case above in one landing folder, run by the CLI."""
    base = tmp_path_factory.mktemp("hostile")
    landing = base / "in"
    write_csv(
        landing / "good.csv",
        [row(), row(line_id="L2", encounter_id="E2", start_time="10:00", end_time="10:30")],
    )
    landing.joinpath("deep.jsonl").write_text(
        json.dumps(row(line_id="J0", encounter_id="J0")) + "\n" + deep_line(100_000) + "\n"
    )
    landing.joinpath("wide.csv").write_text(
        wide_header(1_000_000, required_first=False) + "\n" + "x\n"
    )
    landing.joinpath("headeronly.csv").write_text(to_csv([]))
    write_csv(
        landing / "dates.csv",
        [
            row(line_id="D1", encounter_id="D1", date_of_service="today"),
            row(line_id="D2", encounter_id="D2", patient_dob="now"),
            row(line_id="D3", encounter_id="D3", injury_date="yesterday"),
            row(line_id="D4", encounter_id="D4", subscriber_dob="today"),
            row(line_id="D5", encounter_id="D5", start_time="11:00", end_time="11:30"),
        ],
    )
    out = base / "out"
    args = ["run", "--input", str(landing), "--out", str(out), "--run-date", RD, "--quiet"]
    rc = cli.main(args)
    manifest = json.loads((out / "manifest" / f"run_date={RD}.json").read_text())
    exceptions = storage.read_parquet(
        str(Path(manifest["outputs"]["exceptions"]) / "exceptions.parquet")
    )
    return rc, manifest, exceptions


def test_night_runs_balances_and_exits_1_for_the_rejected_files(hostile_night):
    rc, m, _ = hostile_night
    assert rc == 1  # the CLI's code for a night with a rejected file
    # good.csv 2 + dates.csv 5; the rejected files' rows are apart; headeronly.csv has none
    assert m["rows_in"] == 7 and m["rows_quarantined"] == 4 and m["rows_scored"] == 3
    assert (m["lines_billed"], m["lines_held"], m["lines_not_billed"]) == (3, 0, 0)
    assert m["rows_in_rejected_files"] == 2  # deep.jsonl's two lines
    assert m["balanced"] is True
    assert (
        m["rows_in"]
        == m["rows_quarantined"] + m["lines_billed"] + m["lines_held"] + m["lines_not_billed"]
    )
    inputs = {Path(i["path"]).name: i for i in m["inputs"]}
    assert {n for n, i in inputs.items() if not i["accepted"]} == {"deep.jsonl", "wide.csv"}
    assert inputs["wide.csv"]["message"] == (
        "the header row has 1,000,000 columns; at most 1,000 are read"
    )
    assert inputs["deep.jsonl"]["message"] == (
        "line 2 nests arrays/objects 100,001 levels deep; at most 64 are read"
    )
    assert inputs["headeronly.csv"]["accepted"] and inputs["headeronly.csv"]["rows"] == 0


def test_exception_report_names_rejected_and_empty_files_and_bad_dates(hostile_night):
    _, m, exc = hostile_night
    files = exc[exc["code"].isin(["FILE_REJECTED", "FILE_EMPTY"])]
    assert sorted(
        zip(files["code"], files["source_file"].map(lambda f: Path(f).name), strict=True)
    ) == [
        ("FILE_EMPTY", "headeronly.csv"),
        ("FILE_REJECTED", "deep.jsonl"),
        ("FILE_REJECTED", "wide.csv"),
    ]
    assert files["line_id"].isna().all()
    empty = files[files["code"] == "FILE_EMPTY"].iloc[0]
    assert empty["severity"] == "warning"
    assert empty["message"] == (
        "headeronly.csv: the file has its column names but no rows; nothing came from it tonight"
    )
    bad = exc[exc["code"] == "ROW_INVALID"].set_index("line_id")["message"]
    assert bad.to_dict() == {
        "D1": "dates.csv row 2, column date_of_service: 'today' is not a date (YYYY-MM-DD)",
        "D2": "dates.csv row 3, column patient_dob: a value of 3 characters (not shown: PHI) "
        "is not a date (YYYY-MM-DD)",
        "D3": "dates.csv row 4, column injury_date: 'yesterday' is not a date (YYYY-MM-DD)",
        "D4": "dates.csv row 5, column subscriber_dob: a value of 5 characters (not shown: PHI) "
        "is not a date (YYYY-MM-DD)",
    }
    assert m["exceptions_by_code"]["FILE_EMPTY"] == 1


# --------------------------------------------------------------------------- 4. reference


def test_an_absurd_reference_number_stops_the_cli_with_one_line(tmp_path, capsys):
    ref = tmp_path / "ref"
    reference.copy_default(ref)
    mue = ref / "mue.csv"
    mue.write_text(mue.read_text().replace("97012,1,3,", "97012,1e308,3,", 1))
    inp = write_csv(tmp_path / "in" / "a.csv", [row()])
    args = ["run", "--input", str(inp), "--out", str(tmp_path / "out"), "--run-date", RD]
    rc = cli.main([*args, "--reference", str(ref), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("therapy-claims:")] == [
        f"therapy-claims: error: {mue} row 2 column mue_value: '1e308' is not a whole number "
        "from 0 to 99,999"
    ]


@pytest.mark.parametrize("where", ["inside", "same", "around"])
def test_an_input_overlapping_the_output_exits_2(tmp_path, capsys, where):
    """Extracts and outputs in one folder: the night would read its own outputs as extracts."""
    root = tmp_path / "data"
    write_csv(root / "landing" / "night.csv", [row()])
    inp, out = {
        "inside": (root, root / "out"),  # the output inside the landing folder
        "same": (root / "landing", root / "landing"),
        "around": (root / "landing", root),  # the landing folder inside the output
    }[where]
    args = ["run", "--input", str(inp), "--out", str(out), "--run-date", "2026-11-28", "-q"]
    assert cli.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "overlap" in lines[0] and str(out) in lines[0]
    assert not (out / "manifest").exists()
