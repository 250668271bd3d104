"""SQS / watcher payload parsing, run dates, the once-only registry and the reconcile run."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from factories import row, write_csv

from therapy_claims import acks, events, lock, pipeline, registry, storage

DATA = Path(__file__).parent / "data"
ACK_999 = DATA / "responses" / "999_accepted.x12"
CLAIMS_837 = DATA / "x12_samples" / "p_self.x12"


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
    # every visible file, whatever its name (``route`` sorts them by content); hidden ones not
    assert events.paths_from_payload(payload) == [
        "s3://landing/n/a+b.jsonl",
        "s3://landing/run_date=2026-11-27/clinic 1.csv",
        "s3://landing/sns/c.parquet",
        "s3://landing/x/readme.txt",
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


# ---- response files and extracts, told apart by content -------------------------------------


def _mixed_landing(land: Path) -> dict[str, Path]:
    """A landing zone whose names lie: a 999 named like an extract, an extract named like X12,
    an 837 named like a 999, notes, a hidden file, and a plain extract."""
    files = {
        "ack": land / "extract_2026-12-01.csv",  # a 999
        "extract_x12": land / "CLN01_2026-12-01.x12",  # an extract (CSV)
        "claims": land / "from_payer_2026-12-01.999",  # our own 837 copied back
        "notes": land / "notes_2026-12-01.txt",
        "hidden": land / ".partial_2026-12-01.csv",
    }
    land.mkdir(parents=True, exist_ok=True)
    shutil.copy(ACK_999, files["ack"])
    write_csv(land / "tmp.csv", [row()]).rename(files["extract_x12"])
    shutil.copy(CLAIMS_837, files["claims"])
    files["notes"].write_text("call the clearinghouse about batch 12\n")
    files["hidden"].write_text("line_id\n")
    return files


def _events(paths: list[str]) -> dict:
    """A run's triggering_asset_events as the local watcher's events make them."""
    return {"folder": [SimpleNamespace(extra={"payload": {"paths": paths}})]}


def test_file_kind_by_content_not_by_name(tmp_path):
    f = _mixed_landing(tmp_path / "landing")
    assert events.file_kind(str(f["ack"])) == "999"
    assert events.file_kind(str(f["extract_x12"])) == "extract"
    assert events.file_kind(str(f["claims"])) == "837"
    assert events.file_kind(str(f["notes"])) is None
    shutil.copy(DATA / "responses" / "835_paid.x12", tmp_path / "remit.json")
    assert events.file_kind(str(tmp_path / "remit.json")) == "835"
    # an extract's extension keeps a broken extract an extract (the night rejects it, named)
    (tmp_path / "broken.csv").write_text("not,the,columns\n1,2,3\n")
    assert events.file_kind(str(tmp_path / "broken.csv")) == "extract"
    # X12 of a kind we do not take is no extract, whatever its name
    isa_277 = ACK_999.read_text().replace("*FA*", "*HN*").replace("ST*999*", "ST*277*")
    (tmp_path / "status.csv").write_text(isa_277)
    assert events.file_kind(str(tmp_path / "status.csv")) is None
    with pytest.raises(FileNotFoundError):
        events.file_kind(str(tmp_path / "gone.csv"))


def test_events_route_a_999_named_like_an_extract_to_acks_and_an_x12_extract_to_the_night(
    tmp_path, caplog
):
    land = tmp_path / "landing"
    f = _mixed_landing(land)
    out = tmp_path / "out"
    named = _events([str(p) for p in f.values()])
    caplog.set_level(logging.INFO, logger="therapy_claims")
    plan = events.plan_run(named, str(land), str(out))
    x12 = str(f["extract_x12"])
    assert plan == [{"run_date": "2026-12-01", "new": [x12], "inputs": [x12]}]
    # ignored files are named by their file name only
    ignored = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignoring ")]
    assert sorted(ignored) == [
        "ignoring from_payer_2026-12-01.999: an 837 claim file, not an extract or a response",
        "ignoring notes_2026-12-01.txt: neither an extract nor a 999, 277CA or 835 file",
    ]
    done = events.apply_landed_responses(named, str(land), str(out), run_id="event-run-1")
    assert done["files"] == {"applied": 1, "rejected": 0, "skipped": 0, "duplicate": 0}
    assert done["rows"]["acknowledgments"] >= 1 and done["run_id"] == "event-run-1"
    (run,) = acks.committed_runs(str(out))
    files = storage.read_table(storage.join(run[2], "files.parquet")).to_pylist()
    assert [(x["path"], x["kind"], x["status"]) for x in files] == [
        (str(f["ack"]), "999", "applied")
    ]
    # the night reads the .x12 extract as the CSV it is
    night = events.process_night(plan[0], str(out), run_id="event-run-1")
    assert (night["files"], night["lines_billed"]) == (1, 1)
    # the same events again: both no-ops (registry, applied hashes), no empty acks folder
    assert events.plan_run(named, str(land), str(out)) == []
    assert events.apply_landed_responses(named, str(land), str(out)) == {}
    assert len(acks.committed_runs(str(out))) == 1
    assert events.plan_run(None, str(land), str(out)) == []  # the reconcile finds nothing new
    assert events.apply_landed_responses(None, str(land), str(out)) == {}


def test_the_reconcile_sends_a_response_file_the_events_missed_to_acks(tmp_path):
    land = tmp_path / "landing"
    f = _mixed_landing(land)
    out = tmp_path / "out"
    done = events.apply_landed_responses(None, str(land), str(out), run_id="reconcile")
    assert done["files"]["applied"] == 1
    plan = events.plan_run(None, str(land), str(out))
    assert [n["inputs"] for n in plan] == [[str(f["extract_x12"])]]


def test_a_rejected_response_file_fails_after_it_is_recorded(tmp_path):
    land = tmp_path / "landing"
    land.mkdir()
    text = (DATA / "responses" / "835_paid.x12").read_text()
    (land / "remit_2026-12-01.x12").write_text(text[: len(text) // 2])  # cut: no SE/GE/IEA
    shutil.copy(ACK_999, land / "ack.x12")
    out = tmp_path / "out"
    with pytest.raises(events.ResponsesRejected) as err:
        events.apply_landed_responses(None, str(land), str(out), run_id="r1")
    assert isinstance(err.value, pipeline.RunError)
    message = str(err.value)
    assert message.startswith("1 response file(s) rejected (recorded in ")
    assert "remit_2026-12-01.x12: " in message and "\n" not in message
    (run,) = acks.committed_runs(str(out))
    status = {
        Path(x["path"]).name: x["status"]
        for x in storage.read_table(storage.join(run[2], "files.parquet")).to_pylist()
    }
    assert status == {"ack.x12": "applied", "remit_2026-12-01.x12": "rejected"}


def test_the_nightly_listing_takes_extracts_by_content(tmp_path):
    land = tmp_path / "landing"
    f = _mixed_landing(land)
    cfg = pipeline.RunConfig(
        inputs=[str(land)], out=str(tmp_path / "out"), run_date=date(2026, 12, 1)
    )
    assert events.nightly_inputs(cfg) == [str(f["extract_x12"])]


def test_events_on_s3_route_by_content(bucket, tmp_path):
    land, out = f"s3://{bucket}/landing", f"s3://{bucket}/out"
    local = _mixed_landing(tmp_path / "landing")
    keys = {k: f"{land}/{p.name}" for k, p in local.items() if k != "hidden"}
    for k, url in keys.items():
        storage.write_bytes(url, local[k].read_bytes())
    storage.write_bytes(f"{land}/empty.txt", b"")  # an empty object has no byte range
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": u.split("/", 3)[3]}},
                }
                for u in [*keys.values(), f"{land}/empty.txt"]
            ]
        }
    )
    named = {"sqs": [SimpleNamespace(extra={"payload": {"message_batch": [{"Body": body}]}})]}
    assert events.file_kind(f"{land}/empty.txt") is None
    plan = events.plan_run(named, land, out)
    assert plan == [
        {"run_date": "2026-12-01", "new": [keys["extract_x12"]], "inputs": [keys["extract_x12"]]}
    ]
    done = events.apply_landed_responses(named, land, out, run_id="sqs-run")
    assert done["files"]["applied"] == 1
    (run,) = acks.committed_runs(out)
    files = storage.read_table(storage.join(run[2], "files.parquet")).to_pylist()
    assert [(x["path"], x["status"]) for x in files] == [(keys["ack"], "applied")]
    assert lock.holder(out) is None  # the S3 lock was taken and let go
