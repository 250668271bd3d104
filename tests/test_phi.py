"""No protected health information in logs, in the de-identified run report, or in the GX
results and Data Docs; names and addresses only where a biller or the payer needs them."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

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
