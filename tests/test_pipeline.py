"""A mixed night end to end: the manifest, scored lines, exception report and claim files agree
with each other and with counts worked out by hand; every 837 passes pyx12."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from factories import row, write_csv
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import nights, pipeline, runtime, storage, x12
from therapy_claims.handover import Handover, InMemoryHandover
from therapy_claims.stages import claim_files, publish

RD = date(2026, 11, 28)


def mixed_rows() -> list[dict]:
    return [
        # E1: Medicare, 97110 33 min + 97140 7 min -> 2 + 1 units (CMS example 3), billed
        row(
            line_id="L1",
            encounter_id="E1",
            cpt_code="97110",
            minutes="33",
            units_charted="2",
            start_time="09:00",
            end_time="09:33",
            charge_amount="90.00",
        ),
        row(
            line_id="L2",
            encounter_id="E1",
            cpt_code="97140",
            minutes="7",
            units_charted="1",
            start_time="09:33",
            end_time="09:40",
            charge_amount="45.50",
            modifiers="",
            body_region="lumbar",
            technique="joint_mobilization",
        ),
        # E2: commercial (per-code), dependent child, 97140 7 min alone -> 0 units, not billed;
        #     97110 20 min -> 1 unit billed
        row(
            line_id="L3",
            body_region="cervical",
            technique="soft_tissue_mobilization",
            goal_id="G1",
            patient_response="tolerated well",
            encounter_id="E2",
            patient_id="P2",
            payer_id="COM01",
            cpt_code="97140",
            minutes="7",
            units_charted="",
            start_time="10:00",
            end_time="10:07",
            charge_amount="40",
            subscriber_relationship="child",
            subscriber_last_name="O*BRIEN~",
            subscriber_first_name="MÁRIA",
            subscriber_dob="1980-05-05",
            patient_first_name="JOSÉ",
            patient_last_name="MÜLLER",
        ),
        row(
            line_id="L4",
            encounter_id="E2",
            patient_id="P2",
            payer_id="COM01",
            cpt_code="97110",
            minutes="20",
            units_charted="1",
            start_time="10:07",
            end_time="10:27",
            charge_amount="60",
            subscriber_relationship="child",
            subscriber_last_name="O*BRIEN~",
            subscriber_first_name="MÁRIA",
            subscriber_dob="1980-05-05",
            patient_first_name="JOSÉ",
            patient_last_name="MÜLLER",
            patient_address="12 MAIN ST:APT^4",
        ),
        # E3: unknown payer -> held
        row(
            line_id="L5",
            encounter_id="E3",
            patient_id="P3",
            payer_id="NOPE",
            start_time="11:00",
            end_time="11:30",
        ),
        # E4: one line with a bad date -> quarantined; its sibling held (ENCOUNTER_INCOMPLETE)
        row(
            line_id="L6",
            encounter_id="E4",
            patient_id="P4",
            date_of_service="2026-02-30",
            start_time="12:00",
            end_time="12:30",
        ),
        row(
            line_id="L7",
            encounter_id="E4",
            patient_id="P4",
            cpt_code="97161",
            minutes="",
            units_charted="1",
            start_time="",
            end_time="",
        ),
        # E5: timed code without minutes -> TIME_MISSING, held
        row(
            line_id="L8", encounter_id="E5", patient_id="P5", minutes="", start_time="", end_time=""
        ),
        # E6: end before start -> TIME_INCONSISTENT (Great Expectations), held
        row(line_id="L9", encounter_id="E6", patient_id="P6", start_time="14:30", end_time="14:00"),
        # E7: Medicare, units charted 3 for 33 minutes -> corrected to 2 (warning, still billed)
        row(
            line_id="L10",
            encounter_id="E7",
            patient_id="P7",
            minutes="33",
            units_charted="3",
            start_time="15:00",
            end_time="15:40",
            charge_amount="135",
        ),
    ]


@pytest.fixture
def night(tmp_path):
    inp = write_csv(tmp_path / "landing" / "clinic1.csv", mixed_rows())
    cfg = pipeline.RunConfig(inputs=[str(inp.parent)], out=str(tmp_path / "out"), run_date=RD)
    return cfg, pipeline.run(cfg)


def test_manifest_balances_with_hand_counts(night):
    cfg, m = night
    assert m["rows_in"] == 10 and m["rows_quarantined"] == 1 and m["rows_scored"] == 9
    # billed: L1, L2, L4, L10; not billed: L3; held: L5 (E3), L7 (E4), L8 (E5), L9 (E6)
    assert (m["lines_billed"], m["lines_not_billed"], m["lines_held"]) == (4, 1, 4)
    assert (m["claims_billed"], m["claims_held"]) == (3, 4)
    assert m["balanced"] is True
    assert m["rows_in"] == m["rows_quarantined"] + m["rows_scored"]
    assert m["inputs"][0]["accepted"] and m["inputs"][0]["rows"] == 10
    assert len(m["inputs"][0]["sha256"]) == 64
    assert {Path(f["path"]).name for f in m["reference_files"]} >= {
        "payers.csv",
        "clinics.csv",
        "ncci_ptp.csv",
    }
    for key in ("run_date", "started_at", "finished_at", "version", "claim_files"):
        assert key in m


def test_scored_lines(night):
    cfg, m = night
    s = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet")).set_index(
        "line_id"
    )
    assert s.loc["L1", "units"] == 2 and s.loc["L2", "units"] == 1 and s.loc["L3", "units"] == 0
    assert s.loc["L3", "status"] == "not_billed" and "UNITS_ZERO" in list(
        s.loc["L3", "exception_codes"]
    )
    assert list(s.loc["L2", "modifiers"]) == ["GP"] and list(s.loc["L2", "changes"]) == [
        "modifiers +GP"
    ]
    # the charge follows the units: fee_schedule.csv's CLN01/medicare/97110 unit charge 42.00 x 2
    assert list(s.loc["L10", "changes"]) == ["units 3->2", "charge 135.00->84.00"]
    assert s.loc["L7", "status"] == "held" and "ENCOUNTER_INCOMPLETE" in list(
        s.loc["L7", "exception_codes"]
    )
    assert s.loc["L9", "status"] == "held" and "TIME_INCONSISTENT" in list(
        s.loc["L9", "exception_codes"]
    )
    assert s.loc["L1", "claim_id"] == s.loc["L2", "claim_id"] != s.loc["L10", "claim_id"]
    assert "L6" not in s.index
    for col in (
        "claim_id",
        "patient_id",
        "payer_id",
        "date_of_service",
        "cpt_code",
        "modifiers",
        "minutes",
        "units_charted",
        "units",
        "charge_amount",
        "status",
        "exception_codes",
        "changes",
    ):
        assert col in s.columns
    # no names or addresses in the scored layer
    assert not {"patient_last_name", "patient_address", "member_id"} & set(s.columns)


def test_exception_report(night):
    cfg, m = night
    e = pd.read_parquet(Path(cfg.final("exceptions")) / "exceptions.parquet")
    # the night is the file's partition (run_date=D), not a column; the CSV keeps it
    assert "run_date" not in e.columns
    csv = (Path(cfg.final("exceptions")) / "exceptions.csv").read_text(encoding="utf-8-sig")
    assert csv.startswith("run_date,line_id,")
    for col in (
        "line_id",
        "encounter_id",
        "code",
        "severity",
        "message",
        "suggested_fix",
        "evidence",
        "before",
        "after",
        "source_file",
        "source_row",
    ):
        assert col in e.columns
    by = e.groupby("code")["line_id"].agg(sorted).to_dict()
    assert by["ROW_INVALID"] == ["L6"] and by["ENCOUNTER_INCOMPLETE"] == ["L7"]
    assert by["UNKNOWN_PAYER"] == ["L5"] and by["TIME_MISSING"] == ["L8"]
    assert by["TIME_INCONSISTENT"] == ["L9"] and by["UNITS_CORRECTED"] == ["L10"]
    assert "L2" in by["THERAPY_MODIFIER_ADDED"]
    assert m["exceptions_by_code"] == e["code"].value_counts().to_dict()
    csv = (Path(cfg.final("exceptions")) / "exceptions.csv").read_bytes()
    assert csv.startswith(b"\xef\xbb\xbf") and len(
        pd.read_csv(Path(cfg.final("exceptions")) / "exceptions.csv")
    ) == len(e)


def test_claim_files_validate_and_agree_with_scored(night):
    cfg, m = night
    files = sorted(Path(cfg.final("claims")).glob("*.x12"))
    assert [f.name for f in files] == sorted(Path(f["path"]).name for f in m["claim_files"])
    s = pd.read_parquet(Path(cfg.final("scored")) / "scored.parquet")
    billed = s[s["status"] == "billed"]
    clm_ids, total, texts = set(), 0.0, ""
    for f in files:
        ok, report = pyx12_validate(str(f))
        assert ok, report
        text = f.read_text(encoding="ascii")
        assert independent_checks(text) == []
        for seg in text.split("~"):
            el = seg.strip().split("*")
            if el[0] == "CLM":
                clm_ids.add(el[1])
                total += float(el[2])
        texts += text
    # hostile free text arrives cleaned: no delimiters inside data, transliterated to ASCII
    assert (
        "NM1*IL*1*O BRIEN*MARIA" in texts
        and "N3*12 MAIN ST APT 4~" in texts
        and "MULLER*JOSE" in texts
    )
    assert clm_ids == set(billed["claim_id"])
    assert round(total, 2) == round(billed["charge_amount"].sum(), 2)
    assert sum(f["claims"] for f in m["claim_files"]) == m["claims_billed"]
    assert sum(f["lines"] for f in m["claim_files"]) == m["lines_billed"]


def test_rerun_is_identical_and_replaces(night, tmp_path):
    cfg, m1 = night
    before = {f.name: f.read_bytes() for f in Path(cfg.final("claims")).glob("*.x12")}
    stray = Path(cfg.final("claims")) / "stray.x12"
    stray.write_text("left over")
    m2 = pipeline.run(cfg)
    after = {f.name: f.read_bytes() for f in Path(cfg.final("claims")).glob("*.x12")}
    assert after == before  # byte-identical, in the new run's own folder (no stray file)
    assert nights.committed(cfg.out, cfg.rd)["outputs"]["claims"] == cfg.final("claims")
    assert {k: m2[k] for k in ("rows_in", "lines_billed", "claims_billed")} == {
        k: m1[k] for k in ("rows_in", "lines_billed", "claims_billed")
    }
    assert not Path(cfg.staging).exists()


def test_failure_halfway_keeps_previous_outputs(night, monkeypatch):
    cfg, _ = night
    before = {f.name: f.read_bytes() for f in Path(cfg.final("claims")).glob("*.x12")}
    manifest_before = Path(cfg.manifest_path).read_bytes()
    from therapy_claims import x12

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(x12, "build_837p", boom)
    with pytest.raises(RuntimeError):
        pipeline.run(cfg)
    assert Path(cfg.manifest_path).read_bytes() == manifest_before
    committed = Path(nights.committed(cfg.out, cfg.rd)["outputs"]["claims"])
    assert {f.name: f.read_bytes() for f in committed.glob("*.x12")} == before


def test_control_numbers_differ_across_run_dates():
    assert x12.control_number(date(2026, 11, 28), 1) != x12.control_number(date(2026, 11, 29), 1)
    assert x12.control_number(date(2026, 11, 28), 1) == 263320001
    assert len(str(x12.control_number(date(2026, 12, 31), 9999))) == 9


def _unwritable_night(tmp_path, last_name: str = "*~^:") -> pipeline.RunConfig:
    """Two visits; the second patient's name is made only of characters X12 cannot carry."""
    rows = [
        row(),
        row(
            line_id="L2",
            encounter_id="E2",
            patient_id="P2",
            patient_last_name=last_name,
            start_time="10:00",
            end_time="10:30",
        ),
    ]
    inp = write_csv(tmp_path / "in" / "a.csv", rows)
    return pipeline.RunConfig(inputs=[str(inp)], out=str(tmp_path / "out"), run_date=RD)


def test_unwritable_claim_is_held_not_lost(tmp_path):
    # a patient name made only of characters X12 cannot carry: the claim is held with
    # CLAIM_DATA_INVALID and the rest of the night is still billed
    cfg = _unwritable_night(tmp_path, "🙂🙂")
    m = pipeline.run(cfg)
    assert m["balanced"] and (m["lines_billed"], m["lines_held"]) == (1, 1)
    assert m["exceptions_by_code"].get("CLAIM_DATA_INVALID") == 1
    s = pd.read_parquet(Path(cfg.final("scored")) / "scored.parquet").set_index("line_id")
    assert s.loc["L2", "status"] == "held" and "CLAIM_DATA_INVALID" in list(
        s.loc["L2", "exception_codes"]
    )
    e = pd.read_parquet(Path(cfg.final("exceptions")) / "exceptions.parquet")
    msg = e.loc[e["code"] == "CLAIM_DATA_INVALID", "message"].iloc[0]
    assert "patient_last_name" in msg
    (f,) = Path(cfg.final("claims")).glob("*.x12")
    ok, report = pyx12_validate(str(f))
    assert ok, report
    assert m["claim_files"][0]["claims"] == 1 and m["claim_files"][0]["lines"] == 1


def test_score_decides_the_hold_and_publish_leaves_scored_and_exceptions_as_they_are(tmp_path):
    """The claim the 837 cannot carry is held by score (the staged tables say so before
    publish runs); publish writes them into place unchanged, byte for byte."""
    cfg = _unwritable_night(tmp_path)
    for stage in ("ingest", "validate", "score"):
        getattr(pipeline, stage)(cfg)
    staged = {
        kind: Path(cfg.staged(kind, f"{kind}.parquet")).read_bytes()
        for kind in ("scored", "exceptions")
    }
    s = pd.read_parquet(Path(cfg.staged("scored", "scored.parquet"))).set_index("line_id")
    assert s.loc["L2", "status"] == "held" and s.loc["L1", "status"] == "billed"
    assert list(s.loc["L2", "exception_codes"]) == ["CLAIM_DATA_INVALID"]
    pipeline.publish(cfg)
    for kind, data in staged.items():
        assert (Path(cfg.final(kind)) / f"{kind}.parquet").read_bytes() == data


def test_a_claim_the_writer_refuses_in_publish_fails_the_night(tmp_path, monkeypatch):
    """Had score missed a claim the 837 cannot carry, publish would not leave it out quietly:
    the night fails and nothing is published."""
    cfg = _unwritable_night(tmp_path)
    monkeypatch.setattr(x12, "unwritable_claims", lambda lines, **kw: {})
    for stage in ("ingest", "validate", "score"):
        getattr(pipeline, stage)(cfg)
    with pytest.raises(pipeline.RunError, match="a bug"):
        pipeline.publish(cfg)
    # nothing is published: no manifest commits the night, and no claim file was written
    assert nights.committed(cfg.out, cfg.rd) is None
    assert not list(Path(cfg.out).rglob("*.x12"))


@pytest.mark.parametrize("shuffled", [False, True])
def test_claim_files_keep_split_claims_together_sorted_or_not(tmp_path, shuffled):
    """Files are cut between claims, never between the parts of a split claim, and every line
    goes into exactly one file: on a group sorted by claim (rows taken as slices) and on one
    that is not (rows picked by claim)."""
    claims = ["TCA", "TCB-1", "TCB-2", "TCB-3", "TCC", "TCD-1", "TCD-2", "TCE"]
    sizes = [3, 50, 50, 7, 2, 50, 1, 4]
    ids = [c for c, n in zip(claims, sizes, strict=True) for _ in range(n)]
    group = pd.DataFrame({"claim_id": pd.Series(ids, dtype="string"), "n": range(len(ids))})
    if shuffled:
        group = group.sample(frac=1, random_state=7).reset_index(drop=True)

    def build(part, *, interchange_control_number, rejected=None, placed=None):
        placed.update(dict.fromkeys(part["claim_id"], "0001"))
        return "x" * (100 * len(part))

    cfg = pipeline.RunConfig(
        inputs=[], out=str(tmp_path), run_date=date(2026, 11, 28), max_file_bytes=6_000
    )
    files = [chunk for chunk, _, _, _ in claim_files.cut_files(build, group, {}, cfg)]
    assert len(files) > 1
    assert sorted(pd.concat(files)["n"]) == list(range(len(ids)))
    for chunk in files:  # whole claims only, and all parts of a split claim together
        for cid in chunk["claim_id"].unique():
            assert (chunk["claim_id"] == cid).sum() == (group["claim_id"] == cid).sum()
        bases = {c.split("-")[0] for c in chunk["claim_id"]}
        for b in bases:
            parts = {c for c in claims if c.split("-")[0] == b}
            assert parts <= set(chunk["claim_id"])


def test_validate_in_a_second_process_gives_the_same_night(tmp_path, caplog):
    """run(parallel=True) runs validate in a spawned process alongside score: the outputs are
    the ones the stages give one after the other, and its log records reach this process."""
    inp = write_csv(tmp_path / "landing" / "clinic1.csv", mixed_rows())
    outs = {}
    for parallel in (False, True):
        cfg = pipeline.RunConfig(
            inputs=[str(inp)], out=str(tmp_path / f"out-{parallel}"), run_date=RD
        )
        with caplog.at_level("INFO", logger="therapy_claims"):
            caplog.clear()
            m = pipeline.run(cfg, parallel=parallel)
        assert m["balanced"] and m["validation"]["time_consistency"]["failing_rows"] == 1
        assert "validate: 4 suite(s)" in caplog.text  # logged by whichever process ran it
        assert ("gx_wait" in m["timings"]) is parallel
        outs[parallel] = cfg
    serial, parallel = outs[False], outs[True]
    for kind, name in [("scored", "scored.parquet"), ("exceptions", "exceptions.parquet")]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(Path(serial.final(kind)) / name),
            pd.read_parquet(Path(parallel.final(kind)) / name),
        )
    claims = sorted(Path(serial.final("claims")).glob("*.x12"))
    assert claims
    for f in claims:
        assert f.read_bytes() == (Path(parallel.final("claims")) / f.name).read_bytes()


def test_claim_file_order_by_position_equals_the_lookup_by_line_id(night):
    """Publish takes raw fields by position when the raw rows line up with the scored lines;
    when they do not, it finds each line's raw row by line_id: the lines and interchanges are
    the same either way, in claim-file order."""
    import pyarrow as pa

    from therapy_claims import reference

    cfg, _ = night
    scored = storage.read_table(str(Path(cfg.final("scored")) / "scored.parquet"))
    raw = storage.read_table(str(Path(cfg.final("raw")) / "raw.parquet"))
    keep = storage.to_frame(scored, ["status"])["status"].eq("billed").to_numpy(bool)
    submitters = reference.load(None).clinics["submitter_id"]
    got = {}
    for name, table in [("aligned", raw), ("reversed", raw.take(pa.array(range(len(raw))[::-1])))]:
        at_s, at_r, interchanges = claim_files.plan(scored, table, keep, submitters)
        got[name] = claim_files.lines_at(scored, table, at_s, at_r, submitters), interchanges
    (lines, interchanges), (lines_reversed, interchanges_reversed) = got.values()
    assert len(lines) == keep.sum() > 1
    pd.testing.assert_frame_equal(lines, lines_reversed)
    assert interchanges == interchanges_reversed
    expected = lines.sort_values(claim_files.CLAIM_FILE_ORDER, kind="mergesort")
    assert lines["line_id"].tolist() == expected["line_id"].tolist()
    for (receiver, claim_type, submitter), a, b in interchanges:
        part = lines.iloc[a:b]
        assert (part["receiver_id"] == receiver).all() and (part["claim_type"] == claim_type).all()
        assert (part["submitter_id"] == submitter).all()


def test_validate_failing_in_the_second_process_fails_the_run(tmp_path, monkeypatch):
    """A validate that fails in the second process fails the run with its message, promptly
    (the background writes and the second process are shut down), and publishes nothing."""
    import signal

    from therapy_claims import gx_checks

    broken = tmp_path / "expectations"
    broken.mkdir()  # no suites in it
    monkeypatch.setenv(gx_checks.ENV_EXPECTATIONS, str(broken))
    inp = write_csv(tmp_path / "landing" / "clinic1.csv", mixed_rows())
    cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(tmp_path / "out"), run_date=RD)

    def hung(*_):
        raise TimeoutError("the run hung")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        with pytest.raises(gx_checks.SuiteError, match="not found"):
            pipeline.run(cfg, parallel=True)
    finally:
        signal.alarm(0)
    assert not Path(cfg.manifest_path).exists()
    assert not Path(cfg.final("claims")).exists()


def test_publish_in_a_second_process_writes_the_same_files(tmp_path):
    """With ``run``'s second process, publish builds about half the interchanges there and
    numbers the files across the night afterwards. Claim files (names and bytes), the ledger
    and the manifest's list of files equal what one process writes, on a night with several
    interchanges and several files in some (small files), so provisional numbers change."""
    import shutil

    from nights import write_night

    write_night(str(tmp_path / "landing"), encounters=150)
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")],
        out=str(tmp_path / "one"),
        run_date=RD,
        max_file_bytes=20_000,
    )
    for stage in ("ingest", "validate", "score"):
        getattr(pipeline, stage)(cfg)
    two = pipeline.RunConfig(**{**cfg.__dict__, "out": str(tmp_path / "two")})
    shutil.copytree(cfg.out, two.out)  # the run's folders and its staging area
    pipeline.publish(cfg)
    with runtime.second_process() as pool:
        publish.publish(two, Handover(), build=runtime.TwoProcessBuild(pool))
    files = {c.out: storage.read_json(c.staged("work", "claim_files.json")) for c in (cfg, two)}
    assert len(files[cfg.out]) >= 4 and len({f["receiver_id"] for f in files[cfg.out]}) >= 2
    for a, b in zip(files[cfg.out], files[two.out], strict=True):
        assert {k: v for k, v in a.items() if k != "path"} == {
            k: v for k, v in b.items() if k != "path"
        }
        assert Path(a["path"]).name == Path(b["path"]).name
        assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()
    ledgers = [
        pd.read_parquet(Path(c.final("ledger")) / "ledger.parquet").drop(columns="file")
        for c in (cfg, two)
    ]
    pd.testing.assert_frame_equal(*ledgers)
    # (each submitter counts its own numbers: two submitters' files may share one)
    assert sorted(ledgers[0]["interchange_control_number"].unique()) == sorted(
        {f["interchange_control_number"] for f in files[cfg.out]}
    )


def test_a_failure_building_claim_files_in_the_second_process_fails_publish(tmp_path):
    """If the second process cannot build its interchanges, publish fails with that error and
    nothing is published (the previous outputs stay; no claim files or ledger appear)."""
    from concurrent.futures import Future

    from nights import write_night

    write_night(str(tmp_path / "landing"), encounters=60)
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "out"), run_date=RD
    )
    for stage in ("ingest", "validate", "score"):
        getattr(pipeline, stage)(cfg)

    class BrokenSecondProcess:
        submitted = 0

        def submit(self, fn, *args):
            self.submitted += 1
            failed: Future = Future()
            failed.set_exception(OSError("disk full in the second process"))
            return failed

    pool = BrokenSecondProcess()
    with pytest.raises(OSError, match="disk full in the second process"):
        publish.publish(cfg, Handover(), build=runtime.TwoProcessBuild(pool))
    assert pool.submitted == 1
    assert not Path(cfg.final("claims")).exists() and not Path(cfg.final("ledger")).exists()


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_staged_writes_run_at_the_lowest_priority_and_stages_at_their_own():
    """Within a run, staged files are written on a thread of nice 19, so the stages (and the
    second process) keep the cores; the calling thread's priority is left as it was."""
    import os
    import threading

    def nice_of_this_thread() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = nice_of_this_thread()
    with InMemoryHandover() as handover:
        assert handover.background(nice_of_this_thread).result() == 19
        assert nice_of_this_thread() == before
