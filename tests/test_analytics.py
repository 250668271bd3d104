"""``therapy-claims query`` and ``ddl`` over real outputs: two nights run through the pipeline
(the first re-run with other inputs, so a replaced run's folder sits beside the committed
one), read back independently with pyarrow through the manifests."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from therapy_claims import analytics, cli, generate, pipeline, storage

D1, D2 = dt.date(2026, 11, 27), dt.date(2026, 11, 28)
# view -> (layer folder, file)
LAYERS = {
    "lines": ("scored", "scored.parquet"),
    "exceptions": ("exceptions", "exceptions.parquet"),
    "claims": ("ledger", "ledger.parquet"),
    "worklist": ("worklist", "worklist.parquet"),
}


def _night(landing: str, out: str, rd: dt.date, encounters: int, seed: int) -> None:
    df = generate.generate(encounters, seed=seed, run_date=rd, problem_rate=0.15)
    generate.write(df, storage.join(landing, f"encounters_{rd}_{seed}.csv"))
    pipeline.run(pipeline.RunConfig(inputs=[landing], out=out, run_date=rd))


def _two_nights(root: str) -> str:
    """Night 1 run twice (the second run, other inputs, is the night), then night 2."""
    out = storage.join(root, "out")
    _night(storage.join(root, "in1a"), out, D1, 40, seed=11)
    _night(storage.join(root, "in1b"), out, D1, 30, seed=12)
    _night(storage.join(root, "in2"), out, D2, 35, seed=13)
    return out


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> str:
    return _two_nights(str(tmp_path_factory.mktemp("analytics")))


def _manifests(out: str) -> dict[str, dict]:
    """The committed manifests, read as plain JSON files (not through therapy_claims.nights)."""
    found = {}
    for path in storage.list_files(f"{out}/manifest"):
        m = re.fullmatch(r"run_date=(\d{4}-\d{2}-\d{2})\.json", storage.name(path))
        if m:
            found[m.group(1)] = json.loads(storage.read_bytes(path))
    return found


def _layer(out: str, view: str) -> dict[str, pa.Table]:
    """Each committed night's table of the view's layer (nights without it are absent)."""
    kind, name = LAYERS[view]
    tables = {}
    for rd, m in _manifests(out).items():
        folder = (m.get("outputs") or {}).get(kind)
        path = f"{folder}/{name}" if folder else None
        if path and storage.exists(path):
            tables[rd] = pq.read_table(pa.BufferReader(storage.read_bytes(path)))
    return tables


def _query(out: str, sql: str, fmt: str = "json") -> str:
    buf = io.StringIO()
    analytics.query(out, sql, fmt, buf)
    return buf.getvalue()


def _rows(out: str, sql: str) -> list[dict]:
    return json.loads(_query(out, sql))


# --------------------------------------------------------------------------- the views


def test_each_view_has_every_committed_night_and_only_it(out):
    assert set(_manifests(out)) == {D1.isoformat(), D2.isoformat()}
    for view in LAYERS:
        expected = {rd: t.num_rows for rd, t in _layer(out, view).items() if t.num_rows}
        got = {
            r["run_date"]: r["n"]
            for r in _rows(out, f"SELECT run_date, count(*) AS n FROM {view} GROUP BY 1")
        }
        assert got == expected, view
    # lines, exceptions and claims have rows on both nights (so the equality above says something)
    for view in ("lines", "exceptions", "claims"):
        assert len(_layer(out, view)) == 2 and all(t.num_rows for t in _layer(out, view).values())


def test_a_replaced_run_is_not_read(out):
    committed = _manifests(out)[D1.isoformat()]["outputs"]["scored"]
    folders = sorted(Path(out, "scored", f"run_date={D1}").iterdir())
    assert len(folders) == 2  # the replaced run's folder is still there ...
    (replaced,) = [f for f in folders if str(f) != committed]
    old_ids = set(pq.read_table(replaced / "scored.parquet").column("line_id").to_pylist())
    new_ids = set(pq.read_table(f"{committed}/scored.parquet").column("line_id").to_pylist())
    assert old_ids - new_ids  # ... with lines the committed run does not have
    got = _rows(out, f"SELECT line_id FROM lines WHERE run_date = DATE '{D1}'")
    assert sorted(r["line_id"] for r in got) == sorted(new_ids)


def test_views_have_the_published_sql_types_and_a_run_date(out):
    con = analytics.connect(out)
    described = {
        v: {row[0]: row[1] for row in con.execute(f"DESCRIBE {v}").fetchall()}
        for v in analytics.VIEWS
    }
    assert described["lines"]["charge_amount"] == "DECIMAL(12,2)"
    assert described["lines"]["date_of_service"] == "DATE"
    assert described["lines"]["modifiers"] == "VARCHAR[]"
    assert described["exceptions"]["date_of_service"] == "DATE"
    assert described["claims"]["first_date_of_service"] == "DATE"
    assert described["claims"]["charge"] == "DECIMAL(12,2)"
    assert described["worklist"]["held_dollars"] == "DECIMAL(12,2)"
    assert described["worklist"]["blocking_codes"] == "VARCHAR[]"
    for v in LAYERS:
        cols = list(described[v])
        assert cols[-1] == "run_date" and described[v]["run_date"] == "DATE", v
        assert cols.count("run_date") == 1, v
    night = {r[0]: r[1] for r in con.execute("DESCRIBE nights").fetchall()}
    assert night["run_date"] == "DATE" and night["balanced"] == "BOOLEAN"
    con.close()


def test_nights_is_one_row_per_manifest(out):
    rows = {r["run_date"]: r for r in _rows(out, "SELECT * FROM nights")}
    manifests = _manifests(out)
    assert set(rows) == set(manifests)
    for rd, m in manifests.items():
        r = rows[rd]
        assert r["run_id"] == m["run_id"] and r["balanced"] is m["balanced"] is True
        for k in ("rows_in", "lines_billed", "lines_held", "lines_not_billed", "claims_billed"):
            assert r[k] == m[k], k
        assert r["claim_files"] == len(m["claim_files"])
        assert r["started_at"] == m["started_at"].replace("Z", "+00:00")  # UTC on any host
        scored = _layer(out, "lines")[rd].to_pandas()
        held = scored.loc[scored["status"] == "held", "charge_amount"].sum()
        assert r["held_dollars"] == pytest.approx(round(float(held), 2), abs=0.005)


# --------------------------------------------------------------------------- the measures


def _measure(out: str, name: str) -> dict[str, dict]:
    return {r["run_date"]: r for r in _rows(out, analytics.MEASURES[name].sql)}


def test_the_measures_equal_hand_computed_values(out):
    ccr, held, upv, fpr = (
        _measure(out, n)
        for n in ("clean_claim_rate", "held_dollars", "units_per_visit", "first_pass_rate")
    )
    claims = _layer(out, "claims")
    for rd, table in _layer(out, "lines").items():
        df = table.to_pandas()
        # claims: held if any line is held, else billed if any line is billed
        by_claim = df.groupby("claim_id")["status"].agg(set)
        n_held = sum("held" in s for s in by_claim)
        n_billed = sum("held" not in s and "billed" in s for s in by_claim)
        assert n_held and n_billed and len(by_claim) >= n_held + n_billed
        assert (ccr[rd]["claims_billed"], ccr[rd]["claims_held"]) == (n_billed, n_held)
        assert ccr[rd]["clean_claim_rate"] == round(n_billed / (n_billed + n_held), 4)
        m = _manifests(out)[rd]
        assert (m["claims_billed"], m["claims_held"]) == (n_billed, n_held)

        h = df[df["status"] == "held"]
        assert held[rd]["held_lines"] == len(h)
        assert held[rd]["held_claims"] == h["claim_id"].nunique()
        assert Decimal(str(held[rd]["held_dollars"])) == sum(
            (Decimal(str(v)).quantize(Decimal("0.01")) for v in h["charge_amount"]), Decimal(0)
        )

        b = df[df["status"] == "billed"]
        visits = len(set(zip(b["clinic_id"], b["encounter_id"], strict=True)))
        assert upv[rd]["billed_units"] == int(b["units"].sum())
        assert upv[rd]["billed_visits"] == visits
        assert upv[rd]["units_per_visit"] == round(int(b["units"].sum()) / visits, 4)

        assert fpr[rd]["claims_sent"] == claims[rd].num_rows
        assert fpr[rd]["first_pass_known"] == 0  # no lifecycle: no response known
        assert fpr[rd]["first_pass_rate"] is None


def test_claims_without_a_lifecycle_are_sent_on_their_night(out):
    rows = _rows(out, "SELECT claim_id, status, status_on, paid, run_date FROM claims")
    assert len(rows) == sum(t.num_rows for t in _layer(out, "claims").values())
    assert all((r["status"], r["status_on"], r["paid"]) == ("sent", r["run_date"], 0) for r in rows)


def test_list_names_every_view_and_measure(capsys):
    assert cli.main(["query", "--list"]) == 0
    text = capsys.readouterr().out
    for name in (*analytics.VIEWS, *analytics.MEASURES):
        assert len([ln for ln in text.splitlines() if ln.split()[0] == name]) == 1, name


def test_measure_from_the_command_line(out, capsys):
    assert cli.main(["query", "--out", out, "--measure", "units_per_visit", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run_date"] for r in rows] == [D1.isoformat(), D2.isoformat()]
    assert rows == [
        {k: str(v) for k, v in r.items()} for r in _measure(out, "units_per_visit").values()
    ]


# --------------------------------------------------------------------------- formats

_SQL = (
    "SELECT line_id, date_of_service, charge_amount, modifiers, units, run_date, "
    "CAST(NULL AS VARCHAR) AS nothing, 'a,\"b\"' AS awkward FROM lines "
    "ORDER BY run_date, line_id"
)


def _expected(out: str) -> list[dict]:
    rows = []
    for rd, t in sorted(_layer(out, "lines").items()):
        for r in t.to_pylist():
            dos = r["date_of_service"]
            rows.append(
                {
                    "line_id": r["line_id"],
                    "date_of_service": (dos.date() if isinstance(dos, dt.datetime) else dos),
                    "charge_amount": Decimal(str(r["charge_amount"])).quantize(Decimal("0.01")),
                    "modifiers": list(r["modifiers"] or []),
                    "units": r["units"],
                    "run_date": rd,
                }
            )
    return sorted(rows, key=lambda r: (r["run_date"], r["line_id"]))


def test_csv_is_rfc_4180_and_parses_back(out, capsys):
    assert cli.main(["query", _SQL, "--out", out, "--format", "csv"]) == 0
    text = capsys.readouterr().out
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert '"a,""b"""' in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    expected = _expected(out)
    assert len(rows) == len(expected) > 100
    for got, exp_ in zip(rows, expected, strict=True):
        assert got["line_id"] == exp_["line_id"]
        assert got["date_of_service"] == exp_["date_of_service"].isoformat()
        assert Decimal(got["charge_amount"]) == exp_["charge_amount"]
        assert got["modifiers"] == "; ".join(exp_["modifiers"])
        assert int(got["units"]) == exp_["units"]
        assert got["run_date"] == exp_["run_date"]
        assert got["nothing"] == "" and got["awkward"] == 'a,"b"'


def test_json_is_one_array_of_objects_with_iso_dates(out, capsys):
    assert cli.main(["query", _SQL, "--out", out, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = _expected(out)
    assert isinstance(rows, list) and len(rows) == len(expected)
    for got, exp_ in zip(rows, expected, strict=True):
        assert got["date_of_service"] == exp_["date_of_service"].isoformat()
        assert Decimal(str(got["charge_amount"])) == exp_["charge_amount"]
        assert got["modifiers"] == exp_["modifiers"]
        assert got["units"] == exp_["units"] and got["run_date"] == exp_["run_date"]
        assert got["nothing"] is None and got["awkward"] == 'a,"b"'
    assert cli.main(["query", "SELECT 1 AS x WHERE false", "--out", out, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_table_is_aligned_and_parses_back(out, capsys):
    sql = "SELECT line_id, units, charge_amount, run_date FROM lines ORDER BY run_date, line_id"
    assert cli.main(["query", sql, "--out", out]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rule, *body, count = lines
    assert header.split() == ["line_id", "units", "charge_amount", "run_date"]
    assert set(rule.replace(" ", "")) == {"-"}
    widths = [len(w) for w in rule.split("  ")]
    expected = _expected(out)
    assert count == f"({len(expected)} rows)" and len(body) == len(expected)
    for text, exp_ in zip(body, expected, strict=True):
        cells, pos = [], 0
        for w in widths:
            cells.append(text[pos : pos + w])
            pos += w + 2
        assert cells[0].strip() == exp_["line_id"] and cells[0].startswith(exp_["line_id"])
        assert cells[1].endswith(str(exp_["units"]))  # numbers right-aligned
        assert Decimal(cells[2].strip()) == exp_["charge_amount"]
        assert cells[3].strip() == exp_["run_date"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("sql", "start"),
    [
        ("SELEC * FROM lines", "Parser Error: syntax error"),
        ("SELECT no_such_column FROM lines", "Binder Error:"),
        ("SELECT * FROM no_such_view", "Catalog Error:"),
        ("SELECT CAST(line_id AS INTEGER) FROM lines", "Conversion Error:"),
    ],
)
def test_bad_sql_exits_2_with_one_line(out, capsys, sql, start):
    assert cli.main(["query", sql, "--out", out, "--format", "csv"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"therapy-claims: error: query failed: {start}"), line


def test_no_committed_night_and_usage_exit_2(tmp_path, capsys):
    assert cli.main(["query", "SELECT 1", "--out", str(tmp_path / "nothing")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no committed night under" in line and str(tmp_path / "nothing") in line
    assert cli.main(["query", "--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "query needs SQL or --measure" in line
    assert cli.main(["ddl", "--engine", "athena", "--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "ddl needs the s3:// output" in line


# --------------------------------------------------------------------------- S3 and the DDL


@pytest.fixture(scope="module")
def s3_out(request, tmp_path_factory) -> str:
    """The two nights on a real S3 API (moto on loopback): the ``bucket`` fixture is
    function-scoped, so the module makes its own bucket with the same server."""
    import uuid

    import boto3

    request.getfixturevalue("moto_server")
    name = f"tc-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    mp = pytest.MonkeyPatch()
    mp.setenv("THERAPY_CLAIMS_LEDGER", str(tmp_path_factory.mktemp("ledger") / "l.sqlite"))
    try:
        yield _two_nights(f"s3://{name}")
    finally:
        mp.undo()


def test_s3_output_is_queried_through_storage(s3_out, capsys):
    sql = "SELECT run_date, count(*) AS n FROM lines GROUP BY 1 ORDER BY 1"
    assert cli.main(["query", sql, "--out", s3_out, "--format", "json"]) == 0
    got = {r["run_date"]: r["n"] for r in json.loads(capsys.readouterr().out)}
    assert got == {rd: t.num_rows for rd, t in _layer(s3_out, "lines").items()}
    for view in LAYERS:
        expected = {rd: t.num_rows for rd, t in _layer(s3_out, view).items() if t.num_rows}
        rows = _rows(s3_out, f"SELECT run_date, count(*) AS n FROM {view} GROUP BY 1")
        assert {r["run_date"]: r["n"] for r in rows} == expected, view
    measure = _measure(s3_out, "clean_claim_rate")
    for rd, m in _manifests(s3_out).items():
        assert (measure[rd]["claims_billed"], measure[rd]["claims_held"]) == (
            m["claims_billed"],
            m["claims_held"],
        )


def _expected_type(field: pa.Field, kind: str, engine: str) -> str:
    """The SQL type of a published Parquet column (the issue 16 types), written out here
    independently of analytics.sql_type. A file written before the SQL types were published
    holds the internal type of the same column (double money, timestamp dates, the ledger's
    text dates), which publishes as the same SQL type."""
    t = field.type
    athena = engine == "athena"
    if t in (pa.float64(),) or pa.types.is_decimal(t):
        assert not pa.types.is_decimal(t) or (t.precision, t.scale) == (12, 2), field
        return "decimal(12,2)"
    if pa.types.is_timestamp(t) or t == pa.date32():
        return "date"
    if kind == "ledger" and field.name in ("first_date_of_service", "last_date_of_service"):
        return "date"
    if t in (pa.string(), pa.large_string()):
        return "string" if athena else "varchar"
    if t == pa.int64():
        return "bigint"
    if t == pa.bool_():
        return "boolean"
    if pa.types.is_list(t) and t.value_type in (pa.string(), pa.large_string()):
        return "array<string>" if athena else "array(varchar)"
    raise AssertionError(f"unexpected published type {field}")


def _type_text(dtype: exp.DataType, engine: str) -> str:
    # Athena DDL is Hive DDL (sqlglot writes Athena types as its Trino-based DML would)
    return dtype.sql(dialect="hive" if engine == "athena" else engine).lower().replace(" ", "")


@pytest.mark.parametrize("engine", ["athena", "trino"])
def test_ddl_parses_and_names_every_published_column(s3_out, capsys, engine):
    assert cli.main(["ddl", "--engine", engine, "--out", s3_out, "--schema", "tc_test"]) == 0
    text = capsys.readouterr().out
    statements = [s.strip() for s in text.split(";\n") if s.strip()]
    parsed = [sqlglot.parse_one(s, read=engine) for s in statements]
    creates = {
        p.this.this.name: p for p in parsed if isinstance(p, exp.Create) and p.kind == "TABLE"
    }
    after = {*analytics.RESPONSE_VIEWS, *analytics.LIFECYCLE_FILES}  # test_lifecycle_views.py
    assert set(creates) == set(LAYERS) | {f"{v}_parquet" for v in after}
    for view, (kind, _name) in LAYERS.items():
        create = creates[view]
        assert create.this.this.args["db"].name == "tc_test"
        cols = {c.name: _type_text(c.args["kind"], engine) for c in create.this.expressions}
        if engine == "athena":
            (part,) = create.find(exp.PartitionedByProperty).this.expressions
            assert (part.name, _type_text(part.args["kind"], engine)) == ("run_date", "date")
            assert create.find(exp.ExternalProperty) is not None
        else:
            assert cols.pop("run_date") == "date"
            assert list(create.this.expressions)[-1].name == "run_date"
            part = create.find(exp.PartitionedByProperty).this
            assert [e.name for e in part.expressions] == ["run_date"]
        location = create.find(exp.LocationProperty) or next(
            p for p in create.find_all(exp.Property) if p.name == "external_location"
        )
        loc = (
            location.this if isinstance(location, exp.LocationProperty) else location.args["value"]
        )
        assert loc.name == f"{s3_out}/{kind}/"
        tables = _layer(s3_out, view)
        if not tables:  # no night has the layer yet: its declared columns
            assert list(cols) == analytics.published_schema(analytics.LAYERS[view]).names
            continue
        for rd, table in tables.items():
            fields = [f for f in table.schema if f.name != "run_date"]
            assert list(cols) == [f.name for f in fields], (view, rd)
            for f in fields:
                assert cols[f.name] == _expected_type(f, kind, engine), (view, f.name)
    _check_partitions(s3_out, engine, statements, parsed)


def _check_partitions(out: str, engine: str, statements: list[str], parsed: list) -> None:
    """One partition per committed night and layer, at the folder its manifest names."""
    expected = {
        (view, rd): f"{m['outputs'][LAYERS[view][0]]}/"
        for rd, m in _manifests(out).items()
        for view in LAYERS
        if _layer(out, view).get(rd) is not None
    }
    assert {rd for _, rd in expected} == {D1.isoformat(), D2.isoformat()}
    got: dict[tuple[str, str], list[str]] = {}
    for text, p in zip(statements, parsed, strict=True):
        if engine == "athena" and isinstance(p, exp.Alter):
            table = p.this
            (eq,) = (table.args.get("partition") or p.find(exp.AddPartition).this).expressions
            assert eq.this.name == "run_date"
            (act,) = p.args["actions"]
            loc = act.args["location"]
            loc = loc.this if isinstance(loc, exp.LocationProperty) else loc
            got.setdefault((table.name, eq.expression.name), []).append(loc.name)
        elif engine == "trino" and text.startswith("CALL system.register_partition("):
            call = sqlglot.parse_one("SELECT " + text.removeprefix("CALL "), read="trino")
            args = {k.this.name: k.expression for k in call.find_all(exp.Kwarg)}
            assert args["schema_name"].name == "tc_test"
            assert [e.name for e in args["partition_columns"].expressions] == ["run_date"]
            (value,) = args["partition_values"].expressions
            got.setdefault((args["table_name"].name, value.name), []).append(args["location"].name)
    per_night = 2 if engine == "athena" else 1  # athena: ADD IF NOT EXISTS, then SET LOCATION
    assert got == {k: [v] * per_night for k, v in expected.items()}
    # the replaced run of night 1 is named nowhere
    replaced = {
        f"{out}/scored/run_date={D1}/{r}"
        for r in {p.rsplit("/", 2)[-2] for p in storage.list_files(f"{out}/scored/run_date={D1}")}
    }
    assert len(replaced) == 2
    assert sum(r in "\n".join(statements) for r in replaced) == 1


def test_the_docs_show_each_measure_as_the_code_runs_it():
    text = (Path(__file__).resolve().parents[1] / "docs" / "analytics.md").read_text()
    for name, measure in analytics.MEASURES.items():
        assert f"`--measure {name}`" in text, name
        assert f"```sql\n{measure.sql}\n```" in text, name
    for name in analytics.MEASURE_VIEWS:
        assert f"```sql\n{analytics.DERIVED[name].sql}\n```" in text, name
    for view in analytics.VIEWS:
        assert f"| `{view}` |" in text, view
