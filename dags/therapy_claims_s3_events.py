"""Event-driven nights on S3: S3 ObjectCreated -> SQS -> AssetWatcher -> this DAG.
Defined only when THERAPY_CLAIMS_SQS_QUEUE is set (the queue URL)."""

from __future__ import annotations

import pendulum
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.timetables.trigger import CronTriggerTimetable

from therapy_claims import dag_settings as s

DOC_MD = """
### therapy_claims_s3_events

Runs a night as soon as its extracts land in S3: S3 `ObjectCreated` notifications go to the
SQS queue `THERAPY_CLAIMS_SQS_QUEUE`; the triggerer's watcher turns each message batch into
a run of this DAG. **plan** lists exactly the files named in the events (keys URL-decoded,
`s3:TestEvent` ignored), skips files already processed (registry: path + sha256), and groups
the rest by night (run date from the path, `run_date=YYYY-MM-DD` or a date in the file name,
else the day after the latest `date_of_service`). **process** (mapped, one per night) runs the
whole pipeline for the night (new files plus the files it was last published with) and then
registers its files. At `THERAPY_CLAIMS_RECONCILE_CRON` (05:30 UTC) the DAG also runs without
events: a **reconcile** that lists `THERAPY_CLAIMS_LANDING` and processes whatever the events missed.

**When it fails**
- SQS messages are deleted on receipt, but nothing is registered until a night's manifest is
  written: fix the cause and clear the failed task, or wait for the nightly reconcile, or
  trigger this DAG by hand (a run without events reconciles the landing zone).
- `plan` failing with "no run date": a file's path names no date and its content has none;
  rename it (`.../run_date=YYYY-MM-DD/...`) or put it under a dated folder.
- Connection errors: check the `aws_default` connection (or `THERAPY_CLAIMS_AWS_CONN_ID`).
- Alerts go to the `therapy_claims_alerts` connection (on failure, and when a run is not done
  `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after it was queued).
"""

if s.SQS_QUEUE:
    extracts = Asset(
        name="therapy_claims_s3_landing",
        uri=s.LANDING if s.LANDING.startswith("s3://") else "s3://therapy-claims-landing/",
        watchers=[
            AssetWatcher(
                name="therapy_claims_sqs",
                trigger=MessageQueueTrigger(
                    scheme="sqs",
                    sqs_queue=s.SQS_QUEUE,
                    aws_conn_id=s.AWS_CONN_ID,
                    waiter_delay=s.SQS_WAITER_DELAY,
                ),
            )
        ],
    )

    @dag(
        dag_id="therapy_claims_s3_events",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(s.RECONCILE_CRON, timezone="UTC"), assets=[extracts]
        ),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=DOC_MD,
        tags=["claims", "events", "s3"],
        default_args=s.default_args(),
        deadline=s.deadline("queued"),
        params={
            "landing": Param(s.LANDING, type="string"),
            "out": Param(s.OUT, type="string"),
            "reference": Param(s.REFERENCE, type="string"),
        },
    )
    def therapy_claims_s3_events():
        @task
        def plan(*, triggering_asset_events=None) -> list:
            from therapy_claims import events

            p = get_current_context()["params"]
            return events.plan_run(triggering_asset_events, p["landing"], p["out"])

        @task(max_active_tis_per_dag=4)
        def process(night: dict) -> dict:
            from therapy_claims import events

            ctx = get_current_context()
            p = ctx["params"]
            return events.process_night(night, p["out"], p["reference"], run_id=ctx["run_id"])

        process.expand(night=plan())

    therapy_claims_s3_events()
