"""No protected health information in logs, in the de-identified run report, or in the GX
results and Data Docs; names and addresses only where a biller or the payer needs them; the
layers that hold it readable by their owner only."""

from __future__ import annotations

import logging
import os
import stat
from datetime import date
from pathlib import Path

import pytest
from factories import row, write_csv

from therapy_claims import pipeline

NAMES = ("ZEBULONIA", "QUIXWELL", "4471 HIDDEN VALLEY RD", "MBR998877")


def test_no_phi_in_logs_report_or_validation(tmp_path, caplog):
    rows = [
        row(
            patient_last_name="QUIXWELL",
            patient_first_name="ZEBULONIA",
            patient_address="4471 HIDDEN VALLEY RD",
            member_id="MBR998877",
        ),
        # failing rows put values in front of the GX suites too
        row(
            line_id="L2",
            encounter_id="E2",
            patient_last_name="QUIXWELL",
            patient_first_name="ZEBULONIA",
            patient_address="4471 HIDDEN VALLEY RD",
            member_id="MBR998877",
            start_time="10:00",
            end_time="09:00",
            modifiers="GP;59;XS",
            body_region="knee",
            cpt_code="97140",
        ),
    ]
    inp = write_csv(tmp_path / "in" / "a.csv", rows)
    cfg = pipeline.RunConfig(
        inputs=[str(inp)], out=str(tmp_path / "out"), run_date=date(2026, 11, 28)
    )
    with caplog.at_level(logging.DEBUG):
        pipeline.run(cfg)
    logs = caplog.text
    for name in NAMES:
        assert name not in logs
    scanned = 0
    for kind in ("reports", "validation", "scored"):
        for f in Path(cfg.final(kind)).rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                scanned += 1
                for name in NAMES:
                    assert name.encode() not in data, (name, f)
    assert scanned >= 4
    # the claim file carries them, as it must
    claims = b"".join(f.read_bytes() for f in Path(cfg.final("claims")).glob("*.x12"))
    assert b"QUIXWELL" in claims


@pytest.mark.parametrize(
    "setting, file_mode, dir_mode", [(None, 0o600, 0o700), ("0640", 0o640, 0o750)]
)
def test_phi_layers_are_owner_only(tmp_path, monkeypatch, setting, file_mode, dir_mode):
    """The raw layer, the claim files and the ledger are written owner-only (or as
    THERAPY_CLAIMS_PHI_MODE says); the analysts' layers keep the umask's mode."""
    if setting is None:
        monkeypatch.delenv("THERAPY_CLAIMS_PHI_MODE", raising=False)
    else:
        monkeypatch.setenv("THERAPY_CLAIMS_PHI_MODE", setting)
    old = os.umask(0o022)
    try:
        rows = [row(), row(line_id="L2", encounter_id="E2", start_time="10:00", end_time="10:30")]
        inp = write_csv(tmp_path / "in" / "a.csv", rows)
        cfg = pipeline.RunConfig(
            inputs=[str(inp)], out=str(tmp_path / "out"), run_date=date(2026, 11, 28)
        )
        pipeline.run(cfg)
    finally:
        os.umask(old)
    out = Path(cfg.out)
    assert list(Path(cfg.final("claims")).glob("*.x12"))  # a claim file to look at
    for kind in ("raw", "claims", "ledger"):
        night = Path(cfg.final(kind))
        files = [p for p in night.rglob("*") if p.is_file()]
        assert files, kind
        assert {_mode(p) for p in files} == {file_mode}, kind
        assert {_mode(d) for d in [night, *(p for p in night.rglob("*") if p.is_dir())]} == {
            dir_mode
        }, kind
        assert _mode(out / kind) == 0o755  # only the nights' folders in it
    assert _mode(out / ".staging") == dir_mode  # the work folder the night was staged in
    for kind in ("scored", "exceptions", "reports", "validation"):
        night = Path(cfg.final(kind))
        assert _mode(night) == 0o755, kind
        assert {_mode(p) for p in night.rglob("*") if p.is_file()} == {0o644}, kind
    assert _mode(cfg.manifest_path) == 0o644


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)
