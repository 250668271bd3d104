"""``therapy-claims acks``: returned 999, 277CA and 835 files recorded in the ``responses``
layer. Expected row counts are read off the files with a plain split of their text (not the
package's reader); the round trip checks the layer against the payer simulator's own record
(``simulation.json``) and the night's scored layer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from therapy_claims import acks, cli, generate, lock, payer_sim, pipeline, responses, schemas

DATA = Path(__file__).parent / "data" / "responses"
SAMPLES = sorted(DATA.glob("*.x12"))
RD = date(2026, 11, 27)
ON = date(2026, 11, 30)
TABLES = ("acknowledgments", "claim_statuses", "payments", "payment_lines")


def segments(text: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def expected_rows(path: Path) -> dict[str, int]:
    """Rows per table a response file should give, counted from its segments: one per AK2
    (999), per 2200D patient HL (277CA), per CLP and per SVC (835)."""
    segs = segments(path.read_text())
    ids = [s[0] for s in segs]
    st01 = next(s[1] for s in segs if s[0] == "ST")
    rows = dict.fromkeys(TABLES, 0)
    if st01 == "999":
        rows["acknowledgments"] = ids.count("AK2") or 1
    elif st01 == "277":
        rows["claim_statuses"] = sum(1 for s in segs if s[0] == "HL" and s[3] == "PT")
    else:
        rows["payments"], rows["payment_lines"] = ids.count("CLP"), ids.count("SVC")
    return rows


def repeated_clp(path: Path) -> int:
    counts = Counter(s[1] for s in segments(path.read_text()) if s[0] == "CLP")
    return sum(1 for n in counts.values() if n > 1)


def layer(out: Path) -> dict[str, pa.Table]:
    """Every committed run's tables under ``out``, concatenated per table (plus files)."""
    found: dict[str, list[pa.Table]] = {name: [] for name in (*TABLES, "files")}
    for _, _, folder in acks.committed_runs(str(out)):
        for name in found:
            found[name].append(pq.read_table(Path(folder) / f"{name}.parquet"))
    return {name: pa.concat_tables(parts) for name, parts in found.items() if parts}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["acks", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def samples(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in SAMPLES:
        shutil.copy(p, folder / p.name)
    return folder


# ---- (a) round trip through the pipeline and the payer simulator ----------------------------


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A synthetic night's claim files and scored layer, and the simulated responses."""
    root = tmp_path_factory.mktemp("night")
    df = generate.generate(80, seed=3, run_date=RD, problem_rate=0.05)
    generate.write(df, str(root / "landing" / "extract.csv"))
    cfg = pipeline.RunConfig(
        inputs=[str(root / "landing" / "extract.csv")], out=str(root / "out"), run_date=RD
    )
    pipeline.run(cfg)
    claims = Path(cfg.final("claims"))
    answers = root / "answers"
    payer_sim.run(
        str(claims),
        str(answers),
        seed=2,
        reject_share=0.25,
        deny_share=0.2,
        set_reject_share=0.3,
        on=ON,
    )
    record = json.loads((answers / "simulation.json").read_text())
    scored = pq.read_table(
        Path(cfg.final("scored")) / "scored.parquet", columns=["claim_id", "line_id"]
    )
    return claims, answers, {"record": record, "scored": scored}


def test_round_trip_claims_statuses_payments_and_lines(night, tmp_path, capsys):
    claims, answers, made = night
    outcomes = {c["claim_id"]: c["outcome"] for c in made["record"]["claims"]}
    assert {"rejected_999", "rejected_277ca", "denied"} <= set(outcomes.values()), outcomes
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "--input", str(answers), "--out", str(out))
    assert code == 0, stdout
    tables = layer(out)

    past_999 = [c for c, o in outcomes.items() if o != "rejected_999"]
    accepted_277 = [c for c, o in outcomes.items() if o in ("paid", "partially_paid", "denied")]
    assert Counter(tables["claim_statuses"].column("claim_id").to_pylist()) == Counter(past_999)
    assert Counter(tables["payments"].column("claim_id").to_pylist()) == Counter(accepted_277)
    statuses = dict(
        zip(
            tables["claim_statuses"].column("claim_id").to_pylist(),
            tables["claim_statuses"].column("accepted").to_pylist(),
            strict=True,
        )
    )
    assert {c for c, ok in statuses.items() if ok} == set(accepted_277)
    # one acknowledgment per 837 transaction set (one set per claim file)
    assert tables["acknowledgments"].num_rows == len(list(claims.glob("*.x12")))

    scored_lines: dict[str, set[str]] = {}
    for claim_id, line_id in zip(
        made["scored"].column("claim_id").to_pylist(),
        made["scored"].column("line_id").to_pylist(),
        strict=True,
    ):
        scored_lines.setdefault(claim_id, set()).add(line_id)
    lines = tables["payment_lines"]
    assert lines.num_rows > len(accepted_277) / 2
    for claim_id, line_id in zip(
        lines.column("claim_id").to_pylist(), lines.column("line_id").to_pylist(), strict=True
    ):
        assert line_id in scored_lines[claim_id], (claim_id, line_id)

    files = tables["files"].to_pylist()
    by_name = {Path(f["path"]).name: f for f in files}
    assert by_name["simulation.json"]["status"] == "skipped"
    assert {f["status"] for n, f in by_name.items() if n.endswith(".x12")} == {"applied"}
    assert sum(f["rows"] for f in files) == sum(
        t.num_rows for n, t in tables.items() if n in TABLES
    )


# ---- (b) the hand-written samples ----------------------------------------------------------


def test_every_sample_applies_with_the_counted_rows(samples, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        capsys, "--input", str(samples), "--out", str(out), "--received-on", "2026-12-01"
    )
    assert code == 0, stdout
    expected = Counter()
    for p in SAMPLES:
        expected.update(expected_rows(p))
    runs = acks.committed_runs(str(out))
    assert [(d, Path(f).parent.name) for d, _, f in runs] == [
        (date(2026, 12, 1), "received_on=2026-12-01")
    ]
    folder = Path(runs[0][2])
    for name in TABLES:
        table = pq.read_table(folder / f"{name}.parquet")
        assert table.num_rows == expected[name], name
        assert table.schema.remove_metadata() == responses.SCHEMAS[name], name
        meta = table.schema.metadata
        assert meta[schemas.VERSION_KEY] == schemas.SCHEMA_VERSION.encode()
        assert meta[acks.RECEIVED_ON_KEY] == b"2026-12-01"
    files = pq.read_table(folder / "files.parquet").to_pylist()
    assert len(files) == len(SAMPLES)
    for f in files:
        p = Path(f["path"])
        assert f["status"] == "applied" and f["reason"] is None, f
        assert f["rows"] == sum(expected_rows(DATA / p.name).values())
        assert f["repeated_claim_ids"] == repeated_clp(DATA / p.name)
    # the reversal sample names C0000001 twice: kept, and counted
    assert sum(repeated_clp(p) for p in SAMPLES) >= 1
    assert "1 claim id(s) repeated within a file" in stdout
    n835 = sum(1 for p in SAMPLES if responses.kind_of(p.read_bytes()) == "835")
    assert f"835: {n835} file(s): {n835} applied, 0 rejected, 0 skipped, 0 duplicate" in stdout


# ---- (c) a corrupted copy is rejected whole --------------------------------------------------


def _unbalanced(text: str) -> str:
    # a line's paid amount changed: the 835 no longer balances (passes pyx12, fails our check)
    assert "SVC*HC:97530:GP*135*80" in text
    return text.replace("SVC*HC:97530:GP*135*80", "SVC*HC:97530:GP*135*81")


def _cut(text: str) -> str:
    return text[: len(text) // 2]  # no SE/GE/IEA: pyx12 refuses it


@pytest.mark.parametrize("corrupt", [_unbalanced, _cut], ids=["unbalanced", "truncated"])
def test_a_corrupted_sample_is_rejected_whole(corrupt, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "835_paid.x12", folder / "a.x12")
    bad = folder / "b.x12"
    bad.write_text(corrupt((DATA / "835_partial.x12").read_text()))
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "--input", str(folder), "--out", str(out))
    assert code == 1
    tables = layer(out)
    status = {Path(f["path"]).name: f for f in tables["files"].to_pylist()}
    assert status["a.x12"]["status"] == "applied"
    assert status["b.x12"]["status"] == "rejected" and status["b.x12"]["rows"] == 0
    assert len(status["b.x12"]["reason"]) > 10
    for name in TABLES:
        assert str(bad) not in tables[name].column("source_file").to_pylist()
    assert "C0000002-1" not in tables["payments"].column("claim_id").to_pylist()
    assert tables["payments"].num_rows == expected_rows(DATA / "835_paid.x12")["payments"]
    assert f"rejected b.x12: {status['b.x12']['reason']}" in stdout
    # a rejected file is not "applied": the repaired file is applied later
    bad.write_text((DATA / "835_partial.x12").read_text())
    code, _, _ = run_cli(capsys, "--input", str(folder), "--out", str(out))
    assert code == 0
    assert "C0000002-1" in layer(out)["payments"].column("claim_id").to_pylist()


# ---- (d) idempotent ------------------------------------------------------------------------


def test_running_twice_applies_nothing_the_second_time(samples, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "--input", str(samples), "--out", str(out))[0] == 0
    before = layer(out)
    # the second time under another date, and with one file also under a second name
    shutil.copy(samples / "835_paid.x12", samples / "copy_of_paid.dat")
    code, stdout, _ = run_cli(
        capsys, "--input", str(samples), "--out", str(out), "--received-on", "2027-01-02"
    )
    assert code == 0
    after = layer(out)
    for name in TABLES:
        assert after[name].equals(before[name]), name
    runs = acks.committed_runs(str(out))
    assert len(runs) == 2
    second = pq.read_table(Path(runs[-1][2]) / "files.parquet").to_pylist()
    assert len(second) == len(SAMPLES) + 1
    assert {f["status"] for f in second} == {"duplicate"}
    assert all(f["reason"].startswith("applied in received_on=") for f in second)
    assert "0 applied" in stdout and "2 duplicate" in stdout


def test_the_same_content_twice_in_one_run_is_applied_once(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DATA / "835_paid.x12", folder / "one.x12")
    shutil.copy(DATA / "835_paid.x12", folder / "sub" / "two.x12")
    out = tmp_path / "out"
    assert run_cli(capsys, "--input", str(folder), "--out", str(out))[0] == 0
    tables = layer(out)
    assert [f["status"] for f in tables["files"].to_pylist()] == ["applied", "duplicate"]
    assert tables["payments"].num_rows == expected_rows(DATA / "835_paid.x12")["payments"]


# ---- (e) an 837 (and anything else) is skipped -----------------------------------------------


def test_an_837_and_other_files_are_skipped(night, samples, tmp_path, capsys):
    claims, _, _ = night
    sent = sorted(claims.glob("*.x12"))[0]
    shutil.copy(sent, samples / "looks_like_a_response.835")
    (samples / "notes.txt").write_text("not X12 at all\n")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "--input", str(samples), "--out", str(out))
    assert code == 0
    files = {Path(f["path"]).name: f for f in layer(out)["files"].to_pylist()}
    assert files["looks_like_a_response.835"]["status"] == "skipped"
    assert files["looks_like_a_response.835"]["kind"] == "837"
    assert files["notes.txt"]["status"] == "skipped" and files["notes.txt"]["kind"] is None
    assert "other: 2 file(s): 0 applied, 0 rejected, 2 skipped, 0 duplicate" in stdout


# ---- (f) infrastructure failures --------------------------------------------------------------


def test_a_missing_input_exits_2_with_one_line(samples, tmp_path, capsys):
    missing = tmp_path / "not-there"
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, "--input", str(samples), "--input", str(missing), "--out", str(out)
    )
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], err
    assert lines[0].startswith("therapy-claims: error:")
    assert acks.committed_runs(str(out)) == []


def test_a_bad_received_on_date_exits_2(samples, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "--input", str(samples), "--out", str(tmp_path), "--received-on", "2026-13-01"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "2026-13-01" in err


# ---- (g) no PHI out --------------------------------------------------------------------------


def test_no_patient_name_or_member_id_in_stdout_or_the_layer(samples, tmp_path, capsys):
    phi = set()
    for p in SAMPLES:
        for seg in segments(p.read_text()):
            if seg[0] == "NM1" and seg[1] in ("QC", "IL"):
                phi |= {v for v in (seg[3], seg[4], seg[-1]) if len(v) > 2}
    assert {"DOE", "JANE", "MEMBER001"} <= phi
    # one sample corrupted too, so the rejection reason is printed
    bad = samples / "bad.x12"
    bad.write_text(_unbalanced((DATA / "835_partial.x12").read_text()))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "--input", str(samples), "--out", str(out))
    assert code == 1 and "rejected bad.x12" in stdout
    for value in phi:
        assert value not in stdout and value not in err, value
    for name, table in layer(out).items():
        for column in table.columns:
            if pa.types.is_string(column.type):
                assert not phi & set(column.to_pylist()), name


# ---- the data contract in docs/outputs.md -----------------------------------------------------


def test_outputs_page_lists_each_tables_columns():
    text = (Path(__file__).parents[1] / "docs" / "outputs.md").read_text()
    section = text[text.index("\n## responses\n") :]
    section = section[: section.index("\n## ", 1)]
    documented: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        if line.startswith("`") and ".parquet`" in line.split(" ")[0]:
            current = line.split("`")[1].removesuffix(".parquet")
            documented[current] = []
        elif current and line.startswith("| `"):
            cell = line.split("|")[1]
            documented[current] += [c.strip().strip("`") for c in cell.split(",")]
    assert documented["files"] == acks.FILE_SCHEMA.names
    for name in ("acknowledgments", "claim_statuses", "payments"):
        assert documented[name] == responses.SCHEMAS[name].names, name
    lines = responses.SCHEMAS["payment_lines"].names
    after = lines.index("payer_claim_control_number") + 1
    assert lines[:after] == responses.SCHEMAS["payments"].names[:after]
    assert documented["payment_lines"] == lines[after:]


# ---- (g) one writer per output: the output's lock ---------------------------------------------


def applied_once(out: Path) -> Counter:
    """How many times each file's content was applied, across every committed run."""
    files = layer(out)["files"].to_pylist()
    return Counter(f["sha256"] for f in files if f["status"] == "applied")


def test_two_runs_at_once_apply_each_file_once(samples, tmp_path, monkeypatch):
    """Two runs over one folder, started together in two threads with the real lock. Each run
    waits (up to 1.5 s) after reading the applied hashes for the other to have read them too:
    without the lock both read "nothing applied" and both apply every file; with it the
    second reads only once the first has committed."""
    out = tmp_path / "out"
    both_read = threading.Barrier(2, timeout=1.5)
    real = acks.applied_hashes

    def applied_then_meet(root: str) -> dict[str, str]:
        found = real(root)
        try:
            both_read.wait()
        except threading.BrokenBarrierError:
            pass  # the other run is waiting for the lock
        return found

    monkeypatch.setattr(acks, "applied_hashes", applied_then_meet)

    def one(run_id: str) -> acks.AcksResult:
        return acks.apply(
            [str(samples)], str(out), received_on=ON, run_id=run_id, wait=True, poll=0.05
        )

    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(one, r) for r in ("r1", "r2")]]
    assert {r.run_id for r in results} == {"r1", "r2"}
    assert len(acks.committed_runs(str(out))) == 2
    assert applied_once(out) == {hashlib.sha256(p.read_bytes()).hexdigest(): 1 for p in SAMPLES}
    statuses = sorted(Counter(f.status for f in r.files)["applied"] for r in results)
    assert statuses == [0, len(SAMPLES)]  # one run applied all, the other none (duplicates)
    assert lock.holder(str(out)) is None  # both let go


def _holder_process(out: Path) -> subprocess.Popen:
    """Another process (a night's ``run``, say) that takes the output's lock and stays."""
    code = (
        "import sys, time\n"
        "from therapy_claims import lock\n"
        "lock.acquire(sys.argv[1], run_id='night-1', run_date='2026-11-27',"
        " command='therapy-claims run')\n"
        "print('ok', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ok"
    return proc


def test_a_lock_held_by_a_live_process_exits_2_naming_acks_and_the_output(
    samples, tmp_path, capsys
):
    out = tmp_path / "out"
    holder = _holder_process(out)
    try:
        code, stdout, err = run_cli(capsys, "--input", str(samples), "--out", str(out))
        assert code == 2 and stdout == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"therapy-claims: error: acks: output {out} is locked by run ")
        assert (
            f"run night-1 (night 2026-11-27, pid {holder.pid} on host {socket.gethostname()}"
            in lines[0]
        )
        assert lines[0].endswith(f"therapy-claims unlock --out {out}")
        assert "--wait" not in lines[0]  # acks has no such option
        assert acks.committed_runs(str(out)) == []
        assert not (out / acks.LAYER).exists()  # nothing read or written
        assert lock.holder(str(out))["run_id"] == "night-1"
    finally:
        holder.kill()
        holder.wait()
    # its process gone, the lock is taken over and the files applied
    code, stdout, _ = run_cli(capsys, "--input", str(samples), "--out", str(out))
    assert code == 0, stdout
    assert sum(applied_once(out).values()) == len(SAMPLES)
    assert lock.holder(str(out)) is None


def test_waiting_for_a_dag_runs_lock_gives_up_after_the_timeout(samples, tmp_path):
    out = tmp_path / "out"
    lock.acquire(str(out), run_id="nightly-dag-run", run_date=RD, process_bound=False)
    with pytest.raises(lock.LockHeld) as err:
        acks.apply([str(samples)], str(out), wait=True, timeout=0.3, poll=0.05)
    assert str(err.value).startswith(f"acks: output {out} is still locked after waiting 0.3 s,")
    assert "by run nightly-dag-run (night 2026-11-27" in str(err.value)
    assert acks.committed_runs(str(out)) == []
    lock.release(str(out), "nightly-dag-run")
    assert acks.apply([str(samples)], str(out), wait=True, timeout=0.3).rejected == []


def test_after_runs_under_the_lock_once_the_run_is_committed(samples, tmp_path):
    out = tmp_path / "out"
    seen = []

    def after(root: str) -> None:
        h = lock.holder(root)
        seen.append((root, h["run_id"], h["command"], len(acks.committed_runs(root))))

    result = acks.apply([str(samples)], str(out), run_id="r9", after=after)
    assert seen == [(str(out), "acks-r9", "therapy-claims acks", 1)]
    assert result.run_id == "r9" and lock.holder(str(out)) is None

    def broken(root: str) -> None:
        raise RuntimeError("refresh failed")

    with pytest.raises(RuntimeError, match="refresh failed"):
        acks.apply([str(samples)], str(out), run_id="r10", after=broken)
    assert lock.holder(str(out)) is None  # let go on errors too
    assert {r for _, r, _ in acks.committed_runs(str(out))} == {"r9", "r10"}  # r10 committed


def test_a_retried_run_id_never_writes_over_its_committed_run(samples, tmp_path):
    """A DAG task retried after its first try committed (and then failed in ``after``) comes
    back with the same run id: its files are duplicates now, and writing them over the first
    folder would lose the rows applied there."""
    out = tmp_path / "out"
    first = acks.apply([str(samples)], str(out), received_on=ON, run_id="dag_run_1")
    before = layer(out)
    again = acks.apply([str(samples)], str(out), received_on=ON, run_id="dag_run_1")
    assert first.run_id == "dag_run_1" and again.run_id != "dag_run_1"
    assert {f.status for f in again.files} == {"duplicate"}
    after = layer(out)
    for name in TABLES:
        assert after[name].equals(before[name]), name
    assert sum(applied_once(out).values()) == len(SAMPLES)


# ---- S3 -------------------------------------------------------------------------------------


def test_acks_on_s3_input_and_output(bucket, capsys):
    from therapy_claims import storage

    for p in SAMPLES:
        storage.write_bytes(f"s3://{bucket}/in/{p.name}", p.read_bytes())
    storage.write_bytes(f"s3://{bucket}/in/notes.txt", b"not X12\n")
    out = f"s3://{bucket}/out"
    code, stdout, _ = run_cli(capsys, "--input", f"s3://{bucket}/in", "--out", out)
    assert code == 0, stdout
    runs = acks.committed_runs(out)
    assert len(runs) == 1 and runs[0][2].startswith(f"{out}/responses/received_on=")
    expected = Counter()
    for p in SAMPLES:
        expected.update(expected_rows(p))
    for name in TABLES:
        table = storage.read_table(storage.join(runs[0][2], f"{name}.parquet"))
        assert table.num_rows == expected[name], name
    files = storage.read_table(storage.join(runs[0][2], "files.parquet")).to_pylist()
    assert Counter(f["status"] for f in files) == {"applied": len(SAMPLES), "skipped": 1}
    assert not storage.list_files(f"{out}/responses/{acks.INCOMING}")  # moved, not left
    code, stdout, _ = run_cli(capsys, "--input", f"s3://{bucket}/in", "--out", out)
    assert code == 0 and "0 applied" in stdout
    second = storage.read_table(storage.join(acks.committed_runs(out)[-1][2], "files.parquet"))
    assert Counter(second.column("status").to_pylist()) == {"duplicate": len(SAMPLES), "skipped": 1}
    code, _, err = run_cli(capsys, "--input", f"s3://{bucket}/nothing-here", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing-here" in err
