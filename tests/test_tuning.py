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
