"""Two small synthetic nights run through the whole pipeline into one output, for the report's
tests: the second night's report has two nights of trends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from therapy_claims import generate, pipeline

NIGHTS = (dt.date(2026, 11, 26), dt.date(2026, 11, 27))
# the columns of the extract a report must never show (names, member ids, addresses, births)
PHI_COLUMNS = (
    "patient_last_name",
    "patient_first_name",
    "patient_dob",
    "patient_address",
    "member_id",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
)


_RUN: dict = {}


def two_nights(tmp_path_factory) -> tuple[str, list[dict], pd.DataFrame]:
    """``run_two_nights`` once per test session (test_reports and test_report_browser read the
    same nights; they only read them)."""
    if "nights" not in _RUN:
        _RUN["nights"] = run_two_nights(tmp_path_factory.mktemp("report-nights"))
    return _RUN["nights"]


def run_two_nights(root: Path, *, encounters: int = 45) -> tuple[str, list[dict], pd.DataFrame]:
    """Run the two nights into ``root/out``; returns the output root, the nights' manifests
    (in date order) and every input row (as generated, all text)."""
    out = root / "out"
    manifests, rows = [], []
    for i, rd in enumerate(NIGHTS):
        df = generate.generate(encounters + 10 * i, seed=40 + i, run_date=rd, problem_rate=0.3)
        landing = root / f"landing-{rd}"
        generate.write(df, str(landing / f"encounters_{rd}.csv"))
        cfg = pipeline.RunConfig(inputs=[str(landing)], out=str(out), run_date=rd)
        manifests.append(pipeline.run(cfg))
        rows.append(df)
    return str(out), manifests, pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- synthetic frames
# a night (2026-11-28) with a worklist and earlier nights, built by hand (the worklist layer
# is another module's: these follow its contract, docs/outputs.md "worklist")
TONIGHT = "2026-11-28"


def score_info() -> dict:
    """Tonight's score summary: 6 claims billed, 4 held."""
    return {
        "lines_billed": 20,
        "lines_held": 15,
        "lines_not_billed": 3,
        "claims_billed": 6,
        "claims_held": 4,
        "exceptions_by_code": {"UNKNOWN_PAYER": 1},
    }


def _day(text: str | None):
    return pd.NaT if text is None else pd.Timestamp(text)


def worklist_frame() -> pd.DataFrame:
    """Four open keys at three payers and two clinics, and one resolved tonight."""
    rows = [
        # key, clinic, payer, claims, lines, held $, codes, owner, first held, status, resolved
        ("CLN01|E1", "CLN01", "MCR01", ["C1"], 3, 300.0, ["UNKNOWN_PAYER"], "front desk", "2026-11-23", "open", None),
        ("CLN01|E2", "CLN01", "BCBS1", ["C2", "C3"], 4, 120.5, ["TIME_MISSING", "UNKNOWN_PAYER"], "clinician", TONIGHT, "open", None),
        ("CLN02|E3", "CLN02", "MCR01", ["C4"], 2, 500.0, ["CODE_UNKNOWN"], "coder", "2026-11-19", "open", None),
        ("CLN02|E4", "CLN02", "AET01", ["C5"], 1, 80.0, ["DATE_INVALID"], "front desk", "2026-11-19", "open", None),
        ("CLN03|E5", "CLN03", "MCR01", ["C6"], 5, 1000.0, ["UNKNOWN_CLINIC"], "IT/reference data", "2026-11-20", "resolved", TONIGHT),
    ]  # fmt: skip
    run = pd.Timestamp(TONIGHT)
    return pd.DataFrame(
        {
            "worklist_key": [r[0] for r in rows],
            "clinic_id": [r[1] for r in rows],
            "encounter_id": [r[0].split("|")[1] for r in rows],
            "patient_id": ["P-SECRET-1", "P-SECRET-2", "P-SECRET-3", "P-SECRET-4", "P-SECRET-5"],
            "payer_id": [r[2] for r in rows],
            "claim_ids": [r[3] for r in rows],
            "lines": [r[4] for r in rows],
            "held_dollars": [r[5] for r in rows],
            "blocking_codes": [r[6] for r in rows],
            "owner": [r[7] for r in rows],
            "first_held": [_day(r[8]) for r in rows],
            "last_held": [run if r[9] == "open" else _day("2026-11-27") for r in rows],
            "age_days": [(run - _day(r[8])).days for r in rows],
            "status": [r[9] for r in rows],
            "resolved_on": [_day(r[10]) for r in rows],
        }
    )


def manifest(rd: str, rows_in: int, billed: int, held: int, backlog: float | None) -> dict:
    """The keys of a manifest the trends read."""
    m = {"run_date": rd, "rows_in": rows_in, "claims_billed": billed, "claims_held": held}
    if backlog is not None:
        m["worklist"] = {
            "open": 1,
            "opened_tonight": 0,
            "resolved_tonight": 0,
            "held_dollars_open": backlog,
            "oldest_open_days": 1,
        }
    return m


def history() -> list[dict]:
    """Earlier nights (one before the worklist, one that scored no claim), a night after
    tonight and an older manifest of tonight: the trends take the first three only."""
    return [
        manifest("2026-11-27", 90, 9, 3, 700.25),
        manifest("2026-11-25", 100, 8, 2, None),
        manifest("2026-11-26", 120, 0, 0, 50.0),
        manifest("2026-11-29", 999, 1, 1, 9.0),
        manifest(TONIGHT, 777, 1, 1, 9.0),
    ]
