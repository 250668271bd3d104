"""Running a night as N partitions (as the mapped DAG does) gives the same outputs as one."""

from __future__ import annotations

import pytest
from nights import RD, outputs, write_night

from therapy_claims import pipeline


def _mapped(landing: str, out: str, by: str, max_partitions: int = 256) -> list[list[str]]:
    cfg = pipeline.RunConfig(inputs=[landing], out=out, run_date=RD)
    parts = pipeline.plan_partitions(cfg, by=by, max_partitions=max_partitions)
    for files in reversed(parts):  # mapped tasks finish in any order
        pipeline.ingest_partition(cfg, files)
    pipeline.ingest_combine(cfg)
    for stage in ("validate", "score", "publish", "manifest"):
        getattr(pipeline, stage)(cfg)
    return parts


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    files = write_night(str(root / "landing"))
    cfg = pipeline.RunConfig(inputs=[str(root / "landing")], out=str(root / "out"), run_date=RD)
    pipeline.run(cfg)
    return root, files, outputs(str(root / "out"))


@pytest.mark.parametrize(
    ("by", "max_partitions", "n"), [("file", 256, 5), ("folder", 256, 3), ("file", 4, 3)]
)
def test_mapped_equals_single(single, by, max_partitions, n, tmp_path):
    root, files, expected = single
    parts = _mapped(str(root / "landing"), str(tmp_path / "out"), by, max_partitions)
    assert len(parts) == n and sorted(f for p in parts for f in p) == files
    got = outputs(str(tmp_path / "out"))
    assert expected["claims"] and got["claims"] == expected["claims"]
    assert got == expected
    assert "DUPLICATE_LINE" in got["counts"]["exceptions_by_code"]
    assert "FILE_REJECTED" in got["counts"]["exceptions_by_code"]


def test_combine_refuses_a_missing_partition(tmp_path):
    write_night(str(tmp_path / "landing"))
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "o"), run_date=RD
    )
    parts = pipeline.plan_partitions(cfg, by="folder")
    pipeline.ingest_partition(cfg, parts[0])
    with pytest.raises(pipeline.RunError, match="has not been read"):
        pipeline.ingest_combine(cfg)


def test_partition_by_is_checked(tmp_path):
    cfg = pipeline.RunConfig(inputs=[str(tmp_path)], out=str(tmp_path / "o"), run_date=RD)
    with pytest.raises(pipeline.RunError, match="partition_by"):
        pipeline.plan_partitions(cfg, by="clinic_id")
