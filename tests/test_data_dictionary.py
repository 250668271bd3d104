"""docs/data-dictionary.md is the analysts' contract: every column of every published layer
(``schemas.PUBLISHED``) is in it, under its layer, with its SQL type, and marked PHI where
``layout.PHI_COLUMNS`` names it; so the dictionary cannot drift from the files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from therapy_claims import analytics, layout, schemas

PAGE = Path(__file__).resolve().parents[1] / "docs" / "data-dictionary.md"


def _tables(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Per ``## <layer>`` section, its column table: column -> (type, PHI)."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for section in text.split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        rows = {}
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| `") and len(cells) == 4:
                rows[cells[0].strip("`")] = (cells[1], cells[2])
        if rows:
            found[title.strip()] = rows
    return found


DICTIONARY = _tables(PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("layer", sorted(schemas.LAYERS))
def test_every_column_of_the_layer_is_in_the_dictionary_with_its_type(layer):
    documented = DICTIONARY.get(layer)
    assert documented, f"docs/data-dictionary.md has no '## {layer}' table"
    for field in schemas.published_schema(layer):
        assert field.name in documented, f"{layer}.{field.name} is not in the dictionary"
        kind, phi = documented[field.name]
        assert kind == schemas.sql_type(field.type), f"{layer}.{field.name}"
        assert phi in ("yes", "no"), f"{layer}.{field.name}"
        if field.name in layout.PHI_COLUMNS:
            assert phi == "yes", f"{layer}.{field.name} is PHI"


def test_the_raw_layer_is_documented_in_the_files_order():
    assert list(DICTIONARY["raw"]) == schemas.PUBLISHED["raw"].names


def test_no_column_is_documented_with_a_type_the_files_never_have():
    """The types the dictionary names are the published ones (no DOUBLE, no TIMESTAMP
    without a zone: money and dates are not that in any layer)."""
    known = {
        schemas.sql_type(t)
        for t in (
            schemas.TEXT,
            schemas.INT,
            pa.int32(),  # the lifecycle layer's counts (lifecycle.SCHEMAS)
            pa.bool_(),
            schemas.SQL_MONEY,
            schemas.SQL_DATE,
            schemas.SQL_TIMESTAMP,
            schemas.TEXT_LIST,
        )
    }
    known |= {  # the responses' and lifecycle's positions and CAS; the measures' rates
        schemas.sql_type(pa.int32()),
        analytics.sql_type(analytics.responses.tables.ADJUSTMENTS, "duckdb"),
    }
    measures = {*analytics.MEASURE_VIEWS}
    for layer, rows in DICTIONARY.items():
        for column, (kind, _) in rows.items():
            ok = kind in known or (layer in measures and kind == "DOUBLE")
            assert ok, f"{layer}.{column}: {kind}"


# the query views over a layer: its section documents the layer's columns, the view's own
# section (``## claims``) what the view adds; ``run_date`` is the night's (page's intro)
_LAYER_SECTION = {"lines": "scored", "exceptions": "exceptions", "claims": "ledger"}
_LAYER_SECTION["worklist"] = "worklist"


@pytest.mark.parametrize("view", sorted(set(analytics.VIEWS) - {"nights"}))
def test_every_column_of_every_query_view_is_in_the_dictionary_with_its_type(view):
    """The views as DuckDB declares them (no data needed: an empty connection)."""
    con = analytics.empty_connection()
    described = con.execute(f"DESCRIBE {_ident(view)}").fetchall()
    con.close()
    documented = {**DICTIONARY.get(_LAYER_SECTION.get(view, ""), {}), **DICTIONARY.get(view, {})}
    assert documented, f"docs/data-dictionary.md has no '## {view}' table"
    for name, kind, *_ in described:
        if name == "run_date" and view in _LAYER_SECTION:
            continue
        assert name in documented, f"{view}.{name} is not in the dictionary"
        assert documented[name][0] == kind, f"{view}.{name}: {documented[name][0]} != {kind}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_sql_type_names():
    assert schemas.sql_type(pa.decimal128(12, 2)) == "DECIMAL(12,2)"
    assert schemas.sql_type(pa.list_(pa.string())) == "VARCHAR[]"
    assert schemas.sql_type(pa.timestamp("us", tz="UTC")) == "TIMESTAMP WITH TIME ZONE"
    assert schemas.sql_type(pa.date32()) == "DATE"
    with pytest.raises(ValueError):
        schemas.sql_type(pa.binary())
