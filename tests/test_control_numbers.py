"""Interchange control numbers (ISA13/GS06, BHT03's prefix) are unique per submitter for ever.

The ledger database gives each claim file its number: the number its content (the file with
its control numbers normalised) already carried for that submitter and receiver, else the next
of the submitter's counter. So a rerun of unchanged content writes byte-identical files, changed
content gets numbers the submitter never used, and neither a crash nor runs at once make a
number carry two contents. Checked here on the database (SQLite and PostgreSQL) and on whole
nights; every claim file written is checked with pyx12.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from test_ledger_store import postgres, url  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import generate, ledger_store, nights, pipeline, storage
from therapy_claims.config import RunError
from therapy_claims.x12 import envelope

RD = "2026-11-28"
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def _night(folder: Path, *, seed: int = 5, drop: int = 0) -> Path:
    """A synthetic night in ``folder``; ``drop``: leave out that many encounters (of the first
    clinic) to change the content of some claim files."""
    df = generate.generate(90, seed=seed, run_date=date.fromisoformat(RD), problem_rate=0.0)
    if drop:
        gone = df.loc[df["clinic_id"] == "CLN01", "encounter_id"].drop_duplicates().head(drop)
        df = df[~df["encounter_id"].isin(gone)]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    df.to_csv(folder / "night.csv", index=False)
    return folder


def _run(landing: Path, out: Path, ledger: str | None = None) -> dict:
    cfg = pipeline.RunConfig(
        inputs=[str(landing)], out=str(out), run_date=date.fromisoformat(RD), ledger=ledger
    )
    return pipeline.run(cfg, parallel=False)


def _elements(text: bytes) -> dict[str, list[str]]:
    """ISA06, ISA13, GS06, GE02, IEA02 and every BHT03 of an interchange."""
    segs = [s.split("*") for s in text.decode("ascii").split("~\n") if s]
    first = {s[0]: s for s in reversed(segs)}
    return {
        "ISA06": [first["ISA"][6].strip()],
        "ISA13": [first["ISA"][13]],
        "GS06": [first["GS"][6]],
        "GE02": [first["GE"][2]],
        "IEA02": [first["IEA"][2]],
        "BHT03": [s[3] for s in segs if s[0] == "BHT"],
    }


def _files(out: Path) -> dict[str, bytes]:
    """The committed night's claim files: name -> bytes."""
    m = nights.committed(str(out), RD)
    return {storage.name(f["path"]): storage.read_bytes(f["path"]) for f in m["claim_files"]}


def _numbers(files: dict[str, bytes]) -> dict[str, tuple[str, int]]:
    """name -> (submitter, ISA13), after checking the file's numbers agree with each other,
    its name and pyx12."""
    found = {}
    for name, data in files.items():
        el = _elements(data)
        isa13 = int(el["ISA13"][0])
        assert el["ISA13"][0] == el["IEA02"][0] == f"{isa13:09d}", name
        assert el["GS06"] == el["GE02"] == [str(isa13)], name
        assert el["BHT03"] and all(b == f"{isa13}{i:04d}" for i, b in enumerate(el["BHT03"], 1))
        assert name.endswith(f"_{el['ISA06'][0]}_{isa13:09d}.x12"), name
        found[name] = (el["ISA06"][0], isa13)
    return found


def _assert_valid(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        ok, report = pyx12_validate(data.decode("ascii"))
        assert ok and "IK5*A" in report, (name, report)
        assert independent_checks(data.decode("ascii")) == [], name


def _db_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT submitter_id, control_number, receiver_id, content_sha256, first_run_id "
            "FROM control_numbers ORDER BY 1, 2"
        ).fetchall()


def _assert_db_agrees(db: Path, files: dict[str, bytes]) -> None:
    """Every file's (submitter, ISA13) is recorded in the database with the file's content."""
    recorded = {(s, n): (r, digest) for s, n, r, digest, _ in _db_rows(db)}
    for name, data in files.items():
        el = _elements(data)
        key = (el["ISA06"][0], int(el["ISA13"][0]))
        assert recorded[key][1] == envelope.content_digest(data), name


# --------------------------------------------------------------------------- the digest


def test_the_digest_ignores_the_control_numbers_alone(tmp_path):
    landing = _night(tmp_path / "landing")
    _run(landing, tmp_path / "out")
    data = next(iter(_files(tmp_path / "out").values()))
    digest = envelope.content_digest(data)
    assert envelope.content_digest(envelope.renumber(data, 42)) == digest
    assert envelope.content_digest(data.decode("ascii")) == digest
    changed = data.replace(b"CLM*", b"CLM*X", 1)  # one byte of content more
    assert envelope.content_digest(changed) != digest


def test_the_legacy_ceiling_bounds_every_number_of_the_old_scheme():
    days = [date(2026, 11, 28), date(2099, 12, 31), date(2100, 1, 1)]  # the year wraps
    assert envelope.legacy_ceiling(days) == 993659999
    assert envelope.legacy_ceiling([]) == 0
    assert all(envelope.control_number(d, 9999) <= envelope.legacy_ceiling(days) for d in days)


# --------------------------------------------------------------------------- the database


def test_same_content_same_number_new_content_next_number_per_submitter(url):  # noqa: F811
    store = ledger_store.Store(url)
    first = store.control_numbers(
        "r1", RD, [("SUBA", "R1", "a" * 64), ("SUBA", "R2", "b" * 64), ("SUBB", "R1", "a" * 64)]
    )
    assert first == [1, 2, 1]  # two submitters, two counters
    # a rerun: the same content keeps its number; changed content gets the next one; the same
    # digest to another receiver is other content
    again = store.control_numbers(
        "r2", RD, [("SUBA", "R1", "a" * 64), ("SUBA", "R2", "c" * 64), ("SUBA", "R3", "a" * 64)]
    )
    assert again == [1, 3, 4]
    assert store.control_numbers("r3", RD, [("SUBA", "R2", "b" * 64)]) == [2]  # content b again
    assert store.control_numbers("r4", RD, [("SUBB", "R9", "d" * 64)]) == [2]
    rows = store.query("SELECT submitter_id, control_number FROM control_numbers ORDER BY 1, 2")
    assert rows == [("SUBA", 1), ("SUBA", 2), ("SUBA", 3), ("SUBA", 4), ("SUBB", 1), ("SUBB", 2)]
    store.close()


def test_a_submitter_stops_at_isa13_s_last_number(url):  # noqa: F811
    store = ledger_store.Store(url)
    store.control_numbers("r1", RD, [("SUBA", "R1", "a" * 64)])
    store.raise_floor(999_999_997)  # as if the counter had come this far
    with pytest.raises(RunError, match=r"SUBA has no interchange control numbers left"):
        store.control_numbers("r2", RD, [("SUBA", "R1", f"{i}" * 64) for i in range(1, 4)])
    # nothing of the refused request was kept: the last two numbers are still there
    assert store.control_numbers("r3", RD, [("SUBA", "R1", "a" * 64)]) == [1]
    assert store.control_numbers("r4", RD, [("SUBA", "R1", f"{i}" * 64) for i in (5, 6)]) == [
        999_999_998,
        999_999_999,
    ]
    with pytest.raises(RunError, match="999,999,999"):
        store.control_numbers("r5", RD, [("SUBA", "R1", "7" * 64)])
    assert store.control_numbers("r6", RD, [("SUBB", "R1", "7" * 64)]) == [999_999_998]
    store.close()


def test_a_database_failure_while_numbering_is_one_line_naming_it(tmp_path):
    db = tmp_path / "ledger.sqlite"
    store = ledger_store.Store(str(db))
    with sqlite3.connect(db) as conn:  # a database that cannot number (a broken table)
        conn.execute("DROP TABLE control_counters")
    with pytest.raises(RunError, match=rf"number claim files in ledger database {db}: .*"):
        store.control_numbers("r1", RD, [("SUBA", "R1", "a" * 64)])
    assert store.query("SELECT count(*) FROM control_numbers") == [(0,)]  # nothing kept
    store.close()


def test_a_legacy_ledger_continues_above_its_old_numbers(tmp_path):
    """A database written before control numbers were counted (runs of nights numbered
    YYDDD + sequence): the counters start above every number those nights could have used."""
    db = tmp_path / "ledger.sqlite"
    with sqlite3.connect(db) as conn:  # the tables as the previous version made them
        conn.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, run_date TEXT NOT NULL, "
            "state TEXT NOT NULL, reserved_at TEXT NOT NULL, settled_at TEXT)"
        )
        conn.executemany(
            "INSERT INTO runs VALUES (?, ?, 'committed', 'x', 'x')",
            [("a", "2026-11-27"), ("b", "2026-12-31"), ("c", "2026-02-01")],
        )
    store = ledger_store.Store(str(db))
    old_numbers = [envelope.control_number(date(2026, 12, 31), s) for s in (1, 9999)]
    got = store.control_numbers("new", "2027-01-02", [("SUBA", "R1", "a" * 64)])
    assert got == [max(old_numbers) + 1] == [263660000]
    store.close()


def test_a_new_database_beside_published_nights_continues_above_their_numbers(url):  # noqa: F811
    """A database taking in ledger layers (published before it, or after it was lost):
    every number those layers recorded stays used."""
    store = ledger_store.Store(url)
    rows = pd.DataFrame(
        {
            "claim_key": ["TCA", "TCB"],
            "run_date": RD,
            "interchange_control_number": ["000000412", "000000007"],
        }
    )
    store.import_rows(rows, run_id="adopted")
    assert store.control_numbers("r1", RD, [("SUBA", "R1", "a" * 64)]) == [413]
    store.close()


def _number_many(db: str, who: int, n: int, out) -> None:
    store = ledger_store.Store(db)
    got = []
    for i in range(n):  # each call its own transaction: the runs interleave
        files = [("SUBA", "R1", f"{who}-{i}-{k}".ljust(64, "x")) for k in range(2)]
        files.append(("SUBA", "R1", "shared".ljust(64, "x")))  # the same content everywhere
        got += store.control_numbers(f"run-{who}", RD, files)
    store.close()
    out.put(got)


def test_runs_numbering_at_once_never_share_a_number(tmp_path):
    """Four processes number files on one SQLite database at once: new content never gets a
    number another has, and content they all have gets one number."""
    db = str(tmp_path / "ledger.sqlite")
    ledger_store.Store(db).close()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_number_many, args=(db, w, 15, queue)) for w in range(4)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    own = [n for g in got for i, n in enumerate(g) if i % 3 != 2]
    shared = {n for g in got for i, n in enumerate(g) if i % 3 == 2}
    assert len(own) == len(set(own)) == 4 * 15 * 2 and len(shared) == 1
    assert not shared & set(own)


def test_threads_numbering_at_once_on_one_database_never_share_a_number(url):  # noqa: F811
    """The same on PostgreSQL (and SQLite), each thread with its own connection."""
    ledger_store.Store(url).close()
    results: dict[int, list[int]] = {}

    def work(who: int) -> None:
        store = ledger_store.Store(url)
        results[who] = []
        for i in range(10):
            files = [("SUBA", "R1", f"{who}-{i}".ljust(64, "x")), ("SUBA", "R1", "s" * 64)]
            results[who] += store.control_numbers(f"run-{who}", RD, files)
        store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    own = [n for g in results.values() for n in g[0::2]]
    shared = {n for g in results.values() for n in g[1::2]}
    assert len(own) == len(set(own)) == 40 and len(shared) == 1 and not shared & set(own)


# --------------------------------------------------------------------------- whole nights


def test_a_rerun_of_the_same_night_writes_the_same_bytes(tmp_path):
    landing, out = _night(tmp_path / "landing"), tmp_path / "out"
    _run(landing, out)
    first = _files(out)
    numbers = _numbers(first)
    assert len({s for s, _ in numbers.values()}) >= 2  # more than one submitter
    # a fresh database: each submitter counts from 1, on its own
    for submitter in {s for s, _ in numbers.values()}:
        mine = sorted(n for s, n in numbers.values() if s == submitter)
        assert mine == list(range(1, len(mine) + 1)), submitter
    _assert_valid(first)
    _run(landing, out)
    assert _files(out) == first
    _assert_db_agrees(out / ".ledger" / "ledger.sqlite", first)


def test_changed_content_on_the_same_night_gets_new_numbers(tmp_path):
    landing, out = _night(tmp_path / "landing"), tmp_path / "out"
    db = out / ".ledger" / "ledger.sqlite"
    _run(landing, out)
    first = _files(out)
    before = _numbers(first)
    used = {(s, n) for s, n, *_ in _db_rows(db)}
    _night(landing, drop=2)  # two encounters fewer: some files change
    _run(landing, out)
    second = _files(out)
    after = _numbers(second)
    _assert_valid(second)
    changed = {k for k, data in second.items() if data not in first.values()}
    kept = set(second) - changed
    assert changed and kept  # some files changed, some did not
    for name in kept:  # unchanged content: its number and bytes, as before
        assert after[name] == before[name]
    for name in changed:  # new ISA13/GS06/BHT03: a number that submitter never used
        submitter, number = after[name]
        assert (submitter, number) not in used
        assert number > max(n for s, n in used if s == submitter)
    _assert_db_agrees(db, second)
    # the first content again: the first numbers again, the same bytes
    _night(landing)
    _run(landing, out)
    assert _files(out) == first
    assert len(_db_rows(db)) == len(used) + len(changed)


def _crash_child(landing: str, out: str) -> None:
    """Run the night; SIGKILL this process as the first claim file is written (its number
    is committed in the database by then, and nothing is published)."""
    write_bytes = storage.write_bytes

    def write(path, data):
        if str(path).endswith(".x12"):
            os.kill(os.getpid(), signal.SIGKILL)
        return write_bytes(path, data)

    storage.write_bytes = write
    _run(Path(landing), Path(out))
    os._exit(0)


def test_a_crash_after_numbering_never_lets_a_number_carry_other_content(tmp_path):
    landing, out = _night(tmp_path / "landing"), tmp_path / "out"
    db = out / ".ledger" / "ledger.sqlite"
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_crash_child, args=(str(landing), str(out)))
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    assert nights.committed(str(out), RD) is None  # nothing published
    crashed = {(s, n): digest for s, n, _, digest, _ in _db_rows(db)}
    assert crashed  # the numbers were taken before the crash
    # the next run has other content: none of the crashed run's numbers is used for it
    _night(landing, drop=3)
    _run(landing, out)
    files = _files(out)
    _assert_valid(files)
    for name, (submitter, number) in _numbers(files).items():
        if (submitter, number) in crashed:
            assert crashed[(submitter, number)] == envelope.content_digest(files[name]), name
    assert any(_numbers(files)[k] not in crashed for k in files)  # changed files: new numbers
    _assert_db_agrees(db, files)
    # the crashed run's content comes again: it gets the numbers the crash left it
    _night(landing)
    _run(landing, out)
    again = _files(out)
    assert {_numbers(again)[k] for k in again} == set(crashed)
    _assert_db_agrees(db, again)


def test_two_outputs_on_one_ledger_at_once_never_share_a_number(tmp_path):
    """Two runs at once (two outputs, so two locks) number their files in one ledger
    database: each submitter's numbers are never shared between different content."""
    db = tmp_path / "shared" / "ledger.sqlite"
    procs = []
    for seed in (5, 6):
        landing = _night(tmp_path / f"landing{seed}", seed=seed)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        cmd = [sys.executable, "-m", "therapy_claims.cli", "run", "--input", str(landing)]
        cmd += ["--out", str(tmp_path / f"out{seed}"), "--run-date", RD, "--quiet"]
        cmd += ["--ledger", str(db)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 1), err
    files = [_files(tmp_path / f"out{seed}") for seed in (5, 6)]
    numbers = [set(_numbers(f).values()) for f in files]
    assert numbers[0] and numbers[1] and not numbers[0] & numbers[1]
    for f in files:
        _assert_db_agrees(db, f)
    assert len(_db_rows(db)) == sum(len(f) for f in files)
