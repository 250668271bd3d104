"""One run per output root at a time: a lock on a local folder or on S3 that names its holder.

Two runs writing one output root at once (a DAG run and a manual re-run of the same night, or
two nights) would swap staging folders, ledger rows and claim numbers under each other. So a
run first takes ``<out>/.lock/run.json``, one small JSON object naming who has the output::

    {"run_id", "run_date", "host", "pid", "started_at", "expires_at", "command", "process"}

(times in UTC, ``...Z``). Whoever finds it held by another run gets ``LockHeld``, one line
naming the holder and how to go on. The same ``run_id`` may take it again: an Airflow DAG run
takes it in its first task and every later task (another process, perhaps another host) takes
it again, which also moves ``expires_at`` on (while the process that took it first still
runs, the lock keeps naming that process).

How each backend makes "read the holder, then act on it" one atomic step:

- Local folder: every change (create, refresh, take over, release, unlock) happens under an
  exclusive ``flock`` on ``<out>/.lock/guard``. The kernel drops a flock when its process dies,
  so a crash never leaves the guard held. A new lock is written to a temporary file and
  hard-linked into place (``os.link`` refuses an existing name); a refreshed or taken-over one
  is renamed over the old, so a reader without the guard (``holder``) sees a whole lock or
  none. Why a guard and not only "rename the stale file away, then create": a breaker that read
  the stale lock and is then delayed can rename away the *new* lock a faster breaker has just
  created, and both would run. Needs a file system with working ``flock`` (local disks; NFSv4
  emulates it with byte-range locks).
- S3: conditional requests, which S3 evaluates atomically. Create is PutObject
  ``If-None-Match: *``; refresh and take-over are PutObject ``If-Match: <ETag read>``; release
  and unlock are DeleteObject ``If-Match: <ETag read>``. A lost race answers 412
  PreconditionFailed (or 409 ConditionalRequestConflict while another conditional write is in
  flight); the loser reads again and decides again. Of two runs breaking the same stale lock
  only the first PUT still matches the stale ETag. Taking over is one PUT, not delete + create,
  so there is no moment without a lock. Needs conditional writes and deletes (AWS S3 general
  purpose buckets have both; check any other endpoint): one that ignores the headers gives no
  mutual exclusion.

A crashed holder does not block the output for ever:

- Its process is gone: the lock was taken with ``process_bound=True`` (the CLI ``run``, one
  process for the whole night) on this host and in this PID namespace, and that process is no
  longer there: the host booted since (``boot_id``), the pid is gone or a zombie, or the pid now
  belongs to a process that started at another time (pid reuse; Linux ``/proc``, elsewhere only
  ``kill(pid, 0)``). A DAG run's lock is not process-bound: it is held *between* its tasks,
  when no process of it runs, so only the TTL or ``unlock`` frees it.
- It expired: ``expires_at`` (TTL ``THERAPY_CLAIMS_LOCK_TTL_HOURS``, default 12) has passed by
  this host's clock, unless the holder is a process-bound one on this host that is provably
  still running (a long night is not broken into; ``unlock`` is there for a hung one).
- ``break_lock`` (the ``unlock`` command) removes whatever lock is there.

Breaking is logged as a warning naming the old holder. No PHI goes in a lock: the command line
is stored with any ``user:password@`` in a URL masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shlex
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

from therapy_claims import storage
from therapy_claims.config import RunError

log = logging.getLogger(__name__)

TTL_ENV = "THERAPY_CLAIMS_LOCK_TTL_HOURS"
DEFAULT_TTL_HOURS = 12.0
# a conditional write lost to another run: read again and decide again, this many times at most
_RACE_RETRIES = 50


class LockHeld(RunError):
    """Another run holds the output's lock; ``holder`` is its lock object."""

    def __init__(self, message: str, out: str, holder: dict):
        super().__init__(message)
        self.out = out
        self.holder = holder

    def __reduce__(self):  # crosses process boundaries whole (the default passes the message only)
        return (type(self), (str(self), self.out, self.holder))


def _now() -> datetime:
    """The current time in UTC (a function so tests can move the clock)."""
    return datetime.now(UTC)


def lock_path(out: str) -> str:
    return storage.join(out, ".lock", "run.json")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _ttl() -> timedelta:
    raw = os.environ.get(TTL_ENV, "").strip()
    if not raw:
        return timedelta(hours=DEFAULT_TTL_HOURS)
    try:
        hours = float(raw)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours > 0):
        raise RunError(f"{TTL_ENV} must be a positive number of hours, not {raw!r}")
    return timedelta(hours=hours)


def _redact(command: str) -> str:
    """The command line without passwords (e.g. ``--ledger postgresql://u:pw@db/x``)."""
    return re.sub(r"(?<=://)[^/\s@]+@", "***@", command)


# --- who is this process, and is a holder's process still there --------------------------------


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, ValueError):
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from Linux ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].split()  # the name (field 2) may hold spaces and ")"
    try:
        return fields[0].decode("ascii"), int(fields[19])  # fields 3 (state) and 22 (starttime)
    except (IndexError, ValueError):
        return None


def _pid_ns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _identity() -> dict:
    """What tells this process apart from any other on this host, even one with its pid later."""
    stat = _proc_stat(os.getpid())
    return {
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pid_ns": _pid_ns(),
        "start_ticks": stat[1] if stat else None,
    }


def _process_state(h: dict) -> str:
    """``"gone"``, ``"alive"`` or ``"unknown"`` for the holder's process. Only a process-bound
    holder on this host, in this PID namespace, can be known: another host's or another
    container's pids are not ours to look at."""
    proc = h.get("process")
    pid = h.get("pid")
    if not isinstance(proc, dict) or h.get("host") != socket.gethostname():
        return "unknown"
    if not isinstance(pid, int) or pid <= 0 or proc.get("pid_ns") != _pid_ns():
        return "unknown"
    boot_id = _read_text("/proc/sys/kernel/random/boot_id")
    if proc.get("boot_id") and boot_id and proc["boot_id"] != boot_id:
        return "gone"  # booted since: every process of then is gone
    if proc.get("start_ticks") is not None:
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X") or stat[1] != proc["start_ticks"]:
            return "gone"  # no such pid, a zombie, or the pid reused by a younger process
        return "alive"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"  # another user's process
    return "alive"


def _stale(h: dict, now: datetime) -> str | None:
    """Why the holder may be broken, or None while it must be respected."""
    if h.get("unreadable"):
        return None  # nobody can tell who wrote it: only unlock removes it
    state = _process_state(h)
    if state == "gone":
        return "its process is gone"
    expires = _parse_time(h.get("expires_at"))
    if expires is not None and now >= expires and state != "alive":
        return f"it expired at {_iso(expires)}"
    return None


# --- describing a holder -----------------------------------------------------------------------


def _describe(h: dict) -> str:
    if h.get("unreadable"):
        return "an unreadable lock file"
    g = {
        k: "?" if h.get(k) in (None, "") else h[k]
        for k in ("run_id", "run_date", "pid", "host", "started_at")
    }
    return (
        f"run {g['run_id']} (night {g['run_date']}, pid {g['pid']} on host {g['host']}, "
        f"since {g['started_at']})"
    )


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def describe(h: dict) -> str:
    """The holder in one line ("run R (night D, pid P on host H, since T)"), for a command
    that words its own refusal (``acks`` has no ``--wait`` to suggest)."""
    return _one_line(_describe(h))


def _held_message(out: str, h: dict, waited: float | None = None) -> str:
    unlock = f"therapy-claims unlock --out {shlex.quote(str(out))}"
    if waited is None:
        return _one_line(
            f"output {out} is locked by {_describe(h)}; wait with --wait, "
            f"or if that run crashed: {unlock}"
        )
    return _one_line(
        f"output {out} is still locked after waiting {waited:g} s, by {_describe(h)}; "
        f"if that run crashed: {unlock}"
    )


# --- the two backends --------------------------------------------------------------------------


def _parse(raw: bytes) -> dict:
    try:
        h = json.loads(raw)
    except ValueError:
        return {"unreadable": True}
    return h if isinstance(h, dict) and h.get("run_id") else {"unreadable": True}


def _encode(h: dict) -> bytes:
    return (json.dumps(h, indent=2) + "\n").encode("utf-8")


class _LocalStore:
    """The lock file; every change under the guard's flock (see the module docstring)."""

    def __init__(self, out: str):
        self.path = lock_path(out)
        self.dir = os.path.dirname(self.path)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        import fcntl

        os.makedirs(self.dir, exist_ok=True)
        # read-only is enough for flock, so an operator who may only read the output can too
        fd = os.open(os.path.join(self.dir, "guard"), os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def read(self) -> tuple[dict | None, None]:
        try:
            with open(self.path, "rb") as fh:
                return _parse(fh.read()), None
        except FileNotFoundError:
            return None, None

    def _staged(self, h: dict) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".run.json.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                # readable like the outputs: who cannot read the lock cannot see who holds it
                os.fchmod(fh.fileno(), 0o666 & ~storage._umask())
                fh.write(_encode(h))
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create(self, h: dict) -> bool:
        tmp = self._staged(h)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        self._sync_dir()
        return True

    def replace(self, h: dict, tag: None) -> bool:
        os.replace(self._staged(h), self.path)
        self._sync_dir()
        return True

    def delete(self, tag: None) -> bool:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        return True


class _S3Store:
    """The lock object; every change a conditional request on the ETag read before it."""

    def __init__(self, out: str):
        self.path = lock_path(out)
        self.bucket, self.key = storage._split(self.path)

    def exists(self) -> bool:
        return True

    def guard(self):
        return contextlib.nullcontext()

    def read(self) -> tuple[dict | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            resp = storage._s3().get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if storage._missing(exc):
                return None, None
            raise
        return _parse(resp["Body"].read()), resp["ETag"]

    def _conditional(self, op: Callable, **kwargs) -> bool:
        """True when S3 applied the request, False when its condition failed (a lost race)."""
        from botocore.exceptions import ClientError

        try:
            op(Bucket=self.bucket, Key=self.key, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return False
            if storage._missing(exc):  # If-Match on an object deleted meanwhile
                return False
            raise
        return True

    def create(self, h: dict) -> bool:
        return self._conditional(storage._s3().put_object, Body=_encode(h), IfNoneMatch="*")

    def replace(self, h: dict, tag: str) -> bool:
        return self._conditional(storage._s3().put_object, Body=_encode(h), IfMatch=tag)

    def delete(self, tag: str) -> bool:
        return self._conditional(storage._s3().delete_object, IfMatch=tag)


def _store(out: str) -> _LocalStore | _S3Store:
    return _S3Store(out) if storage.is_s3(out) else _LocalStore(out)


# --- the API -----------------------------------------------------------------------------------


def _try_acquire(store, out: str, run_id: str, make: Callable) -> tuple[dict, bool]:
    """One attempt: (the new holder, True), or (the other run's holder, False)."""
    with store.guard():
        for _ in range(_RACE_RETRIES):
            current, tag = store.read()
            now = _now()
            if current is None:
                mine = make(now, None)
                if store.create(mine):
                    return mine, True
                continue
            if current.get("run_id") == run_id:
                mine = make(now, current)
                if store.replace(mine, tag):
                    return mine, True
                continue
            why = _stale(current, now)
            if why is None:
                return current, False
            mine = make(now, None)
            if store.replace(mine, tag):
                log.warning("broke the lock on %s held by %s: %s", out, _describe(current), why)
                return mine, True
    raise RunError(f"could not take the lock {store.path}: it kept changing while being taken")


def acquire(
    out: str,
    *,
    run_id: str,
    run_date: date | str,
    wait: bool = False,
    timeout: float | None = None,
    poll: float = 2.0,
    command: str = "",
    process_bound: bool = True,
) -> dict:
    """Take the output's lock for ``run_id`` (again, if it has it already) and return the holder.

    Another live holder raises ``LockHeld`` at once, or with ``wait`` once ``timeout`` seconds
    have passed (None: wait for ever), checking every ``poll`` seconds. ``process_bound``: the
    run lives in this process only, so the lock may be broken once this process is gone; a DAG
    run, whose lock outlives each task's process, passes False.
    """
    if not run_id:
        raise ValueError("acquire needs a run_id")
    store = _store(out)
    ttl = _ttl()

    def make(now: datetime, current: dict | None) -> dict:
        h = {
            "run_id": run_id,
            "run_date": run_date.isoformat() if isinstance(run_date, date) else str(run_date),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": (current or {}).get("started_at") or _iso(now),
            "expires_at": _iso(now + ttl),
            "command": _redact(command),
            "process": _identity() if process_bound else None,
        }
        if current is not None and _process_state(current) == "alive":
            # the run's own process still runs (this one, or the parent of a helper process
            # taking it again): it stays the one whose end frees the lock
            h |= {k: current.get(k) for k in ("host", "pid", "process", "command")}
        return h

    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while True:
        with storage.guard("write", lock_path(out)):  # a read-only or full disk: exit 2
            h, won = _try_acquire(store, out, run_id, make)
        if won:
            return h
        if not wait:
            raise LockHeld(_held_message(out, h), out, h)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise LockHeld(_held_message(out, h, waited=timeout), out, h)
        if not waiting:
            log.info("output %s is locked by %s; waiting", out, _describe(h))
            waiting = True
        time.sleep(poll if left is None else min(poll, left))


def release(out: str, run_id: str) -> None:
    """Give the lock up if ``run_id`` holds it; anyone else's lock is left alone (a warning)."""
    store = _store(out)
    if not store.exists():
        log.warning("release %s for run %s: the output is not locked", out, run_id)
        return
    with store.guard():
        current, tag = store.read()
        if current is None:
            log.warning("release %s for run %s: the output is not locked", out, run_id)
        elif current.get("run_id") != run_id:
            log.warning(
                "release %s for run %s: held by %s instead; left alone",
                out,
                run_id,
                _describe(current),
            )
        elif not store.delete(tag):
            log.warning(
                "release %s for run %s: the lock changed meanwhile; left alone", out, run_id
            )


def holder(out: str) -> dict | None:
    """Who holds the output's lock (None: nobody). Expired or crashed holders are shown too."""
    return _store(out).read()[0]


def break_lock(out: str) -> dict | None:
    """Remove the output's lock whoever holds it (the ``unlock`` command) and return the holder
    removed; None when there was none, or when it changed between reading and removing (then
    it is no longer the lock the caller decided to break: look again)."""
    store = _store(out)
    if not store.exists():
        return None
    with store.guard():
        current, tag = store.read()
        if current is None or not store.delete(tag):
            return None
    log.warning("unlocked %s: removed the lock of %s", out, _describe(current))
    return current


@contextlib.contextmanager
def held(
    out: str,
    *,
    run_id: str,
    run_date: date | str,
    wait: bool = False,
    timeout: float | None = None,
    poll: float = 2.0,
    command: str = "",
) -> Iterator[dict]:
    """The lock for the length of a ``with`` block (released on errors too), for one process."""
    h = acquire(
        out,
        run_id=run_id,
        run_date=run_date,
        wait=wait,
        timeout=timeout,
        poll=poll,
        command=command,
    )
    try:
        yield h
    except BaseException:
        try:
            release(out, run_id)
        except Exception as exc:  # the block's own error is the one line to report; the
            # next run frees the lock (its process is gone) or the TTL does
            log.info("could not release the lock on %s for run %s: %s", out, run_id, exc)
        raise
    release(out, run_id)
