"""Settings the DAG files share, from the environment (so the DAG files stay thin)."""

from __future__ import annotations

import os
from datetime import timedelta


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


LANDING = env("THERAPY_CLAIMS_LANDING")
OUT = env("THERAPY_CLAIMS_OUT")
REFERENCE = env("THERAPY_CLAIMS_REFERENCE")
PHI_OUT = env("THERAPY_CLAIMS_PHI_OUT")  # raw/ and claims/ apart from OUT (docs/outputs.md)
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


def event_dag(*, dag_id: str, asset, landing: str, tags: list[str], doc_md: str):
    """An event-driven nightly DAG: runs when ``asset``'s watcher fires, and reconciles at
    ``RECONCILE_CRON`` without events. **plan** (the nights the events or the landing zone
    hold, minus files already processed; event paths outside ``landing`` are ignored) ->
    **process** (mapped, one per night). Shared by the S3/SQS and the local-folder DAG files,
    which differ only in their asset."""
    import pendulum
    from airflow.sdk import AssetOrTimeSchedule, Param, dag, get_current_context, task
    from airflow.timetables.trigger import CronTriggerTimetable

    @dag(
        dag_id=dag_id,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(RECONCILE_CRON, timezone="UTC"), assets=[asset]
        ),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=doc_md,
        tags=tags,
        default_args=default_args(),
        deadline=deadline("queued"),
        params={
            "landing": Param(landing, type="string"),
            "out": Param(OUT, type="string"),
            "reference": Param(REFERENCE, type="string"),
            "phi_out": Param(
                PHI_OUT,
                type="string",
                description="root for raw/ and claims/ (PHI), apart from out; empty = under out",
            ),
            "reopen": Param(
                False, type="boolean", description="allow nights older than the reopen window"
            ),
        },
    )
    def event_night():
        @task
        def plan(*, triggering_asset_events=None) -> list:
            from therapy_claims import events

            p = get_current_context()["params"]
            return events.plan_run(
                triggering_asset_events, p["landing"], p["out"], reopen=bool(p.get("reopen"))
            )

        @task(max_active_tis_per_dag=4)
        def process(night: dict) -> dict:
            from therapy_claims import events

            ctx = get_current_context()
            p = ctx["params"]
            return events.process_night(
                night, p["out"], p["reference"], run_id=ctx["run_id"], phi_out=p.get("phi_out")
            )

        process.expand(night=plan())

    return event_night()
