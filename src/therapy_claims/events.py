"""Event-driven runs: which files an event names, which night each belongs to, and running
those nights once.

Production path: S3 ObjectCreated notifications -> SQS -> an Airflow ``AssetWatcher`` with
``MessageQueueTrigger(scheme="sqs")`` -> a DAG run whose ``triggering_asset_events`` carry the
SQS messages (``extra["payload"]["message_batch"][i]["Body"]``). Embedded default: a watcher on
a local landing folder (``plugins/landing_watcher.py``) whose events carry ``{"paths": [...]}``.

**Run date.** Asset-triggered runs have no logical date. A file's run date is taken from its
path: a ``run_date=YYYY-MM-DD`` folder, else the last ``YYYY-MM-DD`` or ``YYYYMMDD`` in the path
(e.g. ``encounters_CLN01_2026-11-27.csv``); a file whose path names no date gets the day after
its latest ``date_of_service`` (extracts are dropped the night after the visits).

**Once only.** A file already in the registry (same path, same sha256) is skipped; a night
with new files is run over the new files *and* the files it was last published with (still
there, unchanged), so a clinic's late extract adds to the night instead of replacing it.
SQS messages are deleted on receipt, so a failed run loses no file: nothing is registered
until the night's manifest is written, and the nightly reconcile (``reconcile``) lists the
landing zone and runs whatever the events missed.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from datetime import date, timedelta

from therapy_claims import extract, pipeline, registry, storage

log = logging.getLogger("therapy_claims")

_RUN_DATE = re.compile(r"run_date=(\d{4}-\d{2}-\d{2})")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")


# --------------------------------------------------------------------------- event payloads


def _records(body) -> list[dict]:
    """S3 notification records in one SQS message body (also when wrapped by SNS)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            log.warning("ignoring an SQS message that is not JSON: %r", body[:200])
            return []
    if not isinstance(body, dict):
        return []
    if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS
        return _records(body["Message"])
    if body.get("Event") == "s3:TestEvent":  # sent once when the notification is set up
        return []
    return [r for r in body.get("Records", []) if isinstance(r, dict) and "s3" in r]


def paths_from_payload(payload: dict) -> list[str]:
    """Extract paths named by one trigger event payload: SQS (``message_batch``) or the local
    watcher (``paths``). S3 keys arrive URL-encoded; ``s3:TestEvent`` and deletions are ignored,
    and so are files that are not extracts (by extension) or are hidden."""
    out: list[str] = []
    for msg in payload.get("message_batch") or []:
        for rec in _records(msg.get("Body") if isinstance(msg, dict) else msg):
            if not str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                continue
            bucket = rec["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
            out.append(f"s3://{bucket}/{key}")
    out += [str(p) for p in payload.get("paths") or []]
    return sorted({p for p in out if _is_extract(p)})


def _is_extract(path: str) -> bool:
    rest = path.split("://", 1)[-1]
    parts = rest.split("/")[1:] if path.startswith("s3://") else rest.split("/")
    return path.lower().endswith(extract.EXTENSIONS) and not any(p.startswith(".") for p in parts)


def paths_from_asset_events(triggering_asset_events) -> list[str]:
    """All extract paths named by a run's ``triggering_asset_events`` (Asset -> events)."""
    out: set[str] = set()
    for _asset, events in (triggering_asset_events or {}).items():
        for ev in events:
            extra = getattr(ev, "extra", None) or (ev.get("extra") if isinstance(ev, dict) else {})
            out.update(paths_from_payload((extra or {}).get("payload") or {}))
    return sorted(out)


# --------------------------------------------------------------------------- run dates


def run_date_for(path: str) -> date:
    """The night a file belongs to: from its path, else from its content (see module doc)."""
    m = _RUN_DATE.findall(path)
    if m:
        return pipeline.parse_run_date(m[-1])
    for rx in (_ISO, _COMPACT):
        found = rx.findall(storage.name(path)) or rx.findall(path)
        for y, mo, d in reversed(found):
            try:
                return date(int(y), int(mo), int(d))
            except ValueError:
                continue
    df, _bad, info = extract.read_file(path)
    if info.accepted and len(df):
        dos = [d for d in df["date_of_service"].astype(str).str.strip() if d]
        days = []
        for d in dos:
            try:
                days.append(date.fromisoformat(d))
            except ValueError:
                continue
        if days:
            return max(days) + timedelta(days=1)
    raise pipeline.RunError(
        f"{path}: no run date in its path (run_date=YYYY-MM-DD or a YYYY-MM-DD in the name) "
        "and none can be read from its date_of_service values"
    )


# --------------------------------------------------------------------------- nights


def plan_nights(paths: list[str], out: str) -> list[dict]:
    """Group the new files (not yet registered with these bytes) by night. Each night is
    ``{"run_date", "new": [paths], "inputs": [paths]}`` where inputs add the files the night
    was last published with that are still there unchanged. Missing files are skipped."""
    nights: dict[str, set[str]] = {}
    for p in paths:
        try:
            sha = storage.sha256(p)
        except FileNotFoundError:
            log.warning("%s named by an event is gone; skipped", p)
            continue
        try:
            rd = run_date_for(p).isoformat()
        except pipeline.RunError as exc:
            log.error("%s", exc)
            rd = "unknown"
        if rd != "unknown" and registry.is_processed(out, rd, p, sha):
            log.info("%s (sha256 %s) was already processed for %s: no-op", p, sha[:12], rd)
            continue
        nights.setdefault(rd, set()).add(p)
    if "unknown" in nights:
        raise pipeline.RunError(
            "no run date for: " + ", ".join(sorted(nights["unknown"])) + " (see the log)"
        )
    plan = []
    for rd, new in sorted(nights.items()):
        earlier = []
        for p, sha in registry.night_files(out, rd).items():
            if p in new:
                continue
            try:
                if storage.sha256(p) == sha:
                    earlier.append(p)
            except FileNotFoundError:
                log.warning("%s was part of night %s but is gone; left out", p, rd)
        plan.append({"run_date": rd, "new": sorted(new), "inputs": sorted([*new, *earlier])})
    return plan


def process_night(
    night: dict, out: str, reference: str | None = None, run_id: str = "", progress=None
) -> dict:
    """Run one planned night (all stages) and register its inputs once the manifest is written."""
    cfg = pipeline.RunConfig(
        inputs=night["inputs"],
        out=out,
        run_date=pipeline.parse_run_date(night["run_date"]),
        reference=reference or None,
    )
    m = pipeline.run(cfg, progress=progress)
    registry.record(out, cfg.rd, m["inputs"], run_id=run_id)
    return {
        "run_date": cfg.rd,
        "new_files": len(night["new"]),
        "files": len(m["inputs"]),
        "lines_billed": m["lines_billed"],
        "claim_files": len(m["claim_files"]),
        "balanced": m["balanced"],
    }


def reconcile(landing: str, out: str, reference: str | None = None, run_id: str = "") -> list:
    """List the landing zone and run every night with files the events missed."""
    files = [p for p in extract.discover([landing]) if _is_extract(p)]
    nights = plan_nights(files, out)
    log.info("reconcile: %s file(s) in %s, %s night(s) to run", len(files), landing, len(nights))
    return [process_night(n, out, reference, run_id=run_id) for n in nights]


def plan_run(triggering_asset_events, landing: str, out: str) -> list[dict]:
    """The nights an event-DAG run must process: those of the files its events name; a run
    without events (the nightly reconcile, or triggered by hand) lists the landing zone."""
    if not out:
        raise pipeline.RunError("no output root (THERAPY_CLAIMS_OUT / param out)")
    paths = paths_from_asset_events(triggering_asset_events)
    if triggering_asset_events:
        log.info("events name %s extract file(s): %s", len(paths), paths[:20])
        return plan_nights(paths, out)
    if not landing:
        raise pipeline.RunError("no landing zone (THERAPY_CLAIMS_LANDING / param landing)")
    if not storage.exists(landing):
        log.warning("reconcile: landing zone %s is empty or missing: nothing to do", landing)
        return []
    files = [p for p in extract.discover([landing]) if _is_extract(p)]
    log.info("reconcile: %s file(s) in %s", len(files), landing)
    return plan_nights(files, out)
