"""The Great Expectations file project (``expectations/``) and its stores under the output root.

``expectations/`` is a GX Core 1.x file data context, laid out as GX users know it
(docs/great-expectations.md): ``great_expectations.yml``, the suites under its expectations
store (``expectations/expectations/<suite>.json``), one validation definition per suite and the
nightly checkpoint (``checkpoints/nightly.json``). Its validation results store and Data Docs
site are not in the project: ``${THERAPY_CLAIMS_GX_STORE}/validations/`` and
``${THERAPY_CLAIMS_GX_STORE}/data_docs/``, which a night's run sets to ``<out>/gx``, so every
night's results accumulate beside the night's layers and ``gx.get_context(context_root_dir=
"expectations")`` (with that variable set) finds the suites, the checkpoint and past results.

Why the nightly does not simply call ``checkpoint.run``: a checkpoint hands every validation
definition the same frame, and GX's pandas engine filters the whole frame per expectation, so
``gx_checks`` gives each suite only its own columns (docs/performance.md) and runs the
checkpoint's validation definitions one by one (each stores its result in the project's
validation results store, as in a checkpoint run). It then does what the checkpoint's
``UpdateDataDocsAction`` does, once for the whole run instead of once per result
(``build_docs``): the site's pages for tonight's results and suites, and its index.

The night's own Data Docs (``validation/run_date=D/run=R/data_docs/``, docs/outputs.md) are
not rendered a second time: tonight's pages are copied from the site, and the night's index is
rendered from the same index data, kept to tonight's links (``gx_compat.night_index``).

Importing this module imports no GX (Airflow parses DAG files that import the package).
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Any

from therapy_claims import gx_compat, storage

ENV_PROJECT = "THERAPY_CLAIMS_EXPECTATIONS"
STORE_VARIABLE = "THERAPY_CLAIMS_GX_STORE"  # great_expectations.yml: ${THERAPY_CLAIMS_GX_STORE}
GX_YML = "great_expectations.yml"
SUITES_DIR = "expectations"  # the expectations store's folder inside the project
CHECKPOINT = "nightly"
SITE = "local_site"
PACKAGED_DIR = "expectations"  # inside the package; setup.py copies the project there
STORE_DIR = "gx"  # <out>/gx: the project's validation results store and Data Docs site
DOCS_DIR = "data_docs"


class ProjectError(RuntimeError):
    """The GX project cannot be found or is not a GX project."""


def project_dir() -> Path:
    """The GX project folder (holding ``great_expectations.yml``), first found of:

    1. env ``THERAPY_CLAIMS_EXPECTATIONS`` (must be a GX project: a wrong setting is an error,
       never a silent fallback);
    2. the project shipped inside the installed package (``therapy_claims/expectations``,
       copied in by the build, read through ``importlib.resources``);
    3. the source checkout's top-level ``expectations/`` (running from ``src/`` or an editable
       install, where nothing is copied)."""
    env = os.environ.get(ENV_PROJECT)
    if env:
        path = Path(env)
        if not (path / GX_YML).is_file():
            raise ProjectError(f"GX project not found: {ENV_PROJECT}={env!r} has no {GX_YML}")
        return path
    packaged = resources.files(__package__).joinpath(PACKAGED_DIR)
    if isinstance(packaged, Path) and (packaged / GX_YML).is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "expectations"
    if (checkout / GX_YML).is_file():
        return checkout
    raise ProjectError(
        f"GX project not found: neither {packaged} (installed package) nor {checkout} "
        f"(source checkout) holds a {GX_YML}; set {ENV_PROJECT}"
    )


def suite_path(name: str) -> Path:
    """The suite's JSON in the project's expectations store."""
    return project_dir() / SUITES_DIR / f"{name}.json"


def store_root(out: str) -> str:
    """``<out>/gx``: where a night's run keeps the project's validation results and Data Docs."""
    return storage.join(out, STORE_DIR)


def context(store: str | os.PathLike):
    """The project as a GX ``FileDataContext`` whose validation results store and Data Docs
    site live under the local folder ``store`` (``${THERAPY_CLAIMS_GX_STORE}``).

    Call after ``gx_compat.start`` and after importing the custom expectations (the stored
    suites name them). Opening writes nothing into the project (its stores keep no backend id
    file), only the two store folders under ``store``."""
    import great_expectations as gx

    return gx.get_context(
        context_root_dir=str(project_dir()),
        runtime_environment={STORE_VARIABLE: str(Path(store).resolve())},
    )


def build_docs(
    ctx, store: str | os.PathLike, run_results: dict[Any, Any], night_docs: Path | None
) -> None:
    """What the checkpoint's ``UpdateDataDocsAction`` does, once for all of ``run_results``
    (``{ValidationResultIdentifier: result}``): render their pages and their suites' pages into
    the site and rebuild its index. With ``night_docs``, also the night's own Data Docs there:
    the same pages (copied, not rendered again) and an index of only these results."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suites = {
        ExpectationSuiteIdentifier(name=key.expectation_suite_identifier.name)
        for key in run_results
    }
    builder = gx_compat.site_builder(ctx, SITE)
    _, links = builder.build(resource_identifiers=[*run_results, *suites])
    if night_docs is None:
        return
    site = Path(store).resolve() / DOCS_DIR
    page, files = gx_compat.night_index(builder, links, [_page(key) for key in run_results])
    if night_docs.exists():  # a rerun of the run date replaces, never accumulates, the docs
        shutil.rmtree(night_docs)
    for rel in files:
        target = night_docs / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site / rel, target)
    (night_docs / "index.html").write_text(page, encoding="utf-8")


def _page(key) -> str:
    """The site's page of a validation result, relative to the site (GX's index link, decoded):
    ``validations/<suite>/<run name>/<run time>/<batch id>.html``."""
    return "/".join(("validations", *key.to_tuple())) + ".html"


def unquote(path: str) -> str:
    """A Data Docs link (URL-encoded, relative) as a relative file path."""
    return urllib.parse.unquote(path)
