"""The one place that leans on Great Expectations internals, tied to the pinned GX version.

The checks in ``gx_checks`` and the custom expectations in ``gx_expectations`` use GX Core
through its public API, except for what is here: a setting of GX's pandas engine that is
changed while the suites run (``no_batch_fingerprint``), and the environment GX starts in
(``start``). Both depend on how this exact GX release behaves, so ``start`` refuses any other
release with a message that says what to do, instead of letting a patch silently miss.

Importing this module does nothing (no GX import, no environment change): Airflow parses DAG
files that import this package, and ``import great_expectations`` takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

PINNED_VERSION = "1.24.1"  # requirements.txt: great-expectations==1.24.1
DISTRIBUTION = "great-expectations"
ANALYTICS_ENV = "GX_ANALYTICS_ENABLED"


class GXVersionError(RuntimeError):
    """The installed GX is not the release the patches here were written for."""


def installed_version() -> str | None:
    """The installed GX release, or None when GX is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def check_version(installed: str | None = None) -> None:
    """Raise ``GXVersionError`` unless GX ``installed`` (default: the installed release) is
    ``PINNED_VERSION``."""
    found = installed if installed is not None else installed_version()
    if found == PINNED_VERSION:
        return
    what = "is not installed" if found is None else f"{found} is installed"
    raise GXVersionError(
        f"therapy_claims needs {DISTRIBUTION}=={PINNED_VERSION}, but {what}. The GX checks "
        f"patch GX internals of that release (therapy_claims.gx_compat): install the pinned "
        f"version (pip install -r requirements.txt), or port gx_compat to the new release "
        f"and change the pin in requirements.txt and gx_compat.PINNED_VERSION together."
    )


def start() -> None:
    """Call before GX is imported or used: checks the release and turns GX's usage statistics
    off (``GX_ANALYTICS_ENABLED=false``; a night's run must not call out)."""
    check_version()
    os.environ[ANALYTICS_ENV] = "false"


@contextmanager
def no_batch_fingerprint() -> Iterator[None]:
    """GX's pandas engine md5-hashes every batch frame smaller than its ``HASH_THRESHOLD``
    (1e9 bytes, by shallow memory use) into the results' batch markers
    (``pandas_data_fingerprint``), and skips that for larger frames. A night's Categoricals
    are small to that measure but not to hash: their categories are hashed as Python strings
    (docs/performance.md has what that cost). Within this block every batch counts as large; the
    setting is put back afterwards. The manifest records each input file's SHA-256, which
    identifies the night's data instead."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    before = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = before
