"""One landing zone shared by the nightly DAG and the event DAGs: files are billed once, late
files never shrink a night, only the configured landing zone is read, and old nights need
``reopen``. The nightly DAG is driven through the package functions its tasks call."""

from __future__ import annotations

import logging
import os
from datetime import date

import pytest
from factories import row, write_csv

from therapy_claims import events, pipeline, registry, storage

LATER = {"start_time": "10:00", "end_time": "10:30"}  # no PROVIDER_OVERLAP with a 09:00 line


def _nightly(landing, out, rd: str, *, reopen: bool = False) -> dict | None:
    """One nightly DAG run, task by task (partitions, mapped ingest, ..., manifest, register);
    None when the first task finds nothing new (the DAG skips every later task)."""
    cfg = pipeline.RunConfig(
        inputs=[str(landing)], out=str(out), run_date=date.fromisoformat(rd), reopen=reopen
    )
    parts = pipeline.plan_new_partitions(cfg, by="folder")
    if not parts:
        return None
    for files in parts:
        pipeline.ingest_partition(cfg, files)
    pipeline.ingest_combine(cfg)
    for stage in (pipeline.validate, pipeline.score, pipeline.publish, pipeline.manifest):
        stage(cfg)
    events.register_night(cfg, run_id=f"nightly-{rd}")
    return storage.read_json(cfg.manifest_path)


def _statuses(out, rd: str) -> dict[str, str]:
    m = storage.read_json(str(out / "manifest" / f"run_date={rd}.json"))
    df = storage.read_parquet(storage.join(m["outputs"]["scored"], "scored.parquet"))
    return dict(zip(df["line_id"], df["status"], strict=True))


# --------------------------------------------------------------------------- 1. nightly


def test_nightly_reads_only_files_no_night_has_processed(tmp_path):
    land, out = tmp_path / "landing", tmp_path / "out"
    a1 = write_csv(land / "CLN01" / "CLN01_2026-11-27.csv", [row()])  # L1 billable
    # L2: unknown payer, held; corrected (same line id) in night 2's file below
    held = {"line_id": "L2", "encounter_id": "E2", "patient_id": "P2", **LATER}
    b1 = write_csv(land / "CLN02" / "CLN02_2026-11-27.csv", [row(payer_id="NOPE", **held)])

    m1 = _nightly(land, out, "2026-11-28")
    assert [i["path"] for i in m1["inputs"]] == [str(a1), str(b1)]
    assert _statuses(out, "2026-11-28") == {"L1": "billed", "L2": "held"}
    assert m1["lines_billed"] == 1

    # night 2: both of night 1's files are still in the landing zone
    a2 = write_csv(
        land / "CLN01" / "CLN01_2026-11-28.csv",
        [row(line_id="L3", encounter_id="E3", patient_id="P3", date_of_service="2026-11-27")],
    )
    b2 = write_csv(land / "CLN02" / "CLN02_2026-11-28.csv", [row(**held)])  # L2 corrected
    m2 = _nightly(land, out, "2026-11-29")
    assert [i["path"] for i in m2["inputs"]] == [str(a2), str(b2)]
    assert _statuses(out, "2026-11-29") == {"L2": "billed", "L3": "billed"}
    assert m2["rows_in"] == 2 and m2["lines_billed"] == 2 and m2["balanced"]
    assert not {"ALREADY_BILLED", "DUPLICATE_LINE"} & set(m2["exceptions_by_code"])
    # night 1 as it was published
    assert _statuses(out, "2026-11-28") == {"L1": "billed", "L2": "held"}

    # night 3 with nothing new: skipped, nothing staged or published
    assert _nightly(land, out, "2026-11-30") is None
    assert not (out / "manifest" / "run_date=2026-11-30.json").exists()
    assert not (out / ".staging" / "run_date=2026-11-30").exists()
    # the event DAG's reconcile of the same landing zone has nothing left either, although
    # the files' names give other nights (2026-11-27, 2026-11-28) than the nightly runs used
    assert events.plan_run(None, str(land), str(out)) == []


def test_a_file_the_event_dag_billed_is_not_read_by_the_nightly_dag(tmp_path):
    land, out = tmp_path / "landing", tmp_path / "out"
    a = write_csv(land / "CLN01_2026-11-27.csv", [row()])
    (night,) = events.plan_run(None, str(land), str(out))
    assert events.process_night(night, str(out))["lines_billed"] == 1
    b = write_csv(
        land / "CLN02_2026-11-28.csv",
        [row(line_id="L2", encounter_id="E2", patient_id="P2", **LATER)],
    )
    m = _nightly(land, out, "2026-11-28")
    assert [i["path"] for i in m["inputs"]] == [str(b)]
    assert registry.processed_any(str(out)).nights(str(a), storage.sha256(a)) == ["2026-11-27"]
    assert registry.processed_any(str(out)).nights(str(b), storage.sha256(b)) == ["2026-11-28"]


def test_processed_any_is_one_listing_of_the_registry(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    files = [write_csv(tmp_path / "l" / f"f{i}.csv", [row(line_id=f"L{i}")]) for i in range(3)]
    registry.record(out, "2026-11-27", [{"path": str(files[0]), "sha256": "a" * 64}])
    registry.record(
        out, "2026-11-28", [{"path": str(f), "sha256": storage.sha256(f)} for f in files[:2]]
    )
    calls: list[tuple[str, str]] = []
    for fn in ("list_files", "exists", "read_json", "read_bytes"):
        real = getattr(storage, fn)

        def spy(path, *a, _real=real, _fn=fn, **k):
            calls.append((_fn, str(path)))
            return _real(path, *a, **k)

        monkeypatch.setattr(storage, fn, spy)
    done = registry.processed_any(out)
    assert [c for c in calls if ".registry" in c[1]] == [
        ("list_files", storage.join(out, ".registry"))
    ]
    assert (str(files[0]), "a" * 64) in done
    assert done.nights(str(files[0]), storage.sha256(files[0])) == ["2026-11-28"]
    assert (str(files[2]), storage.sha256(files[2])) not in done
    assert len(done) == 3


# --------------------------------------------------------------------------- 2. late files


def _published_night(tmp_path):
    """Night 2026-11-27 published by the event DAG with two files; a late third file."""
    land, out = tmp_path / "landing", str(tmp_path / "out")
    a = write_csv(land / "CLN01_2026-11-27.csv", [row()])
    b = write_csv(
        land / "CLN02_2026-11-27.csv",
        [row(line_id="L2", encounter_id="E2", patient_id="P2", **LATER)],
    )
    (night,) = events.plan_nights([str(a), str(b)], out)
    assert events.process_night(night, out)["lines_billed"] == 2
    late = write_csv(
        land / "CLN03_2026-11-27.csv",
        [
            row(
                line_id="L3",
                encounter_id="E3",
                patient_id="P3",
                start_time="11:00",
                end_time="11:30",
            )
        ],
    )
    return land, out, str(a), str(b), str(late)


def test_a_late_file_never_republishes_a_night_without_its_earlier_files(tmp_path):
    land, out, a, b, late = _published_night(tmp_path)
    manifest = tmp_path / "out" / "manifest" / "run_date=2026-11-27.json"
    before = manifest.read_bytes()
    os.remove(a)
    with pytest.raises(pipeline.RunError) as err:
        events.plan_nights([late], out)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("night 2026-11-27 cannot take the new file(s) " + late)
    assert f"missing: {a})" in msg and b not in msg
    assert "put them back" in msg and "run the night by hand with all its files" in msg
    # the reconcile refuses the same way; nothing ran, nothing was registered
    with pytest.raises(pipeline.RunError, match=f"missing: {a}"):
        events.plan_run(None, str(land), out)
    assert manifest.read_bytes() == before
    assert set(registry.night_files(out, "2026-11-27")) == {a, b}

    # an earlier file changed (not a new version the events name) is refused too
    write_csv(land / "CLN01_2026-11-27.csv", [row(minutes="45", units_charted="3")])
    with pytest.raises(pipeline.RunError, match=f"changed: {a}"):
        events.plan_nights([late], out)
    # put back as published: the night runs again with all three files
    write_csv(land / "CLN01_2026-11-27.csv", [row()])
    (night,) = events.plan_nights([late], out)
    assert night == {"run_date": "2026-11-27", "new": [late], "inputs": [a, b, late]}


def test_the_nightly_dag_refuses_to_shrink_a_published_night(tmp_path):
    land, out, a, _b, late = _published_night(tmp_path)
    os.remove(a)
    with pytest.raises(pipeline.RunError, match=f"night 2026-11-27 .*missing: {a}"):
        _nightly(land, tmp_path / "out", "2026-11-27")
    m = storage.read_json(str(tmp_path / "out" / "manifest" / "run_date=2026-11-27.json"))
    assert m["rows_in"] == 2  # not republished from the late file alone


# --------------------------------------------------------------------------- 3. landing zone


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("s3://bucket/prefix/CLN01_2026-11-27.csv", True),
        ("s3://bucket/prefix/clinic/run_date=2026-11-27/a.csv", True),
        ("s3://bucket/prefix-evil/CLN01_2026-11-27.csv", False),
        ("s3://bucket/prefixCLN01_2026-11-27.csv", False),
        ("s3://bucket/prefix/../other/CLN01_2026-11-27.csv", False),
        ("s3://bucket/prefix/./CLN01_2026-11-27.csv", False),
        ("s3://bucket/prefix/", False),
        ("s3://other-bucket/prefix/CLN01_2026-11-27.csv", False),
        ("s3://bucket-evil/prefix/CLN01_2026-11-27.csv", False),
        ("/tmp/prefix/CLN01_2026-11-27.csv", False),
    ],
)
def test_s3_paths_inside_the_landing_prefix(path, inside):
    for landing in ("s3://bucket/prefix", "s3://bucket/prefix/"):
        assert events.under_landing(path, landing) is inside, (path, landing)


def test_whole_bucket_landing_zone():
    assert events.under_landing("s3://bucket/any/a.csv", "s3://bucket")
    assert events.under_landing("s3://bucket/a.csv", "s3://bucket/")
    assert not events.under_landing("s3://bucket2/a.csv", "s3://bucket")
    assert not events.under_landing("s3://bucket/../a.csv", "s3://bucket")


def test_local_paths_inside_the_landing_folder(tmp_path):
    land = tmp_path / "landing"
    inside = write_csv(land / "clinic" / "CLN01_2026-11-27.csv", [row()])
    outside = write_csv(tmp_path / "landing-evil" / "CLN01_2026-11-27.csv", [row()])
    (land / "link.csv").symlink_to(outside)
    assert events.under_landing(str(inside), str(land))
    assert events.under_landing(str(inside), str(land) + "/")
    assert not events.under_landing(str(outside), str(land))
    assert not events.under_landing(f"{land}/../landing-evil/CLN01_2026-11-27.csv", str(land))
    assert not events.under_landing(f"{land}/clinic/../clinic/CLN01_2026-11-27.csv", str(land))
    assert not events.under_landing(str(land / "link.csv"), str(land))  # a link out of it
    assert not events.under_landing(str(land), str(land))
    assert not events.under_landing(str(inside), "")
    assert not events.under_landing("s3://bucket/landing/a.csv", str(land))


def _event(*paths):
    return {"asset": [{"extra": {"payload": {"paths": list(paths)}}}]}


def test_events_outside_the_landing_zone_are_ignored_with_a_warning(tmp_path, caplog):
    land, out = tmp_path / "landing", str(tmp_path / "out")
    inside = str(write_csv(land / "CLN01_2026-11-27.csv", [row()]))
    evil = str(write_csv(tmp_path / "landing-evil" / "CLN02_2026-11-27.csv", [row()]))
    dotted = f"{land}/../landing-evil/CLN02_2026-11-27.csv"
    with caplog.at_level(logging.WARNING, logger="therapy_claims"):
        plan = events.plan_run(_event(inside, evil, dotted), str(land), out)
    assert plan == [{"run_date": "2026-11-27", "new": [inside], "inputs": [inside]}]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for p in (evil, dotted):
        assert any(p in w and "not inside the landing zone" in w for w in warned), warned

    caplog.clear()
    sqs = {"message_batch": [{"Body": _s3_body("prefix-evil/CLN01_2026-11-27.csv")}]}
    with caplog.at_level(logging.WARNING, logger="therapy_claims"):
        got = events.plan_run({"a": [{"extra": {"payload": sqs}}]}, "s3://bucket/prefix/", out)
    assert got == []
    assert "s3://bucket/prefix-evil/CLN01_2026-11-27.csv" in caplog.text


def test_events_without_a_configured_landing_zone_run_nothing(tmp_path):
    inside = str(write_csv(tmp_path / "landing" / "CLN01_2026-11-27.csv", [row()]))
    with pytest.raises(pipeline.RunError, match="no landing zone is configured"):
        events.plan_run(_event(inside), "", str(tmp_path / "out"))


def _s3_body(key: str, bucket: str = "bucket") -> str:
    import json

    rec = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }
    return json.dumps({"Records": [rec]})


# --------------------------------------------------------------------------- 4. reopen window


@pytest.fixture
def published(tmp_path):
    """An output whose newest published night is 2026-11-27 (run through the pipeline)."""
    land, out = tmp_path / "landing", str(tmp_path / "out")
    a = write_csv(land / "CLN01_2026-11-27.csv", [row()])
    (night,) = events.plan_nights([str(a)], out)
    events.process_night(night, out)
    assert events.newest_published(out) == date(2026, 11, 27)
    return land, out


def _old_file(land, rd: str, n: int = 2) -> str:
    return str(
        write_csv(
            land / f"CLN0{n}_{rd}.csv",
            [row(line_id=f"L{n}", encounter_id=f"E{n}", patient_id=f"P{n}", **LATER)],
        )
    )


def test_a_night_older_than_the_window_needs_reopen(published, monkeypatch):
    land, out = published
    monkeypatch.delenv(events.REOPEN_DAYS_ENV, raising=False)
    edge = _old_file(land, "2026-11-20")  # 7 days before: inside the default window
    assert [n["run_date"] for n in events.plan_nights([edge], out)] == ["2026-11-20"]
    assert "reopen" not in events.plan_nights([edge], out)[0]

    old = _old_file(land, "2026-11-19", n=3)  # 8 days before
    with pytest.raises(pipeline.RunError) as err:
        events.plan_nights([edge, old], out)
    msg = str(err.value)
    assert msg.startswith("night 2026-11-19 is 8 days before the newest published night 2026-11-27")
    assert "THERAPY_CLAIMS_REOPEN_DAYS=7" in msg and old in msg and "reopen=True" in msg
    assert edge not in msg
    with pytest.raises(pipeline.RunError, match="refusing to reopen"):
        events.plan_run(_event(old), str(land), out)

    plan = events.plan_nights([edge, old], out, reopen=True)
    assert plan == [
        {"run_date": "2026-11-19", "new": [old], "inputs": [old], "reopen": True},
        {"run_date": "2026-11-20", "new": [edge], "inputs": [edge]},
    ]
    assert events.plan_run(_event(old), str(land), out, reopen=True) == plan[:1]

    # the night is run with RunConfig.reopen set
    seen = []

    def fake_run(cfg, progress=None):
        seen.append((cfg.rd, cfg.reopen))
        return {"inputs": [], "lines_billed": 0, "claim_files": [], "balanced": True}

    monkeypatch.setattr(pipeline, "run", fake_run)
    for night in plan:
        events.process_night(night, out)
    assert seen == [("2026-11-19", True), ("2026-11-20", False)]


def test_the_window_comes_from_the_environment(published, monkeypatch):
    land, out = published
    three_days = _old_file(land, "2026-11-24")
    monkeypatch.setenv(events.REOPEN_DAYS_ENV, "2")
    with pytest.raises(pipeline.RunError, match="REOPEN_DAYS=2"):
        events.plan_nights([three_days], out)
    monkeypatch.setenv(events.REOPEN_DAYS_ENV, "3")
    assert events.plan_nights([three_days], out)[0]["run_date"] == "2026-11-24"
    monkeypatch.setenv(events.REOPEN_DAYS_ENV, "a week")
    with pytest.raises(pipeline.RunError, match="not a number of days"):
        events.plan_nights([three_days], out)


def test_the_window_is_measured_from_published_nights_never_the_clock(tmp_path):
    old = str(write_csv(tmp_path / "landing" / "CLN01_2019-01-01.csv", [row()]))
    out = str(tmp_path / "out")
    assert events.newest_published(out) is None
    assert events.plan_nights([old], out)[0]["run_date"] == "2019-01-01"


def test_the_nightly_dag_needs_reopen_for_an_old_night(published, monkeypatch):
    land, out = published
    monkeypatch.delenv(events.REOPEN_DAYS_ENV, raising=False)
    _old_file(land, "2026-11-10")
    cfg = pipeline.RunConfig(inputs=[str(land)], out=out, run_date=date(2026, 11, 10))
    with pytest.raises(pipeline.RunError, match="night 2026-11-10 is 17 days before"):
        pipeline.plan_new_partitions(cfg)
    cfg.reopen = True
    assert pipeline.plan_new_partitions(cfg) == [[str(land / "CLN02_2026-11-10.csv")]]
