"""The nightly claims run as an Airflow DAG: thin wiring over ``therapy_claims.pipeline``."""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from therapy_claims import dag_settings

DOC_MD = """
### therapy_claims_nightly

Turns the night's encounter extracts into billable claims:
**partitions** (list the landing zone and keep only the files no night has processed yet, see
below; one partition per file or per folder, e.g. a clinic) →
**ingest_partition** (mapped: each partition's files read and typed on any worker) →
**ingest** (the cross-file checks: repeated line ids, held visits, counts) →
**validate** (Great Expectations suites: extract schema, time, region and modifier consistency) →
**score** (units by the payer's rule, billing edits, hold claims with errors) →
**publish** (837 claim files, exception report, run report; swapped into place together) →
**manifest** (written last: the night's inventory; it must balance) →
**register** (the night's input files, path + sha256, into `<out>/.registry/`).

**Sharing the landing zone.** Files stay in the landing zone after their night: `partitions`
skips every file already registered for any night, by this DAG or an event DAG, so no file is
billed twice. With no new file the run is skipped: `partitions` succeeds, logs "no new file",
and every later task is skipped (nothing is staged or published). When the night was already
published (a rerun, or an event DAG ran it), its earlier files are read again with the new
ones; if one of them is gone or changed, `partitions` fails instead of publishing a smaller
night.

Outputs land under the output root in `raw/`, `scored/`, `exceptions/`, `claims/`,
`validation/`, `reports/` and `manifest/`, partitioned by `run_date=YYYY-MM-DD` (`raw/` and
`claims/` under `phi_out` when it is given: docs/outputs.md "PHI separation"); the Great
Expectations results of every night also go to the GX project's store `<out>/gx/`.

**Assets**: `manifest` commits the night and updates one Asset per layer,
`therapy_claims.<layer>` (`<THERAPY_CLAIMS_OUT>/<layer>`: raw, scored, exceptions, claims,
ledger, validation, reports, worklist); each event's extra names the night (`run_date`,
`manifest`). Schedule downstream DAGs on them (`schedule=[Asset(name=..., uri=...)]`).
No Asset is updated by a skipped night, nor (extra left empty) by a run given another `out`.

**Parameters** (trigger with config): `input` (landing folder or file, local or `s3://`),
`out` (output root), `run_date` (YYYY-MM-DD; default: the run's logical date), `reference`
(reference data folder; default: the shipped samples), `partition_by` (`folder` or `file`),
`reopen` (allow a night more than `THERAPY_CLAIMS_REOPEN_DAYS`, default 7, days before the
newest published night), `phi_out` (a separate root, local or `s3://`, for the layers holding
PHI: `raw/` and `claims/`; empty: under `out`; default `THERAPY_CLAIMS_PHI_OUT`).
Any partitioning gives the same outputs as one process (`therapy-claims run`). Defaults come from the environment
variables `THERAPY_CLAIMS_LANDING`, `THERAPY_CLAIMS_OUT` and `THERAPY_CLAIMS_REFERENCE`.

**When it fails**
- Nothing of the night is published until `publish` succeeds: the previous good outputs stay
  as they were, and claim files are never half written. Fix the cause and clear the failed task
  (or trigger the DAG again with the same `run_date`): a re-run replaces that night's outputs.
- `partitions` failing with "does not exist": the landing path is wrong or unreachable.
- `partitions` failing with "cannot take the new file(s)": files the night was published with
  are gone or changed; put them back unchanged, or run the night by hand with all its files.
- `partitions` failing with "refusing to reopen": the night is older than the reopen window;
  trigger again with `reopen` true if the files really belong to it.
- A re-run of a night that succeeded (manifest and `register` done) finds nothing new and is
  skipped: to rebuild such a night, run it by hand (`therapy-claims run`) with all its files.
- A task failing with "output ... is locked by run R": another run (a DAG run, an event run or
  `therapy-claims run`) holds the output. Wait for it, or if R crashed and its host is gone,
  `therapy-claims unlock --out OUT`, then clear the task. The run lets go of the lock in its
  last task (`unlock`), whatever became of it.
- `register` failing: the night is published; clear `register` (until it succeeds, the next
  night would read the night's files again and hold their lines ALREADY_BILLED).
- `ingest_partition` failing: that partition's log names the file; clear the failed map index
  (the other partitions keep their results), then `ingest` and the rest run.
- An alert (the SMTP provider's notifier on failure, and a deadline alert when the night is not
  done `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after 02:00) goes to the `therapy_claims_alerts`
  connection (SMTP; a webhook through the http provider with `THERAPY_CLAIMS_ALERT_VIA=http`).
- A task failing with "Timeout": it ran past its `execution_timeout` (`THERAPY_CLAIMS_TIMEOUT_*`
  settings); it is retried. A hung S3 endpoint or lock wait is the usual cause.
- `score` failing with a reference error: a reference file is missing or holds an unknown
  setting value; the log names the file, row and column. Fix the file and clear the task.
- `score` failing with "does not balance": a bug; do not publish by hand, open an issue with the log.
- A **rejected input file** does not fail the DAG: it is listed in the manifest and in the
  exception report (`FILE_REJECTED`). Ask the practice to re-export it, then re-run the night.
- Held claims are not failures: billers work them from `exceptions/run_date=.../exceptions.csv`.
"""


def _config():
    from therapy_claims import pipeline

    ctx = get_current_context()
    when = ctx.get("logical_date") or ctx["dag_run"].run_after
    # every task of a DAG run is one run of the night: the same run id, folders and lock
    params = {**ctx["params"], "run_id": ctx["dag_run"].run_id}
    cfg = pipeline.config_from(params, default_run_date=when.date())
    cfg.reopen = bool(ctx["params"].get("reopen", False))
    return cfg


@dag(
    dag_id="therapy_claims_nightly",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC_MD,
    tags=["claims", "nightly"],
    default_args=dag_settings.default_args(),
    deadline=dag_settings.deadline("logical"),
    params={
        "input": Param(os.environ.get("THERAPY_CLAIMS_LANDING", ""), type="string"),
        "out": Param(os.environ.get("THERAPY_CLAIMS_OUT", ""), type="string"),
        "run_date": Param("", type="string", description="YYYY-MM-DD; empty = logical date"),
        "reference": Param(os.environ.get("THERAPY_CLAIMS_REFERENCE", ""), type="string"),
        "partition_by": Param("folder", enum=["folder", "file"]),
        "reopen": Param(False, type="boolean", description="allow a night older than the window"),
        "phi_out": Param(
            os.environ.get("THERAPY_CLAIMS_PHI_OUT", ""),
            type="string",
            description="root for raw/ and claims/ (PHI), apart from out; empty = under out",
        ),
    },
)
def therapy_claims_nightly():
    @task.short_circuit(execution_timeout=dag_settings.timeout("partitions"))
    def partitions() -> list:
        """Empty (nothing new in the landing zone): every later task is skipped."""
        from therapy_claims import pipeline

        parts = pipeline.plan_new_partitions(
            _config(), by=get_current_context()["params"]["partition_by"]
        )
        if not parts:
            logging.getLogger(__name__).info(
                "no new file in the landing zone: the night is skipped (nothing published)"
            )
        return parts

    @task(max_active_tis_per_dag=16, execution_timeout=dag_settings.timeout("ingest_partition"))
    def ingest_partition(files: list) -> dict:
        from therapy_claims import pipeline

        return pipeline.ingest_partition(_config(), list(files))

    @task(trigger_rule=TriggerRule.NONE_FAILED, execution_timeout=dag_settings.timeout("ingest"))
    def ingest() -> dict:
        from therapy_claims import pipeline

        return pipeline.ingest_combine(_config())

    @task(execution_timeout=dag_settings.timeout("validate"))
    def validate() -> dict:
        from therapy_claims import pipeline

        return pipeline.validate(_config())

    @task(execution_timeout=dag_settings.timeout("score"))
    def score() -> dict:
        from therapy_claims import pipeline

        return pipeline.score(_config())

    @task(execution_timeout=dag_settings.timeout("publish"))
    def publish() -> dict:
        from therapy_claims import pipeline

        return pipeline.publish(_config())

    # writing the manifest commits the night: the task updates the layer Assets
    @task(
        retries=3,
        execution_timeout=dag_settings.timeout("manifest"),
        outlets=dag_settings.layer_assets(),
    )
    def manifest() -> dict:
        from therapy_claims import pipeline

        cfg = _config()
        result = pipeline.manifest(cfg)
        dag_settings.describe_events(get_current_context()["outlet_events"], cfg.out, cfg.rd)
        return result

    @task(execution_timeout=dag_settings.timeout("register"))
    def register() -> int:
        from therapy_claims import events

        return events.register_night(_config(), run_id=get_current_context()["run_id"])

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=dag_settings.timeout("unlock"))
    def unlock() -> None:
        """Whatever became of the run, the output's lock is let go (a failed run's folders
        and reservations are settled by the next run)."""
        from therapy_claims import pipeline

        pipeline.release(_config())

    mapped = ingest_partition.expand(files=partitions())
    done = mapped >> ingest() >> validate() >> score() >> publish() >> manifest() >> register()
    done >> unlock()


therapy_claims_nightly()
