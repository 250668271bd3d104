"""How a whole night runs in one or two processes: the same stage functions the DAG's tasks
call, with what makes them fast kept out of them.

``run`` hands the stages an ``InMemoryHandover`` (tables from memory, files written in the
background). With ``parallel``, validate (the GX suites) runs in a second process while score
computes units and rules here, and publish builds about half the interchanges' files in a
fresh second process (``TwoProcessBuild``). The outputs are the same bytes as running the
stages one after the other; a failure in either process fails the run.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from therapy_claims import extract, ledger_store, lock, nights, storage, timing, tuning
from therapy_claims.config import RunConfig, new_run_id
from therapy_claims.handover import Handover, InMemoryHandover, write_arrow_file
from therapy_claims.stages import claim_files
from therapy_claims.stages.claim_files import ClaimJob, Interchange
from therapy_claims.stages.ingest import RAW, ingest, mapped_raw
from therapy_claims.stages.manifest import manifest
from therapy_claims.stages.publish import Batch, build_here, publish
from therapy_claims.stages.score import score
from therapy_claims.stages.validate import validate

log = logging.getLogger("therapy_claims")

STAGES = ("ingest", "validate", "score", "publish", "manifest")
# a night at least this large runs in two processes (about 50,000 lines): for a small night,
# starting a second interpreter (and importing GX in it) costs more than it saves
PARALLEL_MIN_BYTES = 16 * 2**20
# the scored columns of the lines publish's second process builds, as a mapped Arrow file
PUBLISH_INPUT = ("work", "publish_scored.arrow")


def run(cfg: RunConfig, *, progress=None, parallel: bool | None = None) -> dict:
    """The whole night; returns the manifest. By default a night runs in two processes when
    its input files hold at least ``PARALLEL_MIN_BYTES``."""
    tuning.tune_process()
    say = progress or (lambda msg: None)
    if (nights.committed(cfg.out, cfg.rd) or {}).get("run_id") == cfg.run_id:
        cfg.run_id = new_run_id()  # a run of a night is a new run: it never writes over one
    if parallel is None:
        parallel = _input_bytes(cfg) >= PARALLEL_MIN_BYTES
    with lock.held(
        cfg.out, run_id=cfg.run_id, run_date=cfg.rd, wait=cfg.wait, command="therapy-claims run"
    ):
        try:
            _run(cfg, say, parallel)
        except BaseException:
            ledger_store.abandon(cfg)
            raise
    return storage.read_json(cfg.manifest_path)


def _run(cfg: RunConfig, say, parallel: bool) -> None:
    with InMemoryHandover() as handover:
        stages = {
            "ingest": ingest,
            "validate": validate,
            "score": score,
            "publish": publish,
            "manifest": manifest,
        }

        def stage(name: str, **kw) -> dict:
            t0 = time.perf_counter()
            say(f"{name} ...")
            result = stages[name](cfg, handover, **kw)
            tuning.release_memory()
            say(f"{name} done in {time.perf_counter() - t0:.1f}s: {_short(result)}")
            return result

        if parallel:
            _in_two_processes(cfg, stage, say)
        else:
            for name in STAGES:
                stage(name)


def _input_bytes(cfg: RunConfig) -> int:
    try:
        return sum(storage.size(f) for f in extract.discover(cfg.inputs))
    except Exception:  # noqa: BLE001 - only a size hint: ingest reports what is wrong with the inputs
        return 0


def _in_two_processes(cfg: RunConfig, stage: Callable[..., dict], say) -> None:
    with second_process() as pool:
        # the second process starts, imports GX and loads the suites while ingest reads the
        # files (Arrow's serial reader: one core)
        pool.submit(_prepare_validate)
        stage("ingest")
        t0 = time.perf_counter()
        say("validate ... (in a second process, alongside score)")
        pending = pool.submit(validate, cfg, Handover())

        def validated() -> None:
            result = pending.result()
            say(f"validate done in {time.perf_counter() - t0:.1f}s: {_short(result)}")
            pool.shutdown(wait=False)  # it exits (and gives its memory back) while score ends

        stage("score", validated=validated)
    # a fresh second process for publish: it starts while this one plans the claim files,
    # then builds about half of them
    with second_process() as pool:
        pool.submit(_warm_up)
        stage("publish", build=TwoProcessBuild(pool))
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


# --------------------------------------------------------------------------- publish's share


class TwoProcessBuild:
    """Publish's build function with a second process: the larger interchanges are shared
    out so both processes finish together; files come back in job order."""

    def __init__(self, pool) -> None:
        self.pool = pool

    def __call__(self, batch: Batch) -> list[list[dict]]:
        jobs = batch.jobs
        theirs = share(batch.interchanges) if len(jobs) > 1 else set()
        if not theirs:
            return build_here(batch)
        cfg = batch.cfg
        if mapped_raw(cfg) is None:  # the second process reads the raw layer's Parquet
            batch.handover.flush(cfg.staged(*RAW))
        pending = self.pool.submit(
            claim_files.build_batch,
            cfg,
            *_handed_over(cfg, batch.tables["scored"], [jobs[i] for i in sorted(theirs)]),
        )
        built_here = iter(batch.build_here([j for i, j in enumerate(jobs) if i not in theirs]))
        built_there, there_timings = pending.result()
        timing.merge_into(there_timings)
        there = iter(built_there)
        return [next(there) if i in theirs else next(built_here) for i in range(len(jobs))]


def share(interchanges: list[Interchange]) -> set[int]:
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


def _handed_over(cfg: RunConfig, scored, jobs: list[ClaimJob]) -> tuple[list[ClaimJob], object]:
    """The ``jobs`` for the second process and the scored columns they need: only their
    lines, in job order (the staged scored file may not be written yet), with the jobs'
    scored positions counting in that table. On a local output the table goes to an
    uncompressed Arrow file in the staging area that the second process maps (so this
    process does not hold a copy until it is done), else with the jobs."""
    at = np.concatenate([j[1] for j in jobs])
    ends = np.cumsum([len(j[1]) for j in jobs])
    rebased = [
        (key, np.arange(end - len(at_s), end), at_r, at_c)
        for (key, at_s, at_r, at_c), end in zip(jobs, ends, strict=True)
    ]
    table = scored.select(claim_files.BUILD_SCORED).take(pa.array(at))
    path = cfg.staged(*PUBLISH_INPUT)
    if storage.is_s3(path):
        return rebased, table
    write_arrow_file(table, path)
    return rebased, path


# --------------------------------------------------------------------------- second process


@contextmanager
def second_process() -> Iterator[ProcessPoolExecutor]:
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
            1, mp_context=ctx, initializer=_child_start, initargs=(queue, levels)
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


def _child_start(queue, levels: dict[str, int]) -> None:
    """In the second process: tuned as this one, every record goes to ``queue``, at this
    process's levels."""
    tuning.tune_process()
    logging.getLogger().handlers[:] = [logging.handlers.QueueHandler(queue)]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _short(result: dict) -> str:
    keep = {k: v for k, v in result.items() if not isinstance(v, dict | list) and k != "seconds"}
    return ", ".join(f"{k}={v}" for k, v in keep.items())
