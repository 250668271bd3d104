"""The ledger rows of one claim file, against a plain per-claim groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import ledger


def test_entries_are_one_row_per_claim_with_its_first_values_and_date_range():
    """Rows in any order, split claims, a missing first value and a missing date: per claim
    (in claim_id order), the first non-missing payer/clinic/patient/encounter, the first and
    last date of service, the line count and the charge, as a groupby gives them."""
    rng = np.random.default_rng(3)
    n = 400
    ids = rng.choice(["TCB-1", "TCB-2", "TCA", "TCC", "TCD"], n)
    sent = pd.DataFrame(
        {
            "claim_id": pd.Series(ids, dtype="string"),
            "payer_id": pd.Series([f"P{c[-1]}" for c in ids], dtype="string"),
            "clinic_id": pd.Series("CLN01", index=range(n), dtype="string"),
            "patient_id": pd.Series(rng.choice(["PAT1", "PAT2"], n), dtype="string"),
            "encounter_id": pd.Series([f"E{c[:3]}" for c in ids], dtype="string"),
            "date_of_service": pd.to_datetime("2026-11-01")
            + pd.to_timedelta(rng.integers(0, 20, n), unit="D"),
            "charge_amount": rng.integers(1, 10_000, n) / 100,
        }
    )
    first_a = int(np.flatnonzero(ids == "TCA")[0])
    sent.loc[first_a, "patient_id"] = pd.NA  # groupby's first() takes the next one
    sent.loc[int(np.flatnonzero(ids == "TCC")[-1]), "date_of_service"] = pd.NaT
    placed = {"TCA": "0001", "TCB-1": "0001", "TCB-2": "0002", "TCC": "0002", "TCD": "0002"}
    got = ledger.entries(
        sent,
        run_date="2026-11-28",
        file="claims/x.x12",
        claim_type="837P",
        receiver_id="R1",
        icn=263320007,
        placed=placed,
    )
    g = sent.groupby("claim_id", sort=True)
    assert got["claim_id"].tolist() == ["TCA", "TCB-1", "TCB-2", "TCC", "TCD"]
    for c in ("payer_id", "clinic_id", "patient_id", "encounter_id"):
        assert got[c].tolist() == g[c].first().tolist(), c
    days = g["date_of_service"]
    assert got["first_date_of_service"].tolist() == days.min().dt.strftime("%Y-%m-%d").tolist()
    assert got["last_date_of_service"].tolist() == days.max().dt.strftime("%Y-%m-%d").tolist()
    assert got["lines"].tolist() == g.size().tolist()
    assert got["charge"].tolist() == g["charge_amount"].sum().round(2).tolist()
    assert got["claim_key"].tolist() == ["TCA", "TCB", "TCB", "TCC", "TCD"]
    assert set(got["file"]) == {"claims/x.x12"}
    assert set(got["interchange_control_number"]) == {"263320007"}
    assert set(got["group_control_number"]) == {"263320007"}
    assert got["transaction_set_control_number"].tolist() == [
        "0001",
        "0001",
        "0002",
        "0002",
        "0002",
    ]
    assert list(got.columns) == ledger.COLUMNS


def test_stamp_gives_a_file_its_final_number():
    rows = ledger.entries(
        pd.DataFrame(
            {
                "claim_id": pd.Series(["TCA"], dtype="string"),
                "payer_id": ["P1"],
                "clinic_id": ["CLN01"],
                "patient_id": ["PAT1"],
                "encounter_id": ["E1"],
                "date_of_service": pd.to_datetime(["2026-11-02"]),
                "charge_amount": [12.5],
            }
        ),
        run_date="2026-11-28",
        file="",
        claim_type="837P",
        receiver_id="R1",
        icn=263320001,
        placed={"TCA": "0001"},
    )
    final = ledger.stamp(rows, file="claims/R1_837P_263320004.x12", icn=263320004)
    assert final[["file", "interchange_control_number", "group_control_number"]].iloc[
        0
    ].tolist() == [
        "claims/R1_837P_263320004.x12",
        "263320004",
        "263320004",
    ]
    assert list(final.columns) == ledger.COLUMNS
    assert final.drop(
        columns=["file", "interchange_control_number", "group_control_number"]
    ).equals(rows.drop(columns=["file", "interchange_control_number", "group_control_number"]))
