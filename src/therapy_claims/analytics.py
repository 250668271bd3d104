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

from therapy_claims import acks, lifecycle, nights, payer_reasons, responses, schemas, storage
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


# --------------------------------------------------------------------------- after sending
# The responses layer (``therapy_claims.acks``: ``responses/received_on=D/run=R/<table>.parquet``,
# every committed acks run counts) and the lifecycle (``<out>/lifecycle/``: three files
# recomputed whole from the ledger and the responses). The lifecycle's columns are its
# contract's (``therapy_claims.lifecycle.SCHEMAS``), declared here so the views have them
# before the lifecycle is first computed.

RESPONSE_VIEWS = tuple(
    responses.SCHEMAS
)  # acknowledgments, claim_statuses, payments, payment_lines
LIFECYCLE = "lifecycle"
_MONEY = pa.decimal128(12, 2)
_CODES = pa.list_(pa.string())
# the lifecycle layer's own schemas (``therapy_claims.lifecycle``, which writes the files)
LIFECYCLE_CURRENT = lifecycle.SCHEMAS["current"]
LIFECYCLE_HISTORY = lifecycle.SCHEMAS["history"]
LIFECYCLE_FINDINGS = lifecycle.SCHEMAS["findings"]
LIFECYCLE_FILES = {
    "claim_lifecycle": ("current.parquet", LIFECYCLE_CURRENT),
    "claim_history": ("history.parquet", LIFECYCLE_HISTORY),
    "lifecycle_findings": ("findings.parquet", LIFECYCLE_FINDINGS),
}
# the 835 outcomes: a claim in one of these is adjudicated
ADJUDICATED = ("paid", "partially_paid", "denied")

PAYER_REASON_RULES = pa.schema(
    [
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("rule_code", pa.string()),
        ("meaning", pa.string()),
    ]
)


def payer_reason_rules(reference: str | None = None) -> pa.Table:
    """``payer_reasons``' mapping as rows: one per (kind, reason, rule code), in file order."""
    mapping = payer_reasons.load(reference)
    rows = [
        {"kind": kind, "reason": reason, "rule_code": rule, "meaning": mapping.meanings[key]}
        for key, rules in mapping.rules.items()
        for kind, reason in [key]
        for rule in rules
    ]
    return pa.Table.from_pylist(rows, schema=PAYER_REASON_RULES)


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
# field names DuckDB quotes in a STRUCT type (its reserved words among the names used here)
_KEYWORDS = frozenset({"group", "order", "from", "select", "where", "to", "end"})


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
    if pa.types.is_struct(t):
        fields = [(f.name, sql_type(f.type, engine)) for f in t]
        if engine == "duckdb":  # as DuckDB writes it: only a keyword quoted
            quoted = [(_ident(n) if n in _KEYWORDS else n, k) for n, k in fields]
            return "STRUCT(" + ", ".join(f"{n} {k}" for n, k in quoted) + ")"
        if engine == "athena":
            return "struct<" + ",".join(f"`{n}`:{k}" for n, k in fields) + ">"
        return "row(" + ", ".join(f"{_ident(n)} {k}" for n, k in fields) + ")"
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


def _select(
    columns: set[str] | None,
    schema: pa.Schema,
    source: str,
    extras: list[tuple[str, str, str | None]] = (),
) -> str:
    """One file's SELECT of a view: every declared column cast to its SQL type (NULL for a
    column the file lacks), then the ``extras``: ``(name, SQL type, SQL literal)``, the
    values the file's folder gives (``run_date`` of a night). ``columns`` None: the empty
    view."""
    items = []
    for f in schema:
        t = sql_type(f.type, "duckdb")
        have = columns is not None and f.name in columns
        items.append(f"CAST({_ident(f.name) if have else 'NULL'} AS {t}) AS {_ident(f.name)}")
    for name, t, value in extras:
        literal = "NULL" if columns is None or value is None else value
        items.append(f"CAST({literal} AS {t}) AS {_ident(name)}")
    if columns is None:
        return "SELECT " + ", ".join(items) + " WHERE false"
    return "SELECT " + ", ".join(items) + f" FROM {source}"


def _union_view(
    con: duckdb.DuckDBPyConnection,
    view: str,
    schema: pa.Schema,
    files: list[tuple[str, list[tuple[str, str, str | None]]]],
    extras: list[tuple[str, str]] = (),
) -> None:
    """Create ``view`` as the UNION ALL of ``files`` (``(path, extras with their values)``),
    each cast to ``schema``; no file: the empty view with the columns. A local file is read
    by DuckDB where it is; an ``s3://`` one through ``storage`` into Arrow (module note)."""
    parts = []
    for i, (path, values) in enumerate(files):
        if storage.is_s3(path):
            table = storage.read_table(path)
            name = f"_{view}_{i}"
            con.register(name, table)
            parts.append(_select(set(table.column_names), schema, _ident(name), values))
        else:
            import pyarrow.parquet as pq

            with storage.guard("read", path):
                names = set(pq.read_schema(path).names)
            source = f"read_parquet({_lit(path)}, hive_partitioning = false)"
            parts.append(_select(names, schema, source, values))
    empty = [(name, t, None) for name, t in extras]
    body = "\nUNION ALL\n".join(parts) if parts else _select(None, schema, "", empty)
    con.execute(f"CREATE VIEW {_ident(view)} AS\n{body}")


def _layer_view(
    con: duckdb.DuckDBPyConnection, out: str, manifests: dict, layer: Layer, view: str
) -> None:
    files = [
        (path, [("run_date", "DATE", f"DATE {_lit(rd)}")])
        for rd, path in _committed_files(out, manifests, layer)
    ]
    _union_view(con, view, published_schema(layer), files, [("run_date", "DATE")])


def _response_view(con: duckdb.DuckDBPyConnection, out: str | None, table: str) -> None:
    """A responses table of every committed acks run, with the run's ``received_on`` and
    ``acks_run_id`` (the folder's; the files carry none inside)."""
    runs = acks.committed_runs(out) if out else []
    files = [
        (
            storage.join(folder, f"{table}.parquet"),
            [
                ("received_on", "DATE", f"DATE {_lit(day.isoformat())}"),
                ("acks_run_id", "VARCHAR", _lit(run_id)),
            ],
        )
        for day, run_id, folder in runs
    ]
    extras = [("received_on", "DATE"), ("acks_run_id", "VARCHAR")]
    _union_view(con, table, responses.SCHEMAS[table], files, extras)


def _lifecycle_view(con: duckdb.DuckDBPyConnection, out: str | None, view: str) -> None:
    """One of the lifecycle's files as it is (recomputed whole, no partitions); empty view
    with its columns when the lifecycle has not been computed yet."""
    name, schema = LIFECYCLE_FILES[view]
    path = storage.join(out, LIFECYCLE, name) if out else None
    files = [(path, [])] if path and storage.exists(path) else []
    _union_view(con, view, schema, files)


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


@dataclass(frozen=True)
class Derived:
    """A view defined in SQL over other views: what the analyst can read to see how."""

    about: str
    sql: str
    needs: frozenset[str]


_SCOPES = """\
  SELECT 'payer' AS level, payer_id, {cols} FROM claim
  UNION ALL
  SELECT 'overall' AS level, CAST(NULL AS VARCHAR) AS payer_id, {cols} FROM claim"""


def _scoped(cols: str) -> str:
    return _SCOPES.format(cols=cols)


DERIVED = {
    "claims": Derived(
        "one row per claim sent (ledger layer), with its lifecycle status, status date and "
        "paid amount ('sent', its run date and 0.00 before any response is recorded)",
        """\
SELECT s.* EXCLUDE (run_date),
       coalesce(l.status, 'sent') AS status,
       coalesce(l.status_on, s.run_date) AS status_on,
       CAST(coalesce(l.paid, 0) AS DECIMAL(12,2)) AS paid,
       s.run_date
FROM _claims_sent s
LEFT JOIN (
  SELECT claim_id, run_date, status, status_on, paid
  FROM claim_lifecycle
  QUALIFY row_number() OVER (PARTITION BY claim_id, run_date ORDER BY steps DESC) = 1
) l ON l.claim_id = s.claim_id AND l.run_date = s.run_date""",
        frozenset({"_claims_sent", "claim_lifecycle"}),
    ),
    "claim_measures": Derived(
        "per payer and overall: claims with a first response, first-pass acceptance rate, "
        "denial rate, days to payment (mean, median, p90), from the lifecycle",
        f"""\
WITH claim AS (
  SELECT payer_id, status, status_kind, first_pass_accepted, days_to_payment
  FROM claim_lifecycle
), scoped AS (
{_scoped("status, status_kind, first_pass_accepted, days_to_payment")}
)
SELECT level, payer_id,
       count(*) AS claims_sent,
       count(*) FILTER (WHERE status_kind <> '837') AS claims_with_response,
       count(first_pass_accepted) AS first_pass_known,
       count(*) FILTER (WHERE first_pass_accepted) AS first_pass_accepted,
       round(CAST(count(*) FILTER (WHERE first_pass_accepted) AS DOUBLE)
             / nullif(count(first_pass_accepted), 0), 4) AS first_pass_acceptance_rate,
       count(*) FILTER (WHERE status IN ('paid', 'partially_paid', 'denied')) AS claims_adjudicated,
       count(*) FILTER (WHERE status = 'denied') AS claims_denied,
       round(CAST(count(*) FILTER (WHERE status = 'denied') AS DOUBLE)
             / nullif(count(*) FILTER (WHERE status IN ('paid', 'partially_paid', 'denied')), 0),
             4) AS denial_rate,
       count(days_to_payment) AS claims_paid,
       round(avg(days_to_payment), 2) AS days_to_payment_mean,
       round(quantile_cont(CAST(days_to_payment AS DOUBLE), 0.5), 2) AS days_to_payment_median,
       round(quantile_cont(CAST(days_to_payment AS DOUBLE), 0.9), 2) AS days_to_payment_p90
FROM scoped
GROUP BY level, payer_id
ORDER BY level DESC, payer_id""",
        frozenset({"claim_lifecycle"}),
    ),
    "denials_by_carc": Derived(
        "per payer and overall and 835 reason (group-CARC): denied claims with it / claims "
        "adjudicated",
        f"""\
WITH claim AS (
  SELECT payer_id, status, reason_codes
  FROM claim_lifecycle
  WHERE status IN ('paid', 'partially_paid', 'denied')
), scoped AS (
{_scoped("status, reason_codes")}
), counted AS (
  SELECT level, payer_id, status, reason_codes,
         count(*) OVER (PARTITION BY level, payer_id) AS claims_adjudicated
  FROM scoped
)
SELECT level, payer_id, r.reason_code,
       count(*) AS claims_denied,
       claims_adjudicated,
       round(CAST(count(*) AS DOUBLE) / claims_adjudicated, 4) AS denial_rate
FROM counted CROSS JOIN UNNEST(reason_codes) AS r(reason_code)
WHERE status = 'denied'
GROUP BY level, payer_id, r.reason_code, claims_adjudicated
ORDER BY level DESC, payer_id, claims_denied DESC, r.reason_code""",
        frozenset({"claim_lifecycle"}),
    ),
    "denials_by_rule": Derived(
        "per payer and overall and our rule code: denied claims with a reason that rule "
        "would have caught (payer_reason_rules) / claims adjudicated",
        f"""\
WITH claim AS (
  SELECT payer_id, claim_id, run_date, status, reason_codes
  FROM claim_lifecycle
  WHERE status IN ('paid', 'partially_paid', 'denied')
), scoped AS (
{_scoped("claim_id, run_date, status, reason_codes")}
), counted AS (
  SELECT level, payer_id, claim_id, run_date, status, reason_codes,
         count(*) OVER (PARTITION BY level, payer_id) AS claims_adjudicated
  FROM scoped
)
SELECT c.level, c.payer_id, m.rule_code,
       count(DISTINCT c.claim_id || '|' || CAST(c.run_date AS VARCHAR)) AS claims_denied,
       c.claims_adjudicated,
       round(CAST(count(DISTINCT c.claim_id || '|' || CAST(c.run_date AS VARCHAR)) AS DOUBLE)
             / c.claims_adjudicated, 4) AS denial_rate
FROM counted c
CROSS JOIN UNNEST(c.reason_codes) AS r(reason_code)
JOIN payer_reason_rules m ON m.kind = '835' AND m.reason = r.reason_code
WHERE c.status = 'denied'
GROUP BY c.level, c.payer_id, m.rule_code, c.claims_adjudicated
ORDER BY c.level DESC, c.payer_id, claims_denied DESC, m.rule_code""",
        frozenset({"claim_lifecycle", "payer_reason_rules"}),
    ),
}
MEASURE_VIEWS = ("claim_measures", "denials_by_carc", "denials_by_rule")

VIEWS = {
    **{name: lay.about + f" ({lay.kind} layer)" for name, lay in LAYERS.items()},
    "claims": DERIVED["claims"].about,
    "nights": "one row per committed night: its manifest's run id, counts and held dollars",
    **{
        t: f"one row per {what} (responses layer, every committed acks run)"
        for t, what in (
            ("acknowledgments", "999 transaction set acknowledged (AK2)"),
            ("claim_statuses", "277CA claim status"),
            ("payments", "835 claim payment (CLP)"),
            ("payment_lines", "835 service line payment (SVC)"),
        )
    },
    "claim_lifecycle": "one row per claim sent: its current lifecycle status (lifecycle layer)",
    "claim_history": "one row per step of a claim's lifecycle (lifecycle layer)",
    "lifecycle_findings": "one row per lifecycle finding: unknown claim, duplicate response, ...",
    "payer_reason_rules": "one row per payer reason (835 group-CARC) and the rule code of ours "
    "that would have prevented it (payer_reasons.csv)",
    **{name: DERIVED[name].about for name in MEASURE_VIEWS},
}
_NEEDS = {"nights": {"lines"}, **{name: set(d.needs) for name, d in DERIVED.items()}}


def _needed(views: Iterable[str]) -> set[str]:
    """``views`` and every view they read, transitively."""
    wanted = set(views)
    todo = list(wanted)
    while todo:
        for dep in _NEEDS.get(todo.pop(), ()):
            if dep not in wanted:
                wanted.add(dep)
                todo.append(dep)
    return wanted


def views_named(sql: str) -> set[str]:
    """The views a query names (a word anywhere in it), with the views they read."""
    return _needed(v for v in VIEWS if re.search(rf"\b{v}\b", sql, re.IGNORECASE))


def connect(
    out: str, views: Iterable[str] | None = None, *, reference: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views over every committed night of ``out``
    (``views``: only these and what they read; default all). No committed night is an error:
    a mistyped output root would otherwise answer every query with nothing. ``reference``:
    the reference folder whose ``payer_reasons.csv`` ``payer_reason_rules`` reads (default:
    the shipped one)."""
    manifests = nights.all_committed(out)
    if not manifests:
        raise RunError(f"no committed night under {out} (no manifest/run_date=D.json)")
    return _build(out, manifests, set(VIEWS) if views is None else set(views), reference)


def empty_connection() -> duckdb.DuckDBPyConnection:
    """Every view, with no data: their columns and types (the data dictionary's test)."""
    return _build(None, {}, set(VIEWS), None)


def _build(
    out: str | None, manifests: dict, views: set[str], reference: str | None
) -> duckdb.DuckDBPyConnection:
    import duckdb

    wanted = _needed(views)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")  # the manifests' times print as recorded, on any host
    for name, layer in LAYERS.items():
        view = "_claims_sent" if name == "claims" else name
        if view in wanted:
            _layer_view(con, out, manifests, layer, view)
    if "nights" in wanted:
        _nights_view(con, manifests)
    for table in RESPONSE_VIEWS:
        if table in wanted:
            _response_view(con, out, table)
    for view in LIFECYCLE_FILES:
        if view in wanted:
            _lifecycle_view(con, out, view)
    if "payer_reason_rules" in wanted:
        con.register("_payer_reason_rules", payer_reason_rules(reference))
        con.execute("CREATE VIEW payer_reason_rules AS SELECT * FROM _payer_reason_rules")
    for name, d in DERIVED.items():  # in dependency order (claims reads no measure)
        if name in wanted:
            con.execute(f"CREATE VIEW {_ident(name)} AS\n{d.sql}")
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
        "per night that sent them: claims whose first 999 and first 277CA both accepted "
        "them / claims with both known (claim_lifecycle; NULL before any response)",
        """\
WITH sent AS (SELECT run_date, count(*) AS claims_sent FROM claims GROUP BY run_date),
fp AS (
  SELECT run_date,
         count(first_pass_accepted) AS first_pass_known,
         count(*) FILTER (WHERE first_pass_accepted) AS accepted_first_pass
  FROM claim_lifecycle GROUP BY run_date
)
SELECT n.run_date,
       coalesce(s.claims_sent, 0) AS claims_sent,
       coalesce(f.first_pass_known, 0) AS first_pass_known,
       coalesce(f.accepted_first_pass, 0) AS accepted_first_pass,
       round(CAST(f.accepted_first_pass AS DOUBLE) / nullif(f.first_pass_known, 0), 4)
         AS first_pass_rate
FROM nights n
LEFT JOIN sent s ON s.run_date = n.run_date
LEFT JOIN fp f ON f.run_date = n.run_date
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


def query(out: str, sql: str, fmt: str, stream: TextIO, *, reference: str | None = None) -> int:
    """Run ``sql`` over ``out``'s views and write the result to ``stream`` as ``fmt``
    (table, csv or json); returns the number of rows. A query DuckDB refuses is a
    ``RunError`` with its message on one line. ``reference``: as ``connect``'s."""
    import duckdb

    con = connect(out, views_named(sql), reference=reference)
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
    return stmts + _after_sending_ddl(out, engine, schema)


def _after_sending_ddl(out: str, engine: str, schema: str) -> list[str]:
    """The responses and lifecycle tables: a folder of theirs holds several tables' files
    (``responses/received_on=D/run=R/`` the four tables and ``files.parquet``;
    ``lifecycle/`` three files), and a Hive table reads every file of its folder. So each gets
    a table ``<view>_parquet`` over the folders (Parquet columns are read by name: another
    table's file gives NULLs) and a view ``<view>`` keeping its own file's rows (``"$path"``,
    the file a row came from, in Athena and Trino). The responses tables are partitioned by
    ``received_on`` and ``acks_run_id``, one partition per committed acks run; the lifecycle
    is one unpartitioned folder, replaced whole."""
    q = (lambda s: f"`{s}`") if engine == "athena" else _ident
    stmts = []
    sources = [
        (t, responses.SCHEMAS[t], f"{t}.parquet", storage.join(out, acks.LAYER))
        for t in RESPONSE_VIEWS
    ] + [
        (view, sch, name, storage.join(out, LIFECYCLE))
        for view, (name, sch) in LIFECYCLE_FILES.items()
    ]
    runs = acks.committed_runs(out)
    for view, sch, name, location in sources:
        table = f"{q(schema)}.{q(view + '_parquet')}"
        cols = [f"  {q(f.name)} {sql_type(f.type, engine)}" for f in sch]
        partitioned = view in RESPONSE_VIEWS
        keys = [
            ("received_on", "date"),
            ("acks_run_id", "string" if engine == "athena" else "varchar"),
        ]
        if engine == "athena":
            by = f"PARTITIONED BY ({', '.join(f'`{k}` {t}' for k, t in keys)})\n"
            stmts.append(
                f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n"
                + ",\n".join(cols)
                + f"\n)\n{by if partitioned else ''}STORED AS PARQUET\n"
                + f"LOCATION {_lit(location + '/')}"
            )
        else:
            if partitioned:
                cols += [f'  "{k}" {t}' for k, t in keys]
            part = (
                "  partitioned_by = ARRAY['received_on', 'acks_run_id'],\n" if partitioned else ""
            )
            stmts.append(
                f"CREATE TABLE IF NOT EXISTS {table} (\n"
                + ",\n".join(cols)
                + "\n)\nWITH (\n  format = 'PARQUET',\n"
                + part
                + f"  external_location = {_lit(location + '/')}\n)"
            )
        names = [f.name for f in sch] + (["received_on", "acks_run_id"] if partitioned else [])
        stmts.append(
            f"CREATE OR REPLACE VIEW {_ident(schema)}.{_ident(view)} AS SELECT "
            + ", ".join(_ident(c) for c in names)
            + f" FROM {_ident(schema)}.{_ident(view + '_parquet')}"
            + f' WHERE "$path" LIKE {_lit("%/" + name)}'
        )
        if partitioned:
            for day, run_id, folder in runs:
                stmts.append(_run_partition(engine, schema, view + "_parquet", day, run_id, folder))
    return stmts


def _run_partition(engine: str, schema: str, table: str, day, run_id: str, folder: str) -> str:
    """The statement that makes acks run ``run_id`` (received on ``day``) a partition of
    ``table``. A run's folder never moves (a new run is a new folder): no SET LOCATION."""
    rd = day.isoformat()
    if engine == "athena":
        return (
            f"ALTER TABLE `{schema}`.`{table}` ADD IF NOT EXISTS PARTITION (received_on = "
            f"{_lit(rd)}, acks_run_id = {_lit(run_id)}) LOCATION {_lit(folder + '/')}"
        )
    return (
        "CALL system.register_partition("
        f"schema_name => {_lit(schema)}, table_name => {_lit(table)}, "
        "partition_columns => ARRAY['received_on', 'acks_run_id'], "
        f"partition_values => ARRAY[{_lit(rd)}, {_lit(run_id)}], "
        f"location => {_lit(folder + '/')})"
    )


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


# --------------------------------------------------------------------------- for the report


def lifecycle_measures(out: str, reference: str | None = None) -> dict[str, list[dict]] | None:
    """The rows of each measure view (``MEASURE_VIEWS``) from the lifecycle files alone, or
    None when the lifecycle has not been computed. No committed night is needed: the night's
    report is written before its night commits."""
    name, _ = LIFECYCLE_FILES["claim_lifecycle"]
    if not storage.exists(storage.join(out, LIFECYCLE, name)):
        return None
    con = _build(out, {}, set(MEASURE_VIEWS), reference)
    try:
        found = {}
        for view in MEASURE_VIEWS:
            cur = con.execute(f"SELECT * FROM {view}")
            cols = [d[0] for d in cur.description]
            found[view] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        return found
    finally:
        con.close()
