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

**By content, not by name.** A landing zone holds extracts, the payer's 999, 277CA and 835
files (named whatever the clearinghouse chose), our own 837s copied back, and notes. Each
landed file is sorted by its first bytes (``file_kind``): an X12 envelope says 999, 277CA, 835
or 837 (``responses.kind_of``); a file that is no X12 is an extract when it has an extract's
extension or starts with a CSV header naming every required column (read as CSV, as the night
reads such a file). Response files go to ``acks`` (``apply_landed_responses``: the event DAGs'
``acks`` task), extracts to the nights, and an 837 or anything else is ignored with a log line
naming the file only. The nightly DAG's listing (``nightly_inputs``) sorts the same way.

**Landing zone only.** An event's path is run only when it lies inside the configured
landing zone (``THERAPY_CLAIMS_LANDING`` / the DAG param ``landing``, a folder or
``s3://bucket/prefix``); any other path, or one with a ``.``/``..`` segment, is ignored with a
warning naming it.

**Once only.** A file already in the registry for any night (same path, same sha256) is
skipped, whichever DAG (events or nightly) processed it; a night with new files is run over the
new files *and* the files it was last published with (its manifest's inputs), so a clinic's
late extract adds to the night instead of replacing it. Those earlier files must still be in
the landing zone unchanged: if one is gone or changed the night is refused (``RunError``), never
republished smaller. SQS messages are deleted on receipt, so a failed run loses no file:
nothing is registered until the night's manifest is written, and the nightly reconcile
(``reconcile``) lists the landing zone and runs whatever the events missed.

**Reopen window.** A file whose night lies more than ``THERAPY_CLAIMS_REOPEN_DAYS`` (default 7)
days before the newest night published in the output (its manifests, never the clock) is
refused unless the run is given ``reopen=True``.

**The nightly DAG** shares the landing zone the same way: its first task keeps only the files
not registered for any night (``nightly_inputs``) and its last registers the night's inputs
(``register_night``); with nothing new the night is skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import urllib.parse
from datetime import date, timedelta
from pathlib import Path

from therapy_claims import acks, extract, lifecycle, pipeline, registry, responses, storage
from therapy_claims.layout import REQUIRED_COLUMNS

log = logging.getLogger("therapy_claims")

_RUN_DATE = re.compile(r"run_date=(\d{4}-\d{2}-\d{2})")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")
_MANIFEST = re.compile(r"run_date=(\d{4}-\d{2}-\d{2})\.json")

REOPEN_DAYS_ENV = "THERAPY_CLAIMS_REOPEN_DAYS"
DEFAULT_REOPEN_DAYS = 7


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
    """The paths named by one trigger event payload: SQS (``message_batch``) or the local
    watcher (``paths``). S3 keys arrive URL-encoded; ``s3:TestEvent``, deletions and hidden
    files are ignored. Every other file is kept whatever its name: ``route`` sorts them by
    content."""
    out: list[str] = []
    for msg in payload.get("message_batch") or []:
        for rec in _records(msg.get("Body") if isinstance(msg, dict) else msg):
            if not str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                continue
            bucket = rec["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
            out.append(f"s3://{bucket}/{key}")
    out += [str(p) for p in payload.get("paths") or []]
    return sorted({p for p in out if _visible(p)})


def _visible(path: str) -> bool:
    """Not hidden (no segment starting with ``.``). ``.``/``..`` segments are not "hidden":
    such a path is kept here so that the landing-zone check refuses it with a warning."""
    rest = path.split("://", 1)[-1]
    parts = rest.split("/")[1:] if path.startswith("s3://") else rest.split("/")
    return not any(p.startswith(".") and p not in (".", "..") for p in parts)


def paths_from_asset_events(triggering_asset_events) -> list[str]:
    """All paths named by a run's ``triggering_asset_events`` (Asset -> events)."""
    out: set[str] = set()
    for _asset, events in (triggering_asset_events or {}).items():
        for ev in events:
            extra = getattr(ev, "extra", None) or (ev.get("extra") if isinstance(ev, dict) else {})
            out.update(paths_from_payload((extra or {}).get("payload") or {}))
    return sorted(out)


# --------------------------------------------------------------------------- what a file is

EXTRACT = "extract"
# the envelope (responses.kind_of reads the first 4 KiB) and an extract's header row (at most
# extract.MAX_HEADER_BYTES): one ranged read, never a whole multi-GB extract
_HEAD_BYTES = extract.MAX_HEADER_BYTES
_BOM = b"\xef\xbb\xbf"
_FIRST_LINE = re.compile(rb"\r\n|\r|\n")


def _head(path: str) -> bytes:
    """The file's first ``_HEAD_BYTES`` bytes (a ranged GET on S3); ``StorageNotFound``
    (a ``FileNotFoundError``) when it is gone."""
    with storage.guard("read", path):
        if not storage.is_s3(path):
            with open(path, "rb") as fh:
                return fh.read(_HEAD_BYTES)
        bucket, key = storage._split(path)
        try:
            got = storage._s3().get_object(
                Bucket=bucket, Key=key, Range=f"bytes=0-{_HEAD_BYTES - 1}"
            )
        except Exception as exc:
            error = (getattr(exc, "response", None) or {}).get("Error", {})
            if error.get("Code") == "InvalidRange":  # an empty object has no byte 0
                return b""
            raise
        return got["Body"].read()


def _csv_extract_header(head: bytes) -> bool:
    """Whether ``head`` starts with a CSV header row naming every required extract column."""
    data = head[len(_BOM) :] if head.startswith(_BOM) else head
    parts = _FIRST_LINE.split(data, maxsplit=1)
    if len(parts) == 1 and len(head) >= _HEAD_BYTES:
        return False  # a first line longer than an extract's header may be
    try:
        line = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return False
    names = {n.strip() for n in next(csv.reader([line]), [])}
    return set(REQUIRED_COLUMNS) <= names


def file_kind(path: str) -> str | None:
    """What a landed file is, from its first bytes: ``"999"``, ``"277CA"``, ``"835"`` or
    ``"837"`` (its X12 envelope), ``"extract"`` (no X12, and an extract's extension or a CSV
    header naming every required column), else None. ``FileNotFoundError`` when it is gone."""
    head = _head(path)
    kind = responses.kind_of(head)
    if kind is not None:
        return kind
    if head.lstrip(_BOM + b" \t\r\n").startswith(b"ISA"):
        return None  # X12 of another kind (a 277, a lone TA1): no extract, whatever its name
    if path.lower().endswith(extract.EXTENSIONS) or _csv_extract_header(head):
        return EXTRACT
    return None


def route(paths: list[str]) -> dict[str, list[str]]:
    """The paths sorted by content: ``{"extracts": [...], "responses": [...]}`` (999, 277CA,
    835), each in the order given. An 837, a file of no kind we take, or one that is gone is
    left out with a log line naming the file (its name only)."""
    routed: dict[str, list[str]] = {"extracts": [], "responses": []}
    for p in paths:
        try:
            kind = file_kind(p)
        except FileNotFoundError:
            log.warning("%s is gone; skipped", storage.name(p))
            continue
        if kind == EXTRACT:
            routed["extracts"].append(p)
        elif kind in responses.RESPONSE_KINDS:
            routed["responses"].append(p)
        elif kind == "837":
            log.info(
                "ignoring %s: an 837 claim file, not an extract or a response", storage.name(p)
            )
        else:
            log.warning(
                "ignoring %s: neither an extract nor a 999, 277CA or 835 file", storage.name(p)
            )
    return routed


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


# --------------------------------------------------------------------------- the landing zone


def _segments(path: str) -> list[str]:
    rest = path.split("://", 1)[1] if storage.is_s3(path) else path
    return rest.replace("\\", "/").split("/")


def under_landing(path: str, landing: str) -> bool:
    """Whether ``path`` lies inside the landing zone ``landing`` (a local folder or
    ``s3://bucket/prefix``). A path with a ``.`` or ``..`` segment is never inside (S3 keeps
    such keys literally, a file system resolves them: either way they are not what they
    seem); ``s3://bucket/prefix-evil/x`` is not inside ``s3://bucket/prefix``. Local paths
    are compared after resolving symbolic links, so a link out of the folder is outside."""
    if not landing or any(s in (".", "..") for s in _segments(path)):
        return False
    if storage.is_s3(landing) or storage.is_s3(path):
        if not (storage.is_s3(landing) and storage.is_s3(path)):
            return False
        bucket, _, key = path[len("s3://") :].partition("/")
        l_bucket, _, prefix = landing[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if bucket != l_bucket or not key or key.endswith("/"):
            return False
        return not prefix or key.startswith(prefix + "/")
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(landing))
    return real != root and real.is_relative_to(root)


def landing_paths(paths: list[str], landing: str) -> list[str]:
    """The event paths inside the configured landing zone; every other one is ignored with a
    warning naming it (an event names files, it does not choose which files are billed)."""
    kept = []
    for p in paths:
        if under_landing(p, landing):
            kept.append(p)
        else:
            log.warning("ignoring %s named by an event: not inside the landing zone %s", p, landing)
    return kept


def _list_landing(inputs: list[str]) -> list[str]:
    """Every file under the landing zone, hidden ones left out, whatever its name (local
    paths made absolute, so the nightly DAG and the watcher name a file the same way in the
    registry); ``RunError`` for an input that is not there."""
    files: list[str] = []
    for p in inputs:
        if storage.is_dir(p):
            files += storage.list_files(p)
        elif storage.exists(p):
            files.append(str(p))
        else:
            raise pipeline.RunError(f"input {p} does not exist")
    return [p if storage.is_s3(p) else os.path.abspath(p) for p in sorted(dict.fromkeys(files))]


def _landing_extracts(inputs: list[str]) -> list[str]:
    """The extract files under the landing zone (by content: ``route``)."""
    return route(_list_landing(inputs))["extracts"]


# --------------------------------------------------------------------------- published nights


def reopen_days() -> int:
    """The reopen window in days (``THERAPY_CLAIMS_REOPEN_DAYS``, default 7)."""
    raw = os.environ.get(REOPEN_DAYS_ENV, "").strip() or str(DEFAULT_REOPEN_DAYS)
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise pipeline.RunError(f"{REOPEN_DAYS_ENV}={raw!r} is not a number of days (0 or more)")
    return days


def newest_published(out: str) -> date | None:
    """The newest night with a manifest under ``<out>/manifest/`` (one listing; the manifest's
    name carries its night). The reopen window is measured from it, never from the clock, so
    a backlog run late does not look old and a rerun next year behaves the same."""
    newest = None
    for f in storage.list_files(storage.join(out, "manifest")):
        m = _MANIFEST.fullmatch(storage.name(f))
        if m:
            d = date.fromisoformat(m.group(1))
            newest = d if newest is None or d > newest else newest
    return newest


def days_too_old(rd: str, newest: date | None) -> int:
    """How many days night ``rd`` lies before the newest published night, when that is more
    than the reopen window (0: inside the window, or nothing published yet)."""
    if newest is None:
        return 0
    days = (newest - date.fromisoformat(rd)).days
    return days if days > reopen_days() else 0


def _check_reopen(rd: str, newest: date | None, files: list[str], reopen: bool) -> bool:
    """Whether night ``rd`` is reopened (outside the window, let through by ``reopen``);
    ``RunError`` when it is outside the window and ``reopen`` is not set."""
    days = days_too_old(rd, newest)
    if not days:
        return False
    if reopen:
        log.warning("night %s is %s days before %s: reopened (reopen is set)", rd, days, newest)
        return True
    raise pipeline.RunError(
        f"night {rd} is {days} days before the newest published night {newest} (reopen window "
        f"{REOPEN_DAYS_ENV}={reopen_days()}): refusing to reopen it for {_names(files)}; if "
        "the file(s) belong to that night, run again with reopen=True (DAG param reopen), "
        "otherwise move them out of the landing zone"
    )


def published_inputs(out: str, rd: str) -> dict[str, str]:
    """The files night ``rd`` was last published with (path -> sha256): its manifest's inputs,
    else (no manifest: never published, or an S3 publish interrupted) the registry's."""
    night = pipeline.RunConfig(inputs=[], out=out, run_date=pipeline.parse_run_date(rd))
    try:
        m = storage.read_json(night.manifest_path)
    except FileNotFoundError:
        return registry.night_files(out, rd)
    return {i["path"]: i["sha256"] for i in m.get("inputs", [])}


def _earlier_inputs(out: str, rd: str, new: list[str]) -> list[str]:
    """The files night ``rd`` was published with that a rerun must read again besides
    ``new``. Every one must still be there unchanged: a night rerun without them would be
    republished smaller (its claims gone from the ledger, billed again by a later night), so
    the night is refused instead (``RunError``, one line)."""
    earlier, missing, changed = [], [], []
    for p, sha in published_inputs(out, rd).items():
        if p in new:
            continue  # a new version of the same file replaces the old one
        try:
            (earlier if storage.sha256(p) == sha else changed).append(p)
        except FileNotFoundError:
            missing.append(p)
    if missing or changed:
        what = "; ".join(
            f"{k}: {_names(v)}" for k, v in (("missing", missing), ("changed", changed)) if v
        )
        raise pipeline.RunError(
            f"night {rd} cannot take the new file(s) {_names(new)}: file(s) it was published "
            f"with are no longer in the landing zone as published ({what}); put them back "
            "(unchanged) in the landing zone and run again, or run the night by hand with all "
            f"its files (therapy-claims run --run-date {rd} --input ...)"
        )
    return earlier


def _names(paths: list[str], at_most: int = 5) -> str:
    shown = ", ".join(sorted(paths)[:at_most])
    return shown + (f" and {len(paths) - at_most} more" if len(paths) > at_most else "")


# --------------------------------------------------------------------------- nights


def plan_nights(paths: list[str], out: str, *, reopen: bool = False) -> list[dict]:
    """Group the new files (not registered with these bytes for any night) by night. Each
    night is ``{"run_date", "new": [paths], "inputs": [paths]}`` where inputs add the files
    the night was last published with (all must still be there unchanged), and
    ``"reopen": True`` when the night lies outside the reopen window and ``reopen`` lets it
    through. Files named but gone are skipped. A night that must not run (no run date, an
    earlier file missing or changed, outside the reopen window) fails the plan with a
    ``RunError`` naming every such night; nothing runs and nothing is registered."""
    done = registry.processed_any(out)
    nights: dict[str, set[str]] = {}
    for p in paths:
        try:
            sha = storage.sha256(p)
        except FileNotFoundError:
            log.warning("%s named by an event is gone; skipped", p)
            continue
        if (p, sha) in done:
            log.info(
                "%s (sha256 %s) was already processed for %s: no-op",
                p,
                sha[:12],
                ", ".join(done.nights(p, sha)),
            )
            continue
        try:
            rd = run_date_for(p).isoformat()
        except pipeline.RunError as exc:
            log.error("%s", exc)
            rd = "unknown"
        nights.setdefault(rd, set()).add(p)
    if "unknown" in nights:
        raise pipeline.RunError(
            "no run date for: " + ", ".join(sorted(nights["unknown"])) + " (see the log)"
        )
    newest = newest_published(out) if nights else None
    plan, refused = [], []
    for rd, new_set in sorted(nights.items()):
        new = sorted(new_set)
        try:
            reopened = _check_reopen(rd, newest, new, reopen)
            earlier = _earlier_inputs(out, rd, new)
        except pipeline.RunError as exc:
            refused.append(str(exc))
            continue
        night = {"run_date": rd, "new": new, "inputs": sorted([*new, *earlier])}
        if reopened:
            night["reopen"] = True
        plan.append(night)
    if refused:
        raise pipeline.RunError(" | ".join(refused))
    return plan


def process_night(
    night: dict,
    out: str,
    reference: str | None = None,
    run_id: str = "",
    progress=None,
    *,
    phi_out: str | None = None,
) -> dict:
    """Run one planned night (all stages) and register its inputs once the manifest is
    written (``phi_out``: the root of the layers holding PHI, apart from ``out``)."""
    cfg = pipeline.RunConfig(
        inputs=night["inputs"],
        out=out,
        run_date=pipeline.parse_run_date(night["run_date"]),
        reference=reference or None,
        reopen=bool(night.get("reopen", False)),
        phi_out=phi_out or None,
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


def reconcile(
    landing: str,
    out: str,
    reference: str | None = None,
    run_id: str = "",
    *,
    reopen: bool = False,
    phi_out: str | None = None,
) -> list:
    """List the landing zone and run every night with extracts the events missed."""
    files = _landing_extracts([landing])
    nights = plan_nights(files, out, reopen=reopen)
    log.info("reconcile: %s file(s) in %s, %s night(s) to run", len(files), landing, len(nights))
    return [process_night(n, out, reference, run_id=run_id, phi_out=phi_out) for n in nights]


def plan_run(
    triggering_asset_events, landing: str, out: str, *, reopen: bool = False
) -> list[dict]:
    """The nights an event-DAG run must process: those of the extracts its events name (only
    files inside the landing zone ``landing``, sorted by content: ``route``); a run without
    events (the nightly reconcile, or triggered by hand) lists the landing zone."""
    extracts = _landed(triggering_asset_events, landing, out)["extracts"]
    log.info("%s extract file(s) for the nights: %s", len(extracts), extracts[:20])
    return plan_nights(extracts, out, reopen=reopen) if extracts else []


def _landed(triggering_asset_events, landing: str, out: str) -> dict[str, list[str]]:
    """The files an event-DAG run handles, routed: those its events name inside the landing
    zone, or without events (a reconcile) every file there."""
    if not out:
        raise pipeline.RunError("no output root (THERAPY_CLAIMS_OUT / param out)")
    if triggering_asset_events:
        paths = paths_from_asset_events(triggering_asset_events)
        if paths and not landing:
            raise pipeline.RunError(
                "events name files but no landing zone is configured "
                "(THERAPY_CLAIMS_LANDING / param landing): none is run"
            )
        paths = landing_paths(paths, landing)
        log.info("events name %s file(s) in %s", len(paths), landing)
        return route(paths)
    if not landing:
        raise pipeline.RunError("no landing zone (THERAPY_CLAIMS_LANDING / param landing)")
    if not storage.exists(landing):
        log.warning("reconcile: landing zone %s is empty or missing: nothing to do", landing)
        return {"extracts": [], "responses": []}
    files = _list_landing([landing])
    log.info("reconcile: %s file(s) in %s", len(files), landing)
    return route(files)


# --------------------------------------------------------------------------- response files


class ResponsesRejected(pipeline.RunError):
    """An acks run rejected a response file (after writing its record): a task fails on it,
    and retrying does not help until the file is replaced."""


def apply_responses(
    inputs: list[str] | str,
    out: str,
    *,
    received_on: date | str | None = None,
    run_id: str = "",
    lock_wait: float | None = None,
    after=None,
) -> dict:
    """Record response files as a DAG task does (``acks.apply``): waits up to ``lock_wait``
    seconds (None: for ever) for the output's lock, which a night holds while it runs, then
    logs the run's summary (counts, codes and file names only). Returns the run in short.
    ``ResponsesRejected`` when a file was rejected, after the run was written: the task fails
    and its alert goes out, and the record of the files seen is kept."""
    if not out:
        raise pipeline.RunError("no output root (THERAPY_CLAIMS_OUT / param out)")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    if not any(inputs):
        raise pipeline.RunError("no response files folder given (param input)")
    on = acks.parse_received_on(received_on) if isinstance(received_on, str) else received_on
    result = acks.apply(
        inputs,
        out,
        received_on=on or None,
        run_id=run_id,
        after=after or lifecycle.refresh,
        wait=True,
        timeout=lock_wait,
    )
    for line in acks.summary_lines(result):
        log.info("%s", line)
    statuses = {s: sum(f.status == s for f in result.files) for s in acks.STATUSES}
    if result.rejected:
        shown = "; ".join(f"{storage.name(f.path)}: {f.reason}" for f in result.rejected[:5])
        more = len(result.rejected) - 5
        raise ResponsesRejected(
            f"{len(result.rejected)} response file(s) rejected (recorded in {result.folder}): "
            f"{shown}" + (f"; and {more} more" if more > 0 else "")
        )
    return {
        "run_id": result.run_id,
        "received_on": result.received_on.isoformat(),
        "folder": result.folder,
        "files": statuses,
        "rows": dict(result.rows),
    }


def apply_landed_responses(
    triggering_asset_events,
    landing: str,
    out: str,
    *,
    run_id: str = "",
    lock_wait: float | None = None,
    after=None,
) -> dict:
    """The event DAGs' ``acks`` task: the response files (999, 277CA, 835 by content) its
    events name inside the landing zone, or without events (a reconcile) every one there,
    less those an acks run applied before (same SHA-256), recorded by ``apply_responses``.
    ``{}`` when there is none: no acks run, no empty folder."""
    found = _landed(triggering_asset_events, landing, out)["responses"]
    if not found:
        return {}
    applied = acks.applied_hashes(out)
    new = []
    for p in found:
        try:
            sha = storage.sha256(p)
        except FileNotFoundError:
            log.warning("%s is gone; skipped", storage.name(p))
            continue
        if sha in applied:
            log.info("%s was applied before (%s): no-op", storage.name(p), applied[sha])
        else:
            new.append(p)
    log.info("%s new response file(s) of %s", len(new), len(found))
    if not new:
        return {}
    return apply_responses(new, out, run_id=run_id, lock_wait=lock_wait, after=after)


# --------------------------------------------------------------------------- the nightly DAG


def nightly_inputs(cfg: pipeline.RunConfig) -> list[str]:
    """The files the nightly run of ``cfg.rd`` reads: those in the landing zone
    (``cfg.inputs``) not registered for any night, plus, when the night was already
    published, the files it was published with (all still there unchanged, else
    ``RunError``). ``[]`` when nothing is new: last night's files, still in the landing zone,
    are not read again (they would all be held ALREADY_BILLED and nothing billed)."""
    if not cfg.inputs:
        raise pipeline.RunError("no input given (--input PATH)")
    files = _landing_extracts(cfg.inputs)
    done = registry.processed_any(cfg.out)
    new = [p for p in files if (p, storage.sha256(p)) not in done]
    if not new:
        log.info(
            "night %s: no new file in %s (%s file(s) there, all processed before): nothing to run",
            cfg.rd,
            ", ".join(cfg.inputs),
            len(files),
        )
        return []
    _check_reopen(cfg.rd, newest_published(cfg.out), new, cfg.reopen)
    earlier = _earlier_inputs(cfg.out, cfg.rd, new)
    log.info(
        "night %s: %s new file(s) of %s in the landing zone, %s from its last publication",
        cfg.rd,
        len(new),
        len(files),
        len(earlier),
    )
    return sorted([*new, *earlier])


def register_night(cfg: pipeline.RunConfig, run_id: str = "") -> int:
    """Register the files night ``cfg.rd`` was published with (its manifest's inputs: the bytes
    actually read), as ``process_night`` does; the nightly DAG's last task. ``RunError`` when
    the night has no manifest."""
    try:
        m = storage.read_json(cfg.manifest_path)
    except FileNotFoundError as exc:
        raise pipeline.RunError(f"no manifest at {cfg.manifest_path}: nothing to register") from exc
    n = registry.record(cfg.out, cfg.rd, m["inputs"], run_id=run_id)
    log.info("night %s: %s input file(s) registered", cfg.rd, n)
    return n
