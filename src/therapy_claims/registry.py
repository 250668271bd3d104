"""Registry of processed input files: each file is processed once.

An entry is one small JSON object per (path, sha256) under the output root:
``<out>/.registry/run_date=D/<hash of path>/<sha256>.json``. Writing an entry is one atomic PUT
(or rename), so two runs never corrupt each other's bookkeeping. A repeated event for a file
already recorded is a no-op; the same name with other bytes is a new version (another sha256)
and is processed again. Entries are written only after a night's manifest is written, from the
manifest's own inputs (the bytes actually read), so a run that fails records nothing and its
files are picked up again by the next event or the nightly reconcile.

Whether a file was processed for *any* night (``processed_any``) is answered from one listing
of ``<out>/.registry/``: the entry's own name holds the path's hash and the sha256, so no
entry is read. The nightly DAG and the event DAGs share the landing zone through this: a file
one of them billed is never billed again by the other, whichever night it went to.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from therapy_claims import storage


def _night_root(out: str, run_date: str) -> str:
    return storage.join(out, ".registry", f"run_date={run_date}")


def _key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:24]


def _entry(out: str, run_date: str, path: str, sha256: str) -> str:
    return storage.join(_night_root(out, run_date), _key(path), f"{sha256}.json")


def is_processed(out: str, run_date: str, path: str, sha256: str) -> bool:
    return storage.exists(_entry(out, run_date, path, sha256))


class Processed:
    """The (path, sha256) pairs registered for any night, from one listing of the registry.
    ``(path, sha256) in processed`` is a set lookup; ``nights(path, sha256)`` says where."""

    def __init__(self, entries: dict[tuple[str, str], set[str]]):
        self._entries = entries

    def __contains__(self, item: tuple[str, str]) -> bool:
        path, sha256 = item
        return (_key(path), sha256) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def nights(self, path: str, sha256: str) -> list[str]:
        return sorted(self._entries.get((_key(path), sha256), ()))


def processed_any(out: str) -> Processed:
    """Every file registered for any run date: one listing of ``<out>/.registry/`` (the names
    ``run_date=D/<path hash>/<sha256>.json`` are enough; no entry is read)."""
    entries: dict[tuple[str, str], set[str]] = {}
    for f in storage.list_files(storage.join(out, ".registry")):
        parts = str(f).replace("\\", "/").split("/")
        if (
            len(parts) < 3
            or not parts[-3].startswith("run_date=")
            or not parts[-1].endswith(".json")
        ):
            continue  # not an entry (e.g. a temporary file of an interrupted write)
        run_date, key, sha256 = parts[-3][len("run_date=") :], parts[-2], parts[-1][: -len(".json")]
        entries.setdefault((key, sha256), set()).add(run_date)
    return Processed(entries)


def record(out: str, run_date: str, inputs: list[dict], run_id: str = "") -> int:
    """Record the inputs of a published night (dicts with path and sha256)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for i in inputs:
        storage.write_json(
            _entry(out, run_date, i["path"], i["sha256"]),
            {
                "path": i["path"],
                "sha256": i["sha256"],
                "run_date": run_date,
                "accepted": i.get("accepted", True),
                "processed_at": now,
                "run_id": run_id,
            },
        )
    return len(inputs)


def night_files(out: str, run_date: str) -> dict[str, str]:
    """The files a night was last published with: path -> sha256 of the latest version."""
    latest: dict[str, dict] = {}
    for f in storage.list_files(_night_root(out, run_date)):
        e = storage.read_json(f)
        if e["path"] not in latest or e["processed_at"] > latest[e["path"]]["processed_at"]:
            latest[e["path"]] = e
    return {p: e["sha256"] for p, e in sorted(latest.items())}
