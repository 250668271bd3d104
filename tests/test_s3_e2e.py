"""End to end, on loopback only: moto's server with a bucket, an SQS queue and the bucket's
ObjectCreated notification to it; a real Airflow (``airflow standalone``: scheduler,
dag-processor, triggerer, api-server; SQLite, LocalExecutor). A file put into S3 -> SQS ->
the AssetWatcher's MessageQueueTrigger -> a run of therapy_claims_s3_events -> claim files and
the manifest in S3. Bounded: the whole test gives up after ``DEADLINE`` seconds."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from factories import row, to_csv
from s3_server import free_port

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "therapy_claims_s3_events"
DEADLINE = 240  # seconds for the whole chain, start-up included
RD = "2026-11-27"


def _wait(what: str, check, until: float, every: float = 1.0, log: Path | None = None):
    while time.monotonic() < until:
        if log is not None and "Exception in thread" in log.read_text(errors="replace"):
            raise AssertionError(f"an Airflow component died while waiting for {what}")
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def airflow_stack(moto_server, bucket, tmp_path):
    sqs = boto3.client("sqs")
    s3 = boto3.client("s3")
    queue_url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"}]}},
                }
            ]
        },
    )
    home = tmp_path / "airflow"
    home.mkdir()
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "THERAPY_CLAIMS"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__TRIGGERER__TRIGGERER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"region_name": "us-east-1", "endpoint_url": moto_server},
                }
            ),
            "THERAPY_CLAIMS_SQS_QUEUE": queue_url,
            "THERAPY_CLAIMS_SQS_WAITER_DELAY": "2",
            # no reconcile run on unpause (its latest tick, Feb 29 2024, is before start_date):
            # the only run is the one the S3 event starts
            "THERAPY_CLAIMS_RECONCILE_CRON": "0 0 29 2 *",
            "THERAPY_CLAIMS_LANDING": f"s3://{bucket}/landing",
            "THERAPY_CLAIMS_OUT": f"s3://{bucket}/out",
            # an s3:// output names its ledger database (SQLite on this disk, for the test)
            "THERAPY_CLAIMS_LEDGER": str(tmp_path / "ledger.sqlite"),
            "GX_ANALYTICS_ENABLED": "false",
            # standalone starts its components as `airflow ...` from PATH
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    log = open(tmp_path / "standalone.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [airflow, "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        yield {"env": env, "home": home, "airflow": airflow, "log": tmp_path / "standalone.log"}
    finally:
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        log.close()


def _db(home: Path, sql: str, *args):
    try:
        con = sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None


def test_file_put_into_s3_is_processed_by_an_event_driven_run(airflow_stack, bucket):
    t0 = time.monotonic()
    until = t0 + DEADLINE
    st = airflow_stack
    try:
        _wait(
            f"{DAG_ID} to be parsed",
            lambda: _db(st["home"], "select dag_id from dag where dag_id = ?", DAG_ID),
            until,
            every=2,
            log=st["log"],
        )
        subprocess.run(
            [st["airflow"], "dags", "unpause", DAG_ID],
            env=st["env"],
            check=True,
            capture_output=True,
            timeout=max(5, until - time.monotonic()),
        )
        # the watcher's trigger is up once the triggerer holds it
        _wait(
            "the SQS watcher in the triggerer",
            lambda: _db(st["home"], "select id from trigger where triggerer_id is not null"),
            until,
        )
        started = time.monotonic()
        key = f"landing/run_date={RD}/clinic 1.csv"  # arrives URL-encoded: clinic+1.csv
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=to_csv([row()]).encode())
        manifest = f"out/manifest/run_date={RD}.json"

        def published():
            try:
                return boto3.client("s3").get_object(Bucket=bucket, Key=manifest)["Body"].read()
            except Exception:
                return None

        m = json.loads(_wait("the manifest in S3", published, until, every=2, log=st["log"]))
        took = time.monotonic() - started
    except AssertionError:
        print(Path(st["log"]).read_text()[-6000:])
        raise
    assert m["balanced"] and m["lines_billed"] == 1
    assert [i["path"] for i in m["inputs"]] == [f"s3://{bucket}/{key}"]
    claims = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"out/claims/run_date={RD}/")
    names = [o["Key"].rsplit("/", 1)[-1] for o in claims.get("Contents", [])]
    assert names and all(n.endswith(".x12") for n in names)

    # the task writes the manifest, then the registry entry, then the scheduler marks the run
    # done: wait for each in turn (same deadline) rather than race them
    def registered():
        reg = boto3.client("s3").list_objects_v2(
            Bucket=bucket, Prefix=f"out/.registry/run_date={RD}/"
        )
        return reg["KeyCount"] or None

    assert _wait("the registry entry", registered, until, every=1, log=st["log"]) == 1  # once

    def run_states():
        rows = _db(st["home"], "select run_type, state from dag_run where dag_id = ?", DAG_ID)
        return (
            {tuple(r) for r in rows}
            if ("asset_triggered", "running") not in {tuple(r) for r in rows}
            else None
        )

    runs = _wait("the event-driven run to finish", run_states, until, every=1, log=st["log"])
    assert ("asset_triggered", "success") in runs, runs
    print(f"put -> manifest in S3: {took:.1f}s; whole test {time.monotonic() - t0:.1f}s")
