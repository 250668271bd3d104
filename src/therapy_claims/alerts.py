"""Alerts: a failed task or a missed "claims published by" deadline goes to whoever is on call,
through the providers' notifiers and one Airflow connection (``THERAPY_CLAIMS_ALERT_CONN_ID``,
default ``therapy_claims_alerts``). ``THERAPY_CLAIMS_ALERT_VIA`` says which kind it is, as the
DAG files are parsed (a notifier is chosen then, without reading the connection at parse time):

- ``smtp`` (default): ``SmtpNotifier`` (apache-airflow-providers-smtp) on an SMTP connection
  (host, port, login, password; extras ``from_email`` and ``disable_tls``/``disable_ssl`` as
  the provider reads them). Recipients: ``THERAPY_CLAIMS_ALERT_TO`` (comma-separated), else
  the connection's extra ``to``.
- ``http``: ``HttpNotifier`` (apache-airflow-providers-http) on an HTTP connection whose host
  is the webhook URL (``https://hooks.example/...``) or host + schema + port; the alert is
  POSTed as JSON ``{"text": ..., "subject": ..., "dag_id": ..., ...}`` (Slack and Teams
  incoming webhooks read ``text``).

Both log the alert first. With no such connection the alert is only logged (a warning), never
an error of its own: a task's failure must not be hidden behind its notifier's.
The deadline alert (``deadline_missed``, run in the triggerer) uses the same notifier,
asynchronously.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("therapy_claims")

DEFAULT_CONN_ID = "therapy_claims_alerts"
VIA = ("smtp", "http")

# templated by the notifier (Jinja, the task's context) when a task fails
SUBJECT = "[therapy-claims] {{ ti.dag_id }}.{{ ti.task_id }} failed"
TEXT = (
    "{{ ti.dag_id }}.{{ ti.task_id }} failed in run {{ run_id }} (try {{ ti.try_number }}): "
    "{{ exception }}. See the DAG's documentation ('When it fails') for what to do. "
    "Log: {{ ti.log_url }}"
)
FACTS = {
    "dag_id": "{{ ti.dag_id }}",
    "run_id": "{{ run_id }}",
    "task_id": "{{ ti.task_id }}",
    "try_number": "{{ ti.try_number }}",
    "error": "{{ exception }}",
    "log_url": "{{ ti.log_url }}",
}


def conn_id() -> str:
    return os.environ.get("THERAPY_CLAIMS_ALERT_CONN_ID", DEFAULT_CONN_ID)


def via() -> str:
    kind = os.environ.get("THERAPY_CLAIMS_ALERT_VIA", "smtp").strip().lower()
    if kind not in VIA:
        raise ValueError(f"THERAPY_CLAIMS_ALERT_VIA={kind!r}: one of {', '.join(VIA)}")
    return kind


def recipients() -> list[str]:
    return [
        a.strip() for a in os.environ.get("THERAPY_CLAIMS_ALERT_TO", "").split(",") if a.strip()
    ]


def failure_notifier(kind: str | None = None, conn: str | None = None):
    """The ``on_failure_callback`` of every task: a provider notifier for the alert connection."""
    kind, conn = kind or via(), conn or conn_id()
    if kind == "smtp":
        return SmtpAlert(
            smtp_conn_id=conn, to=recipients() or None, subject=SUBJECT, html_content=TEXT
        )
    return WebhookAlert(
        http_conn_id=conn, json={"text": f"{SUBJECT}\n{TEXT}", "subject": SUBJECT, **FACTS}
    )


def _missing(conn: str) -> bool:
    """True (and a warning) when the alert connection is not defined."""
    try:
        from airflow.sdk import Connection

        Connection.get(conn)
        return False
    except Exception as exc:  # AirflowNotFoundException, or no Airflow at all
        log.warning(
            "alert connection %r is not available (%s): the alert is only logged", conn, exc
        )
        return True


try:  # Airflow and its providers are there in the DAGs; the package itself does not need them
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
except ImportError:  # pragma: no cover
    HttpNotifier = SmtpNotifier = object  # type: ignore[misc,assignment]


class SmtpAlert(SmtpNotifier):
    """``SmtpNotifier`` that logs the alert first, takes the recipients from the connection's
    extra ``to`` when none are configured, and only logs when the connection is missing."""

    def notify(self, context) -> None:
        log.warning("ALERT %s: %s", self.subject, self.html_content)
        if _missing(self.smtp_conn_id):
            return
        self._recipients()
        super().notify(context)

    async def async_notify(self, context) -> None:
        log.warning("ALERT %s: %s", self.subject, self.html_content)
        if _missing(self.smtp_conn_id):
            return
        self._recipients()
        await super().async_notify(context)

    def _recipients(self) -> None:
        if not self.to:
            extra = self.hook.get_connection(self.smtp_conn_id).extra_dejson or {}
            self.to = extra.get("to") or ""
        if not self.to:
            raise ValueError(
                f"no alert recipients: set THERAPY_CLAIMS_ALERT_TO or the extra 'to' of the "
                f"connection {self.smtp_conn_id!r}"
            )


class WebhookAlert(HttpNotifier):
    """``HttpNotifier`` (JSON POST) that logs the alert first and only logs when the
    connection is missing."""

    def notify(self, context) -> None:
        log.warning("ALERT %s", (self.json or {}).get("text"))
        if not _missing(self.http_conn_id):
            super().notify(context)

    async def async_notify(self, context) -> None:
        log.warning("ALERT %s", (self.json or {}).get("text"))
        if not _missing(self.http_conn_id):
            await super().async_notify(context)


def deadline_notifier(subject: str, text: str, facts: dict[str, Any]):
    """The alert connection's notifier with a fixed message (nothing to template)."""
    if via() == "smtp":
        return SmtpAlert(
            smtp_conn_id=conn_id(), to=recipients() or None, subject=subject, html_content=text
        )
    return WebhookAlert(
        http_conn_id=conn_id(), json={"text": f"{subject}\n{text}", "subject": subject, **facts}
    )


async def deadline_missed(context: dict | None = None, **kwargs) -> None:
    """Deadline Alert callback (runs in the triggerer): the night's claims are not published
    by the promised time."""
    dag_run = (context or {}).get("dag_run") or {}
    run_id = dag_run.get("run_id") if isinstance(dag_run, dict) else getattr(dag_run, "run_id", "")
    dag_id = kwargs.get("dag_id") or (
        dag_run.get("dag_id") if isinstance(dag_run, dict) else getattr(dag_run, "dag_id", "")
    )
    notifier = deadline_notifier(
        f"[therapy-claims] claims not published in time ({dag_id})",
        f"Run {run_id} of {dag_id} has not published the night's claims by its deadline "
        f"({kwargs.get('promise', '')}). Check the run in the Airflow UI.",
        {"dag_id": dag_id, "run_id": run_id},
    )
    await notifier.async_notify(context or {})


def deadline_hours() -> float:
    return float(os.environ.get("THERAPY_CLAIMS_PUBLISH_DEADLINE_HOURS", "4"))
