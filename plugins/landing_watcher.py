"""A local landing folder as an event source for Airflow (the embedded default, next to the
production S3 -> SQS path): an ``AssetWatcher`` trigger that runs in the triggerer, so waiting
for files holds no worker slot.

It polls the folder (``poll_interval`` seconds), waits until a new or changed file (an extract
or an X12 file, by its name: ``EXTENSIONS``) has stopped changing (same size and mtime on two
polls), then fires one event ``{"paths": [...]}`` and ends; the triggerer starts it again for
the next files. What it has already announced is kept in
``<folder>/.therapy_claims_watcher.json`` (hidden, so the pipeline never reads it), so a
triggerer restart does not announce the same files again. A repeated announcement would be
harmless anyway: the registry of processed files (and the applied responses' hashes) make it
a no-op.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

# extracts, and the names X12 files (the payer's 999, 277CA and 835) usually have; what a file
# is, is decided by its content downstream (therapy_claims.events.route). A file under another
# name is found by the DAG's nightly reconcile, which lists the whole folder.
EXTENSIONS = (
    *(".csv", ".parquet", ".jsonl", ".ndjson", ".json"),
    *(".x12", ".edi", ".999", ".277", ".835"),
)
STATE = ".therapy_claims_watcher.json"


def scan(folder: str) -> dict[str, list[int]]:
    """Files under ``folder`` named as in ``EXTENSIONS`` (hidden ones skipped) -> [size, mtime_ns]."""
    root = Path(folder)
    out = {}
    if not root.is_dir():
        return out
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel) or not p.name.lower().endswith(EXTENSIONS):
            continue
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        if p.is_file():
            out[str(p)] = [st.st_size, st.st_mtime_ns]
    return out


def _load(folder: str) -> dict:
    try:
        return json.loads((Path(folder) / STATE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save(folder: str, state: dict) -> None:
    path = Path(folder) / STATE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, path)


def new_files(folder: str, previous: dict[str, list[int]]) -> tuple[list[str], dict]:
    """Files that are new or changed since the state and unchanged since ``previous`` scan."""
    state = _load(folder)
    now = scan(folder)
    ready = sorted(p for p, sig in now.items() if state.get(p) != sig and previous.get(p) == sig)
    return ready, now


class LandingFolderTrigger(BaseEventTrigger):
    def __init__(self, folder: str, poll_interval: float = 5.0):
        super().__init__()
        self.folder = str(folder)
        self.poll_interval = float(poll_interval)

    def serialize(self):
        return (
            "landing_watcher.LandingFolderTrigger",
            {"folder": self.folder, "poll_interval": self.poll_interval},
        )

    async def run(self):
        previous: dict = {}
        while True:
            ready, previous = await asyncio.to_thread(new_files, self.folder, previous)
            if ready:
                state = _load(self.folder)
                state.update({p: previous[p] for p in ready})
                await asyncio.to_thread(_save, self.folder, state)
                self.log.info("landing folder %s: %s new file(s)", self.folder, len(ready))
                yield TriggerEvent({"status": "success", "paths": ready})
                return
            await asyncio.sleep(self.poll_interval)
