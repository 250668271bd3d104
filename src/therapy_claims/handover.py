"""How the stages hand their staged tables to each other: the ``Handover`` a stage is given.

Every stage writes what it makes under the night's staging area and reads what an earlier
stage made from there. ``Handover`` does exactly that with files: each task of the DAG runs
in its own process. ``InMemoryHandover`` (one process, the CLI's ``run``) keeps each staged
table as the Arrow table it was written from, so a later stage gets it from memory instead of
decoding the Parquet file again; the files are written meanwhile by a background thread, and
anything that needs the file itself waits for that write first. Both give a stage the same
tables, so a night's outputs do not depend on which one ran it.

A published layer's file (``<layer>.parquet``: raw, scored, exceptions, ...) is the layer's
published form (``schemas.published``: SQL types, no ``run_date`` column): both write it
so, and a stage reading one back gets the internal form (``schemas.internal``) it computed
with, from memory or from the file, so the stages' logic never sees the published types.

A stage never keeps hand-over state of its own; it is all in the object it was given.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import pyarrow as pa

from therapy_claims import schemas, storage, tuning
from therapy_claims.config import RunError


class Handover:
    """Staged tables as files (Parquet) in the staging area."""

    in_memory = False

    def write_frame(self, df: pd.DataFrame, path: str) -> None:
        self.write_table(storage.to_table(df), path)

    def write_table(self, table: pa.Table, path: str) -> None:
        write_file(table, path)

    def read_table(
        self, path: str, columns: list[str] | None = None, *, last: bool = False
    ) -> pa.Table:
        """The staged table at ``path`` (``columns`` only, if given); ``last``: no later stage
        reads it from memory."""
        return read_file(path, columns)

    def read_frame(
        self, path: str, columns: list[str] | None = None, *, last: bool = False
    ) -> pd.DataFrame:
        return storage.to_frame(self.read_table(path, columns, last=last))

    def columns(self, path: str) -> list[str]:
        """The staged table's column names (a layer's: of its internal form)."""
        import pyarrow.parquet as pq

        if storage.is_s3(path):
            schema = pq.read_schema(pa.BufferReader(storage.read_bytes(path)))
        else:
            schema = pq.read_schema(path)
        layer = schemas.layer_of(path)
        if layer is None:
            return schema.names
        return schemas.internal(schema.empty_table(), layer).column_names

    def flush(self, path: str | None = None) -> None:
        """Wait for writes still in progress (of ``path`` only, if given)."""

    def require(self, path: str, stage: str) -> None:
        """``path`` is there (or being written): else the stage that makes it has not run."""
        if not storage.exists(path):
            raise RunError(f"{path} is missing: run the '{stage}' stage for this run date first")


class InMemoryHandover(Handover):
    """Staged tables kept in memory within one process; the files written in the background.

    Use as a context manager: leaving it waits for every write (a failed write raises there).
    """

    in_memory = True

    def __init__(self) -> None:
        self._tables: dict[str, pa.Table] = {}
        self._writes: dict[str, Future] = {}
        self._writer = ThreadPoolExecutor(
            1, thread_name_prefix="tc-write", initializer=tuning.background_thread
        )

    def __enter__(self) -> InMemoryHandover:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._writer.shutdown(wait=True, cancel_futures=True)
            self._tables.clear()
            self._writes.clear()

    def background(self, fn, *args) -> Future:
        """Run ``fn(*args)`` on the background writer's thread (its priority, its order)."""
        return self._writer.submit(fn, *args)

    def write_table(self, table: pa.Table, path: str) -> None:
        self._tables[path] = table
        self.flush(path)  # an earlier write of the same file finishes first
        # the conversion to the published form too happens on the writer's thread
        self._writes[path] = self._writer.submit(write_file, table, path)

    def read_table(
        self, path: str, columns: list[str] | None = None, *, last: bool = False
    ) -> pa.Table:
        if path in self._tables:
            table = self._tables.pop(path) if last else self._tables[path]
            return table.select(columns) if columns is not None else table
        self.flush(path)
        return read_file(path, columns)

    def columns(self, path: str) -> list[str]:
        if path in self._tables:
            return list(self._tables[path].column_names)
        self.flush(path)
        return super().columns(path)

    def flush(self, path: str | None = None) -> None:
        for p in [path] if path is not None else list(self._writes):
            if p in self._writes:
                self._writes.pop(p).result()

    def require(self, path: str, stage: str) -> None:
        if path in self._tables:  # being written; readable from memory
            return
        if not storage.exists(path):
            self.flush(path)  # it may be a write still in progress
        super().require(path, stage)


def write_file(table: pa.Table, path: str) -> None:
    """``table`` as the Parquet file at ``path``: a layer's file in its published form."""
    layer = schemas.layer_of(path)
    if layer:
        storage.write_tables(schemas.published_slices(table, layer), path)
    else:
        storage.write_table(table, path)


def read_file(path: str, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file at ``path`` (``columns`` only, if given): a layer's in its internal
    form."""
    layer = schemas.layer_of(path)
    return schemas.read(path, layer, columns) if layer else storage.read_table(path, columns)


# --------------------------------------------------------------------------- mapped files
# Within one process's run on a local output, a table that another process reads (validate's
# raw layer, publish's second process's lines) is also staged as an uncompressed Arrow file:
# mapping it pages in only what is read, where Parquet would be decoded whole.


def write_arrow_file(table: pa.Table, path: str) -> None:
    """``table`` as an uncompressed Arrow file at the local staged ``path``."""
    import pyarrow.feather as feather

    local = storage.local_path(path)
    storage.make_dirs(str(local.parent))
    with storage.guard("write", path):
        feather.write_feather(table, str(local), compression="uncompressed")
        os.chmod(local, storage.file_mode(path))  # the raw rows are PHI


def mapped_table(path: str) -> pa.Table:
    """The Arrow file ``write_arrow_file`` wrote, mapped (only what is read is paged in)."""
    return pa.ipc.open_file(pa.memory_map(str(storage.local_path(path)))).read_all()


def mapped_if_there(path: str) -> str | None:
    """``path`` if it is a local Arrow file that a run left in the staging area."""
    return path if not storage.is_s3(path) and storage.exists(path) else None
