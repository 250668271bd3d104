"""Reading and typing extracts: bad input gets a clear message and nothing is lost."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from factories import row, to_csv, write_csv

from therapy_claims import extract
from therapy_claims.layout import COLUMN_NAMES, REQUIRED_COLUMNS


def ingest(*paths):
    return extract.ingest([str(p) for p in paths], ingested_at="2026-11-28T02:00:00Z")


def codes(got):
    return sorted(got.findings["code"].tolist())


def accounted(got) -> bool:
    return got.rows_in == len(got.raw) + len(got.quarantined)


def test_clean_file_types_every_column(tmp_path):
    p = write_csv(
        tmp_path / "a.csv",
        [
            row(),
            row(line_id="L2", cpt_code="97140", minutes="8", start_time="9:30", end_time="09:38"),
        ],
    )
    got = ingest(p)
    assert codes(got) == [] and len(got.raw) == 2 and got.inputs[0].accepted
    r = got.raw.iloc[1]
    assert r["date_of_service"] == pd.Timestamp("2026-11-20")
    assert r["minutes"] == 8 and str(got.raw["minutes"].dtype) == "Int64"
    assert r["start_time"] == "09:30" and r["start_minute"] == 570 and r["end_minute"] == 578
    assert r["charge_amount"] == 90.0
    assert got.raw["source_row"].tolist() == [2, 3]
    assert set(COLUMN_NAMES) <= set(got.raw.columns)
    assert {"source_file", "source_row", "ingested_at"} <= set(got.raw.columns)


def test_missing_required_column_rejects_file(tmp_path):
    cols = [c for c in COLUMN_NAMES if c != "payer_id"]
    p = write_csv(tmp_path / "nopayer.csv", [row()], columns=cols)
    got = ingest(p)
    assert codes(got) == ["FILE_REJECTED"]
    msg = got.findings["message"].iloc[0]
    assert "nopayer.csv" in msg and "payer_id" in msg
    assert not got.inputs[0].accepted and got.raw.empty


def test_bad_date_and_negative_minutes_quarantine_with_column_and_value(tmp_path):
    p = write_csv(
        tmp_path / "x.csv",
        [
            row(),
            row(line_id="L2", date_of_service="2026-13-45"),
            row(line_id="L3", minutes="-5"),
        ],
    )
    got = ingest(p)
    f = got.findings.set_index("line_id")
    assert f.loc["L2", "code"] == "ROW_INVALID"
    assert (
        "x.csv row 3, column date_of_service: '2026-13-45' is not a date" in f.loc["L2", "message"]
    )
    assert "column minutes: '-5' is below the minimum 0" in f.loc["L3", "message"]
    assert f.loc["L2", "source_row"] == 3
    assert sorted(got.quarantined["line_id"]) == ["L2", "L3"]
    # L1 shares encounter E1 with the quarantined lines -> held whole
    assert f.loc["L1", "code"] == "ENCOUNTER_INCOMPLETE"
    assert accounted(got) and got.rows_in == 3


def test_broken_quoting_quarantines_the_record_and_keeps_the_rest(tmp_path):
    text = to_csv([row(), row(line_id="L2", encounter_id="E2", patient_id="P2")])
    text += 'L3,E3,"CLN01,2026-11-20,broken\n'
    p = tmp_path / "q.csv"
    p.write_text(text)
    got = ingest(p)
    assert sorted(got.raw["line_id"]) == ["L1", "L2"]
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert (
        len(bad) == 1
        and "q.csv row 4" in bad["message"].iloc[0]
        and "fields" in bad["message"].iloc[0]
    )
    assert accounted(got) and got.rows_in == 3


def test_bom_is_tolerated(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + to_csv([row()]).encode("utf-8"))
    got = ingest(p)
    assert codes(got) == [] and got.raw["line_id"].tolist() == ["L1"]


def test_duplicate_line_ids_keep_first_held_quarantine_rest(tmp_path):
    p = write_csv(tmp_path / "d.csv", [row(), row(encounter_id="E2"), row(encounter_id="E3")])
    got = ingest(p)
    assert codes(got) == ["DUPLICATE_LINE"] * 3
    assert got.raw["line_id"].tolist() == ["L1"] and got.raw["encounter_id"].tolist() == ["E1"]
    assert len(got.quarantined) == 2 and accounted(got)
    assert got.raw["line_id"].is_unique


def test_empty_file_is_rejected(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    got = ingest(p)
    assert codes(got) == ["FILE_REJECTED"] and "empty" in got.findings["message"].iloc[0]


def test_header_only_file_is_accepted_with_no_rows_and_named(tmp_path):
    p = write_csv(tmp_path / "h.csv", [])
    got = ingest(p)
    assert codes(got) == ["FILE_EMPTY"] and got.inputs[0].accepted and got.rows_in == 0
    assert got.findings["message"].iloc[0].startswith("h.csv: the file has its column names")


def test_not_csv_at_all_is_rejected(tmp_path):
    p = tmp_path / "photo.csv"
    p.write_bytes(bytes(range(256)) * 4)
    got = ingest(p)
    assert codes(got) == ["FILE_REJECTED"]
    assert "photo.csv" in got.findings["message"].iloc[0]
    p2 = tmp_path / "notes.csv"
    p2.write_text("Dear billing team,\nplease find attached\n")
    got2 = ingest(p2)
    assert (
        codes(got2) == ["FILE_REJECTED"]
        and "missing required column" in got2.findings["message"].iloc[0]
    )


def test_missing_required_value_and_enum(tmp_path):
    p = write_csv(
        tmp_path / "m.csv",
        [row(patient_last_name=""), row(line_id="L2", encounter_id="E2", patient_sex="X")],
    )
    got = ingest(p)
    msgs = " | ".join(got.findings["message"])
    assert "column patient_last_name: required value is missing" in msgs
    assert "column patient_sex: 'X' is not one of M/F/U" in msgs
    assert got.raw.empty and len(got.quarantined) == 2


def test_unknown_extra_columns_are_kept(tmp_path):
    r = row()
    r["pm_system_note"] = "hello"
    p = write_csv(tmp_path / "e.csv", [r], columns=[*COLUMN_NAMES, "pm_system_note"])
    got = ingest(p)
    assert got.raw["pm_system_note"].tolist() == ["hello"]


def test_parquet_and_jsonl_inputs(tmp_path):
    df = pd.DataFrame([row(), row(line_id="L2", patient_id="P2")])
    df["minutes"] = [30, 8]  # typed column in Parquet
    df.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text(
        json.dumps(row(line_id="L3", encounter_id="E9", patient_id="P9")) + "\n{not json\n",
        encoding="utf-8",
    )
    got = ingest(tmp_path)
    assert sorted(got.raw["line_id"]) == ["L1", "L2", "L3"]
    assert got.raw.set_index("line_id").loc["L2", "minutes"] == 8
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert len(bad) == 1 and "b.jsonl row 2" in bad["message"].iloc[0]
    assert accounted(got) and got.rows_in == 4


def test_folder_discovery_and_missing_input(tmp_path):
    write_csv(tmp_path / "in" / "a.csv", [row()])
    (tmp_path / "in" / "readme.txt").write_text("not an extract")
    assert [p.rsplit("/", 1)[-1] for p in extract.discover([str(tmp_path / "in")])] == ["a.csv"]
    with pytest.raises(FileNotFoundError):
        extract.discover([str(tmp_path / "nope")])


def test_non_utf8_file_rejected_with_offset(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes(to_csv([row(patient_last_name="MÜLLER")]).encode("latin-1"))
    got = ingest(p)
    assert codes(got) == ["FILE_REJECTED"] and "UTF-8" in got.findings["message"].iloc[0]


def test_required_columns_match_spec():
    # spot check against the contract table
    for c in ("line_id", "payer_id", "charge_amount", "diagnosis_codes", "place_of_service"):
        assert c in REQUIRED_COLUMNS
    for c in ("modifiers", "minutes", "body_region", "group_size"):
        assert c not in REQUIRED_COLUMNS


def test_a_value_shared_by_many_rows_is_reported_on_each_row(tmp_path):
    # typing runs once per distinct value of a column; findings still name every row
    p = write_csv(
        tmp_path / "s.csv",
        [row(line_id=f"L{i}", encounter_id=f"E{i}", minutes=" abc ") for i in range(3)]
        + [row(line_id="L9", encounter_id="E9", minutes=" 12 ")],
    )
    got = ingest(p)
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert bad["message"].tolist() == [
        f"s.csv row {n}, column minutes: 'abc' is not a whole number" for n in (2, 3, 4)
    ]
    assert got.raw["line_id"].tolist() == ["L9"] and got.raw["minutes"].tolist() == [12]


def test_type_rows_keeps_the_index_and_types_non_string_columns(tmp_path):
    rows = [row(), row(line_id="L2")]
    strings = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows], index=[7, 3])
    strings["minutes"] = pd.Series([30, None], index=[7, 3], dtype="object")
    strings["source_file"] = "t.csv"
    strings["source_row"] = pd.array([2, 3], dtype="Int64")
    typed, found, bad = extract.type_rows(strings)
    assert typed.index.tolist() == [7, 3] and bad.tolist() == [False, False]
    assert typed["minutes"].tolist()[0] == 30 and typed["minutes"].isna().tolist() == [False, True]
    assert found.empty


def test_a_record_that_does_not_parse_in_a_large_file_keeps_row_numbers(tmp_path):
    rows = [row(line_id=f"L{i}", encounter_id=f"E{i}", patient_id=f"P{i}") for i in range(3000)]
    text = to_csv(rows).split("\n")
    text.insert(1500, "L,E,too,few")  # record 1500 (the header is 1)
    p = tmp_path / "big.csv"
    p.write_text("\n".join(text))
    got = ingest(p)
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert len(bad) == 1 and "big.csv row 1501: record has 4 fields" in bad["message"].iloc[0]
    assert got.raw["source_row"].tolist() == [*range(2, 1501), *range(1502, 3003)]
    assert accounted(got) and got.rows_in == 3001


def test_a_record_longer_than_a_read_block_is_read(tmp_path):
    # the quick CSV read works in 1 MiB blocks; a longer record is read all the same
    long_text = "word " * 500_000  # 2.5 MB in one quoted value
    rows = [row(line_id=f"L{i}", encounter_id=f"E{i}", patient_id=f"P{i}") for i in range(5)]
    rows[2]["patient_response"] = long_text
    p = write_csv(tmp_path / "long.csv", rows)
    got = ingest(p)
    assert codes(got) == [] and got.raw["line_id"].tolist() == [f"L{i}" for i in range(5)]
    assert got.raw["patient_response"].iloc[2] == long_text.strip()
    assert got.raw["source_row"].tolist() == [2, 3, 4, 5, 6]


def test_broken_records_in_a_multi_block_file_are_numbered_as_records(tmp_path):
    # values holding line breaks make record numbers differ from line numbers; the broken
    # records sit far apart (several read blocks) and each is named by its record number
    rows = [
        row(
            line_id=f"L{i}",
            encounter_id=f"E{i}",
            patient_id=f"P{i}",
            patient_response="first\nsecond, third",
        )
        for i in range(30_000)
    ]
    lines = to_csv(rows).split("\n")  # each row takes two lines
    broken_records = [1_000, 12_345, 29_000]  # record numbers (the header is record 1)
    for k, record in enumerate(sorted(broken_records)):
        # record r starts on line 2 * (r - 1) - 1 (1-based) once the earlier inserts are in
        lines.insert(2 * (record - 1) - 1 - k, "B,E,too,few")
    p = tmp_path / "multi.csv"
    p.write_text("\n".join(lines))
    got = ingest(p)
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert bad["source_row"].tolist() == broken_records
    assert all("record has 4 fields where the header has" in m for m in bad["message"])
    assert len(got.raw) == 30_000 and accounted(got)
    kept = [n for n in range(2, 30_000 + len(broken_records) + 2) if n not in broken_records]
    assert got.raw["source_row"].tolist() == kept


def test_a_duplicate_of_a_row_that_failed_typing_is_not_a_duplicate(tmp_path):
    # only rows that typed cleanly take part in the duplicate check
    p = write_csv(
        tmp_path / "d.csv",
        [
            row(line_id="L1", encounter_id="E1", minutes="-1"),  # quarantined: bad minutes
            row(line_id="L1", encounter_id="E2"),  # first clean L1: kept
            row(line_id="L1", encounter_id="E3"),  # a real duplicate of the one above
        ],
    )
    got = ingest(p)
    assert got.raw["encounter_id"].tolist() == ["E2"]
    dup = got.findings[got.findings["code"] == "DUPLICATE_LINE"]
    assert dup["encounter_id"].tolist() == ["E2", "E3"]
    assert "appears 2 times tonight" in dup["message"].iloc[0]
    assert got.quarantined["encounter_id"].tolist() == ["E1", "E3"]


def test_length_limits_count_characters_not_bytes(tmp_path):
    # line_id allows 40 characters: 40 two-byte characters pass, 41 do not
    ok, too_long = "É" * 40, "É" * 41
    p = write_csv(
        tmp_path / "len.csv",
        [row(line_id=ok, encounter_id="E1"), row(line_id=too_long, encounter_id="E2")],
    )
    got = ingest(p)
    assert got.raw["line_id"].tolist() == [ok]
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert len(bad) == 1 and "is longer than 40 characters" in bad["message"].iloc[0]


def test_text_is_trimmed_and_empty_text_is_missing(tmp_path):
    p = write_csv(
        tmp_path / "t.csv",
        [
            row(patient_last_name="  DOE ", group_number="", goal_id=" G1 "),
            row(line_id="L2", patient_id="P2", group_number=" GRP9\t", goal_id="   "),
        ],
    )
    got = ingest(p)
    assert got.raw["patient_last_name"].tolist() == ["DOE", "DOE"]
    assert got.raw["group_number"].isna().tolist() == [True, False]
    assert got.raw["group_number"].iloc[1] == "GRP9"
    assert got.raw["goal_id"].iloc[0] == "G1" and pd.isna(got.raw["goal_id"].iloc[1])
    assert str(got.raw["group_number"].dtype) == "string"


def test_checksum_and_row_count_of_each_input(tmp_path):
    import hashlib

    good = write_csv(tmp_path / "a.csv", [row(), row(line_id="L2")])
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"\xff\xfe not text")
    got = ingest(good, bad)
    by_name = {i.path.rsplit("/", 1)[-1]: i for i in got.inputs}
    for name, info in by_name.items():
        assert info.sha256 == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert by_name["a.csv"].rows == 2 and by_name["a.csv"].accepted
    assert not by_name["b.csv"].accepted


def test_type_rows_bad_mask_is_a_plain_bool_series(tmp_path):
    rows = [row(), row(line_id="L2", minutes="x")]
    strings = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows], index=[5, 9])
    strings = strings.astype("string")
    strings["source_file"] = "t.csv"
    strings["source_row"] = pd.array([2, 3], dtype="Int64")
    _typed, found, bad = extract.type_rows(strings)
    assert bad.dtype == bool and bad.index.tolist() == [5, 9] and bad.tolist() == [False, True]
    assert found["line_id"].tolist() == ["L2"]
