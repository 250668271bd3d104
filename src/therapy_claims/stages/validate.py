"""Validate: the Great Expectations suites over the night's raw layer; failing rows become
findings that score holds claims on.

The night's results go to the validation layer (``validation/run_date=D/run=R/``: one JSON per
suite and the night's Data Docs) and into the GX project's stores under ``<out>/gx/``
(``gx_project``): the validation results store and the Data Docs site that accumulate nights.
On an S3 output the stores are built in a temporary folder and only the night's validation
results are copied to ``<out>/gx/validations/`` (docs/great-expectations.md says why)."""

from __future__ import annotations

import logging
import mmap
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from therapy_claims import gx_project, storage, timing
from therapy_claims.config import RunConfig
from therapy_claims.handover import Handover
from therapy_claims.stages.ingest import RAW, mapped_raw

log = logging.getLogger("therapy_claims")

GX_FINDINGS = ("work", "gx_findings.parquet")


def validate(cfg: RunConfig, handover: Handover) -> dict:
    from therapy_claims import gx_checks

    t0 = time.perf_counter()
    raw, release = _read_for_validate(cfg, handover, set(gx_checks.needed_columns()))
    gx_root = gx_project.store_root(cfg.out)
    local = not storage.is_s3(gx_root)
    with tempfile.TemporaryDirectory(prefix="tc-gx-") as tmp:
        night, store = Path(tmp, "night"), Path(tmp, gx_project.STORE_DIR)
        with timing.record("gx"):
            found, summary = gx_checks.run_suites(
                raw,
                str(night),
                cfg.rd,
                after_converting=release,
                gx_store=str(storage.local_path(gx_root) if local else store),
                run_name=f"run_date={cfg.rd}.run={cfg.run_id}",
            )
        _copy_tree(night, cfg.staged("validation"))
        if not local:  # the results store only (docs/great-expectations.md)
            _copy_tree(store / "validations", storage.join(gx_root, "validations"))
    storage.write_parquet(found, cfg.staged(*GX_FINDINGS))
    out = {
        "suites": summary,
        "findings": len(found),
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": timing.take(),
    }
    storage.write_json(cfg.staged("work", "validate.json"), out)
    log.info("validate: %s suite(s), %s failing row finding(s)", len(summary), len(found))
    return out


def _copy_tree(base: Path, target: str) -> None:
    for f in sorted(p for p in base.rglob("*") if p.is_file()):
        storage.write_bytes(storage.join(target, *f.relative_to(base).parts), f.read_bytes())


def _read_for_validate(
    cfg: RunConfig, handover: Handover, columns: set[str]
) -> tuple[pd.DataFrame, Callable[[], object] | None]:
    """The raw layer's ``columns``, and a call that lets go of the pages of the mapped Arrow
    file (GX reads them once, converted; only the rows of findings are read again)."""
    fast = mapped_raw(cfg)
    if fast is not None:
        with open(storage.local_path(fast), "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        table = pa.ipc.open_file(pa.py_buffer(mapped)).read_all()
        frame = storage.to_frame(table, [c for c in table.column_names if c in columns])
        return frame, lambda: mapped.madvise(mmap.MADV_DONTNEED)
    path = cfg.staged(*RAW)
    handover.require(path, "ingest")
    return handover.read_frame(
        path, columns=[c for c in handover.columns(path) if c in columns]
    ), None
