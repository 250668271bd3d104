"""DAG policy and a real run with dag.test()."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from factories import row, write_csv

REPO = Path(__file__).resolve().parents[1]


EVENT_DAGS = ("therapy_claims_s3_events", "therapy_claims_landing_events")
RESPONSES_DAG = "therapy_claims_responses"
DATA = REPO / "tests" / "data" / "responses"


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    """The output root the DAGs are configured with (THERAPY_CLAIMS_OUT): their layer Assets'."""
    return tmp_path_factory.mktemp("dag_out") / "out"


@pytest.fixture(scope="module")
def dagbag(airflow_db, tmp_path_factory, out_root):
    """Every DAG, the SQS one and the responses one included (each is defined only when its
    queue or folder is configured)."""
    from airflow.dag_processing.dagbag import DagBag

    from therapy_claims import dag_settings

    env = {
        "THERAPY_CLAIMS_SQS_QUEUE": "http://127.0.0.1:1/123456789012/landing",
        "THERAPY_CLAIMS_LANDING": str(tmp_path_factory.mktemp("landing")),
        "THERAPY_CLAIMS_OUT": str(out_root),
        "THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS": "4",
        "THERAPY_CLAIMS_RESPONSES_LANDING": str(tmp_path_factory.mktemp("responses")),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("THERAPY_CLAIMS_ALERT_VIA", raising=False)
        importlib.reload(dag_settings)  # its settings are read from the environment on import
        yield DagBag(dag_folder=str(REPO / "dags"))
    importlib.reload(dag_settings)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"therapy_claims_nightly", *EVENT_DAGS, RESPONSES_DAG} <= set(dagbag.dags)


def test_dag_policy(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1
        assert dag.deadline, dag_id  # "not published by" alert
        for t in dag.tasks:
            assert t.retries >= 1, t.task_id
            assert t.on_failure_callback, t.task_id  # failure notifier
            # a hung task fails (and alerts, and retries) instead of holding the night
            assert t.execution_timeout is not None, (dag_id, t.task_id)
            assert timedelta(0) < t.execution_timeout <= timedelta(hours=4), (dag_id, t.task_id)


def test_alerts_use_the_smtp_providers_notifier_on_the_alert_connection(dagbag):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    for dag_id, dag in dagbag.dags.items():
        for t in dag.tasks:
            (notifier,) = t.on_failure_callback
            assert isinstance(notifier, SmtpNotifier), (dag_id, t.task_id, notifier)
            assert notifier.smtp_conn_id == "therapy_claims_alerts"
            assert "{{ ti.task_id }}" in notifier.subject


def test_task_timeouts_come_from_dag_settings_and_the_environment(dagbag, monkeypatch):
    from therapy_claims import dag_settings

    nightly = dagbag.get_dag("therapy_claims_nightly")
    assert nightly.get_task("score").execution_timeout == timedelta(minutes=60)
    assert nightly.get_task("partitions").execution_timeout == timedelta(minutes=15)
    assert dagbag.get_dag("therapy_claims_landing_events").get_task(
        "process"
    ).execution_timeout == timedelta(minutes=180)
    monkeypatch.setenv("THERAPY_CLAIMS_TIMEOUT_SCORE_MINUTES", "7.5")
    monkeypatch.setenv("THERAPY_CLAIMS_TIMEOUT_MINUTES", "20")
    assert dag_settings.timeout("score") == timedelta(minutes=7.5)
    assert dag_settings.timeout("publish") == timedelta(minutes=20)
    assert dag_settings.timeout("manifest") == timedelta(minutes=15)  # its own setting
    monkeypatch.setenv("THERAPY_CLAIMS_TIMEOUT_SCORE_MINUTES", "0")
    with pytest.raises(ValueError, match="score"):
        dag_settings.timeout("score")


LAYERS = ("raw", "scored", "exceptions", "claims", "ledger", "validation", "reports", "worklist")


def test_the_committing_task_updates_one_asset_per_layer(dagbag, out_root):
    """The task that writes the night's manifest (nightly: manifest; event DAGs: process)
    declares the layers as outlets, with URIs under the output root; no other task does."""
    committing = {
        "therapy_claims_nightly": "manifest",
        "therapy_claims_s3_events": "process",
        "therapy_claims_landing_events": "process",
    }
    for dag_id, task_id in committing.items():
        dag = dagbag.get_dag(dag_id)
        outlets = dag.get_task(task_id).outlets
        assert {a.uri for a in outlets} == {(out_root / k).resolve().as_uri() for k in LAYERS}
        assert {a.name for a in outlets} == {f"therapy_claims.{k}" for k in LAYERS}
        assert [t.task_id for t in dag.tasks if t.outlets] == [task_id], dag_id


def test_layer_asset_uris_on_s3_and_without_an_output_root():
    from therapy_claims import dag_settings

    assets = dag_settings.layer_assets("s3://claims-bucket/nightly/")
    assert [a.uri for a in assets] == [f"s3://claims-bucket/nightly/{k}" for k in LAYERS]
    assert dag_settings.layer_assets("") == []


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
        # the response files among the landed ones, after the nights, whatever became of them
        acks = dag.get_task("acks")
        assert acks.upstream_task_ids == {"process"} and acks.trigger_rule == "all_done"
        assert acks.execution_timeout == timedelta(minutes=30)
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


def _asset_events(dag_id: str) -> list[tuple[str, dict]]:
    """(asset uri, extra) of every asset event a run of ``dag_id`` emitted, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_dag_id == dag_id)
            .order_by(AssetEvent.id)
            .all()
        )
    return [(uri, dict(extra or {})) for uri, extra in rows]


def test_dag_test_run(dagbag, airflow_db, tmp_path, out_root):
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
    out = out_root  # the output root the layer Assets are under
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
    # the committed night updated every layer Asset, naming the night and its manifest
    events = dict(_asset_events("therapy_claims_nightly"))
    assert set(events) == {(out / k).resolve().as_uri() for k in LAYERS}
    assert {e["run_date"] for e in events.values()} == {"2026-11-27"}
    assert {e["manifest"] for e in events.values()} == {
        str(out / "manifest" / "run_date=2026-11-27.json")
    }

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
    # two committed nights, two events per layer: a skipped night updates no Asset
    assert len(_asset_events("therapy_claims_nightly")) == 2 * len(LAYERS)


def test_responses_dag_shape_and_settings(dagbag, monkeypatch):
    from therapy_claims import dag_settings

    dag = dagbag.get_dag(RESPONSES_DAG)
    assert [t.task_id for t in dag.tasks] == ["acks"]
    assert dag.timetable.expression == "0 6 * * *"  # THERAPY_CLAIMS_RESPONSES_CRON default
    assert dag.params["input"] == dag_settings.RESPONSES_LANDING != ""
    assert {"input", "out", "received_on"} == set(dag.params.keys())
    assert dag.get_task("acks").execution_timeout == timedelta(minutes=30)
    # the lock wait fails before the task's timeout would
    assert dag_settings.ACKS_LOCK_WAIT_MINUTES * 60 < dag.get_task("acks").execution_timeout.seconds
    # defined only when its folder is configured
    monkeypatch.delenv("THERAPY_CLAIMS_RESPONSES_LANDING")
    importlib.reload(dag_settings)
    try:
        from airflow.dag_processing.dagbag import DagBag

        bare = DagBag(dag_folder=str(REPO / "dags" / "therapy_claims_responses.py"))
        assert bare.import_errors == {} and RESPONSES_DAG not in bare.dags
    finally:
        monkeypatch.undo()
        importlib.reload(dag_settings)


def test_responses_dag_test_run(dagbag, airflow_db, tmp_path):
    """Two runs: the folder's files recorded under the run's logical date; then a corrupted
    file fails the task, once its run is written (the rejected file and the duplicates)."""
    import shutil

    from therapy_claims import acks, storage

    folder = tmp_path / "responses"
    folder.mkdir()
    for name in ("999_accepted.x12", "277ca_accepted.x12", "835_paid.x12"):
        shutil.copy(DATA / name, folder / name)
    out = tmp_path / "out"
    dag = dagbag.get_dag(RESPONSES_DAG)
    dag.deadline = None  # dag.test() in Airflow 3.3.2 cannot handle deadline alerts (by id)
    conf = {"input": str(folder), "out": str(out), "received_on": "2026-12-02"}
    dr, states = _dag_test(dag, **conf)
    assert dr.state == "success", states
    ((day, run_id, first),) = acks.committed_runs(str(out))
    assert day.isoformat() == "2026-12-02" and run_id == acks.safe_run_id(dr.run_id)
    files = storage.read_table(storage.join(first, "files.parquet")).to_pylist()
    assert sorted((Path(f["path"]).name, f["status"]) for f in files) == [
        ("277ca_accepted.x12", "applied"),
        ("835_paid.x12", "applied"),
        ("999_accepted.x12", "applied"),
    ]
    assert not (out / ".lock" / "run.json").exists()  # let go

    text = (DATA / "835_partial.x12").read_text()
    (folder / "cut.x12").write_text(text[: len(text) // 2])  # no SE/GE/IEA: pyx12 refuses it
    dr, states = _dag_test(dag, **conf)
    assert states == {"acks": "failed"} and dr.state == "failed"
    runs = acks.committed_runs(str(out))
    assert len(runs) == 2  # written before the task failed; no retry wrote a third
    files = storage.read_table(storage.join(runs[-1][2], "files.parquet")).to_pylist()
    assert {Path(f["path"]).name: f["status"] for f in files} == {
        "277ca_accepted.x12": "duplicate",
        "835_paid.x12": "duplicate",
        "999_accepted.x12": "duplicate",
        "cut.x12": "rejected",
    }
