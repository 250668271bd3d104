"""The morning worklist across nights, and the exception report's order and columns.

Three hand-built nights go through the whole pipeline once (module fixture); each test checks
one thing of them against expectations worked out here from the visits and from the other
layers (scored, exceptions), not from the worklist code. The carrying rules on their own
(releases, a key held again after resolving) are checked on small frames.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from factories import row, write_csv

from therapy_claims import nights, pipeline, schemas, storage, worklist
from therapy_claims.catalogue import CATALOGUE

N1, N2, N3 = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)
_SLOTS: dict[str, int] = {}


def visit(enc: str, n: int = 1, *, payer: str = "MCR01", patient: str = "P1", **kw) -> list:
    """``n`` 97110 lines (15 minutes, 1 unit, $30.00 each) of one encounter at CLN01, each
    encounter on its own days and in its own time slot (one clinician treats everyone)."""
    slot = _SLOTS.setdefault(enc, len(_SLOTS))
    start = 7 * 60 + 20 * slot
    first = date(2026, 6, 1) + timedelta(days=5 * slot)
    out = []
    for i in range(n):
        base = {
            "line_id": f"{enc}-L{i}",
            "encounter_id": enc,
            "patient_id": patient,
            "payer_id": payer,
            "date_of_service": (first + timedelta(days=i)).isoformat(),
            "minutes": "15",
            "units_charted": "1",
            "charge_amount": "30.00",
            "start_time": f"{start // 60:02d}:{start % 60:02d}",
            "end_time": f"{(start + 15) // 60:02d}:{(start + 15) % 60:02d}",
        }
        out.append(row(**{**base, **kw}))
    return out


HOSTILE_ENC, HOSTILE_PATIENT = "=1+2", "-P9"

NIGHTS = {
    # EA: an unknown payer (held); EB: a timed code without minutes (held, then never comes
    # back); EC: an unknown payer (held), back on night 2 with nothing billable; ED: billed,
    # with a warning on a claim of more dollars than the held ones; EH: hostile ids (held);
    # EM: one visit, two held claims (two unknown payers), $60 and $30
    N1: visit("EA", payer="NOPE")
    + visit("EB", 2, minutes="")
    + visit("EC", payer="NOPE")
    + visit("ED", 4, modifiers="")
    + visit("EH", payer="NOPE")
    + visit("EM", 2, payer="NOPE")
    + visit("EM2", payer="NOPE2"),
    # EA still held; EC back under Medicare as a 5-minute line (no units: not billed); EF new
    N2: visit("EA", payer="NOPE") + visit("EC", minutes="5") + visit("EF", minutes=""),
    # EA fixed: the payer corrected, billed
    N3: visit("EA", payer="MCR01"),
}
# the hostile visit's ids, and EM2's lines as a second claim of encounter EM
for r in NIGHTS[N1]:
    if r["encounter_id"] == "EH":
        r.update(encounter_id=HOSTILE_ENC, patient_id=HOSTILE_PATIENT)
    if r["encounter_id"] == "EM2":
        r.update(encounter_id="EM", line_id="EM-L9")


@pytest.fixture(scope="module")
def night_runs(tmp_path_factory) -> dict:
    """The three nights run in order into one output: per night its config and manifest."""
    tmp = tmp_path_factory.mktemp("worklist")
    out = {}
    for rd, rows in NIGHTS.items():
        inp = write_csv(tmp / f"landing-{rd}" / "extract.csv", rows)
        cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(tmp / "out"), run_date=rd)
        out[rd] = (cfg, pipeline.run(cfg))
    return out


def _layer(cfg, kind: str) -> pd.DataFrame:
    """The night's layer file in its internal form (what the stages computed with)."""
    return storage.to_frame(schemas.read(str(Path(cfg.final(kind)) / f"{kind}.parquet"), kind))


def _worklist(cfg) -> pd.DataFrame:
    return _layer(cfg, "worklist")


def _by_key(cfg) -> dict[str, dict]:
    return {r["worklist_key"]: r for r in _worklist(cfg).to_dict("records")}


def _day(d: date) -> pd.Timestamp:
    return pd.Timestamp(d)


def test_a_claim_held_night_after_night_keeps_its_first_night_and_ages(night_runs):
    one, two = _by_key(night_runs[N1][0]), _by_key(night_runs[N2][0])
    a1, a2 = one["CLN01|EA"], two["CLN01|EA"]
    assert (a1["status"], a1["age_days"], a1["first_held"]) == ("open", 0, _day(N1))
    assert (a2["status"], a2["age_days"]) == ("open", 1)
    assert (a2["first_held"], a2["last_held"]) == (_day(N1), _day(N2))
    assert a2["payer_id"] == "NOPE" and list(a2["blocking_codes"]) == ["UNKNOWN_PAYER"]
    assert list(a2["owners"]) == ["front desk"] and a2["owner"] == "front desk"
    assert list(a2["fixes"]) == [CATALOGUE["UNKNOWN_PAYER"].suggested_fix]
    assert (a2["lines"], a2["held_dollars"]) == (1, 30.0)
    assert pd.isna(a2["resolved_on"]) and pd.isna(a2["resolution"])


def test_a_payer_fix_resolves_the_row_under_the_same_key(night_runs):
    cfg3, _ = night_runs[N3]
    a3 = _by_key(cfg3)["CLN01|EA"]
    assert (a3["status"], a3["resolution"], a3["resolved_on"]) == ("resolved", "billed", _day(N3))
    assert a3["first_held"] == _day(N1) and a3["age_days"] == 2
    # billed tonight under another claim id (the payer is part of it)
    s = _layer(cfg3, "scored")
    billed = s[s["encounter_id"] == "EA"]
    assert billed["status"].tolist() == ["billed"] and billed["payer_id"].tolist() == ["MCR01"]
    assert billed["claim_id"].iloc[0] not in list(a3["claim_ids"])


def test_a_key_absent_from_tonight_stays_open_as_it_was(night_runs):
    b1 = _by_key(night_runs[N1][0])["CLN01|EB"]
    b2 = _by_key(night_runs[N2][0])["CLN01|EB"]
    b3 = _by_key(night_runs[N3][0])["CLN01|EB"]
    assert (b2["status"], b2["age_days"], b3["status"], b3["age_days"]) == ("open", 1, "open", 2)
    for b in (b2, b3):
        assert b["first_held"] == b["last_held"] == _day(N1)
        assert list(b["claim_ids"]) == list(b1["claim_ids"])
        assert (b["held_dollars"], b["lines"], list(b["blocking_codes"])) == (
            60.0,
            2,
            ["TIME_MISSING"],
        )
        assert b["owner"] == "clinician"


def test_nothing_billable_left_resolves_as_not_billed_and_is_not_carried_again(night_runs):
    cfg2, _ = night_runs[N2]
    s = _layer(cfg2, "scored")
    assert s.loc[s["encounter_id"] == "EC", "status"].tolist() == ["not_billed"]
    c2 = _by_key(cfg2)["CLN01|EC"]
    assert (c2["status"], c2["resolution"], c2["resolved_on"]) == (
        "resolved",
        "not_billed",
        _day(N2),
    )
    assert "CLN01|EC" not in _by_key(night_runs[N3][0])


def test_every_night_has_exactly_the_rows_the_carrying_rules_give(night_runs):
    expected = {
        N1: {"EA": "open", "EB": "open", "EC": "open", HOSTILE_ENC: "open", "EM": "open"},
        N2: {
            "EA": "open",
            "EB": "open",
            "EC": "resolved",
            HOSTILE_ENC: "open",
            "EM": "open",
            "EF": "open",
        },
        N3: {"EA": "resolved", "EB": "open", HOSTILE_ENC: "open", "EM": "open", "EF": "open"},
    }
    for rd, (cfg, _) in night_runs.items():
        got = {k.split("|", 1)[1]: r["status"] for k, r in _by_key(cfg).items()}
        assert got == expected[rd], rd


def test_a_visit_with_two_held_claims_is_one_row_under_its_larger_claim(night_runs):
    cfg, _ = night_runs[N1]
    m = _by_key(cfg)["CLN01|EM"]
    s = _layer(cfg, "scored")
    claims = s[s["encounter_id"] == "EM"].groupby("claim_id")["payer_id"].first()
    assert sorted(claims) == ["NOPE", "NOPE2"]
    assert list(m["claim_ids"]) == sorted(claims.index)
    assert (m["payer_id"], m["lines"], m["held_dollars"]) == ("NOPE", 3, 90.0)
    assert m["first_date_of_service"] == s.loc[s["encounter_id"] == "EM", "date_of_service"].min()
    assert m["last_date_of_service"] == s.loc[s["encounter_id"] == "EM", "date_of_service"].max()


def test_rows_are_ordered_open_first_then_dollars_age_and_key(night_runs):
    for _rd, (cfg, _) in night_runs.items():
        wl = _worklist(cfg)
        keys = [
            (r["status"] != "open", -r["held_dollars"], -r["age_days"], r["worklist_key"])
            for r in wl.to_dict("records")
        ]
        assert keys == sorted(keys)
    # night 3: EM ($90), EB ($60), then the $30 ones oldest first (the hostile visit, held
    # since night 1, then EF, since night 2), the resolved EA last
    order = [k.split("|", 1)[1] for k in _worklist(night_runs[N3][0])["worklist_key"]]
    assert order == ["EM", "EB", HOSTILE_ENC, "EF", "EA"]


def test_blocking_codes_are_the_findings_that_hold_the_claim_in_catalogue_order(night_runs):
    rank = {c: i for i, c in enumerate(CATALOGUE)}
    for _rd, (cfg, _) in night_runs.items():
        e = _layer(cfg, "exceptions")
        held = e[e["holds_claim"]]
        wl = _worklist(cfg)
        for r in wl[wl["last_held"] == pd.Timestamp(cfg.run_date)].to_dict("records"):
            codes = set(held.loc[held["encounter_id"] == r["encounter_id"], "code"])
            assert list(r["blocking_codes"]) == sorted(codes, key=rank.get)
            assert list(r["owners"]) == [CATALOGUE[c].owner for c in r["blocking_codes"]]


def test_the_manifest_counts_the_layer(night_runs):
    for rd, (cfg, m) in night_runs.items():
        wl = _worklist(cfg)
        open_ = wl[wl["status"] == "open"]
        assert m["worklist"] == {
            "open": len(open_),
            "opened_tonight": int((open_["first_held"] == _day(rd)).sum()),
            "resolved_tonight": int((wl["resolved_on"] == _day(rd)).sum()),
            "held_dollars_open": round(float(open_["held_dollars"].sum()), 2),
            "oldest_open_days": int(open_["age_days"].max()) if len(open_) else 0,
        }
    assert night_runs[N2][1]["worklist"] == {
        "open": 5,
        "opened_tonight": 1,
        "resolved_tonight": 1,
        "held_dollars_open": 240.0,
        "oldest_open_days": 1,
    }


def test_the_layer_has_its_schema_and_the_csv_is_spreadsheet_safe(night_runs):
    cfg, _ = night_runs[N1]
    folder = Path(cfg.final("worklist"))
    import pyarrow.parquet as pq

    published = pq.read_schema(folder / "worklist.parquet")
    assert published.remove_metadata().equals(schemas.PUBLISHED["worklist"].remove_metadata())
    assert published.metadata[b"therapy_claims.layer"] == b"worklist"
    data = (folder / "worklist.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    csv = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(csv.columns) == schemas.WORKLIST.names
    hostile = csv[csv["worklist_key"] == f"CLN01|{HOSTILE_ENC}"].iloc[0]
    assert hostile["encounter_id"] == "'" + HOSTILE_ENC
    assert hostile["patient_id"] == "'" + HOSTILE_PATIENT
    em = csv[csv["encounter_id"] == "EM"].iloc[0]
    assert em["claim_ids"] == "; ".join(sorted(_by_key(cfg)["CLN01|EM"]["claim_ids"]))
    assert em["held_dollars"] == "90.00" and em["first_held"] == "2026-11-28"
    assert em["resolved_on"] == "" and em["age_days"] == "0"


def test_exceptions_have_where_whose_and_what_is_at_stake(night_runs):
    cfg, _ = night_runs[N1]
    e = _layer(cfg, "exceptions")
    s = _layer(cfg, "scored").set_index("line_id")
    assert list(e.columns) == schemas.EXCEPTIONS.names
    line = s.loc[e["line_id"]]
    assert e["clinic_id"].tolist() == line["clinic_id"].tolist()
    assert e["payer_id"].tolist() == line["payer_id"].tolist()
    assert e["owner"].tolist() == [CATALOGUE[c].owner for c in e["code"]]
    held = (e["severity"] == "error").to_numpy() & (line["status"] == "held").to_numpy()
    assert e["holds_claim"].tolist() == held.tolist()
    totals = s.groupby("claim_id")["charge_amount"].sum()
    assert e["claim_charge"].tolist() == totals.loc[e["claim_id"]].round(2).tolist()


def test_exceptions_rank_what_holds_a_claim_first(night_runs):
    cfg, _ = night_runs[N1]
    e = _layer(cfg, "exceptions")
    sev = {"error": 0, "warning": 1, "info": 2}
    keys = [
        (
            not r["holds_claim"],
            sev[r["severity"]],
            -r["claim_charge"],
            r["clinic_id"],
            r["claim_id"],
            r["line_id"],
            r["code"],
        )
        for r in e.to_dict("records")
    ]
    assert keys == sorted(keys)
    # an error holding a $30 claim before a warning on a billed $120 claim
    warning = e.index[e["code"] == "THERAPY_MODIFIER_ADDED"].min()
    held_small = e.index[(e["code"] == "UNKNOWN_PAYER") & (e["claim_charge"] == 30.0)].max()
    assert e.loc[warning, "claim_charge"] == 120.0 and held_small < warning
    assert e["holds_claim"].iloc[:held_small].all() and not e["holds_claim"].iloc[warning:].any()
    data = (Path(cfg.final("exceptions")) / "exceptions.csv").read_bytes()
    csv = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(csv.columns) == schemas.EXCEPTIONS.names
    assert csv["holds_claim"].tolist() == [str(v) for v in e["holds_claim"]]
    assert csv["claim_charge"].tolist() == [f"{v:.2f}" for v in e["claim_charge"]]
    assert csv["encounter_id"].tolist() == [
        "'" + v if v[:1] in "=+-@" else v for v in e["encounter_id"]
    ]


def test_an_error_that_holds_nothing_ranks_below_one_that_holds_a_claim():
    """(A released error, once releases exist, holds nothing: it ranks after the holds, by
    its severity and dollars among the rest.)"""
    from therapy_claims.stages.score import _exception_order

    rows = [
        # code, severity, holds_claim, claim_charge, clinic, claim, line
        ("W", "warning", False, 120.0, "C1", "T2", "L2"),
        ("R", "error", False, 500.0, "C1", "T3", "L3"),
        ("F", "error", False, None, None, None, None),
        ("H", "error", True, 30.0, "C2", "T1", "L1"),
        ("I", "info", False, 900.0, "C1", "T4", "L4"),
        ("G", "error", True, 30.0, "C1", "T5", "L5"),
        ("G", "error", True, 30.0, "C1", "T5", None),
    ]
    cols = ["code", "severity", "holds_claim", "claim_charge", "clinic_id", "claim_id", "line_id"]
    exc = pd.DataFrame(rows, columns=cols).astype(
        {c: "string" for c in ("code", "severity", "clinic_id", "claim_id", "line_id")}
    )
    order = exc["code"].take(_exception_order(exc)).tolist()
    assert order == ["G", "G", "H", "R", "F", "W", "I"]
    assert exc["line_id"].take(_exception_order(exc)).tolist()[:2] == [pd.NA, "L5"]


def test_the_previous_night_is_the_latest_committed_before(night_runs):
    cfg3, _ = night_runs[N3]
    rd, m = nights.latest_before(cfg3.out, N3.isoformat())
    assert rd == N2.isoformat() and m["run_id"] == night_runs[N2][0].run_id
    assert nights.latest_before(cfg3.out, N1.isoformat()) is None
    assert nights.latest_before(cfg3.out, "2027-01-01")[0] == N3.isoformat()


def test_a_claim_billed_under_a_release_resolves_as_released(tmp_path):
    """Night 1 holds a visit on an NCCI pair (97530 with 97140, no distinct-service
    modifier); night 2 a reviewer's release of that code for the visit (by worklist key)
    lets it go out: the row resolves ``released``, and the waived error holds nothing."""
    t = ["09:00", "09:15", "09:30"]
    common = {"encounter_id": "EN", "minutes": "15", "units_charted": "1"}
    rows = [
        row(line_id="EN-1", cpt_code="97530", start_time=t[0], end_time=t[1], **common),
        row(
            line_id="EN-2",
            cpt_code="97140",
            start_time=t[1],
            end_time=t[2],
            body_region="lumbar",
            technique="joint_mobilization",
            goal_id="G1",
            patient_response="tolerated well",
            **common,
        ),
    ]
    out = tmp_path / "out"
    runs = {}
    for rd in (N1, N2):
        if rd == N2:
            (out / "releases").mkdir(parents=True)
            (out / "releases" / "review.csv").write_text(
                "clinic_id,encounter_id,code,reason,released_by,released_on\n"
                "CLN01,EN,NCCI_MODIFIER_MISSING,distinct blocks documented,A. Chen,2026-11-29\n"
            )
        inp = write_csv(tmp_path / f"landing-{rd}" / "extract.csv", rows)
        cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(out), run_date=rd)
        runs[rd] = (cfg, pipeline.run(cfg))
    n1 = _by_key(runs[N1][0])["CLN01|EN"]
    assert (n1["status"], list(n1["blocking_codes"])) == ("open", ["NCCI_MODIFIER_MISSING"])
    assert n1["owner"] == CATALOGUE["NCCI_MODIFIER_MISSING"].owner
    cfg2, m2 = runs[N2]
    n2 = _by_key(cfg2)["CLN01|EN"]
    assert (n2["status"], n2["resolution"], n2["resolved_on"]) == ("resolved", "released", _day(N2))
    assert m2["worklist"]["resolved_tonight"] == 1 and m2["worklist"]["open"] == 0
    e = _layer(cfg2, "exceptions")
    ncci = e[e["code"] == "NCCI_MODIFIER_MISSING"]
    assert len(ncci) == 1 and not ncci["holds_claim"].any()
    assert (e["code"] == "RELEASED").sum() == 1 and not e["holds_claim"].any()


# --------------------------------------------------------------------------- small frames


def _lines(*rows: tuple) -> pd.DataFrame:
    """Scored lines: (encounter, claim, payer, status, charge)."""
    df = pd.DataFrame(rows, columns=["encounter_id", "claim_id", "payer_id", "status", "charge"])
    return pd.DataFrame(
        {
            "clinic_id": "C1",
            "encounter_id": df["encounter_id"],
            "patient_id": "P" + df["encounter_id"],
            "payer_id": df["payer_id"],
            "claim_id": df["claim_id"],
            "date_of_service": pd.Timestamp("2026-11-01"),
            "charge_amount": df["charge"].astype(float),
            "status": df["status"],
        }
    ).astype({c: "string" for c in worklist.LINE_COLUMNS if c not in TYPED})


TYPED = ("date_of_service", "charge_amount")


def _exceptions(*rows: tuple) -> pd.DataFrame:
    """Exceptions: (encounter, code, holds_claim)."""
    df = pd.DataFrame(rows, columns=["encounter_id", "code", "holds_claim"])
    return pd.DataFrame(
        {
            "clinic_id": pd.Series("C1", index=df.index, dtype="string"),
            "encounter_id": df["encounter_id"].astype("string"),
            "code": df["code"].astype("string"),
            "holds_claim": df["holds_claim"].astype(bool),
        }
    )


def test_billed_under_a_release_resolves_as_released_and_old_resolved_rows_drop():
    d1, d2, d3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)
    night1 = worklist.build(
        _lines(("E1", "T1", "X", "held", 10), ("E2", "T2", "X", "held", 20)),
        _exceptions(("E1", "AUTH_MISSING", True), ("E2", "TIME_MISSING", True)),
        None,
        d1,
    )
    assert night1["worklist_key"].tolist() == ["C1|E2", "C1|E1"]
    night2 = worklist.build(
        _lines(("E1", "T1", "X", "billed", 10), ("E2", "T2", "X", "billed", 20)),
        _exceptions(("E1", "AUTH_MISSING", False), ("E1", "RELEASED", False)),
        night1,
        d2,
    )
    how = dict(zip(night2["worklist_key"], night2["resolution"], strict=True))
    assert how == {"C1|E1": "released", "C1|E2": "billed"}
    assert set(night2["status"]) == {"resolved"}
    # resolved rows are not carried; the visit held again opens a new row
    night3 = worklist.build(
        _lines(("E1", "T1", "X", "held", 10)),
        _exceptions(("E1", "AUTH_MISSING", True)),
        night2,
        d3,
    )
    assert night3["worklist_key"].tolist() == ["C1|E1"]
    assert (night3["first_held"].iloc[0], night3["age_days"].iloc[0]) == (pd.Timestamp(d3), 0)
    assert worklist.counts(night3, d3)["opened_tonight"] == 1


def test_an_empty_night_with_nothing_before_is_an_empty_typed_worklist():
    wl = worklist.build(_lines(), _exceptions(), None, date(2026, 12, 1))
    assert wl.empty and list(wl.columns) == schemas.WORKLIST.names
    assert worklist.to_table(wl).schema.equals(schemas.WORKLIST)
    assert worklist.counts(wl, date(2026, 12, 1)) == {
        "open": 0,
        "opened_tonight": 0,
        "resolved_tonight": 0,
        "held_dollars_open": 0.0,
        "oldest_open_days": 0,
    }
    assert worklist.summary_lines(wl, date(2026, 12, 1)) == [
        "Worklist 2026-12-01: 0 open claim(s), $0.00 held; 0 opened tonight, 0 resolved tonight"
    ]


def test_the_summary_names_owners_by_dollars_and_the_oldest_open():
    d1, d2 = date(2026, 12, 1), date(2026, 12, 4)
    night1 = worklist.build(
        _lines(("E1", "T1", "X", "held", 10)), _exceptions(("E1", "AUTH_MISSING", True)), None, d1
    )
    night2 = worklist.build(
        _lines(("E2", "T2", "X", "held", 500), ("E3", "T3", "X", "held", 40)),
        _exceptions(("E2", "TIME_MISSING", True), ("E3", "CODE_UNKNOWN", True)),
        night1,
        d2,
    )
    text = worklist.summary_lines(night2, d2)
    assert text[0] == (
        "Worklist 2026-12-04: 3 open claim(s), $550.00 held; 2 opened tonight, 0 resolved tonight"
    )
    owners = [t.split()[0] for t in text[2:5]]
    assert owners == ["clinician", "coder", "front"]  # $500, $40, $10 ("front desk")
    oldest = text[text.index("  Oldest open (3):") + 1 :]
    assert [t.split()[0] for t in oldest] == ["C1|E1", "C1|E2", "C1|E3"]
    assert "3 day(s)" in oldest[0] and "AUTH_MISSING (front desk)" in oldest[0]
    assert not any(p in t for t in text for p in ("PE1", "PE2", "PE3"))  # no patient ids
