"""The published nights of an output root: what a reader may trust, and tidying after a run.

A run writes its night into its own versioned folders (``<kind>/run_date=D/run=R/``) and
commits by writing the night's manifest, ``manifest/run_date=D.json``, in one atomic write
(a rename locally, one PUT on S3). The manifest names the run (``run_id``) and its folders
(``outputs``), so every reader goes through it: a run that crashed before its manifest leaves
folders nobody points at, and the previous good night stays committed until the new one is.

With a separate PHI root (``RunConfig.phi_out``) the manifest's ``outputs`` name the ``raw``
and ``claims`` folders there: a reader follows them and needs that root's access only for
those layers.

An output written before versioned folders existed has manifests without ``run_id`` whose
``outputs`` are the plain ``<kind>/run_date=D/`` folders; they read the same way.
"""

from __future__ import annotations

import logging
import re

from therapy_claims import storage
from therapy_claims.config import PHI_DIRS, PUBLISHED_DIRS

log = logging.getLogger("therapy_claims")

MANIFESTS = "manifest"
_MANIFEST_NAME = re.compile(r"^run_date=(\d{4}-\d{2}-\d{2})\.json$")
_RUN = re.compile(r"^run=([A-Za-z0-9._-]+)$")


def manifest_path(out: str, run_date: str) -> str:
    return storage.join(out, MANIFESTS, f"run_date={run_date}.json")


def committed(out: str, run_date: str) -> dict | None:
    """The night's manifest, or None if the night was never published."""
    path = manifest_path(out, run_date)
    try:
        return storage.read_json(path)
    except FileNotFoundError:
        return None


def all_committed(out: str) -> dict[str, dict]:
    """Every published night's manifest, by run date (in date order)."""
    root = storage.join(out, MANIFESTS)
    nights: dict[str, dict] = {}
    if not (storage.exists(root) or storage.is_dir(root)):
        return nights
    for path in storage.list_files(root):
        m = _MANIFEST_NAME.match(storage.name(path))
        if m:
            try:
                nights[m.group(1)] = storage.read_json(path)
            except FileNotFoundError:  # replaced meanwhile
                continue
    return dict(sorted(nights.items()))


def _dates(out: str, run_date: str, *, including: bool) -> list[str]:
    """The run dates of the manifests up to ``run_date`` (``including`` it or not), in date
    order, from the manifests' names alone: an output of years of nights has a manifest per
    night, and its readers want the last few."""
    root = storage.join(out, MANIFESTS)
    if not (storage.exists(root) or storage.is_dir(root)):
        return []
    return sorted(
        m.group(1)
        for path in storage.list_files(root)
        if (m := _MANIFEST_NAME.match(storage.name(path)))
        and (m.group(1) < run_date or (including and m.group(1) == run_date))
    )


def latest_before(out: str, run_date: str) -> tuple[str, dict] | None:
    """``(run date, manifest)`` of the latest night committed before ``run_date`` (None:
    there is none)."""
    for rd in reversed(_dates(out, run_date, including=False)):
        manifest = committed(out, rd)  # (one replaced or removed meanwhile: the one before)
        if manifest is not None:
            return rd, manifest
    return None


def recent(out: str, run_date: str, n: int, *, including: bool = True) -> list[dict]:
    """The manifests of the last ``n`` published nights up to ``run_date`` (``including`` it
    or not), in date order. Only those ``n`` are read (the report's trends read a few nights
    of an output that may hold years of them)."""
    if n <= 0:
        return []
    found = (committed(out, rd) for rd in _dates(out, run_date, including=including)[-n:])
    return [m for m in found if m is not None]


def layer(manifest: dict, kind: str, run_date: str, out: str) -> str:
    """The folder of ``kind`` the manifest commits (old manifests: the plain folder)."""
    outputs = manifest.get("outputs") or {}
    return outputs.get(kind) or storage.join(out, kind, f"run_date={run_date}")


def layer_files(out: str, kind: str, name: str) -> list[tuple[str, str]]:
    """``(run_date, path)`` of the file ``name`` of layer ``kind`` in every published night."""
    found = []
    for rd, m in all_committed(out).items():
        path = storage.join(layer(m, kind, rd, out), name)
        if storage.exists(path):
            found.append((rd, path))
    return found


def run_ids(out: str) -> dict[str, str]:
    """The run each published night is (run date -> run id; old manifests: '')."""
    return {rd: m.get("run_id", "") for rd, m in all_committed(out).items()}


# --------------------------------------------------------------------------- tidying


def _children(folder: str) -> dict[str, list[str]]:
    """The entries right under ``folder``: name -> the files below it."""
    out: dict[str, list[str]] = {}
    if not (storage.exists(folder) or storage.is_dir(folder)):
        return out
    base = folder.rstrip("/")
    for path in storage.list_files(folder, hidden=True):
        rest = path[len(base) + 1 :].replace("\\", "/")
        out.setdefault(rest.split("/", 1)[0], []).append(path)
    return out


def _night_folders(out: str, run_date: str, phi_out: str | None) -> list[tuple[str, bool]]:
    """The night's folders of every published kind and its staging area, each with whether it
    is under a separate PHI root: the PHI root's first (a tidy-up cut short leaves no PHI
    folder whose run the output root no longer knows), then the output root's in
    ``PUBLISHED_DIRS`` order."""
    night = f"run_date={run_date}"
    if not phi_out:
        return [(storage.join(out, kind, night), False) for kind in (*PUBLISHED_DIRS, ".staging")]
    phi = [(storage.join(phi_out, kind, night), True) for kind in (*PHI_DIRS, ".staging")]
    kept = [k for k in (*PUBLISHED_DIRS, ".staging") if k not in PHI_DIRS]
    return phi + [(storage.join(out, kind, night), False) for kind in kept]


def prune(out: str, run_date: str, keep: set[str], *, phi_out: str | None = None) -> list[str]:
    """Remove the night's versioned folders and staging areas of runs not in ``keep`` (run ids;
    '' keeps an old manifest's plain files), under the output root and the PHI root
    ``phi_out`` (if apart). Returns what was removed.

    Called under the output's lock, after a commit (``keep``: the new run and the one it
    replaced, which a reader that read the old manifest a moment ago may still be reading)
    and when a run starts (``keep``: the committed run): a crashed run's folders go then.
    Under the PHI root only the runs of this output root are removed (a run leaves a folder
    under the output root from its start until it is removed here): another output's runs
    there are not this one's to remove."""
    folders = _night_folders(out, run_date, phi_out)
    listed = {folder: _children(folder) for folder, _ in folders}
    ours = {
        m.group(1)
        for folder, apart in folders
        if not apart
        for name in listed[folder]
        if (m := _RUN.match(name))
    }
    removed = []
    for folder, apart in folders:
        for name, files in listed[folder].items():
            m = _RUN.match(name)
            run = m.group(1) if m else ""
            if run in keep or (apart and run not in ours):
                continue
            target = storage.join(folder, name)
            if m:
                storage.delete_tree(target)
            else:
                for f in files:
                    storage.delete_tree(f)
            removed.append(target)
    if removed:
        log.info("removed %s folder(s) of runs no manifest names for %s", len(removed), run_date)
    return removed


def remove_run(out: str, run_date: str, run_id: str, *, phi_out: str | None = None) -> None:
    """Remove one run's folders of the night (a run that failed: no manifest names it), under
    the output root and the PHI root ``phi_out`` (if apart)."""
    for folder, _ in _night_folders(out, run_date, phi_out):
        storage.delete_tree(storage.join(folder, f"run={run_id}"))
