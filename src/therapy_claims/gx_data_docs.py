"""Data Docs views that load nothing from outside the machine (named in great_expectations.yml).

GX 1.24's Data Docs templates load Bootstrap, jQuery, Vega, Font Awesome and GX's logo from
CDNs. A night's Data Docs must request nothing outside the machine (they are opened where there
is no internet, and a page of claims validation must not call out), so the project ships its
own templates for those parts (``expectations/plugins/custom_data_docs/views/``, README.md
there says which and why) and an inline stylesheet (``.../styles/``).

GX finds a site's ``custom_views_directory`` (``<plugins>/custom_data_docs/views``) *after* its
own templates, so a custom template can add to GX's but not replace one. These views are GX's
page and index views with the project's templates searched first: the site's section and index
builders name them in great_expectations.yml (``view: {module_name, class_name}``), GX's own
way to choose a view class. Nothing else differs.

The site's section and index builders (``QuickSectionBuilder``, ``QuickIndexBuilder``) are
GX's, changed so that a night's update of the site costs the same however many nights it
holds: GX's own builders list (and parse) every key of the results store three times and
deserialise every result the index lists, even when asked for a few pages, so the nightly's
Data Docs step grew by seconds as nights accumulated (measured in docs/great-expectations.md).

Importing this module imports GX (GX imports it only when it builds Data Docs).
"""

from __future__ import annotations

from therapy_claims import gx_compat

gx_compat.check_version()  # the templates replaced here are those of the pinned release

import json  # noqa: E402
import logging  # noqa: E402

from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ValidationResultIdentifier,
)
from great_expectations.render.renderer.site_builder import (  # noqa: E402
    FALSEY_YAML_STRINGS,
    DefaultSiteIndexBuilder,
    DefaultSiteSectionBuilder,
)
from great_expectations.render.util import resource_key_passes_run_name_filter  # noqa: E402
from great_expectations.render.view import (  # noqa: E402
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)
from jinja2 import ChoiceLoader, FileSystemLoader  # noqa: E402

logger = logging.getLogger(__name__)


def _custom_first(view) -> None:
    """Search the project's views and styles before GX's templates."""
    own = [
        FileSystemLoader(d)
        for d in (view.custom_views_directory, view.custom_styles_directory)
        if d
    ]
    if not own:
        raise RuntimeError(
            "offline Data Docs views need the project's plugins/custom_data_docs/views: "
            "is plugins_directory set in great_expectations.yml?"
        )
    view.env.loader = ChoiceLoader([*own, view.env.loader])


class OfflinePageView(DefaultJinjaPageView):
    """GX's page view (suite and validation pages) with the project's templates first."""

    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _custom_first(self)


class OfflineIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the project's templates first."""

    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _custom_first(self)


class _Only:
    """A store that lists only ``keys`` (everything else is the store's)."""

    def __init__(self, store, keys: list) -> None:
        self._store, self._keys = store, keys

    def list_keys(self) -> list:
        return self._keys

    def __getattr__(self, name):
        return getattr(self._store, name)


class QuickSectionBuilder(DefaultSiteSectionBuilder):
    """GX 1.24's ``DefaultSiteSectionBuilder``: given ``resource_identifiers`` (the nightly
    gives tonight's), it renders those of them its store holds without listing the whole store
    first (GX lists and parses every key, then keeps the given ones). Without, as GX."""

    def build(self, resource_identifiers=None) -> None:
        if not resource_identifiers:
            return super().build(resource_identifiers)
        store = self.source_store
        # as GX lists them: parsed back from the store's path (a run without a name lists as
        # "__none__", which the sections' run name filters can read)
        keys = [
            store.key_class.from_tuple(k.to_tuple())
            for k in resource_identifiers
            if isinstance(k, store.key_class) and store.has_key(k)
        ]
        self.source_store = _Only(store, keys)
        try:
            return super().build(resource_identifiers)
        finally:
            self.source_store = store


class QuickIndexBuilder(DefaultSiteIndexBuilder):
    """GX 1.24's ``DefaultSiteIndexBuilder`` with the same links in the same order, the latest
    ``validation_results_limit`` results, read without parsing every key of the site and the
    store (run times sort as written, ``%Y%m%dT%H%M%S.%fZ``) and without deserialising each
    listed result (its JSON gives what the index shows). A page whose result is gone from the
    store is left out of the index (GX also deletes it; here it stays on disk)."""

    def _build_validation_and_profiling_result_site_keys(self, skip_and_clean_missing: bool):
        section = self.site_section_builders_config.get("validations", "None")
        if not section or section in FALSEY_YAML_STRINGS:
            return super()._build_validation_and_profiling_result_site_keys(skip_and_clean_missing)
        pages = self.target_store.store_backends[ValidationResultIdentifier].list_keys()
        pages = sorted(pages, key=lambda t: t[-2], reverse=True)  # (..., run time, batch id)
        if self.validation_results_limit:
            pages = pages[: self.validation_results_limit]
        keys = [ValidationResultIdentifier.from_tuple(t) for t in pages]
        store = self.data_context.stores[self._results_store_name()]
        return [k for k in keys if store.has_key(k)] if skip_and_clean_missing else keys

    def _results_store_name(self) -> str:
        return self.source_stores.get("validations") or (
            self.data_context.validation_results_store_name
        )

    def _add_validations_to_index_links(self, index_links_dict, site_keys) -> None:
        section = self.site_section_builders_config.get("validations", "None")
        if not section or section in FALSEY_YAML_STRINGS:
            return
        run_name_filter = self.site_section_builders_config["validations"]["run_name_filter"]
        keys = sorted(
            (k for k in site_keys if resource_key_passes_run_name_filter(k, run_name_filter)),
            key=lambda k: k.run_id.run_time,
            reverse=True,
        )
        if self.validation_results_limit:
            keys = keys[: self.validation_results_limit]
        backend = self.data_context.stores[self._results_store_name()].store_backend
        for key in keys:
            try:
                doc = json.loads(backend.get(key.to_tuple()))
            except Exception:  # noqa: BLE001 - as GX: a result that cannot be read is skipped
                logger.warning("Validation result not found: %s - skipping", key.to_tuple())
                continue
            meta = doc.get("meta") or {}
            batch_kwargs = meta.get("batch_kwargs") or {}
            batch_spec = meta.get("batch_spec") or {}
            asset = (
                batch_kwargs.get("data_asset_name")
                or batch_spec.get("data_asset_name")
                or (meta.get("active_batch_definition") or {}).get("data_asset_name")
            )
            self.add_resource_info_to_index_links_dict(
                index_links_dict=index_links_dict,
                expectation_suite_name=key.expectation_suite_identifier.name,
                section_name="validations",
                batch_identifier=key.batch_identifier,
                run_id=key.run_id,
                validation_success=doc.get("success"),
                run_time=key.run_id.run_time,
                run_name=key.run_id.run_name,
                asset_name=asset,
                batch_kwargs=batch_kwargs,
                batch_spec=batch_spec,
            )
