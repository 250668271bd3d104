"""Build hook: ship the Great Expectations project inside the package.

The GX file project lives in the top-level ``expectations/`` folder (``great_expectations.yml``,
the suites, validation definitions, the checkpoint and the Data Docs views; one copy in git).
A built package must carry it too, or an installed copy (the Docker image) has no suites to
validate with: ``build_py`` copies the project (not its ``uncommitted/``) into
``therapy_claims/expectations/`` of the build, where ``gx_project.project_dir`` finds it
through ``importlib.resources``. An editable install keeps reading the top-level folder, so
nothing is copied for it. Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROJECT = Path(__file__).resolve().parent / "expectations"
PACKAGED = ("therapy_claims", "expectations")


def project_files() -> list[Path]:
    """The GX project's files, relative to it (not ``uncommitted/``: a GX project's local,
    never-shipped folder)."""
    return sorted(
        p.relative_to(PROJECT)
        for p in PROJECT.rglob("*")
        if p.is_file() and p.relative_to(PROJECT).parts[0] != "uncommitted"
    )


class BuildPyWithSuites(build_py):
    """``build_py`` plus the GX project copied in as package data."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        files = project_files()
        if not any(p.parts[0] == "expectations" and p.suffix == ".json" for p in files):
            raise SystemExit(f"no GX suites in {PROJECT}: the package would not validate a night")
        target = Path(self.build_lib).joinpath(*PACKAGED)
        for rel in files:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / rel, target / rel)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        target = Path(self.build_lib).joinpath(*PACKAGED)
        return [
            *super().get_outputs(include_bytecode),
            *(str(target / rel) for rel in project_files()),
        ]


setup(cmdclass={"build_py": BuildPyWithSuites})
