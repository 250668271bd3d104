"""``therapy-claims acks``: returned 999, 277CA and 835 files recorded in the ``responses``
layer. Expected row counts are read off the files with a plain split of their text (not the
package's reader); the round trip checks the layer against the payer simulator's own record
(``simulation.json``) and the night's scored layer."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from therapy_claims import acks, cli, generate, payer_sim, pipeline, responses, schemas

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
