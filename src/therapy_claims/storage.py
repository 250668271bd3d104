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

Every public operation fails with ``StorageError`` naming the operation and the path (disk
full, a read-only folder, S3 unreachable, a missing bucket, ...), so the command line can say
what and where in one line; a file that is not there is ``StorageNotFound``, which is also a
``FileNotFoundError`` for the callers that expect one.

Files with protected health information (the raw layer, claim files, the ledger, and all of
the hidden work folders ``.staging`` and ``.ledger``) are written owner-only on a local
output: files 0600, folders 0700, or ``THERAPY_CLAIMS_PHI_MODE`` (e.g. ``0640``; folders get
the matching search bits). The analysts' layers keep the umask's mode. On S3 nothing changes:
access there is the bucket policy's and encryption the bucket's (SSE).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit


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
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return code in _MISSING_CODES


class StorageError(RuntimeError):
    """A storage operation that failed: ``op`` (read, write, list, ...) on ``path``, and why.

    Its text is one line, ``"<op> <path>: <reason>"``. It pickles with its fields, so an error
    raised in a run's second process arrives whole in the first."""

    def __init__(self, op: str, path: str, reason: str) -> None:
        self.op, self.path = op, str(path)
        lines = str(reason).strip().splitlines()
        self.reason = lines[0].strip() if lines else "failed"
        super().__init__(f"{self.op} {self.path}: {self.reason}")

    def __str__(self) -> str:
        return f"{self.op} {self.path}: {self.reason}"

    def __reduce__(self):
        return (type(self), (self.op, self.path, self.reason))


class StorageNotFound(StorageError, FileNotFoundError):
    """The file (or S3 key) is not there: callers that expect ``FileNotFoundError`` get one."""


# the S3 error codes that mean "not there" (a key, or a HEAD on anything missing)
_MISSING_CODES = ("404", "NoSuchKey", "NotFound")
_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied",
    "403": "access denied",
    "InvalidAccessKeyId": "the AWS access key is not valid",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
    "ExpiredToken": "the AWS credentials have expired",
}


def _from_infrastructure(exc: BaseException) -> bool:
    """botocore's and urllib3's errors, recognised by module (neither is imported for this)."""
    return any(
        c.__module__.split(".")[0] in ("botocore", "urllib3", "s3transfer")
        for c in type(exc).__mro__
    )


def _endpoint(exc: BaseException) -> str:
    url = (getattr(exc, "kwargs", None) or {}).get("endpoint_url") or ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url or "the S3 endpoint"


def _reason(exc: BaseException) -> str:
    """Why ``exc`` happened, in a few words (one line)."""
    kind = type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror and not _from_infrastructure(exc):
        return exc.strerror
    if hasattr(exc, "response") and isinstance(exc.response, dict):  # botocore ClientError
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        return _REASONS.get(code) or f"{code}: {err.get('Message') or exc}"
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"):
        return f"could not connect to the endpoint {_endpoint(exc)}"
    if kind == "ConnectionClosedError":
        return f"the endpoint {_endpoint(exc)} closed the connection"
    if kind == "ReadTimeoutError":
        return f"timed out waiting for the endpoint {_endpoint(exc)}"
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return "no usable AWS credentials (see the AWS settings)"
    return str(exc) or kind


@contextmanager
def guard(op: str, path: str) -> Iterator[None]:
    """Turn an infrastructure failure inside the block into ``StorageError(op, path, ...)``
    (a missing file into ``StorageNotFound``). An inner ``StorageError`` passes unchanged:
    it names the operation that failed. For code that works on storage paths itself."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as exc:
        raise StorageNotFound(op, path, "no such file or folder") from exc
    except OSError as exc:  # disk full, read-only, permissions; pyarrow's ArrowIOError too
        raise StorageError(op, path, _reason(exc)) from exc
    except Exception as exc:
        if not _from_infrastructure(exc):
            raise
        if _missing(exc):
            raise StorageNotFound(op, path, "no such key") from exc
        raise StorageError(op, path, _reason(exc)) from exc


# --------------------------------------------------------------------------- PHI modes

PHI_MODE_ENV = "THERAPY_CLAIMS_PHI_MODE"
_PHI_KINDS = ("raw", "claims", "ledger")  # published layers holding PHI
_ANALYST_KINDS = ("scored", "exceptions", "reports", "manifest", "validation")


def is_private(path: str) -> bool:
    """Whether ``path`` holds PHI and is written owner-only: below ``raw``, ``claims`` or
    ``ledger`` followed by a ``run_date=`` folder, anything in ``.ledger``, and the staging
    area ``.staging`` except the staged analysts' layers (``.staging/run_date=D/scored``,
    ...): those are swapped into place as they are and keep the umask's mode (while staged,
    the owner-only ``.staging/run_date=D`` above them keeps others out)."""
    if is_s3(path):
        return False
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part == ".ledger":
            return True
        if part in _PHI_KINDS and i + 1 < len(parts) and parts[i + 1].startswith("run_date="):
            return True
        if part == ".staging":
            rest = parts[i + 1 :]
            return not (
                len(rest) >= 2 and rest[0].startswith("run_date=") and rest[1] in _ANALYST_KINDS
            )
    return False


def phi_modes(path: str = "") -> tuple[int, int]:
    """The (file, folder) modes of PHI: ``THERAPY_CLAIMS_PHI_MODE`` (octal, default 0600) and
    the same with a search bit wherever it can read (0600 -> 0700, 0640 -> 0750). ``path``
    is named in the error when the setting is not a mode."""
    raw = os.environ.get(PHI_MODE_ENV, "").strip()
    try:
        mode = int(raw, 8) if raw else 0o600
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise StorageError(
            "write",
            path,
            f"{PHI_MODE_ENV}={raw!r} is not an octal file mode the owner can read and write "
            "(e.g. 0600 or 0640)",
        )
    return mode, mode | (mode & 0o444) >> 2


def file_mode(path: str) -> int:
    """The mode a local file written at ``path`` gets: the PHI mode where ``is_private``, else
    what the umask leaves of 0666 (for code that writes a file itself, e.g. with Arrow)."""
    return phi_modes(path)[0] if is_private(path) else 0o666 & ~_umask()


def make_dirs(path: str) -> None:
    """Create the local folder ``path`` and its missing parents, each owner-only when it is
    private (``is_private``) and else as the umask says. Folders already there are left as
    they are. (``Path.mkdir(parents=True)`` would give every folder the umask's mode.)"""
    with guard("create folder", path):
        _make_dirs(path)


def _make_dirs(path: str) -> None:
    missing = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        private = is_private(str(d))
        mode = phi_modes(str(d))[1] if private else 0o777
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not d.is_dir():  # a file where a folder should be
                raise NotADirectoryError(
                    errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(d)
                ) from None
            continue  # made meanwhile (another thread or process)
        if private:
            os.chmod(d, mode)  # exactly: the umask may have taken bits off


def read_bytes(path: str) -> bytes:
    """The file's bytes; ``StorageNotFound`` (a ``FileNotFoundError``) if it is not there."""
    with guard("read", path):
        if is_s3(path):
            bucket, key = _split(path)
            return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(path).read_bytes()


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically: a reader sees the old content or the new, never a part. A local file
    gets the umask's mode (analysts read the outputs), or the PHI mode (``is_private``)."""
    with guard("write", path):
        if is_s3(path):
            bucket, key = _split(path)
            _s3().put_object(Bucket=bucket, Key=key, Body=data)
            return
        target = Path(path)
        mode = file_mode(path)
        _make_dirs(str(target.parent))
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)  # mkstemp makes 0600
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
    with guard("check", path):
        if is_s3(path):
            bucket, key = _split(path)
            if key and not key.endswith("/"):
                try:
                    with guard("check", path):
                        _s3().head_object(Bucket=bucket, Key=key)
                    return True
                except StorageNotFound:
                    pass
            return is_dir(path)
        return Path(path).exists()


def size(path: str) -> int:
    """A file's size in bytes; ``StorageNotFound`` if it is not there."""
    with guard("check", path):
        if is_s3(path):
            bucket, key = _split(path)
            return int(_s3().head_object(Bucket=bucket, Key=key)["ContentLength"])
        return Path(path).stat().st_size


def is_dir(path: str) -> bool:
    with guard("list", path):
        if is_s3(path):
            bucket, key = _split(path)
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            resp = _s3().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            return resp.get("KeyCount", 0) > 0
        return Path(path).is_dir()


def list_files(path: str, *, hidden: bool = False) -> list[str]:
    """Every file below ``path`` (recursively), sorted; hidden files and folders (``.x``) below
    ``path`` are skipped unless ``hidden``."""
    with guard("list", path):
        return _list_files(path, hidden)


def _list_files(path: str, hidden: bool) -> list[str]:
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
    """Remove a file or a folder and everything below it (nothing if it is not there)."""
    with guard("delete", path):
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
    with guard("replace", dest):
        _replace_tree(src, dest)


def _replace_tree(src: str, dest: str) -> None:
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
    _make_dirs(str(d.parent))
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
    """``table`` as a Parquet file (zstd); Arrow's own I/O errors fail as ``StorageError``."""
    write_tables([table], path)


def write_tables(tables, path: str) -> None:
    """The Arrow ``tables`` (an iterable, read once; the first's schema, the others the same)
    as one Parquet file (zstd), each a row group of its own or more: a caller can convert a
    large table a slice at a time. Arrow's own I/O errors fail as ``StorageError``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with guard("write", path):
        sink = pa.BufferOutputStream()
        writer = None
        for table in tables:
            if writer is None:
                # no pandas-specific metadata: any Parquet reader (DuckDB, pandas, Spark)
                # sees plain Arrow types
                writer = pq.ParquetWriter(sink, table.schema, compression="zstd")
            writer.write_table(table)
        if writer is None:
            raise ValueError("no table to write")
        writer.close()
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
    """A Parquet file as an Arrow table (``columns`` only, if given). A file that is not
    Parquet (e.g. cut short) fails as ``StorageError`` naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = read_bytes(path)
    with guard("read", path):
        try:
            return pq.read_table(pa.BufferReader(data), columns=columns)
        except pa.ArrowInvalid as exc:
            raise StorageError("read", path, f"not a readable Parquet file: {exc}") from exc


def read_parquet(path: str, columns: list[str] | None = None):
    return to_frame(read_table(path, columns))


def write_json(path: str, obj) -> None:
    write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")
    )


def read_json(path: str):
    data = read_bytes(path)
    try:
        return json.loads(data)
    except ValueError as exc:  # a file cut short, or not JSON
        raise StorageError("read", path, f"not valid JSON: {exc}") from exc
