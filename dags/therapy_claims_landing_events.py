"""Event-driven nights on a local landing folder (the embedded default): a file dropped into
THERAPY_CLAIMS_LANDING starts a run. The watcher is a trigger in plugins/ (no worker slot)."""

from __future__ import annotations

import os

from airflow.sdk import Asset, AssetWatcher
from landing_watcher import LandingFolderTrigger

from therapy_claims import dag_settings as s

DOC_MD = """
### therapy_claims_landing_events

Runs a night as soon as an extract is dropped into the local landing folder
(`THERAPY_CLAIMS_LANDING`, default `$AIRFLOW_HOME/landing`). The watcher
(`plugins/landing_watcher.py`) runs in the triggerer and fires when a new or changed file has
stopped changing. **plan** ignores paths outside the folder (with a warning), skips files
already processed for any night (registry: path + sha256, shared with the nightly DAG) and groups
the rest by night (run date from the path, e.g. `encounters_CLN01_2026-11-27.csv`, else the
day after the latest `date_of_service`); **process** (mapped, one per night) runs the whole
pipeline for the night and registers its files. At `THERAPY_CLAIMS_RECONCILE_CRON` the DAG
also reconciles: it lists the folder and processes whatever was missed. A late file reruns its
night with the files the night was published with; a night more than
`THERAPY_CLAIMS_REOPEN_DAYS` (default 7) days before the newest published night needs the
param `reopen`.

Files are told apart by content, not by name: extracts go to **plan**; the payer's 999,
277CA and 835 files to **acks** (after the nights, whatever became of them), which records
those not applied before in `<THERAPY_CLAIMS_OUT>/responses/` as `therapy-claims acks` does,
under the output's lock; an 837 or anything else is ignored with a log line naming the file.

**When it fails**
- `acks` failing with "response file(s) rejected": the run is recorded (`files.parquet` names
  the file and why) and the task is not retried; ask the clearinghouse to send the file again
  and move the bad one out of the landing zone (the reconcile would reject it again).
  "still locked after waiting": a night held the output; clear `acks` once it is done.
- Nothing is registered until a night's manifest is written: fix the cause, then clear the
  failed task or trigger this DAG by hand (a run without events reconciles the folder).
- `plan` failing with "no run date": rename the file with its night's date.
- `plan` failing with "cannot take the new file(s)": files the night was published with are
  gone or changed; put them back unchanged, or run the night by hand with all its files.
- `plan` failing with "refusing to reopen": trigger with `reopen` true if the file really
  belongs to that old night, else move it out of the folder.
- Alerts go to the `therapy_claims_alerts` connection through the providers' notifiers (SMTP;
  a webhook with `THERAPY_CLAIMS_ALERT_VIA=http`) on failure, and when a run is not done
  `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after it was queued.
- A task failing with "Timeout": it ran past its `execution_timeout` (`process`: 180 min,
  `THERAPY_CLAIMS_TIMEOUT_PROCESS_MINUTES`); it is retried.

**Assets**: each `process` that commits a night updates one Asset per published layer,
`therapy_claims.<layer>` (`<THERAPY_CLAIMS_OUT>/<layer>`), its extra naming the night
(`run_date`, `manifest`), as the nightly DAG's `manifest` does.
"""

LANDING = s.LANDING or os.path.join(os.environ.get("AIRFLOW_HOME", "."), "landing")

if not LANDING.startswith("s3://"):
    folder = Asset(
        name="therapy_claims_landing_folder",
        uri="file://" + os.path.abspath(LANDING),
        watchers=[
            AssetWatcher(
                name="therapy_claims_landing_watcher",
                trigger=LandingFolderTrigger(
                    folder=os.path.abspath(LANDING), poll_interval=s.WATCH_POLL_SECONDS
                ),
            )
        ],
    )

    s.event_dag(
        dag_id="therapy_claims_landing_events",
        asset=folder,
        landing=LANDING,
        tags=["claims", "events", "local"],
        doc_md=DOC_MD,
    )
