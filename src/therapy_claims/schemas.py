"""One Arrow schema per output layer: what analysts and later nights read, declared once.

The writers conform their tables to these (``conform``) and the tests hold the written files
to them, so a column's name, order or type changes only here, on purpose, with
``docs/outputs.md``. Text is ``large_string`` (what pandas' ``string`` columns become), dates
are ``timestamp[us]``, counts ``int64``, flags ``bool`` and money ``double`` (dollars, as
extracted).
"""

from __future__ import annotations

import pyarrow as pa

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

# one row per worklist key (clinic + encounter): a held claim, carried across nights until it
# is billed or has nothing left to bill (``therapy_claims.worklist``)
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
    ]
)

LAYERS = {
    "raw": RAW,
    "scored": SCORED,
    "exceptions": EXCEPTIONS,
    "ledger": LEDGER,
    "worklist": WORKLIST,
}


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, order and types. A table that already has
    them is returned as it is; a column of another type is cast (e.g. the all-null column of
    an empty night, which pandas cannot type); a missing or extra column is a bug."""
    if table.schema.equals(schema):
        return table
    if table.column_names != schema.names:
        raise ValueError(f"columns {table.column_names} are not the layer's {schema.names}")
    return table.cast(schema)
