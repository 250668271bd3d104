from __future__ import annotations

import os
import stat

import pandas as pd

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
