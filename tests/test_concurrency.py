"""Runs at once into one output: two nights, and one night twice. One holds the output's lock;
the other exits 2 naming the holder, or waits (``--wait``) and then runs. Either way no claim
ends up in two nights' files, and the ledger database agrees with the files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from therapy_claims import generate, ledger, nights, pipeline, storage
from therapy_claims.x12 import envelope, reader

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("concurrent-landing")
    df = generate.generate(150, seed=9, run_date=pipeline.parse_run_date("2026-11-28"))
    df.to_csv(root / "night.csv", index=False)
    return root


def _start(landing: Path, out: Path, run_date: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "therapy_claims.cli", "run", "--input", str(landing)]
        + ["--out", str(out), "--run-date", run_date, "--quiet", *extra],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _when_locked(out: Path, proc: subprocess.Popen) -> None:
    """Wait until ``proc`` holds the output's lock."""
    lock_file = out / ".lock" / "run.json"
    for _ in range(600):
        if lock_file.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert lock_file.exists(), "the first run never took the lock"


def _claims_by_night(out: Path) -> dict[str, set[str]]:
    """The claim keys in each committed night's claim files."""
    found = {}
    for rd, m in nights.all_committed(str(out)).items():
        keys = set()
        for f in m["claim_files"]:
            keys |= {c.id.split("-")[0] for c in reader.claims(storage.read_bytes(f["path"]))}
        found[rd] = keys
    return found


def test_a_second_night_at_once_exits_2_naming_the_holder(landing, tmp_path):
    out = tmp_path / "out"
    first = _start(landing, out, "2026-11-28")
    _when_locked(out, first)
    second = _start(landing, out, "2026-11-29")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "locked by run" in lines[0] and "2026-11-28" in lines[0]
    assert "--wait" in lines[0] and "Traceback" not in err
    first.communicate(timeout=300)
    assert first.returncode in (0, 1)
    assert list(nights.all_committed(str(out))) == ["2026-11-28"]


@pytest.mark.parametrize("second_night", ["2026-11-29", "2026-11-28"], ids=["two-nights", "same"])
def test_with_wait_the_runs_queue_and_no_claim_is_billed_twice(landing, tmp_path, second_night):
    """Two nights holding the same visits, or one night twice, started together with --wait:
    they run one after the other; the visits are billed once (the second night holds them
    ALREADY_BILLED; the same night's rerun sends the same claims again under the night)."""
    out = tmp_path / "out"
    first = _start(landing, out, "2026-11-28", "--wait")
    _when_locked(out, first)
    second = _start(landing, out, second_night, "--wait")
    for proc in (first, second):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 1), err
    by_night = _claims_by_night(out)
    assert by_night["2026-11-28"]
    if second_night != "2026-11-28":
        assert not by_night["2026-11-28"] & by_night[second_night]
        m = nights.committed(str(out), second_night)
        assert m["exceptions_by_code"].get("ALREADY_BILLED", 0) > 0 and m["lines_billed"] == 0
    sent = ledger.read(str(out))
    assert set(sent["claim_key"]) == set().union(*by_night.values())
    assert set(sent["run_date"]) == {"2026-11-28"}
    # every committed file's control number is its own in the ledger database (one number,
    # one content: the database's primary key); the nights' files never share one
    with sqlite3.connect(out / ".ledger" / "ledger.sqlite") as conn:
        rows = conn.execute(
            "SELECT submitter_id, control_number, content_sha256 FROM control_numbers"
        ).fetchall()
    numbers = {(s, n): d for s, n, d in rows}
    seen = set()
    for m in nights.all_committed(str(out)).values():
        for f in m["claim_files"]:
            data = storage.read_bytes(f["path"])
            isa = data.split(b"~", 1)[0].decode("ascii").split("*")
            key = (isa[6].strip(), int(isa[13]))
            assert numbers[key] == envelope.content_digest(data) and key not in seen
            seen.add(key)
