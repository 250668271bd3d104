"""Registry of processed input files: each file is processed once.

An entry is one small JSON object per (path, sha256) under the output root:
``<out>/.registry/run_date=D/<hash of path>/<sha256>.json``. Writing an entry is one atomic PUT
(or rename), so two runs never corrupt each other's bookkeeping. A repeated event for a file
already recorded is a no-op; the same name with other bytes is a new version (another sha256)
and is processed again. Entries are written only after a night's manifest is written, from the
manifest's own inputs (the bytes actually read), so a run that fails records nothing and its
files are picked up again by the next event or the nightly reconcile.
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
