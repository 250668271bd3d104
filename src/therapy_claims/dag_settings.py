"""Settings the DAG files share, from the environment (so the DAG files stay thin)."""

from __future__ import annotations

import os
from datetime import timedelta


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


LANDING = env("THERAPY_CLAIMS_LANDING")
OUT = env("THERAPY_CLAIMS_OUT")
REFERENCE = env("THERAPY_CLAIMS_REFERENCE")
SQS_QUEUE = env("THERAPY_CLAIMS_SQS_QUEUE")
AWS_CONN_ID = env("THERAPY_CLAIMS_AWS_CONN_ID", "aws_default")
SQS_WAITER_DELAY = int(env("THERAPY_CLAIMS_SQS_WAITER_DELAY", "30"))
WATCH_POLL_SECONDS = float(env("THERAPY_CLAIMS_WATCH_POLL_SECONDS", "5"))
RECONCILE_CRON = env("THERAPY_CLAIMS_RECONCILE_CRON", "30 5 * * *")


def default_args() -> dict:
    from therapy_claims.alerts import FailureNotifier

    return {
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "owner": "rcm-ops",
        "on_failure_callback": [FailureNotifier()],
    }


def deadline(reference: str = "queued"):
    """A Deadline Alert: the run must be done within THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS of
    its logical date (scheduled nights) or of being queued (event runs). Off when the variable
    is unset (``airflow dags test``, i.e. ``make demo``, cannot run DAGs with deadlines in
    Airflow 3.3.2: DagRun.update_state looks the alerts up by id)."""
    if not os.environ.get("THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS"):
        return None
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    from therapy_claims import alerts

    hours = alerts.deadline_hours()
    ref = (
        DeadlineReference.DAGRUN_LOGICAL_DATE
        if reference == "logical"
        else DeadlineReference.DAGRUN_QUEUED_AT
    )
    return DeadlineAlert(
        reference=ref,
        interval=timedelta(hours=hours),
        callback=AsyncCallback(
            alerts.deadline_missed, kwargs={"promise": f"{hours:g} h after the {reference} time"}
        ),
    )
