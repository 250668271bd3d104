"""Process tuning is applied the same way by every entry point, and importing the package
changes nothing about the process (no environment variable, no umask, no priority)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from therapy_claims import pipeline, tuning


def test_importing_every_module_changes_nothing_in_the_process():
    script = (
        "import os, pkgutil, importlib, json\n"
        "env = dict(os.environ)\n"
        "status = open('/proc/self/status').read()\n"
        "import therapy_claims\n"
        "for m in pkgutil.walk_packages(therapy_claims.__path__, 'therapy_claims.'):\n"
        "    if m.name.endswith(('__main__', '.bench')):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "after = open('/proc/self/status').read()\n"
        "pick = lambda s, k: [l for l in s.splitlines() if l.startswith(k)]\n"
        "print(json.dumps({'env': changed,\n"
        "  'umask': pick(status, 'Umask') == pick(after, 'Umask'),\n"
        "  'thp': pick(status, 'THP_enabled') == pick(after, 'THP_enabled')}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"env": [], "umask": True, "thp": True}


@pytest.mark.parametrize(
    "entry",
    ["plan_partitions", "ingest", "ingest_combine", "validate", "score", "publish", "manifest"],
)
def test_every_stage_entry_point_tunes_the_process_first(entry, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tuning, "tune_process", lambda: calls.append(entry))
    cfg = pipeline.RunConfig(inputs=[], out=str(tmp_path), run_date=date(2026, 11, 28))
    with pytest.raises(pipeline.RunError):  # nothing staged: each stage refuses, tuned first
        getattr(pipeline, entry)(cfg)
    assert calls == [entry]


# A process that frees a 24 MiB array (glibc then takes blocks up to that size from its heap),
# then makes 50 arrays of 8 MiB with a small block kept between each two, and frees the
# arrays: how much of the 400 MiB it still holds (MiB), as ``tuning`` leaves it. (Seen: 400
# untuned, 0 tuned, 32-53 after ``release_memory``.)
_FREED_SCRIPT = """
import gc, sys
import numpy as np
from therapy_claims import tuning
def rss():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) // 1024
if sys.argv[1] == 'tuned':
    tuning.tune_process()
big = np.ones(24 * 2**20 // 8)
del big
base = rss()
arrays, kept = [], []
for i in range(50):
    arrays.append(np.ones(8 * 2**20 // 8))
    kept.append(b'x' * 2000 + bytes([i]))
del arrays
gc.collect()
held = rss() - base
if sys.argv[2] == 'release':
    tuning.release_memory()
print(held, rss() - base)
"""


def _held_after_free(tuned: bool, release: bool) -> tuple[int, int]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _FREED_SCRIPT,
            "tuned" if tuned else "untuned",
            "release" if release else "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    held, after_release = proc.stdout.split()
    return int(held), int(after_release)


def test_a_tuned_process_gives_freed_arrays_back_at_once():
    # the same process untuned keeps the 400 MiB: the case the tuning is for
    assert _held_after_free(tuned=False, release=False)[0] > 300
    assert _held_after_free(tuned=True, release=False)[0] < 100


def test_release_memory_gives_back_the_heap_pages_glibc_kept():
    held, after = _held_after_free(tuned=False, release=True)
    assert held > 300
    assert after < 100  # of 400: what glibc kept went back (a little noise stays)
