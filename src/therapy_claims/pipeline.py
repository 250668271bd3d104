"""The nightly run, stage by stage: ingest -> validate -> score -> publish -> manifest.

The entry points the CLI, the Airflow DAG and the event tasks call; the stages themselves are
in ``therapy_claims.stages`` and how a whole night runs is ``therapy_claims.runtime``.

Each stage function here takes the night's ``RunConfig`` and hands over through files: the
layers in the run's own folders (``<out>/<kind>/run_date=D/run=R/``), work files in its
staging area (``<out>/.staging/run_date=D/run=R/``), so each task of the DAG can run in its
own process and return only a small summary; ``run`` runs them all in this process, with the
tables handed over in memory. Nothing a reader trusts changes until ``manifest`` commits the
run; a run that fails before that leaves the previous good night committed. Every entry point
tunes the process the same way (``tuning.tune_process``).
"""

from __future__ import annotations

from dataclasses import replace

from therapy_claims import lock, tuning
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.config import RunConfig, RunError, config_from, parse_run_date
from therapy_claims.handover import Handover
from therapy_claims.runtime import STAGES, run
from therapy_claims.stages import ingest as _ingest
from therapy_claims.stages import manifest as _manifest
from therapy_claims.stages import publish as _publish
from therapy_claims.stages import score as _score
from therapy_claims.stages import validate as _validate


def hold(cfg: RunConfig) -> dict:
    """Take (or take again) the output's lock for this run: a DAG run holds it from its first
    task to its manifest, across task processes and hosts, so it is not tied to a process;
    every stage takes it again first, which also keeps it from expiring."""
    return lock.acquire(
        cfg.out,
        run_id=cfg.run_id,
        run_date=cfg.rd,
        wait=cfg.wait,
        command="therapy-claims DAG run",
        process_bound=False,
    )


def release(cfg: RunConfig) -> None:
    """Let go of the output's lock (the DAG's last task, whatever became of the run)."""
    lock.release(cfg.out, cfg.run_id)


def plan_partitions(cfg: RunConfig, *, by: str = "file", max_partitions: int = 256) -> list:
    """Start a night's ingest; the partitions of its files (see ``stages.ingest``)."""
    tuning.tune_process()
    hold(cfg)
    return _ingest.plan_partitions(cfg, by=by, max_partitions=max_partitions)


def plan_new_partitions(cfg: RunConfig, *, by: str = "file", max_partitions: int = 256) -> list:
    """The nightly DAG's first task: the partitions of the landing zone's files (``cfg.inputs``)
    that no night has processed yet, with the files the night was already published with
    (``events.nightly_inputs``). ``[]`` when nothing is new: the night is skipped, nothing is
    staged or published. ``RunError`` when the night is outside the reopen window (and
    ``cfg.reopen`` is not set) or a file it was published with is gone or changed."""
    tuning.tune_process()
    from therapy_claims import events  # events builds on this module: imported when called

    hold(cfg)
    inputs = events.nightly_inputs(cfg)
    if not inputs:
        release(cfg)  # the night is skipped: no later task runs to let go of the lock
        return []
    night = replace(cfg, inputs=inputs)
    return _ingest.plan_partitions(night, by=by, max_partitions=max_partitions)


def ingest_partition(cfg: RunConfig, files: list[str]) -> dict:
    """Read and type one partition's files (a mapped task of the DAG)."""
    tuning.tune_process()
    hold(cfg)
    return _ingest.ingest_partition(cfg, files)


def ingest_combine(cfg: RunConfig) -> dict:
    """The cross-file part of ingest, once every partition is read."""
    tuning.tune_process()
    hold(cfg)
    return _ingest.ingest_combine(cfg, Handover())


def ingest(cfg: RunConfig) -> dict:
    """The whole ingest in this process."""
    tuning.tune_process()
    hold(cfg)
    return _ingest.ingest(cfg, Handover())


def validate(cfg: RunConfig) -> dict:
    tuning.tune_process()
    hold(cfg)
    return _validate.validate(cfg, Handover())


def score(cfg: RunConfig) -> dict:
    tuning.tune_process()
    hold(cfg)
    return _score.score(cfg, Handover())


def publish(cfg: RunConfig) -> dict:
    tuning.tune_process()
    hold(cfg)
    return _publish.publish(cfg, Handover())


def manifest(cfg: RunConfig) -> dict:
    tuning.tune_process()
    hold(cfg)
    result = _manifest.manifest(cfg, Handover())
    release(cfg)
    return result


__all__ = [
    "CATALOGUE",
    "STAGES",
    "RunConfig",
    "RunError",
    "config_from",
    "ingest",
    "ingest_combine",
    "ingest_partition",
    "manifest",
    "parse_run_date",
    "plan_new_partitions",
    "plan_partitions",
    "hold",
    "publish",
    "release",
    "run",
    "score",
    "validate",
]
