"""The nightly run, stage by stage: ingest -> validate -> score -> publish -> manifest.

The CLI (``therapy-claims run``) calls ``run``; the Airflow DAG calls each stage as a task.
Stages hand over through a staging area under the output root
(``<out>/.staging/run_date=YYYY-MM-DD/``), so each task can run in its own process and
returns only a small summary. Within ``run`` (one process) a stage reads what an earlier stage
wrote from memory instead of reading the file back, validate runs in a second process
alongside score, and publish builds about half the claim files in another. Nothing outside the
staging area changes until ``publish``
swaps the night's staged outputs into place; ``manifest`` is written last. A run that fails
before that leaves the previous good outputs of the night untouched, and re-running a night
replaces its outputs.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import (
    __version__,
    extract,
    findings,
    ledger,
    reference,
    reports,
    rules,
    storage,
    timing,
    x12,
)
from therapy_claims.catalogue import CATALOGUE, ERROR

log = logging.getLogger("therapy_claims")

PUBLISHED_DIRS = ("raw", "scored", "exceptions", "claims", "ledger", "validation", "reports")
SCORED_COLUMNS = [
    "line_id",
    "encounter_id",
    "claim_id",
    "patient_id",
    "payer_id",
    "clinic_id",
    "date_of_service",
    "discipline",
    "rendering_npi",
    "cpt_code",
    "modifiers",
    "minutes",
    "units_charted",
    "units",
    "charge_amount",
    "status",
    "exception_codes",
    "changes",
    "claim_type",
    "receiver_id",
    "unit_method",
    "source_file",
    "source_row",
]


class RunError(RuntimeError):
    """A run that cannot start or go on (bad arguments, bad reference data, missing stage)."""


@dataclass
class RunConfig:
    inputs: list[str]
    out: str
    run_date: date
    reference: str | None = None
    usage: str = "T"  # ISA15: T test, P production
    max_file_bytes: int = 25_000_000  # a claim file larger than this is split
    extra: dict = field(default_factory=dict)

    @property
    def rd(self) -> str:
        return self.run_date.isoformat()

    @property
    def staging(self) -> str:
        return storage.join(self.out, ".staging", f"run_date={self.rd}")

    def staged(self, *parts: str) -> str:
        return storage.join(self.staging, *parts)

    def final(self, kind: str) -> str:
        return storage.join(self.out, kind, f"run_date={self.rd}")

    @property
    def manifest_path(self) -> str:
        return storage.join(self.out, "manifest", f"run_date={self.rd}.json")


def parse_run_date(value: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise RunError(f"run date {value!r} is not a date (YYYY-MM-DD)") from exc


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _require(path: str, stage: str) -> None:
    if _handover is not None and path in _handover:  # being written; readable from memory
        return
    if not storage.exists(path):
        _flush_writes(path)  # it may be a write still in progress
    if not storage.exists(path):
        raise RunError(f"{path} is missing: run the '{stage}' stage for this run date first")


# --------------------------------------------------------------------------- hand-over

# Within ``run`` (one process), a staged frame a stage writes is kept as the Arrow table it
# was written from, and a later stage reading that path gets it from memory: the same frame
# as reading the Parquet file back, without decompressing and decoding it. The Parquet files
# are written by a background thread meanwhile; anything that looks at the staged files
# (``_require``, a read of a frame no longer in memory, publish's swap) waits for them first.
# Tasks of the DAG run in separate processes and always write and read the files.
_handover: dict[str, object] | None = None
_writes: dict[str, Future] = {}
_writer: ThreadPoolExecutor | None = None
# in the staging area's work/: the raw layer as an uncompressed Arrow file, for validate
GX_INPUT = "raw.arrow"
# and the scored columns of the lines publish's second process writes
PUBLISH_INPUT = "publish_scored.arrow"


@contextmanager
def _in_memory_handover() -> Iterator[None]:
    global _handover, _writer
    _handover = {}
    _writer = ThreadPoolExecutor(1, thread_name_prefix="tc-write", initializer=_in_background)
    try:
        yield
        _flush_writes()
    finally:
        _writer.shutdown(wait=True, cancel_futures=True)
        _handover, _writer = None, None
        _writes.clear()


def _in_background() -> None:
    """Lowest CPU priority for the calling thread (Linux: a thread has its own nice value):
    the staged writes use what the stages leave of the two cores, rather than slowing them."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not allowed here: the writes run at the stages' priority
            pass


def _flush_writes(path: str | None = None) -> None:
    """Wait for the background writes (of ``path`` only, if given); a failed one raises here."""
    for p in [path] if path is not None else list(_writes):
        if p in _writes:
            _writes.pop(p).result()


def _write_frame(df: pd.DataFrame, path: str) -> None:
    _write_table(storage.to_table(df), path)


def _write_table(table, path: str) -> None:
    if _handover is None or _writer is None:
        storage.write_table(table, path)
        return
    _handover[path] = table
    _flush_writes(path)  # an earlier write of the same file finishes first
    _writes[path] = _writer.submit(storage.write_table, table, path)


def _read_table(path: str, columns: list[str] | None = None, *, last: bool = False):
    """The staged Arrow table at ``path`` (``columns`` only, if given); ``last``: no later
    stage of this run reads it from memory (a later read falls back to the file)."""
    if _handover is not None and path in _handover:
        table = _handover.pop(path) if last else _handover[path]
        return table.select(columns) if columns is not None else table
    _flush_writes(path)
    return storage.read_table(path, columns)


def _read_frame(path: str, columns: list[str] | None = None, *, last: bool = False) -> pd.DataFrame:
    """The staged frame at ``path``, as ``_read_table`` gives it."""
    return storage.to_frame(_read_table(path, columns, last=last))


def _stage_raw(cfg: RunConfig, raw: pd.DataFrame) -> None:
    """Stage the night's raw layer (``raw/raw.parquet``). Within ``run`` on a local output,
    also as an uncompressed Arrow file that validate (in the second process) and publish map
    instead of decoding Parquet."""
    path = cfg.staged("raw", "raw.parquet")
    table = storage.to_table(raw)
    if _handover is not None and not storage.is_s3(cfg.out):
        _write_arrow_file(table, cfg.staged("work", GX_INPUT))
    _write_table(table, path)


def _write_arrow_file(table, path: str) -> None:
    """``table`` as an uncompressed Arrow file at the local staged ``path``, for another
    stage or process to map (``_mapped_table``) rather than decode."""
    import pyarrow.feather as feather

    local = storage.local_path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    feather.write_feather(table, str(local), compression="uncompressed")


def _mapped_table(path: str):
    """The Arrow file ``_write_arrow_file`` wrote, mapped (only what is read is paged in)."""
    return pa.ipc.open_file(pa.memory_map(str(storage.local_path(path)))).read_all()


def _mapped_raw(cfg: RunConfig) -> str | None:
    """The uncompressed Arrow file of the raw layer, if ``run`` left one (a local output)."""
    mapped = cfg.staged("work", GX_INPUT)
    return mapped if not storage.is_s3(mapped) and storage.exists(mapped) else None


def _read_for_validate(
    cfg: RunConfig, columns: set[str]
) -> tuple[pd.DataFrame, Callable[[], object] | None]:
    """The raw layer's ``columns``, and a call that lets go of the pages of the mapped Arrow
    file (GX reads them once, converted; only the rows of findings are read again)."""
    fast = _mapped_raw(cfg)
    if fast is not None:
        import mmap

        with open(storage.local_path(fast), "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        table = pa.ipc.open_file(pa.py_buffer(mapped)).read_all()
        frame = storage.to_frame(table, [c for c in table.column_names if c in columns])
        return frame, lambda: mapped.madvise(mmap.MADV_DONTNEED)
    path = cfg.staged("raw", "raw.parquet")
    _require(path, "ingest")
    return _read_frame(path, columns=[c for c in _columns(path) if c in columns]), None


def _columns(path: str) -> list[str]:
    if _handover is not None and path in _handover:
        return list(_handover[path].column_names)
    import pyarrow.parquet as pq

    if storage.is_s3(path):
        return pq.read_schema(pa.BufferReader(storage.read_bytes(path))).names
    return pq.read_schema(path).names


# --------------------------------------------------------------------------- ingest


def ingest(cfg: RunConfig) -> dict:
    """The whole ingest in one process: the same steps the mapped DAG runs as tasks
    (``plan_partitions`` -> ``ingest_partition`` per partition -> ``ingest_combine``), with
    the typed files handed to the combine step in memory rather than through the staging
    area. Any split into partitions gives the same outputs."""
    files = [f for part in plan_partitions(cfg, by="file") for f in part]
    parts = []
    for f in files:
        p = extract.read_typed(f)
        parts.append(_as_staged(p.info, p.typed, p.bad_records, p.findings))
    return _combine(cfg, parts, part_timings=[])


PARTITION_BY = ("file", "folder")


def plan_partitions(cfg: RunConfig, *, by: str = "file", max_partitions: int = 256) -> list:
    """Start a night's ingest: list the input files, clear the night's staging area and record
    the plan. Returns the partitions (lists of file paths): one per file, or one per folder
    (e.g. a clinic's folder) with ``by="folder"``; at most ``max_partitions`` (neighbours are
    merged), so a mapped task per partition stays within Airflow's ``max_map_length``."""
    if not cfg.inputs:
        raise RunError("no input given (--input PATH)")
    if by not in PARTITION_BY:
        raise RunError(f"partition_by {by!r} is not one of {', '.join(PARTITION_BY)}")
    try:
        files = extract.discover(cfg.inputs)
    except FileNotFoundError as exc:
        raise RunError(str(exc)) from exc
    storage.delete_tree(cfg.staging)
    storage.write_json(
        cfg.staged("work", "plan.json"), {"started_at": _now(), "t0": time.time(), "files": files}
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
    from dataclasses import asdict

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


def ingest_combine(cfg: RunConfig) -> dict:
    """The cross-file part of ingest over every file of the plan, in the plan's order: repeated
    line_ids, held visits, counts; writes the night's staged raw layer and ingest findings."""
    _require(cfg.staged("work", "plan.json"), "plan_partitions")
    plan = storage.read_json(cfg.staged("work", "plan.json"))
    part_timings = []
    for f in plan["files"]:
        tpath = storage.join(_part_dir(cfg, f), "timing.json")
        if storage.exists(tpath):
            part_timings.append(storage.read_json(tpath))
    parts = [_read_part(cfg, f) for f in plan["files"]]
    return _combine(cfg, parts, part_timings)


def _combine(cfg: RunConfig, parts: list[extract.FilePart], part_timings: list[dict]) -> dict:
    plan = storage.read_json(cfg.staged("work", "plan.json"))
    started = plan["started_at"]
    with timing.record("combine"):
        got = extract.combine(parts, ingested_at=started)
    _stage_raw(cfg, got.raw)
    _write_frame(got.findings, cfg.staged("work", "ingest_findings.parquet"))
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


# --------------------------------------------------------------------------- validate


def validate(cfg: RunConfig) -> dict:
    from therapy_claims import gx_checks

    t0 = time.perf_counter()
    raw, release = _read_for_validate(cfg, set(gx_checks.needed_columns()))
    with tempfile.TemporaryDirectory(prefix="tc-gx-") as tmp:
        with timing.record("gx"):
            found, summary = gx_checks.run_suites(raw, tmp, cfg.rd, after_converting=release)
        base = Path(tmp)
        for f in sorted(p for p in base.rglob("*") if p.is_file()):
            storage.write_bytes(
                cfg.staged("validation", *f.relative_to(base).parts), f.read_bytes()
            )
    storage.write_parquet(found, cfg.staged("work", "gx_findings.parquet"))
    out = {
        "suites": summary,
        "findings": len(found),
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": timing.take(),
    }
    storage.write_json(cfg.staged("work", "validate.json"), out)
    log.info("validate: %s suite(s), %s failing row finding(s)", len(summary), len(found))
    return out


# --------------------------------------------------------------------------- score


def claim_ids(lines: pd.DataFrame) -> pd.Series:
    """CLM01: a claim is one encounter for one payer at one clinic. Deterministic, 17 chars
    ('TC' + 15 hex of a SHA-256), leaving room for a split suffix within X12's 20."""
    parts = ["clinic_id", "encounter_id", "payer_id"]
    # one integer per (clinic, encounter, payer): factorise each part, then the combinations
    codes = np.zeros(len(lines), dtype=np.int64)
    for c in parts:
        part_codes, uniques = pd.factorize(lines[c])
        codes = pd.factorize(codes * (len(uniques) + 1) + (part_codes + 1))[0]
    first = np.unique(codes, return_index=True)[1]  # a row of each claim, in code order
    one = lines[parts].iloc[first].fillna("")
    keys = one["clinic_id"] + "|" + one["encounter_id"] + "|" + one["payer_id"]
    # one SHA-256 per claim (hashlib has no batch call); the text around it is done in Arrow
    sha256 = hashlib.sha256
    blobs = pc.cast(storage.text_array(keys), pa.binary()).to_pylist()
    digests = pa.array([sha256(b).hexdigest() for b in blobs], type=pa.string())
    ids = pc.binary_join_element_wise(
        "TC", pc.utf8_upper(pc.utf8_slice_codeunits(digests, 0, 15)), ""
    )
    return pd.Series(pd.array(ids.take(pa.array(codes)), dtype="string"), index=lines.index)


# what scoring does not read: names and addresses go to the 837 writer only, at publish
NOT_SCORED = (
    "patient_last_name",
    "patient_first_name",
    "patient_address",
    "patient_city",
    "patient_state",
    "patient_zip",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
    "group_number",
    "rendering_first_name",
    "ingested_at",
)


def _read_raw_for_scoring(cfg: RunConfig) -> pd.DataFrame:
    path = cfg.staged("raw", "raw.parquet")
    # last: holding the whole raw layer in memory through scoring (for publish, which reads a
    # few columns of the billed lines) costs more memory than publish's read of the file
    return _read_frame(path, columns=[c for c in _columns(path) if c not in NOT_SCORED], last=True)


def _enrich(raw: pd.DataFrame, ref: reference.Reference) -> pd.DataFrame:
    """Add the payer, clinic and code properties each line needs, column by column (a join
    would copy the whole night's frame once per table), each looked up once per distinct key."""
    lines = raw
    payer, clinic, cpt = (_Lookup(lines[c]) for c in ("payer_id", "clinic_id", "cpt_code"))
    for c in ref.payers.columns.drop("payer_id"):
        col = ref.payers[c]
        # unknown payers map to NA: keep a nullable dtype the rules can fillna on
        lines[c] = payer(col, lambda s: s.astype("boolean")) if col.dtype == bool else payer(col)
    for c in ("billing_npi", "claim_type"):
        lines[c] = clinic(ref.clinics[c])
    lines["category"] = cpt(ref.cpt["category"])
    for c in ("timed", "one_on_one", "always_therapy"):  # an unknown code is none of these
        lines[c] = cpt(ref.cpt[c], lambda s: s.astype("boolean").fillna(False).astype(bool))
    lines["claim_id"] = claim_ids(lines)
    return lines


class _Lookup:
    """``keys.map(table)`` for several tables: the keys are factorised once and each table is
    looked up once per distinct key (the same values and dtype as ``map``)."""

    def __init__(self, keys: pd.Series):
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        distinct = pd.Series(uniques, dtype=keys.dtype)
        if (codes < 0).any():  # a missing key maps to NA, as map does
            distinct = pd.concat([distinct, pd.Series([pd.NA], dtype=keys.dtype)])
            codes = np.where(codes < 0, len(distinct) - 1, codes)
        self.codes, self.distinct, self.keys = codes, distinct.reset_index(drop=True), keys

    def __call__(self, table: pd.Series, then: Callable | None = None) -> pd.Series:
        """The looked-up values, with ``then`` (an elementwise conversion) applied."""
        values = self.distinct.map(table)
        if then is not None:
            values = then(values)
        return values.take(self.codes).set_axis(self.keys.index).rename(self.keys.name)


def _kx_history(cfg: RunConfig, ref: reference.Reference, lines: pd.DataFrame) -> pd.DataFrame:
    """Billed Medicare therapy charges of earlier run dates, per patient, year and KX bucket
    (PT/SLP, OT), read from the scored layer for the calendar years tonight's lines fall in."""
    cols = ["patient_id", "year", "bucket", "charges"]
    medicare = set(ref.payers.index[ref.payers["payer_class"] == "medicare"])
    if lines.empty or not medicare:
        return pd.DataFrame(columns=cols)
    years = set(lines["date_of_service"].dt.year.dropna().astype(int))
    root = storage.join(cfg.out, "scored")
    parts = []
    for path in storage.list_files(root) if storage.is_dir(root) else []:
        part = next(
            (p for p in path.replace("\\", "/").split("/") if p.startswith("run_date=")), None
        )
        if not part or not path.endswith(".parquet"):
            continue
        rd = part.split("=", 1)[1]
        if rd >= cfg.rd or int(rd[:4]) < min(years):
            continue
        df = storage.read_parquet(
            path,
            columns=[
                "patient_id",
                "payer_id",
                "date_of_service",
                "discipline",
                "cpt_code",
                "charge_amount",
                "status",
            ],
        )
        df = df[
            (df["status"] == "billed")
            & df["payer_id"].isin(medicare)
            & df["discipline"].isin(["PT", "SLP", "OT"])
        ]
        df = df[df["cpt_code"].map(ref.cpt["always_therapy"]).fillna(False).astype(bool)]
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=cols)
    h = pd.concat(parts, ignore_index=True)
    h["year"] = h["date_of_service"].dt.year
    h["bucket"] = np.where(h["discipline"] == "OT", "OT", "PT/SLP")
    h = h[h["year"].isin(years)]
    return (
        h.groupby(["patient_id", "year", "bucket"], as_index=False)["charge_amount"]
        .sum()
        .rename(columns={"charge_amount": "charges"})
    )


def _split_list(s: pd.Series) -> pd.Series:
    """A ``;``-joined text column as lists (an empty or missing cell is an empty list)."""

    text = pc.fill_null(storage.text_array(s), "")
    parts = pc.split_pattern(text, ";")
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    split_lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(parts).filter(pa.array(np.repeat(~empty, split_lengths)))
    return rules.list_column(np.where(empty, 0, split_lengths), values, s.index)


# a line's status as a small integer until it is written
_NOT_BILLED, _BILLED, _HELD = 0, 1, 2
_STATUS_TEXT = pa.array(["not_billed", "billed", "held"])


def _status_column(status_of: np.ndarray, index: pd.Index) -> pd.Series:
    """The ``status`` text column from the integer statuses (built in Arrow, not per row)."""
    text = pa.DictionaryArray.from_arrays(pa.array(status_of), _STATUS_TEXT).cast(pa.string())
    return pd.Series(pd.array(text, dtype="str"), index=index)


def score(cfg: RunConfig, *, validated: Callable[[], object] | None = None) -> dict:
    """Units and billing rules over the night's accepted lines, then hold every claim with an
    error from any stage. ``validated``, if given, is called (and must return) before the
    validate stage's findings are read: the CLI runs validate in a second process meanwhile."""
    _require(cfg.staged("raw", "raw.parquet"), "ingest")
    t0 = time.perf_counter()
    try:
        ref = reference.load(cfg.reference)
    except reference.ReferenceError as exc:
        raise RunError(str(exc)) from exc
    raw = _read_raw_for_scoring(cfg)
    lines = _enrich(raw, ref)
    night = rules.Night(
        lines=lines, ref=ref, run_date=cfg.run_date, kx_history=_kx_history(cfg, ref, lines)
    )
    found = rules.run_all(night)

    # a claim billed on another run date (claim ledger) is held, never sent twice
    found = findings.concat(
        [found, ledger.already_billed(cfg.out, cfg.rd, lines, evidence="claim ledger")]
    )
    earlier = _read_frame(cfg.staged("work", "ingest_findings.parquet"), last=True)
    # what does not depend on the validate stage's findings comes before waiting for them:
    # each finding's line as a row number, and each line's claim as a number
    lines["changes"] = night.change_lists()
    lines["modifiers"] = _split_list(lines["modifiers"])
    ids = pd.Index(lines["line_id"])
    if not ids.is_unique:  # ingest quarantines every repeat of a line_id
        raise RunError("the accepted lines repeat a line_id; re-run ingest for this night")
    at_earlier, at_found = ids.get_indexer(earlier["line_id"]), ids.get_indexer(found["line_id"])
    claim_of_line, claims = pd.factorize(lines["claim_id"], use_na_sentinel=False)
    status_of = np.where(lines["units"].to_numpy() > 0, _BILLED, _NOT_BILLED).astype(np.int8)
    if validated is not None:
        pa.default_memory_pool().release_unused()  # the rules' intermediates, while GX runs
        with timing.record("gx_wait"):  # what validate in the second process adds to the wall
            validated()
    gx_path = cfg.staged("work", "gx_findings.parquet")
    gx = storage.read_parquet(gx_path) if storage.exists(gx_path) else findings.empty()
    all_found = findings.concat([earlier, gx, found])
    at = np.concatenate([at_earlier, ids.get_indexer(gx["line_id"]), at_found])

    # hold every claim with an error on any of its lines
    on_line = at >= 0
    error_at = at[on_line & (all_found["severity"] == ERROR).to_numpy()]
    held_claim = np.zeros(len(claims), dtype=bool)
    held_claim[claim_of_line[error_at]] = True
    status_of[held_claim[claim_of_line]] = _HELD
    lines["status"] = _status_column(status_of, lines.index)
    # CLM01 as sent: a claim over the 837 line limit goes out in parts (<claim_id>-1, -2, ...)
    lines["claim_id"] = ledger.split_claims(lines, x12.LINE_LIMITS, claims=claim_of_line)
    # per line, the codes of its findings in the order of all_found
    pos, codes = at[on_line], all_found["code"].to_numpy(dtype=object)[on_line]
    order = np.argsort(pos, kind="stable")
    lines["exception_codes"] = rules.list_column(
        np.bincount(pos, minlength=len(lines)), codes[order], lines.index
    )

    scored = lines.reindex(columns=SCORED_COLUMNS)
    exc = all_found.copy()
    exc.insert(0, "run_date", cfg.rd)
    for c in ("claim_id", "cpt_code", "date_of_service"):  # of the finding's line, if any
        exc[c] = pd.Series(lines[c].array.take(at, allow_fill=True), index=exc.index)
    with timing.record("write"):
        summary = _write_scored(
            cfg,
            scored,
            exc,
            [
                {k: f.get(k) for k in ("path", "sha256", "rows", "effective_quarter")}
                for f in ref.files
            ],
            seconds=time.perf_counter() - t0,
        )
    summary["timings"] = timing.take()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    storage.write_json(cfg.staged("work", "score.json"), summary)
    log.info(
        "score: %(rows_scored)s lines: %(lines_billed)s billed, %(lines_held)s held, "
        "%(lines_not_billed)s not billed; %(findings)s finding(s)",
        summary,
    )
    return {k: v for k, v in summary.items() if k != "reference_files"}


def _write_scored(
    cfg: RunConfig,
    scored: pd.DataFrame,
    exc: pd.DataFrame,
    reference_files: list[dict],
    seconds: float,
) -> dict:
    """Write the staged scored lines and exception report, check the night balances and
    record the counts the manifest reports."""
    _write_frame(scored, cfg.staged("scored", "scored.parquet"))
    sev_order = {"error": 0, "warning": 1, "info": 2}
    exc = exc.sort_values(
        by=["severity", "claim_id", "line_id", "code"],
        key=lambda s: s.map(sev_order) if s.name == "severity" else s,
        na_position="first",
        kind="mergesort",
    ).reset_index(drop=True)
    _write_frame(exc, cfg.staged("exceptions", "exceptions.parquet"))
    storage.write_bytes(
        cfg.staged("exceptions", "exceptions.csv"), reports.spreadsheet_safe_csv(exc)
    )

    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    counts = scored["status"].value_counts()
    # a claim is held if any line is held, else billed if any line is billed (vectorised)
    status = scored["status"].to_numpy(dtype=object)
    rank = np.select([status == "held", status == "billed"], [2, 1], 0).astype(np.int8)
    claim_of_line = pd.factorize(scored["claim_id"], use_na_sentinel=False)[0]
    claim_rank = np.zeros(claim_of_line.max() + 1 if len(rank) else 0, dtype=np.int8)
    np.maximum.at(claim_rank, claim_of_line, rank)
    claim_status = pd.Series(claim_rank).map({0: "not_billed", 1: "billed", 2: "held"})
    summary = {
        "rows_scored": len(scored),
        "lines_billed": int(counts.get("billed", 0)),
        "lines_held": int(counts.get("held", 0)),
        "lines_not_billed": int(counts.get("not_billed", 0)),
        "claims_billed": int((claim_status == "billed").sum()),
        "claims_held": int((claim_status == "held").sum()),
        "findings": len(exc),
        "exceptions_by_code": {
            k: int(v) for k, v in exc["code"].value_counts().sort_index().items()
        },
        "reference_files": reference_files,
        "seconds": round(seconds, 3),
    }
    rows_in, quarantined = ingest_info["rows_in"], ingest_info["rows_quarantined"]
    if rows_in != quarantined + summary["rows_scored"] or summary["rows_scored"] != (
        summary["lines_billed"] + summary["lines_held"] + summary["lines_not_billed"]
    ):
        raise RunError(
            f"the night does not balance: rows_in={rows_in}, quarantined={quarantined}, "
            f"scored={summary['rows_scored']}, status counts={dict(counts)}"
        )
    storage.write_json(cfg.staged("work", "score.json"), summary)
    return summary


def _hold_unwritable(cfg: RunConfig, rejected: dict[str, str]) -> None:
    """Claims the 837 writer could not carry are held, with CLAIM_DATA_INVALID on each line."""
    scored = _read_frame(cfg.staged("scored", "scored.parquet"))
    exc = _read_frame(cfg.staged("exceptions", "exceptions.parquet"))
    score_info = storage.read_json(cfg.staged("work", "score.json"))
    hit = scored["claim_id"].isin(list(rejected))
    scored.loc[hit, "status"] = "held"
    scored["exception_codes"] = [
        [*list(codes), "CLAIM_DATA_INVALID"] if h else list(codes)
        for codes, h in zip(scored["exception_codes"], hit, strict=True)
    ]
    rows = scored[hit]
    new = findings.make(
        "CLAIM_DATA_INVALID",
        rows,
        rows["claim_id"].map(rejected).astype("string"),
        evidence=rows["claim_type"]
        .map({"institutional": "X12 837I 005010X223A2 element rules"})
        .fillna("X12 837P 005010X222A1 element rules"),
    )
    new.insert(0, "run_date", cfg.rd)
    new["claim_id"] = rows["claim_id"].to_numpy()
    new["cpt_code"] = rows["cpt_code"].to_numpy()
    new["date_of_service"] = rows["date_of_service"].to_numpy()
    exc = pd.concat([exc, new], ignore_index=True)
    summary = _write_scored(cfg, scored, exc, score_info["reference_files"], score_info["seconds"])
    summary["timings"] = score_info.get("timings", {})
    storage.write_json(cfg.staged("work", "score.json"), summary)


# --------------------------------------------------------------------------- publish


def control_number(run_date: date, sequence: int) -> int:
    """ISA13/GS06: YYDDD of the run date then a 4-digit sequence. The same inputs give the same
    numbers; another run date never reuses them (until the two-digit year wraps in 100 years)."""
    if not 1 <= sequence <= 9999:
        raise RunError(f"too many claim files for one night ({sequence})")
    return int(run_date.strftime("%y%j")) * 10000 + sequence


BYTES_PER_LINE_GUESS = 300  # an 837 line with its claim's share of the header, generously


def _claim_files(build, group: pd.DataFrame, args: dict, cfg: RunConfig, seq: int):
    """Split one (submitter, receiver, claim type) group into claim files, numbered from
    ``seq + 1`` on, building each file once.

    Yields ``(lines, rejected, text, placed, seq)`` per file: the lines of the claims written,
    ``{claim_id: reason}`` of the claims left out (a claim the writer rejects takes the other
    parts of its split claim with it, so no claim goes out in part), the file as built with
    control number ``control_number(run_date, seq)``, and ``placed`` (claim_id -> ST02).
    Files stay within ``cfg.max_file_bytes``: the group is cut between claims (never between
    the parts of a split claim), in claim order, sized by its lines from the bytes per line
    of what was built so far, so a rerun cuts it the same way.
    """
    limit = cfg.max_file_bytes
    ids = group["claim_id"].drop_duplicates()
    base = ledger.claim_key(ids).to_numpy()
    lines_per_claim = (
        group.groupby("claim_id", sort=False).size().reindex(ids.to_numpy()).to_numpy()
    )
    # units that may not be cut: all parts of one split claim
    unit_of_claim = pd.factorize(base)[0]
    unit_lines = np.bincount(unit_of_claim, weights=lines_per_claim).astype(int)
    # the group is sorted by claim_id, so a unit's lines are usually one run of rows: a chunk
    # of units is then a slice (else the rows of its claims are picked out)
    row_unit = unit_of_claim[pd.factorize(group["claim_id"])[0]]
    contiguous = bool((np.diff(row_unit) >= 0).all())
    unit_claims = []
    if not contiguous:
        by_unit = ids.to_numpy()[np.argsort(unit_of_claim, kind="stable")]
        unit_claims = np.split(by_unit, np.cumsum(np.bincount(unit_of_claim))[:-1])
    lines_before = np.concatenate([[0], np.cumsum(unit_lines)])  # lines of the units before u
    bytes_per_line = float(BYTES_PER_LINE_GUESS)
    u = 0
    while u < len(unit_lines):
        # take whole units while their estimated size fits the budget (at least one unit)
        budget = 0.9 * limit / bytes_per_line
        fits = np.searchsorted(lines_before, lines_before[u] + budget, side="right") - 1 - u
        take = max(1, int(fits))
        if contiguous:
            part = group.iloc[np.searchsorted(row_unit, u) : np.searchsorted(row_unit, u + take)]
        else:
            part = group[group["claim_id"].isin(np.concatenate(unit_claims[u : u + take]))]
        icn = control_number(cfg.run_date, seq + 1)
        dropped: dict[str, str] = {}
        placed: dict[str, str] = {}
        with timing.record("x12"):  # the 837 writer alone (part of "claims")
            text = build(
                part, interchange_control_number=icn, rejected=dropped, placed=placed, **args
            )
        if dropped:
            keys = ledger.claim_key(part["claim_id"])
            bad_keys = set(ledger.claim_key(pd.Series(list(dropped), dtype="string")))
            siblings = part.loc[keys.isin(bad_keys) & ~part["claim_id"].isin(list(dropped))]
            for cid in siblings["claim_id"].unique().tolist():
                b = str(ledger.claim_key(pd.Series([cid])).iloc[0])
                dropped[cid] = f"claim {cid}: another part of claim {b} cannot be written"
            part = part[~part["claim_id"].isin(list(dropped))]  # the text has none of them
            if len(siblings):  # other parts of a rejected claim were written: build without
                placed = {}
                with timing.record("x12"):
                    text = (
                        build(part, interchange_control_number=icn, placed=placed, **args)
                        if not part.empty
                        else ""
                    )
        if len(text) > limit and take > 1:  # the estimate was short: fewer units, learn the size
            bytes_per_line = max(bytes_per_line, len(text) / max(1, len(part))) * 1.1
            continue
        if part.empty or not text:
            yield part.iloc[0:0], dropped, "", {}, seq
        else:
            seq += 1
            yield part, dropped, text, placed, seq
        if len(part):
            bytes_per_line = max(len(text) / len(part), 1.0)
        u += take


PUBLISH_SCORED = [
    "line_id",
    "claim_id",
    "encounter_id",
    "patient_id",
    "discipline",
    "cpt_code",
    "modifiers",
    "units",
    "charge_amount",
    "receiver_id",
    "claim_type",
]
CLAIM_FIELDS = [
    "line_id",
    "clinic_id",
    "payer_id",
    "date_of_service",
    "patient_last_name",
    "patient_first_name",
    "patient_dob",
    "patient_sex",
    "patient_address",
    "patient_city",
    "patient_state",
    "patient_zip",
    "member_id",
    "subscriber_relationship",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
    "group_number",
    "prior_auth_number",
    "rendering_npi",
    "rendering_last_name",
    "rendering_first_name",
    "diagnosis_codes",
    "diagnosis_pointers",
    "place_of_service",
    "injury_date",
]


# one interchange per receiver, claim type and submitter; within it, claims in claim_id order
# and a claim's lines by date of service and line_id
INTERCHANGE_KEYS = ["receiver_id", "claim_type", "submitter_id"]
CLAIM_FILE_ORDER = [*INTERCHANGE_KEYS, "claim_id", "date_of_service", "line_id"]


def _claim_file_order(
    scored, raw, keep: np.ndarray, submitters: pd.Series
) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple, int, int]]]:
    """Where the kept scored lines go: ``(at_scored, at_raw, interchanges)``.

    ``scored`` and ``raw`` are Arrow tables of the scored lines and the raw layer.
    ``at_scored`` and ``at_raw`` are the row positions of the kept lines in each, in
    ``CLAIM_FILE_ORDER`` (Arrow's stable sort, missing values last); ``interchanges`` are
    ``((receiver, claim type, submitter), start, stop)``, each a slice of those positions.
    Score keeps the raw layer's row order, so the rows usually line up one to one; otherwise a
    line's raw row is found by its line_id. Only the sort keys are read here: the other columns
    are taken once, in this order, by whichever process builds an interchange's files."""

    pos = np.flatnonzero(keep)
    aligned = (
        len(scored) == len(raw)
        and pc.all(
            pc.fill_null(pc.equal(scored.column("line_id"), raw.column("line_id")), False)
        ).as_py()
    )
    if aligned:
        raw_pos = pos
    else:
        ids = pd.Index(raw.column("line_id").to_pandas())
        if not ids.is_unique:
            raise RunError("the staged raw layer repeats line_ids: run the 'ingest' stage again")
        raw_pos = ids.get_indexer(scored.column("line_id").take(pa.array(pos)).to_pandas())
        if (raw_pos < 0).any():
            missing = scored.column("line_id").take(pa.array(pos[raw_pos < 0]))
            raise RunError(
                f"{len(missing)} billed line(s) are not in the staged raw layer (e.g. line_id "
                f"{missing[0]}): run the 'ingest' and 'score' stages again"
            )
    at_s, at_r = pa.array(pos), pa.array(raw_pos)
    clinic = raw.column("clinic_id").take(at_r)
    clinics = pc.unique(clinic).drop_null()
    submitter = pc.take(
        pa.array(submitters.reindex(clinics.to_pylist()), type=pa.string(), from_pandas=True),
        pc.index_in(clinic, value_set=clinics),
    )
    keys = pa.table(
        {
            "receiver_id": scored.column("receiver_id").take(at_s),
            "claim_type": scored.column("claim_type").take(at_s),
            "submitter_id": pc.fill_null(submitter, ""),
            "claim_id": scored.column("claim_id").take(at_s),
            "date_of_service": raw.column("date_of_service").take(at_r),
            "line_id": scored.column("line_id").take(at_s),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending", "at_end") for k in CLAIM_FILE_ORDER])
    # a line without a receiver or claim type has no interchange (its payer or clinic is unknown,
    # an error that holds its claim: it is never billed)
    complete = pc.and_(pc.is_valid(keys["receiver_id"]), pc.is_valid(keys["claim_type"]))
    if not pc.all(complete).as_py():
        log.warning(
            "publish: %s billed line(s) have no receiver or claim type",
            pc.sum(pc.invert(complete)).as_py(),
        )
        order = order.filter(complete.take(order))
    order = order.to_numpy().astype(np.int64)
    ordered = keys.select(INTERCHANGE_KEYS).take(pa.array(order))
    change = np.zeros(len(order), dtype=bool)
    change[:1] = True
    for k in INTERCHANGE_KEYS:
        col = ordered.column(k)
        change[1:] |= pc.not_equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    interchanges = [
        (tuple(ordered.column(k)[int(a)].as_py() for k in INTERCHANGE_KEYS), int(a), int(b))
        for a, b in zip(starts, [*starts[1:], len(order)], strict=True)
    ]
    return pos[order], raw_pos[order], interchanges


def _lines_at(scored, raw, at_scored: np.ndarray, at_raw: np.ndarray, submitters) -> pd.DataFrame:
    """The billed lines at those positions (Arrow tables ``scored`` and ``raw``), as the 837
    writer takes them: the scored columns, the raw layer's claim fields and ``submitter_id``."""

    lines = pd.concat(
        [
            storage.to_frame(scored.select(PUBLISH_SCORED).take(pa.array(at_scored))),
            storage.to_frame(raw.select(CLAIM_FIELDS[1:]).take(pa.array(at_raw))),
        ],
        axis=1,
    )
    lines["submitter_id"] = lines["clinic_id"].map(submitters).fillna("")
    # list fields stay as the extract's ";"-joined text: the writer splits them per claim
    lines["diagnosis_pointers"] = lines["diagnosis_pointers"].fillna("1")
    return lines


def _raw_claim_fields(cfg: RunConfig):
    """The staged raw layer's ``CLAIM_FIELDS`` as an Arrow table: mapped from the uncompressed
    Arrow file when ``run`` left one (only the rows taken are read), else from Parquet."""
    mapped = _mapped_raw(cfg)
    if mapped is not None:
        return _mapped_table(mapped).select(CLAIM_FIELDS)
    return _read_table(cfg.staged("raw", "raw.parquet"), CLAIM_FIELDS)


ClaimJob = tuple[tuple, np.ndarray, np.ndarray]  # (interchange key, at_scored, at_raw)


def _build_interchanges(
    cfg: RunConfig, jobs: list[ClaimJob], scored, raw=None, ref=None
) -> tuple[list[list[dict]], dict]:
    """Build the claim files of some interchanges, in this process or in ``run``'s second
    process (which is handed its lines' scored columns and maps the raw layer itself). Per
    job, its files in order, each built under a provisional control number (its place in the
    interchange: 1, 2, ...): ``publish`` numbers them across the night and renumbers the text.
    Returns them with the timings recorded here."""
    if not jobs:
        return [], {}
    if ref is None:
        ref = reference.load(cfg.reference)
    if isinstance(scored, str):  # the Arrow file publish wrote for this process
        scored = _mapped_table(scored)
    if raw is None:
        raw = _raw_claim_fields(cfg)
    # one interchange's lines at a time: only its frame is held while its files are built
    built = [
        _interchange_files(
            cfg, ref, key, _lines_at(scored, raw, at_s, at_r, ref.clinics["submitter_id"])
        )
        for key, at_s, at_r in jobs
    ]
    return built, timing.take()


def _handed_over(cfg: RunConfig, scored, jobs: list[ClaimJob]) -> tuple[list[ClaimJob], object]:
    """The ``jobs`` for the second process and the scored columns they need: only their
    lines, in job order (the staged scored file may not be written yet), with the jobs'
    scored positions counting in that table. On a local output the table goes to an
    uncompressed Arrow file in the staging area that the second process maps (so this
    process does not hold a copy until it is done), else with the jobs."""
    at = np.concatenate([j[1] for j in jobs])
    ends = np.cumsum([len(j[1]) for j in jobs])
    rebased = [
        (key, np.arange(end - len(at_s), end), at_r)
        for (key, at_s, at_r), end in zip(jobs, ends, strict=True)
    ]
    table = scored.select(PUBLISH_SCORED).take(pa.array(at))
    path = cfg.staged("work", PUBLISH_INPUT)
    if storage.is_s3(path):
        return rebased, table
    _write_arrow_file(table, path)
    return rebased, path


def _interchange_files(
    cfg: RunConfig, ref: reference.Reference, key: tuple, group: pd.DataFrame
) -> list[dict]:
    """The claim files of one interchange (``group``: its lines in claim-file order), numbered
    from 1 within it; a file with no text only carries the claims it had to leave out."""
    receiver, claim_type, _submitter = key
    kind = "837I" if claim_type == "institutional" else "837P"
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": receiver,
        "receiver_name": str(ref.payers.loc[group["payer_id"].iloc[0], "receiver_name"]),
        # ISA09/10 and BHT carry the run date (at 00:00), so a rerun gives identical bytes
        "created": datetime.combine(cfg.run_date, datetime.min.time()),
        "usage": cfg.usage,
    }
    build = x12.build_837i if kind == "837I" else x12.build_837p
    out = []
    for chunk, dropped, text, placed, seq in _claim_files(build, group, args, cfg, 0):
        f: dict = {"dropped": dropped, "data": b""}
        if not chunk.empty:
            f |= {
                "data": text.encode("ascii"),
                "receiver_id": receiver,
                "claim_type": kind,
                "claims": int(chunk["claim_id"].nunique()),
                "lines": len(chunk),
                "charges": round(float(chunk["charge_amount"].sum()), 2),
                "ledger": ledger.entries(
                    chunk,
                    run_date=cfg.rd,
                    file="",
                    claim_type=kind,
                    receiver_id=receiver,
                    icn=control_number(cfg.run_date, seq),
                    placed=placed,
                ),
            }
        out.append(f)
    return out


def _save_claim_file(path: str, data: bytes) -> str:
    """Write one claim file (atomically); returns its SHA-256."""
    storage.write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _share(interchanges: list[tuple[tuple, int, int]]) -> set[int]:
    """The interchanges the second process builds: largest first, each to whichever side has
    less to do, counting lines. The second process starts a sixth of the night behind: it
    reads the staged tables itself before it can build (this process has them in memory)."""
    total = sum(b - a for _, a, b in interchanges)
    mine, theirs, given = -total / 6, 0, set()
    for i in sorted(
        range(len(interchanges)), key=lambda i: interchanges[i][1] - interchanges[i][2]
    ):
        size = interchanges[i][2] - interchanges[i][1]
        if theirs < mine:
            theirs += size
            given.add(i)
        else:
            mine += size
    return given


def publish(cfg: RunConfig, *, pool: ProcessPoolExecutor | None = None) -> dict:
    """Write the night's claim files and ledger, hold the claims the writer cannot carry, and
    swap the staged outputs into place. With ``pool`` (``run``'s second process), about half
    the interchanges are built there; the files are the same bytes either way."""
    _require(cfg.staged("work", "score.json"), "score")
    t0 = time.perf_counter()
    ref = reference.load(cfg.reference)
    scored = _read_table(
        cfg.staged("scored", "scored.parquet"), [*PUBLISH_SCORED, "status"], last=True
    )
    is_billed = (
        storage.to_frame(scored, ["status"])["status"].eq("billed").fillna(False).to_numpy(bool)
    )
    files: list[dict] = []
    ledger_rows: list[pd.DataFrame] = []
    if is_billed.any():
        raw = _raw_claim_fields(cfg)
        at_scored, at_raw, interchanges = _claim_file_order(
            scored, raw, is_billed, ref.clinics["submitter_id"]
        )
        jobs = [(key, at_scored[a:b], at_raw[a:b]) for key, a, b in interchanges]
        theirs = _share(interchanges) if pool is not None and len(jobs) > 1 else set()
        pending = None
        if theirs:
            if _mapped_raw(cfg) is None:  # the second process reads the raw layer's Parquet
                _flush_writes(cfg.staged("raw", "raw.parquet"))
            pending = pool.submit(
                _build_interchanges,
                cfg,
                *_handed_over(cfg, scored, [jobs[i] for i in sorted(theirs)]),
            )
        # the staged writes (at low priority during score) finish, and their tables and
        # buffers go, before this process builds its files: together they would not fit
        _flush_writes()
        pa.default_memory_pool().release_unused()
        mine = [j for i, j in enumerate(jobs) if i not in theirs]
        built_here, here_timings = _build_interchanges(cfg, mine, scored, raw, ref)
        del scored, raw
        built_there, there_timings = pending.result() if pending is not None else ([], {})
        timing.merge_into(timing.merge(here_timings, there_timings))
        built = iter(built_here), iter(built_there)
        rejected: dict[str, str] = {}
        seq = 0
        saved: list[Future] = []
        # numbered across the night, in interchange order; each file is checksummed and
        # written on a thread (both let go of the GIL) while the next one is renumbered
        with ThreadPoolExecutor(2, thread_name_prefix="tc-claims") as io:
            for i in range(len(jobs)):
                for f in next(built[i in theirs]):
                    rejected.update(f["dropped"])
                    if not f["data"]:
                        continue
                    seq += 1
                    icn = control_number(cfg.run_date, seq)
                    data = x12.renumber(f.pop("data"), icn)
                    fname = f"{f['receiver_id']}_{f['claim_type']}_{icn:09d}.x12"
                    path = storage.join(cfg.final("claims"), fname)
                    saved.append(io.submit(_save_claim_file, cfg.staged("claims", fname), data))
                    files.append(
                        {
                            "path": path,
                            "sha256": None,
                            "bytes": len(data),
                            "claims": f["claims"],
                            "lines": f["lines"],
                            "receiver_id": f["receiver_id"],
                            "claim_type": f["claim_type"],
                            "interchange_control_number": f"{icn:09d}",
                            "charges": f["charges"],
                        }
                    )
                    ledger_rows.append(ledger.stamp(f["ledger"], file=path, icn=icn))
        for entry, checksum in zip(files, saved, strict=True):
            entry["sha256"] = checksum.result()
        if rejected:
            log.warning(
                "publish: %s claim(s) could not be written and are held (CLAIM_DATA_INVALID)",
                len(rejected),
            )
            _hold_unwritable(cfg, rejected)
    ledger.write(cfg.staged(ledger.LEDGER, ledger.FILE_NAME), ledger_rows)
    storage.write_json(cfg.staged("work", "claim_files.json"), files)

    claims_seconds = time.perf_counter() - t0
    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    score_info = storage.read_json(cfg.staged("work", "score.json"))
    with timing.record("reports"):
        exc = _read_frame(cfg.staged("exceptions", "exceptions.parquet"))
        storage.write_bytes(
            cfg.staged("reports", "report.html"),
            reports.html_report(cfg.rd, ingest_info, score_info, files, exc).encode("utf-8"),
        )
    _flush_writes()
    t_swap = time.perf_counter()
    # swap the night's staged outputs into place
    if storage.is_s3(cfg.out):  # an S3 swap is object by object: no manifest until it is done
        storage.delete_tree(cfg.manifest_path)
    for kind in PUBLISHED_DIRS:
        src = cfg.staged(kind)
        if storage.exists(src):
            storage.replace_tree(src, cfg.final(kind))
        else:
            storage.delete_tree(cfg.final(kind))
    out = {
        "claim_files": len(files),
        "claims": sum(f["claims"] for f in files),
        "lines": sum(f["lines"] for f in files),
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": timing.merge(
            {"claims": round(claims_seconds, 3), "swap": round(time.perf_counter() - t_swap, 3)},
            timing.take(),
        ),
    }
    storage.write_json(cfg.staged("work", "publish.json"), out)
    log.info("publish: %(claim_files)s claim file(s), %(claims)s claim(s), %(lines)s line(s)", out)
    return out


# --------------------------------------------------------------------------- manifest


def manifest(cfg: RunConfig) -> dict:
    t0 = time.perf_counter()
    _require(cfg.staged("work", "claim_files.json"), "publish")
    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    score_info = storage.read_json(cfg.staged("work", "score.json"))
    files = storage.read_json(cfg.staged("work", "claim_files.json"))
    validate_path = cfg.staged("work", "validate.json")
    validation = storage.read_json(validate_path) if storage.exists(validate_path) else None
    m = {
        "run_date": cfg.rd,
        "version": __version__,
        "started_at": ingest_info["started_at"],
        "finished_at": _now(),
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
        "validation": validation["suites"] if validation else None,
        "outputs": {kind: cfg.final(kind) for kind in PUBLISHED_DIRS},
        "stage_seconds": {
            name: storage.read_json(cfg.staged("work", f"{name}.json")).get("seconds")
            for name in ("ingest", "validate", "score", "publish")
            if storage.exists(cfg.staged("work", f"{name}.json"))
        },
    }
    stage_docs = [
        storage.read_json(cfg.staged("work", f"{name}.json"))
        for name in ("ingest", "validate", "score", "publish")
        if storage.exists(cfg.staged("work", f"{name}.json"))
    ]
    m["timings"] = timing.merge(*(d.get("timings") for d in stage_docs))
    m["timings"]["manifest"] = round(time.perf_counter() - t0, 3)
    m["balanced"] = (
        m["rows_in"] == m["rows_quarantined"] + m["rows_scored"]
        and m["rows_scored"] == m["lines_billed"] + m["lines_held"] + m["lines_not_billed"]
    )
    storage.write_json(cfg.manifest_path, m)
    storage.delete_tree(cfg.staging)
    log.info("manifest: %s", cfg.manifest_path)
    return {"manifest": cfg.manifest_path, "balanced": m["balanced"]}


# --------------------------------------------------------------------------- whole run

STAGES = ("ingest", "validate", "score", "publish", "manifest")


# a night at least this large runs validate in a second process (about 50,000 lines)
PARALLEL_MIN_BYTES = 16 * 2**20


def run(cfg: RunConfig, *, progress=None, parallel: bool | None = None) -> dict:
    """The whole night (the CLI): the same stage functions the DAG's tasks call. Returns the
    manifest.

    With ``parallel``, validate (the GX suites) runs in a second process while score computes
    units and rules in this one; score waits for it before holding claims, so the outputs are
    the same as running the stages one after the other. Publish then builds about half the
    interchanges in a fresh second process (the files are numbered across the night once all
    are built, so they are the same bytes). A failure in either process fails the run.
    Log records of the second process are relayed to this process's loggers. By default a
    night runs in parallel when its input files hold at least ``PARALLEL_MIN_BYTES``: for a
    small night, starting a second interpreter (and importing GX in it) costs more than it
    saves."""
    say = progress or (lambda msg: None)
    if parallel is None:
        parallel = _input_bytes(cfg) >= PARALLEL_MIN_BYTES

    def stage(name: str, **kw) -> dict:
        t0 = time.perf_counter()
        say(f"{name} ...")
        result = globals()[name](cfg, **kw)
        # Arrow's allocator keeps freed memory for a while: give it back between stages (at
        # 1M lines, 670 MiB after ingest, while validate's process starts to fill)
        pa.default_memory_pool().release_unused()
        say(f"{name} done in {time.perf_counter() - t0:.1f}s: {_short(result)}")
        return result

    with _in_memory_handover():
        _stages(cfg, stage, say, parallel)
    return storage.read_json(cfg.manifest_path)


def _input_bytes(cfg: RunConfig) -> int:
    try:
        return sum(storage.size(f) for f in extract.discover(cfg.inputs))
    except Exception:  # noqa: BLE001 - only a size hint: ingest reports what is wrong with the inputs
        return 0


def _stages(cfg: RunConfig, stage: Callable[..., dict], say, parallel: bool) -> None:
    if not parallel:
        for name in STAGES:
            stage(name)
        return
    with _second_process() as pool:
        # the second process starts, imports GX and loads the suites while ingest reads the
        # files (Arrow's serial reader: one core)
        pool.submit(_prepare_validate)
        stage("ingest")
        t0 = time.perf_counter()
        say("validate ... (in a second process, alongside score)")
        pending = pool.submit(validate, cfg)

        def validated() -> None:
            result = pending.result()
            say(f"validate done in {time.perf_counter() - t0:.1f}s: {_short(result)}")
            pool.shutdown(wait=False)  # it exits (and gives its memory back) while score ends

        stage("score", validated=validated)
    # a fresh second process for publish: it starts while this one works out the claim-file
    # order, then builds about half the files
    with _second_process() as pool:
        pool.submit(_warm_up)
        stage("publish", pool=pool)
    stage("manifest")


def _warm_up() -> None:
    """Nothing: the second process imports this module (and the writer) to run it."""


def _prepare_validate() -> None:
    """Import GX and load the suites (a suite that cannot load fails ``validate`` itself)."""
    from therapy_claims import gx_checks

    for name in gx_checks.SUITES:
        try:
            gx_checks.load_suite(name)
        except gx_checks.SuiteError:
            return


@contextmanager
def _second_process() -> Iterator[ProcessPoolExecutor]:
    """A one-worker process pool (spawned: a fresh interpreter, nothing inherited but the
    environment) whose log records come back to this process's loggers."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    listener = logging.handlers.QueueListener(queue, _Relay())
    listener.start()
    levels = {
        name: logging.getLogger(name).getEffectiveLevel()
        for name in ("", log.name, "great_expectations")
    }
    try:
        with ProcessPoolExecutor(
            1, mp_context=ctx, initializer=_child_logging, initargs=(queue, levels)
        ) as pool:
            yield pool
    finally:
        listener.stop()


class _Relay(logging.Handler):
    """Hands a record from the second process to the logger of the same name here."""

    def handle(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
        return True


def _child_logging(queue, levels: dict[str, int]) -> None:
    """In the second process: every record goes to ``queue``, at this process's levels."""
    logging.getLogger().handlers[:] = [logging.handlers.QueueHandler(queue)]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _short(result: dict) -> str:
    keep = {k: v for k, v in result.items() if not isinstance(v, dict | list) and k != "seconds"}
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def config_from(params: dict, *, default_run_date: date | None = None) -> RunConfig:
    """RunConfig from a dict (DAG params / run conf): input (str or list), out, run_date, reference."""
    inputs = params.get("input") or params.get("inputs") or []
    if isinstance(inputs, str):
        inputs = [inputs]
    if not params.get("out"):
        raise RunError("no output root given (out)")
    rd = params.get("run_date") or (default_run_date.isoformat() if default_run_date else None)
    if not rd:
        raise RunError("no run date given (run_date)")
    return RunConfig(
        inputs=list(inputs),
        out=str(params["out"]),
        run_date=parse_run_date(rd),
        reference=params.get("reference") or None,
        usage=params.get("usage", "T"),
    )


__all__ = ["RunConfig", "RunError", "run", "config_from", *STAGES, "CATALOGUE"]
