"""Build hook: ship the Great Expectations suites inside the package.

The suites live in the top-level ``expectations/`` folder (the project's layout, one copy in
git). A built package must carry them too, or an installed copy (the Docker image) has no
suites to validate with: ``build_py`` copies ``expectations/*.json`` into
``therapy_claims/expectations/`` of the build, where ``gx_checks.expectations_dir`` finds them
through ``importlib.resources``. An editable install keeps reading the top-level folder, so
nothing is copied for it. Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUITES = Path(__file__).resolve().parent / "expectations"
PACKAGED = ("therapy_claims", "expectations")


class BuildPyWithSuites(build_py):
    """``build_py`` plus the suites copied in as package data."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        suites = sorted(SUITES.glob("*.json"))
        if not suites:
            raise SystemExit(f"no GX suites in {SUITES}: the package would not validate a night")
        target = Path(self.build_lib).joinpath(*PACKAGED)
        target.mkdir(parents=True, exist_ok=True)
        for suite in suites:
            shutil.copy2(suite, target / suite.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        target = Path(self.build_lib).joinpath(*PACKAGED)
        return [
            *super().get_outputs(include_bytecode),
            *(str(target / p.name) for p in sorted(SUITES.glob("*.json"))),
        ]


setup(cmdclass={"build_py": BuildPyWithSuites})
