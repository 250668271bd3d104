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


def _failure_context():
    """A failed task's context, as Airflow hands it to on_failure_callback."""
    ti = SimpleNamespace(
        dag_id="therapy_claims_nightly", task_id="score", try_number=3, log_url="http://af/log"
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": "r1",
        "dag_run": SimpleNamespace(run_id="r1", dag_id="therapy_claims_nightly"),
        "exception": ValueError("bad ref"),
    }


def test_failure_notifier_posts_to_the_webhook_connection(webhook, monkeypatch):
    """THERAPY_CLAIMS_ALERT_VIA=http: the http provider's HttpNotifier, its JSON templated
    from the failed task's context."""
    from airflow.providers.http.notifications.http import HttpNotifier

    from therapy_claims import alerts

    url, got = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_THERAPY_CLAIMS_ALERTS", json.dumps({"conn_type": "http", "host": url})
    )
    monkeypatch.setenv("THERAPY_CLAIMS_ALERT_VIA", "http")
    notifier = alerts.failure_notifier()
    assert isinstance(notifier, HttpNotifier)
    notifier(_failure_context())  # as Airflow calls it: templates rendered, then notify
    assert len(got) == 1 and got[0]["dag_id"] == "therapy_claims_nightly"
    assert got[0]["subject"] == "[therapy-claims] therapy_claims_nightly.score failed"
    assert "bad ref" in got[0]["text"] and got[0]["run_id"] == "r1"
    assert got[0]["try_number"] == "3" and got[0]["log_url"] == "http://af/log"
    # the deadline callback (async, in the triggerer) goes the same way
    asyncio.run(alerts.deadline_missed({"dag_run": {"run_id": "r2", "dag_id": "d"}}, promise="4 h"))
    assert "not published in time" in got[1]["subject"] and got[1]["run_id"] == "r2"
    assert "4 h" in got[1]["text"]


@pytest.fixture
def smtp_server():
    """A plain SMTP server on loopback that keeps what it is sent: (envelope to, message)."""
    import email
    import socketserver

    got: list = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            rcpt: list[str] = []
            self.wfile.write(b"220 test ESMTP\r\n")
            while line := self.rfile.readline():
                cmd = line.decode().strip()
                verb = cmd.split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.wfile.write(b"250 test\r\n")
                elif verb == "RCPT":
                    rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                    self.wfile.write(b"250 ok\r\n")
                elif verb == "DATA":
                    self.wfile.write(b"354 go\r\n")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        data += self.rfile.readline()
                    got.append((rcpt, email.message_from_bytes(data[:-5])))
                    self.wfile.write(b"250 ok\r\n")
                elif verb == "QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:  # MAIL, NOOP, RSET
                    self.wfile.write(b"250 ok\r\n")

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], got
    srv.shutdown()
    srv.server_close()


def test_smtp_connection_sends_a_mail_through_the_smtp_providers_notifier(smtp_server, monkeypatch):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from therapy_claims import alerts

    port, got = smtp_server
    monkeypatch.delenv("THERAPY_CLAIMS_ALERT_VIA", raising=False)  # smtp is the default
    monkeypatch.delenv("THERAPY_CLAIMS_ALERT_TO", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_THERAPY_CLAIMS_ALERTS",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "from_email": "tc@example.org",
                    "to": "oncall@example.org",
                    "disable_tls": True,
                    "disable_ssl": True,
                },
            }
        ),
    )
    notifier = alerts.failure_notifier()
    assert isinstance(notifier, SmtpNotifier)
    notifier(_failure_context())
    (rcpt, msg) = got[0]
    assert rcpt == ["oncall@example.org"]  # the connection's extra "to"
    assert msg["From"] == "tc@example.org"
    assert msg["Subject"] == "[therapy-claims] therapy_claims_nightly.score failed"
    body = "".join(p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart())
    assert "bad ref" in body and "run r1" in body
    # THERAPY_CLAIMS_ALERT_TO wins over the connection's extra
    monkeypatch.setenv("THERAPY_CLAIMS_ALERT_TO", "a@example.org, b@example.org")
    alerts.failure_notifier()(_failure_context())
    assert got[1][0] == ["a@example.org", "b@example.org"]


def test_no_connection_only_logs(monkeypatch, caplog):
    from therapy_claims import alerts

    monkeypatch.delenv("AIRFLOW_CONN_NOPE_NOT_DEFINED", raising=False)
    for kind in alerts.VIA:
        alerts.failure_notifier(kind, "nope_not_defined")(_failure_context())
    assert (
        sum(
            "ALERT [therapy-claims] therapy_claims_nightly.score failed" in r.message
            for r in caplog.records
        )
        == 2
    )
    assert any("only logged" in r.message for r in caplog.records)


def test_unknown_alert_kind_is_refused(monkeypatch):
    from therapy_claims import alerts

    monkeypatch.setenv("THERAPY_CLAIMS_ALERT_VIA", "pigeon")
    with pytest.raises(ValueError, match="pigeon"):
        alerts.failure_notifier()
