"""DAG policy and a real run with dag.test()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import row, write_csv

REPO = Path(__file__).resolve().parents[1]


EVENT_DAGS = ("therapy_claims_s3_events", "therapy_claims_landing_events")


@pytest.fixture(scope="module")
def dagbag(airflow_db, tmp_path_factory):
    """Every DAG, the SQS one included (it is defined only when a queue is configured)."""
    from airflow.dag_processing.dagbag import DagBag

    env = {
        "THERAPY_CLAIMS_SQS_QUEUE": "http://127.0.0.1:1/123456789012/landing",
        "THERAPY_CLAIMS_LANDING": str(tmp_path_factory.mktemp("landing")),
        "THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS": "4",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"therapy_claims_nightly", *EVENT_DAGS} <= set(dagbag.dags)


def test_dag_policy(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1
        assert dag.deadline, dag_id  # "not published by" alert
        for t in dag.tasks:
            assert t.retries >= 1, t.task_id
            assert t.on_failure_callback, t.task_id  # failure notifier


def test_event_dags_are_watched_and_reconcile_nightly(dagbag):
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetOrTimeSchedule
    from landing_watcher import LandingFolderTrigger

    kinds = {}
    for dag_id in EVENT_DAGS:
        dag = dagbag.get_dag(dag_id)
        assert (
            isinstance(dag.timetable, AssetOrTimeSchedule)
            or "Asset" in type(dag.timetable).__name__
        ), dag_id
        assert "process" in dag.get_task("plan").downstream_task_ids
        assert {"landing", "out", "reference", "reopen"} <= set(dag.params.keys())
        assert dag.params["reopen"] is False
        (asset,) = dag.timetable.asset_condition.objects
        kinds[dag_id] = type(asset.watchers[0].trigger)
    assert kinds["therapy_claims_s3_events"] is MessageQueueTrigger
    assert kinds["therapy_claims_landing_events"] is LandingFolderTrigger


def test_nightly_shape(dagbag):
    dag = dagbag.get_dag("therapy_claims_nightly")
    order = ["partitions", "ingest_partition", "ingest", "validate", "score", "publish", "manifest"]
    order.append("register")  # the night's inputs into the registry, once the manifest is there
    for a, b in zip(order, order[1:], strict=False):
        assert b in dag.get_task(a).downstream_task_ids
    assert {"input", "out", "run_date", "reference", "partition_by", "reopen"} <= set(
        dag.params.keys()
    )
    assert dag.params["reopen"] is False
    # nothing new in the landing zone: the first task skips every later one, whatever its
    # trigger rule (ingest runs when none failed)
    assert type(dag.get_task("partitions")).__name__ == "_ShortCircuitDecoratedOperator"
    assert dag.get_task("partitions").ignore_downstream_trigger_rules
    assert (
        dag.get_task("ingest_partition").is_mapped
        if hasattr(dag.get_task("ingest_partition"), "is_mapped")
        else True
    )


def _dag_test(dag, **conf):
    dr = dag.test(run_conf=conf)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_dag_test_run(dagbag, airflow_db, tmp_path):
    from therapy_claims import registry, storage

    inp = write_csv(
        tmp_path / "landing" / "a.csv",
        [
            row(),
            # a later visit (its own times: not L1's charge charted twice)
            row(
                line_id="L2",
                payer_id="NOPE",
                encounter_id="E2",
                start_time="10:00",
                end_time="10:30",
            ),
        ],
    )
    out = tmp_path / "out"
    dag = dagbag.get_dag("therapy_claims_nightly")
    dag.deadline = None  # dag.test() in Airflow 3.3.2 cannot handle deadline alerts (by id)
    conf = {"input": str(inp.parent), "out": str(out)}
    dr, states = _dag_test(dag, **conf, run_date="2026-11-27")
    assert dr.state == "success", states
    m = json.loads((out / "manifest" / "run_date=2026-11-27.json").read_text())
    assert m["balanced"] and m["lines_billed"] == 1 and m["lines_held"] == 1
    # the night is the DAG run's own folders, named by the manifest; the lock was let go
    assert m["run_id"] and m["outputs"]["claims"].endswith(f"run={m['run_id']}")
    assert list(Path(m["outputs"]["claims"]).glob("*.x12"))
    assert Path(m["outputs"]["validation"]).exists()
    assert not (out / ".lock" / "run.json").exists()
    assert states["register"] == "success"
    assert registry.night_files(str(out), "2026-11-27") == {str(inp): storage.sha256(inp)}

    # the next night: a.csv is still in the landing zone; only the new file is read
    new = write_csv(
        tmp_path / "landing" / "b.csv",
        [
            row(
                line_id="L3",
                encounter_id="E3",
                patient_id="P3",
                start_time="11:00",
                end_time="11:30",
            )
        ],
    )
    dr, states = _dag_test(dag, **conf, run_date="2026-11-28")
    assert dr.state == "success", states
    m = json.loads((out / "manifest" / "run_date=2026-11-28.json").read_text())
    assert [i["path"] for i in m["inputs"]] == [str(new)]
    assert (
        m["rows_in"] == 1
        and m["lines_billed"] == 1
        and "ALREADY_BILLED" not in m["exceptions_by_code"]
    )

    # nothing new: the run succeeds, skips every task after the first, publishes nothing
    dr, states = _dag_test(dag, **conf, run_date="2026-11-29")
    assert dr.state == "success", states
    assert states.pop("partitions") == "success"
    assert set(states.values()) == {"skipped"}, states
    assert not (out / "manifest" / "run_date=2026-11-29.json").exists()
