"""A crash (SIGKILL) at every step of publishing a night, on a first run and on a rerun.

Each crash runs the night in a forked child that kills itself at one step: the n-th write,
delete or ledger transaction of that kind after publish starts. After each crash the test
checks what a reader sees (the old night or the new one, whole), that the ledger database and
the claim files agree, and that the next run converges: one committed run whose claims are
exactly the ledger's sent claims of the night, nothing left reserved, no claim in two nights.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from therapy_claims import generate, ledger_store, nights, pipeline, runtime, storage
from therapy_claims.x12 import envelope, reader

RD = "2026-11-28"

# every kind of step publish and the commit take, in order, each wrapped to count and kill:
# claim files, the ledger layer, the work files, reserving the claims (before it and inside its
# transaction), the run report, the manifest (the commit), marking the claims sent, and the
# clean-up of the staging area. (The scored and exceptions layers are written in the background
# while score and publish run; a crash then is a crash before the commit, covered by these.)
STEPS = [
    ("write", "claims"),
    ("write", "ledger"),
    ("write", "work"),
    ("reserve", ""),
    ("reserve-inside", ""),
    ("write", "reports"),
    ("write", "manifest"),
    ("mark_sent", ""),
    ("delete", ".staging"),
]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    import therapy_claims.gx_checks  # noqa: F401  (imported once here, not in every child)

    root = tmp_path_factory.mktemp("crash-landing")
    df = generate.generate(90, seed=5, run_date=pipeline.parse_run_date(RD), problem_rate=0.1)
    df.to_csv(root / "night.csv", index=False)
    return root


def _cfg(landing: Path, out: Path) -> pipeline.RunConfig:
    return pipeline.RunConfig(
        inputs=[str(landing)], out=str(out), run_date=pipeline.parse_run_date(RD)
    )


def _kind_of(path: str) -> str:
    for kind in ("claims", "ledger", "reports", "scored", "exceptions", "manifest"):
        if f"/{kind}/" in path:
            return kind
    return "work" if "/.staging/" in path else "other"


def _crash_child(landing: str, out: str, step: tuple[str, str], nth: int) -> None:
    """Run the night; SIGKILL this process at the nth ``step`` once publish has started."""
    seen = {"publishing": False, "n": 0}

    def hit(kind: str, where: str) -> None:
        if seen["publishing"] and (kind, where) == step:
            seen["n"] += 1
            if seen["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    write_bytes, delete_tree = storage.write_bytes, storage.delete_tree

    def counted_write(path, data):
        hit("write", _kind_of(str(path)))
        return write_bytes(path, data)

    def counted_delete(path):
        p = str(path)
        hit("delete", ".staging" if "/.staging/" in p else "other")
        return delete_tree(path)

    reserve, mark_sent, bulk = (
        ledger_store.Store.reserve,
        ledger_store.Store.mark_sent,
        ledger_store.Store._bulk,
    )

    def counted_reserve(self, *a, **k):
        hit("reserve", "")
        return reserve(self, *a, **k)

    def counted_bulk(self, statement, params):
        out = bulk(self, statement, params)
        if statement.startswith("INSERT INTO claim_keys"):  # inside the reserving transaction
            hit("reserve-inside", "")
        return out

    def counted_mark_sent(self, run_id):
        hit("mark_sent", "")
        return mark_sent(self, run_id)

    publish = runtime.publish

    def publishing(*a, **k):
        seen["publishing"] = True
        return publish(*a, **k)

    storage.write_bytes, storage.delete_tree = counted_write, counted_delete
    ledger_store.Store.reserve, ledger_store.Store.mark_sent = counted_reserve, counted_mark_sent
    ledger_store.Store._bulk = counted_bulk
    runtime.publish = publishing
    pipeline.run(_cfg(Path(landing), Path(out)), parallel=False)
    os._exit(0)  # the step never came: exit 0 tells the test


def _crash(landing: Path, out: Path, step, nth: int = 1) -> int:
    """Run the night in a forked child that crashes at the step; its exit code (-9: killed)."""
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_crash_child, args=(str(landing), str(out), step, nth))
    child.start()
    child.join(300)
    return child.exitcode


def _claims_in(folder: str) -> set[str]:
    """The claim keys (CLM01 without a split part's suffix) in a folder's claim files."""
    ids = set()
    for path in storage.list_files(folder):
        if path.endswith(".x12"):
            ids |= {c.id.split("-")[0] for c in reader.claims(storage.read_bytes(path))}
    return ids


def _reader_view(out: Path) -> tuple[str, set[str]] | None:
    """What a reader of the night sees: the committed run and its claims, after checking the
    night is whole (every file the manifest lists is there with its checksum, the tables hold
    the rows it counts, and the ledger layer lists exactly the claims in the claim files)."""
    m = nights.committed(str(out), RD)
    if m is None:
        return None
    for f in m["claim_files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]
    scored = storage.read_parquet(storage.join(m["outputs"]["scored"], "scored.parquet"))
    assert len(scored) == m["rows_scored"]
    claims = _claims_in(m["outputs"]["claims"])
    assert sum(f["claims"] for f in m["claim_files"]) == len(claims)
    layer = storage.read_parquet(storage.join(m["outputs"]["ledger"], "ledger.parquet"))
    assert set(layer["claim_key"]) == claims
    return m["run_id"], claims


def _ledger_rows(out: Path) -> list[tuple]:
    db = Path(out) / ".ledger" / "ledger.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:  # a claim is sent when its first run is committed
        return conn.execute(
            "SELECT k.claim_key, k.first_run_id, CASE r.state WHEN 'committed' THEN 'sent' "
            "ELSE r.state END, k.run_date FROM claim_keys k "
            "JOIN runs r ON r.run_id = k.first_run_id"
        ).fetchall()


def _numbers_agree(out: Path, numbers_before: dict) -> dict:
    """Every committed claim file's (ISA06, ISA13) is in the ledger database with the file's
    content, and no number the database gave before carries other content now. Returns the
    database's numbers: (submitter, number) -> content digest."""
    db = Path(out) / ".ledger" / "ledger.sqlite"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT submitter_id, control_number, content_sha256 FROM control_numbers"
        ).fetchall()
    numbers = {(s, n): d for s, n, d in rows}
    assert all(numbers.get(k) == d for k, d in numbers_before.items())
    m = nights.committed(str(out), RD)
    for f in m["claim_files"] if m else []:
        data = storage.read_bytes(f["path"])
        isa = data.split(b"~", 1)[0].decode("ascii").split("*")
        assert numbers[(isa[6].strip(), int(isa[13]))] == envelope.content_digest(data)
    return numbers


def _converged(landing: Path, out: Path, sent_before: set[str]) -> None:
    """The next run of the night converges: the ledger's sent claims of the night are the
    committed files' claims, nothing is left reserved, no claim sent before is forgotten."""
    pipeline.run(_cfg(landing, out), parallel=False)
    run_id, claims = _reader_view(out)
    rows = _ledger_rows(out)
    assert not [r for r in rows if r[2] == "reserved"]
    assert {r[0] for r in rows if r[2] == "sent" and r[3] == RD} == claims
    assert sent_before <= {r[0] for r in rows if r[2] == "sent"}
    # one committed run's folders, plus at most the run it replaced
    runs = {p.name for p in (out / "claims" / f"run_date={RD}").iterdir()}
    assert f"run={run_id}" in runs and len(runs) <= 2


@pytest.mark.parametrize("rerun", [False, True], ids=["first-run", "rerun"])
def test_a_crash_at_every_publish_step_leaves_the_old_or_the_new_night(landing, tmp_path, rerun):
    crashed = 0
    for step in STEPS:
        out = tmp_path / f"{'-'.join(step) or 'x'}".replace("/", "_").replace("=", "")
        before = None
        if rerun:
            pipeline.run(_cfg(landing, out), parallel=False)
            before = _reader_view(out)
        sent_before = {r[0] for r in _ledger_rows(out) if r[2] == "sent"}
        numbers_before = _numbers_agree(out, {}) if rerun else {}
        code = _crash(landing, out, step)
        assert code in (-signal.SIGKILL, 0), (step, code)
        crashed += code == -signal.SIGKILL
        view = _reader_view(out)
        if view is None:
            assert not rerun, f"{step}: the previous good night is no longer committed"
        elif before is not None and view[0] == before[0]:
            assert view == before  # the old night, whole
        # the database never says sent what no committed file holds
        committed = view[1] if view else set()
        sent = {r[0] for r in _ledger_rows(out) if r[2] == "sent" and r[3] == RD}
        assert sent <= committed | (before[1] if before else set()), step
        assert sent_before <= {r[0] for r in _ledger_rows(out) if r[2] == "sent"}, step
        numbers = _numbers_agree(out, numbers_before)
        _converged(landing, out, sent_before)
        # the same content throughout: once numbered (all files at once), the runs after
        # reuse the numbers
        assert not numbers or _numbers_agree(out, numbers) == numbers, step
    assert crashed == len(STEPS)  # every step was reached, and crashed


def test_a_crashed_run_s_reservations_do_not_block_another_night(landing, tmp_path):
    """A run killed after reserving its claims (before the manifest) holds no claim: the next
    night's run releases the reservations and bills those visits."""
    out = tmp_path / "out"
    assert _crash(landing, out, ("write", "manifest")) == -signal.SIGKILL
    assert {r[2] for r in _ledger_rows(out)} == {"reserved"}
    cfg = pipeline.RunConfig(
        inputs=[str(landing)], out=str(out), run_date=pipeline.parse_run_date("2026-11-29")
    )
    m = pipeline.run(cfg, parallel=False)
    assert m["lines_billed"] > 0 and "ALREADY_BILLED" not in m["exceptions_by_code"]
    assert {r[3] for r in _ledger_rows(out) if r[2] == "sent"} == {"2026-11-29"}
