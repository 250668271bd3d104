"""One Arrow schema per output layer: what analysts and later nights read, declared once.

Each layer has two forms. The **internal** one (``LAYERS``) is what the stages compute with:
text is ``large_string`` (what pandas' ``string`` columns become), dates are ``timestamp[us]``,
counts ``int64``, flags ``bool``, money ``double`` (dollars) and the extract's lists
``;``-joined text. The
stage logic was written against these, so they stay. The **published** one (``PUBLISHED``) is
what the Parquet files hold, for SQL engines (DuckDB, Athena, Trino): money ``decimal(12, 2)``,
dates ``DATE``, ``ingested_at`` a UTC timestamp, every list of codes ``list<string>``, no
``run_date`` column (the files are partitioned by it) and the schema version and layer in the
file's key-value metadata. ``published`` converts a layer on its way to a file and
``internal`` converts it back (files written before the published form too), column-wise in
Arrow: a million-line night cannot afford Python per row.

The published type of a column follows from its internal type (``published_type``), so a new
column of a known type needs nothing here; a few text columns carry a concept their internal
type does not say (``_TEXT_AS``). The writers conform their tables to the internal schemas
(``conform``) and the tests hold the written files to the published ones, so a column's name,
order or type changes only here, on purpose, with ``docs/outputs.md`` and
``docs/data-dictionary.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims.layout import COLUMNS

TEXT, DATE, INT, MONEY = pa.large_string(), pa.timestamp("us"), pa.int64(), pa.float64()
BOOL = pa.bool_()
TEXT_LIST = pa.list_(pa.string())

_KIND = {"str": TEXT, "enum": TEXT, "list": TEXT, "time": TEXT, "date": DATE, "int": INT}
_KIND["decimal"] = MONEY


def _raw() -> pa.Schema:
    """The extract's columns as typed by ingest (a time keeps its text and gains its minute
    of the day), then the lineage columns."""
    fields = []
    for c in COLUMNS:
        fields.append(pa.field(c.name, _KIND[c.kind]))
        if c.kind == "time":
            fields.append(pa.field(c.name.replace("_time", "_minute"), INT))
    fields += [("source_file", TEXT), ("source_row", INT), ("ingested_at", TEXT)]
    return pa.schema(fields)


RAW = _raw()

SCORED = pa.schema(
    [
        ("line_id", TEXT),
        ("encounter_id", TEXT),
        ("claim_id", TEXT),
        ("patient_id", TEXT),
        ("payer_id", TEXT),
        ("clinic_id", TEXT),
        ("date_of_service", DATE),
        ("discipline", TEXT),
        ("rendering_npi", TEXT),
        ("cpt_code", TEXT),
        ("modifiers", TEXT_LIST),
        ("minutes", INT),
        ("units_charted", INT),
        ("units", INT),
        ("charge_amount", MONEY),
        ("status", TEXT),
        ("exception_codes", TEXT_LIST),
        ("changes", TEXT_LIST),
        ("claim_type", TEXT),
        ("receiver_id", TEXT),
        ("unit_method", TEXT),
        ("source_file", TEXT),
        ("source_row", INT),
    ]
)

EXCEPTIONS = pa.schema(
    [
        ("run_date", TEXT),
        ("line_id", TEXT),
        ("encounter_id", TEXT),
        ("code", TEXT),
        ("severity", TEXT),
        ("message", TEXT),
        ("suggested_fix", TEXT),
        ("evidence", TEXT),
        ("before", TEXT),
        ("after", TEXT),
        ("source_file", TEXT),
        ("source_row", INT),
        ("claim_id", TEXT),
        ("cpt_code", TEXT),
        ("date_of_service", DATE),
        # for the people who work the findings: where, whose, and what is at stake
        ("clinic_id", TEXT),
        ("payer_id", TEXT),
        ("owner", TEXT),
        ("holds_claim", BOOL),
        ("claim_charge", MONEY),
    ]
)

# one row per worklist key (clinic + encounter): a held claim, or a sent one the clearinghouse or
# the payer rejected or denied, carried across nights until it resolves
# (``therapy_claims.worklist``)
WORKLIST = pa.schema(
    [
        ("worklist_key", TEXT),
        ("clinic_id", TEXT),
        ("encounter_id", TEXT),
        ("patient_id", TEXT),
        ("payer_id", TEXT),
        ("claim_ids", TEXT_LIST),
        ("first_date_of_service", DATE),
        ("last_date_of_service", DATE),
        ("lines", INT),
        ("held_dollars", MONEY),
        ("blocking_codes", TEXT_LIST),
        ("fixes", TEXT_LIST),
        ("owners", TEXT_LIST),
        ("owner", TEXT),
        ("first_held", DATE),
        ("last_held", DATE),
        ("age_days", INT),
        ("status", TEXT),
        ("resolved_on", DATE),
        ("resolution", TEXT),
        # issue 17: a claim the clearinghouse or the payer rejected or denied is a row too
        ("source", TEXT),
        ("payer_reason_codes", TEXT_LIST),
        ("prevented_by", TEXT_LIST),
    ]
)

LEDGER = pa.schema(
    [
        ("claim_id", TEXT),
        ("claim_key", TEXT),
        ("run_date", TEXT),
        ("payer_id", TEXT),
        ("clinic_id", TEXT),
        ("patient_id", TEXT),
        ("encounter_id", TEXT),
        ("first_date_of_service", TEXT),
        ("last_date_of_service", TEXT),
        ("lines", INT),
        ("charge", MONEY),
        ("claim_type", TEXT),
        ("receiver_id", TEXT),
        ("file", TEXT),
        ("interchange_control_number", TEXT),
        ("group_control_number", TEXT),
        ("transaction_set_control_number", TEXT),
        # how the claim was sent (issue 17: corrected, resubmitted and voided claims)
        ("frequency_code", TEXT),
        ("original_claim_id", TEXT),
        ("original_reference", TEXT),
        ("lines_digest", TEXT),
    ]
)

LAYERS = {
    "raw": RAW,
    "scored": SCORED,
    "exceptions": EXCEPTIONS,
    "ledger": LEDGER,
    "worklist": WORKLIST,
}


def conform(table: pa.Table, schema: pa.Schema, *, extra_text: bool = False) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, order and types. A table that already has
    them is returned as it is; a column of another type is cast (e.g. the all-null column of
    an empty night, which pandas cannot type); a missing or extra column is a bug, except
    with ``extra_text`` (the raw layer: an extract's unknown columns are kept, as text, after
    the declared ones)."""
    if table.schema.equals(schema):
        return table
    if extra_text:
        extras = [c for c in table.column_names if c not in schema.names]
        if extras and set(schema.names) <= set(table.column_names):
            declared = conform(table.select(schema.names), schema)
            for name in extras:
                declared = declared.append_column(
                    pa.field(name, TEXT), table.column(name).cast(TEXT)
                )
            return declared
    if table.column_names != schema.names:
        raise ValueError(f"columns {table.column_names} are not the layer's {schema.names}")
    return table.cast(schema)


# --------------------------------------------------------------------------- published form

SCHEMA_VERSION = "2"  # 1: the internal types in the files (before issue 16)
VERSION_KEY = b"therapy_claims.schema_version"
LAYER_KEY = b"therapy_claims.layer"
RUN_DATE_KEY = b"therapy_claims.run_date"

SQL_MONEY = pa.decimal128(12, 2)  # up to 9,999,999,999.99 dollars, exact cents
SQL_DATE = pa.date32()
SQL_TIMESTAMP = pa.timestamp("us", tz="UTC")

# columns the files are partitioned by (``<kind>/run_date=D/``): not inside the files
PARTITION_COLUMNS = ("run_date",)

# text columns whose text is something SQL has a type for: the same concept gets the same
# published type in every layer (the raw extract's lists as scored's ``modifiers``, the
# ledger's dates as every other date)
_TEXT_AS: dict[str, pa.DataType] = {
    **{c.name: TEXT_LIST for c in COLUMNS if c.kind == "list"},
    "first_date_of_service": SQL_DATE,
    "last_date_of_service": SQL_DATE,
    "ingested_at": SQL_TIMESTAMP,
}
_LIST_SEPARATOR = ";"  # how the internal text joins a list (the extract's own separator)
_TIMESTAMP_TEXT = "%Y-%m-%dT%H:%M:%SZ"  # how the internal text writes a UTC time
_DOLLAR_CENTS = 100
_MAX_CENTS = 10**12  # decimal(12, 2) holds fewer than 10^12 cents
_CENT_TOLERANCE = 1e-3  # of a cent: a double's noise (sums of cents), not a sub-cent amount


def published_type(field: pa.Field) -> pa.DataType | None:
    """The published type of an internal column, or None for a column the files leave out
    (the partition column). By type: money (``double``) is ``decimal(12, 2)``, a date
    (``timestamp`` without a zone) is ``DATE``, a list of text is ``list<string>``; by name,
    only for text columns: ``_TEXT_AS``."""
    t = field.type
    if field.name in PARTITION_COLUMNS:
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _TEXT_AS.get(field.name, t)
    if pa.types.is_floating(t):
        return SQL_MONEY
    if pa.types.is_timestamp(t) and t.tz is None:
        return SQL_DATE
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return TEXT_LIST
    return t


def published_schema(layer: str) -> pa.Schema:
    """The schema of ``layer``'s Parquet file: the internal columns in order, each with its
    ``published_type``, and the schema version and layer as metadata."""
    fields = []
    for f in LAYERS[layer]:
        t = published_type(f)
        if t is not None:
            fields.append(pa.field(f.name, t))
    return pa.schema(fields, metadata={VERSION_KEY: SCHEMA_VERSION, LAYER_KEY: layer})


PUBLISHED = {layer: published_schema(layer) for layer in LAYERS}


def layer_of(path: str) -> str | None:
    """The layer whose file ``path`` is (``<layer>.parquet``), or None for any other file
    (e.g. the staging area's work files)."""
    name = re.split(r"[/\\]", path)[-1]
    stem = name[: -len(".parquet")] if name.endswith(".parquet") else ""
    return stem if stem in LAYERS else None


def published(table: pa.Table, layer: str) -> pa.Table:
    """``table`` (``layer``'s internal form) as its file holds it: ``PUBLISHED[layer]`` with
    the night's run date in the metadata where the layer had a ``run_date`` column. A value
    the published type cannot hold exactly (an amount that is not whole cents, or too large;
    a date with a time of day; a time not written ``YYYY-MM-DDTHH:MM:SSZ``) is a
    ``ValueError``: publishing never changes a value silently."""
    schema = LAYERS[layer]
    table = conform(table, schema, extra_text=layer == "raw")
    meta = {VERSION_KEY: SCHEMA_VERSION.encode(), LAYER_KEY: layer.encode()}
    arrays, fields = [], []
    for f in schema:
        column = table.column(f.name)
        to = published_type(f)
        if to is None:
            run_date = _one_value(column, f"{layer}.{f.name}")
            if run_date is not None:
                meta[RUN_DATE_KEY] = run_date.encode()
            continue
        arrays.append(_to_published(column, f.type, to, f"{layer}.{f.name}"))
        fields.append(pa.field(f.name, to))
    for f in table.schema:  # the raw layer's extra extract columns, as text
        if f.name not in schema.names:
            arrays.append(table.column(f.name))
            fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


# rows converted to the published form at a time when a file is written
PUBLISH_SLICE_ROWS = 256 * 1024


def published_slices(table: pa.Table, layer: str, rows: int | None = None) -> Iterator[pa.Table]:
    """``published(table, layer)`` ``rows`` rows at a time, each slice a row group of the
    file: the same values and schema without a converted copy of a whole million-line table
    beside the original (about 200 MiB for the raw layer) while score or publish runs."""
    rows = rows or PUBLISH_SLICE_ROWS
    if table.num_rows <= rows:
        yield published(table, layer)
        return
    first = None
    for start in range(0, table.num_rows, rows):
        part = published(table.slice(start, rows), layer)
        if first is None:
            first = part.schema
        elif not part.schema.equals(first, check_metadata=True):
            meta = (part.schema.metadata or {}).get(RUN_DATE_KEY)
            raise ValueError(
                f"{layer}: a file holds one night, not "
                f"{(first.metadata or {}).get(RUN_DATE_KEY)!r} and {meta!r}"
            )
        yield part


def internal(table: pa.Table, layer: str, run_date: str | None = None) -> pa.Table:
    """A published ``layer`` file's table (or one written before the published form, with
    the internal types and a ``run_date`` column) in the internal form. The columns present
    come back in the internal schema's order with its types, the partition column restored
    (from ``run_date``, else the file's metadata); columns the layer does not declare are
    kept as they are, after them. A table of some columns only gives those (and the
    partition column)."""
    schema = LAYERS[layer]
    present = set(table.column_names)
    arrays, fields = [], []
    for f in schema:
        if f.name in present:
            arrays.append(_to_internal(table.column(f.name), f.type))
        elif f.name in PARTITION_COLUMNS:
            arrays.append(_partition_column(table, f, run_date, layer))
        else:
            continue
        fields.append(f)
    for f in table.schema:
        if f.name not in schema.names:
            arrays.append(table.column(f.name))
            fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def read(path: str, layer: str, columns: list[str] | None = None) -> pa.Table:
    """``layer``'s file at ``path`` in the internal form (``columns`` only, if given): every
    reader of a published layer goes through here. The partition column comes from the
    metadata, else from the path's ``run_date=D`` folder (a file from before issue 16 that
    was read without its own ``run_date`` column)."""
    from therapy_claims import storage

    stored = None if columns is None else [c for c in columns if c not in PARTITION_COLUMNS]
    table = storage.read_table(path, stored)
    found = re.search(r"run_date=(\d{4}-\d{2}-\d{2})", path)
    meta = table.schema.metadata or {}
    run_date = None if RUN_DATE_KEY in meta or not found else found.group(1)
    table = internal(table, layer, run_date)
    return table if columns is None else table.select(columns)


def _one_value(column: pa.ChunkedArray, what: str) -> str | None:
    """The one value of a partition column (None for no rows); several are a bug."""
    values = pc.unique(column).drop_null()
    if len(values) > 1 or (len(values) == 0 and column.null_count):
        raise ValueError(f"{what}: a file holds one night, not {values.to_pylist()!r}")
    return values[0].as_py() if len(values) else None


def _partition_column(
    table: pa.Table, field: pa.Field, run_date: str | None, layer: str
) -> pa.Array:
    meta = table.schema.metadata or {}
    value = run_date if run_date is not None else meta.get(RUN_DATE_KEY, b"").decode() or None
    if value is None and table.num_rows:
        raise ValueError(f"{layer}: the file names no {field.name} (metadata or folder)")
    return pa.repeat(pa.scalar(value, field.type), table.num_rows)


# -------------------------------------------------------------- conversions, one column each


def _to_published(
    column: pa.ChunkedArray, src: pa.DataType, to: pa.DataType, what: str
) -> pa.ChunkedArray:
    if to == src:
        return column
    if to == SQL_MONEY:
        return pa.chunked_array([_cents(c, what) for c in column.chunks], type=SQL_MONEY)
    if to == SQL_DATE and pa.types.is_timestamp(src):
        dates = column.cast(SQL_DATE)
        if pc.any(pc.not_equal(dates.cast(src), column)).as_py():
            raise ValueError(f"{what}: a date has a time of day")
        return dates
    if to in (SQL_DATE, SQL_TIMESTAMP):  # text: few distinct values (a night's dates, a time)
        return _per_distinct(column, lambda values: _parsed(values, to, what))
    if to == TEXT_LIST and not (pa.types.is_list(src) or pa.types.is_large_list(src)):
        return pc.split_pattern(column, _LIST_SEPARATOR).cast(TEXT_LIST)
    return column.cast(to)


def _to_internal(column: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    """One column of a file as its internal type: the published types' way back, and a plain
    cast for anything else (an older file's types, ``string`` to ``large_string``)."""
    src = column.type
    if src == to:
        return column
    if pa.types.is_decimal(src):
        return pa.chunked_array([_dollars(c) for c in column.chunks], type=pa.float64()).cast(to)
    if (pa.types.is_list(src) or pa.types.is_large_list(src)) and not pa.types.is_list(to):
        return pc.binary_join(column, _LIST_SEPARATOR).cast(to)
    if pa.types.is_timestamp(src) and src.tz is not None and not pa.types.is_timestamp(to):
        return _per_distinct(column, _timestamp_text).cast(to)
    return column.cast(to)  # a date to a timestamp or to YYYY-MM-DD text, ...


def _cents(dollars: pa.Array, what: str) -> pa.Array:
    """Dollars (``double``) as ``decimal(12, 2)``, built from whole cents (Arrow's own cast
    from a double goes through binary fractions). Every amount the pipeline makes is whole
    cents (ingest rounds the extract's to cents, a corrected charge is cents / 100, a sum is
    rounded): a double's noise around a cent (0.1 + 0.2) is taken to the nearest cent (half
    to even), and a value further from a cent (a sub-cent amount would be a defect, and the
    file must not differ from what the stages computed with) or too large is refused."""
    nan = pc.is_nan(dollars)
    if pc.any(nan).as_py():  # NaN is pandas' missing amount
        dollars = pc.if_else(nan, pa.scalar(None, dollars.type), dollars)
    scaled = pc.multiply(dollars, float(_DOLLAR_CENTS))
    cents = pc.round(scaled, 0, round_mode="half_to_even")
    largest = pc.max(pc.abs(cents)).as_py()
    if largest is not None and not largest < _MAX_CENTS:
        raise ValueError(
            f"{what}: an amount of {largest / _DOLLAR_CENTS:.2f} does not fit {SQL_MONEY}"
        )
    off = pc.max(pc.abs(pc.subtract(scaled, cents))).as_py()
    if off is not None and off > _CENT_TOLERANCE:
        bad = pc.filter(dollars, pc.greater(pc.abs(pc.subtract(scaled, cents)), _CENT_TOLERANCE))
        raise ValueError(
            f"{what}: {len(bad)} amount(s) are not whole cents (e.g. {bad[0].as_py()!r})"
        )
    whole = cents.cast(pa.int64()).cast(pa.decimal128(19, 0))
    return whole.view(SQL_MONEY)


def _dollars(amounts: pa.Array) -> pa.Array:
    """A decimal column as dollars (``double``): its whole units of the last place, divided
    once, so ``12.34`` is the double ``12.34`` is (as the amounts were computed)."""
    scale = amounts.type.scale
    units = amounts.view(pa.decimal128(38, 0)).cast(pa.int64())
    return pc.divide(units.cast(pa.float64()), float(10**scale))


def _per_distinct(column: pa.ChunkedArray, fn) -> pa.ChunkedArray:
    """``fn`` over each distinct value of ``column`` once, spread back to the rows."""
    encoded = column.combine_chunks().dictionary_encode()
    return pa.chunked_array([fn(encoded.dictionary).take(encoded.indices)])


def _parsed(values: pa.Array, to: pa.DataType, what: str) -> pa.Array:
    """Dates or UTC times written as text, typed; a text written any other way than the
    internal form writes it (so that it reads back the same) is refused."""
    typed = values.cast(to)
    back = _timestamp_text(typed) if pa.types.is_timestamp(to) else typed.cast(pa.string())
    same = pc.equal(back.cast(pa.string()), values.cast(pa.string()))
    if pc.all(same).as_py() is False:
        wrong = values.filter(pc.invert(same))[0].as_py()
        raise ValueError(f"{what}: {wrong!r} is not written as the internal form writes it")
    return typed


def _timestamp_text(values: pa.Array) -> pa.Array:
    """UTC times as the internal text, ``YYYY-MM-DDTHH:MM:SSZ``."""
    seconds = values.cast(pa.timestamp("s", tz="UTC"))
    return pc.strftime(seconds, format=_TIMESTAMP_TEXT).cast(pa.large_string())


def sql_type(t: pa.DataType) -> str:
    """The SQL name of a published type, as ``docs/data-dictionary.md`` writes it (DuckDB's
    spelling; a list is ``array(varchar)`` in Athena and Trino)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return sql_type(t.value_type) + "[]"
    raise ValueError(f"no SQL type for {t}")
