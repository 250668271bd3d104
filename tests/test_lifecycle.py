"""The lifecycle layer (therapy_claims.lifecycle): every claim sent in exactly one status.

Two sources of expectations, neither of them the package's own logic:

* the hand-written samples in tests/data/responses/ answer a small 837 of ours (claims
  C0000001 ..); the claims sent are written out here by hand (which set of which group each
  claim was in), and every expected status, amount, code and date below is read off the
  sample files by hand;
* the round trip (a pipeline night -> the payer simulator -> ``acks.run`` ->
  ``lifecycle.refresh``) is held to the simulator's own record of what it decided per claim
  (``simulation.json``).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from therapy_claims import (
    acks,
    generate,
    ledger,
    lifecycle,
    payer_sim,
    pipeline,
    responses,
    schemas,
)

DATA = Path(__file__).parent / "data" / "responses"
REPO = Path(__file__).resolve().parents[1]
SENT_ON = date(2026, 11, 19)
RECEIVED = date(2026, 12, 1)
D = Decimal

# the 837 the samples answer, by hand: (claim, charge, GS06, ST02). The 999s answer group 101
# (sets 0001, 0002) and group 102 (sets 0001 accepted, 0002 and 0003 rejected)
SAMPLE_CLAIMS = [
    ("C0000001", "250", "101", "0001"),
    ("C0000002-1", "185", "101", "0002"),
    ("C0000002-2", "100", "101", "0002"),
    ("C0000003", "120", "102", "0001"),
    ("C0000007", "100", "102", "0001"),
    ("C0000004", "90", "102", "0002"),
    ("C0000005", "120", "102", "0003"),
    ("C0000006", "75", "102", "0003"),
]
ORDER = [
    "999_accepted.x12",
    "999_rejected.x12",
    "277ca_accepted.x12",
    "277ca_rejected.x12",
    "835_paid.x12",
    "835_partial.x12",
    "835_denied.x12",
    "835_reversal.x12",
]


def sent_table(claims=SAMPLE_CLAIMS, submitter: str = "SUBMITTER01", run_date=SENT_ON):
    rows = [
        {
            "claim_id": cid,
            "claim_key": cid.split("-")[0],
            "run_date": run_date,
            "payer_id": "PAYER01",
            "clinic_id": "CLN01",
            "encounter_id": f"E-{cid}",
            "claim_type": "837P",
            "file": f"/out/claims/RECEIVER01_837P_{submitter}_{int(gs06):09d}.x12",
            "charge": D(charge),
            "submitter_id": submitter,
            "group_control_number": gs06,
            "transaction_set_control_number": st02,
        }
        for cid, charge, gs06, st02 in claims
    ]
    return pa.Table.from_pylist(rows, lifecycle.SENT)


def read_sample(name: str, text: str | None = None) -> responses.Responses:
    return responses.read(text or (DATA / name).read_text(), f"in/{name}")


def received(*names: str, on: date = RECEIVED, run: str = "r1") -> dict[str, pa.Table]:
    return lifecycle.received_tables([(on, run, [read_sample(n) for n in names])])


def by_claim(table: pa.Table) -> dict[str, dict]:
    return {r["claim_id"]: r for r in table.to_pylist()}


def assert_balanced(lc: lifecycle.Lifecycle, sent: pa.Table) -> None:
    """Every sent claim in exactly one status: one current row per ledger row, each status
    one of the eight, the counts adding up to the claims sent."""
    assert lc.current.num_rows == sent.num_rows
    assert set(lc.current.column("status").to_pylist()) <= set(lifecycle.STATUSES)
    assert sum(lc.counts().values()) == sent.num_rows
    for name, schema in lifecycle.SCHEMAS.items():
        assert getattr(lc, name).schema == schema, name


# ---- the samples: each kind of step -------------------------------------------------------


def test_nothing_received_leaves_every_claim_sent():
    sent = sent_table()
    lc = lifecycle.statuses(sent, {})
    assert_balanced(lc, sent)
    assert lc.counts()["sent"] == len(SAMPLE_CLAIMS)
    row = by_claim(lc.current)["C0000001"]
    assert (row["status_kind"], row["status_on"], row["steps"]) == ("837", SENT_ON, 1)
    assert row["status_file"] == "RECEIVER01_837P_SUBMITTER01_000000101.x12"
    assert (row["paid"], row["patient_responsibility"]) == (D("0.00"), D("0.00"))
    assert row["paid_on"] is None and row["days_to_payment"] is None
    assert row["reason_codes"] == [] and row["first_pass_accepted"] is None
    assert lc.findings.num_rows == 0


def test_999_accepted_and_rejected_sets():
    sent = sent_table()
    lc = lifecycle.statuses(sent, received("999_accepted.x12", "999_rejected.x12"))
    assert_balanced(lc, sent)
    rows = by_claim(lc.current)
    accepted = {"C0000001", "C0000002-1", "C0000002-2", "C0000003", "C0000007"}
    for cid in accepted:
        assert rows[cid]["status"] == "accepted_by_clearinghouse", cid
        assert rows[cid]["reason_codes"] == []
        assert rows[cid]["status_on"] == date(2026, 11, 20)  # the 999's GS04
        assert rows[cid]["status_kind"] == "999"
    assert rows["C0000001"]["status_file"] == "999_accepted.x12"
    # set 0002 of group 102: IK3*CLM*22**8, IK4*2*782*1, IK5*R*5
    assert rows["C0000004"]["status"] == "rejected_by_clearinghouse"
    assert rows["C0000004"]["reason_codes"] == ["IK5:5", "IK3:CLM@22:8", "IK4:CLM02:1"]
    # rejected on its first pass: decided, though no 277CA will ever come
    assert rows["C0000004"]["first_pass_accepted"] is False
    assert rows["C0000001"]["first_pass_accepted"] is None  # accepted, its 277CA to come
    # set 0003: two IK3/IK4 pairs, both claims of the set rejected
    for cid in ("C0000005", "C0000006"):
        assert rows[cid]["status"] == "rejected_by_clearinghouse"
        assert rows[cid]["reason_codes"] == [
            "IK5:5",
            "IK3:NM1@8:8",
            "IK3:SV1@31:8",
            "IK4:NM109:7",
            "IK4:SV101-2:7",
        ]
    assert lc.counts()["rejected_by_clearinghouse"] == 3
    assert lc.findings.num_rows == 0


def _group_rejected_whole() -> str:
    text = (DATA / "999_accepted.x12").read_text()
    body = "AK1*HC*101*005010X222A1~\nAK9*R*2*2*0*2~\n"
    text = text[: text.index("AK1")] + body + text[text.index("SE*") :]
    return text.replace("SE*8*0001~", "SE*4*0001~")


def test_a_group_rejected_whole_rejects_every_set_of_the_group():
    sent = sent_table()
    rejected = responses.read(_group_rejected_whole(), "in/group.x12")
    assert rejected.acknowledgments.num_rows == 1  # the reader gives one row, no AK2
    lc = lifecycle.statuses(sent, lifecycle.received_tables([(RECEIVED, "r1", [rejected])]))
    assert_balanced(lc, sent)
    rows = by_claim(lc.current)
    for cid in ("C0000001", "C0000002-1", "C0000002-2"):  # group 101: both its sets
        assert rows[cid]["status"] == "rejected_by_clearinghouse", cid
        assert rows[cid]["reason_codes"] == ["AK9:2"]  # AK905, the group's code
    assert {rows[c]["status"] for c in ("C0000003", "C0000004", "C0000007")} == {"sent"}


def test_999_matches_by_submitter_as_well_as_control_numbers():
    """Two submitters both sent a group 101 (each counts its own numbers): the 999 for
    SUBMITTER01 (its ISA08) answers only SUBMITTER01's claims."""
    mine = sent_table(SAMPLE_CLAIMS[:3])
    other = sent_table([("X0000001", "50", "101", "0001")], submitter="OTHERSUB")
    sent = pa.concat_tables([mine, other])
    lc = lifecycle.statuses(sent, received("999_accepted.x12"))
    rows = by_claim(lc.current)
    assert rows["C0000001"]["status"] == "accepted_by_clearinghouse"
    assert rows["X0000001"]["status"] == "sent"


def test_277ca_accepts_and_rejects_each_claim():
    sent = sent_table()
    lc = lifecycle.statuses(
        sent,
        received(
            "999_accepted.x12", "999_rejected.x12", "277ca_accepted.x12", "277ca_rejected.x12"
        ),
    )
    assert_balanced(lc, sent)
    rows = by_claim(lc.current)
    expected = {
        "C0000001": ("accepted_by_payer", ["A2:20:PR"], "PCCN0001"),
        "C0000002-1": ("accepted_by_payer", ["A2:20:PR"], "PCCN0002"),
        "C0000003": ("accepted_by_payer", ["A1:19:PR"], "PCCN0003"),
        "C0000004": ("rejected_by_payer", ["A3:21:85"], None),
        "C0000005": ("rejected_by_payer", ["A6:164:IL"], None),
        "C0000006": ("rejected_by_payer", ["A7:562:85", "A7:128:82"], None),
        "C0000002-2": ("rejected_by_payer", ["A8:187:QC"], None),
        "C0000007": ("accepted_by_clearinghouse", [], None),  # in no 277CA
    }
    for cid, (status, reasons, pccn) in expected.items():
        row = rows[cid]
        assert (row["status"], row["reason_codes"]) == (status, reasons), cid
        assert row["payer_claim_control_number"] == pccn, cid
    assert rows["C0000001"]["status_on"] == date(2026, 11, 21)
    # first pass: the first 999 and the first 277CA both accepted it; false once either
    # rejected it; null while it waits for one
    assert rows["C0000001"]["first_pass_accepted"] is True
    assert rows["C0000002-2"]["first_pass_accepted"] is False  # 999 accepted, 277CA rejected
    assert rows["C0000004"]["first_pass_accepted"] is False  # both rejected
    assert rows["C0000007"]["first_pass_accepted"] is None  # 999 accepted, no 277CA yet
    assert lc.counts()["accepted_by_payer"] == 3 and lc.counts()["rejected_by_payer"] == 4


def test_835_paid_partial_denied_and_a_reversal():
    sent = sent_table()
    lc = lifecycle.statuses(sent, received(*ORDER))
    assert_balanced(lc, sent)
    rows = by_claim(lc.current)
    # (status, paid, patient responsibility, paid on, reasons, remarks, CLP07), by hand
    expected = {
        # 835_paid: 250 of 250 on 11-25; 835_reversal: -250 (CLP02 22), then 220 on 11-28
        "C0000001": (
            "partially_paid",
            "220.00",
            "0.00",
            date(2026, 11, 28),
            ["CO-45"],
            [],
            "PCCN0001B",
        ),
        # 105 of 185; CLP05 35; CAS CO-45, PR-1, PR-2 (line 1), CO-45, PR-3 (line 2)
        "C0000002-1": (
            "partially_paid",
            "105.00",
            "35.00",
            date(2026, 11, 26),
            ["CO-45", "PR-1", "PR-2", "PR-3"],
            ["N130", "N381"],
            "PCCN0002",
        ),
        "C0000003": ("paid", "120.00", "0.00", date(2026, 11, 25), [], [], "PCCN0003"),
        "C0000007": ("paid", "100.00", "0.00", date(2026, 11, 28), [], [], "PCCN0007"),
        # CLP02 4: denied, whatever the 999 and 277CA said before (a later kind wins)
        "C0000004": ("denied", "0.00", "0.00", None, ["CO-97"], ["M15"], "PCCN0004"),
        "C0000005": ("denied", "0.00", "0.00", None, ["CO-18"], [], "PCCN0005"),
        "C0000006": ("denied", "0.00", "0.00", None, ["CO-29"], [], "PCCN0006"),
        "C0000002-2": ("rejected_by_payer", "0.00", "0.00", None, ["A8:187:QC"], [], None),
    }
    for cid, (status, paid, patient, paid_on, reasons, remarks, pccn) in expected.items():
        row = rows[cid]
        got = (
            row["status"],
            row["paid"],
            row["patient_responsibility"],
            row["paid_on"],
            row["reason_codes"],
            row["remark_codes"],
            row["payer_claim_control_number"],
        )
        assert got == (status, D(paid), D(patient), paid_on, reasons, remarks, pccn), cid
    # days to payment: paid_on - the night that sent it (11-19), by hand
    days = {cid: rows[cid]["days_to_payment"] for cid in rows}
    assert days == {
        "C0000001": 9,
        "C0000002-1": 7,
        "C0000003": 6,
        "C0000007": 9,
        "C0000004": None,
        "C0000005": None,
        "C0000006": None,
        "C0000002-2": None,
    }
    assert rows["C0000001"]["status_file"] == "835_reversal.x12"
    assert rows["C0000001"]["status_on"] == date(2026, 11, 28)  # GS04 of the reversal's 835
    assert lc.counts() == {
        "sent": 0,
        "accepted_by_clearinghouse": 0,
        "rejected_by_clearinghouse": 0,
        "accepted_by_payer": 0,
        "rejected_by_payer": 1,
        "paid": 2,
        "partially_paid": 2,
        "denied": 3,
    }
    assert lc.findings.num_rows == 0


def test_history_lists_every_step_in_receiving_order():
    sent = sent_table()
    lc = lifecycle.statuses(sent, received(*ORDER))
    steps = [r for r in lc.history.to_pylist() if r["claim_id"] == "C0000001"]
    got = [(r["step"], r["kind"], r["status"], r["source_file"], r["paid"]) for r in steps]
    assert got == [
        (1, "837", "sent", "RECEIVER01_837P_SUBMITTER01_000000101.x12", None),
        (2, "999", "accepted_by_clearinghouse", "999_accepted.x12", None),
        (3, "277CA", "accepted_by_payer", "277ca_accepted.x12", None),
        (4, "835", "paid", "835_paid.x12", D("250.00")),
        (5, "835", "accepted_by_payer", "835_reversal.x12", D("-250.00")),  # reversed
        (6, "835", "partially_paid", "835_reversal.x12", D("220.00")),
    ]
    assert steps[0]["received_on"] is None and steps[0]["acks_run_id"] is None
    assert {r["received_on"] for r in steps[1:]} == {RECEIVED}
    assert {r["acks_run_id"] for r in steps[1:]} == {"r1"}
    assert by_claim(lc.current)["C0000001"]["steps"] == 6
    # every claim's steps are numbered 1..n, and current counts them
    per_claim = Counter(lc.history.column("claim_id").to_pylist())
    assert {r["claim_id"]: r["steps"] for r in lc.current.to_pylist()} == dict(per_claim)


def test_one_acks_run_lists_a_claim_s_steps_kind_by_kind_whatever_the_file_order():
    """A clearinghouse folder lists the 835 before the 999 by name (``x.835`` < ``x.999``):
    within one acks run the steps still read 999, 277CA, 835, as they happened."""
    sent = sent_table()
    listed = ["835_paid.x12", "277ca_accepted.x12", "999_accepted.x12"]
    lc = lifecycle.statuses(sent, received(*listed))
    steps = [r for r in lc.history.to_pylist() if r["claim_id"] == "C0000001"]
    assert [(r["step"], r["kind"], r["status"]) for r in steps] == [
        (1, "837", "sent"),
        (2, "999", "accepted_by_clearinghouse"),
        (3, "277CA", "accepted_by_payer"),
        (4, "835", "paid"),
    ]
    assert by_claim(lc.current)["C0000001"]["status"] == "paid"
    # across runs, receiving order still rules: a 999 received a day after the 835 is listed
    # after it (and does not move the status back)
    late = lifecycle.statuses(
        sent,
        {
            name: pa.concat_tables([a, b])
            for (name, a), b in zip(
                received("277ca_accepted.x12", "835_paid.x12").items(),
                received("999_accepted.x12", on=RECEIVED + timedelta(days=1), run="r2").values(),
                strict=True,
            )
        },
    )
    steps = [r for r in late.history.to_pylist() if r["claim_id"] == "C0000001"]
    assert [r["kind"] for r in steps] == ["837", "277CA", "835", "999"]
    assert by_claim(late.current)["C0000001"]["status"] == "paid"


def test_a_reversal_without_a_new_payment_goes_back_to_accepted_by_payer():
    sent = sent_table()
    rec = received(*ORDER[:5], "835_reversal.x12")
    payments = rec["payments"]
    # keep the reversal only: drop the 835_reversal's correction (CLP02 1, PCCN0001B)
    keep = [
        not (r["claim_id"] == "C0000001" and r["payer_claim_control_number"] == "PCCN0001B")
        for r in payments.to_pylist()
    ]
    rec["payments"] = payments.filter(pa.array(keep))
    lc = lifecycle.statuses(sent, rec)
    row = by_claim(lc.current)["C0000001"]
    assert (row["status"], row["paid"], row["paid_on"]) == ("accepted_by_payer", D("0.00"), None)
    assert row["days_to_payment"] is None and row["status_kind"] == "835"


def test_the_later_response_of_a_kind_wins():
    """The 277CA rejected C0000002-2; a later acks run brings a 277CA accepting it."""
    accepting = (
        (DATA / "277ca_accepted.x12")
        .read_text()
        .replace("TRN*2*C0000002-1~", "TRN*2*C0000002-2~")
        .replace("STC*A2:20:PR*20261121*WQ*185~", "STC*A2:20:PR*20261121*WQ*100~")
    )
    sent = sent_table()
    rec = lifecycle.received_tables(
        [
            (RECEIVED, "r1", [read_sample("277ca_rejected.x12")]),
            (RECEIVED + timedelta(days=1), "r2", [read_sample("later.x12", accepting)]),
        ]
    )
    rows = by_claim(lifecycle.statuses(sent, rec).current)
    assert rows["C0000002-2"]["status"] == "accepted_by_payer"
    assert rows["C0000002-2"]["status_file"] == "later.x12"
    # received in the other order, the rejection is the later word
    rec = lifecycle.received_tables(
        [
            (RECEIVED, "r1", [read_sample("later.x12", accepting)]),
            (RECEIVED + timedelta(days=1), "r2", [read_sample("277ca_rejected.x12")]),
        ]
    )
    assert by_claim(lifecycle.statuses(sent, rec).current)["C0000002-2"]["status"] == (
        "rejected_by_payer"
    )


# ---- the samples: the three findings --------------------------------------------------------


def test_an_unknown_claim_id_is_a_finding_not_a_crash():
    sent = sent_table(SAMPLE_CLAIMS[:1])  # C0000001 only: every other id is unknown
    lc = lifecycle.statuses(sent, received(*ORDER))
    assert_balanced(lc, sent)
    unknown = [f for f in lc.findings.to_pylist() if f["code"] == "RESPONSE_UNKNOWN_CLAIM"]
    named = Counter((f["kind"], f["claim_id"]) for f in unknown if f["claim_id"])
    # 277CA: 6 others; 835: C0000003 (paid), C0000002-1, 4, 5, 6, 7
    assert named == Counter(
        [("277CA", c) for c in ("C0000002-1", "C0000003", "C0000004", "C0000005", "C0000006")]
        + [("277CA", "C0000002-2")]
        + [("835", c) for c in ("C0000003", "C0000002-1", "C0000004", "C0000005", "C0000006")]
        + [("835", "C0000007")]
    )
    # 999: set 0002 of group 101 and the three sets of group 102 match no claim sent
    sets = [f for f in unknown if f["kind"] == "999"]
    assert len(sets) == 4 and all(f["claim_id"] is None for f in sets)
    assert any("group 102 set 0003" in f["message"] for f in sets)
    for f in unknown:
        assert f["severity"] == "warning"
        assert f["source_file"] in ORDER
    assert by_claim(lc.current)["C0000001"]["status"] == "partially_paid"


def test_the_same_response_in_another_file_is_counted_once():
    """The clearinghouse sends the 277CA again in a new interchange (another ISA13, so
    another file to acks): its rows are duplicates, the steps counted once."""
    text = (DATA / "277ca_rejected.x12").read_text()
    again = text.replace("000000912", "000000913").replace("*912*X*", "*913*X*")
    again = again.replace("GE*1*912~", "GE*1*913~")
    sent = sent_table()
    rec = lifecycle.received_tables(
        [
            (RECEIVED, "r1", [read_sample("277ca_rejected.x12")]),
            (RECEIVED + timedelta(days=1), "r2", [read_sample("resent.x12", again)]),
        ]
    )
    lc = lifecycle.statuses(sent, rec)
    dups = [f for f in lc.findings.to_pylist() if f["code"] == "RESPONSE_DUPLICATE"]
    assert sorted(f["claim_id"] for f in dups) == [
        "C0000002-2",
        "C0000004",
        "C0000005",
        "C0000006",
    ]
    assert {f["source_file"] for f in dups} == {"resent.x12"}
    assert all("277ca_rejected.x12" in f["message"] for f in dups)
    row = by_claim(lc.current)["C0000004"]
    assert (row["status"], row["status_file"], row["steps"]) == (
        "rejected_by_payer",
        "277ca_rejected.x12",
        2,
    )
    # the same 999 set twice is one step too
    rec = lifecycle.received_tables(
        [
            (RECEIVED, "r1", [read_sample("999_rejected.x12")]),
            (RECEIVED, "r2", [read_sample("copy.x12", (DATA / "999_rejected.x12").read_text())]),
        ]
    )
    lc = lifecycle.statuses(sent, rec)
    assert Counter(f["code"] for f in lc.findings.to_pylist()) == {"RESPONSE_DUPLICATE": 3}
    assert by_claim(lc.current)["C0000004"]["steps"] == 2


def test_a_response_for_a_claim_sent_twice_applies_to_the_latest_sending():
    first = sent_table(SAMPLE_CLAIMS[3:5])  # C0000003, C0000007 on 11-19 in group 102
    later = sent_table([("C0000003", "120", "205", "0001")], run_date=date(2026, 11, 22))
    sent = pa.concat_tables([first, later])
    lc = lifecycle.statuses(sent, received("277ca_accepted.x12", "835_paid.x12"))
    assert_balanced(lc, sent)
    rows = [r for r in lc.current.to_pylist() if r["claim_id"] == "C0000003"]
    status = {r["run_date"]: r["status"] for r in rows}
    assert status == {SENT_ON: "sent", date(2026, 11, 22): "paid"}
    latest = next(r for r in rows if r["run_date"] == date(2026, 11, 22))
    assert latest["days_to_payment"] == 3  # 11-25 - 11-22
    twice = [f for f in lc.findings.to_pylist() if f["code"] == "RESPONSE_CLAIM_SENT_TWICE"]
    assert [(f["kind"], f["claim_id"]) for f in twice] == [
        ("277CA", "C0000003"),
        ("835", "C0000003"),
    ]
    assert "2026-11-19" in twice[0]["message"] and "2026-11-22" in twice[0]["message"]


def test_findings_name_ids_and_files_never_patient_values():
    phi = set()
    for p in DATA.glob("*.x12"):
        for seg in [s.strip().split("*") for s in p.read_text().split("~") if s.strip()]:
            if seg[0] == "NM1" and seg[1] in ("QC", "IL"):
                phi |= {v for v in (seg[3], seg[4], seg[-1]) if len(v) > 2}
    assert {"DOE", "JANE", "MEMBER001"} <= phi
    lc = lifecycle.statuses(sent_table(SAMPLE_CLAIMS[:1]), received(*ORDER))
    assert lc.findings.num_rows > 10
    for table in (lc.current, lc.history, lc.findings):
        for column in table.columns:
            if pa.types.is_string(column.type):
                for value in column.to_pylist():
                    assert not any(v in (value or "") for v in phi), value


# ---- the submitter of a sent claim -------------------------------------------------------------


def test_the_submitter_comes_from_the_file_name_else_from_its_isa06(tmp_path):
    name = "RECV01_837P_SUBM01_000000007.x12"
    assert lifecycle._submitter_of(f"/gone/{name}", "RECV01", "837P", "000000007") == "SUBM01"
    # a name that does not say what the ledger row says: the file's ISA06 decides
    legacy = tmp_path / "claims_20261119_0001.x12"
    legacy.write_text((REPO / "tests" / "data" / "x12_samples" / "p_self.x12").read_text())
    isa06 = legacy.read_text()[:106].split("*")[6].strip()
    assert lifecycle._submitter_of(str(legacy), "RECV01", "837P", "000000007") == isa06
    assert lifecycle._submitter_of(str(tmp_path / "gone.x12"), "R", "837P", "1") is None
    mismatch = tmp_path / "RECV01_837P_SUBM01_000000008.x12"  # ISA13 is not the ledger's
    mismatch.write_text(legacy.read_text())
    assert lifecycle._submitter_of(str(mismatch), "RECV01", "837P", "000000007") == isa06


# ---- the round trip: a night, the payer simulator, acks, refresh ------------------------------

RD = date(2026, 11, 27)
ON = date(2026, 11, 30)
EXPECTED = {
    "rejected_999": "rejected_by_clearinghouse",
    "rejected_277ca": "rejected_by_payer",
    "paid": "paid",
    "partially_paid": "partially_paid",
    "denied": "denied",
}


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("lifecycle")
    df = generate.generate(80, seed=3, run_date=RD, problem_rate=0.05)
    generate.write(df, str(root / "landing" / "extract.csv"))
    out = root / "out"
    cfg = pipeline.RunConfig(
        inputs=[str(root / "landing" / "extract.csv")], out=str(out), run_date=RD
    )
    pipeline.run(cfg)
    answers = root / "answers"
    payer_sim.run(
        str(Path(cfg.final("claims"))),
        str(answers),
        seed=2,
        reject_share=0.25,
        deny_share=0.2,
        set_reject_share=0.3,
        on=ON,
    )
    record = json.loads((answers / payer_sim.SIMULATION_FILE).read_text())
    return out, answers, record


@pytest.fixture()
def output(night, tmp_path) -> Path:
    """A copy of the night's output root (each test applies its own responses)."""
    out, _, _ = night
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    return copy


def test_round_trip_statuses_are_what_the_simulator_decided(night, output):
    _, answers, record = night
    assert lifecycle.read_current(str(output)).num_rows == 0  # no layer yet
    assert lifecycle.read_current(str(output)).schema == lifecycle.CURRENT
    before = lifecycle.refresh(str(output))
    assert before.counts()["sent"] == before.current.num_rows > 0  # nothing came back yet
    acks.run([str(answers)], str(output), received_on=ON, run_id="a1")
    lc = lifecycle.refresh(str(output))
    sent = ledger.read(str(output))
    assert_balanced(lc, pa.table({"claim_id": sent["claim_id"].astype(str).tolist()}))
    assert lc.findings.num_rows == 0

    rows = by_claim(lc.current)
    assert set(rows) == set(sent["claim_id"].astype(str))
    decided = {c["claim_id"]: c for c in record["claims"]}
    assert set(decided) == set(rows)
    for cid, sim in decided.items():
        row = rows[cid]
        want = EXPECTED[sim["outcome"]]
        if sim["outcome"] == "partially_paid" and D(sim["paid"]) == 0:
            want = "denied"  # the contract: nothing paid is a denial, whatever CLP02 says
        assert row["status"] == want, (cid, sim)
        assert row["charge"] == D(sim["charge"]).quantize(D("0.01"))
        if sim["paid"] is not None:  # adjudicated: the 835's amounts are the simulator's
            assert row["paid"] == D(sim["paid"]).quantize(D("0.01")), cid
            assert row["patient_responsibility"] == D(sim["patient_responsibility"]), cid
            assert row["payer_claim_control_number"] == sim["payer_claim_control_number"]
            assert row["status_kind"] == "835"
        else:
            assert row["paid"] == D("0.00") and row["paid_on"] is None
        if row["status"] in ("paid", "partially_paid"):
            assert row["paid_on"] == ON
            assert row["days_to_payment"] == 3  # 11-30 - 11-27
        else:
            assert row["days_to_payment"] is None
        first_pass = {
            "rejected_999": False,  # rejected on its first pass, though no 277CA ever comes
            "rejected_277ca": False,
        }.get(sim["outcome"], True)
        assert row["first_pass_accepted"] is first_pass, cid
        if sim["outcome"] == "denied":
            assert sim["carc"] in row["reason_codes"]
        if sim["outcome"] == "rejected_277ca":
            assert row["reason_codes"][0] == sim["status_277ca"]
        if sim["outcome"] == "rejected_999":
            assert row["reason_codes"][0] == "IK5:5"
    outcomes = Counter(c["outcome"] for c in record["claims"])
    assert {"rejected_999", "rejected_277ca", "paid", "partially_paid", "denied"} <= set(outcomes)

    # the files on disk are the tables returned, with the layer's metadata
    folder = output / lifecycle.LAYER
    assert sorted(p.name for p in folder.iterdir()) == [
        "current.parquet",
        "findings.parquet",
        "history.parquet",
    ]
    for name, schema in lifecycle.SCHEMAS.items():
        table = pq.read_table(folder / f"{name}.parquet")
        assert table.schema.metadata[schemas.LAYER_KEY] == b"lifecycle"
        assert table.replace_schema_metadata(None).equals(getattr(lc, name)), name
        assert table.schema.remove_metadata() == schema
    assert lifecycle.read_current(str(output)).equals(lc.current)


def test_refresh_twice_gives_the_same_tables_and_an_empty_acks_run_changes_nothing(night, output):
    _, answers, _ = night
    acks.run([str(answers)], str(output), received_on=ON, run_id="a1")
    first = lifecycle.refresh(str(output))
    second = lifecycle.refresh(str(output))
    for name in lifecycle.SCHEMAS:
        assert getattr(first, name).equals(getattr(second, name)), name
    files = {p.name: p.read_bytes() for p in (output / lifecycle.LAYER).iterdir()}
    # the same files again: every one a duplicate of the first run, nothing applied
    result = acks.run([str(answers)], str(output), received_on=ON + timedelta(days=1), run_id="a2")
    assert {f.status for f in result.files if f.kind} == {"duplicate"}
    third = lifecycle.refresh(str(output))
    for name in lifecycle.SCHEMAS:
        assert getattr(third, name).equals(getattr(first, name)), name
    assert {p.name: p.read_bytes() for p in (output / lifecycle.LAYER).iterdir()} == files


def test_round_trip_findings_for_foreign_and_resent_files(night, output, tmp_path):
    _, answers, _ = night
    acks.run([str(answers)], str(output), received_on=ON, run_id="a1")
    # a later delivery: the samples' 835 (claims we never sent) and a 277CA of ours again
    # under a new interchange control number
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(DATA / "835_paid.x12", extra / "foreign.835")
    ours = sorted(answers.glob("*.277ca.x12"))[0]
    text = ours.read_text()
    isa13 = text.split("*")[13]
    # another control number in the envelope (ISA13, GS06, GE02, IEA02), the rest as it was
    resent = "".join(
        line.replace(isa13, "700000777").replace(str(int(isa13)), "700000777")
        if line.startswith(("ISA*", "GS*", "GE*", "IEA*"))
        else line
        for line in text.splitlines(keepends=True)
    )
    assert resent != text
    (extra / "resent.277").write_text(resent)
    result = acks.run([str(extra)], str(output), received_on=ON + timedelta(days=2), run_id="a3")
    assert {f.status for f in result.files} == {"applied"}, result.files
    lc = lifecycle.refresh(str(output))
    codes = Counter((f["code"], f["kind"]) for f in lc.findings.to_pylist())
    assert codes[("RESPONSE_UNKNOWN_CLAIM", "835")] == 2  # C0000001, C0000003
    ours_rows = responses.read(text, "x").claim_statuses.num_rows
    assert codes[("RESPONSE_DUPLICATE", "277CA")] == ours_rows
    assert sum(lc.counts().values()) == lc.current.num_rows


# ---- the docs ----------------------------------------------------------------------------------


def _tables_of(section: str) -> dict[str, list[str]]:
    documented: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        if line.startswith("`") and ".parquet`" in line.split(" ")[0]:
            current = line.split("`")[1].removesuffix(".parquet")
            documented[current] = []
        elif current and line.startswith("| `"):
            cell = line.split("|")[1]
            documented[current] += [c.strip().strip("`") for c in cell.split(",")]
    return documented


def test_outputs_page_lists_each_tables_columns():
    text = (REPO / "docs" / "outputs.md").read_text()
    section = text[text.index("\n## lifecycle\n") :]
    section = section[: section.index("\n## ", 1)]
    documented = _tables_of(section)
    for name, schema in lifecycle.SCHEMAS.items():
        assert documented[name] == schema.names, name
    for status in lifecycle.STATUSES:
        assert f"`{status}`" in section, status


def test_data_dictionary_lists_each_column_with_its_type():
    """The dictionary describes the three files under their query views' names."""
    text = (REPO / "docs" / "data-dictionary.md").read_text()
    views = {
        "current": "claim_lifecycle",
        "history": "claim_history",
        "findings": "lifecycle_findings",
    }
    for name, schema in lifecycle.SCHEMAS.items():
        section = text[text.index(f"\n## {views[name]}\n") :]
        section = section[: section.index("\n## ", 1)]
        assert f"`<out>/lifecycle/{name}.parquet`" in section, name
        found = [
            (cells[0].strip("`"), cells[1])
            for cells in (
                [c.strip() for c in line.strip().strip("|").split("|")]
                for line in section.splitlines()
                if line.startswith("| `")
            )
        ]
        assert found == [(f.name, schemas.sql_type(f.type)) for f in schema], name


def test_with_no_claim_sent_every_response_is_unknown():
    lc = lifecycle.statuses(lifecycle.SENT.empty_table(), received(*ORDER))
    assert lc.current.num_rows == 0 and sum(lc.counts().values()) == 0
    codes = Counter(f["code"] for f in lc.findings.to_pylist())
    # 5 sets in the two 999s, 7 claims in the 277CAs, 9 CLPs in the 835s
    assert codes == {"RESPONSE_UNKNOWN_CLAIM": 5 + 7 + 9}


def test_refresh_on_s3(bucket):
    from therapy_claims import storage

    for p in DATA.glob("*.x12"):
        storage.write_bytes(f"s3://{bucket}/in/{p.name}", p.read_bytes())
    out = f"s3://{bucket}/out"
    acks.run([f"s3://{bucket}/in"], out, received_on=RECEIVED, run_id="s1")
    assert lifecycle.read_current(out).num_rows == 0
    lc = lifecycle.refresh(out)  # no night published there: every response is unknown
    assert lc.findings.num_rows == 5 + 7 + 9
    names = sorted(storage.name(p) for p in storage.list_files(f"{out}/{lifecycle.LAYER}"))
    assert names == ["current.parquet", "findings.parquet", "history.parquet"]
    assert not storage.list_files(f"{out}/{lifecycle.INCOMING}", hidden=True)
    found = storage.read_table(f"{out}/{lifecycle.LAYER}/findings.parquet")
    assert found.replace_schema_metadata(None).equals(lc.findings)
    assert lifecycle.read_current(out).equals(lc.current)


def test_the_acks_command_recomputes_the_statuses_and_prints_the_balance(night, output, capsys):
    """`acks` records the files and recomputes the lifecycle under the same lock; a second
    acks of the same files is all duplicates and leaves the statuses as they were;
    `lifecycle` recomputes alone."""
    from therapy_claims import cli

    _, answers, record = night
    assert cli.main(["acks", "--input", str(answers), "--out", str(output)]) == 0
    printed = capsys.readouterr().out
    current = lifecycle.read_current(str(output))
    assert current.num_rows == len(record["claims"])
    counts = Counter(current.column("status").to_pylist())
    want = Counter(EXPECTED[c["outcome"]] for c in record["claims"])
    # a "partially paid" claim the simulator paid nothing on is a denial (contract)
    zero = sum(
        1 for c in record["claims"] if c["outcome"] == "partially_paid" and D(c["paid"]) == 0
    )
    want["partially_paid"] -= zero
    want["denied"] += zero
    assert counts == +want
    balance = next(line for line in printed.splitlines() if line.startswith("lifecycle:"))
    assert balance.endswith("(balanced)")
    assert f"lifecycle: {len(record['claims'])} claim(s) sent: " in balance
    for status, n in counts.items():
        assert f"{n} {status}" in balance
    before = (output / "lifecycle" / "current.parquet").read_bytes()

    assert cli.main(["acks", "--input", str(answers), "--out", str(output)]) == 0
    again = capsys.readouterr().out
    assert "0 applied" in again and "duplicate" in again
    assert (output / "lifecycle" / "current.parquet").read_bytes() == before

    (output / "lifecycle" / "current.parquet").unlink()
    assert cli.main(["lifecycle", "--out", str(output)]) == 0
    assert (
        lifecycle.read_current(str(output)).column("status").to_pylist()
        == current.column("status").to_pylist()
    )
    assert capsys.readouterr().out.strip().endswith("(balanced)")
