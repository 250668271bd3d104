"""Alerts: a failed task or a missed "claims published by" deadline is sent to whoever is on
call, through one Airflow connection (``THERAPY_CLAIMS_ALERT_CONN_ID``, default
``therapy_claims_alerts``):

- an SMTP connection (conn_type ``smtp`` or ``email``): host, port, login, password; extras
  ``from``, ``to`` (comma-separated) and ``starttls`` (default true unless port 25 or 1025);
- a webhook (conn_type ``http``/``https``/``webhook``): the URL in ``host`` (or extra ``url``);
  the alert is POSTed as JSON ``{"text": ..., "subject": ..., "dag_id": ..., ...}`` (Slack and
  Teams incoming webhooks read ``text``).

No connection configured: the alert is only logged (a warning), never an error of its own.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from email.message import EmailMessage

try:  # Airflow is there in the DAGs; the package itself does not need it
    from airflow.sdk import BaseNotifier
except ImportError:  # pragma: no cover
    BaseNotifier = object  # type: ignore[misc,assignment]

log = logging.getLogger("therapy_claims")

DEFAULT_CONN_ID = "therapy_claims_alerts"


def _conn_id() -> str:
    return os.environ.get("THERAPY_CLAIMS_ALERT_CONN_ID", DEFAULT_CONN_ID)


def _get_connection(conn_id: str):
    try:
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception as exc:  # not defined (AirflowNotFoundException) or no Airflow at all
        log.warning("alert connection %r is not available (%s)", conn_id, exc)
        return None


def send(subject: str, text: str, facts: dict | None = None, conn_id: str | None = None) -> str:
    """Send one alert; returns how it went ("smtp", "webhook" or "logged")."""
    conn_id = conn_id or _conn_id()
    log.warning("ALERT %s: %s", subject, text)
    conn = _get_connection(conn_id)
    if conn is None:
        return "logged"
    extra = conn.extra_dejson or {}
    kind = (conn.conn_type or "").lower()
    if kind in ("smtp", "email"):
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = extra.get("from") or conn.login or "therapy-claims@localhost"
        msg["To"] = extra.get("to") or conn.login
        msg.set_content(text + "\n\n" + json.dumps(facts or {}, indent=2, default=str))
        port = int(conn.port or 25)
        with smtplib.SMTP(conn.host, port, timeout=30) as smtp:
            if str(extra.get("starttls", port not in (25, 1025))).lower() == "true":
                smtp.starttls()
            if conn.login and conn.password:
                smtp.login(conn.login, conn.password)
            smtp.send_message(msg)
        return "smtp"
    url = extra.get("url") or conn.host or ""
    if not url.startswith(("http://", "https://")):
        scheme = conn.schema if conn.schema in ("http", "https") else "https"
        url = f"{scheme}://{conn.host}{f':{conn.port}' if conn.port else ''}"
        url += extra.get("endpoint", "")
    body = json.dumps(
        {"text": f"{subject}\n{text}", "subject": subject, **(facts or {})}, default=str
    )
    req = urllib.request.Request(
        url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (configured URL)
        resp.read()
    return "webhook"


class FailureNotifier(BaseNotifier):
    """``on_failure_callback`` for the DAGs and their tasks: who failed, where, and what to do."""

    def __init__(self, conn_id: str | None = None):
        super().__init__()
        self.conn_id = conn_id

    def notify(self, context) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "?")
        task_id = getattr(ti, "task_id", None)
        facts = {
            "dag_id": dag_id,
            "run_id": getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
            "task_id": task_id,
            "try_number": getattr(ti, "try_number", None),
            "error": str(context.get("exception") or context.get("reason") or ""),
            "log_url": getattr(ti, "log_url", None),
        }
        where = f"{dag_id}.{task_id}" if task_id else dag_id
        send(
            f"[therapy-claims] {where} failed",
            f"{where} failed in run {facts['run_id']}: {facts['error']}. "
            "See the DAG's documentation ('When it fails') for what to do.",
            facts,
            self.conn_id,
        )


async def deadline_missed(context: dict | None = None, **kwargs) -> None:
    """Deadline Alert callback (runs in the triggerer): the night's claims are not published
    by the promised time."""
    import asyncio

    dag_run = (context or {}).get("dag_run") or {}
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else getattr(dag_run, "run_id", "")
    dag_id = kwargs.get("dag_id") or (
        dag_run.get("dag_id") if isinstance(dag_run, dict) else getattr(dag_run, "dag_id", "")
    )
    await asyncio.to_thread(
        send,
        f"[therapy-claims] claims not published in time ({dag_id})",
        f"Run {run_id} of {dag_id} has not published the night's claims by its deadline "
        f"({kwargs.get('promise', '')}). Check the run in the Airflow UI.",
        {"dag_id": dag_id, "run_id": run_id},
    )


def deadline_hours() -> float:
    return float(os.environ.get("THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS", "4"))
