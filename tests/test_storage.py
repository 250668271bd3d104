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
