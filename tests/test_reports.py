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
