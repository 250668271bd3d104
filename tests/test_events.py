"""SQS / watcher payload parsing, run dates, the once-only registry and the reconcile run."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest
from factories import row, write_csv

from therapy_claims import events, pipeline, registry, storage


def _s3_body(*keys, bucket="landing", event="ObjectCreated:Put") -> str:
    return json.dumps(
        {
            "Records": [
                {"eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": k}}}
                for k in keys
            ]
        }
    )


def test_sqs_payload_paths_url_decoded_test_event_ignored():
    payload = {
        "status": "success",
        "message_batch": [
            {"MessageId": "1", "Body": json.dumps({"Event": "s3:TestEvent", "Bucket": "landing"})},
            {
                "MessageId": "2",
                "Body": _s3_body("run_date%3D2026-11-27/clinic+1.csv", "n/a%2Bb.jsonl"),
            },
            {"MessageId": "3", "Body": _s3_body("x/readme.txt", "x/.staging/y.csv")},
            {"MessageId": "4", "Body": _s3_body("gone.csv", event="ObjectRemoved:Delete")},
            {"MessageId": "5", "Body": "not json"},
            {  # S3 -> SNS -> SQS
                "MessageId": "6",
                "Body": json.dumps({"Type": "Notification", "Message": _s3_body("sns/c.parquet")}),
            },
        ],
    }
    assert events.paths_from_payload(payload) == [
        "s3://landing/n/a+b.jsonl",
        "s3://landing/run_date=2026-11-27/clinic 1.csv",
        "s3://landing/sns/c.parquet",
    ]


def test_paths_from_asset_events_merges_coalesced_events():
    ev = [
        SimpleNamespace(
            extra={
                "from_trigger": True,
                "payload": {"message_batch": [{"Body": _s3_body("a.csv")}]},
            }
        ),
        SimpleNamespace(
            extra={"from_trigger": True, "payload": {"paths": ["/land/b.csv", "/land/a.csv"]}}
        ),
        SimpleNamespace(
            extra={
                "from_trigger": True,
                "payload": {"message_batch": [{"Body": _s3_body("a.csv")}]},
            }
        ),
    ]
    assert events.paths_from_asset_events({"asset": ev}) == [
        "/land/a.csv",
        "/land/b.csv",
        "s3://landing/a.csv",
    ]
    assert events.paths_from_asset_events(None) == []


def test_run_date_from_path_then_content(tmp_path):
    assert events.run_date_for("s3://b/run_date=2026-11-27/x_2020-01-01.csv") == date(2026, 11, 27)
    assert events.run_date_for("s3://b/2026/encounters_CLN01_2026-11-26.csv") == date(2026, 11, 26)
    assert events.run_date_for("/l/CLN01_20261125.jsonl") == date(2026, 11, 25)
    p = write_csv(
        tmp_path / "export.csv",
        [row(date_of_service="2026-11-20"), row(line_id="L2", date_of_service="2026-11-22")],
    )
    assert events.run_date_for(str(p)) == date(2026, 11, 23)  # day after the latest visit
    bad = tmp_path / "empty.csv"
    bad.write_text("")
    with pytest.raises(pipeline.RunError, match="no run date"):
        events.run_date_for(str(bad))


def _landing(tmp_path):
    land = tmp_path / "landing"
    a = write_csv(land / "CLN01_2026-11-27.csv", [row()])
    later = {"start_time": "10:00", "end_time": "10:30"}  # no PROVIDER_OVERLAP with L1
    b = write_csv(
        land / "CLN02_2026-11-27.csv",
        [row(line_id="L2", encounter_id="E2", patient_id="P2", **later)],
    )
    return land, str(a), str(b)


def test_once_only_registry_and_late_file_adds_to_the_night(tmp_path):
    land, a, b = _landing(tmp_path)
    out = str(tmp_path / "out")
    plan = events.plan_nights([a], out)
    assert plan == [{"run_date": "2026-11-27", "new": [a], "inputs": [a]}]
    got = events.process_night(plan[0], out, run_id="r1")
    assert got["lines_billed"] == 1 and got["balanced"]
    # the same event again: a no-op
    assert events.plan_nights([a], out) == []
    # a late file for the same night: the night is re-run with both
    plan = events.plan_nights([a, b], out)
    assert plan == [{"run_date": "2026-11-27", "new": [b], "inputs": [a, b]}]
    assert events.process_night(plan[0], out)["lines_billed"] == 2
    assert registry.night_files(out, "2026-11-27") == {a: storage.sha256(a), b: storage.sha256(b)}
    # a changed file with the same name is a new version
    write_csv(
        land / "CLN02_2026-11-27.csv", [row(line_id="L3", encounter_id="E3", patient_id="P3")]
    )
    plan = events.plan_nights([b], out)
    assert plan == [{"run_date": "2026-11-27", "new": [b], "inputs": [a, b]}]


def test_failed_run_registers_nothing_and_reconcile_picks_it_up(tmp_path, monkeypatch):
    land, a, b = _landing(tmp_path)
    out = str(tmp_path / "out")
    real_run = pipeline.run

    def boom(cfg, progress=None):
        raise pipeline.RunError("worker lost")

    monkeypatch.setattr(pipeline, "run", boom)
    with pytest.raises(pipeline.RunError):
        events.process_night(events.plan_nights([a], out)[0], out)
    assert registry.night_files(out, "2026-11-27") == {}
    monkeypatch.setattr(pipeline, "run", real_run)
    # the SQS message is gone; the nightly reconcile lists the landing zone instead
    done = events.reconcile(str(land), out)
    assert [(d["run_date"], d["new_files"], d["lines_billed"]) for d in done] == [
        ("2026-11-27", 2, 2)
    ]
    assert events.reconcile(str(land), out) == []  # nothing left to do
    m = storage.read_json(str(tmp_path / "out" / "manifest" / "run_date=2026-11-27.json"))
    assert [i["path"] for i in m["inputs"]] == [a, b]


def test_reconcile_of_an_empty_landing_zone_is_a_no_op(tmp_path):
    assert events.plan_run(None, str(tmp_path / "nothing-yet"), str(tmp_path / "out")) == []
    assert events.plan_run({"a": []}, "", str(tmp_path / "out")) == []
