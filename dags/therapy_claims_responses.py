"""The payer's 999, 277CA and 835 files into the responses layer, on a schedule: thin wiring
over ``therapy_claims.events.apply_responses`` (``acks.apply``). Defined only when
THERAPY_CLAIMS_RESPONSES_LANDING is set (the folder they land in)."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from therapy_claims import dag_settings as s

DOC_MD = """
### therapy_claims_responses

Records what came back for the claim files: **acks** runs `therapy-claims acks` over the
responses folder `THERAPY_CLAIMS_RESPONSES_LANDING` (param `input`, local or `s3://`) into
`<THERAPY_CLAIMS_OUT>/responses/received_on=D/run=R/` (docs/outputs.md "responses"), at
`THERAPY_CLAIMS_RESPONSES_CRON` (06:00 UTC). Each file is told apart by its content (999,
277CA, 835; an 837 or anything else is listed as skipped), validated whole and applied once:
a file an earlier run applied is listed as a duplicate, its rows not written again. `D` is the
run's logical date (param `received_on` to set another). Then it recomputes every sent claim's
status (`sent` ... `paid`, `denied`) in `<THERAPY_CLAIMS_OUT>/lifecycle/`, which the next
night's worklist and corrections read. The run takes the output's lock, the
one a night takes, so it never writes while a night publishes: it waits for it up to
`THERAPY_CLAIMS_ACKS_LOCK_WAIT_MINUTES` (20). Response files that land in the extracts'
landing zone are also recorded by the event DAGs' `acks` task as they land.

**When it fails**
- "response file(s) rejected": the run was written (`files.parquet` names each rejected file
  with its reason: places and codes) and the task fails without retries. Ask the
  clearinghouse to send the file again and move the bad one out of the folder; until then
  every run rejects it again. The other files of the run are recorded.
- "is still locked after waiting ... by run R": a night (or another acks run) held the output
  all that time. Clear the task once it is done; if R crashed and its host is gone,
  `therapy-claims unlock --out OUT` first.
- "does not exist" or another storage error: the folder or the output is wrong or
  unreachable (check the path, the `aws_default` connection); fix it and clear the task.
- Alerts go to the `therapy_claims_alerts` connection through the providers' notifiers (SMTP;
  a webhook with `THERAPY_CLAIMS_ALERT_VIA=http`) on failure, and when a run is not done
  `THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS` after its logical time.
- A task failing with "Timeout": it ran past its `execution_timeout` (30 min,
  `THERAPY_CLAIMS_TIMEOUT_ACKS_MINUTES`); it is retried.
"""

if s.RESPONSES_LANDING:

    @dag(
        dag_id="therapy_claims_responses",
        schedule=s.RESPONSES_CRON,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=DOC_MD,
        tags=["claims", "responses"],
        default_args=s.default_args(),
        deadline=s.deadline("logical"),
        params={
            "input": Param(s.RESPONSES_LANDING, type="string"),
            "out": Param(s.OUT, type="string"),
            "received_on": Param(
                "", type="string", description="YYYY-MM-DD; empty = the run's logical date"
            ),
        },
    )
    def therapy_claims_responses():
        @task(execution_timeout=s.timeout("acks"))
        def acks() -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from therapy_claims import events

            ctx = get_current_context()
            p = ctx["params"]
            when = ctx.get("logical_date") or ctx["dag_run"].run_after
            try:
                return events.apply_responses(
                    p["input"],
                    p["out"],
                    received_on=p["received_on"] or when.date(),
                    run_id=ctx["run_id"],
                    lock_wait=s.ACKS_LOCK_WAIT_MINUTES * 60,
                )
            except events.ResponsesRejected as exc:  # the same file would be rejected again
                raise AirflowFailException(str(exc)) from exc

        acks()

    therapy_claims_responses()
