from __future__ import annotations

import io

import pandas as pd

from therapy_claims import reports


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
