"""Rejected and denied claims in the morning worklist (issue 17).

Night 1 bills five visits through the whole pipeline. The payers' answers are then written as
the lifecycle layer (``<out>/lifecycle/current.parquet``, built here with pyarrow as
docs/outputs.md and the lifecycle contract describe it): one claim denied CO-97 and CO-18, one
rejected by a 277CA (A7:562:85), one rejected by the 999, one paid, one partially paid with a
line denied CO-97 and one partially paid for contractual reasons only. Night 2 (a new visit
held, another billed) must hold the rejected and denied ones with the codes worked out here
from reference_data/payer_reasons.csv and docs/rules.md, not from the worklist code; the same
nights without the lifecycle layer must give night 2 exactly its scrubber rows. Night 3's
carrying (claims sent again, paid, a key both held and rejected) is checked on the frames.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import row, write_csv

from therapy_claims import lifecycle, payer_reasons, pipeline, schemas, storage, worklist
from therapy_claims.catalogue import CATALOGUE

N1, N2, N3 = date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 9)
_SLOTS: dict[str, int] = {}

# the encounters of night 1 and what the payers answered, per encounter
ANSWERS = {
    # encounter: (lines, status, status_on, kind, reason codes)
    "EA": (1, "denied", date(2026, 12, 5), "835", ["CO-97", "CO-18"]),
    "EB": (2, "rejected_by_payer", date(2026, 12, 3), "277CA", ["A7:562:85"]),
    "ED": (1, "rejected_by_clearinghouse", date(2026, 12, 2), "999", ["IK5:R", "IK3:8"]),
    "EC": (1, "paid", date(2026, 12, 6), "835", []),
    "EE": (1, "partially_paid", date(2026, 12, 6), "835", ["CO-45", "CO-97", "PR-2"]),
    "EF": (1, "partially_paid", date(2026, 12, 6), "835", ["CO-45", "PR-2"]),
}


def visit(enc: str, n: int = 1, *, payer: str = "MCR01") -> list[dict]:
    """``n`` 97110 lines (15 minutes, 1 unit, $30.00 each) of one encounter at CLN01, each
    encounter in its own time slot and on its own days."""
    slot = _SLOTS.setdefault(enc, len(_SLOTS))
    start = 7 * 60 + 20 * slot
    first = date(2026, 7, 1) + timedelta(days=5 * slot)
    return [
        row(
            line_id=f"{enc}-L{i}",
            encounter_id=enc,
            payer_id=payer,
            date_of_service=(first + timedelta(days=i)).isoformat(),
            minutes="15",
            units_charted="1",
            charge_amount="30.00",
            start_time=f"{start // 60:02d}:{start % 60:02d}",
            end_time=f"{(start + 15) // 60:02d}:{(start + 15) % 60:02d}",
        )
        for i in range(n)
    ]


NIGHT1 = [r for enc, a in ANSWERS.items() for r in visit(enc, a[0])]
NIGHT2 = visit("EH", payer="NOPE") + visit("EG")


# --------------------------------------------------------------------------- the lifecycle layer

LIFECYCLE = lifecycle.CURRENT  # the layer these tests stand in for


def lifecycle_row(sent: dict, status: str, on: date, kind: str, reasons: list[str]) -> dict:
    """One row of ``current.parquet`` for a ledger row ``sent``."""
    charge = Decimal(str(sent["charge"])).quantize(Decimal("0.01"))
    paid = {"paid": charge, "partially_paid": charge / 2}.get(status, Decimal("0.00"))
    return {
        "claim_id": sent["claim_id"],
        "claim_key": sent["claim_key"],
        "run_date": date.fromisoformat(str(sent["run_date"])[:10]),
        "payer_id": sent["payer_id"],
        "clinic_id": sent["clinic_id"],
        "encounter_id": sent["encounter_id"],
        "claim_type": "837P",
        "file": "x.x12",
        "charge": charge,
        "status": status,
        "status_on": on,
        "status_kind": kind,
        "status_file": f"{kind}_{on:%Y%m%d}.x12",
        "reason_codes": reasons,
        "remark_codes": [],
        "payer_claim_control_number": None,
        "paid": paid,
        "patient_responsibility": Decimal("0.00"),
        "paid_on": on if paid else None,
        "days_to_payment": None,
        "first_pass_accepted": None,
        "steps": 3,
    }


def write_lifecycle(out: Path, rows: list[dict]) -> None:
    path = out / "lifecycle" / "current.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LIFECYCLE), path)


def _layer(cfg, kind: str) -> pd.DataFrame:
    return storage.to_frame(schemas.read(str(Path(cfg.final(kind)) / f"{kind}.parquet"), kind))


def _run(root: Path, rd: date, rows: list[dict]):
    inp = write_csv(root / f"landing-{rd}" / "extract.csv", rows)
    cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(root / "out"), run_date=rd)
    return cfg, pipeline.run(cfg)


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> dict:
    """Nights 1 and 2 with the payers' answers in between, and the same without them."""
    root = tmp_path_factory.mktemp("payerwork")
    cfg1, _ = _run(root / "with", N1, NIGHT1)
    sent = {r["encounter_id"]: r for r in _layer(cfg1, "ledger").to_dict("records")}
    assert set(sent) == set(ANSWERS)  # every visit of night 1 was billed
    answers = [lifecycle_row(sent[e], *a[1:]) for e, a in ANSWERS.items()]
    write_lifecycle(root / "with" / "out", answers)
    cfg2, m2 = _run(root / "with", N2, NIGHT2)
    _run(root / "without", N1, NIGHT1)
    plain, plain_m = _run(root / "without", N2, NIGHT2)
    return {
        "sent": sent,
        "answers": answers,
        "night2": (cfg2, m2),
        "plain": (plain, plain_m),
    }


def _by_key(cfg) -> dict[str, dict]:
    return {r["worklist_key"]: r for r in _layer(cfg, "worklist").to_dict("records")}


# the codes worked out by hand: payer_reasons.csv maps CO-97 to NCCI_MODIFIER_MISSING,
# NCCI_NOT_BYPASSABLE and CMT_SAME_REGION (in its row order), CO-18 to ALREADY_BILLED, 277CA
# status 562 to NPI_INVALID; CO-45 and PR-2 to nothing. blocking_codes are in rules.md's order
CO97 = ["NCCI_MODIFIER_MISSING", "NCCI_NOT_BYPASSABLE", "CMT_SAME_REGION"]
EXPECTED = {
    "CLN01|EA": {
        "blocking_codes": [
            "CMT_SAME_REGION",
            "NCCI_MODIFIER_MISSING",
            "NCCI_NOT_BYPASSABLE",
            "ALREADY_BILLED",
            "PAYER_DENIED",
        ],
        "prevented_by": [*CO97, "ALREADY_BILLED"],
        "payer_reason_codes": ["CO-97", "CO-18"],
        "owner": "coder",
        "held_dollars": 30.0,
        "first_held": date(2026, 12, 5),
        "age_days": 3,
    },
    "CLN01|EB": {
        "blocking_codes": ["NPI_INVALID", "PAYER_REJECTED"],
        "prevented_by": ["NPI_INVALID"],
        "payer_reason_codes": ["A7:562:85"],
        "owner": "IT/reference data",
        "held_dollars": 60.0,
        "first_held": date(2026, 12, 3),
        "age_days": 5,
    },
    "CLN01|ED": {
        "blocking_codes": ["CLEARINGHOUSE_REJECTED"],
        "prevented_by": [],
        "payer_reason_codes": ["IK5:R", "IK3:8"],
        "owner": "IT/reference data",
        "held_dollars": 30.0,
        "first_held": date(2026, 12, 2),
        "age_days": 6,
    },
    "CLN01|EE": {  # partially paid, a line denied CO-97: the team works it
        "blocking_codes": [*CO97[2:], *CO97[:2], "PAYER_DENIED"],
        "prevented_by": CO97,
        "payer_reason_codes": ["CO-45", "CO-97", "PR-2"],
        "owner": "coder",
        "held_dollars": 30.0,
        "first_held": date(2026, 12, 6),
        "age_days": 2,
    },
}


def test_rejected_and_denied_claims_are_open_rows_with_the_payers_and_our_codes(nights):
    cfg2, _ = nights["night2"]
    rows = _by_key(cfg2)
    # the paid claim and the one partially paid for contractual reasons are not work
    assert set(rows) == {*EXPECTED, "CLN01|EH"}
    for key, want in EXPECTED.items():
        r = rows[key]
        enc = key.split("|")[1]
        got = {k: r[k] for k in want}
        got = {
            **got,
            **{k: list(got[k]) for k in ("blocking_codes", "prevented_by", "payer_reason_codes")},
            "first_held": r["first_held"].date(),
        }
        assert got == want, key
        assert (r["status"], r["source"], r["last_held"]) == ("open", "payer", pd.Timestamp(N2))
        assert list(r["claim_ids"]) == [nights["sent"][enc]["claim_id"]]
        assert r["payer_id"] == "MCR01" and pd.isna(r["patient_id"]) and pd.isna(r["lines"])
        assert list(r["owners"]) == [CATALOGUE[c].owner for c in want["blocking_codes"]]
        assert list(r["fixes"]) == [CATALOGUE[c].suggested_fix for c in want["blocking_codes"]]
    held = rows["CLN01|EH"]
    assert (held["source"], list(held["blocking_codes"])) == ("scrubber", ["UNKNOWN_PAYER"])
    assert list(held["payer_reason_codes"]) == list(held["prevented_by"]) == []


def test_the_manifest_csv_and_report_show_the_payer_rows_without_phi(nights):
    cfg2, m2 = nights["night2"]
    assert m2["worklist"] == {
        "open": 5,
        "opened_tonight": 1,  # EH; the payer rows opened on their status dates
        "resolved_tonight": 0,
        "held_dollars_open": 180.0,  # 30 + 60 + 30 + 30 (EE) + 30 (EH)
        "oldest_open_days": 6,
    }
    csv = pd.read_csv(Path(cfg2.final("worklist")) / "worklist.csv", encoding="utf-8-sig")
    a = csv.set_index("worklist_key").loc["CLN01|EA"]
    assert a["payer_reason_codes"] == "CO-97; CO-18"
    assert a["prevented_by"] == "; ".join([*CO97, "ALREADY_BILLED"])
    assert (a["source"], a["held_dollars"]) == ("payer", 30.0)
    assert "CLN01|EC" not in set(csv["worklist_key"])
    page = (Path(cfg2.final("reports")) / "report.html").read_text(encoding="utf-8")
    assert "Rejected and denied by the payers" in page
    ea = nights["sent"]["EA"]["claim_id"]
    assert (
        f"PAYER_DENIED (835 denied): claim {ea} since 2026-12-05; the payer&#x27;s codes "
        "CO-97, CO-18; prevented by NCCI_MODIFIER_MISSING, NCCI_NOT_BYPASSABLE, "
        "CMT_SAME_REGION, ALREADY_BILLED"
    ) in page
    for phi in ("DOE", "JOHN", "1EG4TE5MK72", "1950-03-04", "ELM ST"):
        assert phi not in page and phi not in csv.to_csv()


def test_a_night_without_the_lifecycle_layer_is_as_before(nights):
    cfg2, _ = nights["night2"]
    plain, plain_m = nights["plain"]
    without = _layer(plain, "worklist")
    assert without["worklist_key"].tolist() == ["CLN01|EH"]
    assert set(without["source"]) == {"scrubber"}
    assert plain_m["worklist"]["open"] == 1
    # the scrubber's rows are the same with and without the payers' answers
    with_ = _layer(cfg2, "worklist")
    with_ = with_[with_["source"] == "scrubber"].reset_index(drop=True)
    pd.testing.assert_frame_equal(with_, without)
    # the CSV of a night without it carries the new columns, empty
    csv = pd.read_csv(Path(plain.final("worklist")) / "worklist.csv", encoding="utf-8-sig")
    assert csv["payer_reason_codes"].isna().all() and csv["prevented_by"].isna().all()


# --------------------------------------------------------------------------- night 3, on frames


def _no_lines(*held: tuple) -> pd.DataFrame:
    """Scored lines (encounter, claim id, status, charge) at CLN01 under MCR01."""
    df = pd.DataFrame(list(held), columns=["encounter_id", "claim_id", "status", "charge"])
    return pd.DataFrame(
        {
            "clinic_id": pd.Series("CLN01", index=df.index, dtype="string"),
            "encounter_id": df["encounter_id"].astype("string"),
            "patient_id": pd.Series("P1", index=df.index, dtype="string"),
            "payer_id": pd.Series("MCR01", index=df.index, dtype="string"),
            "claim_id": df["claim_id"].astype("string"),
            "date_of_service": pd.Series(pd.Timestamp("2026-07-01"), index=df.index),
            "charge_amount": df["charge"].astype(float),
            "status": df["status"].astype("string"),
        }
    )


def _exceptions(*rows: tuple) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=["encounter_id", "code"])
    return pd.DataFrame(
        {
            "clinic_id": pd.Series("CLN01", index=df.index, dtype="string"),
            "encounter_id": df["encounter_id"].astype("string"),
            "code": df["code"].astype("string"),
            "holds_claim": pd.Series(True, index=df.index, dtype=bool),
        }
    )


def test_night_3_resolves_claims_sent_again_or_paid_and_merges_a_key_held_again(nights, tmp_path):
    cfg2, _ = nights["night2"]
    previous = worklist.read(str(Path(cfg2.final("worklist")) / worklist.FILE_NAME))
    sent, answers = nights["sent"], nights["answers"]
    by_enc = {a["encounter_id"]: a for a in answers}
    # EA sent again on night 2 (a later ledger row of its claim key, accepted by the 999); EE
    # paid in full after an appeal; EB's key is sent tonight; ED still rejected, and its
    # visit held tonight for an unknown payer under another claim id
    resent = {**by_enc["EA"], "run_date": N2, "status": "accepted_by_clearinghouse"}
    resent.update(status_on=N2, status_kind="999", reason_codes=[])
    paid = {**by_enc["EE"], "status": "paid", "status_on": date(2026, 12, 8), "reason_codes": []}
    rows = [*[a for a in answers if a["encounter_id"] != "EE"], resent, paid]
    write_lifecycle(tmp_path, rows)
    lifecycle = worklist.read_lifecycle(str(tmp_path))
    tonight_keys = [sent["EB"]["claim_key"]]
    claims = worklist.payer_claims(
        lifecycle, N3, payer_reasons.load(), previous=previous, sent_keys=tonight_keys
    )
    night3 = worklist.build(
        _no_lines(("ED", "TCOTHER", "held", 45.0)),
        _exceptions(("ED", "UNKNOWN_PAYER")),
        previous,
        N3,
        claims=claims,
        sent_keys=tonight_keys,
    )
    got = {r["worklist_key"]: r for r in night3.to_dict("records")}
    assert {k: (r["status"], r["resolution"]) for k, r in got.items() if k != "CLN01|ED"} == {
        "CLN01|EA": ("resolved", "resent"),
        "CLN01|EB": ("resolved", "resent"),
        "CLN01|EE": ("resolved", "paid"),
        "CLN01|EH": ("open", None),
    }
    assert all(got[k]["resolved_on"] == pd.Timestamp(N3) for k in ("CLN01|EA", "CLN01|EE"))
    d = got["CLN01|ED"]
    assert (d["status"], d["source"], pd.isna(d["resolution"])) == ("open", "both", True)
    # held tonight and rejected by the 999: one row, the held lines' dollars, both codes
    assert list(d["blocking_codes"]) == ["UNKNOWN_PAYER", "CLEARINGHOUSE_REJECTED"]
    assert list(d["claim_ids"]) == sorted([sent["ED"]["claim_id"], "TCOTHER"])
    assert (d["held_dollars"], d["lines"], d["owner"]) == (45.0, 1, "front desk")
    assert (d["first_held"], d["age_days"]) == (pd.Timestamp(date(2026, 12, 2)), 7)
    assert list(d["payer_reason_codes"]) == ["IK5:R", "IK3:8"]
    # the layer takes it as it is
    assert worklist.to_table(night3).schema.equals(schemas.WORKLIST)


def test_a_worklist_file_from_before_issue_17_reads_as_scrubber_rows(tmp_path):
    old = schemas.WORKLIST.empty_table()
    old = old.select([n for n in old.column_names if n not in worklist.LIST_COLUMNS[4:]])
    old = old.remove_column(old.schema.get_field_index("source"))
    table = pa.Table.from_pylist(
        [{"worklist_key": "C|E", "status": "open", "first_held": pd.Timestamp(N1)}],
        schema=old.schema,
    )
    path = tmp_path / "worklist.parquet"
    pq.write_table(table, path)
    back = worklist.read(str(path))
    assert back["source"].tolist() == ["scrubber"]
    assert [list(v) for v in back["prevented_by"]] == [[]]


def test_a_payers_codes_are_hostile_text_cut_and_without_control_characters(tmp_path):
    sent = {
        "claim_id": "TCHOSTILE0000001",
        "claim_key": "TCHOSTILE0000001",
        "run_date": "2026-12-01",
        "payer_id": "MCR01",
        "clinic_id": "CLN01",
        "encounter_id": "EX",
        "charge": 30.0,
    }
    evil = '=HYPERLINK("http://x")\nCO-97' + "9" * 60
    write_lifecycle(tmp_path, [lifecycle_row(sent, "denied", N1, "835", [evil, "CO-97"])])
    claims = worklist.payer_claims(worklist.read_lifecycle(str(tmp_path)), N2, payer_reasons.load())
    reasons = list(claims["reason_codes"].iloc[0])
    assert reasons == ['=HYPERLINK("http://x") CO-97999999999999', "CO-97"]
    assert len(reasons[0]) == 40 and list(claims["prevented_by"].iloc[0]) == CO97
    wl = worklist.build(_no_lines(), _exceptions(), None, N2, claims=claims)
    csv = worklist.csv_frame(wl)
    assert csv["payer_reason_codes"].tolist() == ['=HYPERLINK("http://x") CO-97999999999999; CO-97']
    from therapy_claims import reports

    data = reports.spreadsheet_safe_csv(csv, money=("held_dollars",)).decode("utf-8-sig")
    assert "'=HYPERLINK" in data  # a spreadsheet shows it as text, never runs it
