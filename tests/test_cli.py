"""The command line: exit codes 0 / 1 / 2 and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from factories import row, write_csv

from therapy_claims.cli import main, worklist_summary
from therapy_claims.layout import COLUMN_NAMES


def test_run_clean_exit_0(tmp_path, capsys):
    inp = write_csv(tmp_path / "in" / "a.csv", [row()])
    rc = main(
        ["run", "--input", str(inp), "--out", str(tmp_path / "out"), "--run-date", "2026-11-28"]
    )
    assert rc == 0
    out = capsys.readouterr()
    assert "billed" in out.out and "balanced: yes" in out.out
    assert "ingest done" in out.err  # progress


def test_run_with_rejected_file_exit_1(tmp_path, capsys):
    write_csv(tmp_path / "in" / "a.csv", [row()])
    write_csv(
        tmp_path / "in" / "b.csv",
        [row(line_id="L9")],
        columns=[c for c in COLUMN_NAMES if c != "line_id"],
    )
    rc = main(
        [
            "run",
            "--input",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--run-date",
            "2026-11-28",
        ]
    )
    assert rc == 1
    assert "REJECTED FILE" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--input",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "o"),
                "--run-date",
                "2026-11-28",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path / "missing") in err
    assert (
        main(
            [
                "run",
                "--input",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--run-date",
                "28/11/2026",
            ]
        )
        == 2
    )
    assert "not a date" in capsys.readouterr().err
    try:
        main(["run", "--input", str(tmp_path)])
    except SystemExit as exc:
        assert exc.code == 2


def test_bad_reference_exit_2(tmp_path, capsys):
    from therapy_claims import reference

    ref = tmp_path / "ref"
    reference.copy_default(ref)
    p = ref / "payers.csv"
    p.write_text(p.read_text().replace(",cms,x,", ",eight_minute,x,", 1))
    inp = write_csv(tmp_path / "in" / "a.csv", [row()])
    rc = main(
        [
            "run",
            "--input",
            str(inp),
            "--out",
            str(tmp_path / "o"),
            "--run-date",
            "2026-11-28",
            "--reference",
            str(ref),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "payers.csv row 2 column unit_method" in err and "eight_minute" in err


def test_python_dash_m(tmp_path):
    inp = write_csv(tmp_path / "in" / "a.csv", [row()])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "therapy_claims",
            "run",
            "--input",
            str(inp),
            "--out",
            str(tmp_path / "out"),
            "--run-date",
            "2026-11-28",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "manifest" / "run_date=2026-11-28.json").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="transparent huge pages are Linux's")
@pytest.mark.parametrize("keep, expected", [(None, "0"), ("1", "1")])
def test_run_turns_transparent_huge_pages_off_for_itself_and_its_children(tmp_path, keep, expected):
    """``run`` turns THP off (unless told to keep it) before it starts its second process,
    which inherits the setting: the kernel reports it per process as ``THP_enabled``."""
    script = (
        "import ctypes, multiprocessing as mp, re, sys\n"
        "from therapy_claims.tuning import tune_process\n"
        "def thp():\n"
        "    return re.search(r'THP_enabled:\\s*(\\d)', open('/proc/self/status').read())[1]\n"
        "if __name__ == '__main__':\n"
        "    ctypes.CDLL(None).prctl(41, 0, 0, 0, 0)  # on, whatever the test process has\n"
        "    assert thp() == '1'\n"
        "    tune_process()\n"
        "    with mp.get_context('spawn').Pool(1) as pool:\n"
        "        print(thp(), pool.apply(thp))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "THERAPY_CLAIMS_HUGE_PAGES"}
    if keep is not None:
        env["THERAPY_CLAIMS_HUGE_PAGES"] = keep
    (tmp_path / "thp.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "thp.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected, expected]


def test_demo_without_airflow_runs_two_nights_and_sends_a_replacement(tmp_path, capsys):
    """The demo's two nights: night 1 (the day before) is the generated night; the payer's
    answers are recorded; night 2 is a new generated night plus the corrected visits, and it
    sends the denied claim as a replacement (CLM05-3 7, REF*F8 the payer's control number)
    and the rejected one again as a new claim. Every generated line is accounted for."""
    import json
    from datetime import date

    import pandas as pd

    from therapy_claims import demo, generate, ledger, lifecycle

    rc = main(
        ["demo", "--dir", str(tmp_path / "demo"), "--encounters", "60", "--no-airflow",
         "--run-date", "2026-11-28"]
    )  # fmt: skip
    assert rc == 0
    out = tmp_path / "demo" / "out"
    df1 = generate.generate(60, seed=7, run_date=date(2026, 11, 27), problem_rate=0.1)
    df2 = generate.generate(60, seed=8, run_date=date(2026, 11, 28), problem_rate=0.1)
    m1 = json.loads((out / "manifest" / "run_date=2026-11-27.json").read_text())
    m2 = json.loads((out / "manifest" / "run_date=2026-11-28.json").read_text())
    landed = sum(
        len(pd.read_csv(p, dtype=str)) for p in (tmp_path / "demo" / "landing").glob("*.csv")
    )
    assert m1["rows_in"] == len(df1) and m1["balanced"]
    assert m2["rows_in"] == landed > len(df2) and m2["balanced"]  # night 2 + the corrections
    printed = capsys.readouterr().out
    assert "balanced: yes" in printed
    wl = m2["worklist"]
    assert (
        f"Worklist 2026-11-28: {wl['open']} open claim(s), ${wl['held_dollars_open']:,.2f} held"
        in printed
    )

    # every claim of both nights has a status (night 2's: sent), and they balance
    state = lifecycle.read_current(str(out)).to_pandas()
    sent = ledger.read(str(out))
    assert len(state) == len(sent) and set(state["claim_id"]) == set(sent["claim_id"])
    night2 = state[state["run_date"].astype(str) == "2026-11-28"]
    assert len(night2) and set(night2["status"]) == {"sent"}
    assert "(balanced)" in printed
    # what the team corrected between the nights, recomputed from night 1 and its statuses
    _, replaced, resent = demo.corrections(df1, str(out))
    assert replaced and resent
    assert state.set_index("claim_id").loc[replaced, "status"] in demo.REPLACE_FROM
    assert state.set_index("claim_id").loc[resent, "status"] in demo.RESEND_FROM
    sent2 = sent[sent["run_date"].astype(str) == "2026-11-28"].set_index("original_claim_id")
    pccn = state.set_index("claim_id").loc[replaced, "payer_claim_control_number"]
    assert sent2.loc[replaced, "frequency_code"] == "7"
    assert sent2.loc[replaced, "original_reference"] == pccn
    assert sent2.loc[resent, "frequency_code"] == "1"
    assert sent2.loc[replaced, "claim_id"] != replaced and sent2.loc[resent, "claim_id"] != resent
    # the replacement's 837: CLM05-3 = 7 and REF*F8 = the control number, as the payer reads it
    text = Path(sent2.loc[replaced, "file"]).read_text()
    segments = [s.strip() for s in text.split("~")]
    clm = next(s for s in segments if s.startswith(f"CLM*{sent2.loc[replaced, 'claim_id']}*"))
    assert clm.split("*")[5].split(":")[2] == "7"
    assert f"REF*F8*{pccn}" in text
    from x12_validate import pyx12_validate

    ok, report = pyx12_validate(text)
    assert ok, report[-2000:]
    assert f"{sent2.loc[replaced, 'claim_id']}: replacement (CLM05-3 7) of {replaced}" in printed
    # the demo's reference: the samples plus both nights' providers roster, two left out
    ref_dir = tmp_path / "demo" / "reference"
    paths = {Path(f["path"]).name: Path(f["path"]) for f in m2["reference_files"]}
    assert paths["providers.csv"] == ref_dir / "providers.csv"
    roster = pd.read_csv(ref_dir / "providers.csv", dtype=str)
    full = generate.providers_roster(pd.concat([df1, df2]))
    assert len(roster) == len(full) - 2 and set(roster["npi"]) < set(full["npi"])


# --------------------------------------------------------------------------- run's settings


def _captured_config(monkeypatch, argv: list[str]):
    """The RunConfig ``run`` hands the pipeline for ``argv`` (the night itself not run)."""
    from therapy_claims import pipeline

    seen = []

    def fake_run(cfg, progress=None):
        seen.append(cfg)
        return {"inputs": []}

    monkeypatch.setattr(pipeline, "run", fake_run)
    base = ["run", "--input", "in", "--out", "out", "--run-date", "2026-11-28", "-q"]
    assert main(base + argv) == 0
    return seen[0]


def test_run_settings_reach_the_run_config(monkeypatch):
    monkeypatch.delenv("THERAPY_CLAIMS_LEDGER", raising=False)
    cfg = _captured_config(monkeypatch, [])
    assert (cfg.wait, cfg.ledger, cfg.reopen) == (False, None, False)
    cfg = _captured_config(
        monkeypatch, ["--wait", "--ledger", "postgresql://db/claims", "--reopen"]
    )
    assert (cfg.wait, cfg.ledger, cfg.reopen) == (True, "postgresql://db/claims", True)


def test_ledger_defaults_to_its_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("THERAPY_CLAIMS_LEDGER", str(tmp_path / "ledger.sqlite"))
    assert _captured_config(monkeypatch, []).ledger == str(tmp_path / "ledger.sqlite")
    # the flag wins over the environment
    assert _captured_config(monkeypatch, ["--ledger", "other.db"]).ledger == "other.db"


# --------------------------------------------------------------------------- failures


def _failing_run(monkeypatch, exc: BaseException) -> None:
    from therapy_claims import pipeline

    def fake_run(cfg, progress=None):
        raise exc

    monkeypatch.setattr(pipeline, "run", fake_run)


RUN = ["run", "--input", "in", "--out", "out", "--run-date", "2026-11-28", "-q"]


def test_storage_error_exit_2_one_line(monkeypatch, capsys):
    from therapy_claims import storage

    _failing_run(monkeypatch, storage.StorageError("write", "/o/x.parquet", "Disk quota exceeded"))
    assert main(RUN) == 2
    err = capsys.readouterr().err
    assert err == "therapy-claims: error: write /o/x.parquet: Disk quota exceeded\n"


def test_internal_error_exit_2_one_line_traceback_only_with_v(monkeypatch, capsys):
    _failing_run(monkeypatch, ValueError("no column 'units'\n  in the scored table"))
    assert main(RUN) == 2
    line = "therapy-claims: error: internal error in run: ValueError: no column 'units'"
    assert capsys.readouterr().err == line + "\n"
    assert main(["-v", *RUN]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "fake_run" in err
    assert err.splitlines()[-1] == line


def test_internal_error_without_message_names_its_type(monkeypatch, capsys):
    _failing_run(monkeypatch, ZeroDivisionError())
    assert main(RUN) == 2
    assert capsys.readouterr().err == (
        "therapy-claims: error: internal error in run: ZeroDivisionError\n"
    )


def test_summary_of_a_missing_s3_bucket_exit_2_one_line(moto_server, capsys):
    rc = main(["summary", "--out", "s3://tc-no-such-bucket-here/x", "--run-date", "2026-11-28"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "therapy-claims: error: list s3://tc-no-such-bucket-here/x/manifest/"
        "run_date=2026-11-28.json: the bucket does not exist\n"
    )


def test_summary_reads_a_committed_night_by_date(tmp_path, capsys):
    inp = write_csv(
        tmp_path / "in" / "a.csv",
        [
            row(),
            row(
                line_id="L2",
                payer_id="NOPE",
                encounter_id="E2",
                patient_id="P2",
                start_time="10:00",
                end_time="10:30",
            ),
        ],
    )
    out = str(tmp_path / "out")
    assert main(["run", "-q", "--input", str(inp), "--out", out, "--run-date", "2026-11-28"]) == 0
    capsys.readouterr()
    assert main(["summary", "--out", out, "--date", "2026-11-28"]) == 0
    text = capsys.readouterr().out
    assert "Held tonight: 1 claim(s)" in text and "UNKNOWN_PAYER" in text
    assert re.search(r"^  2026-11-28 +50\.0% ", text, re.M)  # 1 claim billed, 1 held
    assert main(["summary", "--out", out, "--run-date", "2026-11-28"]) == 0  # the old name
    assert capsys.readouterr().out == text
    assert main(["summary", "--out", out, "--date", "2026-11-27"]) == 2
    assert capsys.readouterr().err == (
        f"therapy-claims: error: no manifest at {out}/manifest/run_date=2026-11-27.json: "
        "has this night run?\n"
    )


def test_demo_worklist_summary_of_a_night_from_before_the_worklist():
    """A demo folder kept from an older version holds a night whose manifest names no
    worklist (the DAG does not run an unchanged night again): the demo says so instead of
    failing."""
    old = {"run_date": "2026-12-06", "outputs": {"scored": "/x/scored/run_date=2026-12-06"}}
    (line,) = worklist_summary(old, "2026-12-06")
    assert "published before the worklist existed" in line and "2026-12-06" in line
