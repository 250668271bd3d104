"""``therapy-claims acks``: the 999, 277CA and 835 files that came back, recorded in the
``responses`` layer.

Why a layer of its own, and why like this:

* **Content, not names.** A landing folder holds whatever the clearinghouse named its files,
  next to extracts, our own 837s and notes. Each file is told apart by its envelope
  (``responses.kind_of``); an 837 or an unknown file is *skipped* and reported, never a crash.
* **Whole files or nothing.** Each response file is validated (pyx12) and read whole
  (``responses.read``); a file that fails is *rejected* with its reason (positions and codes,
  never values), and nothing of it is written, so a later ledger step never sees half a file.
* **One versioned folder per run.** ``<out>/responses/received_on=D/run=R/`` holds one Parquet
  file per response table (``responses.SCHEMAS``) and ``files.parquet`` (one row per input
  file and what became of it). The run's files are written into a hidden folder beside the
  layer (``<out>/responses/.incoming/run=R/``) and moved into place with
  ``storage.replace_tree``, as the nightly layers are: a reader sees no folder or a whole one.
  (The incoming folder is not called ``.staging``: the storage module treats anything under a
  ``.staging`` folder as PHI and writes it owner-only, and these tables hold no names or
  member ids, so they keep the analysts' mode as ``scored`` does.) A run folder counts only
  when all five files are in it (``committed_runs``): on S3 the move copies object by object,
  so a crash there can leave a part that no reader trusts.
* **Idempotent by content.** A response file whose SHA-256 an earlier committed run applied
  (any ``received_on``) is a *duplicate*: recorded in ``files.parquet``, its rows not written
  again. The same file twice in one run is applied once.
* **One writer per output.** ``apply`` takes the output's lock (``therapy_claims.lock``, the
  one a night's run takes) around "read the applied hashes -> write -> move into place" and
  whatever the caller does next (``after``): two acks runs at once, or an acks run while a
  night publishes, would otherwise both read "not applied yet" and both apply one file.
* **No PHI out.** The tables carry ids, codes, amounts and dates, never names or member ids;
  the summary printed is counts per kind and the rejected files' reasons.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa

from therapy_claims import lock, responses, schemas, storage
from therapy_claims.config import RunError, new_run_id, safe_run_id

LAYER = "responses"
TABLES = tuple(responses.SCHEMAS)  # acknowledgments, claim_statuses, payments, payment_lines
FILES = "files"
STATUSES = ("applied", "rejected", "skipped", "duplicate")
INCOMING = ".incoming"  # hidden: storage.list_files and the layer's readers skip it
COMMAND = "therapy-claims acks"  # how an acks run names itself in the output's lock

FILE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # the input file as given (local path or s3:// URL)
        ("kind", pa.string()),  # 999, 277CA, 835, 837; null when not X12 we know
        ("sha256", pa.string()),  # of the file's bytes; null for a file too large to read
        ("status", pa.string()),  # applied, rejected, skipped, duplicate
        ("reason", pa.string()),  # why rejected, skipped or duplicate; null when applied
        ("rows", pa.int64()),  # rows the file put in the layer (all four tables)
        ("repeated_claim_ids", pa.int64()),  # claim ids that occur more than once in the file
    ]
)
RECEIVED_ON_KEY = b"therapy_claims.received_on"
RUN_ID_KEY = b"therapy_claims.run_id"
TABLE_KEY = b"therapy_claims.table"

_REASON_CAP = 300  # a reason is built from positions and codes; cap it all the same
_RECEIVED = re.compile(r"^received_on=(\d{4}-\d{2}-\d{2})$")
_RUN = re.compile(r"^run=([A-Za-z0-9._-]+)$")
# the table whose claim ids a kind's file repeats (999 rows are transaction sets, not claims)
_CLAIM_TABLE = {"277CA": "claim_statuses", "835": "payments"}


@dataclass
class FileResult:
    """What became of one input file (one row of ``files.parquet``)."""

    path: str
    kind: str | None
    sha256: str | None
    status: str
    reason: str | None = None
    rows: int = 0
    repeated_claim_ids: int = 0


@dataclass
class AcksResult:
    """One ``acks`` run: where it wrote, each input file's fate and the rows per table."""

    run_id: str
    received_on: date
    folder: str
    files: list[FileResult] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "rejected"]


def run_folder(out: str, received_on: date, run_id: str) -> str:
    return storage.join(out, LAYER, f"received_on={received_on.isoformat()}", f"run={run_id}")


def parse_received_on(value: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise RunError(f"received-on date {value!r} is not a date (YYYY-MM-DD)") from exc


def committed_runs(out: str) -> list[tuple[date, str, str]]:
    """Every committed acks run under ``out``: ``(received_on, run_id, folder)``, oldest
    first. A run folder counts when it holds all five files (see the module's note on S3)."""
    root = storage.join(out, LAYER)
    if not storage.exists(root):
        return []
    found: dict[str, set[str]] = {}
    for path in storage.list_files(root):  # hidden (.incoming, .run=R.old) skipped
        rel = path[len(root.rstrip("/")) + 1 :].replace("\\", "/").split("/")
        if len(rel) == 3 and _RECEIVED.match(rel[0]) and _RUN.match(rel[1]):
            found.setdefault(f"{rel[0]}/{rel[1]}", set()).add(rel[2])
    needed = {f"{name}.parquet" for name in (*TABLES, FILES)}
    runs = []
    for key, names in found.items():
        if needed <= names:
            received, run = key.split("/")
            day = date.fromisoformat(_RECEIVED.match(received).group(1))
            runs.append((day, _RUN.match(run).group(1), storage.join(root, received, run)))
    return sorted(runs)


def applied_hashes(out: str) -> dict[str, str]:
    """SHA-256 -> ``"received_on=D/run=R"`` of every file an earlier committed run applied."""
    applied: dict[str, str] = {}
    for day, run_id, folder in committed_runs(out):
        table = storage.read_table(storage.join(folder, f"{FILES}.parquet"), ["sha256", "status"])
        for sha, status in zip(
            table.column("sha256").to_pylist(), table.column("status").to_pylist(), strict=True
        ):
            if status == "applied" and sha:
                applied.setdefault(sha, f"received_on={day.isoformat()}/run={run_id}")
    return applied


def input_files(inputs: list[str]) -> list[str]:
    """Every file under the inputs (files or folders, local or s3://), each once, in order.
    An input that is not there is ``StorageNotFound``: a typo must not look like "nothing came
    back"."""
    files: dict[str, None] = {}
    for path in inputs:
        if not storage.exists(path):
            raise storage.StorageNotFound("list", path, "no such file or folder")
        files.update(dict.fromkeys(storage.list_files(path)))
    return list(files)


def _repeated(kind: str, read: responses.Responses) -> int:
    name = _CLAIM_TABLE.get(kind)
    if name is None:
        return 0
    counts = Counter(getattr(read, name).column("claim_id").to_pylist())
    return sum(1 for n in counts.values() if n > 1)


def _take(
    path: str, applied: dict[str, str], seen: dict[str, str]
) -> tuple[FileResult, responses.Responses | None]:
    """Decide one file's fate, and its rows when it is applied. ``seen`` (sha -> path) holds
    the files this run has applied so far."""
    if storage.size(path) > responses.MAX_BYTES:
        reason = f"larger than {responses.MAX_BYTES // (1024 * 1024)} MiB: not read"
        return FileResult(path, None, None, "skipped", reason), None
    data = storage.read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    kind = responses.kind_of(data)
    if kind == "837":
        return FileResult(path, kind, sha, "skipped", "an 837 claim file, not a response"), None
    if kind not in responses.RESPONSE_KINDS:
        return FileResult(path, None, sha, "skipped", "not a 999, 277CA or 835 file"), None
    if sha in applied:
        return FileResult(path, kind, sha, "duplicate", f"applied in {applied[sha]}"), None
    if sha in seen:
        reason = f"same content as {storage.name(seen[sha])} in this run"
        return FileResult(path, kind, sha, "duplicate", reason), None
    try:
        read = responses.read(data, path)
    except responses.ResponseError as exc:
        reason = " ".join(str(exc).split())[:_REASON_CAP] or "refused"
        return FileResult(path, kind, sha, "rejected", reason), None
    seen[sha] = path
    rows = sum(getattr(read, name).num_rows for name in TABLES)
    return FileResult(path, kind, sha, "applied", None, rows, _repeated(kind, read)), read


def _metadata(name: str, received_on: date, run_id: str) -> dict[bytes, bytes]:
    return {
        schemas.VERSION_KEY: schemas.SCHEMA_VERSION.encode(),
        schemas.LAYER_KEY: LAYER.encode(),
        TABLE_KEY: name.encode(),
        RECEIVED_ON_KEY: received_on.isoformat().encode(),
        RUN_ID_KEY: run_id.encode(),
    }


def _files_table(results: list[FileResult]) -> pa.Table:
    rows = [{f: getattr(r, f) for f in FILE_SCHEMA.names} for r in results]
    return pa.Table.from_pylist(rows, FILE_SCHEMA)


def _write(
    out: str, result: AcksResult, read: list[responses.Responses], folder: str
) -> dict[str, int]:
    """Write the run's five files into the incoming folder, then move it into place."""
    incoming = storage.join(out, LAYER, INCOMING, f"run={result.run_id}")
    storage.delete_tree(incoming)  # left by a crash of a run with this id
    counts = {}
    for name in TABLES:
        parts = [getattr(r, name) for r in read]
        table = pa.concat_tables(parts) if parts else responses.SCHEMAS[name].empty_table()
        table = table.replace_schema_metadata(_metadata(name, result.received_on, result.run_id))
        storage.write_table(table, storage.join(incoming, f"{name}.parquet"))
        counts[name] = table.num_rows
    files = _files_table(result.files).replace_schema_metadata(
        _metadata(FILES, result.received_on, result.run_id)
    )
    storage.write_table(files, storage.join(incoming, f"{FILES}.parquet"))
    storage.replace_tree(incoming, folder)
    return counts


def run(
    inputs: list[str], out: str, *, received_on: date | None = None, run_id: str = ""
) -> AcksResult:
    """Record every response file under ``inputs`` in ``<out>/responses/received_on=D/run=R/``.

    Every file gets a row in ``files.parquet`` whatever became of it; the run folder is written
    even when nothing was applied (it is the record that the files were seen). Storage failures
    raise ``StorageError``; a file that fails validation is never an exception."""
    received_on = received_on or datetime.now(UTC).date()
    run_id = safe_run_id(run_id) if run_id else new_run_id()
    folder = run_folder(out, received_on, run_id)
    result = AcksResult(run_id, received_on, folder)
    paths = input_files(inputs)
    applied = applied_hashes(out)
    seen: dict[str, str] = {}
    read: list[responses.Responses] = []
    for path in paths:
        file_result, rows = _take(path, applied, seen)
        result.files.append(file_result)
        if rows is not None:
            read.append(rows)
    result.rows = _write(out, result, read, folder)
    return result


def _lock_held(out: str, holder: dict, waited: float | None) -> lock.LockHeld:
    """The refusal in one line naming the operation, the output and its holder."""
    unlock = f"therapy-claims unlock --out {shlex.quote(str(out))}"
    if waited is None:
        state = f"is locked by {lock.describe(holder)}; run acks again once that run is done"
    else:
        state = f"is still locked after waiting {waited:g} s, by {lock.describe(holder)}"
    message = f"acks: output {out} {state}; if that run crashed: {unlock}"
    return lock.LockHeld(" ".join(message.splitlines()), out, holder)


def apply(
    inputs: list[str],
    out: str,
    *,
    received_on: date | None = None,
    run_id: str = "",
    after: Callable[[str], object] | None = None,
    wait: bool = False,
    timeout: float | None = None,
    poll: float = 2.0,
) -> AcksResult:
    """``run`` under the output's lock, then ``after(out)`` (e.g. a step that rebuilds what
    reads the layer) still under it; returns the run's result.

    Another live holder (a night, another acks run) raises ``lock.LockHeld`` (a ``RunError``:
    the CLI's one line, exit 2) naming the operation and the output, at once or, with
    ``wait``, after ``timeout`` seconds (None: wait for ever). The lock is bound to this
    process: a crashed acks run's lock is taken over by the next run on this host. A
    ``run_id`` that a committed run of this output already has (a retried DAG task whose
    first try committed, then failed in ``after``) gets a new id: a run never writes over
    another's folder, whose files the new one would only list as duplicates."""
    received_on = received_on or datetime.now(UTC).date()
    run_id = safe_run_id(run_id) if run_id else new_run_id()
    done: list[AcksResult] = []

    def step(_: str) -> None:
        nonlocal run_id
        if any(r == run_id for _, r, _ in committed_runs(out)):
            run_id = new_run_id()
        done.append(run(inputs, out, received_on=received_on, run_id=run_id))
        if after is not None:
            after(out)

    # the lock's own id: an Airflow run id alone could equal a nightly DAG run's, which may
    # take the lock again as its own
    locked(
        out,
        step,
        holder_id=f"acks-{run_id}",
        on=received_on,
        wait=wait,
        timeout=timeout,
        poll=poll,
    )
    return done[0]


def locked(
    out: str,
    step: Callable[[str], object],
    *,
    holder_id: str = "",
    on: date | None = None,
    command: str = COMMAND,
    wait: bool = False,
    timeout: float | None = None,
    poll: float = 2.0,
) -> None:
    """``step(out)`` under the output's lock (the one a night takes): the acks run and what
    reads its layer (the lifecycle) change the output one writer at a time. Another live
    holder raises ``lock.LockHeld`` naming the operation and the output (see ``apply``)."""
    holder_id = holder_id or f"acks-{new_run_id()}"
    entered = False
    try:
        with lock.held(
            out,
            run_id=holder_id,
            run_date=on or datetime.now(UTC).date(),
            wait=wait,
            timeout=timeout,
            poll=poll,
            command=command,
        ):
            entered = True
            step(out)
    except lock.LockHeld as exc:
        if entered:  # from the step: not this run's refusal
            raise
        raise _lock_held(out, exc.holder, timeout if wait else None) from None


def summary_lines(result: AcksResult) -> list[str]:
    """The run in a few lines: per kind the files by status and the rows written, the claim
    ids repeated within a file, and each rejected file's name and reason. Counts, codes and
    file names only: nothing from inside a file (names, member ids)."""
    lines = [f"responses received on {result.received_on.isoformat()}: {result.folder}"]
    by_kind: dict[str, Counter] = {}
    repeated: Counter = Counter()
    for f in result.files:
        kind = f.kind if f.kind in responses.RESPONSE_KINDS else "other"
        by_kind.setdefault(kind, Counter())[f.status] += 1
        repeated[kind] += f.repeated_claim_ids
    kind_rows = {
        "999": ("acknowledgments",),
        "277CA": ("claim_statuses",),
        "835": ("payments", "payment_lines"),
    }
    for kind in (*responses.RESPONSE_KINDS, "other"):
        statuses = by_kind.get(kind, Counter())
        text = ", ".join(f"{statuses[s]} {s}" for s in STATUSES)
        line = f"{kind}: {sum(statuses.values())} file(s): {text}"
        if kind in kind_rows:
            line += "; rows " + ", ".join(
                f"{name} {result.rows.get(name, 0)}" for name in kind_rows[kind]
            )
        if repeated[kind]:
            line += f"; {repeated[kind]} claim id(s) repeated within a file (rows kept)"
        lines.append(line)
    for f in result.rejected:
        lines.append(f"rejected {storage.name(f.path)}: {f.reason}")
    return lines
