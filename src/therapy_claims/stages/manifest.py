"""Manifest: the night's inventory and its commit record, written last.

Writing it (one atomic write) publishes the run: it names the run and its versioned folders,
so readers move from the old night to the new one at once. Then the run's claims are marked
sent in the ledger database and the folders of runs no manifest names any more are removed
(the replaced run's are kept one more run, for a reader still reading them). It must balance
(every input line billed, held, not billed or quarantined)."""

from __future__ import annotations

import logging
import time

from therapy_claims import __version__, ledger_store, nights, storage, timing
from therapy_claims.config import PUBLISHED_DIRS, RunConfig, now
from therapy_claims.handover import Handover

log = logging.getLogger("therapy_claims")

STAGE_SUMMARIES = ("ingest", "validate", "score", "publish")


def manifest(cfg: RunConfig, handover: Handover) -> dict:
    t0 = time.perf_counter()
    handover.require(cfg.staged("work", "claim_files.json"), "publish")
    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    score_info = storage.read_json(cfg.staged("work", "score.json"))
    files = storage.read_json(cfg.staged("work", "claim_files.json"))
    stage_docs = {
        name: storage.read_json(cfg.staged("work", f"{name}.json"))
        for name in STAGE_SUMMARIES
        if storage.exists(cfg.staged("work", f"{name}.json"))
    }
    validation = stage_docs.get("validate")
    m = {
        "run_date": cfg.rd,
        "run_id": cfg.run_id,
        "version": __version__,
        "started_at": ingest_info["started_at"],
        "finished_at": now(),
        "inputs": ingest_info["inputs"],
        "rows_in": ingest_info["rows_in"],
        "rows_quarantined": ingest_info["rows_quarantined"],
        "rows_scored": score_info["rows_scored"],
        "rows_in_rejected_files": ingest_info["rows_in_rejected_files"],
        "lines_billed": score_info["lines_billed"],
        "lines_held": score_info["lines_held"],
        "lines_not_billed": score_info["lines_not_billed"],
        "claims_billed": score_info["claims_billed"],
        "claims_held": score_info["claims_held"],
        "claim_files": files,
        "reference_files": score_info["reference_files"],
        "exceptions_by_code": score_info["exceptions_by_code"],
        # reviewed releases (docs/outputs.md "Releases"): rows applied and unused, the files
        "releases_applied": score_info.get("releases_applied", 0),
        "releases_unused": score_info.get("releases_unused", 0),
        "release_files": score_info.get("release_files", []),
        "worklist": (stage_docs.get("publish") or {}).get("worklist"),
        "validation": validation["suites"] if validation else None,
        "outputs": {kind: cfg.final(kind) for kind in PUBLISHED_DIRS},
        "stage_seconds": {name: doc.get("seconds") for name, doc in stage_docs.items()},
    }
    m["timings"] = timing.merge(*(d.get("timings") for d in stage_docs.values()))
    m["timings"]["manifest"] = round(time.perf_counter() - t0, 3)
    m["balanced"] = (
        m["rows_in"] == m["rows_quarantined"] + m["rows_scored"]
        and m["rows_scored"] == m["lines_billed"] + m["lines_held"] + m["lines_not_billed"]
    )
    replaced = nights.committed(cfg.out, cfg.rd)
    storage.write_json(cfg.manifest_path, m)  # the commit
    with ledger_store.opened(cfg) as store:
        store.mark_sent(cfg.run_id)
    keep = {cfg.run_id, (replaced or {}).get("run_id", "")}
    nights.prune(cfg.out, cfg.rd, keep - ({""} if replaced is None else set()), phi_out=cfg.phi_out)
    for area in cfg.staging_areas():
        storage.delete_tree(area)
    log.info("manifest: %s", cfg.manifest_path)
    return {"manifest": cfg.manifest_path, "balanced": m["balanced"]}
