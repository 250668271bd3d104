"""Event-driven nights on S3: S3 ObjectCreated -> SQS -> AssetWatcher -> this DAG.
Defined only when THERAPY_CLAIMS_SQS_QUEUE is set (the queue URL)."""

from __future__ import annotations

from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import Asset, AssetWatcher

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

    s.event_dag(
        dag_id="therapy_claims_s3_events",
        asset=extracts,
        landing=s.LANDING,
        tags=["claims", "events", "s3"],
        doc_md=DOC_MD,
    )
