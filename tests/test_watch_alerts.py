"""The local landing-folder trigger (plugins/) and the alerts (webhook, SMTP, deadline)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest


def test_landing_trigger_fires_once_per_new_or_changed_file(tmp_path):
    import airflow  # noqa: F401  (puts plugins/ on sys.path, as in every Airflow process)
    from landing_watcher import STATE, LandingFolderTrigger

    (tmp_path / "a.csv").write_text("x")
    (tmp_path / ".hidden.csv").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    trig = LandingFolderTrigger(folder=str(tmp_path), poll_interval=0.05)
    assert trig.serialize() == (
        "landing_watcher.LandingFolderTrigger",
        {"folder": str(tmp_path), "poll_interval": 0.05},
    )

    async def first_event():
        gen = LandingFolderTrigger(**trig.serialize()[1]).run()
        return await asyncio.wait_for(gen.__anext__(), timeout=10)

    ev = asyncio.run(first_event())
    assert ev.payload == {"status": "success", "paths": [str(tmp_path / "a.csv")]}
    assert (tmp_path / STATE).exists()
    # a restarted trigger does not announce a.csv again, only the new and the changed file
    (tmp_path / "b.jsonl").write_text("{}")
    (tmp_path / "a.csv").write_text("changed")
    ev = asyncio.run(first_event())
    assert ev.payload["paths"] == [str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl")]


@pytest.fixture
def webhook():
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/hook", got
    srv.shutdown()
    srv.server_close()


def test_failure_notifier_posts_to_the_webhook_connection(webhook, monkeypatch):
    from therapy_claims import alerts

    url, got = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_THERAPY_CLAIMS_ALERTS", json.dumps({"conn_type": "http", "host": url})
    )
    ti = SimpleNamespace(
        dag_id="therapy_claims_nightly", task_id="score", try_number=3, log_url="u"
    )
    ctx = {"ti": ti, "dag_run": SimpleNamespace(run_id="r1"), "exception": ValueError("bad ref")}
    alerts.FailureNotifier().notify(ctx)
    assert len(got) == 1 and got[0]["dag_id"] == "therapy_claims_nightly"
    assert "score failed" in got[0]["subject"] and "bad ref" in got[0]["text"]
    # the deadline callback (async, in the triggerer) goes the same way
    asyncio.run(alerts.deadline_missed({"dag_run": {"run_id": "r2", "dag_id": "d"}}, promise="4 h"))
    assert "not published in time" in got[1]["subject"] and got[1]["run_id"] == "r2"


def test_smtp_connection_sends_a_mail(monkeypatch):
    from therapy_claims import alerts

    sent = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            sent.append((host, port))

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def starttls(self):
            sent.append("tls")

        def login(self, u, p):
            sent.append(("login", u))

        def send_message(self, msg):
            sent.append((msg["To"], msg["Subject"]))

    monkeypatch.setattr(alerts.smtplib, "SMTP", FakeSMTP)
    monkeypatch.setenv(
        "AIRFLOW_CONN_THERAPY_CLAIMS_ALERTS",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": 1025,
                "extra": {"from": "tc@example.org", "to": "oncall@example.org"},
            }
        ),
    )
    assert alerts.send("subject", "text") == "smtp"
    assert sent == [("127.0.0.1", 1025), ("oncall@example.org", "subject")]


def test_no_connection_only_logs(monkeypatch):
    from therapy_claims import alerts

    monkeypatch.delenv("AIRFLOW_CONN_THERAPY_CLAIMS_ALERTS", raising=False)
    assert alerts.send("s", "t", conn_id="nope_not_defined") == "logged"
