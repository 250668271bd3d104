"""The nightly claims run as an Airflow DAG: thin wiring over ``therapy_claims.pipeline``."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from therapy_claims import dag_settings

DOC_MD = """
### therapy_claims_nightly

Turns the night's encounter extracts into billable claims:
**partitions** (list the landing zone; one partition per file or per folder, e.g. a clinic) →
**ingest_partition** (mapped: each partition's files read and typed on any worker) →
**ingest** (the cross-file checks: repeated line ids, held visits, counts) →
**validate** (Great Expectations suites: extract schema, time, region and modifier consistency) →
**score** (units by the payer's rule, billing edits, hold claims with errors) →
**publish** (837 claim files, exception report, run report; swapped into place together) →
**manifest** (written last: the night's inventory; it must balance).

Outputs land under the output root in `raw/`, `scored/`, `exceptions/`, `claims/`,
`validation/`, `reports/` and `manifest/`, partitioned by `run_date=YYYY-MM-DD`.

**Parameters** (trigger with config): `input` (landing folder or file, local or `s3://`),
`out` (output root), `run_date` (YYYY-MM-DD; default: the run's logical date), `reference`
(reference data folder; default: the shipped samples), `partition_by` (`folder` or `file`).
Any partitioning gives the same outputs as one process (`therapy-claims run`). Defaults come from the environment
variables `THERAPY_CLAIMS_LANDING`, `THERAPY_CLAIMS_OUT` and `THERAPY_CLAIMS_REFERENCE`.

**When it fails**
- Nothing of the night is published until `publish` succeeds: the previous good outputs stay
  as they were, and claim files are never half written. Fix the cause and clear the failed task
  (or trigger the DAG again with the same `run_date`): a re-run replaces that night's outputs.
- `partitions` failing with "does not exist": the landing path is wrong or unreachable.
- `ingest_partition` failing: that partition's log names the file; clear the failed map index
  (the other partitions keep their results), then `ingest` and the rest run.
- An alert (on-failure notifier, and a deadline alert when the night is not done
  `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after 02:00) goes to the `therapy_claims_alerts`
  connection (SMTP or webhook).
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
    return pipeline.config_from(dict(ctx["params"]), default_run_date=when.date())


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
    },
)
def therapy_claims_nightly():
    @task
    def partitions() -> list:
        from therapy_claims import pipeline

        return pipeline.plan_partitions(
            _config(), by=get_current_context()["params"]["partition_by"]
        )

    @task(max_active_tis_per_dag=16)
    def ingest_partition(files: list) -> dict:
        from therapy_claims import pipeline

        return pipeline.ingest_partition(_config(), list(files))

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def ingest() -> dict:
        from therapy_claims import pipeline

        return pipeline.ingest_combine(_config())

    @task
    def validate() -> dict:
        from therapy_claims import pipeline

        return pipeline.validate(_config())

    @task
    def score() -> dict:
        from therapy_claims import pipeline

        return pipeline.score(_config())

    @task
    def publish() -> dict:
        from therapy_claims import pipeline

        return pipeline.publish(_config())

    @task(retries=3)
    def manifest() -> dict:
        from therapy_claims import pipeline

        return pipeline.manifest(_config())

    mapped = ingest_partition.expand(files=partitions())
    mapped >> ingest() >> validate() >> score() >> publish() >> manifest()


therapy_claims_nightly()
