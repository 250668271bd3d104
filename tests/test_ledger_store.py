"""The ledger database, on SQLite and on a real PostgreSQL server: one night owns a claim,
reservations are all or nothing, crashed runs are settled, sent history is never lost."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from therapy_claims import ledger, ledger_store, nights, pipeline
from therapy_claims.config import RunError

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _rows(keys: list[str], run_date: str) -> pd.DataFrame:
    """Ledger rows (as publish writes them) for claims with these keys."""
    return pd.DataFrame(
        {
            "claim_id": keys,
            "claim_key": keys,
            "run_date": run_date,
            "payer_id": "MCR01",
            "clinic_id": "CLN01",
            "patient_id": "P1",
            "encounter_id": [f"E{k}" for k in keys],
            "lines": 2,
            "charge": 120.5,
            "claim_type": "837P",
            "receiver_id": "R1",
            "file": "f.x12",
            "interchange_control_number": "263320001",
        }
    )


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the Debian package on loopback, for this module; its URL."""
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bin_dir = PG_BIN[-1]
    root = Path(tempfile.mkdtemp(prefix="tc-pg-"))
    data = root / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_postgres, f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    # the server's output goes to a log file: a pipe would stay open as long as it runs
    log = root / "server.log"
    subprocess.run(
        [*as_postgres, f"{bin_dir}/pg_ctl", "-D", str(data), "-o", opts, "-l", str(log), "-w"]
        + ["start"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url
    finally:
        subprocess.run(
            [*as_postgres, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    base = request.getfixturevalue("postgres")
    import psycopg

    name = f"tc{time.time_ns()}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + f"/{name}"


def test_a_claim_belongs_to_one_night(url):
    store = ledger_store.Store(url)
    store.reserve("r1", "2026-11-28", _rows(["TCA", "TCB"], "2026-11-28"))
    assert store.sent_keys().empty  # reserved, not sent, until the run is committed
    assert store.mark_sent("r1") == 2
    # another night with one of the claims: refused whole, nothing of it recorded
    with pytest.raises(RunError, match=r"already owned by another night.*TCB.*2026-11-28"):
        store.reserve("r2", "2026-11-29", _rows(["TCB", "TCC"], "2026-11-29"))
    assert store.query("SELECT claim_key FROM claim_keys ORDER BY 1") == [("TCA",), ("TCB",)]
    assert store.query("SELECT count(*) FROM runs WHERE run_id = 'r2'") == [(0,)]
    # a rerun of the same night sends some of them again: they stay the night's, as first sent
    store.reserve("r3", "2026-11-28", _rows(["TCA"], "2026-11-28"))
    store.mark_sent("r3")
    sent = store.sent_keys(run_date="2026-11-28")
    assert list(zip(sent["claim_key"], sent["run_id"], strict=True)) == [
        ("TCA", "r1"),
        ("TCB", "r1"),
    ]
    owned = store.owned_elsewhere(["TCA", "TCZ"], "2026-11-30")
    assert owned.to_dict("records") == [
        {"claim_key": "TCA", "run_date": "2026-11-28", "run_id": "r1"}
    ]
    assert store.owned_elsewhere(["TCA"], "2026-11-28").empty  # its own night
    store.close()


def test_reconcile_settles_crashed_runs_against_the_manifests(url):
    store = ledger_store.Store(url)
    store.reserve("committed", "2026-11-28", _rows(["TCA"], "2026-11-28"))
    store.reserve("crashed", "2026-11-29", _rows(["TCB"], "2026-11-29"))
    settled = store.reconcile({"2026-11-28": "committed"})
    assert settled == {"sent": 1, "released": 1}
    assert store.sent_keys()["claim_key"].tolist() == ["TCA"]
    assert store.query("SELECT run_id, state FROM runs ORDER BY 1") == [
        ("committed", "committed"),
        ("crashed", "abandoned"),
    ]
    # the crashed run's claim is free again: another night may bill it
    store.reserve("r4", "2026-11-30", _rows(["TCB"], "2026-11-30"))
    store.close()


def test_a_night_runs_with_its_ledger_on_postgres(postgres, tmp_path):
    """The whole pipeline with ``--ledger postgresql://...``: sent claims land there, and a
    second night holds the same visits ALREADY_BILLED."""
    from nights import write_night

    write_night(str(tmp_path / "landing"), encounters=60)
    m = {}
    for rd in ("2026-11-28", "2026-11-29"):
        cfg = pipeline.RunConfig(
            inputs=[str(tmp_path / "landing")],
            out=str(tmp_path / "out"),
            run_date=pipeline.parse_run_date(rd),
            ledger=postgres,
        )
        m[rd] = pipeline.run(cfg, parallel=False)
    assert not (tmp_path / "out" / ".ledger").exists()  # nothing on the local disk
    sent = ledger.read(str(tmp_path / "out"), ledger=postgres)
    first = nights.committed(str(tmp_path / "out"), "2026-11-28")
    assert len(sent) == sum(f["claims"] for f in first["claim_files"]) > 0
    assert set(sent["run_date"]) == {"2026-11-28"}
    assert m["2026-11-29"]["lines_billed"] == 0
    assert m["2026-11-29"]["exceptions_by_code"]["ALREADY_BILLED"] > 0


def test_an_s3_output_must_name_its_ledger(monkeypatch):
    monkeypatch.delenv(ledger_store.ENV, raising=False)
    with pytest.raises(RunError, match="--ledger"):
        ledger_store.location("s3://bucket/out")
    assert ledger_store.location("/data/out") == "/data/out/.ledger/ledger.sqlite"


def _version_rows(key: str, version: int, run_date: str, frequency: str) -> pd.DataFrame:
    """The ledger rows of a later sending of claim ``key`` (a replacement, void or resend)."""
    rows = _rows([key], run_date)
    rows["claim_id"] = ledger_store.versioned_id(key, version)
    rows["version"] = version
    rows["frequency_code"] = frequency
    rows["original_claim_id"] = key
    return rows


def test_each_version_of_a_claim_is_sent_once_on_either_database(url):
    """Issue 17's corrections on SQLite and PostgreSQL alike: a replacement is version 1 of
    the claim, reserved with its run and sent when the run commits; another night cannot
    take the same version; a crashed run's version is free again after reconcile; a rerun of
    the night keeps its version."""
    key = "TC0123456789ABCDEF"[:17]
    store = ledger_store.Store(url)
    store.reserve("n1", "2026-11-28", _rows([key], "2026-11-28"))
    store.mark_sent("n1")
    v1 = _version_rows(key, 1, "2026-11-30", "7")
    assert v1["claim_id"].iloc[0] != key and ledger_store.version_of(v1["claim_id"].iloc[0]) == 1
    store.reserve("n2", "2026-11-30", v1)
    assert store.versions([key])[["version", "run_date", "state"]].to_dict("records") == [
        {"version": 1, "run_date": "2026-11-30", "state": "reserved"}
    ]
    assert store.mark_sent("n2") == 1
    # another night deciding the same version: refused whole, nothing of it recorded
    with pytest.raises(RunError, match=r"version 1 of claim .* conflicts with version 1"):
        store.reserve("n3", "2026-12-01", _version_rows(key, 1, "2026-12-01", "8"))
    assert store.query("SELECT count(*) FROM runs WHERE run_id = 'n3'") == [(0,)]
    # a rerun of night 11-30 keeps its version; night 12-01 may send version 2 (a void)
    store.reserve("n2b", "2026-11-30", v1)
    store.mark_sent("n2b")
    store.reserve("crash", "2026-12-01", _version_rows(key, 2, "2026-12-01", "8"))
    assert store.reconcile({}) == {"sent": 0, "released": 1}  # its night never committed
    assert store.versions([key])["version"].tolist() == [1]
    store.reserve("n4", "2026-12-01", _version_rows(key, 2, "2026-12-01", "8"))
    store.mark_sent("n4")
    got = store.versions([key])
    assert got[["version", "run_date", "run_id", "frequency_code", "state"]].to_dict(
        "records"
    ) == [
        {"version": 1, "run_date": "2026-11-30", "run_id": "n2", "frequency_code": "7",
         "state": "committed"},
        {"version": 2, "run_date": "2026-12-01", "run_id": "n4", "frequency_code": "8",
         "state": "committed"},
    ]  # fmt: skip
    assert set(store.sent_keys()["run_date"]) == {"2026-11-28", "2026-11-30", "2026-12-01"}
    store.close()
