"""The GX compatibility module: the pinned release, a clear refusal of any other, and no side
effects at import."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from therapy_claims import gx_compat

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"


def test_pin_matches_requirements():
    pins = re.findall(r"^great-expectations==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert pins == [gx_compat.PINNED_VERSION]


def test_installed_release_is_the_pinned_one():
    assert gx_compat.installed_version() == gx_compat.PINNED_VERSION
    gx_compat.check_version()


@pytest.mark.parametrize("other", ["1.24.0", "1.25.0", "0.18.21"])
def test_another_release_is_refused_with_what_to_do(other):
    with pytest.raises(gx_compat.GXVersionError) as info:
        gx_compat.check_version(other)
    message = str(info.value)
    assert f"great-expectations=={gx_compat.PINNED_VERSION}" in message
    assert f"{other} is installed" in message and "requirements.txt" in message


def test_start_refuses_another_release_before_touching_the_environment(monkeypatch):
    monkeypatch.setattr(gx_compat, "installed_version", lambda: None)
    monkeypatch.delenv(gx_compat.ANALYTICS_ENV, raising=False)
    with pytest.raises(gx_compat.GXVersionError, match="is not installed"):
        gx_compat.start()
    assert gx_compat.ANALYTICS_ENV not in os.environ


def test_start_turns_analytics_off(monkeypatch):
    monkeypatch.setenv(gx_compat.ANALYTICS_ENV, "true")
    gx_compat.start()
    assert os.environ[gx_compat.ANALYTICS_ENV] == "false"


def test_importing_the_gx_modules_changes_nothing():
    """No environment variable set and GX not imported by importing the package's GX modules
    (``gx_expectations`` imports GX by design, so it is left out)."""
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "from therapy_claims import gx_checks, gx_compat\n"
        "assert dict(os.environ) == before, set(os.environ) ^ set(before)\n"
        "assert 'great_expectations' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != gx_compat.ANALYTICS_ENV}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_no_batch_fingerprint_restores_the_engine_setting():
    from great_expectations.execution_engine import pandas_execution_engine as engine

    before = engine.HASH_THRESHOLD
    with gx_compat.no_batch_fingerprint():
        assert engine.HASH_THRESHOLD == 0
    assert engine.HASH_THRESHOLD == before
    with pytest.raises(KeyError), gx_compat.no_batch_fingerprint():
        raise KeyError("x")
    assert engine.HASH_THRESHOLD == before
