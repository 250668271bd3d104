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

Importing this module imports GX (GX imports it only when it builds Data Docs).
"""

from __future__ import annotations

from therapy_claims import gx_compat

gx_compat.check_version()  # the templates replaced here are those of the pinned release

from great_expectations.render.view import (  # noqa: E402
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)
from jinja2 import ChoiceLoader, FileSystemLoader  # noqa: E402


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
