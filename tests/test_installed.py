"""The package as a user gets it: built and installed (not editable) into a fresh virtual
environment, then run from a folder outside the repository.

This is how the Docker image runs the pipeline, and what a source checkout hides: a file the
code finds next to the repository (the GX suites in ``expectations/``) is missing from an
installed copy unless the build ships it. The new environment has no pip of its own and
reuses the test interpreter's installed dependencies through a ``.pth`` line (a plain path:
the ``.pth`` files there, such as an editable install of this project, are not processed), so
only the project itself is built and installed. The build backend (setuptools) is fetched by
pip's build isolation, as ``pip install .`` does anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# what the Docker image copies before `pip install` (docker/Dockerfile)
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "expectations")
RUN_DATE = "2026-11-27"
SUITES = ("extract_schema", "time_consistency", "region_consistency", "modifier_consistency")


def _env() -> dict[str, str]:
    """The environment without anything that points Python or the GX checks at the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "THERAPY_CLAIMS_EXPECTATIONS")
    }
    env["GX_ANALYTICS_ENABLED"] = "false"
    return env


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the project built from a copy of its build inputs and installed."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=root,
    ).stdout.strip()
    Path(site, "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir", "."],
        cwd=source,
        timeout=600,
    )
    return venv


@pytest.fixture(scope="module")
def night(installed, tmp_path_factory) -> Path:
    """A small generated night run through the installed command, in a folder of its own."""
    work = tmp_path_factory.mktemp("elsewhere")
    cli = str(installed / "bin" / "therapy-claims")
    landing = work / "landing" / "night.csv"
    _run(
        [cli, "generate", "--encounters", "150", "--seed", "4", "--run-date", RUN_DATE]
        + ["--problem-rate", "0.1", "--out", str(landing)],
        cwd=work,
    )
    _run([cli, "run", "--input", "landing", "--out", "out", "--run-date", RUN_DATE], cwd=work)
    return work


def test_the_installed_copy_is_the_one_that_runs(installed, night):
    code = (
        "import json, therapy_claims\n"
        "from therapy_claims import gx_checks\n"
        "print(json.dumps([therapy_claims.__file__, str(gx_checks.expectations_dir())]))"
    )
    module, suites = json.loads(_run([str(installed / "bin" / "python"), "-c", code], night).stdout)
    venv = installed.resolve()
    assert Path(module).resolve().is_relative_to(venv), module
    assert not Path(module).resolve().is_relative_to(REPO), module
    # the GX project shipped inside the package, not the repository's folder: every file of it
    assert Path(suites).resolve() == Path(module).resolve().parent / "expectations"
    shipped = sorted(str(p.relative_to(suites)) for p in Path(suites).rglob("*") if p.is_file())
    assert shipped == sorted(
        str(p.relative_to(REPO / "expectations"))
        for p in (REPO / "expectations").rglob("*")
        if p.is_file() and "uncommitted" not in p.parts
    )


def test_installed_run_balances_validates_and_writes_claims(night):
    out = night / "out"
    m = json.loads((out / "manifest" / f"run_date={RUN_DATE}.json").read_text())
    assert m["balanced"] is True
    assert m["rows_in"] == m["rows_quarantined"] + m["rows_scored"]
    assert m["rows_scored"] == m["lines_billed"] + m["lines_held"] + m["lines_not_billed"]
    assert m["rows_in"] > 0 and m["lines_billed"] > 0

    # GX ran every suite, with every expectation the packaged suites list
    validation = night / m["outputs"]["validation"]  # the run the manifest commits
    assert set(m["validation"]) == set(SUITES)
    for name in SUITES:
        suite = REPO / "expectations" / "expectations" / f"{name}.json"
        listed = json.loads(suite.read_text())["expectations"]
        result = json.loads((validation / f"{name}.json").read_text())
        assert result["statistics"]["evaluated_expectations"] == len(listed) > 0
        assert m["validation"][name]["evaluated"] == len(listed)
    assert (validation / "data_docs" / "index.html").is_file()
    assert (out / "gx" / "data_docs" / "index.html").is_file()  # the GX project's site
    # claim files written, as the manifest lists them
    assert m["claim_files"]
    for f in m["claim_files"]:
        path = night / f["path"]
        assert path.read_bytes().startswith(b"ISA*")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
    assert sum(f["lines"] for f in m["claim_files"]) == m["lines_billed"]
