"""One small storage interface over a local folder and ``s3://bucket/prefix`` (boto3).

Nothing else in the package cares which one a path is. Local writes go to a temporary file in
the same folder and are renamed into place, so no reader sees a partial file. On S3 a PUT is
already all-or-nothing; whole-run atomicity there comes from the staging prefix, the swap in
``publish`` and the manifest written last (a reader trusts a night only once its manifest is
there; ``publish`` removes the night's old manifest on S3 before swapping).

S3 endpoint, region and credentials come from the standard AWS settings (``AWS_ENDPOINT_URL``
or ``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ...,
profiles, IAM roles), so MinIO, LocalStack or moto work too. Inside Airflow, set
``THERAPY_CLAIMS_AWS_CONN_ID`` (e.g. ``aws_default``) to take them from an Airflow connection
instead (login/password, extras ``region_name`` and ``endpoint_url``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux): setting
    it to read it, even back at once, would race other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


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


_SETTINGS = (
    "THERAPY_CLAIMS_AWS_CONN_ID",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
)


def _s3():
    """The S3 client for the current settings (a new one when they change, e.g. in tests)."""
    return _client(tuple(os.environ.get(k) for k in _SETTINGS))


@lru_cache(maxsize=4)
def _client(settings: tuple):
    conn_id = settings[0]
    if conn_id:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=conn_id).get_conn()
    import boto3

    return boto3.client("s3")


def _missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        bucket, key = _split(path)
        from botocore.exceptions import ClientError

        try:
            return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(path) from exc
            raise
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
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for analysts too
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def exists(path: str) -> bool:
    """A file, or a folder (on S3: a prefix ``path/`` holding at least one object)."""
    if is_s3(path):
        from botocore.exceptions import ClientError

        bucket, key = _split(path)
        if key and not key.endswith("/"):
            try:
                _s3().head_object(Bucket=bucket, Key=key)
                return True
            except ClientError as exc:
                if not _missing(exc):
                    raise
        return is_dir(path)
    return Path(path).exists()


def size(path: str) -> int:
    """A file's size in bytes."""
    if is_s3(path):
        bucket, key = _split(path)
        return int(_s3().head_object(Bucket=bucket, Key=key)["ContentLength"])
    return Path(path).stat().st_size


def is_dir(path: str) -> bool:
    if is_s3(path):
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        resp = _s3().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return resp.get("KeyCount", 0) > 0
    return Path(path).is_dir()


def list_files(path: str, *, hidden: bool = False) -> list[str]:
    """Every file below ``path`` (recursively), sorted; hidden files and folders (``.x``) below
    ``path`` are skipped unless ``hidden``."""
    if is_s3(path):
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        out = []
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [
                f"s3://{bucket}/{o['Key']}"
                for o in page.get("Contents", [])
                if not o["Key"].endswith("/")  # "folder" marker objects
            ]
        if not out and key and exists(path):
            return [path]  # a single object
        rel = len(f"s3://{bucket}/{prefix}")
        if hidden:
            return sorted(out)
        return sorted(p for p in out if not any(s.startswith(".") for s in p[rel:].split("/")))
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
        keys = [f[len(f"s3://{bucket}/") :] for f in list_files(path, hidden=True)]
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
        new = {f[len(src.rstrip("/")) + 1 :] for f in list_files(src, hidden=True)}
        for rel in sorted(new):
            _s3().copy_object(
                Bucket=d_bucket,
                Key=f"{d_key.rstrip('/')}/{rel}",
                CopySource={"Bucket": s_bucket, "Key": f"{s_key.rstrip('/')}/{rel}"},
            )
        for f in list_files(dest, hidden=True):
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


def sha256(path: str) -> str:
    import hashlib

    return hashlib.sha256(read_bytes(path)).hexdigest()


def local_path(path: str) -> Path:
    """A local path for tools that need a real file system (e.g. the GX file context)."""
    if is_s3(path):
        raise ValueError(f"{path} is not local")
    return Path(path)


def to_table(df):
    """A DataFrame as the Arrow table ``write_parquet`` stores (no pandas metadata, no index)."""
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)


def write_table(table, path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # no pandas-specific metadata: any Parquet reader (DuckDB, pandas, Spark) sees plain Arrow types
    pq.write_table(table, sink, compression="zstd")
    write_bytes(path, sink.getvalue().to_pybytes())


def write_parquet(df, path: str) -> None:
    write_table(to_table(df), path)


def text_array(s):
    """A text Series as one Arrow ``string`` array (Arrow-backed text is not copied)."""
    import pyarrow as pa

    arr = pa.array(s.array, type=pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def to_frame(table, columns: list[str] | None = None):
    """An Arrow table as the DataFrame ``read_parquet`` gives: text as pandas' ``string``,
    64-bit integers as nullable ``Int64``."""
    import pandas as pd
    import pyarrow as pa

    if columns is not None:
        table = table.select(columns)
    mapping = {
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
        pa.int64(): pd.Int64Dtype(),
    }
    return table.to_pandas(types_mapper=mapping.get, ignore_metadata=True)


def read_table(path: str, columns: list[str] | None = None):
    """A Parquet file as an Arrow table (``columns`` only, if given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(read_bytes(path)), columns=columns)


def read_parquet(path: str, columns: list[str] | None = None):
    return to_frame(read_table(path, columns))


def write_json(path: str, obj) -> None:
    import json

    write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    )


def read_json(path: str):
    import json

    return json.loads(read_bytes(path))
