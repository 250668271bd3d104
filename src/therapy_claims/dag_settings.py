"""Settings the DAG files share, from the environment (so the DAG files stay thin)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path


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
# the folder (local or s3://) the payer's 999, 277CA and 835 files land in, for the responses
# DAG (defined only when it is set); the event DAGs take such files from their landing zone too
RESPONSES_LANDING = env("THERAPY_CLAIMS_RESPONSES_LANDING")
RESPONSES_CRON = env("THERAPY_CLAIMS_RESPONSES_CRON", "0 6 * * *")
# how long an acks task waits for the output's lock (a night holds it while it runs) before it
# fails naming the holder; shorter than the task's execution_timeout, so the wait is what fails
ACKS_LOCK_WAIT_MINUTES = float(env("THERAPY_CLAIMS_ACKS_LOCK_WAIT_MINUTES", "20"))


# Each task's execution_timeout, in minutes: generous next to a large night (docs/performance.md:
# about a minute for a million lines in one process), short enough that a hung task (an
# unreachable S3 endpoint, a lock wait) fails, alerts and retries long before the deadline.
# THERAPY_CLAIMS_TIMEOUT_MINUTES overrides the default, THERAPY_CLAIMS_TIMEOUT_<TASK>_MINUTES
# one task (e.g. THERAPY_CLAIMS_TIMEOUT_SCORE_MINUTES).
TIMEOUT_MINUTES = {
    "default": 60,
    "partitions": 15,  # lists the landing zone
    "plan": 15,
    "manifest": 15,
    "register": 15,
    "unlock": 10,
    "process": 180,  # an event DAG's whole night in one task
    "acks": 30,  # response files into the responses layer, the lock wait included
}

# the layers a night publishes (config.PUBLISHED_DIRS) and the worklist: each an Asset that the
# task committing the night updates, so downstream DAGs can be scheduled on them
LAYERS = ("raw", "scored", "exceptions", "claims", "ledger", "validation", "reports", "worklist")


def timeout(task_id: str) -> timedelta:
    """The ``execution_timeout`` of the task ``task_id`` (TIMEOUT_MINUTES, env overrides)."""
    key = task_id.upper()
    default = env("THERAPY_CLAIMS_TIMEOUT_MINUTES", str(TIMEOUT_MINUTES["default"]))
    minutes = env(
        f"THERAPY_CLAIMS_TIMEOUT_{key}_MINUTES", str(TIMEOUT_MINUTES.get(task_id, default))
    )
    value = float(minutes)
    if value <= 0:
        raise ValueError(f"execution timeout of {task_id} must be positive, not {minutes!r}")
    return timedelta(minutes=value)


def layer_uri(out: str, layer: str) -> str:
    """The Asset URI of ``layer`` under the output root ``out``: ``s3://bucket/prefix/<layer>``
    or ``file:///abs/path/<layer>``."""
    if out.startswith("s3://"):
        return out.rstrip("/") + "/" + layer
    return Path(out, layer).resolve().as_uri()


def layer_assets(out: str | None = None) -> list:
    """One Asset per published layer under the output root (default ``THERAPY_CLAIMS_OUT``),
    named ``therapy_claims.<layer>``; none when no output root is configured (an asset is a
    fixed URI, known when the DAG file is parsed)."""
    from airflow.sdk import Asset

    out = OUT if out is None else out
    if not out:
        return []
    return [
        Asset(name=f"therapy_claims.{layer}", uri=layer_uri(out, layer), group="therapy_claims")
        for layer in LAYERS
    ]


def describe_events(outlet_events, out: str, run_date: str) -> None:
    """Tell the layer Assets' events which night they announce: ``extra`` = the night, the
    output root and the night's manifest (read a night through its manifest, docs/outputs.md).
    Only for the assets of ``out``: a run given another output root updated none of them."""
    if not out or out.rstrip("/") != OUT.rstrip("/"):
        return
    manifest = out.rstrip("/") + f"/manifest/run_date={run_date}.json"
    for asset in layer_assets(out):
        outlet_events[asset].extra = {"run_date": run_date, "out": out, "manifest": manifest}


def default_args() -> dict:
    from therapy_claims.alerts import failure_notifier

    return {
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "owner": "rcm-ops",
        "on_failure_callback": [failure_notifier()],
        "execution_timeout": timeout("default"),
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
    ``RECONCILE_CRON`` without events. **plan** (the nights of the extracts the events or the
    landing zone hold, minus files already processed; event paths outside ``landing`` are
    ignored; files told apart by content) -> **process** (mapped, one per night) -> **acks**
    (the response files among them, whatever became of the nights). Shared by the S3/SQS and
    the local-folder DAG files, which differ only in their asset."""
    import pendulum
    from airflow.sdk import AssetOrTimeSchedule, Param, TriggerRule, dag, get_current_context, task
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
        @task(execution_timeout=timeout("plan"))
        def plan(*, triggering_asset_events=None) -> list:
            from therapy_claims import events

            p = get_current_context()["params"]
            return events.plan_run(
                triggering_asset_events, p["landing"], p["out"], reopen=bool(p.get("reopen"))
            )

        # the task that commits each night: it updates the layer Assets
        @task(
            max_active_tis_per_dag=4, execution_timeout=timeout("process"), outlets=layer_assets()
        )
        def process(night: dict) -> dict:
            from therapy_claims import events

            ctx = get_current_context()
            p = ctx["params"]
            done = events.process_night(
                night, p["out"], p["reference"], run_id=ctx["run_id"], phi_out=p.get("phi_out")
            )
            describe_events(ctx["outlet_events"], p["out"], done["run_date"])
            return done

        # after the nights (no wait for the lock a night of this run holds), run whatever
        # became of them: response files do not depend on extracts
        @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timeout("acks"))
        def acks(*, triggering_asset_events=None) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from therapy_claims import events

            ctx = get_current_context()
            p = ctx["params"]
            try:
                return events.apply_landed_responses(
                    triggering_asset_events,
                    p["landing"],
                    p["out"],
                    run_id=ctx["run_id"],
                    lock_wait=ACKS_LOCK_WAIT_MINUTES * 60,
                )
            except events.ResponsesRejected as exc:  # the same file would be rejected again
                raise AirflowFailException(str(exc)) from exc

        process.expand(night=plan()) >> acks()

    return event_night()
