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
`s3:TestEvent` ignored) that lie under the landing zone `THERAPY_CLAIMS_LANDING`
(`s3://bucket/prefix`, param `landing`; any other key is ignored with a warning), skips files
already processed for any night (registry: path + sha256, shared with the nightly DAG), and groups
the rest by night (run date from the path, `run_date=YYYY-MM-DD` or a date in the file name,
else the day after the latest `date_of_service`). **process** (mapped, one per night) runs the
whole pipeline for the night (new files plus the files it was last published with) and then
registers its files. At `THERAPY_CLAIMS_RECONCILE_CRON` (05:30 UTC) the DAG also runs without
events: a **reconcile** that lists `THERAPY_CLAIMS_LANDING` and processes whatever the events missed.
A night more than `THERAPY_CLAIMS_REOPEN_DAYS` (default 7) days before the newest published
night is refused unless the run has the param `reopen` set.

Files are told apart by content, not by name: extracts go to **plan**; the payer's 999,
277CA and 835 files to **acks** (after the nights, whatever became of them), which records
those not applied before in `<THERAPY_CLAIMS_OUT>/responses/` as `therapy-claims acks` does,
under the output's lock; an 837 or anything else is ignored with a log line naming the file.

**When it fails**
- `acks` failing with "response file(s) rejected": the run is recorded (`files.parquet` names
  the file and why) and the task is not retried; ask the clearinghouse to send the file again
  and move the bad one out of the landing zone (the reconcile would reject it again).
  "still locked after waiting": a night held the output; clear `acks` once it is done.
- SQS messages are deleted on receipt, but nothing is registered until a night's manifest is
  written: fix the cause and clear the failed task, or wait for the nightly reconcile, or
  trigger this DAG by hand (a run without events reconciles the landing zone).
- `plan` failing with "no run date": a file's path names no date and its content has none;
  rename it (`.../run_date=YYYY-MM-DD/...`) or put it under a dated folder.
- `plan` failing with "cannot take the new file(s)": a late file's night was published with
  files that are gone from the landing zone or changed; put them back unchanged, or run the
  night by hand with all its files. The night is never republished from the late file alone.
- `plan` failing with "refusing to reopen": trigger the DAG with `reopen` true if the file
  really belongs to that old night, else move it out of the landing zone.
- Files "ignored ... not inside the landing zone" in the log: the notification's bucket or
  prefix differs from `THERAPY_CLAIMS_LANDING`; fix whichever is wrong.
- Connection errors: check the `aws_default` connection (or `THERAPY_CLAIMS_AWS_CONN_ID`).
- Alerts go to the `therapy_claims_alerts` connection through the providers' notifiers (SMTP;
  a webhook with `THERAPY_CLAIMS_ALERT_VIA=http`) on failure, and when a run is not done
  `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after it was queued.
- A task failing with "Timeout": it ran past its `execution_timeout` (`process`: 180 min,
  `THERAPY_CLAIMS_TIMEOUT_PROCESS_MINUTES`); it is retried.

**Assets**: each `process` that commits a night updates one Asset per published layer,
`therapy_claims.<layer>` (`<THERAPY_CLAIMS_OUT>/<layer>`), its extra naming the night
(`run_date`, `manifest`), as the nightly DAG's `manifest` does.
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
