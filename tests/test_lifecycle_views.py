"""The responses and the lifecycle in ``query``, the measures over them, ``ddl``, the night's
summary and ``show``. A real night and two real acks runs (the hand-written samples); the
lifecycle's three files are written here with pyarrow with the lifecycle layer's columns and
types (``therapy_claims.lifecycle`` computes them in production), for claims of the night,
with statuses chosen so each measure has a hand-computed value (see ``PLAN``)."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from therapy_claims import acks, analytics, cli, generate, pipeline, reports, storage

DATA = Path(__file__).parent / "data" / "responses"
RD = dt.date(2026, 11, 20)
ON_ACKS, ON_ERA = dt.date(2026, 11, 21), dt.date(2026, 11, 27)
MONEY = pa.decimal128(12, 2)
CODES = pa.list_(pa.string())

# The lifecycle of ten claims of the night: payer A's six, payer B's four (the rest of the
# night's claims have no lifecycle row yet). (status, kind, first_pass_accepted, reasons,
# paid, days to payment)
PLAN = {
    "a1": ("paid", "835", True, [], "100.00", 10),
    "a2": ("paid", "835", True, [], "80.00", 14),
    "a3": ("denied", "835", True, ["CO-97"], "0.00", None),
    "a4": ("accepted_by_payer", "277CA", True, [], "0.00", None),
    "a5": ("accepted_by_clearinghouse", "999", None, [], "0.00", None),
    "a6": ("sent", "837", None, [], "0.00", None),
    "b1": ("partially_paid", "835", True, ["CO-45"], "50.00", 20),
    "b2": ("denied", "835", True, ["CO-18", "CO-97", "CO-236"], "0.00", None),
    "b3": ("denied", "835", False, ["CO-236", "PR-1"], "0.00", None),
    "b4": ("rejected_by_payer", "277CA", False, ["A7:562:85"], "0.00", None),
}
# our own mapping (a --reference folder), so the rule-code figures follow from this file
REASONS_CSV = """kind,group,code,rule_code,meaning,source
835,CO,97,NCCI_MODIFIER_MISSING,bundled,test
835,CO,97,CMT_SAME_REGION,bundled,test
835,CO,236,NCCI_MODIFIER_MISSING,NCCI,test
835,CO,18,ALREADY_BILLED,duplicate,test
"""

# ---- the hand-computed measures (level, payer) -> columns ----------------------------------
# A: 6 sent, 5 responded; first pass known for a1-a4, all accepted; adjudicated a1 a2 a3, one
#    denied; paid after 10 and 14 days: mean 12, median 12, p90 10 + 0.9 * (14 - 10) = 13.6.
# B: 4 sent, 4 responded; known 4, accepted b1 b2; adjudicated b1 b2 b3, two denied; paid
#    after 20 days.
# overall: 10, 9; known 8, accepted 6; adjudicated 6, denied 3; days 10 14 20: mean 44 / 3,
#    median 14, p90 at rank 0.9 * 2 = 1.8: 14 + 0.8 * (20 - 14) = 18.8.
MEASURES = {
    "A": (6, 5, 4, 4, 1.0, 3, 1, 0.3333, 2, 12.0, 12.0, 13.6),
    "B": (4, 4, 4, 2, 0.5, 3, 2, 0.6667, 1, 20.0, 20.0, 20.0),
    None: (10, 9, 8, 6, 0.75, 6, 3, 0.5, 3, 14.67, 14.0, 18.8),
}
MEASURE_COLUMNS = (
    "claims_sent",
    "claims_with_response",
    "first_pass_known",
    "first_pass_accepted",
    "first_pass_acceptance_rate",
    "claims_adjudicated",
    "claims_denied",
    "denial_rate",
    "claims_paid",
    "days_to_payment_mean",
    "days_to_payment_median",
    "days_to_payment_p90",
)
# denied claims per reason (CO-45 is a partial payment's: not a denial), of 3 / 3 / 6
CARCS = {
    "A": {"CO-97": 1},
    "B": {"CO-236": 2, "CO-18": 1, "CO-97": 1, "PR-1": 1},
    None: {"CO-236": 2, "CO-97": 2, "CO-18": 1, "PR-1": 1},
}
# through REASONS_CSV; b2 has two reasons for NCCI_MODIFIER_MISSING and counts once
RULES = {
    "A": {"CMT_SAME_REGION": 1, "NCCI_MODIFIER_MISSING": 1},
    "B": {"NCCI_MODIFIER_MISSING": 2, "ALREADY_BILLED": 1, "CMT_SAME_REGION": 1},
    None: {"NCCI_MODIFIER_MISSING": 3, "CMT_SAME_REGION": 2, "ALREADY_BILLED": 1},
}
ADJUDICATED = {"A": 3, "B": 3, None: 6}


def _ledger(out: str) -> list[dict]:
    """The night's ledger rows, read through its manifest as plain files."""
    m = json.loads(storage.read_bytes(storage.join(out, "manifest", f"run_date={RD}.json")))
    path = storage.join(m["outputs"]["ledger"], "ledger.parquet")
    return pq.read_table(pa.BufferReader(storage.read_bytes(path))).to_pylist()


def _pick(ledger: list[dict]) -> dict[str, dict]:
    """Ten claims of the night: six of one payer (A), four of another (B)."""
    by_payer: dict[str, list[dict]] = {}
    for r in ledger:
        by_payer.setdefault(r["payer_id"], []).append(r)
    ranked = sorted(by_payer.values(), key=len, reverse=True)
    assert len(ranked) >= 2 and len(ranked[0]) >= 6 and len(ranked[1]) >= 4
    picked = {f"a{i + 1}": r for i, r in enumerate(ranked[0][:6])}
    picked |= {f"b{i + 1}": r for i, r in enumerate(ranked[1][:4])}
    return picked


def _lifecycle(picked: dict[str, dict]) -> dict[str, pa.Table]:
    """The three lifecycle files of ``PLAN`` (contract types)."""
    current, history = [], []
    for key, (status, kind, first, reasons, paid, days) in PLAN.items():
        r = picked[key]
        on = {"837": RD, "999": ON_ACKS, "277CA": ON_ACKS, "835": ON_ERA}[kind]
        paid_on = RD + dt.timedelta(days=days) if days is not None else None
        steps = [("sent", RD, "837", storage.name(r["file"]), None, None, [], None)]
        if kind != "837":
            steps.append(("accepted_by_clearinghouse", ON_ACKS, "999", "999_accepted.x12",
                          ON_ACKS, "R1", [], None))  # fmt: skip
        if kind in ("277CA", "835"):
            s277 = status if kind == "277CA" else "accepted_by_payer"
            steps.append((s277, ON_ACKS, "277CA", "277ca_accepted.x12", ON_ACKS, "R1",
                          reasons if kind == "277CA" else [], None))  # fmt: skip
        if kind == "835":
            steps.append((status, paid_on or ON_ERA, "835", "835_paid.x12", ON_ERA, "R2",
                          reasons, Decimal(paid)))  # fmt: skip
        status_on = steps[-1][1] if kind != "837" else on
        for i, (st, day, k, f, received, run, why, amount) in enumerate(steps, start=1):
            history.append(
                {"claim_id": r["claim_id"], "step": i, "status": st, "status_on": day, "kind": k,
                 "source_file": f, "received_on": received, "acks_run_id": run,
                 "reason_codes": why, "payer_claim_control_number": None, "paid": amount}
            )  # fmt: skip
        current.append(
            {
                "claim_id": r["claim_id"], "claim_key": r["claim_key"], "run_date": RD,
                "payer_id": r["payer_id"], "clinic_id": r["clinic_id"],
                "encounter_id": r["encounter_id"], "claim_type": r["claim_type"],
                "file": storage.name(r["file"]), "charge": Decimal(str(r["charge"])),
                "status": status, "status_on": status_on, "status_kind": kind,
                "status_file": steps[-1][3], "reason_codes": reasons, "remark_codes": [],
                "payer_claim_control_number": None, "paid": Decimal(paid),
                "patient_responsibility": Decimal("0.00"), "paid_on": paid_on,
                "days_to_payment": days, "first_pass_accepted": first, "steps": len(steps),
            }
        )  # fmt: skip
    findings = [
        {"code": "RESPONSE_UNKNOWN_CLAIM", "severity": "warning", "claim_id": "C0000004",
         "kind": "835", "source_file": "835_denied.x12", "message": "claim C0000004 unknown"},
    ]  # fmt: skip
    schemas = {name: schema for name, (_, schema) in analytics.LIFECYCLE_FILES.items()}
    return {
        "current.parquet": pa.Table.from_pylist(current, schemas["claim_lifecycle"]),
        "history.parquet": pa.Table.from_pylist(history, schemas["claim_history"]),
        "findings.parquet": pa.Table.from_pylist(findings, schemas["lifecycle_findings"]),
    }


def _build(root: str, encounters: int = 60) -> dict:
    """A night, two acks runs and a lifecycle under ``root`` (a folder or s3://)."""
    out = storage.join(root, "out")
    landing = storage.join(root, "landing")
    df = generate.generate(encounters, seed=5, run_date=RD, problem_rate=0.05)
    generate.write(df, storage.join(landing, "extract.csv"))
    pipeline.run(pipeline.RunConfig(inputs=[landing], out=out, run_date=RD))
    for name in sorted(p.name for p in DATA.glob("*.x12")):
        folder = "acks" if name.startswith(("999", "277")) else "era"
        storage.write_bytes(storage.join(root, folder, name), (DATA / name).read_bytes())
    run1 = acks.run([storage.join(root, "acks")], out, received_on=ON_ACKS, run_id="R1")
    run2 = acks.run([storage.join(root, "era")], out, received_on=ON_ERA, run_id="R2")
    assert not run1.rejected and not run2.rejected
    picked = _pick(_ledger(out))
    for name, table in _lifecycle(picked).items():
        storage.write_table(table, storage.join(out, "lifecycle", name))
    return {"out": out, "picked": picked}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("after")
    made = _build(str(root))
    reference = root / "reference"
    reference.mkdir()
    (reference / "payer_reasons.csv").write_text(REASONS_CSV)
    # a crashed acks run's part: not all five files, so never read
    crashed = Path(made["out"], "responses", "received_on=2026-11-28", "run=CRASHED")
    crashed.mkdir(parents=True)
    shutil.copy(Path(made["out"], "responses", f"received_on={ON_ERA}", "run=R2",
                     "payments.parquet"), crashed / "payments.parquet")  # fmt: skip
    return {**made, "reference": str(reference)}


def _rows(out: str, sql: str, reference: str | None = None) -> list[dict]:
    buf = io.StringIO()
    analytics.query(out, sql, "json", buf, reference=reference)
    return json.loads(buf.getvalue())


def _response_files(out: str) -> dict[tuple[str, str], str]:
    """(received_on, run id) -> folder, listed here from the layer's folders."""
    found = {}
    root = Path(out, "responses")
    for day in sorted(root.glob("received_on=*")):
        for run in sorted(day.glob("run=*")):
            if len(list(run.glob("*.parquet"))) == 5:
                found[(day.name.split("=")[1], run.name.split("=")[1])] = str(run)
    return found


# --------------------------------------------------------------------------- the views


@pytest.mark.parametrize("table", analytics.RESPONSE_VIEWS)
def test_response_views_hold_every_committed_run_with_its_date_and_id(built, table):
    out = built["out"]
    runs = _response_files(out)
    assert set(runs) == {(str(ON_ACKS), "R1"), (str(ON_ERA), "R2")}  # not CRASHED
    expected = {}
    for (day, run), folder in runs.items():
        t = pq.read_table(Path(folder, f"{table}.parquet"))
        if t.num_rows:
            expected[(day, run)] = sorted(t.column("source_file").to_pylist())
    assert expected  # every table has rows in one of the runs
    got: dict[tuple[str, str], list[str]] = {}
    for r in _rows(out, f"SELECT received_on, acks_run_id, source_file FROM {table}"):
        got.setdefault((r["received_on"], r["acks_run_id"]), []).append(r["source_file"])
    assert {k: sorted(v) for k, v in got.items()} == expected


def test_payments_keep_amounts_and_adjustments(built):
    rows = _rows(
        built["out"],
        "SELECT claim_id, paid, adjustments FROM payments "
        "WHERE source_file LIKE '%835_denied.x12' ORDER BY claim_sequence",
    )
    # the sample's three CLPs, all denied: CO-97 90, CO-18 120 at claim level, CO-29 75
    assert [r["claim_id"] for r in rows] == ["C0000004", "C0000005", "C0000006"]
    assert all(r["paid"] == 0 for r in rows)
    assert rows[1]["adjustments"] == [{"group": "CO", "reason": "18", "amount": 120.0}]


def test_lifecycle_views_are_the_files(built):
    out = built["out"]
    for view, (name, _) in analytics.LIFECYCLE_FILES.items():
        table = pq.read_table(Path(out, "lifecycle", name))
        rows = _rows(out, f"SELECT * FROM {view}")
        assert len(rows) == table.num_rows > 0, view
        assert list(rows[0]) == table.column_names, view
    a3 = built["picked"]["a3"]["claim_id"]
    steps = _rows(out, f"SELECT step, status, kind FROM claim_history WHERE claim_id = '{a3}' "
                       "ORDER BY step")  # fmt: skip
    assert [(s["status"], s["kind"]) for s in steps] == [
        ("sent", "837"), ("accepted_by_clearinghouse", "999"), ("accepted_by_payer", "277CA"),
        ("denied", "835"),
    ]  # fmt: skip


def test_claims_gain_the_status_and_keep_their_rows(built):
    out = built["out"]
    ledger = _ledger(out)
    rows = _rows(out, "SELECT claim_id, run_date, status, status_on, paid FROM claims")
    assert sorted(r["claim_id"] for r in rows) == sorted(r["claim_id"] for r in ledger)
    by_id = {r["claim_id"]: r for r in rows}
    for key, (status, kind, *_rest) in PLAN.items():
        r = by_id[built["picked"][key]["claim_id"]]
        assert r["status"] == status, key
        assert Decimal(str(r["paid"])) == Decimal(PLAN[key][4]), key
        if kind == "837":
            assert r["status_on"] == str(RD)
    a1 = by_id[built["picked"]["a1"]["claim_id"]]
    assert a1["status_on"] == str(RD + dt.timedelta(days=10))
    mine = {built["picked"][k]["claim_id"] for k in PLAN}
    rest = [r for r in rows if r["claim_id"] not in mine]
    assert rest and all(
        (r["status"], r["status_on"], r["paid"]) == ("sent", str(RD), 0) for r in rest
    )


def test_payer_reason_rules_is_the_reference_folders_mapping(built):
    rows = _rows(built["out"], "SELECT kind, reason, rule_code FROM payer_reason_rules",
                 built["reference"])  # fmt: skip
    assert [(r["kind"], r["reason"], r["rule_code"]) for r in rows] == [
        ("835", "CO-97", "NCCI_MODIFIER_MISSING"),
        ("835", "CO-97", "CMT_SAME_REGION"),
        ("835", "CO-236", "NCCI_MODIFIER_MISSING"),
        ("835", "CO-18", "ALREADY_BILLED"),
    ]


# --------------------------------------------------------------------------- the measures


def _payer(built: dict, label: str | None) -> str | None:
    return None if label is None else built["picked"][label.lower() + "1"]["payer_id"]


def test_claim_measures_equal_the_hand_computed_values(built):
    rows = _rows(built["out"], "SELECT * FROM claim_measures")
    got = {(r["level"], r["payer_id"]): r for r in rows}
    assert len(got) == 3
    for label, values in MEASURES.items():
        r = got[("overall" if label is None else "payer", _payer(built, label))]
        assert tuple(r[c] for c in MEASURE_COLUMNS) == pytest.approx(values, abs=1e-9), label


@pytest.mark.parametrize(
    ("view", "key", "expected"),
    [("denials_by_carc", "reason_code", CARCS), ("denials_by_rule", "rule_code", RULES)],
)
def test_denial_rates_by_reason_and_by_rule(built, view, key, expected):
    rows = _rows(built["out"], f"SELECT * FROM {view}", built["reference"])
    for label, counts in expected.items():
        level = "overall" if label is None else "payer"
        mine = [r for r in rows if r["level"] == level and r["payer_id"] == _payer(built, label)]
        assert {r[key]: r["claims_denied"] for r in mine} == counts, (view, label)
        n = ADJUDICATED[label]
        for r in mine:
            assert r["claims_adjudicated"] == n
            assert r["denial_rate"] == round(r["claims_denied"] / n, 4)
    assert len(rows) == sum(len(c) for c in expected.values())


def test_first_pass_rate_measure_per_night(built):
    (r,) = _rows(built["out"], analytics.MEASURES["first_pass_rate"].sql)
    assert r["run_date"] == str(RD) and r["claims_sent"] == len(_ledger(built["out"]))
    assert (r["first_pass_known"], r["accepted_first_pass"], r["first_pass_rate"]) == (8, 6, 0.75)


def test_measures_without_a_lifecycle_have_no_rows(tmp_path, built):
    """A copy of the output without the lifecycle: claims are all sent, the measures empty."""
    out = str(tmp_path / "out")
    shutil.copytree(built["out"], out)
    shutil.rmtree(Path(out, "lifecycle"))
    for view in analytics.MEASURE_VIEWS:
        assert _rows(out, f"SELECT * FROM {view}") == [], view
    assert {r["status"] for r in _rows(out, "SELECT status FROM claims")} == {"sent"}
    assert analytics.lifecycle_measures(out) is None


# --------------------------------------------------------------------------- report and show


def test_summary_and_report_show_the_claims_after_sending(built, capsys):
    out = built["out"]
    assert cli.main(["summary", "--out", out, "--date", str(RD)]) == 0
    text = capsys.readouterr().out
    assert "Claims after sending: 10 sent, 9 with a response" in text
    assert "first-pass acceptance 75.0% (6 of 8); denial rate 50.0% (3 of 6)" in text
    assert "days to payment: mean 14.7, median 14.0, p90 18.8 (3 paid)" in text
    a, b = _payer(built, "A"), _payer(built, "B")
    assert f"  {a:<10}      6         5     100.0%    33.3%      12.0    12.0   13.6" in text
    assert f"  {b:<10}      4         4      50.0%    66.7%      20.0    20.0   20.0" in text
    assert "Denials by payer reason: CO-236 2 (33.3%), CO-97 2 (33.3%), CO-18 1 (16.7%)" in text
    after = reports.after_sending(out)
    page = reports.html_report(
        str(RD),
        {"rows_in": 1, "rows_quarantined": 0, "files": 1, "files_rejected": 0},
        {"claims_billed": 1, "claims_held": 0, "exceptions_by_code": {}, "lines_billed": 1,
         "lines_held": 0, "lines_not_billed": 0},
        [],
        None,
        after=after,
    )  # fmt: skip
    section = page[page.index("<h2>Claims after sending</h2>") : page.index("<h2>Files</h2>")]
    assert "First-pass acceptance 75.0% (6 of 8)" in section
    assert f"<td>{a}</td><td class='num'>6</td><td class='num'>5</td>" in section
    assert "<td>CO-236</td><td class='num'>2</td><td class='num'>6</td>" in section
    for row in built["picked"].values():  # ids of claims and patients stay out
        assert row["claim_id"] not in page and row["patient_id"] not in text


def test_show_prints_the_claims_history_and_current_status(built, capsys):
    claim = built["picked"]["a3"]
    assert cli.main(["show", claim["claim_id"], "--out", built["out"]]) == 0
    text = capsys.readouterr().out
    history = text[text.index("  Lifecycle\n") :]
    lines = history.splitlines()
    sent = storage.name(claim["file"])
    assert lines[2].split() == ["1", RD.strftime("%m/%d/%Y"), "sent", "837", sent]
    assert lines[3].split() == ["2", "11/21/2026", "accepted_by_clearinghouse", "999",
                                "999_accepted.x12"]  # fmt: skip
    assert lines[4].split() == ["3", "11/21/2026", "accepted_by_payer", "277CA",
                                "277ca_accepted.x12"]  # fmt: skip
    assert lines[5].split() == ["4", "11/27/2026", "denied", "835", "0.00", "835_paid.x12"]
    # the shipped mapping's meaning of CO-97
    assert lines[6].startswith("        reason CO-97: Benefit included in the payment")
    assert lines[7].startswith("  Current status denied   since 11/27/2026   (835 835_paid.x12)")
    # a claim of the night the lifecycle has no row of
    mine = {c["claim_id"] for c in built["picked"].values()}
    other = next(r for r in _ledger(built["out"]) if r["claim_id"] not in mine)
    assert cli.main(["show", other["claim_id"], "--out", built["out"]]) == 0
    assert "  Lifecycle      no row of this claim yet" in capsys.readouterr().out


# --------------------------------------------------------------------------- S3 and the DDL


@pytest.fixture(scope="module")
def s3_built(request, tmp_path_factory) -> dict:
    import uuid

    import boto3

    request.getfixturevalue("moto_server")
    name = f"tc-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    mp = pytest.MonkeyPatch()
    mp.setenv("THERAPY_CLAIMS_LEDGER", str(tmp_path_factory.mktemp("ledger") / "l.sqlite"))
    try:
        yield _build(f"s3://{name}", encounters=40)
    finally:
        mp.undo()


def test_s3_views_and_measures(s3_built):
    out = s3_built["out"]
    rows = _rows(out, "SELECT acks_run_id, count(*) AS n FROM claim_statuses GROUP BY 1")
    # the two 277CA samples' claims (2200D TRN*2): 3 accepted + 4 rejected
    assert rows == [{"acks_run_id": "R1", "n": 7}]
    got = {(r["level"], r["payer_id"]): r for r in _rows(out, "SELECT * FROM claim_measures")}
    overall = got[("overall", None)]
    assert tuple(overall[c] for c in MEASURE_COLUMNS) == pytest.approx(MEASURES[None])
    assert len(_rows(out, "SELECT * FROM claims WHERE status <> 'sent'")) == 9  # a6 is sent


@pytest.mark.parametrize("engine", ["athena", "trino"])
def test_ddl_reads_each_response_and_lifecycle_file_through_a_view(s3_built, capsys, engine):
    out = s3_built["out"]
    assert cli.main(["ddl", "--engine", engine, "--out", out, "--schema", "tc"]) == 0
    statements = [s.strip() for s in capsys.readouterr().out.split(";\n") if s.strip()]
    parsed = [sqlglot.parse_one(s, read=engine) for s in statements]
    creates = {
        (p.kind, p.this.this.name if p.kind == "TABLE" else p.this.name): p
        for p in parsed
        if isinstance(p, exp.Create)
    }
    for view, files in [
        *((t, f"{out}/responses/") for t in analytics.RESPONSE_VIEWS),
        *((v, f"{out}/lifecycle/") for v in analytics.LIFECYCLE_FILES),
    ]:
        table = creates[("TABLE", f"{view}_parquet")]
        assert files in table.sql(dialect=engine)
        select = creates[("VIEW", view)].expression
        file = f"{view}.parquet" if view in analytics.RESPONSE_VIEWS else None
        file = file or analytics.LIFECYCLE_FILES[view][0]
        where = select.args["where"].this
        assert isinstance(where, exp.Like) and where.expression.name == f"%/{file}"
        names = [c.name for c in table.this.expressions]
        partitioned = view in analytics.RESPONSE_VIEWS
        if engine == "athena" and partitioned:
            keys = table.find(exp.PartitionedByProperty).this.expressions
            names += [k.name for k in keys]
        assert [e.alias_or_name for e in select.expressions] == names
    # one partition per committed acks run and response table
    text = "\n".join(statements)
    for table in analytics.RESPONSE_VIEWS:
        for day, run in ((ON_ACKS, "R1"), (ON_ERA, "R2")):
            folder = f"{out}/responses/received_on={day}/run={run}/"
            if engine == "athena":
                want = (f"ALTER TABLE `tc`.`{table}_parquet` ADD IF NOT EXISTS PARTITION "
                        f"(received_on = '{day}', acks_run_id = '{run}') LOCATION '{folder}'")  # fmt: skip
            else:
                want = (f"table_name => '{table}_parquet', partition_columns => ARRAY["
                        f"'received_on', 'acks_run_id'], partition_values => ARRAY['{day}', "
                        f"'{run}'], location => '{folder}')")  # fmt: skip
            assert text.count(want) == 1, want
