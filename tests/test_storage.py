from __future__ import annotations

import errno
import os
import pickle
import stat

import pandas as pd
import pytest

from therapy_claims import storage


def test_write_is_atomic_and_readable(tmp_path):
    p = str(tmp_path / "a" / "b.txt")
    storage.write_bytes(p, b"one")
    storage.write_bytes(p, b"two")
    assert storage.read_bytes(p) == b"two"
    assert [f.name for f in (tmp_path / "a").iterdir()] == ["b.txt"]  # no temp files left
    um = os.umask(0)
    os.umask(um)
    # not mkstemp's private 0600: analysts read these files
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~um


def test_list_files_skips_hidden_and_recurses(tmp_path):
    for rel in ("x/1.csv", "x/sub/2.csv", "x/.staging/3.csv", "x/.hidden.csv"):
        storage.write_bytes(str(tmp_path / rel), b"")
    got = [os.path.relpath(p, tmp_path) for p in storage.list_files(str(tmp_path / "x"))]
    assert got == ["x/1.csv", "x/sub/2.csv"]


def test_replace_tree_swaps_whole_folder(tmp_path):
    old, new = tmp_path / "dest", tmp_path / "src"
    storage.write_bytes(str(old / "stale.x12"), b"old")
    storage.write_bytes(str(new / "fresh.x12"), b"new")
    storage.replace_tree(str(new), str(old))
    assert [p.name for p in old.iterdir()] == ["fresh.x12"] and not new.exists()
    assert not (tmp_path / ".dest.old").exists()


def test_parquet_round_trip_keeps_types(tmp_path):
    df = pd.DataFrame(
        {
            "s": pd.array(["a", None], dtype="string"),
            "i": pd.array([1, None], dtype="Int64"),
            "l": [["GP", "59"], []],
            "d": pd.to_datetime(["2026-11-20", None]),
        }
    )
    p = str(tmp_path / "t.parquet")
    storage.write_parquet(df, p)
    back = storage.read_parquet(p)
    assert str(back["s"].dtype) == "string" and str(back["i"].dtype) == "Int64"
    assert back["i"].isna().tolist() == [False, True] and list(back["l"][0]) == ["GP", "59"]
    # plain Parquet, readable without pandas metadata
    assert pd.read_parquet(p)["s"].tolist()[0] == "a"


def test_join_and_s3_paths():
    assert storage.is_s3("s3://b/p") and not storage.is_s3("/tmp/x")
    assert storage.join("s3://b/p/", "claims", "f.x12") == "s3://b/p/claims/f.x12"
    assert storage.name("s3://b/p/f.x12") == "f.x12"


# --------------------------------------------------------------------------- on a real S3 API


def test_s3_bytes_json_parquet_round_trip(bucket):
    base = f"s3://{bucket}/out"
    storage.write_bytes(storage.join(base, "a", "b.txt"), b"one")
    storage.write_bytes(storage.join(base, "a", "b.txt"), b"two")
    assert storage.read_bytes(f"{base}/a/b.txt") == b"two"
    storage.write_json(f"{base}/m.json", {"x": 1})
    assert storage.read_json(f"{base}/m.json") == {"x": 1}
    df = pd.DataFrame(
        {"s": pd.array(["a", None], dtype="string"), "i": pd.array([1, None], dtype="Int64")}
    )
    storage.write_parquet(df, f"{base}/t.parquet")
    back = storage.read_parquet(f"{base}/t.parquet")
    assert str(back["s"].dtype) == "string" and back["i"].isna().tolist() == [False, True]
    assert storage.sha256(f"{base}/a/b.txt") == __import__("hashlib").sha256(b"two").hexdigest()


def test_s3_exists_is_dir_and_missing(bucket):
    base = f"s3://{bucket}/p"
    storage.write_bytes(f"{base}/raw/x.parquet", b"1")
    storage.write_bytes(f"{base}/raw2/y.parquet", b"1")
    assert storage.exists(f"{base}/raw/x.parquet") and storage.exists(f"{base}/raw")
    assert storage.is_dir(f"{base}/raw") and not storage.is_dir(f"{base}/raw/x.parquet")
    assert not storage.exists(f"{base}/ra") and not storage.exists(f"{base}/raw/x")
    assert storage.is_dir(f"s3://{bucket}") and storage.is_dir(f"s3://{bucket}/")
    try:
        storage.read_bytes(f"{base}/nope.csv")
    except FileNotFoundError as exc:
        assert "nope.csv" in str(exc)
    else:
        raise AssertionError("a missing key must raise FileNotFoundError")


def test_s3_list_files_skips_hidden_and_recurses(bucket):
    for rel in ("x/1.csv", "x/sub/2.csv", "x/.staging/3.csv", "x/.hidden.csv", "xy/4.csv"):
        storage.write_bytes(f"s3://{bucket}/{rel}", b"")
    assert storage.list_files(f"s3://{bucket}/x") == [
        f"s3://{bucket}/x/1.csv",
        f"s3://{bucket}/x/sub/2.csv",
    ]
    assert len(storage.list_files(f"s3://{bucket}/x", hidden=True)) == 4
    # a single object lists as itself, like a local file
    assert storage.list_files(f"s3://{bucket}/x/1.csv") == [f"s3://{bucket}/x/1.csv"]


def test_s3_replace_tree_and_delete_tree(bucket):
    old, new = f"s3://{bucket}/out/claims", f"s3://{bucket}/out/.staging/claims"
    storage.write_bytes(f"{old}/stale.x12", b"old")
    storage.write_bytes(f"{old}/keep.x12", b"old")
    storage.write_bytes(f"{new}/keep.x12", b"new")
    storage.write_bytes(f"{new}/fresh.x12", b"new")
    storage.replace_tree(new, old)
    assert storage.list_files(old) == [f"{old}/fresh.x12", f"{old}/keep.x12"]
    assert storage.read_bytes(f"{old}/keep.x12") == b"new" and not storage.exists(new)
    storage.delete_tree(f"s3://{bucket}/out")
    assert storage.list_files(f"s3://{bucket}/out", hidden=True) == []


def test_s3_settings_from_an_airflow_connection(bucket, moto_server, monkeypatch):
    """THERAPY_CLAIMS_AWS_CONN_ID: endpoint, region and keys from an Airflow connection."""
    import json

    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_server},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TC_S3", json.dumps(conn))
    monkeypatch.setenv("THERAPY_CLAIMS_AWS_CONN_ID", "tc_s3")
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the connection knows the endpoint now
    client = storage._s3()
    assert client.meta.endpoint_url == moto_server
    storage.write_bytes(f"s3://{bucket}/via-conn.txt", b"ok")
    assert storage.read_bytes(f"s3://{bucket}/via-conn.txt") == b"ok"


# --------------------------------------------------------------------------- failures


def test_a_failed_local_write_names_the_operation_and_path(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    target = str(tmp_path / "afile" / "x.json")  # a folder that is a file
    try:
        storage.write_json(target, {"a": 1})
    except storage.StorageError as exc:
        assert (exc.op, exc.path) == ("write", target)
        assert str(exc) == f"write {target}: {os.strerror(errno.ENOTDIR)}"
    else:
        raise AssertionError("writing below a file must fail")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]  # no temporary file left


def test_a_missing_file_is_still_a_file_not_found_error(tmp_path):
    missing = str(tmp_path / "nope.parquet")
    for op in (storage.read_bytes, storage.read_table, storage.read_json, storage.size):
        try:
            op(missing)
        except FileNotFoundError as exc:
            assert isinstance(exc, storage.StorageNotFound)
            assert exc.path == missing and missing in str(exc)
        else:
            raise AssertionError(f"{op.__name__} of a missing file must fail")
    assert not storage.exists(missing) and storage.list_files(missing) == []
    storage.delete_tree(missing)  # nothing there: nothing to do


def test_a_file_that_is_not_what_it_says_names_the_path(tmp_path):
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(b"PAR1 cut short")
    try:
        storage.read_table(str(bad))
    except storage.StorageError as exc:
        assert str(exc).startswith(f"read {bad}: not a readable Parquet file")
    else:
        raise AssertionError("a broken Parquet file must fail")
    (tmp_path / "m.json").write_bytes(b'{"run_date": ')
    try:
        storage.read_json(str(tmp_path / "m.json"))
    except storage.StorageError as exc:
        assert str(exc).startswith(f"read {tmp_path / 'm.json'}: not valid JSON")
    else:
        raise AssertionError("a JSON file cut short must fail")


def test_storage_error_is_one_line_and_pickles_whole():
    exc = storage.StorageError("write", "/o/x", "disk full\nmore detail")
    assert str(exc) == "write /o/x: disk full"
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is storage.StorageError and str(back) == "write /o/x: disk full"
    nf = pickle.loads(pickle.dumps(storage.StorageNotFound("read", "/o/y", "no such file")))
    assert isinstance(nf, FileNotFoundError) and (nf.op, nf.path) == ("read", "/o/y")


def test_s3_missing_bucket_and_key(moto_server):
    missing = "s3://tc-no-such-bucket/x/a.json"
    for op, call in (
        ("read", lambda: storage.read_bytes(missing)),
        ("write", lambda: storage.write_bytes(missing, b"1")),
        ("list", lambda: storage.list_files("s3://tc-no-such-bucket/x")),
    ):
        try:
            call()
        except storage.StorageError as exc:
            assert not isinstance(exc, FileNotFoundError)  # not "no such file": no bucket
            assert exc.op == op and str(exc).endswith(": the bucket does not exist"), str(exc)
        else:
            raise AssertionError(f"{op} in a missing bucket must fail")


def test_s3_unreachable_endpoint(bucket, monkeypatch):
    from s3_server import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries: the failure is what is tested
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    path = f"s3://{bucket}/k.json"
    try:
        storage.read_json(path)
    except storage.StorageError as exc:
        assert str(exc) == f"read {path}: could not connect to the endpoint {closed}"
    else:
        raise AssertionError("an unreachable endpoint must fail")


# --------------------------------------------------------------------------- PHI modes


@pytest.mark.parametrize(
    "path, private",
    [
        ("/o/raw/run_date=2026-11-28/raw.parquet", True),
        ("/o/raw/run_date=2026-11-28", True),
        ("/o/claims/run_date=2026-11-28/A_837P_1.x12", True),
        ("/o/ledger/run_date=2026-11-28/ledger.parquet", True),
        ("/o/.ledger/ledger.sqlite", True),
        ("/o/.ledger", True),
        ("/o/.staging", True),
        ("/o/.staging/run_date=2026-11-28", True),
        ("/o/.staging/run_date=2026-11-28/work/plan.json", True),
        ("/o/.staging/run_date=2026-11-28/raw/raw.parquet", True),
        ("/o/.staging/run_date=2026-11-28/claims/A.x12", True),
        ("/o/.staging/run_date=2026-11-28/scored/scored.parquet", False),
        ("/o/.staging/run_date=2026-11-28/validation/data_docs/index.html", False),
        ("/o/raw", False),  # the layer's folder holds only the nights' folders
        ("/o/scored/run_date=2026-11-28/scored.parquet", False),
        ("/o/manifest/run_date=2026-11-28.json", False),
        ("/data/raw/o/scored/run_date=2026-11-28/scored.parquet", False),
        ("s3://b/o/raw/run_date=2026-11-28/raw.parquet", False),  # bucket policy's business
    ],
)
def test_is_private(path, private):
    assert storage.is_private(path) is private


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_private_writes_are_owner_only(tmp_path, umask_022, monkeypatch):
    monkeypatch.delenv("THERAPY_CLAIMS_PHI_MODE", raising=False)
    staging = tmp_path / ".staging" / "run_date=2026-11-28"
    storage.write_bytes(str(staging / "work" / "plan.json"), b"{}")
    storage.write_bytes(str(staging / "scored" / "scored.parquet"), b"x")
    storage.write_bytes(str(tmp_path / ".ledger" / "ledger.sqlite"), b"x")
    assert _mode(staging / "work" / "plan.json") == 0o600
    for d in (tmp_path / ".staging", staging, staging / "work", tmp_path / ".ledger"):
        assert _mode(d) == 0o700, d
    # a staged analysts' layer is swapped into place as it is: the umask's mode
    assert _mode(staging / "scored") == 0o755
    assert _mode(staging / "scored" / "scored.parquet") == 0o644
    storage.make_dirs(str(tmp_path / "raw" / "run_date=2026-11-28" / "x"))
    assert _mode(tmp_path / "raw") == 0o755
    assert _mode(tmp_path / "raw" / "run_date=2026-11-28") == 0o700
    # for files written by other means (e.g. Arrow's own writer)
    assert storage.file_mode(str(staging / "work" / "raw.arrow")) == 0o600
    assert (
        storage.file_mode(str(tmp_path / "scored" / "run_date=2026-11-28" / "s.parquet")) == 0o644
    )


def test_phi_mode_setting(tmp_path, umask_022, monkeypatch):
    monkeypatch.setenv("THERAPY_CLAIMS_PHI_MODE", "0640")
    f = tmp_path / "claims" / "run_date=2026-11-28" / "a.x12"
    storage.write_bytes(str(f), b"ISA")
    assert _mode(f) == 0o640 and _mode(f.parent) == 0o750
    monkeypatch.setenv("THERAPY_CLAIMS_PHI_MODE", "rw-------")
    try:
        storage.write_bytes(str(f), b"ISA")
    except storage.StorageError as exc:
        assert str(exc).startswith(f"write {f}: THERAPY_CLAIMS_PHI_MODE='rw-------' is not")
    else:
        raise AssertionError("a PHI mode that is not octal must fail")
    monkeypatch.setenv("THERAPY_CLAIMS_PHI_MODE", "0440")  # the owner could not write it
    with pytest.raises(storage.StorageError):
        storage.write_bytes(str(f), b"ISA")
