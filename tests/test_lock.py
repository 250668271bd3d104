"""The output lock (``therapy_claims.lock``) on a local folder and on S3 (moto's server): one
holder at a time, named in a one-line refusal; re-entrant for the same run; waiting; crashed
holders (process gone, expired) broken by exactly one racer; release only by the holder."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from therapy_claims import lock, storage
from therapy_claims.config import RunError

SRC = Path(__file__).resolve().parents[1] / "src"
NIGHT = date(2026, 11, 28)
T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    return f"s3://{request.getfixturevalue('bucket')}/out"


@pytest.fixture
def clock(monkeypatch):
    """Sets the lock module's clock: ``clock(t)``."""

    def set_to(t: datetime) -> None:
        monkeypatch.setattr(lock, "_now", lambda: t)

    set_to(T0)
    return set_to


def _stale_holder(run_id: str = "crashed") -> dict:
    """A lock another host's run left behind, expired an hour ago."""
    past = datetime.now(UTC) - timedelta(hours=13)
    return {
        "run_id": run_id,
        "run_date": "2026-11-27",
        "host": "elsewhere.example",
        "pid": 4242,
        "started_at": lock._iso(past),
        "expires_at": lock._iso(past + timedelta(hours=12)),
        "command": "therapy-claims run",
        "process": None,
    }


def _child(out: str, run_id: str, *, process_bound: bool, stay: float) -> subprocess.Popen:
    """Another process that takes the lock, says ``ok``, stays ``stay`` s, exits without releasing."""
    code = (
        "import sys, time\n"
        "from therapy_claims import lock\n"
        "lock.acquire(sys.argv[1], run_id=sys.argv[2], run_date='2026-11-28',"
        " process_bound=sys.argv[3] == '1')\n"
        "print('ok', flush=True)\n"
        "time.sleep(float(sys.argv[4]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    args = [sys.executable, "-c", code, out, run_id, "1" if process_bound else "0", str(stay)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ok"
    return proc


def test_acquire_release(out):
    assert lock.holder(out) is None
    h = lock.acquire(out, run_id="A", run_date=NIGHT, command="therapy-claims run")
    assert lock.holder(out) == h
    assert (h["run_id"], h["run_date"], h["pid"], h["host"]) == (
        "A",
        "2026-11-28",
        os.getpid(),
        socket.gethostname(),
    )
    started = datetime.fromisoformat(h["started_at"])
    assert abs(started - datetime.now(UTC)) < timedelta(minutes=1)  # real UTC
    assert datetime.fromisoformat(h["expires_at"]) - started == timedelta(hours=12)
    assert storage.read_json(lock.lock_path(out)) == h
    lock.release(out, "A")
    assert lock.holder(out) is None
    assert lock.acquire(out, run_id="B", run_date=NIGHT)["run_id"] == "B"


def test_second_holder_is_refused_in_one_line_naming_the_holder(out, clock):
    lock.acquire(out, run_id="A", run_date=NIGHT)
    with pytest.raises(lock.LockHeld) as err:
        lock.acquire(out, run_id="B", run_date=date(2026, 11, 29))
    assert isinstance(err.value, RunError)
    assert str(err.value) == (
        f"output {out} is locked by run A (night 2026-11-28, pid {os.getpid()} on host "
        f"{socket.gethostname()}, since 2026-12-05T10:00:00Z); wait with --wait, "
        f"or if that run crashed: therapy-claims unlock --out {out}"
    )
    assert err.value.holder["run_id"] == "A"
    assert lock.holder(out)["run_id"] == "A"


def test_same_run_takes_it_again_and_moves_the_expiry_on(out, clock):
    first = lock.acquire(out, run_id="A", run_date=NIGHT, process_bound=False)
    clock(T0 + timedelta(hours=5))
    again = lock.acquire(out, run_id="A", run_date=NIGHT, process_bound=False)
    assert again["started_at"] == first["started_at"] == "2026-12-05T10:00:00Z"
    assert again["expires_at"] == "2026-12-06T03:00:00Z"  # 15:00 + 12 h
    assert lock.holder(out) == again


def test_another_process_of_the_same_run_leaves_the_holder_process_in_place(out):
    """A helper process of this run takes the lock again and exits: the lock still names this
    process, so the helper's end does not free it for another run."""
    mine = lock.acquire(out, run_id="A", run_date=NIGHT)
    _child(out, "A", process_bound=True, stay=0).wait()
    again = lock.holder(out)
    assert again["pid"] == os.getpid() and again["process"] == mine["process"]
    assert again["expires_at"] >= mine["expires_at"]
    with pytest.raises(lock.LockHeld, match=f"pid {os.getpid()} on host"):
        lock.acquire(out, run_id="B", run_date=NIGHT)


def test_lock_held_survives_pickling():
    import pickle

    err = lock.LockHeld("output x is locked by run A", "x", {"run_id": "A"})
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.out, back.holder) == (str(err), "x", {"run_id": "A"})


def test_wait_gets_the_lock_once_the_holder_releases(out):
    lock.acquire(out, run_id="A", run_date=NIGHT)
    t = threading.Timer(0.5, lock.release, args=(out, "A"))
    start = time.monotonic()
    t.start()
    try:
        h = lock.acquire(out, run_id="B", run_date=NIGHT, wait=True, timeout=30, poll=0.05)
    finally:
        t.join()
    assert time.monotonic() - start >= 0.45
    assert h["run_id"] == "B" and lock.holder(out)["run_id"] == "B"


def test_wait_times_out_naming_the_holder(out):
    lock.acquire(out, run_id="A", run_date=NIGHT)
    start = time.monotonic()
    with pytest.raises(lock.LockHeld) as err:
        lock.acquire(out, run_id="B", run_date=NIGHT, wait=True, timeout=0.3, poll=0.05)
    assert time.monotonic() - start >= 0.3
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"output {out} is still locked after waiting 0.3 s, by run A (")
    assert lock.holder(out)["run_id"] == "A"


def test_lock_of_a_process_that_is_gone_is_broken(out, caplog):
    child = _child(out, "R-dead", process_bound=True, stay=0)
    child.wait()
    assert lock.holder(out)["pid"] == child.pid
    with caplog.at_level(logging.WARNING, logger="therapy_claims.lock"):
        h = lock.acquire(out, run_id="B", run_date=NIGHT)
    assert h["run_id"] == "B"
    assert "run R-dead" in caplog.text and "its process is gone" in caplog.text


def test_lock_of_a_live_process_holds_until_it_is_killed(out):
    child = _child(out, "R-live", process_bound=True, stay=120)
    try:
        with pytest.raises(lock.LockHeld, match=f"run R-live .*pid {child.pid} on host"):
            lock.acquire(out, run_id="B", run_date=NIGHT)
    finally:
        child.kill()
        child.wait()
    assert lock.acquire(out, run_id="B", run_date=NIGHT)["run_id"] == "B"


def test_a_dag_runs_lock_outlives_its_task_processes(out, clock):
    """Not process-bound: held between the DAG's tasks, when no process of the run is there."""
    child = _child(out, "dag-run", process_bound=False, stay=0)
    child.wait()
    with pytest.raises(lock.LockHeld, match="run dag-run"):
        lock.acquire(out, run_id="B", run_date=NIGHT)
    clock(datetime.now(UTC) + timedelta(hours=13))  # ... until it expires
    assert lock.acquire(out, run_id="B", run_date=NIGHT)["run_id"] == "B"


def test_expired_lock_is_broken(out, clock, caplog):
    lock.acquire(out, run_id="A", run_date=NIGHT, process_bound=False)
    clock(T0 + timedelta(hours=11, minutes=59))
    with pytest.raises(lock.LockHeld):
        lock.acquire(out, run_id="B", run_date=NIGHT)
    clock(T0 + timedelta(hours=12))
    with caplog.at_level(logging.WARNING, logger="therapy_claims.lock"):
        assert lock.acquire(out, run_id="B", run_date=NIGHT)["run_id"] == "B"
    assert "run A (night 2026-11-28" in caplog.text
    assert "it expired at 2026-12-05T22:00:00Z" in caplog.text


def test_ttl_from_the_environment(out, clock, monkeypatch):
    monkeypatch.setenv(lock.TTL_ENV, "1.5")
    h = lock.acquire(out, run_id="A", run_date=NIGHT, process_bound=False)
    assert h["expires_at"] == "2026-12-05T11:30:00Z"
    monkeypatch.setenv(lock.TTL_ENV, "soon")
    with pytest.raises(RunError, match=f"{lock.TTL_ENV} must be a positive number of hours"):
        lock.acquire(out, run_id="B", run_date=NIGHT)


def test_expired_lock_of_a_process_still_running_here_is_kept(out, clock):
    lock.acquire(out, run_id="A", run_date=NIGHT)  # this process: provably alive
    clock(datetime.now(UTC) + timedelta(hours=13))
    with pytest.raises(lock.LockHeld, match="run A"):
        lock.acquire(out, run_id="B", run_date=NIGHT)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="pid reuse is told from /proc")
def test_a_reused_pid_does_not_keep_a_crashed_lock(out):
    h = lock.acquire(out, run_id="A", run_date=NIGHT)
    # the same pid, but the process that took the lock started at another time
    storage.write_json(
        lock.lock_path(out),
        {**h, "process": {**h["process"], "start_ticks": h["process"]["start_ticks"] - 1}},
    )
    assert lock.acquire(out, run_id="B", run_date=NIGHT)["run_id"] == "B"


def _race(out: str, run_id: str, env: dict, barrier, results, done) -> None:
    # the fork server's environment is the parent's when the server started, perhaps before
    # the moto server's settings were set: take the parent's of now, and a client for them
    os.environ.clear()
    os.environ.update(env)
    storage._client.cache_clear()
    barrier.wait(timeout=60)
    try:
        h = lock.acquire(out, run_id=run_id, run_date=NIGHT)
        results.put((run_id, True, h["run_id"]))
    except lock.LockHeld as exc:
        results.put((run_id, False, exc.holder["run_id"]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((run_id, None, repr(exc)))
    # stay until all have tried: a winner that exits early leaves a lock of a process that
    # is gone, which a late racer rightly breaks
    done.wait(timeout=120)


def _race_8(out: str) -> list[tuple]:
    """Eight processes, started together, each try once to take the lock."""
    # forked from a clean server process: no fork of the moto server's threads, and no fresh
    # interpreter importing boto3 per racer either
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["boto3", "therapy_claims.lock", __name__])
    barrier, results, done = ctx.Barrier(8), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_race, args=(out, f"P{i}", dict(os.environ), barrier, results, done))
        for i in range(8)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=120) for _ in procs]
        # the winner still runs: nobody may take its lock now
        with pytest.raises(lock.LockHeld):
            lock.acquire(out, run_id="late", run_date=NIGHT)
    finally:
        done.set()
        for p in procs:
            p.join(timeout=60)
    return got


def test_eight_processes_racing_for_a_free_lock_one_wins(out):
    got = _race_8(out)
    assert [g for g in got if g[1] is None] == []
    winners = [run_id for run_id, won, _ in got if won]
    assert len(winners) == 1
    assert {seen for _, won, seen in got if not won} == set(winners)  # losers name the winner
    assert lock.holder(out)["run_id"] == winners[0]


def test_eight_processes_racing_to_break_a_stale_lock_one_wins(out):
    storage.write_json(lock.lock_path(out), _stale_holder())
    got = _race_8(out)
    assert [g for g in got if g[1] is None] == []
    winners = [run_id for run_id, won, _ in got if won]
    assert len(winners) == 1
    assert {seen for _, won, seen in got if not won} == set(winners)
    assert lock.holder(out)["run_id"] == winners[0]


def test_s3_take_over_is_conditional_on_the_etag_read(bucket):
    """Two runs that both read the same stale lock: only the first write matches its ETag, and
    neither a create nor a delete goes through over a lock it did not read."""
    out = f"s3://{bucket}/out"
    storage.write_json(lock.lock_path(out), _stale_holder())
    first, second = lock._S3Store(out), lock._S3Store(out)
    (stale, tag1), (_, tag2) = first.read(), second.read()
    assert stale["run_id"] == "crashed" and tag1 == tag2
    assert first.replace({**stale, "run_id": "B"}, tag1)
    assert not second.replace({**stale, "run_id": "C"}, tag2)
    assert not second.create({**stale, "run_id": "C"})
    assert not second.delete(tag2)
    assert lock.holder(out)["run_id"] == "B"


def test_release_by_another_run_leaves_the_lock(out, caplog):
    lock.acquire(out, run_id="A", run_date=NIGHT)
    with caplog.at_level(logging.WARNING, logger="therapy_claims.lock"):
        lock.release(out, "B")
    assert lock.holder(out)["run_id"] == "A"
    assert "held by run A" in caplog.text
    lock.release(out, "A")
    assert lock.holder(out) is None
    lock.release(out, "A")  # nothing left: a warning, not an error


def test_break_lock_removes_any_holder(out):
    assert lock.break_lock(out) is None
    lock.acquire(out, run_id="A", run_date=NIGHT)
    assert lock.break_lock(out)["run_id"] == "A"
    assert lock.holder(out) is None
    assert lock.break_lock(out) is None


def test_an_unreadable_lock_is_respected_until_unlocked(out):
    storage.write_bytes(lock.lock_path(out), b"{not json")
    with pytest.raises(lock.LockHeld, match="locked by an unreadable lock file"):
        lock.acquire(out, run_id="A", run_date=NIGHT)
    assert lock.break_lock(out) == {"unreadable": True}
    assert lock.acquire(out, run_id="A", run_date=NIGHT)["run_id"] == "A"


def test_held_releases_on_errors_too(out):
    with pytest.raises(ValueError, match="boom"):
        with lock.held(out, run_id="A", run_date=NIGHT) as h:
            assert lock.holder(out) == h
            raise ValueError("boom")
    assert lock.holder(out) is None


def test_held_keeps_the_blocks_error_when_release_fails(tmp_path, monkeypatch):
    def unreachable(out, run_id):
        raise OSError("storage unreachable")

    monkeypatch.setattr(lock, "release", unreachable)
    with pytest.raises(ValueError, match="boom"):
        with lock.held(str(tmp_path / "out"), run_id="A", run_date=NIGHT):
            raise ValueError("boom")


def test_the_command_is_stored_without_passwords(out):
    cmd = "therapy-claims run --ledger postgresql://claims:s3cret@db.example/ledger --out x"
    h = lock.acquire(out, run_id="A", run_date=NIGHT, command=cmd)
    assert h["command"] == (
        "therapy-claims run --ledger postgresql://***@db.example/ledger --out x"
    )
    assert "s3cret" not in str(lock.holder(out))
