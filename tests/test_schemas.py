"""Every output layer a night writes has exactly its declared schema (``schemas``), on a
mixed night and on a night whose only file is rejected (nothing to infer types from)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nights import RD, write_night

from therapy_claims import pipeline, schemas, storage

FILES = {
    "raw": "raw.parquet",
    "scored": "scored.parquet",
    "exceptions": "exceptions.parquet",
    "ledger": "ledger.parquet",
    "worklist": "worklist.parquet",
}


def _schemas(cfg: pipeline.RunConfig) -> dict[str, pa.Schema]:
    return {
        layer: pq.read_schema(storage.join(cfg.final(layer), name))
        for layer, name in FILES.items()
        if storage.exists(storage.join(cfg.final(layer), name))
    }


def test_a_mixed_night_writes_every_layer_in_its_schema(tmp_path):
    write_night(str(tmp_path / "landing"), encounters=40)
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "o"), run_date=RD
    )
    pipeline.run(cfg)
    got = _schemas(cfg)
    assert set(got) == set(FILES)
    for layer, schema in got.items():
        assert schema.equals(schemas.LAYERS[layer]), layer


def test_a_night_of_one_rejected_file_still_writes_typed_layers(tmp_path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "notes.csv").write_text("hello,world\n1,2\n")
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "o"), run_date=RD
    )
    pipeline.run(cfg)
    got = _schemas(cfg)
    assert {"scored", "exceptions", "ledger", "worklist"} <= set(got)
    for layer, schema in got.items():
        assert schema.equals(schemas.LAYERS[layer]), layer


def test_conform_casts_types_and_refuses_other_columns():
    t = pa.table({"a": pa.array([None, None]), "b": pa.array([1, 2])})
    want = pa.schema([("a", schemas.TEXT), ("b", schemas.INT)])
    assert schemas.conform(t, want).schema.equals(want)
    with pytest.raises(ValueError, match="columns"):
        schemas.conform(t.select(["b", "a"]), want)
