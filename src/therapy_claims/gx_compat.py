"""The one place that leans on Great Expectations internals, tied to the pinned GX version.

The checks in ``gx_checks`` and the custom expectations in ``gx_expectations`` use GX Core
through its public API, except for what is here: a setting of GX's pandas engine that is
changed while the suites run (``no_batch_fingerprint``), the environment GX starts in
(``start``), and the Data Docs site builder the nightly drives itself (``site_builder``,
``night_index``: one rendering for the site and the night's copy). ``gx_data_docs`` also
subclasses GX's Data Docs builders and views of this release (and checks it on import).
They depend on how this exact GX release behaves, so ``start`` refuses any other release
with a message that says what to do, instead of letting a patch silently miss.

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


def site_builder(ctx, site_name: str):
    """The ``SiteBuilder`` of the context's Data Docs site ``site_name``, made as
    ``ctx.build_data_docs`` makes it (``_init_site_builder_for_data_docs_site_creation``), so the
    caller gets the index data back from ``SiteBuilder.build`` (``build_data_docs`` drops it)."""
    sites = ctx.variables.data_docs_sites or {}
    if site_name not in sites:
        raise KeyError(f"GX project has no Data Docs site {site_name!r} (has {sorted(sites)})")
    return ctx._init_site_builder_for_data_docs_site_creation(
        site_name=site_name, site_config=sites[site_name]
    )


def night_index(builder, links: dict, pages: list[str]) -> tuple[str, list[str]]:
    """An index page of the site's validation ``pages`` only (site-relative paths, as
    ``validations/<suite>/<run name>/<run time>/<batch>.html``) and their suites, rendered from
    the index data ``links`` that ``SiteBuilder.build`` returned, with the site index builder's
    own renderer and view (templates compiled once). Returns ``(html, files)``: ``files`` are
    the site-relative pages the index links to."""
    import urllib.parse

    wanted = set(pages)
    kept = [
        link
        for link in links.get("validations_links", [])
        if urllib.parse.unquote(link["filepath"]) in wanted
    ]
    suites = {link["expectation_suite_name"] for link in kept}
    suite_links = [
        link
        for link in links.get("expectations_links", [])
        if link["expectation_suite_name"] in suites
    ]
    night = {k: v for k, v in links.items() if not k.endswith("_links")}
    night["validations_links"] = kept
    night["expectations_links"] = suite_links
    index = builder.site_index_builder
    rendered = index.renderer_class.render(night)
    html = index.view_class.render(
        rendered,
        data_context_id=index.data_context_id,
        show_how_to_buttons=index.show_how_to_buttons,
    )
    files = [urllib.parse.unquote(link["filepath"]) for link in (*kept, *suite_links)]
    return html, files
