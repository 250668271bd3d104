"""DAG policy and a real run with dag.test()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import row, write_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "therapy_claims_nightly" in dagbag.dags


def test_dag_policy(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1
        for t in dag.tasks:
            assert t.retries >= 1, t.task_id


def test_nightly_shape(dagbag):
    dag = dagbag.get_dag("therapy_claims_nightly")
    order = ["ingest", "validate", "score", "publish", "manifest"]
    for a, b in zip(order, order[1:], strict=False):
        assert b in dag.get_task(a).downstream_task_ids
    assert {"input", "out", "run_date", "reference"} <= set(dag.params.keys())


def test_dag_test_run(dagbag, airflow_db, tmp_path):
    inp = write_csv(
        tmp_path / "landing" / "a.csv",
        [row(), row(line_id="L2", payer_id="NOPE", encounter_id="E2")],
    )
    out = tmp_path / "out"
    dag = dagbag.get_dag("therapy_claims_nightly")
    dr = dag.test(run_conf={"input": str(inp.parent), "out": str(out), "run_date": "2026-11-27"})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", states
    m = json.loads((out / "manifest" / "run_date=2026-11-27.json").read_text())
    assert m["balanced"] and m["lines_billed"] == 1 and m["lines_held"] == 1
    assert list((out / "claims" / "run_date=2026-11-27").glob("*.x12"))
    assert (out / "validation" / "run_date=2026-11-27").exists()
