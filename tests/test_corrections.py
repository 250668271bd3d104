"""Corrected, resubmitted and voided claims (issue 17).

The 837 side first: a claim's frequency (CLM05-3: 1 original, 7 replacement, 8 void) and the
payer's claim control number it corrects (2300 REF*F8), written alike by the fast writer, its
prepared (checked columns) path and the plain oracle (``tests/oracle_837.py``), and accepted by
pyx12 in an 837P and an 837I.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import factories
import numpy as np
import oracle_837
import pandas as pd
import pyarrow as pa
import pytest
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import (
    corrections,
    ledger,
    ledger_store,
    lifecycle,
    nights,
    pipeline,
    reference,
    storage,
    x12,
)
from therapy_claims.config import RunError
from therapy_claims.x12 import prepared
from therapy_claims.x12.checks import Batch

CREATED = datetime(2026, 11, 27)


@pytest.fixture(scope="module")
def ref() -> reference.Reference:
    return reference.load()


def line(**overrides) -> dict:
    row = {
        "claim_id": "TC0001",
        "line_id": "L1",
        "clinic_id": "CLN01",
        "payer_id": "COM01",
        "date_of_service": pd.Timestamp("2026-11-20"),
        "patient_last_name": "Doe",
        "patient_first_name": "Jan",
        "patient_dob": pd.Timestamp("1980-01-01"),
        "patient_sex": "F",
        "patient_address": "456 Oak Ave",
        "patient_city": "Springfield",
        "patient_state": "IL",
        "patient_zip": "62702",
        "member_id": "MEMBER123",
        "subscriber_relationship": pd.NA,
        "subscriber_last_name": pd.NA,
        "subscriber_first_name": pd.NA,
        "subscriber_dob": pd.NaT,
        "group_number": "GRP123",
        "prior_auth_number": pd.NA,
        "rendering_npi": "1245319599",
        "rendering_last_name": "Smith",
        "rendering_first_name": "Robert",
        "discipline": "PT",
        "cpt_code": "97140",
        "modifiers": ["GP"],
        "units": 2,
        "charge_amount": 60.0,
        "diagnosis_codes": ["M54.50"],
        "diagnosis_pointers": [1],
        "place_of_service": "11",
        "injury_date": pd.NaT,
    }
    row.update(overrides)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in ("date_of_service", "patient_dob", "subscriber_dob", "injury_date"):
        df[c] = pd.to_datetime(df[c])
    for c in df.columns:
        if df[c].dtype == object and c not in (
            "modifiers",
            "diagnosis_codes",
            "diagnosis_pointers",
        ):
            df[c] = df[c].astype("string")
    return df


def three_claims(institutional: bool, **columns: list) -> pd.DataFrame:
    """An original (TC0001, with a prior authorisation), a replacement (TC0002-R1) and a void
    (TC0003-R1) at one clinic; ``columns`` replaces the correction columns."""
    clinic = "CLN03" if institutional else "CLN01"
    df = frame(
        line(claim_id="TC0001", line_id="L1", clinic_id=clinic, prior_auth_number="AUTH1"),
        line(claim_id="TC0002-R1", line_id="L2", clinic_id=clinic, prior_auth_number="AUTH2"),
        line(claim_id="TC0002-R1", line_id="L3", clinic_id=clinic, units=1, charge_amount=30.0),
        line(claim_id="TC0003-R1", line_id="L4", clinic_id=clinic),
    )
    df["claim_frequency"] = pd.array(columns.get("freq", [pd.NA, "7", "7", "8"]), "string")
    refs = columns.get("refs", [pd.NA, "PCN7788", "PCN7788", "PCN9900"])
    df["original_reference"] = pd.array(refs, "string")
    return df


def args(ref: reference.Reference) -> dict:
    return {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 263310001,
        "created": CREATED,
    }


def segments(text: str) -> list[str]:
    return [s for s in text.split("~\n") if s]


def both(ref, lines: pd.DataFrame, institutional: bool) -> tuple[str, dict[str, str]]:
    """The fast writer's and the oracle's build: the same bytes and rejections."""
    out = []
    for writer in (x12, oracle_837):
        build = writer.build_837i if institutional else writer.build_837p
        rejected: dict[str, str] = {}
        out.append((build(lines, rejected=rejected, **args(ref)), rejected))
    (fast, fast_rejected), (oracle, rejected) = out
    assert fast == oracle
    assert list(fast_rejected.items()) == list(rejected.items())
    return oracle, rejected


def clm_and_f8(text: str) -> dict[str, tuple[str, str | None]]:
    """Per CLM01: CLM05 and the REF*F8 control number of its 2300 (None without one)."""
    out: dict[str, list] = {}
    current = None
    for seg in segments(text):
        el = seg.split("*")
        if el[0] == "CLM":
            current = el[1]
            out[current] = [el[5], None]
        elif el[0] == "LX":
            current = None
        elif current and el[0] == "REF" and el[1] == "F8":
            out[current][1] = el[2]
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("institutional", [False, True])
def test_replacement_and_void_are_written_and_pass_pyx12(ref, institutional):
    text, rejected = both(ref, three_claims(institutional), institutional)
    assert rejected == {}
    ok, report = pyx12_validate(text)
    assert ok, report
    assert independent_checks(text) == []
    place = "13:A:" if institutional else "11:B:"
    assert clm_and_f8(text) == {
        "TC0001": (place + "1", None),
        "TC0002-R1": (place + "7", "PCN7788"),
        "TC0003-R1": (place + "8", "PCN9900"),
    }
    # REF*F8 in its place: after REF*G1, before HI
    segs = segments(text)
    at = segs.index("REF*F8*PCN7788")
    assert segs[at - 1] == "REF*G1*AUTH2" and segs[at + 1].startswith("HI*ABK")


@pytest.mark.parametrize("institutional", [False, True])
def test_without_the_columns_or_with_originals_the_bytes_do_not_change(ref, institutional):
    plain = three_claims(institutional).drop(columns=["claim_frequency", "original_reference"])
    before, _ = both(ref, plain, institutional)
    originals = three_claims(institutional, freq=["1", "", pd.NA, " 1"], refs=[pd.NA] * 4)
    assert both(ref, originals, institutional)[0] == before
    assert ":B:1*" in before or ":A:1*" in before
    assert "REF*F8" not in before


@pytest.mark.parametrize(
    ("freq", "refs", "problem"),
    [
        (
            ["1", "5", "5", "8"],
            [pd.NA, "PCN7788", "PCN7788", "PCN9900"],
            "claim_frequency is not 1",
        ),
        (["1", "7", "7", "8"], [pd.NA, pd.NA, pd.NA, "PCN9900"], "original_reference is missing"),
        (
            ["1", "7", "7", "8"],
            [pd.NA, "PCN*77", "PCN*77", "PCN9900"],
            "original_reference contains",
        ),
        (["1", "7", "7", "8"], [pd.NA, "P" * 51, "P" * 51, "PCN9900"], "must be 1-50"),
        (
            ["1", "1", "1", "8"],
            [pd.NA, "PCN7788", "PCN7788", "PCN9900"],
            "is given for an original",
        ),
    ],
)
@pytest.mark.parametrize("institutional", [False, True])
def test_a_correction_the_837_cannot_carry_holds_only_its_claim(
    ref, institutional, freq, refs, problem
):
    lines = three_claims(institutional, freq=freq, refs=refs)
    text, rejected = both(ref, lines, institutional)
    assert list(rejected) == ["TC0002-R1"]
    assert problem in rejected["TC0002-R1"]
    assert "PCN" not in rejected["TC0002-R1"]  # the value is not repeated in the message
    assert set(clm_and_f8(text)) == {"TC0001", "TC0003-R1"}
    assert pyx12_validate(text)[0]
    # the checks score runs say the same, without building
    assert x12.unwritable_claims(lines, institutional=institutional, **_refs(ref)) == rejected


def _refs(ref: reference.Reference) -> dict:
    return {"clinics": ref.clinics, "payers": ref.payers}


@pytest.mark.parametrize("institutional", [False, True])
def test_the_prepared_path_writes_the_same_bytes(ref, institutional):
    """Publish builds from the columns score checked the lines with, the corrections given
    beside them (``refs``): the same bytes as a build of the lines; a correction the 837
    cannot carry is caught there too."""
    lines = three_claims(institutional)
    expected, _ = both(ref, lines, institutional)
    plain = lines.drop(columns=["claim_frequency", "original_reference"])
    exported = prepared.export(Batch(plain, institutional, ref.clinics, ref.payers))
    columns = ["claim_id", "clinic_id", "payer_id", "claim_frequency", "original_reference"]

    def build(refs: pd.DataFrame) -> tuple[str, dict]:
        checked = prepared.Checked(
            refs,
            prepared.Held(exported),
            prepared.Pools(exported.pools),
            institutional=institutional,
            clinics=ref.clinics,
            payers=ref.payers,
        )
        writer = x12.build_837i if institutional else x12.build_837p
        rejected: dict = {}
        return writer(lines, checked=checked, rejected=rejected, **args(ref)), rejected

    assert build(lines[columns]) == (expected, {})
    bad = lines[columns].copy()
    bad["original_reference"] = pd.array([pd.NA, pd.NA, pd.NA, "PCN9900"], "string")
    text, rejected = build(bad)
    assert (
        list(rejected) == ["TC0002-R1"] and "original_reference is missing" in rejected["TC0002-R1"]
    )
    assert set(clm_and_f8(text)) == {"TC0001", "TC0003-R1"}


# ---- the round trip: nights, the lifecycle, the ledger -------------------------------------

RD1, RD2, RD3 = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)
_SLOTS: dict[str, int] = {}


def visit(enc: str, n: int, *, patient: str, charge: str = "30.00") -> list[dict]:
    """``n`` clean 97110 lines (15 min, 1 unit) of one Medicare encounter at CLN01."""
    slot = _SLOTS.setdefault(enc, len(_SLOTS))
    start = 7 * 60 + 20 * slot
    times = {
        "start_time": f"{start // 60:02d}:{start % 60:02d}",
        "end_time": f"{(start + 15) // 60:02d}:{(start + 15) % 60:02d}",
    }
    return [
        factories.row(
            line_id=f"{enc}-L{i}",
            encounter_id=enc,
            patient_id=patient,
            date_of_service=(date(2026, 6, 1) + timedelta(days=i)).isoformat(),
            minutes="15",
            units_charted="1",
            charge_amount=charge,
            **times,
        )
        for i in range(n)
    ]


NIGHT1 = (
    visit("EDEN", 2, patient="P1") + visit("EREJ", 1, patient="P2") + visit("EFLY", 1, patient="P3")
)
# night 2: EDEN's lines changed (a third line), the others as sent
NIGHT2 = (
    visit("EDEN", 3, patient="P1") + visit("EREJ", 1, patient="P2") + visit("EFLY", 1, patient="P3")
)


def config(tmp_path: Path, rows: list[dict], rd: date, name: str = "x") -> pipeline.RunConfig:
    inp = factories.write_csv(tmp_path / f"landing-{rd}-{name}" / "extract.csv", rows)
    return pipeline.RunConfig(inputs=[str(inp)], out=str(tmp_path / "out"), run_date=rd)


def night_files(out: str, rd: date) -> dict[str, str]:
    m = nights.committed(out, rd.isoformat())
    return {
        Path(f["path"]).name: storage.read_bytes(f["path"]).decode("ascii")
        for f in m["claim_files"]
    }


def sent_claims(out: str, rd: date) -> dict[str, tuple[str, str | None]]:
    """CLM01 -> (CLM05, REF*F8) over a committed night's claim files."""
    found: dict[str, tuple[str, str | None]] = {}
    for text in night_files(out, rd).values():
        for clm01, value in clm_and_f8(text.replace("~", "~\n").replace("\n\n", "\n")).items():
            assert clm01 not in found
            found[clm01] = value
    return found


LIFECYCLE_SCHEMA = lifecycle.CURRENT  # the layer these tests stand in for


def write_lifecycle(out: str, statuses: dict[str, tuple[str, str | None]]) -> None:
    """``<out>/lifecycle/current.parquet`` as the lifecycle contract has it: one row per
    ledger row, ``statuses`` by encounter (status, payer claim control number); others sent."""
    sent = ledger.read(out)
    rows = []
    for r in sent.to_dict("records"):
        status, ccn = statuses.get(r["encounter_id"], ("sent", None))
        rows.append(
            {
                "claim_id": r["claim_id"],
                "claim_key": r["claim_key"],
                "run_date": date.fromisoformat(r["run_date"]),
                "payer_id": r["payer_id"],
                "clinic_id": r["clinic_id"],
                "encounter_id": r["encounter_id"],
                "claim_type": r["claim_type"],
                "file": r["file"],
                "charge": Decimal(f"{r['charge']:.2f}"),
                "status": status,
                "status_on": date(2026, 11, 30)
                if status != "sent"
                else date.fromisoformat(r["run_date"]),
                "status_kind": {"sent": "837", "rejected_by_payer": "277CA"}.get(status, "835"),
                "status_file": "resp.x12",
                "reason_codes": ["CO-16"] if status == "denied" else [],
                "remark_codes": [],
                "payer_claim_control_number": ccn,
                "paid": Decimal("0.00"),
                "patient_responsibility": Decimal("0.00"),
                "paid_on": None,
                "days_to_payment": None,
                "first_pass_accepted": None,
                "steps": 2 if status != "sent" else 1,
            }
        )
    table = pa.Table.from_pylist(rows, schema=LIFECYCLE_SCHEMA)
    storage.write_table(table, storage.join(out, "lifecycle", "current.parquet"))


def exceptions(out: str, rd: date) -> pd.DataFrame:
    m = nights.committed(out, rd.isoformat())
    folder = nights.layer(m, "exceptions", rd.isoformat(), out)
    return pd.read_parquet(storage.join(folder, "exceptions.parquet"))


def versions_table(out: str) -> list[tuple]:
    with sqlite3.connect(Path(out) / ".ledger" / "ledger.sqlite") as conn:
        return conn.execute(
            "SELECT v.claim_key, v.version, v.run_date, v.frequency_code, v.original_claim_id, "
            "r.state FROM claim_versions v JOIN runs r ON r.run_id = v.first_run_id "
            "ORDER BY v.claim_key, v.version"
        ).fetchall()


@pytest.fixture
def night1(tmp_path):
    """Night 1 sent; the lifecycle says EDEN was denied (control number PCN-77881), EREJ
    rejected by the payer, EFLY is still just sent."""
    cfg = config(tmp_path, NIGHT1, RD1)
    m = pipeline.run(cfg)
    assert m["claims_billed"] == 3
    first = ledger.read(cfg.out).set_index("encounter_id")["claim_id"].to_dict()
    write_lifecycle(cfg.out, {"EDEN": ("denied", "PCN-77881"), "EREJ": ("rejected_by_payer", None)})
    return cfg.out, first


def assert_night2(out: str, first: dict[str, str]) -> dict[str, str]:
    """Night 2 as decided: EDEN replaced, EREJ resubmitted, EFLY held; returns the CLM01s."""
    key = {enc: ledger_store.KEY_ID.match(cid)["hash"] for enc, cid in first.items()}
    eden, erej = f"R1{key['EDEN']}", f"R1{key['EREJ']}"
    assert sent_claims(out, RD2) == {eden: ("11:B:7", "PCN-77881"), erej: ("11:B:1", None)}
    for name, text in night_files(out, RD2).items():
        ok, report = pyx12_validate(text)
        assert ok, (name, report)
        assert independent_checks(text) == []
    led = ledger.read(out)
    two = led[led["run_date"] == RD2.isoformat()].set_index("encounter_id")
    assert set(two.index) == {"EDEN", "EREJ"}
    assert two.loc["EDEN", "claim_id"] == eden and two.loc["EDEN", "claim_key"] == first["EDEN"]
    assert two.loc["EDEN", "frequency_code"] == "7"
    assert two.loc["EDEN", "original_claim_id"] == first["EDEN"]
    assert two.loc["EDEN", "original_reference"] == "PCN-77881"
    assert two.loc["EDEN", "lines"] == 3
    assert two.loc["EREJ", "claim_id"] == erej and two.loc["EREJ", "claim_key"] == first["EREJ"]
    assert two.loc["EREJ", "frequency_code"] == "1"
    assert two.loc["EREJ", "original_claim_id"] == first["EREJ"]
    assert pd.isna(two.loc["EREJ", "original_reference"])
    assert two["lines_digest"].str.fullmatch("[0-9a-f]{32}").all()
    assert versions_table(out) == sorted(
        [
            (first["EDEN"], 1, RD2.isoformat(), "7", first["EDEN"], "committed"),
            (first["EREJ"], 1, RD2.isoformat(), "1", first["EREJ"], "committed"),
        ]
    )
    exc = exceptions(out, RD2)
    by_code = {c: part for c, part in exc.groupby("code")}
    held = by_code["ALREADY_BILLED"]
    assert set(held["encounter_id"]) == {"EFLY"}
    assert (
        held["message"]
        .str.contains("its status is sent since 2026-11-28: still in flight", regex=False)
        .all()
    )
    assert held["message"].str.contains(first["EFLY"], regex=False).all()
    replaced = by_code["CLAIM_REPLACEMENT"]
    assert set(replaced["encounter_id"]) == {"EDEN"} and len(replaced) == 3
    assert (
        replaced["message"]
        .str.contains(f"{first['EDEN']} (2026-11-28) is denied since 2026-11-30", regex=False)
        .all()
    )
    assert (
        not replaced["message"].str.contains("PCN-77881", regex=False).any()
    )  # payer text stays out
    resubmitted = by_code["CLAIM_RESUBMITTED"]
    assert set(resubmitted["encounter_id"]) == {"EREJ"}
    assert (
        resubmitted["message"].str.contains("rejected_by_payer since 2026-11-30", regex=False).all()
    )
    assert not exc["holds_claim"][
        exc["code"].isin(["CLAIM_REPLACEMENT", "CLAIM_RESUBMITTED"])
    ].any()
    return {"EDEN": eden, "EREJ": erej}


def test_a_replacement_round_trip(night1, tmp_path):
    out, first = night1
    m2 = pipeline.run(config(tmp_path, NIGHT2, RD2))
    assert m2["claims_billed"] == 2 and m2["claims_held"] == 1
    ids = assert_night2(out, first)
    files = night_files(out, RD2)
    # a rerun of night 2 sends nothing new: the same versions, CLM01s and bytes
    pipeline.run(config(tmp_path, NIGHT2, RD2, "again"))
    assert night_files(out, RD2) == files
    assert assert_night2(out, first) == ids
    # night 3 bills the same again: the versions night 2 sent have no response yet
    m3 = pipeline.run(config(tmp_path, NIGHT2, RD3))
    assert m3["claims_billed"] == 0 and m3["exceptions_by_code"]["ALREADY_BILLED"] == 5
    assert len(versions_table(out)) == 2
    exc = exceptions(out, RD3)
    eden = exc[(exc["code"] == "ALREADY_BILLED") & (exc["encounter_id"] == "EDEN")]
    assert (
        eden["message"]
        .str.contains(f"already billed on 2026-11-29 as {ids['EDEN']}", regex=False)
        .all()
    )
    assert eden["message"].str.contains("no response to it is known yet", regex=False).all()


def _crashing_night(inputs: list[str], out: str, rd: date, where: str) -> None:
    """Run the night in this (forked) process and SIGKILL it at ``where``: ``manifest`` as
    the manifest is about to be written (the claims reserved, nothing committed) or
    ``mark_sent`` (committed, not yet marked sent)."""
    cfg = pipeline.RunConfig(inputs=inputs, out=out, run_date=rd)
    if where == "manifest":
        write_bytes = storage.write_bytes

        def write(path, data):
            if "/manifest/" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return write_bytes(path, data)

        storage.write_bytes = write
    else:

        def mark_sent(self, run_id):
            os.kill(os.getpid(), signal.SIGKILL)

        ledger_store.Store.mark_sent = mark_sent
    pipeline.run(cfg, parallel=False)
    os._exit(0)


@pytest.mark.parametrize("where", ["manifest", "mark_sent"])
def test_a_crash_between_reserve_and_mark_sent_leaves_no_version_sendable_twice(
    night1, tmp_path, where
):
    out, first = night1
    cfg = config(tmp_path, NIGHT2, RD2)
    child = multiprocessing.get_context("fork").Process(
        target=_crashing_night, args=(cfg.inputs, out, RD2, where)
    )
    child.start()
    child.join(300)
    assert child.exitcode == -signal.SIGKILL
    with sqlite3.connect(Path(out) / ".ledger" / "ledger.sqlite") as conn:
        left = conn.execute("SELECT count(*) FROM claim_versions").fetchone()[0]
    assert left == 2  # reserved by the crashed run, not yet settled
    committed_before = nights.committed(out, RD2.isoformat())
    assert (committed_before is not None) == (where == "mark_sent")
    # the next run settles the crashed one and converges on the same versions
    pipeline.run(config(tmp_path, NIGHT2, RD2, "after"))
    ids = assert_night2(out, first)
    with sqlite3.connect(Path(out) / ".ledger" / "ledger.sqlite") as conn:
        states = conn.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall()
    assert "reserved" not in dict(states)
    # each version went out in one committed night only, once
    everywhere = [c for rd in (RD1, RD2) for c in sent_claims(out, rd)]
    assert sorted(c for c in everywhere if c in ids.values()) == sorted(ids.values())


def test_two_nights_racing_for_one_replacement_one_wins(night1, tmp_path):
    """Nights 2 and 3 both decide EDEN's replacement (version 1) before either publishes:
    the first to reserve sends it; the other publishes nothing and, run again, holds it."""
    out, first = night1
    cfg2 = config(tmp_path, NIGHT2, RD2)
    cfg3 = config(tmp_path, NIGHT2, RD3)
    for cfg in (cfg2, cfg3):
        pipeline.ingest(cfg)
        pipeline.score(cfg)
        pipeline.release(cfg)
    pipeline.publish(cfg2)
    pipeline.manifest(cfg2)
    with pytest.raises(RunError, match="version 1 of claim .* conflicts with version 1 of night"):
        pipeline.publish(cfg3)
    pipeline.release(cfg3)
    assert nights.committed(out, RD3.isoformat()) is None
    assert_night2(out, first)
    m3 = pipeline.run(config(tmp_path, NIGHT2, RD3, "again"))
    assert m3["claims_billed"] == 0 and len(versions_table(out)) == 2


def test_each_reason_to_hold_or_send_again(tmp_path):
    """One night per case of the decision, all in one second night: the message says which."""
    cases = {  # encounter: (lifecycle status, control number, lines changed on night 2)
        "EUNCH": ("denied", "PCN1", False),
        "ENOCN": ("paid", None, True),
        "EBAD": ("denied", "PCN*1:X", True),
        "ECLR": ("accepted_by_clearinghouse", None, True),
        "EREJC": ("rejected_by_clearinghouse", None, False),
        "EPART": ("partially_paid", "PCN 2", True),
    }
    patients = {enc: f"P{k}" for k, enc in enumerate(cases)}
    one = [r for enc in cases for r in visit(enc, 1, patient=patients[enc])]
    two = [
        r
        for enc, (_, _, changed) in cases.items()
        for r in visit(enc, 1, patient=patients[enc], charge="31.00" if changed else "30.00")
    ]
    cfg1 = config(tmp_path, one, RD1)
    pipeline.run(cfg1)
    first = ledger.read(cfg1.out).set_index("encounter_id")["claim_id"].to_dict()
    write_lifecycle(cfg1.out, {enc: (s, ccn) for enc, (s, ccn, _) in cases.items()})
    pipeline.run(config(tmp_path, two, RD2))
    exc = exceptions(cfg1.out, RD2).set_index("encounter_id")
    why = {
        "EUNCH": "its status is denied since 2026-11-30 and its lines are unchanged",
        "ENOCN": "its status is paid since 2026-11-30 and no payer claim control number is known",
        "EBAD": "its payer claim control number cannot be sent in REF*F8",
        "ECLR": "its status is accepted_by_clearinghouse since 2026-11-30: still in flight",
    }
    for enc, text in why.items():
        assert exc.loc[enc, "code"] == "ALREADY_BILLED", enc
        assert text in exc.loc[enc, "message"], exc.loc[enc, "message"]
        assert "PCN" not in exc.loc[enc, "message"]
    assert exc.loc["EREJC", "code"] == "CLAIM_RESUBMITTED"
    assert exc.loc["EPART", "code"] == "CLAIM_REPLACEMENT"
    key = {enc: ledger_store.KEY_ID.match(cid)["hash"] for enc, cid in first.items()}
    assert sent_claims(cfg1.out, RD2) == {
        f"R1{key['EREJC']}": ("11:B:1", None),
        f"R1{key['EPART']}": ("11:B:7", "PCN 2"),
    }
    for text in night_files(cfg1.out, RD2).values():
        assert pyx12_validate(text)[0]


def plain_digest(rows: list[dict]) -> str:
    """The line digest of one claim's billed lines, claim by claim in plain Python integers:
    the oracle of ``corrections.content_digests`` (column-wise, NumPy)."""
    mask = 2**64 - 1
    fields = (
        "cpt_code", "modifiers", "units", "charge_amount", "date_of_service",
        "diagnosis_pointers", "diagnosis_codes",
    )  # fmt: skip
    mults = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)
    per_line = []
    for row in rows:
        lanes = [len(fields), len(fields)]
        for f in fields:
            value = row[f]
            text = {
                "charge_amount": lambda v: str(round(v * 100)),
                "date_of_service": lambda v: v.strftime("%Y-%m-%d"),
                "units": lambda v: str(int(v)),
            }.get(f, str)(value)
            h = hashlib.blake2b(text.encode(), digest_size=16, key=f.encode()).digest()
            for k in (0, 1):
                word = int.from_bytes(h[8 * k : 8 * k + 8], "little")
                mixed = ((lanes[k] ^ word) * mults[k]) & mask
                lanes[k] = mixed ^ (mixed >> 29)
        per_line.append(tuple(lanes))
    out = []
    for k in (0, 1):
        total = sum(lane[k] for lane in per_line)
        out.append(((total & mask) ^ len(rows)).to_bytes(8, "big").hex())
    return "".join(out)


def test_the_line_digest_against_a_plain_loop_and_what_changes_it():
    rows = [
        ("TCA", "L2", "97140", "GP;59", 2, 60.0, "2026-06-02", "1;2"),
        ("TCA", "L1", "97110", "GP", 1, 30.5, "2026-06-01", "1"),
        ("TCB", "L9", "97110", "GP", 1, 30.0, "2026-06-01", "1"),
        ("TCA", "L3", "97530", "GP", 1, 40.0, "2026-06-03", "1"),
    ]
    columns = [
        "claim_id", "line_id", "cpt_code", "modifiers", "units", "charge_amount",
        "date_of_service", "diagnosis_pointers",
    ]  # fmt: skip
    lines = pd.DataFrame(rows, columns=columns).astype(
        {c: "string" for c in ("claim_id", "line_id", "cpt_code", "modifiers")}
    )
    lines["date_of_service"] = pd.to_datetime(lines["date_of_service"])
    lines["diagnosis_codes"] = "M54.50;M62.81"
    billed = np.array([True, True, True, False])  # L3 is not billed: it does not count
    got = corrections.content_digests(lines, billed)
    records = lines.to_dict("records")
    assert got.to_dict() == {
        "TCA": plain_digest([records[1], records[0]]),
        "TCB": plain_digest([records[2]]),
    }
    # the lines' order and ids do not count; anything billed does
    shuffled = lines.iloc[[1, 2, 0, 3]].assign(line_id=["X1", "X2", "X3", "X4"])
    same = corrections.content_digests(shuffled, billed[[1, 2, 0, 3]])
    assert same.to_dict() == got.to_dict()
    changes = {
        "cpt_code": "97112",
        "modifiers": "GP;KX",
        "units": 3,
        "charge_amount": 60.01,
        "date_of_service": pd.Timestamp("2026-06-04"),
        "diagnosis_pointers": "2",
        "diagnosis_codes": "M54.50",
    }
    for column, value in changes.items():
        changed = lines.copy()
        changed.loc[0, column] = value
        other = corrections.content_digests(changed, billed)
        assert other["TCA"] != got["TCA"], column
        assert other["TCB"] == got["TCB"], column
    one_more = corrections.content_digests(lines, np.array([True, True, True, True]))
    assert one_more["TCA"] != got["TCA"] and len(got["TCA"]) == 32


def test_version_ids_keep_within_20_characters_and_map_back_to_their_key():
    key = "TC0123456789ABCDE"
    assert ledger_store.versioned_id(key, 0) == key
    assert ledger_store.versioned_id(key, 1) == "R10123456789ABCDE"
    assert ledger_store.versioned_id(key, 35) == "RZ0123456789ABCDE"
    assert ledger_store.versioned_id(key, 36) is None
    assert ledger_store.versioned_id("PCN0001", 1) is None
    ids = pd.Series([key, "R10123456789ABCDE", "RZ0123456789ABCDE-12", f"{key}-3", "RX-1"])
    assert ledger.claim_key(ids).tolist() == [key, key, key, key, "RX"]
    assert [ledger_store.version_of(c) for c in ids] == [0, 1, 35, 0, 0]
    assert len("RZ0123456789ABCDE-99") == 20


def test_no_lifecycle_layer_means_no_status_known(tmp_path):
    assert corrections.read_lifecycle(str(tmp_path)).empty
    storage.write_table(
        pa.table({"claim_id": ["X"]}), str(tmp_path / "lifecycle" / "current.parquet")
    )
    with pytest.raises(RunError, match="lacks the lifecycle columns"):
        corrections.read_lifecycle(str(tmp_path))


def test_a_void_asked_by_a_release_row(night1, tmp_path):
    """A VOID release row voids a claim the payer adjudicated (tonight's lines, frequency 8,
    REF*F8); rows naming a claim in flight, a rejected one or one not sent void nothing and
    say why; once voided, the claim is never voided again."""
    out, first = night1
    write_lifecycle(out, {"EDEN": ("paid", "PCN-5"), "EREJ": ("rejected_by_payer", None)})
    rows = [
        f",,{first['EDEN']},,VOID,duplicate visit,A. Chen,2026-11-29,",
        f",,{first['EFLY']},,void,wrong payer,A. Chen,2026-11-29,",
        f",,{first['EREJ']},,VOID,wrong payer,A. Chen,2026-11-29,",
        ",,TCFFFFFFFFFFFFFFF,,VOID,typo,A. Chen,2026-11-29,",
        "CLN01,EDEN,,,VOID,a void names a claim,A. Chen,2026-11-29,",
    ]
    header = (
        "clinic_id,encounter_id,claim_id,line_id,code,reason,released_by,released_on,expires_on"
    )
    (Path(out) / "releases").mkdir()
    (Path(out) / "releases" / "voids.csv").write_text("\n".join([header, *rows]) + "\n")
    m2 = pipeline.run(config(tmp_path, NIGHT1, RD2))
    key = {enc: ledger_store.KEY_ID.match(cid)["hash"] for enc, cid in first.items()}
    assert m2["claims_billed"] == 1
    assert sent_claims(out, RD2) == {f"R1{key['EDEN']}": ("11:B:8", "PCN-5")}
    for text in night_files(out, RD2).values():
        ok, report = pyx12_validate(text)
        assert ok, report
    exc = exceptions(out, RD2)
    void = exc[exc["code"] == "CLAIM_VOID"]
    assert set(void["encounter_id"]) == {"EDEN"} and len(void) == 2
    assert void["message"].str.contains(f"goes out under CLM01 R1{key['EDEN']}", regex=False).all()
    unused = exc[(exc["code"] == "RELEASE_UNUSED")].sort_values("source_row")
    assert unused["message"].tolist() == [
        f"release VOID (claim {first['EFLY']}) not applied: its status is sent since "
        "2026-11-28: still in flight",
        f"release VOID (claim {first['EREJ']}) not applied: its status is rejected_by_payer "
        "since 2026-11-30: the payer adjudicated nothing to void",
        "release VOID (claim TCFFFFFFFFFFFFFFF) not applied: the claim was not sent by another "
        "night: nothing to void",
    ]
    assert not exc["message"].str.contains("wrong payer|duplicate visit").any()  # free text
    invalid = exc[exc["code"] == "RELEASE_INVALID"]
    assert len(invalid) == 1 and "a VOID names the claim to void" in invalid["message"].iloc[0]
    held = (
        exc[exc["code"] == "ALREADY_BILLED"]
        .drop_duplicates("encounter_id")
        .set_index("encounter_id")
    )
    assert set(held.index) == {"EFLY", "EREJ"}  # the rejected one is not resubmitted either
    assert (
        "a VOID release names it, and its status is rejected_by_payer"
        in held.loc["EREJ", "message"]
    )
    led = ledger.read(out)
    row = led[led["run_date"] == RD2.isoformat()].iloc[0]
    assert (row["claim_id"], row["frequency_code"], row["original_claim_id"]) == (
        f"R1{key['EDEN']}",
        "8",
        first["EDEN"],
    )
    assert row["original_reference"] == "PCN-5"
    assert versions_table(out) == [
        (first["EDEN"], 1, RD2.isoformat(), "8", first["EDEN"], "committed")
    ]
    # night 3, the release still there: the claim was voided, never again
    pipeline.run(config(tmp_path, NIGHT1, RD3))
    exc3 = exceptions(out, RD3)
    eden = exc3[exc3["encounter_id"] == "EDEN"]
    assert set(eden["code"]) == {"ALREADY_BILLED"}
    assert (
        eden["message"]
        .str.contains(f"it was voided (as R1{key['EDEN']} on 2026-11-29)", regex=False)
        .all()
    )
    assert len(versions_table(out)) == 1


def test_show_names_what_a_replacement_corrects(night1, tmp_path):
    out, first = night1
    pipeline.run(config(tmp_path, NIGHT2, RD2))
    eden = "R1" + ledger_store.KEY_ID.match(first["EDEN"])["hash"]
    text = ledger.show(out, eden)
    assert f"Claim {eden}  [CMS-1500 (837P)]  billed 2026-11-29" in text
    assert "frequency 7" in text and "Corrects       payer claim # PCN-77881" in text
    # the key shows every sending of the claim: the original and its replacement
    both = ledger.show(out, first["EDEN"])
    assert both.count("Claim ") >= 2 and "frequency 1" in both and "frequency 7" in both
