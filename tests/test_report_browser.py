"""The night's HTML report in a real headless browser (Debian's Chromium, ``tests/browser.py``):
it renders, its charts are drawn with one mark per value, nothing goes wrong in the console
and no request leaves the machine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from browser import open_page, svg_charts
from report_nights import two_nights

from therapy_claims import reports, storage

CHARTS = {
    "status",
    "held-by-clinic",
    "held-by-payer",
    "trend-clean-claim-rate",
    "trend-held-dollars",
    "trend-lines-read",
}
HEADINGS = [
    "What holds claims",
    "Held by clinic",
    "Held by payer",
    "Oldest open claims",
    "Trends (last 2 night(s))",
    "Claims after sending",
    "Files",
]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out, manifests, _ = two_nights(tmp_path_factory)
    return out, manifests


def _open_worklist(manifest: dict) -> pd.DataFrame | None:
    """The night's open worklist rows, read independently of the report (None: no worklist)."""
    folder = (manifest.get("outputs") or {}).get("worklist")
    if not folder:
        return None
    wl = storage.read_parquet(storage.join(folder, "worklist.parquet"))
    return wl[wl["status"] == "open"]


def _expected_marks(manifests: list[dict]) -> dict[str, list[str]]:
    """Per chart, the tooltip of each mark it must draw, from the manifests (and worklist)."""
    last = manifests[-1]
    rate = {
        m["run_date"]: m["claims_billed"] / (m["claims_billed"] + m["claims_held"])
        for m in manifests
        if m["claims_billed"] + m["claims_held"]
    }
    backlog = {m["run_date"]: m["worklist"] for m in manifests if m.get("worklist")}
    wl = _open_worklist(last)
    by = {}
    for col, chart in (("clinic_id", "held-by-clinic"), ("payer_id", "held-by-payer")):
        sums = {} if wl is None else wl.groupby(col)["held_dollars"].sum().to_dict()
        by[chart] = sorted(f"{k}: ${float(v):,.2f}" for k, v in sums.items())
    return {
        "status": [
            f"billed: {last['lines_billed']}",
            f"held: {last['lines_held']}",
            f"not billed: {last['lines_not_billed']}",
            f"quarantined: {last['rows_quarantined']}",
        ],
        "trend-clean-claim-rate": [f"{d}: {100 * r:.1f}%" for d, r in rate.items()],
        "trend-held-dollars": [f"{d}: ${b['held_dollars_open']:,.2f}" for d, b in backlog.items()],
        "trend-lines-read": [f"{m['run_date']}: {m['rows_in']:,}" for m in manifests],
        **by,
    }


def test_the_report_renders_with_its_charts_and_loads_nothing(night):
    out, manifests = night
    report = Path(manifests[-1]["outputs"]["reports"]) / "report.html"
    with open_page(report) as visit:
        page = visit.page
        assert page.title() == f"therapy-claims night {manifests[-1]['run_date']}"
        assert page.inner_text("h1") == f"Night {manifests[-1]['run_date']}"
        assert [h.strip() for h in page.locator("h2").all_inner_texts()] == HEADINGS
        charts = svg_charts(page)
        links = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    # one drawn chart per figure, one mark per value
    assert sorted(c["id"] for c in charts) == sorted(CHARTS)
    expected = _expected_marks(manifests)
    for c in charts:
        assert c["width"] > 0 and c["height"] > 0, c["id"]
        marks = c["bars"] + c["points"]
        shown = sorted(c["titles"]) if c["id"].startswith("held-by") else c["titles"]
        want = sorted(expected[c["id"]]) if c["id"].startswith("held-by") else expected[c["id"]]
        assert shown == want, c["id"]
        assert len(marks) == len(want), c["id"]
        assert all(w > 0 and h > 0 for w, h in c["points"]), c["id"]
    status = next(c for c in charts if c["id"] == "status")
    drawn = [w for (w, _), t in zip(status["bars"], status["titles"], strict=True)]
    assert [w > 0 for w in drawn] == [not t.endswith(": 0") for t in status["titles"]]
    assert len([c for c in charts if c["id"].startswith("trend-lines")][0]["points"]) == 2
    # nothing went wrong, and the page and its links stay on this machine
    assert visit.errors() == []
    assert visit.outside() == []
    assert visit.requests and visit.requests[0] == report.resolve().as_uri()
    assert links and all(u.startswith("file:") for u in links)


def test_a_report_with_a_worklist_draws_its_split_and_backlog_charts(tmp_path):
    # a night whose worklist and history are given (synthetic frames): every chart has data
    from report_nights import history, score_info, worklist_frame

    page = reports.html_report(
        "2026-11-28",
        {"rows_in": 40, "rows_quarantined": 2, "files": 1, "files_rejected": 0},
        score_info(),
        [],
        pd.DataFrame({"code": ["UNKNOWN_PAYER"]}),
        worklist=worklist_frame(),
        history=history(),
    )
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    with open_page(path) as visit:
        charts = {c["id"]: c for c in svg_charts(visit.page)}
    assert visit.errors() == [] and visit.outside() == []
    assert len(charts["held-by-clinic"]["bars"]) == 2  # CLN01, CLN02 (open rows only)
    assert len(charts["held-by-payer"]["bars"]) == 3
    assert all(w > 0 for w, _ in charts["held-by-clinic"]["bars"])
    # 3 earlier nights + tonight; the night before the worklist has no held dollars
    assert len(charts["trend-lines-read"]["points"]) == 4
    assert len(charts["trend-held-dollars"]["points"]) == 3
    assert len(charts["trend-clean-claim-rate"]["points"]) == 3  # one night scored no claim


def test_the_harness_sees_requests_leaving_and_errors(tmp_path):
    # the browser test can fail: a page loading from elsewhere and throwing is caught
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><title>bad</title><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('oops'); throw new Error('boom')</script>",
        encoding="utf-8",
    )
    with open_page(page) as visit:
        assert visit.page.title() == "bad"
    assert visit.outside() == ["http://127.0.0.1:9/x.png"]
    assert "oops" in visit.errors() and any("boom" in e for e in visit.errors())


def test_data_docs_open_offline_in_the_browser(night):
    """The night's Data Docs (linked from the report) and the GX project's site under the
    output root load nothing from outside the machine and raise no console errors, the
    night's pages and the site's index alike."""
    out, manifests = night
    folder = Path(manifests[-1]["outputs"]["validation"]) / "data_docs"
    pages = [folder / "index.html", *sorted(folder.rglob("*.html"))[:3]]
    site = Path(out) / "gx" / "data_docs" / "index.html"
    assert site.is_file() and pages[0].is_file()
    for page in [*pages, site]:
        with open_page(page) as visit:
            assert visit.outside() == [], page
            assert visit.errors() == [], page
            body = visit.page.inner_text("body")
            assert "extract_schema" in body or "Validation" in body or "Expectation" in body, page
