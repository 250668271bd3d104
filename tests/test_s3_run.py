"""A whole night with s3:// input and output on a real S3 API (moto's server on loopback):
the same outputs as the same night on local folders, and nothing left in staging."""

from __future__ import annotations

from nights import RD, outputs, write_night

from therapy_claims import cli, pipeline, storage


def test_cli_run_with_s3_input_and_output(bucket, tmp_path, capsys):
    write_night(f"s3://{bucket}/landing")
    write_night(str(tmp_path / "landing"))
    out = f"s3://{bucket}/out"
    args = ["run", "--input", f"s3://{bucket}/landing", "--out", out, "--run-date", RD.isoformat()]
    rc = cli.main(args)
    assert rc == 1  # notes.csv is rejected whole
    rc_local = cli.main(
        [
            "run",
            "--input",
            str(tmp_path / "landing"),
            "--out",
            str(tmp_path / "out"),
            "--run-date",
            RD.isoformat(),
        ]
    )
    assert rc_local == 1
    s3, local = outputs(out), outputs(str(tmp_path / "out"))
    assert s3["claims"] and s3["claims"] == local["claims"]  # byte-identical claim files
    assert s3 == local
    m = storage.read_json(f"{out}/manifest/run_date={RD}.json")
    assert m["balanced"] and m["rows_quarantined"] >= 2
    assert all(i["path"].startswith(f"s3://{bucket}/landing/") for i in m["inputs"])
    assert storage.list_files(f"{out}/.staging", hidden=True) == []
    for kind in ("raw", "scored", "exceptions", "claims", "validation", "reports"):
        assert storage.is_dir(f"{out}/{kind}/run_date={RD}"), kind
    # a re-run replaces the night: same claim files, no strays
    assert cli.main(args) == 1
    assert outputs(out)["claims"] == s3["claims"]


def test_run_in_two_processes_on_s3_gives_the_night_of_one_process(bucket, tmp_path):
    """``run`` with its second process (validate, then half of publish) on an S3 output, where
    there is no mapped Arrow copy of the raw layer and the second process reads the staged
    Parquet file: the same outputs as the stages one after another on local folders."""
    write_night(f"s3://{bucket}/landing", encounters=150)
    write_night(str(tmp_path / "landing"), encounters=150)
    runs = {
        f"s3://{bucket}/out": (f"s3://{bucket}/landing", True),
        str(tmp_path / "out"): (str(tmp_path / "landing"), False),
    }
    for out, (landing, parallel) in runs.items():
        cfg = pipeline.RunConfig(inputs=[landing], out=out, run_date=RD, max_file_bytes=20_000)
        pipeline.run(cfg, parallel=parallel)
    s3, local = (outputs(out) for out in runs)
    assert len(s3["claims"]) >= 4 and s3 == local
