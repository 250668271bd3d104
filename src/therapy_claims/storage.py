"""One small storage interface over a local folder and ``s3://bucket/prefix`` (boto3).

Nothing else in the package cares which one a path is. Local writes go to a temporary file in
the same folder and are renamed into place, so no reader sees a partial file. On S3 a PUT is
already all-or-nothing; whole-run atomicity there comes from writing the manifest last.
S3 endpoint, region and credentials come from the standard AWS settings
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ...), so MinIO, LocalStack or moto work too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def is_s3(path: str) -> bool:
    return str(path).startswith("s3://")


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_s3(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def name(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def _split(path: str) -> tuple[str, str]:
    rest = path[len("s3://") :]
    bucket, _, key = rest.partition("/")
    return bucket, key


@lru_cache(maxsize=1)
def _s3():
    import boto3

    return boto3.client("s3")


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        bucket, key = _split(path)
        try:
            return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except _s3().exceptions.NoSuchKey as exc:
            raise FileNotFoundError(path) from exc
    return Path(path).read_bytes()


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically: a reader sees the old content or the new, never a part."""
    if is_s3(path):
        bucket, key = _split(path)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are for analysts too
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def exists(path: str) -> bool:
    if is_s3(path):
        bucket, key = _split(path)
        resp = _s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return resp.get("KeyCount", 0) > 0
    return Path(path).exists()


def is_dir(path: str) -> bool:
    if is_s3(path):
        bucket, key = _split(path)
        resp = _s3().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return resp.get("KeyCount", 0) > 0
    return Path(path).is_dir()


def list_files(path: str) -> list[str]:
    """Every file below ``path`` (recursively), sorted; hidden files (``.x``) are skipped."""
    if is_s3(path):
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        out = []
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        return sorted(p for p in out if not name(p).startswith("."))
    root = Path(path)
    if root.is_file():
        return [str(root)]
    return sorted(
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def delete_tree(path: str) -> None:
    if is_s3(path):
        bucket, key = _split(path)
        keys = [f[len(f"s3://{bucket}/") :] for f in list_files(path)]
        for i in range(0, len(keys), 1000):
            _s3().delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
            )
        return
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def replace_tree(src: str, dest: str) -> None:
    """Make ``dest`` hold exactly what ``src`` holds, then remove ``src``.

    Local: ``dest`` is swapped in with renames, so readers see the old tree or the new one.
    S3: the new objects are copied over, then objects of the old tree not in the new are removed.
    """
    if is_s3(dest):
        s_bucket, s_key = _split(src)
        d_bucket, d_key = _split(dest)
        new = {f[len(src.rstrip("/")) + 1 :] for f in list_files(src)}
        for rel in sorted(new):
            _s3().copy_object(
                Bucket=d_bucket,
                Key=f"{d_key.rstrip('/')}/{rel}",
                CopySource={"Bucket": s_bucket, "Key": f"{s_key.rstrip('/')}/{rel}"},
            )
        for f in list_files(dest):
            if f[len(dest.rstrip("/")) + 1 :] not in new:
                delete_tree(f)
        delete_tree(src)
        return
    d = Path(dest)
    d.parent.mkdir(parents=True, exist_ok=True)
    old = d.with_name(f".{d.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if d.exists():
        os.replace(d, old)
    os.replace(src, d)
    if old.exists():
        shutil.rmtree(old)


def local_path(path: str) -> Path:
    """A local path for tools that need a real file system (e.g. the GX file context)."""
    if is_s3(path):
        raise ValueError(f"{path} is not local")
    return Path(path)


def write_parquet(df, path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(df, preserve_index=False)
    # no pandas-specific metadata: any Parquet reader (DuckDB, pandas, Spark) sees plain Arrow types
    pq.write_table(table.replace_schema_metadata(None), sink, compression="zstd")
    write_bytes(path, sink.getvalue().to_pybytes())


def read_parquet(path: str, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(read_bytes(path)), columns=columns)
    import pandas as pd

    mapping = {
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
        pa.int64(): pd.Int64Dtype(),
    }
    return table.to_pandas(types_mapper=mapping.get, ignore_metadata=True)


def write_json(path: str, obj) -> None:
    import json

    write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    )


def read_json(path: str):
    import json

    return json.loads(read_bytes(path))
