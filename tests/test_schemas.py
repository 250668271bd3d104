"""Every output layer a night writes has exactly its published schema (``schemas.PUBLISHED``:
SQL types, the schema version and layer in the metadata, no ``run_date`` column), on a mixed
night and on a night whose only file is rejected (nothing to infer types from); the
conversion back (``schemas.internal``) gives the tables the stages computed, and a night
written before the published form still reads."""

from __future__ import annotations

import datetime as dt
import decimal
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from nights import RD, write_night

from therapy_claims import extract, ledger, ledger_store, nights, pipeline, schemas, storage

FILES = {
    "raw": "raw.parquet",
    "scored": "scored.parquet",
    "exceptions": "exceptions.parquet",
    "ledger": "ledger.parquet",
    "worklist": "worklist.parquet",
}


def _files(cfg: pipeline.RunConfig) -> dict[str, str]:
    return {
        layer: storage.join(cfg.final(layer), name)
        for layer, name in FILES.items()
        if storage.exists(storage.join(cfg.final(layer), name))
    }


def _expected_metadata(layer: str, rows: int) -> dict[bytes, bytes]:
    meta = {b"therapy_claims.schema_version": b"2", b"therapy_claims.layer": layer.encode()}
    if layer in ("exceptions", "ledger") and rows:  # the layers that had a run_date column
        meta[b"therapy_claims.run_date"] = RD.isoformat().encode()
    return meta


def _holds_published_schema(layer: str, path: str) -> None:
    schema = pq.read_schema(path)
    assert schema.remove_metadata().equals(schemas.PUBLISHED[layer].remove_metadata()), layer
    assert "run_date" not in schema.names
    got = {k: v for k, v in schema.metadata.items() if k.startswith(b"therapy_claims.")}
    assert got == _expected_metadata(layer, pq.read_metadata(path).num_rows), layer


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A mixed night, run once, with every table ``schemas.published`` was given on the way
    (the internal tables the stages and the ledger wrote)."""
    tmp = tmp_path_factory.mktemp("night")
    write_night(str(tmp / "landing"), encounters=40)
    cfg = pipeline.RunConfig(inputs=[str(tmp / "landing")], out=str(tmp / "o"), run_date=RD)
    given: dict[str, pa.Table] = {}
    original = schemas.published
    with pytest.MonkeyPatch.context() as mp:

        def recording(table: pa.Table, layer: str) -> pa.Table:
            given[layer] = table
            return original(table, layer)

        mp.setattr(schemas, "published", recording)
        pipeline.run(cfg)
    return cfg, given


def test_a_mixed_night_writes_every_layer_in_its_published_schema(night):
    cfg, _ = night
    got = _files(cfg)
    assert set(got) == set(FILES)
    for layer, path in got.items():
        _holds_published_schema(layer, path)


def test_the_published_types_are_sql_types():
    raw, scored = schemas.PUBLISHED["raw"], schemas.PUBLISHED["scored"]
    ledger_schema, exceptions = schemas.PUBLISHED["ledger"], schemas.PUBLISHED["exceptions"]
    money = pa.decimal128(12, 2)
    assert raw.field("charge_amount").type == money == scored.field("charge_amount").type
    assert ledger_schema.field("charge").type == money
    for s, c in [(raw, "date_of_service"), (raw, "patient_dob"), (scored, "date_of_service")]:
        assert s.field(c).type == pa.date32(), c
    assert exceptions.field("date_of_service").type == pa.date32()
    assert ledger_schema.field("first_date_of_service").type == pa.date32()
    assert ledger_schema.field("last_date_of_service").type == pa.date32()
    assert raw.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    lists = ["modifiers", "diagnosis_codes", "diagnosis_pointers", "body_region", "technique"]
    for c in lists:
        assert raw.field(c).type == scored.field("modifiers").type == pa.list_(pa.string()), c
    for s in schemas.PUBLISHED.values():
        assert "run_date" not in s.names


def test_the_internal_form_comes_back_from_the_published_one(night):
    """What the stages computed with, through the file and back, is the same table: types,
    values (every amount, date and list), order."""
    cfg, given = night
    assert set(given) == set(FILES)
    for layer, table in given.items():
        assert table.num_rows > 0, layer
        assert table.schema.equals(schemas.LAYERS[layer]), layer
        assert schemas.internal(schemas.published(table, layer), layer).equals(table), layer
        path = storage.join(cfg.final(layer), FILES[layer])
        assert schemas.read(path, layer).equals(table), layer


def test_published_values_are_the_internal_ones_in_sql_types(night):
    """Independently of the conversion back: the file's values read as Python values."""
    cfg, given = night
    internal = storage.to_frame(given["scored"])
    got = pq.read_table(storage.join(cfg.final("scored"), "scored.parquet")).to_pydict()
    want_charges = [
        None if pd.isna(v) else decimal.Decimal(f"{v:.2f}") for v in internal["charge_amount"]
    ]
    assert got["charge_amount"] == want_charges
    assert got["date_of_service"] == [
        None if pd.isna(v) else v.date() for v in internal["date_of_service"]
    ]
    exc = pq.read_table(storage.join(cfg.final("exceptions"), "exceptions.parquet"))
    assert exc.num_rows == given["exceptions"].num_rows
    raw = pq.read_table(storage.join(cfg.final("raw"), "raw.parquet")).to_pydict()
    raw_internal = storage.to_frame(given["raw"])
    assert raw["diagnosis_codes"] == [
        None if pd.isna(v) else v.split(";") for v in raw_internal["diagnosis_codes"]
    ]
    started = dt.datetime.strptime(raw_internal["ingested_at"][0], "%Y-%m-%dT%H:%M:%SZ")
    assert set(raw["ingested_at"]) == {started.replace(tzinfo=dt.UTC)}
    led = pq.read_table(storage.join(cfg.final("ledger"), "ledger.parquet")).to_pydict()
    led_internal = storage.to_frame(given["ledger"])
    assert led["first_date_of_service"] == [
        dt.date.fromisoformat(v) for v in led_internal["first_date_of_service"]
    ]
    assert led["charge"] == [decimal.Decimal(f"{v:.2f}") for v in led_internal["charge"]]


def test_a_night_of_one_rejected_file_still_writes_typed_layers(tmp_path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "notes.csv").write_text("hello,world\n1,2\n")
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "o"), run_date=RD
    )
    pipeline.run(cfg)
    got = _files(cfg)
    assert {"scored", "exceptions", "ledger", "worklist"} <= set(got)
    for layer, path in got.items():
        _holds_published_schema(layer, path)


# --------------------------------------------------------------------------- older nights


def _rewrite_as_before(out: str) -> list[str]:
    """Every published layer file of ``out``'s nights rewritten as the package wrote it before
    the published form: the internal types, a ``run_date`` column, no metadata."""
    done = []
    for layer, name in FILES.items():
        for _rd, path in nights.layer_files(out, layer, name):
            table = schemas.read(path, layer)
            assert table.schema.equals(schemas.LAYERS[layer])
            storage.write_table(table.replace_schema_metadata(None), path)
            assert pq.read_schema(path).metadata is None or (
                b"therapy_claims.schema_version" not in pq.read_schema(path).metadata
            )
            done.append(path)
    return done


def _copy(out: str, to: Path) -> str:
    """A copy of the output root ``out`` whose manifests name the copy's folders (the claim
    files' paths in the ledger layer still name ``out``'s: they are only read)."""
    shutil.copytree(out, to)
    for m in (to / "manifest").glob("*.json"):
        m.write_text(m.read_text().replace(out, str(to)))
    return str(to)


def test_a_night_written_before_the_published_form_still_reads(night, tmp_path):
    """The ledger, ALREADY_BILLED's and show's readers and the ledger database's adoption
    give the same on the old files as on the new ones."""
    cfg, given = night
    out = _copy(cfg.out, tmp_path / "o")
    old_out = _copy(cfg.out, tmp_path / "old")
    assert len(_rewrite_as_before(old_out)) == len(FILES)
    for layer, name in FILES.items():
        ((_rd, old_path),) = nights.layer_files(old_out, layer, name)
        old = pq.read_table(old_path)
        if layer in ("exceptions", "ledger"):
            assert old.schema.field("run_date").type == schemas.TEXT
        assert schemas.read(old_path, layer).equals(given[layer]), layer
    pd.testing.assert_frame_equal(ledger.read(old_out), ledger.read(out))
    billed = ledger.read(out)["claim_id"].iloc[0]
    assert ledger.show(old_out, billed) == ledger.show(out, billed)
    held = given["scored"].filter(pc.equal(given["scored"]["status"], "held"))
    held_id = held["claim_id"][0].as_py()
    assert ledger.show(old_out, held_id) == ledger.show(out, held_id)
    for o in (out, old_out):  # a lost database takes the layers in again
        shutil.rmtree(Path(o) / ".ledger")
    with ledger_store.opened(old_out) as old_store, ledger_store.opened(out) as new_store:
        assert old_store.sent_keys(run_date=RD.isoformat()).equals(
            new_store.sent_keys(run_date=RD.isoformat())
        )
        assert len(new_store.sent_keys(run_date=RD.isoformat())) > 0


def test_an_old_file_read_by_columns_gets_run_date_from_its_folder(tmp_path):
    t = pa.table({c.name: pa.nulls(2, c.type) for c in schemas.LEDGER}).set_column(
        0, "claim_id", pa.array(["A", "B"], schemas.TEXT)
    )
    t = t.set_column(2, "run_date", pa.array(["2026-11-20"] * 2, schemas.TEXT))
    path = str(tmp_path / "ledger" / "run_date=2026-11-20" / "ledger.parquet")
    storage.write_table(t, path)
    assert schemas.read(path, "ledger").equals(t)
    got = schemas.read(path, "ledger", ["claim_id", "run_date"])
    assert got.column("run_date").to_pylist() == ["2026-11-20"] * 2


# --------------------------------------------------------------------------- conversions


def _money_table(values: list) -> pa.Table:
    return pa.table({"charge_amount": pa.array(values, pa.float64())})


@pytest.fixture
def money_layer(monkeypatch):
    """A layer of one money column (the conversion is by type, not by layer)."""
    monkeypatch.setitem(schemas.LAYERS, "m", pa.schema([("charge_amount", schemas.MONEY)]))
    return "m"


def test_money_is_exact_cents_both_ways(money_layer):
    """A million cent amounts spread from 0 to 10,000,000.00, and the largest decimal(12, 2)
    holds: the decimal is the amount, and back it is the very double the rules compute
    (cents / 100)."""
    cents = np.concatenate(
        [np.arange(0, 10**9, 997, dtype=np.int64), [10**12 - 1, 1, 5, 10, 99, 12345678901]]
    )
    dollars = cents / 100.0
    t = _money_table(list(dollars) + [None])
    pub = schemas.published(t, money_layer)
    assert pub.schema.field("charge_amount").type == pa.decimal128(12, 2)
    sample = pub.column("charge_amount").to_pylist()
    assert sample[:3] == [
        decimal.Decimal("0.00"),
        decimal.Decimal("9.97"),
        decimal.Decimal("19.94"),
    ]
    assert sample[-1] is None
    assert [int(d * 100) for d in sample[:-1]] == cents.tolist()
    assert schemas.internal(pub, money_layer).equals(t)


def test_money_takes_a_doubles_noise_to_the_cent_and_refuses_sub_cents(money_layer):
    """A sum of cents in doubles is a cent and noise: the cent. An amount between cents
    (even at exactly half a cent) is no amount the pipeline makes: refused, not rounded."""
    t = _money_table([0.1 + 0.2, 135.00000000000003, 1e9 + 0.07, float("nan")])
    got = schemas.published(t, money_layer).column("charge_amount").to_pylist()
    assert got == [decimal.Decimal(x) for x in ("0.30", "135.00", "1000000000.07")] + [None]
    for sub_cent in (33.3333, 0.125, 0.005):
        with pytest.raises(ValueError, match=r"m.charge_amount: 1 amount\(s\) are not whole"):
            schemas.published(_money_table([1.0, sub_cent]), money_layer)
    with pytest.raises(ValueError, match="does not fit decimal128"):
        schemas.published(_money_table([1e10]), money_layer)


def test_an_amount_the_decimal_cannot_hold_is_refused_at_ingest(tmp_path):
    """The raw layer keeps the extract's amount exactly: one beyond decimal(12, 2) is out of
    range (quarantined, ROW_INVALID) rather than failing the night at publication."""
    from therapy_claims import generate

    df = generate.generate(2, seed=3, run_date=RD, problem_rate=0.0)
    df.loc[0, "charge_amount"] = "10000000000"
    df.loc[1, "charge_amount"] = "9999999999.99"
    generate.write(df, str(tmp_path / "x.csv"))
    got = extract.ingest([str(tmp_path / "x.csv")], ingested_at="2026-11-28T02:00:00Z")
    bad = got.findings[got.findings["code"] == "ROW_INVALID"]
    assert bad["message"].str.contains("'10000000000' is out of range").sum() == 1
    assert 9999999999.99 in set(got.raw["charge_amount"])


def test_dates_lists_and_times_by_type_for_any_layer(monkeypatch):
    """A layer with a column of every internal kind converts with nothing declared for it
    (the worklist's columns are such): by type."""
    schema = pa.schema(
        [
            ("key", schemas.TEXT),
            ("first_held", schemas.DATE),
            ("codes", schemas.TEXT_LIST),
            ("lines", schemas.INT),
            ("open", pa.bool_()),
            ("held_dollars", schemas.MONEY),
        ]
    )
    monkeypatch.setitem(schemas.LAYERS, "new", schema)
    t = pa.table(
        {
            "key": pa.array(["a|1", None], schemas.TEXT),
            "first_held": pa.array([dt.datetime(2026, 11, 20), None], schemas.DATE),
            "codes": pa.array([["X", "Y"], None], schemas.TEXT_LIST),
            "lines": pa.array([3, None], schemas.INT),
            "open": pa.array([True, None]),
            "held_dollars": pa.array([12.34, None], schemas.MONEY),
        },
        schema=schema,
    )
    pub = schemas.published(t, "new")
    assert [f.type for f in pub.schema] == [
        schemas.TEXT,
        pa.date32(),
        pa.list_(pa.string()),
        pa.int64(),
        pa.bool_(),
        pa.decimal128(12, 2),
    ]
    assert pub.schema.metadata[b"therapy_claims.layer"] == b"new"
    assert schemas.internal(pub, "new").equals(t)
    assert schemas.published_schema("new").remove_metadata().equals(pub.schema.remove_metadata())


def test_what_a_published_type_cannot_hold_is_refused_not_changed(monkeypatch):
    monkeypatch.setitem(schemas.LAYERS, "d", pa.schema([("day", schemas.DATE)]))
    noon = pa.table({"day": pa.array([dt.datetime(2026, 11, 20, 12)], schemas.DATE)})
    with pytest.raises(ValueError, match="time of day"):
        schemas.published(noon, "d")
    ledger_row = {c.name: pa.nulls(1, c.type) for c in schemas.LEDGER}
    bad_date = pa.table(
        {
            **ledger_row,
            "run_date": pa.array(["2026-11-20"], schemas.TEXT),
            "first_date_of_service": pa.array(["2026-1-2"], schemas.TEXT),
        }
    )
    with pytest.raises(ValueError, match="2026-1-2"):
        schemas.published(bad_date.select(schemas.LEDGER.names), "ledger")
    two_nights = pa.table(
        {**ledger_row, "run_date": pa.array(["2026-11-20"], schemas.TEXT)}
    ).select(schemas.LEDGER.names)
    two_nights = pa.concat_tables(
        [two_nights, two_nights.set_column(2, "run_date", pa.array(["2026-11-21"], schemas.TEXT))]
    )
    with pytest.raises(ValueError, match="one night"):
        schemas.published(two_nights, "ledger")
    raw_row = pa.table({c.name: pa.nulls(1, c.type) for c in schemas.RAW})
    fractional = raw_row.set_column(
        raw_row.schema.get_field_index("ingested_at"),
        "ingested_at",
        pa.array(["2026-11-28T02:00:00.5Z"], schemas.TEXT),
    )
    with pytest.raises(ValueError, match="lose data|not written"):
        schemas.published(fractional, "raw")


def test_an_empty_layer_publishes_and_reads_back():
    for layer, schema in schemas.LAYERS.items():
        empty = schema.empty_table()
        pub = schemas.published(empty, layer)
        assert pub.schema.equals(schemas.PUBLISHED[layer], check_metadata=True), layer
        assert schemas.internal(pub, layer).equals(empty), layer


def test_conform_casts_types_and_refuses_other_columns():
    t = pa.table({"a": pa.array([None, None]), "b": pa.array([1, 2])})
    want = pa.schema([("a", schemas.TEXT), ("b", schemas.INT)])
    assert schemas.conform(t, want).schema.equals(want)
    with pytest.raises(ValueError, match="columns"):
        schemas.conform(t.select(["b", "a"]), want)


def test_layer_files_are_known_by_their_name():
    assert schemas.layer_of("s3://b/o/raw/run_date=2026-11-27/run=X/raw.parquet") == "raw"
    assert schemas.layer_of("/o/ledger/run_date=2026-11-27/run=X/ledger.parquet") == "ledger"
    assert (
        schemas.layer_of("/o/.staging/run_date=2026-11-27/run=X/work/gx_findings.parquet") is None
    )
    assert schemas.layer_of("/o/exceptions/run_date=2026-11-27/run=X/exceptions.csv") is None


def test_an_extract_with_an_unknown_column_runs_and_raw_keeps_it_as_text(tmp_path):
    """docs/outputs.md: the raw layer keeps an extract's unknown columns, as text. Such a
    file once stopped the whole night at the raw layer's schema."""
    import csv

    from therapy_claims import cli

    src = tmp_path / "night.csv"
    assert (
        cli.main(["generate", "--encounters", "20", "--out", str(src), "--run-date", "2026-12-01"])
        == 0
    )
    rows = list(csv.reader(src.open(newline="")))
    rows[0].append("favourite_colour")
    for i, r in enumerate(rows[1:]):
        r.append(str(i) if i % 2 else "=HYPERLINK(1)")
    with src.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "out"
    rc = cli.main(["run", "--input", str(src), "--out", str(out), "--run-date", "2026-12-01"])
    assert rc == 0
    (raw,) = out.glob("raw/run_date=2026-12-01/run=*/raw.parquet")
    table = pq.read_table(raw)
    assert (
        table.schema.names[: len(schemas.PUBLISHED["raw"].names)] == schemas.PUBLISHED["raw"].names
    )
    assert table.schema.field("favourite_colour").type == pa.large_string()
    # (quarantined rows are not in raw: each kept row's value is its own source row's)
    by_row = dict(
        zip(
            table.column("source_row").to_pylist(),
            table.column("favourite_colour").to_pylist(),
            strict=True,
        )
    )
    assert len(by_row) > 10
    assert by_row == {n: rows[n - 1][-1] for n in by_row}
    back = schemas.read(str(raw), "raw")
    assert (
        back.column("favourite_colour").to_pylist() == table.column("favourite_colour").to_pylist()
    )


def test_a_large_table_is_converted_and_written_a_slice_at_a_time(night, tmp_path, monkeypatch):
    """A file written in slices (a row group each) holds what the whole table converted at
    once holds: the same values, types and metadata, and reads back as the same table."""
    from therapy_claims.handover import write_file

    _, given = night
    monkeypatch.setattr(schemas, "PUBLISH_SLICE_ROWS", 7)
    for layer, table in given.items():
        assert table.num_rows > 7, layer
        path = str(tmp_path / FILES[layer])
        write_file(table, path)
        whole = schemas.published(table, layer)
        got = pq.read_table(path)
        assert got.equals(whole), layer
        mine = {k: v for k, v in got.schema.metadata.items() if k.startswith(b"therapy_claims.")}
        assert mine == whole.schema.metadata, layer
        assert pq.ParquetFile(path).num_row_groups == -(-table.num_rows // 7), layer
        assert schemas.read(path, layer).equals(table), layer


def test_slices_of_two_nights_are_refused_not_written(tmp_path):
    row = pa.table({c.name: pa.nulls(1, c.type) for c in schemas.LEDGER})
    first = row.set_column(2, "run_date", pa.array(["2026-11-20"], schemas.TEXT))
    second = row.set_column(2, "run_date", pa.array(["2026-11-21"], schemas.TEXT))
    two_nights = pa.concat_tables([first, second]).select(schemas.LEDGER.names)
    with pytest.raises(ValueError, match="one night"):
        storage.write_tables(
            schemas.published_slices(two_nights, "ledger", rows=1), str(tmp_path / "l.parquet")
        )
    assert not (tmp_path / "l.parquet").exists()
