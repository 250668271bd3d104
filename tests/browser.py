"""A page opened in a real headless browser, for tests: Debian's Chromium driven by
Playwright for Python.

Playwright's own browser builds are never downloaded (no ``playwright install``): the system's
``chromium`` (the Debian package, installed by ``.ci/run``) is launched by path. Every request
the page makes is recorded, and any that is not ``file:`` or ``data:`` is aborted before it
leaves the machine (and recorded), so a test can assert that a page loads nothing from
anywhere. Console messages and uncaught page errors are recorded too.

    from browser import open_page

    with open_page(path) as visit:
        assert visit.page.title() == "..."
        assert visit.errors() == [] and visit.outside() == []
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOCAL_SCHEMES = ("file:", "data:", "about:")
INSTALL_HINT = "apt-get install -y chromium (.ci/run does this)"


def chromium_path() -> str:
    """The system Chromium, or the test fails (under CI, or where apt could install it) or is
    skipped (only where this machine has no apt to install it) with one clear message."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true" or shutil.which("apt-get"):
        pytest.fail(
            f"the browser tests need Debian's Chromium, which is not installed: {INSTALL_HINT}"
        )
    pytest.skip(
        "no chromium and no apt-get on this machine to install it (Debian's chromium package)"
    )
    raise AssertionError("unreachable")


@dataclass
class Visit:
    """One page load: the Playwright ``page`` (still open inside ``open_page``) and what the
    browser saw while loading it."""

    page: object
    requests: list[str] = field(default_factory=list)  # every request's URL, in order
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    blocked: list[str] = field(default_factory=list)  # requests aborted: not file:/data:

    def errors(self) -> list[str]:
        """Console errors and uncaught page errors."""
        return [t for kind, t in self.console if kind == "error"] + self.page_errors

    def outside(self) -> list[str]:
        """Requests that would have left the machine (none was let through)."""
        seen = [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]
        return sorted(set(seen) | set(self.blocked))


@contextmanager
def open_page(target: str | Path, *, width: int = 1200, height: int = 900) -> Iterator[Visit]:
    """Open ``target`` (a file path or a URL) in headless Chromium and wait for its ``load``
    event; yields the ``Visit`` while the page is open."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need playwright (requirements.txt pins it): make venv")
    executable = chromium_path()
    url = (
        target if isinstance(target, str) and ":" in target[:8] else Path(target).resolve().as_uri()
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            visit = Visit(page)

            def route(r) -> None:
                if r.request.url.startswith(LOCAL_SCHEMES):
                    r.continue_()
                else:
                    visit.blocked.append(r.request.url)
                    r.abort("blockedbyclient")

            context.route("**/*", route)
            page.on("request", lambda req: visit.requests.append(req.url))
            page.on("console", lambda msg: visit.console.append((msg.type, msg.text)))
            page.on("pageerror", lambda exc: visit.page_errors.append(str(exc)))
            page.goto(url, wait_until="load")
            yield visit
        finally:
            browser.close()


def svg_charts(page) -> list[dict]:
    """Every ``svg.chart`` of the page: its ``data-chart`` id, drawn size and the number of
    its data marks (``.bar`` and ``.point``), with each mark's drawn size."""
    return page.evaluate(
        """() => [...document.querySelectorAll('svg.chart')].map(svg => {
            const box = svg.getBoundingClientRect();
            const size = el => { const b = el.getBBox(); return [b.width, b.height]; };
            return {
                id: svg.dataset.chart,
                width: box.width,
                height: box.height,
                bars: [...svg.querySelectorAll('.bar')].map(size),
                points: [...svg.querySelectorAll('.point')].map(size),
                titles: [...svg.querySelectorAll('.bar > title, .point > title')]
                    .map(t => t.textContent),
            };
        })"""
    )
