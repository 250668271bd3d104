"""Ingest: read and type every input file of the night, then the cross-file checks.

The DAG runs it as ``plan_partitions`` -> ``ingest_partition`` (one mapped task per partition)
-> ``ingest_combine``; ``ingest`` does the same steps in one process, handing the typed files
to the combine step in memory. Any split into partitions gives the same outputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict

import pandas as pd

from therapy_claims import extract, ledger_store, schemas, storage, timing
from therapy_claims.config import RunConfig, RunError, now
from therapy_claims.handover import Handover, mapped_if_there, write_arrow_file

log = logging.getLogger("therapy_claims")

PARTITION_BY = ("file", "folder")
RAW = ("raw", "raw.parquet")
# the raw layer as an uncompressed Arrow file, which validate's process and publish map
RAW_ARROW = ("work", "raw.arrow")
INGEST_FINDINGS = ("work", "ingest_findings.parquet")


def mapped_raw(cfg: RunConfig) -> str | None:
    """The raw layer's uncompressed Arrow file, if this night's run left one (a local output
    run in one process)."""
    return mapped_if_there(cfg.staged(*RAW_ARROW))


def ingest(cfg: RunConfig, handover: Handover) -> dict:
    """The whole ingest in one process: the steps of the mapped DAG, without staging the
    typed files in between."""
    files = [f for part in plan_partitions(cfg, by="file") for f in part]
    parts = []
    for f in files:
        p = extract.read_typed(f)
        parts.append(_as_staged(p.info, p.typed, p.bad_records, p.findings))
    return _combine(cfg, handover, parts, part_timings=[])


def _apart(inputs: list[str], out: str) -> None:
    """Refuse inputs that overlap the output root: the night would read its own outputs (or
    earlier nights') as extracts, and a run's cleanup could delete its inputs."""

    def norm(path: str) -> str:
        if storage.is_s3(path):
            return path.rstrip("/")
        return os.path.realpath(path)

    root = norm(out)
    for path in inputs:
        p = norm(path)
        if p == root or p.startswith(root + "/") or root.startswith(p + "/"):
            raise RunError(
                f"input {path} and output {out} overlap: put the extracts and the outputs in "
                "folders (or prefixes) apart"
            )


def plan_partitions(cfg: RunConfig, *, by: str = "file", max_partitions: int = 256) -> list:
    """Start a night's ingest: list the input files, clear the night's staging area and record
    the plan. Returns the partitions (lists of file paths): one per file, or one per folder
    (e.g. a clinic's folder) with ``by="folder"``; at most ``max_partitions`` (neighbours are
    merged), so a mapped task per partition stays within Airflow's ``max_map_length``."""
    if not cfg.inputs:
        raise RunError("no input given (--input PATH)")
    if by not in PARTITION_BY:
        raise RunError(f"partition_by {by!r} is not one of {', '.join(PARTITION_BY)}")
    _apart(cfg.inputs, cfg.out)
    try:
        files = extract.discover(cfg.inputs)
    except FileNotFoundError as exc:
        raise RunError(str(exc)) from exc
    ledger_store.recover(cfg)
    storage.delete_tree(cfg.staging)
    storage.write_json(
        cfg.staged("work", "plan.json"), {"started_at": now(), "t0": time.time(), "files": files}
    )
    groups: dict[str, list[str]] = {}
    for f in files:
        key = f if by == "file" else f.rsplit("/", 1)[0]
        groups.setdefault(key, []).append(f)
    parts = list(groups.values())
    if len(parts) > max_partitions:
        size = -(-len(parts) // max_partitions)
        parts = [sum(parts[i : i + size], []) for i in range(0, len(parts), size)]
    return parts


def _part_dir(cfg: RunConfig, path: str) -> str:
    return cfg.staged("work", "parts", hashlib.sha256(path.encode("utf-8")).hexdigest()[:20])


def ingest_partition(cfg: RunConfig, files: list[str]) -> dict:
    """Read and type the given files of the night (one mapped task's share), each on its own;
    the results wait in the staging area for ``ingest_combine``."""
    rows = 0
    for path in files:
        part = extract.read_typed(path)
        d = _part_dir(cfg, path)
        if part.info.accepted:
            storage.write_parquet(part.typed, storage.join(d, "typed.parquet"))
        storage.write_parquet(part.findings, storage.join(d, "findings.parquet"))
        storage.write_parquet(part.bad_records, storage.join(d, "bad_records.parquet"))
        storage.write_json(storage.join(d, "timing.json"), timing.take())
        storage.write_json(storage.join(d, "info.json"), asdict(part.info))  # last: part done
        rows += part.info.rows
    log.info("ingest_partition: %s file(s), %s rows", len(files), rows)
    return {"files": len(files), "rows": rows}


def _read_part(cfg: RunConfig, path: str) -> extract.FilePart:
    d = _part_dir(cfg, path)
    if not storage.exists(storage.join(d, "info.json")):
        raise RunError(f"{path} has not been read: run 'ingest_partition' for it first")
    info = extract.InputFile(**storage.read_json(storage.join(d, "info.json")))
    return extract.FilePart(
        info,
        storage.read_parquet(storage.join(d, "typed.parquet")) if info.accepted else _no_rows(),
        storage.read_parquet(storage.join(d, "bad_records.parquet")),
        storage.read_parquet(storage.join(d, "findings.parquet")),
    )


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in extract.PART_COLUMNS})


def _as_staged(info, typed, bad_records, found) -> extract.FilePart:
    """A file's part as ``_read_part`` gives it back from the staging area (the same types),
    without writing and reading the files."""

    def arrow(df: pd.DataFrame) -> pd.DataFrame:
        return storage.to_frame(storage.to_table(df))

    return extract.FilePart(
        info, arrow(typed) if info.accepted else _no_rows(), arrow(bad_records), arrow(found)
    )


def ingest_combine(cfg: RunConfig, handover: Handover) -> dict:
    """The cross-file part of ingest over every file of the plan, in the plan's order: repeated
    line_ids, held visits, counts; writes the night's staged raw layer and ingest findings."""
    handover.require(cfg.staged("work", "plan.json"), "plan_partitions")
    plan = storage.read_json(cfg.staged("work", "plan.json"))
    part_timings = []
    for f in plan["files"]:
        tpath = storage.join(_part_dir(cfg, f), "timing.json")
        if storage.exists(tpath):
            part_timings.append(storage.read_json(tpath))
    parts = [_read_part(cfg, f) for f in plan["files"]]
    return _combine(cfg, handover, parts, part_timings)


def _combine(
    cfg: RunConfig, handover: Handover, parts: list[extract.FilePart], part_timings: list[dict]
) -> dict:
    plan = storage.read_json(cfg.staged("work", "plan.json"))
    started = plan["started_at"]
    with timing.record("combine"):
        got = extract.combine(parts, ingested_at=started)
    table = schemas.conform(storage.to_table(got.raw), schemas.RAW, extra_text=True)
    if handover.in_memory and not storage.is_s3(cfg.out):
        write_arrow_file(table, cfg.staged(*RAW_ARROW))
    handover.write_table(table, cfg.staged(*RAW))
    handover.write_frame(got.findings, cfg.staged(*INGEST_FINDINGS))
    storage.write_parquet(got.quarantined, cfg.staged("work", "quarantined.parquet"))
    summary = {
        "run_date": cfg.rd,
        "started_at": started,
        "files": len(got.inputs),
        "files_rejected": sum(not i.accepted for i in got.inputs),
        "rows_in": got.rows_in,
        "rows_quarantined": len(got.quarantined),
        "rows_accepted": len(got.raw),
        "rows_in_rejected_files": sum(i.rows for i in got.inputs if not i.accepted),
        "seconds": round(time.time() - plan["t0"], 3),
    }
    summary["timings"] = timing.merge(*part_timings, timing.take())
    storage.write_json(cfg.staged("work", "ingest.json"), {**summary, "inputs": got.inputs_dicts()})
    storage.delete_tree(cfg.staged("work", "parts"))
    log.info(
        "ingest: %(files)s file(s), %(rows_in)s rows, %(rows_quarantined)s quarantined, "
        "%(files_rejected)s file(s) rejected",
        summary,
    )
    return summary
