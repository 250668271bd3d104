"""Score's checked claim columns, handed to publish: the 837 writer's checks and cleaning run
once a night.

Score checks every billed claim with the writer's own checks (``claim_files.check_batch``), a
batch of claims at a time; each batch's checked columns (``x12.prepared.export``: per line,
codes into texts per field, numbers and flags) go into the staging area as it goes, in two
uncompressed Arrow files (the lines' columns; the texts, a record batch per field), so no
batch is held in memory meanwhile. Publish maps them (only what it reads is paged in; on S3
they are read whole), in this process and in its second one, and builds each claim file from
its lines' columns (``build_837p(..., checked=...)``) instead of cleaning and checking the
same values again. They are files rather than a table in the ``Handover``: the in-memory
handover would hold them through the rest of score, when the night's memory is at its
largest. They carry names and addresses (PHI), so they are staged under the PHI root
(``RunConfig.phi_staged``), as the raw layer's work files are.

Codes are numbered across the night per field (a batch's after the texts of the batches
before it), so a field's texts are its batches' texts one after another.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from therapy_claims import storage
from therapy_claims.config import RunConfig, RunError
from therapy_claims.x12 import prepared

FOLDER = ("work", "checked")
INDEX = "checked.json"
TEXT = pa.schema([("text", pa.large_string())])


def _path(cfg: RunConfig, n: int, kind: str) -> str:
    return cfg.phi_staged(*FOLDER, f"{n:04d}-{kind}.arrow")


class Writer:
    """Stages the checked columns of a night's batches (``add``), then the index that says
    how many there are (``close``: publish finds none without it)."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        storage.delete_tree(cfg.phi_staged(*FOLDER))  # an earlier attempt's
        self.batches = 0
        self.claims = 0
        self.texts = dict.fromkeys(prepared.TEXT_FIELDS, 0)

    def add(self, exported: prepared.Exported, at: np.ndarray) -> None:
        """One batch's ``x12.prepared.export``, of the lines at the night's row positions
        ``at`` (the scored lines' order)."""
        for field in prepared.TEXT_FIELDS:  # codes after the earlier batches' texts
            for part in (exported.lines, exported.claims):
                if field in part:
                    part[field] = part[field] + np.int32(self.texts[field])
            self.texts[field] += len(exported.pools[field])
        if max(self.texts.values()) >= 2**31:
            raise RunError("score: too many distinct texts in one night to hand over")
        exported.lines["claim"] = exported.lines["claim"] + np.int32(self.claims)
        self.claims += len(exported.claims["bad"])
        tables = {
            "lines": pa.table({"line": pa.array(at, pa.int64()), **exported.lines}),
            "claims": pa.table(exported.claims),
        }
        for kind, table in tables.items():
            _write(_path(self.cfg, self.batches, kind), table.schema, table.to_batches())
        texts = [pa.record_batch([exported.pools[f]], schema=TEXT) for f in prepared.TEXT_FIELDS]
        _write(_path(self.cfg, self.batches, "texts"), TEXT, texts)
        self.batches += 1

    def close(self) -> None:
        storage.write_json(self.cfg.phi_staged(*FOLDER, INDEX), {"batches": self.batches})


def _write(path: str, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    """An uncompressed Arrow file (local: written in place, owner-only where PHI is; S3: as
    one object)."""
    if storage.is_s3(path):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, schema) as writer:
            for b in batches:
                writer.write_batch(b)
        storage.write_bytes(path, sink.getvalue().to_pybytes())
        return
    local = storage.local_path(path)
    storage.make_dirs(str(local.parent))
    with storage.guard("write", path):
        with pa.OSFile(str(local), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for b in batches:
                writer.write_batch(b)
        os.chmod(local, storage.file_mode(path))  # names and member ids: PHI


def _open(path: str) -> pa.ipc.RecordBatchFileReader:
    with storage.guard("read", path):
        if storage.is_s3(path):
            return pa.ipc.open_file(pa.BufferReader(storage.read_bytes(path)))
        return pa.ipc.open_file(pa.memory_map(str(storage.local_path(path))))


def _batches(cfg: RunConfig) -> int:
    index = cfg.phi_staged(*FOLDER, INDEX)
    if not storage.exists(index):
        raise RunError(
            f"{index} is missing: run the 'score' stage again (it checks the claims publish builds)"
        )
    return int(storage.read_json(index)["batches"])


def rows_of(cfg: RunConfig, n_lines: int) -> np.ndarray:
    """Per scored line (of ``n_lines``): its row in the night's checked columns (rows
    numbered across the batches, as ``Night`` does), or -1 where score did not check it."""
    out = np.full(n_lines, -1, dtype=np.int64)
    start = 0
    for k in range(_batches(cfg)):
        line = _open(_path(cfg, k, "lines")).read_all().column("line").to_numpy()
        out[line] = start + np.arange(len(line))
        start += len(line)
    return out


class Night:
    """The checked columns score staged for the night: lines and claims numbered across its
    batches."""

    def __init__(self, cfg: RunConfig):
        n = _batches(cfg)
        self.lines = [_open(_path(cfg, k, "lines")).read_all() for k in range(n)]
        self.claims = [_open(_path(cfg, k, "claims")).read_all() for k in range(n)]
        texts: dict[str, list] = {f: [] for f in prepared.TEXT_FIELDS}
        for k in range(n):
            reader = _open(_path(cfg, k, "texts"))
            for i, field in enumerate(prepared.TEXT_FIELDS):
                texts[field].append(reader.get_batch(i).column(0))
        self.pools = prepared.Pools(
            {
                f: pa.concat_arrays(t) if t else pa.array([""], pa.large_string())
                for f, t in texts.items()
            }
        )
        self._views: dict[tuple[int, int, str], np.ndarray] = {}

    def take(self, rows: np.ndarray) -> prepared.Columns:
        """``prepared.Columns`` of the lines at these ``rows`` (one claim file's)."""
        return _Taken(self, np.asarray(rows, dtype=np.int64))

    def gather(self, kind: int, rows: np.ndarray, fields: tuple[str, ...]) -> dict:
        """The columns ``fields`` of the lines (``kind`` 0) or claims (1) at these ``rows``
        (numbered across the batches), in their order."""
        tables = (self.lines, self.claims)[kind]
        starts = np.cumsum([0, *(len(t) for t in tables)])
        batch = np.searchsorted(starts, rows, side="right") - 1
        picks = []
        for k in np.unique(batch).tolist():
            at = np.flatnonzero(batch == k)
            picks.append((k, at, rows[at] - starts[k]))
        out = {}
        for field in fields:
            values = None
            for k, at, local in picks:
                key = (kind, k, field)
                if key not in self._views:
                    self._views[key] = _numpy(tables[k].column(field))
                view = self._views[key]
                if values is None:
                    values = np.empty(len(rows), dtype=view.dtype)
                values[at] = view[local]
            out[field] = values
        return out


class _Taken:
    """``prepared.Columns`` of one claim file's lines: their ``rows`` in a ``Night``."""

    def __init__(self, night: Night, rows: np.ndarray):
        self.night, self.rows = night, rows

    def lines(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        return self.night.gather(0, self.rows[at], fields)

    def claims(self, fields: tuple[str, ...], at: np.ndarray) -> dict[str, np.ndarray]:
        claim = self.night.gather(0, self.rows[at], ("claim",))["claim"].astype(np.int64)
        return self.night.gather(1, claim, fields)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy()  # (mapped: no copy)
    return column.to_numpy()
