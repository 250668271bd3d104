from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from report_nights import (
    PHI_COLUMNS,
    TONIGHT,
    history,
    manifest,
    score_info,
    two_nights,
    worklist_frame,
)

from therapy_claims import reports
from therapy_claims.cli import main


def test_csv_defuses_spreadsheet_formulas():
    df = pd.DataFrame(
        {
            "message": ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "plain", None],
            "n": [1, 2, 3, 4, 5, 6],
        }
    )
    data = reports.spreadsheet_safe_csv(df)
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", keep_default_na=False)
    assert back["message"].tolist()[:5] == ['\'=HYPERLINK("x")', "'+1", "'-2", "'@SUM(A1)", "plain"]
    assert back["n"].tolist() == [1, 2, 3, 4, 5, 6]


def test_summary_mentions_counts_and_codes():
    m = {
        "run_date": "2026-11-28",
        "rows_in": 10,
        "inputs": [{"path": "a.csv", "accepted": True}],
        "lines_billed": 4,
        "claims_billed": 3,
        "claim_files": [],
        "lines_held": 4,
        "claims_held": 4,
        "lines_not_billed": 1,
        "rows_quarantined": 1,
        "balanced": True,
        "exceptions_by_code": {"UNKNOWN_PAYER": 2, "UNITS_ZERO": 1},
        "outputs": {"claims": "/x"},
    }
    text = reports.summary_text(m)
    assert "billed" in text and "UNKNOWN_PAYER" in text and "balanced: yes" in text
    assert text.index("UNKNOWN_PAYER") < text.index("UNITS_ZERO")


HOSTILE = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    'say "hi", ok',
    "two\nlines",
    "crlf\r\nend",
    "Ünïcødé—名前 ＝",
    "ISA*00*~GS:^",
    "NA",
    "",
    " lead",
    "plain",
    None,
]


def test_csv_bytes_are_what_the_csv_module_writes_for_the_defused_values():
    import csv

    n = len(HOSTILE)
    df = pd.DataFrame(
        {
            "message": pd.array(HOSTILE, dtype="string"),
            "code": pd.array(["=X", "B"] * (n // 2), dtype="string"),
            "source_row": pd.array([None, *range(-3, n - 4)], dtype="Int64"),
            "date_of_service": pd.to_datetime([None, *["2026-11-20 13:45"] * (n - 1)]),
            "count": range(n),
        }
    )
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")  # quotes only where needed
    writer.writerow(df.columns)
    for m, c, r, d, k in zip(*(df[c] for c in df.columns), strict=True):
        cells = [m, c]
        cells = ["" if pd.isna(x) else ("'" + x if x[:1] in "=+-@\t\r" and x else x) for x in cells]
        writer.writerow([*cells, "" if pd.isna(r) else r, "" if pd.isna(d) else "2026-11-20", k])
    assert reports.spreadsheet_safe_csv(df) == b"\xef\xbb\xbf" + expected.getvalue().encode()


def test_csv_of_an_arrow_table_is_the_csv_of_its_frame():
    """The exception report is written from its Arrow table: the same bytes as from the
    frame, flags and money included (money with two decimals, never a float's repr)."""
    import pyarrow as pa

    n = len(HOSTILE)
    df = pd.DataFrame(
        {
            "message": pd.array(HOSTILE, dtype="string"),
            "source_row": pd.array([None, *range(-3, n - 4)], dtype="Int64"),
            "date_of_service": pd.to_datetime([None, *["2026-11-20"] * (n - 1)]),
            "holds_claim": [True, False] * (n // 2),
            "claim_charge": [None, 0.1 + 0.2, 1234.5, -3.0, 1e6, *[30.0] * (n - 5)],
        }
    )
    table = pa.Table.from_pandas(df, preserve_index=False)
    got = reports.spreadsheet_safe_csv(table, money=("claim_charge",))
    assert got == reports.spreadsheet_safe_csv(df, money=("claim_charge",))
    back = pd.read_csv(io.BytesIO(got), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert back["claim_charge"].tolist()[:5] == ["", "0.30", "1234.50", "-3.00", "1000000.00"]
    assert back["holds_claim"].tolist()[:2] == ["True", "False"]
    assert back["message"].tolist()[:2] == ["'=1+1", "'+1"]
    # a column the fast path does not know (a float that is not money) goes through pandas
    assert reports.spreadsheet_safe_csv(table) == reports.spreadsheet_safe_csv(df)


def test_csv_of_other_dtypes_and_shapes_round_trips():
    # floats, booleans and one-column frames go through pandas' own writer
    df = pd.DataFrame({"message": ["=x", "a,b"], "amount": [1.5, None], "ok": [True, False]})
    back = pd.read_csv(io.BytesIO(reports.spreadsheet_safe_csv(df)), encoding="utf-8-sig")
    assert back["message"].tolist() == ["'=x", "a,b"] and back["ok"].tolist() == [True, False]
    one = reports.spreadsheet_safe_csv(pd.DataFrame({"m": ["", "-1"]}))
    assert one == b'\xef\xbb\xbfm\r\n""\r\n\'-1\r\n'
    empty = reports.spreadsheet_safe_csv(pd.DataFrame({"a": [], "b": []}, dtype="string"))
    assert empty == b"\xef\xbb\xbfa,b\r\n"


# --------------------------------------------------------------------------- the morning ranking
# (synthetic frames in report_nights; a real night at the end)


def _exceptions(with_holds: bool = True) -> pd.DataFrame:
    """Findings of a night: two codes holding claims (one of them twice on one claim), an error
    holding none (a quarantined row), warnings and infos that hold nothing but are many."""
    rows = (
        [("UNKNOWN_CLINIC", "error", "C1", True, 100.0)] * 2
        + [("UNKNOWN_CLINIC", "error", "C2", True, 50.0)]
        + [("UNKNOWN_PAYER", "error", "C3", True, 500.0)]
        + [("UNITS_CORRECTED", "warning", "C1", False, 100.0)] * 10
        + [("ROW_INVALID", "error", None, False, None)] * 20
        + [("UNITS_ZERO", "info", "C4", False, 20.0)] * 30
    )
    df = pd.DataFrame(rows, columns=["code", "severity", "claim_id", "holds_claim", "claim_charge"])
    return df if with_holds else df.drop(columns=["holds_claim", "claim_charge"])


def test_codes_rank_by_held_dollars_then_severity_then_count():
    ranked = reports.rank_codes(_exceptions(), {})
    assert ranked["code"].tolist() == [
        "UNKNOWN_PAYER",  # holds 1 claim of $500
        "UNKNOWN_CLINIC",  # holds 2 claims, $150 (C1 counted once)
        "ROW_INVALID",  # an error holding no claim, above warnings however many
        "UNITS_CORRECTED",
        "UNITS_ZERO",
    ]
    assert ranked["claims_held"].tolist() == [1, 2, 0, 0, 0]
    assert ranked["held_dollars"].tolist() == [500.0, 150.0, 0.0, 0.0, 0.0]
    assert ranked["findings"].tolist() == [1, 3, 20, 10, 30]
    assert ranked["owner"].tolist()[:2] == ["front desk", "IT/reference data"]
    assert reports.held_tonight_dollars(_exceptions()) == 650.0


def test_codes_of_a_night_before_holds_claim_rank_by_severity_then_count():
    ranked = reports.rank_codes(_exceptions(with_holds=False), {})
    assert ranked["code"].tolist() == [
        "ROW_INVALID",
        "UNKNOWN_CLINIC",
        "UNKNOWN_PAYER",
        "UNITS_CORRECTED",
        "UNITS_ZERO",
    ]
    assert ranked["held_dollars"].isna().all()
    assert reports.held_tonight_dollars(_exceptions(with_holds=False)) is None
    # only the manifest's counts (no exceptions frame): the same order
    counts = {"UNITS_ZERO": 30, "UNITS_CORRECTED": 10, "UNKNOWN_PAYER": 1, "ROW_INVALID": 20}
    assert reports.rank_codes(None, counts)["code"].tolist() == [
        "ROW_INVALID",
        "UNKNOWN_PAYER",
        "UNITS_CORRECTED",
        "UNITS_ZERO",
    ]


def test_published_decimal_dollars_rank_the_same():
    from decimal import Decimal

    exc = _exceptions()
    exc["claim_charge"] = [None if pd.isna(v) else Decimal(f"{v:.2f}") for v in exc["claim_charge"]]
    assert reports.rank_codes(exc, {})["held_dollars"].tolist()[:2] == [500.0, 150.0]


def test_open_worklist_split_by_clinic_and_payer():
    wl = worklist_frame()
    clinic = reports.split_open(wl, "clinic_id")
    # CLN03's row resolved tonight: not in the queue
    assert clinic.to_dict("records") == [
        {"clinic_id": "CLN02", "held_dollars": 580.0, "held_claims": 2, "lines": 3},
        {"clinic_id": "CLN01", "held_dollars": 420.5, "held_claims": 3, "lines": 7},
    ]
    payer = reports.split_open(wl, "payer_id")
    assert payer.to_dict("records") == [
        {"payer_id": "MCR01", "held_dollars": 800.0, "held_claims": 2, "lines": 5},
        {"payer_id": "BCBS1", "held_dollars": 120.5, "held_claims": 2, "lines": 4},
        {"payer_id": "AET01", "held_dollars": 80.0, "held_claims": 1, "lines": 1},
    ]
    assert reports.split_open(None, "clinic_id") is None


def test_oldest_open_claims_oldest_first_then_dollars():
    oldest = reports.oldest_open(worklist_frame())
    assert oldest[["worklist_key", "age_days", "first_code", "owner"]].values.tolist() == [
        ["CLN02|E3", 9, "CODE_UNKNOWN", "coder"],
        ["CLN02|E4", 9, "DATE_INVALID", "front desk"],
        ["CLN01|E1", 5, "UNKNOWN_PAYER", "front desk"],
        ["CLN01|E2", 0, "TIME_MISSING", "clinician"],
    ]
    many = pd.concat([worklist_frame().iloc[[0]]] * 12, ignore_index=True)
    many["worklist_key"] = [f"CLN01|E{i:02d}" for i in range(12)]
    many["age_days"] = list(range(12))
    top = reports.oldest_open(many)
    assert top["age_days"].tolist() == list(range(11, 1, -1))  # the ten oldest


def test_worklist_counts_are_the_manifests_figures():
    assert reports.worklist_counts(worklist_frame(), TONIGHT) == {
        "open": 4,
        "opened_tonight": 1,
        "resolved_tonight": 1,
        "held_dollars_open": 1000.5,
        "oldest_open_days": 9,
    }


def test_trends_are_the_manifests_figures():
    tonight = {**manifest(TONIGHT, 40, 6, 4, 1000.5)}
    points = reports.trend_points(tonight, history())
    assert points == [
        {"run_date": "2026-11-25", "clean_claim_rate": 8 / 10, "held_dollars": None, "lines_read": 100},
        {"run_date": "2026-11-26", "clean_claim_rate": None, "held_dollars": 50.0, "lines_read": 120},
        {"run_date": "2026-11-27", "clean_claim_rate": 9 / 12, "held_dollars": 700.25, "lines_read": 90},
        {"run_date": TONIGHT, "clean_claim_rate": 6 / 10, "held_dollars": 1000.5, "lines_read": 40},
    ]  # fmt: skip
    many = [manifest(f"2026-10-{d:02d}", d, d, 1, None) for d in range(1, 21)]
    points = reports.trend_points(manifest("2026-10-21", 5, 1, 0, None), many)
    assert [p["lines_read"] for p in points] == [*range(8, 21), 5]  # 14 nights


def test_recent_nights_reads_only_the_last_ones(tmp_path):
    from therapy_claims import nights, storage

    out = str(tmp_path)
    for d in ("2026-11-20", "2026-11-22", "2026-11-23", "2026-11-25"):
        storage.write_json(nights.manifest_path(out, d), {"run_date": d})
    got = nights.recent(out, "2026-11-23", 2)
    assert [m["run_date"] for m in got] == ["2026-11-22", "2026-11-23"]
    got = nights.recent(out, "2026-11-23", 5, including=False)
    assert [m["run_date"] for m in got] == ["2026-11-20", "2026-11-22"]
    assert nights.recent(str(tmp_path / "none"), "2026-11-23", 5) == []


def _night_manifest() -> dict:
    return {
        "run_date": TONIGHT,
        "rows_in": 40,
        "inputs": [{"path": "a.csv", "accepted": True}],
        "lines_billed": 20,
        "claims_billed": 6,
        "claim_files": [],
        "lines_held": 15,
        "claims_held": 4,
        "lines_not_billed": 3,
        "rows_quarantined": 2,
        "balanced": True,
        "exceptions_by_code": {},
        "outputs": {"claims": "/x"},
    }


def test_summary_ranks_what_matters():
    text = reports.summary_text(
        _night_manifest(), exc=_exceptions(), worklist=worklist_frame(), history=history()
    )
    assert "Held tonight: 4 claim(s), $650.00" in text
    assert (
        "Worklist: 4 open, $1,000.50 held; 1 opened tonight, 1 resolved tonight; "
        "oldest open 9 day(s)"
    ) in text
    order = ["UNKNOWN_PAYER ", "UNKNOWN_CLINIC ", "ROW_INVALID ", "UNITS_CORRECTED ", "UNITS_ZERO "]
    codes = text[text.index("What holds claims") : text.index("Open worklist by clinic")]
    assert [codes.index(c) for c in order] == sorted(codes.index(c) for c in order)
    assert text.index("  CLN02 ") < text.index("  CLN01 ") < text.index("Open worklist by payer")
    assert text.index("CLN02|E3") < text.index("CLN02|E4") < text.index("CLN01|E1")
    assert "  2026-11-27            75.0%        $700.25          90" in text
    assert "  2026-11-26                -         $50.00         120" in text
    assert "P-SECRET" not in text  # patient ids stay in the worklist file
    # no lifecycle: one line says so, before where the files are
    assert text.index(reports.NO_RESPONSES + "\n") < text.index("Outputs:")


def test_html_report_links_relative_and_no_patient_ids():
    root = "/o"
    links = {
        k: f"{root}/{k}/run_date={TONIGHT}/run=R1"
        for k in ("exceptions", "validation", "reports", "worklist")
    }
    files = [
        {"path": f"{root}/claims/run_date={TONIGHT}/run=R1/X_837P_S_000000001.x12", "receiver_id": "X",
         "claims": 1, "lines": 2, "charges": 10.0},
    ]  # fmt: skip
    page = reports.html_report(
        TONIGHT,
        {"rows_in": 40, "rows_quarantined": 2, "files": 1, "files_rejected": 0},
        score_info(),
        files,
        _exceptions(),
        worklist=worklist_frame(),
        history=history(),
        links=links,
    )
    hrefs = re.findall(r"href='([^']*)'", page)
    up = f"../../../{{}}/run_date={TONIGHT}/run=R1/"
    assert hrefs == [
        up.format("validation") + "data_docs/index.html",
        up.format("exceptions") + "exceptions.csv",
        up.format("worklist") + "worklist.csv",
        up.format("claims") + "X_837P_S_000000001.x12",
    ]
    assert (
        "P-SECRET" not in page
        and "<script" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    assert page.index("UNKNOWN_PAYER") < page.index("UNKNOWN_CLINIC") < page.index("ROW_INVALID")
    assert "<h2>Claims after sending</h2><p>No responses yet" in page
    # hostile ids are escaped
    wl = worklist_frame()
    wl.loc[0, "clinic_id"] = "<b>x</b>"
    assert "<b>x</b>" not in reports.html_report(
        TONIGHT,
        {"rows_in": 1, "rows_quarantined": 0, "files": 1, "files_rejected": 0},
        score_info(),
        [],
        _exceptions(),
        worklist=wl,
    )


# --------------------------------------------------------------------------- a real night


@pytest.fixture(scope="module")
def real_night(tmp_path_factory):
    return two_nights(tmp_path_factory)


def test_report_links_resolve_to_the_nights_files(real_night):
    _, manifests, _ = real_night
    m = manifests[-1]
    folder = Path(m["outputs"]["reports"])
    page = (folder / "report.html").read_text(encoding="utf-8")
    hrefs = [html.unescape(h) for h in re.findall(r"href='([^']*)'", page)]
    targets = [(folder / h).resolve() for h in hrefs]
    assert all(t.is_file() for t in targets), [t for t in targets if not t.is_file()]
    assert Path(m["outputs"]["validation"]).resolve() / "data_docs" / "index.html" in targets
    assert Path(m["outputs"]["exceptions"]).resolve() / "exceptions.csv" in targets
    claim_files = [Path(f["path"]).resolve() for f in m["claim_files"]]
    assert claim_files and set(claim_files) <= set(targets)
    if m["outputs"].get("worklist"):
        assert Path(m["outputs"]["worklist"]).resolve() / "worklist.csv" in targets


def test_report_and_summary_show_no_patient_data(real_night, capsys):
    out, manifests, rows = real_night
    page = html.unescape(
        (Path(manifests[-1]["outputs"]["reports"]) / "report.html").read_text(encoding="utf-8")
    )
    assert main(["summary", "--out", out, "--date", manifests[-1]["run_date"]]) == 0
    text = capsys.readouterr().out
    values = {
        v.strip() for c in PHI_COLUMNS for v in rows[c].dropna().astype(str) if len(v.strip()) >= 4
    }
    assert len(values) > 100  # the check has something to find
    for doc in (page, text):
        found = [v for v in values if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", doc)]
        assert found == []


def test_summary_of_a_real_night_ranks_and_trends(real_night, capsys):
    out, manifests, _ = real_night
    assert main(["summary", "--out", out, "--date", manifests[-1]["run_date"]]) == 0
    text = capsys.readouterr().out
    for m in manifests:  # the trends, from the manifests
        rate = 100 * m["claims_billed"] / (m["claims_billed"] + m["claims_held"])
        assert re.search(rf"^  {m['run_date']} +{rate:.1f}% +\S+ +{m['rows_in']}$", text, re.M)
    table = text[text.index("What holds claims") : text.index("Trends")]
    rows = re.findall(r"^  [A-Z0-9_]+ +(error|warning|info) +\d+ +\S+ +(\S+)  ", table, re.M)
    assert rows and rows[0][0] == "error"
    dollars = [float(d.strip("$").replace(",", "")) if d != "-" else 0.0 for _, d in rows]
    holding = sum(1 for d in dollars if d > 0)
    # codes holding claims first, most dollars first; then by severity
    assert all(d > 0 for d in dollars[:holding]) and dollars[:holding] == sorted(
        dollars[:holding], reverse=True
    )
    rank = {"error": 0, "warning": 1, "info": 2}
    rest = [rank[s] for s, _ in rows[holding:]]
    assert rest == sorted(rest)


def test_trend_lines_break_where_a_night_has_no_value():
    page = reports.html_report(
        TONIGHT,
        {"rows_in": 40, "rows_quarantined": 2, "files": 1, "files_rejected": 0},
        score_info(),
        [],
        _exceptions(),
        worklist=worklist_frame(),
        history=history(),
    )

    def chart(name: str) -> str:
        start = page.index(f"data-chart='{name}'")
        return page[start : page.index("</svg>", start)]

    # rate: 11-25, (none on 11-26), 11-27, 11-28: the first point stands alone
    rate = chart("trend-clean-claim-rate")
    assert rate.count("class='point'") == 3 and rate.count("<polyline") == 1
    assert len(re.search(r"<polyline[^>]* points='([^']*)'", rate).group(1).split()) == 2
    held = chart("trend-held-dollars")  # 11-26 to 11-28: one line through three points
    assert len(re.search(r"<polyline[^>]* points='([^']*)'", held).group(1).split()) == 3
    assert "<title>2026-11-27: 75.0%</title>" in rate
    assert "<title>2026-11-27: $700.25</title>" in held
