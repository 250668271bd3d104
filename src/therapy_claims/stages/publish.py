"""Publish: plan the night's claim files, have them built, number and write them with the
claim ledger and the run report into this run's versioned folders, then reserve the claims in
the ledger database. Nothing is visible to readers until the manifest commits the run.

Publish decides nothing about claims: every hold was decided in score. How the files are
built (in this process or partly in another) is the runtime's ``build`` function; the files
are the same bytes either way.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import (
    corrections,
    ledger,
    ledger_store,
    nights,
    payer_reasons,
    reference,
    reports,
    schemas,
    storage,
    timing,
    tuning,
    worklist,
    x12,
)
from therapy_claims.config import PUBLISHED_DIRS, RunConfig, RunError
from therapy_claims.handover import Handover
from therapy_claims.stages import checked, claim_files
from therapy_claims.stages.claim_files import ClaimJob, Interchange
from therapy_claims.stages.score import EXCEPTIONS, SCORED
from therapy_claims.x12.constants import VOID

log = logging.getLogger("therapy_claims")


@dataclass
class Batch:
    """The night's claim files to build: one job per interchange (``interchanges`` are their
    keys and sizes), the Arrow tables of the ``scored`` columns and ``raw`` claim fields the
    jobs take their lines from, and the handover whose background writes are still going."""

    cfg: RunConfig
    jobs: list[ClaimJob]
    interchanges: list[Interchange]
    tables: dict
    ref: reference.Reference
    handover: Handover

    def build_here(self, jobs: list[ClaimJob]) -> list[list[dict]]:
        """Build ``jobs`` in this process, once the staged writes (at low priority during
        score) are done and their memory is given back: together they would not fit. The
        tables are let go of afterwards."""
        self.handover.flush()
        tuning.release_memory()
        built, timings = claim_files.build_batch(
            self.cfg, jobs, self.tables.pop("scored"), self.tables.pop("raw"), self.ref
        )
        timing.merge_into(timings)
        return built


# builds every job's files; per job its files, in job order
BuildFn = Callable[[Batch], list[list[dict]]]


def build_here(batch: Batch) -> list[list[dict]]:
    """Build every file in this process."""
    return batch.build_here(batch.jobs)


def publish(cfg: RunConfig, handover: Handover, *, build: BuildFn = build_here) -> dict:
    """Write the night's claim files and ledger and swap the staged outputs into place."""
    handover.require(cfg.staged("work", "score.json"), "score")
    t0 = time.perf_counter()
    ref = reference.load(cfg.reference)
    with timing.record("worklist"):
        previous = worklist.previous(cfg.out, cfg.run_date)
    columns = [*claim_files.BUILD_SCORED, "status"]
    scored = handover.read_table(
        cfg.staged(*SCORED), list(dict.fromkeys([*columns, *worklist.LINE_COLUMNS])), last=True
    )
    # the few lines the worklist reads, before the claim files' build lets go of the table
    with timing.record("worklist"):
        wl_lines = worklist.relevant_lines(scored, previous)
    scored = scored.select(columns)
    is_billed = (
        storage.to_frame(scored, ["status"])["status"].eq("billed").fillna(False).to_numpy(bool)
    )
    files: list[dict] = []
    ledger_rows: list[pd.DataFrame] = []
    # the night's claims are reserved in the ledger database before the manifest commits
    # the night (and marked sent after). The claims are known before their files are built,
    # so the reservation runs on a thread while they are built and written: the database
    # works outside the GIL
    staged = corrections.read_staged(cfg)
    keys = _claim_keys(scored, is_billed, staged)
    # the voids of claims with no line tonight (score decided them): reserved with the night's
    # claims, built from their sendings' files
    voided = _void_keys(staged)
    with ThreadPoolExecutor(1, thread_name_prefix="tc-ledger") as pool:
        reserving = pool.submit(_reserve, cfg, _with_voids(keys, voided))
        built: list[list[dict]] = []
        if is_billed.any():
            raw = claim_files.raw_claim_fields(cfg, handover)
            at_scored, at_raw, interchanges = claim_files.plan(
                scored, raw, is_billed, ref.clinics["submitter_id"]
            )
            at_checked = _checked_rows(cfg, len(scored), at_scored)
            jobs = [
                (key, at_scored[a:b], at_raw[a:b], at_checked[a:b]) for key, a, b in interchanges
            ]
            batch = Batch(cfg, jobs, interchanges, {"scored": scored, "raw": raw}, ref, handover)
            del scored, raw  # the batch lets go of them once they are built
            built = list(build(batch))
        if len(voided):
            with timing.record("voids"):
                built.append(claim_files.build_voids(cfg, staged))
        if built:
            files, ledger_rows = _number_and_write(cfg, built)
        sent = ledger.write(cfg.staged(ledger.LEDGER, ledger.FILE_NAME), ledger_rows)
        storage.write_json(cfg.staged("work", "claim_files.json"), files)
        counts = _finish(cfg, handover, files, wl_lines, previous, sent["claim_key"])
        with timing.record("reserve"):  # what the reservation adds to the wall
            reserving.result()
    _same_claims(keys, voided, sent, files)
    claims_seconds = time.perf_counter() - t0
    out = {
        "claim_files": len(files),
        "claims": sum(f["claims"] for f in files),
        "lines": sum(f["lines"] for f in files),
        "worklist": counts,
        "seconds": round(time.perf_counter() - t0, 3),
        "timings": timing.merge({"claims": round(claims_seconds, 3)}, timing.take()),
    }
    storage.write_json(cfg.staged("work", "publish.json"), out)
    log.info("publish: %(claim_files)s claim file(s), %(claims)s claim(s), %(lines)s line(s)", out)
    return out


def _checked_rows(cfg: RunConfig, n_lines: int, at_scored: np.ndarray) -> np.ndarray:
    """The rows of the billed lines (``at_scored``) in the columns score checked them with:
    every billed line was checked (score decided its claim can be written)."""
    rows = checked.rows_of(cfg, n_lines)[at_scored]
    if (rows < 0).any():
        raise RunError(
            f"publish: {int((rows < 0).sum())} billed line(s) were not checked by score: "
            "nothing was published (a defect: please report it with the run id)"
        )
    return rows


def _claim_keys(
    scored: pa.Table, is_billed: np.ndarray, staged: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The claims the night bills (``claim_key``: a claim sent in parts, or as a later
    version, is one claim) and, for a later version (``corrections``), its ``version``,
    ``frequency_code`` and ``original_claim_id``: what the ledger database reserves."""
    ids = pc.unique(scored.column("claim_id").filter(pa.array(is_billed)).drop_null())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    keys = pc.unique(ledger.claim_keys(ids))
    out = pd.DataFrame({"claim_key": pd.array(keys.to_numpy(zero_copy_only=False), "string")})
    fixed = corrections.corrected(staged) if staged is not None else ()
    if len(fixed):
        for c in ("version", "frequency_code", "original_claim_id"):
            out[c] = out["claim_key"].map(fixed[c])
        out["version"] = out["version"].fillna(0).astype("int64")
    return out


def _void_keys(staged: pd.DataFrame) -> pd.DataFrame:
    """The staged voids of claims with no line tonight (an ``original_run_date``): what the
    ledger database reserves of them (``claim_key``, ``version``, ``frequency_code``,
    ``original_claim_id``)."""
    columns = ["claim_key", "version", "frequency_code", "original_claim_id"]
    if not len(staged):
        return pd.DataFrame(columns=columns)
    voided = staged[staged["original_run_date"].notna()]
    out = voided[columns].reset_index(drop=True)
    out["version"] = out["version"].astype("int64")
    return out


def _with_voids(keys: pd.DataFrame, voided: pd.DataFrame) -> pd.DataFrame:
    """The night's claims to reserve: the billed ones and the voids of absent ones."""
    if voided.empty:
        return keys
    out = pd.concat([keys, voided], ignore_index=True)
    out["version"] = out["version"].fillna(0).astype("int64")
    return out


def _same_claims(
    reserved: pd.DataFrame, voided: pd.DataFrame, sent: pd.DataFrame, files: list[dict]
) -> None:
    """The claims reserved are the claims the ledger layer records as sent: every billed
    claim is in a file (score held those the writer cannot carry), and every void of a
    claim with no line tonight is in a void file (and is no billed claim: its key is not
    among tonight's, the void files carry no line of tonight)."""
    absent = set(voided["claim_key"].astype(str))
    is_void = sent["claim_key"].astype("string").isin(absent).to_numpy(bool)
    in_files = sum(int(f.get("voids", 0)) for f in files)
    if (
        absent & set(reserved["claim_key"].astype(str))
        or int(is_void.sum()) != len(absent)
        or in_files != len(absent)
        or not sent.loc[is_void, "frequency_code"].eq(VOID).all()
    ):
        raise RunError(
            f"publish: {len(absent)} void(s) of claims with no line tonight reserved but "
            f"{int(is_void.sum())} in the ledger and {in_files} in the void files: nothing "
            "was published (a defect: please report it with the run id)"
        )
    sent = sent[~is_void]
    a = storage.text_array(reserved["claim_key"])
    b = pc.unique(storage.text_array(sent["claim_key"]).drop_null())
    # (``all`` of no values is null, not true: a night that bills nothing has nothing to check)
    if len(a) != len(b) or (len(b) and not pc.all(pc.is_in(b, value_set=a)).as_py()):
        raise RunError(
            f"publish: {len(a)} claim(s) reserved but {len(b)} in the claim files: nothing "
            "was published (a defect: please report it with the run id)"
        )


def _reserve(cfg: RunConfig, keys: pd.DataFrame) -> None:
    with ledger_store.opened(cfg) as store:
        store.reserve(cfg.run_id, cfg.rd, keys)


def _finish(
    cfg: RunConfig,
    handover: Handover,
    files: list[dict],
    wl_lines: pa.Table,
    previous: pd.DataFrame | None,
    sent_keys: pd.Series,
) -> dict:
    """The run report and the worklist, and every background write of the night done.
    Returns the worklist's counts (the manifest's ``worklist``)."""
    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    score_info = storage.read_json(cfg.staged("work", "score.json"))
    with timing.record("reports"):
        exc = handover.read_frame(cfg.staged(*EXCEPTIONS))
    with timing.record("worklist"):
        wl = write_worklist(cfg, wl_lines, exc, previous, sent_keys)
    with timing.record("reports"):
        # the trends' earlier nights (tonight's point is tonight's summaries)
        history = nights.recent(cfg.out, cfg.rd, reports.TREND_NIGHTS - 1, including=False)
        links = {kind: cfg.final(kind) for kind in PUBLISHED_DIRS}
        page = reports.html_report(
            cfg.rd,
            ingest_info,
            score_info,
            files,
            exc,
            worklist=wl,
            history=history,
            links=links,
            after=reports.after_sending(cfg.out, cfg.reference),
        )
        storage.write_bytes(cfg.staged("reports", "report.html"), page.encode("utf-8"))
    handover.flush()  # every file of the night is in this run's folders
    return worklist.counts(wl, cfg.run_date)


def write_worklist(
    cfg: RunConfig,
    lines: pa.Table,
    exc: pd.DataFrame,
    previous: pd.DataFrame | None,
    sent_keys: pd.Series | None = None,
) -> pd.DataFrame:
    """Build the night's worklist (``therapy_claims.worklist``) and write it, Parquet (its
    published form, as every layer's file) and a spreadsheet-safe CSV, into this run's
    ``worklist`` folder; returns it. With a lifecycle layer under the output (the payers'
    answers, issue 17) its rejected and denied claims are rows too; ``sent_keys``: the claim
    keys the night sends (a rejected or denied one is sent again)."""
    sent = [] if sent_keys is None else sent_keys.dropna().astype(str).unique().tolist()
    claims = None
    lifecycle = worklist.read_lifecycle(cfg.out)
    if lifecycle is not None:
        mapping = payer_reasons.load(cfg.reference)
        claims = worklist.payer_claims(
            lifecycle, cfg.run_date, mapping, previous=previous, sent_keys=sent
        )
    wl = worklist.build(
        lines,
        exc[worklist.EXCEPTION_COLUMNS],
        previous,
        cfg.run_date,
        claims=claims,
        sent_keys=sent,
    )
    path = cfg.staged("worklist", worklist.FILE_NAME)
    storage.write_table(schemas.published(worklist.to_table(wl), worklist.LAYER), path)
    storage.write_bytes(
        cfg.staged("worklist", worklist.CSV_NAME),
        reports.spreadsheet_safe_csv(worklist.csv_frame(wl), money=("held_dollars",)),
    )
    return wl


def control_numbers(cfg: RunConfig, built: list[dict]) -> list[int]:
    """Each built file's interchange control number, from the ledger database (committed
    there before any file is written): what its content carried before, else the next of
    its submitter's counter (``ledger_store.Store.control_numbers``)."""
    wanted = [(f["submitter_id"], f["receiver_id"], f["content_sha256"]) for f in built]
    if not wanted:
        return []
    with timing.record("number"), ledger_store.opened(cfg) as store:
        return store.control_numbers(cfg.run_id, cfg.rd, wanted)


def claim_file_name(f: dict, icn: int) -> str:
    """``<receiver>_<claim type>_<submitter>_<ISA13>.x12``: each submitter counts its own
    numbers, so the submitter keeps two submitters' files to one receiver apart."""
    return f"{f['receiver_id']}_{f['claim_type']}_{f['submitter_id']}_{icn:09d}.x12"


def _number_and_write(
    cfg: RunConfig, built: list[list[dict]]
) -> tuple[list[dict], list[pd.DataFrame]]:
    """Number the built files (``control_numbers``), in interchange order, and write them:
    each file is checksummed and written on a thread (both let go of the GIL) while the next
    one is renumbered. Returns the files' manifest entries and their ledger rows."""
    files: list[dict] = []
    ledger_rows: list[pd.DataFrame] = []
    saved: list[Future] = []
    flat = [f for job in built for f in job]
    numbers = control_numbers(cfg, flat)
    with ThreadPoolExecutor(2, thread_name_prefix="tc-claims") as io:
        for f, icn in zip(flat, numbers, strict=True):
            data = x12.renumber(f.pop("data"), icn)
            fname = claim_file_name(f, icn)
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
                    **({"voids": f["voids"]} if "voids" in f else {}),
                }
            )
            ledger_rows.append(ledger.stamp(f["ledger"], file=path, icn=icn))
    for entry, checksum in zip(files, saved, strict=True):
        entry["sha256"] = checksum.result()
    return files, ledger_rows


def _save_claim_file(path: str, data: bytes) -> str:
    """Write one claim file (atomically); returns its SHA-256."""
    storage.write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()
