"""Validate: the Great Expectations suites over the night's raw layer; failing rows become
findings that score holds claims on."""

from __future__ import annotations

import logging
import mmap
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from therapy_claims import storage, timing
from therapy_claims.config import RunConfig
from therapy_claims.handover import Handover
from therapy_claims.stages.ingest import RAW, mapped_raw

log = logging.getLogger("therapy_claims")

GX_FINDINGS = ("work", "gx_findings.parquet")


def validate(cfg: RunConfig, handover: Handover) -> dict:
    from therapy_claims import gx_checks

    t0 = time.perf_counter()
    raw, release = _read_for_validate(cfg, handover, set(gx_checks.needed_columns()))
    with tempfile.TemporaryDirectory(prefix="tc-gx-") as tmp:
        with timing.record("gx"):
            found, summary = gx_checks.run_suites(raw, tmp, cfg.rd, after_converting=release)
        base = Path(tmp)
        for f in sorted(p for p in base.rglob("*") if p.is_file()):
            storage.write_bytes(
                cfg.staged("validation", *f.relative_to(base).parts), f.read_bytes()
            )
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
