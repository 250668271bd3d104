"""Analyst SQL over the published layers (DuckDB), and the Athena / Trino DDL for them.

Why DuckDB: analysts ask questions across nights and layers (held dollars by payer, the codes
that hold most claims, units per visit) that took hand-built pandas joins. DuckDB runs SQL over
the Parquet files in-process: no server, no copy of the data, a pip package.

What a reader may trust is a night's manifest (``therapy_claims.nights``): a night's folder is
``<kind>/run_date=D/run=R/`` and only the run the manifest names is the night (a replaced or
crashed run's folder may still be there). So every view is built from the files the committed
manifests name, never by listing ``run=`` folders, and each gets a ``run_date`` DATE column from
its night (published files partitioned by run date carry none inside).

- Local outputs: each view reads the committed files with ``read_parquet``.
- ``s3://`` outputs: DuckDB would need its ``httpfs`` extension, which it downloads at run time
  from its own site, unreachable here (and on locked-down hosts). So the committed files are
  read through ``therapy_claims.storage`` (boto3, the package's own S3 settings) into Arrow
  tables and registered with DuckDB; only the views a query names are loaded.

Every view has the published column types (money DECIMAL(12,2), dates DATE, lists of text),
cast from what a file holds, so nights written before the SQL types were published read the
same, and a column a night's file lacks (an older night) is NULL. A layer that no night has yet
is an empty view with its columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

import pyarrow as pa

from therapy_claims import nights, schemas, storage
from therapy_claims.config import RunError

if TYPE_CHECKING:
    import duckdb

# --------------------------------------------------------------------------- the layers

WORKLIST = schemas.WORKLIST


@dataclass(frozen=True)
class Layer:
    """A query view over one published Parquet layer."""

    view: str  # the view's (and the Athena / Trino table's) name
    kind: str  # the layer's folder under the output root
    file: str  # the file in each night's folder
    internal: pa.Schema  # schemas.py's (internal) schema of the layer
    about: str


LAYERS = {
    lay.view: lay
    for lay in (
        Layer("lines", "scored", "scored.parquet", schemas.SCORED, "one row per scored line"),
        Layer(
            "exceptions",
            "exceptions",
            "exceptions.parquet",
            schemas.EXCEPTIONS,
            "one row per finding",
        ),
        Layer(
            "claims",
            "ledger",
            "ledger.parquet",
            schemas.LEDGER,
            "one row per claim sent",
        ),
        Layer(
            "worklist",
            "worklist",
            "worklist.parquet",
            WORKLIST,
            "one row per held encounter, open or resolved that night",
        ),
    )
}


def published_schema(layer: Layer) -> pa.Schema:
    """The layer's columns with the types its files are published with: the one conversion
    in ``schemas`` (``schemas.published_type``), without the file metadata."""
    fields = []
    for f in layer.internal:
        t = schemas.published_type(f)
        if t is not None:
            fields.append(pa.field(f.name, t))
    return pa.schema(fields)


# --------------------------------------------------------------------------- SQL types

_SCALAR = {
    # Arrow type: (DuckDB, Athena (Hive DDL), Trino)
    pa.string(): ("VARCHAR", "string", "varchar"),
    pa.large_string(): ("VARCHAR", "string", "varchar"),
    pa.int64(): ("BIGINT", "bigint", "bigint"),
    pa.int32(): ("INTEGER", "int", "integer"),
    pa.bool_(): ("BOOLEAN", "boolean", "boolean"),
    pa.float64(): ("DOUBLE", "double", "double"),
    pa.date32(): ("DATE", "date", "date"),
}
ENGINES = ("duckdb", "athena", "trino")


def sql_type(t: pa.DataType, engine: str) -> str:
    """The SQL type of an Arrow type in ``engine``. A timestamp with a time zone is an
    instant: DuckDB's TIMESTAMPTZ; Hive tables (Athena, Trino's Hive connector) have only
    ``timestamp`` and read Parquet's UTC-adjusted timestamps as UTC."""
    i = ENGINES.index(engine)
    if t in _SCALAR:
        return _SCALAR[t][i]
    if pa.types.is_decimal(t):
        return f"{('DECIMAL', 'decimal', 'decimal')[i]}({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if (engine == "duckdb" and t.tz) else ("TIMESTAMP", "timestamp")[i > 0]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = sql_type(t.value_type, engine)
        return (f"{inner}[]", f"array<{inner}>", f"array({inner})")[i]
    raise ValueError(f"no SQL type for Arrow type {t}")  # a new type: add it above


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


# --------------------------------------------------------------------------- the views


def _committed_files(out: str, manifests: dict[str, dict], layer: Layer) -> list[tuple[str, str]]:
    """``(run_date, path)`` of the layer's file in each committed night that has it, through
    the manifests (a manifest that names no folder of the kind has none: e.g. the worklist on
    nights published before it existed)."""
    found = []
    for rd, m in manifests.items():
        if m.get("run_id") and layer.kind not in (m.get("outputs") or {}):
            continue
        path = storage.join(nights.layer(m, layer.kind, rd, out), layer.file)
        if storage.exists(path):
            found.append((rd, path))
    return found


def _select(columns: set[str] | None, schema: pa.Schema, source: str, run_date: str | None) -> str:
    """One night's SELECT of a view: every published column cast to its SQL type (NULL for a
    column the night's file lacks), then ``run_date``. ``columns`` None: the empty view."""
    items = []
    for f in schema:
        t = sql_type(f.type, "duckdb")
        have = columns is not None and f.name in columns
        items.append(f"CAST({_ident(f.name) if have else 'NULL'} AS {t}) AS {_ident(f.name)}")
    if columns is None:
        return "SELECT " + ", ".join(items) + ", CAST(NULL AS DATE) AS run_date WHERE false"
    return "SELECT " + ", ".join(items) + f", DATE {_lit(run_date)} AS run_date FROM {source}"


def _layer_view(con: duckdb.DuckDBPyConnection, out: str, manifests: dict, layer: Layer) -> None:
    schema = published_schema(layer)
    parts = []
    for i, (rd, path) in enumerate(_committed_files(out, manifests, layer)):
        if storage.is_s3(path):
            table = storage.read_table(path)
            name = f"_{layer.view}_{i}"
            con.register(name, table)
            parts.append(_select(set(table.column_names), schema, _ident(name), rd))
        else:
            import pyarrow.parquet as pq

            with storage.guard("read", path):
                names = set(pq.read_schema(path).names)
            source = f"read_parquet({_lit(path)}, hive_partitioning = false)"
            parts.append(_select(names, schema, source, rd))
    body = "\nUNION ALL\n".join(parts) if parts else _select(None, schema, "", None)
    con.execute(f"CREATE VIEW {_ident(layer.view)} AS\n{body}")


_NIGHT_COUNTS = (
    "rows_in",
    "rows_in_rejected_files",
    "rows_quarantined",
    "rows_scored",
    "lines_billed",
    "lines_held",
    "lines_not_billed",
    "claims_billed",
    "claims_held",
)
_WORKLIST_KEYS = ("open", "opened_tonight", "resolved_tonight", "oldest_open_days")


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _nights_table(manifests: dict[str, dict]) -> pa.Table:
    """One row per committed manifest: what the manifest records about its night."""
    rows = []
    for rd, m in manifests.items():
        wl = m.get("worklist") or {}
        held_open = wl.get("held_dollars_open")
        row = {
            "run_date": dt.date.fromisoformat(rd),
            "run_id": m.get("run_id"),
            "version": m.get("version"),
            "started_at": _when(m.get("started_at")),
            "finished_at": _when(m.get("finished_at")),
            "files_in": len(m.get("inputs") or []),
            "files_rejected": sum(1 for i in m.get("inputs") or [] if not i.get("accepted")),
            **{k: m.get(k) for k in _NIGHT_COUNTS},
            "claim_files": len(m.get("claim_files") or []),
            "findings": sum((m.get("exceptions_by_code") or {}).values()),
            "balanced": m.get("balanced"),
            **{f"worklist_{k}": wl.get(k) for k in _WORKLIST_KEYS},
            "worklist_held_dollars_open": None
            if held_open is None
            else Decimal(str(held_open)).quantize(Decimal("0.01")),
        }
        rows.append(row)
    ts = pa.timestamp("us", tz="UTC")
    fields = [
        ("run_date", pa.date32()),
        ("run_id", pa.string()),
        ("version", pa.string()),
        ("started_at", ts),
        ("finished_at", ts),
        ("files_in", pa.int64()),
        ("files_rejected", pa.int64()),
        *((k, pa.int64()) for k in _NIGHT_COUNTS),
        ("claim_files", pa.int64()),
        ("findings", pa.int64()),
        ("balanced", pa.bool_()),
        *((f"worklist_{k}", pa.int64()) for k in _WORKLIST_KEYS),
        ("worklist_held_dollars_open", pa.decimal128(12, 2)),
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _nights_view(con: duckdb.DuckDBPyConnection, manifests: dict[str, dict]) -> None:
    """``nights``: the manifests, plus the night's held dollars from its lines (the manifest
    counts held lines, not their dollars)."""
    con.register("_nights", _nights_table(manifests))
    cols = _nights_table({}).column_names
    before = cols[: cols.index("claims_held") + 1]
    after = cols[len(before) :]
    con.execute(
        "CREATE VIEW nights AS SELECT "
        + ", ".join(f"m.{_ident(c)}" for c in before)
        + ", CAST(coalesce(h.held_dollars, 0) AS DECIMAL(18,2)) AS held_dollars, "
        + ", ".join(f"m.{_ident(c)}" for c in after)
        + " FROM _nights m LEFT JOIN (SELECT run_date, sum(charge_amount) FILTER"
        " (WHERE status = 'held') AS held_dollars FROM lines GROUP BY run_date) h"
        " ON h.run_date = m.run_date"
    )


VIEWS = {
    **{name: lay.about + f" ({lay.kind} layer)" for name, lay in LAYERS.items()},
    "nights": "one row per committed night: its manifest's run id, counts and held dollars",
}
_NEEDS = {"nights": {"lines"}}


def views_named(sql: str) -> set[str]:
    """The views a query names (a word anywhere in it), with the views they read."""
    named = {v for v in VIEWS if re.search(rf"\b{v}\b", sql, re.IGNORECASE)}
    for v in list(named):
        named |= _NEEDS.get(v, set())
    return named


def connect(out: str, views: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views over every committed night of ``out``
    (``views``: only these and what they read; default all). No committed night is an error:
    a mistyped output root would otherwise answer every query with nothing."""
    import duckdb

    manifests = nights.all_committed(out)
    if not manifests:
        raise RunError(f"no committed night under {out} (no manifest/run_date=D.json)")
    wanted = set(VIEWS) if views is None else set(views)
    for v in list(wanted):
        wanted |= _NEEDS.get(v, set())
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")  # the manifests' times print as recorded, on any host
    for name, layer in LAYERS.items():
        if name in wanted:
            _layer_view(con, out, manifests, layer)
    if "nights" in wanted:
        _nights_view(con, manifests)
    return con


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Measure:
    about: str
    sql: str


MEASURES = {
    "clean_claim_rate": Measure(
        "per night: claims billed / (claims billed + claims held); all-not_billed claims count in neither",
        """\
WITH claim AS (
  SELECT run_date, claim_id,
         bool_or(status = 'held') AS held,
         bool_or(status = 'billed') AS billed
  FROM lines GROUP BY run_date, claim_id
), night AS (
  SELECT run_date,
         count(*) FILTER (WHERE held) AS claims_held,
         count(*) FILTER (WHERE billed AND NOT held) AS claims_billed
  FROM claim GROUP BY run_date
)
SELECT n.run_date,
       coalesce(c.claims_billed, 0) AS claims_billed,
       coalesce(c.claims_held, 0) AS claims_held,
       round(CAST(c.claims_billed AS DOUBLE)
             / nullif(c.claims_billed + c.claims_held, 0), 4) AS clean_claim_rate
FROM nights n LEFT JOIN night c ON c.run_date = n.run_date
ORDER BY n.run_date""",
    ),
    "held_dollars": Measure(
        "per night: dollars of held lines, and the worklist's open backlog (NULL before worklists)",
        """\
WITH held AS (
  SELECT run_date,
         count(*) FILTER (WHERE status = 'held') AS held_lines,
         count(DISTINCT claim_id) FILTER (WHERE status = 'held') AS held_claims,
         sum(charge_amount) FILTER (WHERE status = 'held') AS held_dollars
  FROM lines GROUP BY run_date
), backlog AS (
  SELECT run_date, count(*) AS open_rows, sum(held_dollars) AS open_held_dollars,
         max(age_days) AS oldest_open_days
  FROM worklist WHERE status = 'open' GROUP BY run_date
)
SELECT n.run_date,
       coalesce(h.held_lines, 0) AS held_lines,
       coalesce(h.held_claims, 0) AS held_claims,
       CAST(coalesce(h.held_dollars, 0) AS DECIMAL(18,2)) AS held_dollars,
       b.open_rows AS worklist_open,
       CAST(b.open_held_dollars AS DECIMAL(18,2)) AS worklist_held_dollars,
       b.oldest_open_days AS worklist_oldest_open_days
FROM nights n
LEFT JOIN held h ON h.run_date = n.run_date
LEFT JOIN backlog b ON b.run_date = n.run_date
ORDER BY n.run_date""",
    ),
    "units_per_visit": Measure(
        "per night: billed units / billed visits (distinct clinic + encounter with a billed line)",
        """\
WITH billed AS (
  SELECT run_date,
         sum(units) AS billed_units,
         count(DISTINCT clinic_id || '|' || encounter_id) AS billed_visits
  FROM lines WHERE status = 'billed' GROUP BY run_date
)
SELECT n.run_date,
       coalesce(b.billed_units, 0) AS billed_units,
       coalesce(b.billed_visits, 0) AS billed_visits,
       round(CAST(b.billed_units AS DOUBLE) / nullif(b.billed_visits, 0), 4) AS units_per_visit
FROM nights n LEFT JOIN billed b ON b.run_date = n.run_date
ORDER BY n.run_date""",
    ),
    "first_pass_rate": Measure(
        "per night: claims accepted on first submission / claims sent; NULL until payer "
        "acknowledgements are stored (issue 17)",
        """\
WITH sent AS (SELECT run_date, count(*) AS claims_sent FROM claims GROUP BY run_date)
SELECT n.run_date,
       coalesce(s.claims_sent, 0) AS claims_sent,
       CAST(NULL AS BIGINT) AS accepted_first_pass,
       CAST(NULL AS DOUBLE) AS first_pass_rate
FROM nights n LEFT JOIN sent s ON s.run_date = n.run_date
ORDER BY n.run_date""",
    ),
}


def listing() -> str:
    """``query --list``: the views and the measures, one line each."""
    lines = ["views:"]
    lines += [f"  {name:<18} {about}" for name, about in VIEWS.items()]
    lines.append("measures (query --measure NAME):")
    lines += [f"  {name:<18} {m.about}" for name, m in MEASURES.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running a query


def _one_line(exc: Exception) -> str:
    """DuckDB's message up to its first blank line (the caret diagram after it is for a
    terminal), as one line."""
    text = str(exc).strip().split("\n\n", 1)[0]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def query(out: str, sql: str, fmt: str, stream: TextIO) -> int:
    """Run ``sql`` over ``out``'s views and write the result to ``stream`` as ``fmt``
    (table, csv or json); returns the number of rows. A query DuckDB refuses is a
    ``RunError`` with its message on one line."""
    import duckdb

    con = connect(out, views_named(sql))
    try:
        try:
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description]
            types = [str(d[1]) for d in cur.description]
            first = cur.fetchmany(_BATCH)  # a failure while running fails before any output
        except duckdb.Error as exc:
            raise RunError(f"query failed: {_one_line(exc)}") from exc
        return WRITERS[fmt](columns, types, _batches(cur, first), stream)
    finally:
        con.close()


_BATCH = 10_000


def _batches(cur, first: list[tuple]) -> Iterator[list[tuple]]:
    import duckdb

    rows = first
    try:
        while rows:
            yield rows
            rows = cur.fetchmany(_BATCH)
    except duckdb.Error as exc:
        raise RunError(f"query failed: {_one_line(exc)}") from exc


def _cell(v, *, sep: str = "; ") -> str:
    """A value as text: dates ISO, booleans true/false, lists joined with ``sep``."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return sep.join(_cell(x) for x in v)
    return str(v)


def write_csv(columns, types, batches, stream: TextIO) -> int:
    """RFC 4180: a header row, CRLF line ends, quotes only where needed; NULL is an empty
    field, lists are joined with ``; ``. Plain values (no spreadsheet-formula guard: this is
    for analysts' tools; exceptions.csv is the spreadsheet-safe file)."""
    w = csv.writer(stream, lineterminator="\r\n")
    w.writerow(columns)
    n = 0
    for rows in batches:
        w.writerows([_cell(v) for v in row] for row in rows)
        n += len(rows)
    return n


def _json_value(v):
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)  # money has 2 decimals: the float prints the same digits
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.hex()
    return v


def write_json(columns, types, batches, stream: TextIO) -> int:
    """One JSON array of objects (one per row, keys the column names), dates ISO 8601."""
    n = 0
    stream.write("[")
    for rows in batches:
        for row in rows:
            stream.write(",\n" if n else "\n")
            stream.write(json.dumps(dict(zip(columns, map(_json_value, row), strict=True))))
            n += 1
    stream.write("\n]\n" if n else "]\n")
    return n


_NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|U\w*INT|DOUBLE|FLOAT|DECIMAL)")


def write_table(columns, types, batches, stream: TextIO) -> int:
    """Aligned text for a terminal: numbers right-aligned, NULL shown as NULL, then the
    row count."""
    rows = [
        ["NULL" if v is None else _cell(v, sep=", ") for v in row] for b in batches for row in b
    ]
    right = [bool(_NUMERIC.match(t)) for t in types]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def fmt(cells):
        return "  ".join(
            (c.rjust(w) if r else c.ljust(w)) for c, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    buf = io.StringIO()
    buf.write(fmt(columns) + "\n")
    buf.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        buf.write(fmt(r) + "\n")
    buf.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    stream.write(buf.getvalue())
    return len(rows)


WRITERS = {"table": write_table, "csv": write_csv, "json": write_json}


# --------------------------------------------------------------------------- Athena / Trino DDL

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")


def ddl(out: str, engine: str, schema: str = "therapy_claims") -> list[str]:
    """CREATE statements for the query layers of the ``s3://`` output ``out`` in Athena or
    Trino (Hive connector), partitioned by ``run_date``, with the published column types;
    then each committed night's partitions, pointed at the folders its manifest names.

    Why per-night partitions and not partition discovery (MSCK REPAIR TABLE, partition
    projection, ``sync_partition_metadata``): a night's folder is ``run_date=D/run=R/`` and a
    replaced or crashed run's folder can sit beside the committed one, so only the manifest
    knows which folder is the night. ``nights`` is not a table there: it is the manifests
    (JSON), which Hive tables cannot read one object per file."""
    if engine not in ("athena", "trino"):
        raise RunError(f"unknown engine {engine!r} (athena or trino)")
    if not storage.is_s3(out):
        raise RunError(f"ddl needs the s3:// output the tables read, not {out}")
    if not _SCHEMA_NAME.match(schema):
        raise RunError(f"schema name {schema!r}: lowercase letters, digits and _ only")
    manifests = nights.all_committed(out)
    q = (lambda s: f"`{s}`") if engine == "athena" else _ident
    stmts = [f"CREATE {'DATABASE' if engine == 'athena' else 'SCHEMA'} IF NOT EXISTS {q(schema)}"]
    for layer in LAYERS.values():
        table = f"{q(schema)}.{q(layer.view)}"
        cols = [f"  {q(f.name)} {sql_type(f.type, engine)}" for f in published_schema(layer)]
        location = storage.join(out, layer.kind) + "/"
        if engine == "athena":
            stmts.append(
                f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n"
                + ",\n".join(cols)
                + "\n)\nPARTITIONED BY (`run_date` date)\nSTORED AS PARQUET\n"
                + f"LOCATION {_lit(location)}"
            )
        else:
            stmts.append(
                f"CREATE TABLE IF NOT EXISTS {table} (\n"
                + ",\n".join([*cols, '  "run_date" date'])
                + "\n)\nWITH (\n  format = 'PARQUET',\n"
                + f"  external_location = {_lit(location)},\n"
                + "  partitioned_by = ARRAY['run_date']\n)"
            )
    for layer in LAYERS.values():
        for rd, path in _committed_files(out, manifests, layer):
            folder = path[: -len(layer.file)]
            stmts += _partition(engine, schema, layer.view, rd, folder)
    return stmts


def _partition(engine: str, schema: str, table: str, rd: str, folder: str) -> list[str]:
    """The statements that make night ``rd`` of ``table`` read ``folder``.

    Athena: ADD IF NOT EXISTS, then SET LOCATION, so that running the whole output again after
    a night re-ran (a new ``run=`` folder) moves the partition instead of keeping the old
    folder, which the night's next run deletes. Trino's ``register_partition`` refuses a
    partition that exists: a re-run night is first unregistered (docs/analytics.md)."""
    if engine == "athena":
        spec = f"PARTITION (run_date = {_lit(rd)})"
        t = f"`{schema}`.`{table}`"
        return [
            f"ALTER TABLE {t} ADD IF NOT EXISTS {spec} LOCATION {_lit(folder)}",
            f"ALTER TABLE {t} {spec} SET LOCATION {_lit(folder)}",
        ]
    return [
        "CALL system.register_partition("
        f"schema_name => {_lit(schema)}, table_name => {_lit(table)}, "
        f"partition_columns => ARRAY['run_date'], partition_values => ARRAY[{_lit(rd)}], "
        f"location => {_lit(folder)})"
    ]
