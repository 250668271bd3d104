"""The rules package itself: the explicit rule order, what fixers and checks declare about the
columns fixers change, the message helper, and the KX history read from the scored layer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from factories import row
from test_rules import REF, fired, night
from test_rules_catalogue import chiro_day

from therapy_claims import rules
from therapy_claims.rules import coverage, engine

# the order findings reach the outputs in (each scored line's exception_codes keeps it): a
# change here changes outputs
EXPECTED_ORDER = [
    ("UNKNOWN_PAYER",),
    ("UNKNOWN_CLINIC",),
    ("CODE_UNKNOWN",),
    ("NPI_INVALID",),
    ("DIAGNOSIS_INVALID",),
    ("TIME_MISSING",),
    ("TIME_OVERLAP_SAME_PATIENT",),
    ("UNITS_ZERO", "UNITS_CORRECTED"),
    ("CHARGE_CORRECTED",),
    ("THERAPY_MODIFIER_ADDED",),
    ("DATE_INVALID",),
    ("NOT_ONE_ON_ONE",),
    ("PROVIDER_OVERLAP",),
    ("CODE_NOT_COVERED", "DC_SERVICE_NOT_COVERED"),
    ("KX_REQUIRED", "KX_REQUIRED_WARN", "KX_ADDED"),
    ("ASSISTANT_MODIFIER_ADDED",),
    ("ASSISTANT_SUPERVISOR_MISSING",),
    ("PROVIDER_UNKNOWN",),
    ("REFERRING_MISSING",),
    ("MODIFIER_INVALID",),
    ("THERAPY_MODIFIER_MISMATCH",),
    ("TECHNIQUE_MISSING", "TECHNIQUE_INVALID", "DOCUMENTATION_INCOMPLETE"),
    ("CMT_SAME_REGION",),
    ("NCCI_MODIFIER_MISSING", "NCCI_NOT_BYPASSABLE", "XS_SAME_REGION"),
    ("MUE_EXCEEDED",),
    ("DAILY_UNIT_CAP_EXCEEDED",),
    ("AUTH_MISSING", "VISIT_LIMIT_EXCEEDED", "POC_EXPIRED"),
    ("CMT_AT_MISSING", "CMT_AT_MISSING_WARN"),
    ("CHARGE_INVALID", "CHARGE_ABOVE_SCHEDULE"),
    (
        "INITIAL_TREATMENT_DATE_MISSING",
        "ACCIDENT_DATE_MISSING",
        "ACCIDENT_STATE_MISSING",
        "PC_CLAIM_NUMBER_MISSING",
        "EMPLOYER_MISSING",
        "POC_DATE_MISSING",
    ),
]


def test_order_lists_every_registered_rule_exactly_once():
    assert len({id(r) for r in rules.ORDER}) == len(rules.ORDER)
    assert {id(r) for r in rules.ORDER} == {id(r) for r in rules.REGISTRY}
    assert len(rules.REGISTRY) == len(rules.ORDER)


def test_order_is_the_order_findings_reach_the_outputs():
    assert [r.codes for r in rules.ORDER] == EXPECTED_ORDER


def test_fixers_run_before_the_rules_that_read_what_they_change():
    at = {id(r): i for i, r in enumerate(rules.ORDER)}
    fixed = {c for r in rules.ORDER for c in r.changes}
    assert {"units", "modifiers"} <= fixed
    for r in rules.ORDER:
        for column in r.reads:
            assert column in fixed, f"{r.name} declares reading {column}, which no fixer changes"
            fixers = [f for f in rules.ORDER if column in f.changes and f is not r]
            assert fixers and all(at[id(f)] < at[id(r)] for f in fixers), (r.name, column)


def busy_night() -> rules.Night:
    """A night on which every rule reaches the fixed columns it reads: an NCCI pair (at a
    Medicare Advantage plan: Medicare itself does not cover a chiropractor's 97140), Medicare
    PT lines far over the KX threshold."""
    rows = [
        *chiro_day("cervical", "", payer="MA01"),
        # after the 97140 (09:00-09:30) of the same patient and clinician, not overlapping it
        row(line_id="PT1", charge_amount="100", start_time="09:30", end_time="10:00"),
    ]
    n = night(rows)
    n.kx_history = pd.DataFrame(
        {"patient_id": ["P1"], "year": [2026], "bucket": ["PT/SLP"], "charges": [9999.0]}
    )
    return n


def _without(n: rules.Night, column: str) -> rules.Night:
    return rules.Night(
        lines=n.lines.drop(columns=column).copy(),
        ref=n.ref,
        run_date=n.run_date,
        kx_history=n.kx_history,
    )


def test_rules_declare_the_fixed_columns_they_read():
    # after the fixers have run, each rule is run again with a fixed column taken away: a rule
    # that does not declare the column must not need it, a rule that declares it must
    n = busy_night()
    found = rules.run_all(n)
    assert {"NCCI_MODIFIER_MISSING", "KX_REQUIRED"} <= set(found["code"])
    fixed = {c for r in rules.ORDER for c in r.changes}
    for r in rules.ORDER:
        for column in fixed:
            if column in r.changes:
                continue
            if column in r.reads:
                with pytest.raises(KeyError):
                    r(_without(n, column))
            else:
                r(_without(n, column))  # a KeyError here: declare reads=(column,)


def test_message_joins_texts_and_columns_by_position():
    rows = pd.DataFrame({"a": ["x", None, "z"]}, index=[10, 20, 30])
    other = pd.Series([1, 2, 3], index=[0, 1, 2])  # another index: matched by position
    m = engine.message(rows, "<", rows["a"], "|", other, "|", np.array([1.5, 2.0, 2.5]), ">")
    assert list(m.index) == [10, 20, 30]
    assert m.iloc[0] == "<x|1|1.5>" and m.iloc[2] == "<z|3|2.5>"
    assert pd.isna(m.iloc[1])  # a missing part leaves the text missing
    with pytest.raises(ValueError):
        engine.message(rows, np.array(["only", "two"]))
    assert engine.message(rows, "same for all").tolist() == ["same for all"] * 3
    none = engine.message(rows.iloc[:0], "<", rows["a"].iloc[:0], ">")
    assert none.empty and none.dtype == "string"


def test_code_on_date_names_a_missing_code():
    rows = pd.DataFrame(
        {"cpt_code": ["97110", None], "date_of_service": pd.to_datetime(["2026-11-20"] * 2)}
    )
    assert engine.code_on_date(rows).tolist() == ["97110 on 2026-11-20", "? on 2026-11-20"]


# --------------------------------------------------------------------------- KX history


def scored_part(out, run_date: str, rows: list[tuple]) -> None:
    """A scored layer file of run date ``run_date``: (patient, payer, date, discipline, code,
    charge, status) per line, each of clinic CLN01 and 1 unit."""
    cols = ["patient_id", "payer_id", "date_of_service", "discipline", "cpt_code"]
    df = pd.DataFrame(rows, columns=[*cols, "charge_amount", "status"])
    df = df.assign(clinic_id="CLN01", units=1)
    df["date_of_service"] = pd.to_datetime(df["date_of_service"])
    d = out / "scored" / f"run_date={run_date}" / "run=r1"
    d.mkdir(parents=True)
    df.to_parquet(d / "scored.parquet", index=False)
    # the night's manifest commits the run; a crashed run's folder beside it is no part
    manifest = out / "manifest" / f"run_date={run_date}.json"
    manifest.parent.mkdir(exist_ok=True)
    manifest.write_text(json.dumps({"run_id": "r1", "outputs": {"scored": str(d)}}))
    crashed = d.parent / "run=crashed"
    crashed.mkdir()
    df.assign(charge_amount=1e6).to_parquet(crashed / "scored.parquet", index=False)


def test_kx_history_counts_billed_medicare_therapy_of_earlier_nights(tmp_path):
    scored_part(
        tmp_path,
        "2026-11-20",
        [
            ("P1", "MCR01", "2026-11-20", "PT", "97110", 100.0, "billed"),
            ("P1", "MCR01", "2026-11-20", "SLP", "97129", 50.0, "billed"),  # PT/SLP share
            ("P1", "MCR01", "2026-11-20", "OT", "97530", 70.0, "billed"),  # OT on its own
            ("P1", "MCR01", "2026-11-20", "PT", "97110", 999.0, "held"),
            ("P1", "COM01", "2026-11-20", "PT", "97110", 500.0, "billed"),
            ("P1", "MA01", "2026-11-20", "PT", "97110", 500.0, "billed"),  # not Part B
            ("P1", "MCR01", "2026-11-20", "PT", "G0237", 40.0, "billed"),  # not therapy
            ("P1", "MCR01", "2026-11-20", "CHIRO", "97140", 30.0, "billed"),
            ("P2", "MCR01", "2025-12-30", "PT", "97110", 80.0, "billed"),  # another year
        ],
    )
    (tmp_path / "scored" / "run_date=2026-11-20" / "run=r1" / "notes.txt").write_text("no part")
    # tonight's own and later run dates, and a year before tonight's lines, do not count
    scored_part(
        tmp_path, "2026-11-28", [("P1", "MCR01", "2026-11-27", "PT", "97110", 1.0, "billed")]
    )
    scored_part(
        tmp_path, "2025-12-31", [("P1", "MCR01", "2026-01-02", "PT", "97110", 1.0, "billed")]
    )
    lines = night([row()]).lines
    h = coverage.kx_history(str(tmp_path), "2026-11-28", REF, lines)
    assert list(h.columns) == coverage.KX_HISTORY_COLUMNS
    assert sorted(h.itertuples(index=False, name=None)) == [
        ("P1", 2026, "OT", 70.0),
        ("P1", 2026, "PT/SLP", 150.0),
    ]


def test_kx_history_is_empty_without_a_scored_layer(tmp_path):
    h = coverage.kx_history(str(tmp_path), "2026-11-28", REF, night([row()]).lines)
    assert h.empty and list(h.columns) == coverage.KX_HISTORY_COLUMNS


def test_kx_history_feeds_the_kx_rule(tmp_path):
    # 2026 PT/SLP threshold $2,480: $2,400 billed on an earlier night, $100 tonight
    scored_part(
        tmp_path, "2026-11-01", [("P1", "MCR01", "2026-10-30", "PT", "97110", 2400.0, "billed")]
    )
    n = night([row(charge_amount="100")])
    assert fired(n, "KX_REQUIRED").empty
    n = night([row(charge_amount="100")])
    n.kx_history = rules.kx_history(str(tmp_path), n.run_date.isoformat(), REF, n.lines)
    assert fired(n, "KX_REQUIRED")["line_id"].tolist() == ["L1"]
