"""expectations/ as a GX file project: GX's own tooling loads it, nights accumulate in its
stores under the output root, and the Data Docs request nothing outside the machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_gx_checks import typed_frame

from therapy_claims import gx_checks, gx_project

NIGHTS = ("2025-01-15", "2025-01-16")


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """Two nights validated into one store (``<out>/gx``), each with its own validation folder."""
    out = tmp_path_factory.mktemp("out")
    store = out / "gx"
    frames = [
        typed_frame({}, {"start_time": "10:00", "end_time": "10:00"}),  # one time finding
        typed_frame({}, {"patient_sex": "X"}, {}),  # one schema finding
    ]
    nights = {}
    for night, frame in zip(NIGHTS, frames, strict=True):
        folder = out / "validation" / f"run_date={night}" / "run=R"
        found, summary = gx_checks.run_suites(
            frame, str(folder), night, gx_store=str(store), run_name=f"run_date={night}.run=R"
        )
        nights[night] = (folder, found, summary)
    return out, store, nights


def _gx_context(store: Path):
    import great_expectations as gx

    return gx.get_context(
        context_root_dir=str(gx_checks.expectations_dir()),
        runtime_environment={gx_project.STORE_VARIABLE: str(store)},
    )


def test_gx_loads_the_project_with_its_suites_and_checkpoint(tmp_path):
    import great_expectations as gx

    gx_checks.load_suite("time_consistency")  # registers the custom expectations
    ctx = _gx_context(tmp_path / "gx")
    assert type(ctx).__name__ == "FileDataContext"
    assert sorted(s.name for s in ctx.suites.all()) == sorted(gx_checks.SUITES)
    checkpoint = ctx.checkpoints.get("nightly")
    assert [vd.name for vd in checkpoint.validation_definitions] == list(gx_checks.SUITES)
    for vd in checkpoint.validation_definitions:
        listed = json.loads(gx_project.suite_path(vd.name).read_text())["expectations"]
        assert len(vd.suite.expectations) == len(listed) > 0
        assert vd.data_source.name == "raw" and vd.asset.name == "raw_rows"
    assert checkpoint.result_format == gx_checks.SUMMARY_FORMAT  # what the nightly runs
    (action,) = checkpoint.actions
    assert isinstance(action, gx.checkpoint.UpdateDataDocsAction)
    assert action.site_names == [gx_project.SITE]
    # the stores under the given folder, not in the project
    base = Path(ctx.validation_results_store.store_backend.full_base_directory)
    assert base == (tmp_path / "gx" / "validations").resolve()


def test_opening_the_project_writes_nothing_into_it(tmp_path):
    gx_checks.load_suite("time_consistency")
    project = gx_checks.expectations_dir()

    def snapshot():
        return {p: p.stat().st_mtime_ns for p in project.rglob("*") if "uncommitted" not in p.parts}

    before = snapshot()
    _gx_context(tmp_path / "gx").checkpoints.get("nightly")
    assert snapshot() == before


def test_nights_accumulate_in_the_results_store_found_by_gx(two_nights):
    _, store, nights = two_nights
    ctx = _gx_context(store)
    keys = ctx.validation_results_store.list_keys()
    runs = {k.run_id.run_name for k in keys}
    assert runs == {f"run_date={n}.run=R" for n in NIGHTS}
    assert len(keys) == len(NIGHTS) * len(gx_checks.SUITES)
    by_night_suite = {
        (
            k.run_id.run_name[9:19],
            k.expectation_suite_identifier.name,
        ): ctx.validation_results_store.get(k)
        for k in keys
    }
    # each stored result is the night's: same success as the summary the run returned
    for night, (_, _, summary) in nights.items():
        for suite, s in summary.items():
            assert by_night_suite[night, suite].success is s["success"], (night, suite)
    assert by_night_suite["2025-01-15", "time_consistency"].success is False
    assert by_night_suite["2025-01-16", "time_consistency"].success is True
    assert by_night_suite["2025-01-16", "extract_schema"].success is False


def test_the_site_lists_every_night_and_each_night_folder_only_its_own(two_nights):
    out, store, nights = two_nights
    site = store / "data_docs"
    index = (site / "index.html").read_text()
    for night in NIGHTS:
        assert f"run_date={night}.run=R" in index
    pages = sorted(p.relative_to(site) for p in (site / "validations").rglob("*.html"))
    assert len(pages) == len(NIGHTS) * len(gx_checks.SUITES)
    for night, (folder, _, _) in nights.items():
        docs = folder / "data_docs"
        own = sorted(p.relative_to(docs) for p in (docs / "validations").rglob("*.html"))
        assert len(own) == len(gx_checks.SUITES)
        assert all(f"run_date={night}.run=R" in str(p) for p in own)
        for p in own:  # the same page as the site's, not a second rendering
            assert (docs / p).read_bytes() == (site / p).read_bytes()
        night_index = (docs / "index.html").read_text()
        other = next(n for n in NIGHTS if n != night)
        assert f"run_date={night}.run=R" in night_index and other not in night_index
        # every link of the night's index leads to a page in the night's folder
        for href in _resources(docs / "index.html")["a"]:
            if not href.startswith(("#", "http")):
                assert (docs / _unquote(href)).is_file(), href
        assert all(s in night_index for s in gx_checks.SUITES)
        for suite in gx_checks.SUITES:
            assert (folder / f"{suite}.json").is_file()


def test_rerun_of_a_night_replaces_its_folder_and_adds_to_the_store(tmp_path):
    store, folder = tmp_path / "gx", tmp_path / "night"
    for run in ("R1", "R2"):
        gx_checks.run_suites(
            typed_frame({}),
            str(folder),
            NIGHTS[0],
            ("time_consistency",),
            gx_store=str(store),
            run_name=f"run_date={NIGHTS[0]}.run={run}",
        )
    own = list((folder / "data_docs" / "validations").rglob("*.html"))
    assert len(own) == 1 and "run=R2" in str(own[0])
    assert len(list((store / "validations").rglob("*.json"))) == 2


def test_a_nights_site_update_does_not_read_the_whole_store(tmp_path, monkeypatch):
    """Updating the site with a night costs the same however many nights it holds: the
    results store is never listed whole, and the index lists the latest 60 results, newest
    first, tonight's among them."""
    from great_expectations.data_context.store.store import Store

    store, frame = tmp_path / "gx", typed_frame({})
    night = (NIGHTS[0], "time_consistency")
    gx_checks.run_suites(
        frame,
        str(tmp_path / "n0"),
        night[0],
        night[1:],
        gx_store=str(store),
        run_name="run_date=2025-01-15.run=R0",
    )
    # 70 older nights of the suite: copies of that night's result and page, earlier run times
    for sub, suffix in (("validations", ".json"), ("data_docs/validations", ".html")):
        (src,) = (store / sub).rglob(f"*{suffix}")
        for j in range(70):
            copy = src.parents[2] / f"run_date=2024-10-{j % 28 + 1:02d}.run=C{j}"
            copy = copy / f"20241001T{j // 60:02d}{j % 60:02d}00.000000Z" / src.name
            copy.parent.mkdir(parents=True)
            copy.write_bytes(src.read_bytes())
    listed = []
    real = Store.list_keys
    monkeypatch.setattr(Store, "list_keys", lambda self: listed.append(self) or real(self))
    gx_checks.run_suites(
        frame,
        str(tmp_path / "n1"),
        NIGHTS[1],
        night[1:],
        gx_store=str(store),
        run_name="run_date=2025-01-16.run=R1",
    )
    assert not [s for s in listed if "Validation" in type(s).__name__]
    rows = _index_rows(store / "data_docs" / "index.html")
    assert len(rows) == 60
    assert "run_date=2025-01-16.run=R1" in rows[0] and "run_date=2025-01-15.run=R0" in rows[1]
    # GX's own full rebuild (no identifiers) still works with these builders: every page
    monkeypatch.setattr(Store, "list_keys", real)
    ctx = _gx_context(store)
    ctx.build_data_docs()
    assert len(_index_rows(store / "data_docs" / "index.html")) == 60


def _index_rows(index: Path) -> list[str]:
    html = index.read_text()
    table = html[html.index("<tbody>") : html.index("</tbody>")]
    return table.split("<tr>")[1:]


def test_gx_users_can_run_the_nightly_checkpoint_by_hand(tmp_path):
    """checkpoint.run on a night's frame (all columns, one frame for every suite) gives the
    results the nightly's run gives, and its UpdateDataDocsAction writes the site."""
    frame = typed_frame({}, {"start_time": "10:00", "end_time": "10:00"}, {"patient_sex": "X"})
    _, summary = gx_checks.run_suites(frame, str(tmp_path / "night"), NIGHTS[0])
    ctx = _gx_context(tmp_path / "gx")
    result = ctx.checkpoints.get("nightly").run(batch_parameters={"dataframe": frame})
    by_suite = {r.suite_name: r for r in result.run_results.values()}
    for name, s in summary.items():
        stats = by_suite[name].statistics
        assert by_suite[name].success is s["success"], name
        assert stats["evaluated_expectations"] == s["evaluated"], name
        assert stats["unsuccessful_expectations"] == s["failed_expectations"], name
    assert (tmp_path / "gx" / "data_docs" / "index.html").is_file()
    assert _external(tmp_path / "gx" / "data_docs" / "index.html") == []


# ------------------------------------------------------------------------- offline Data Docs


class _Resources(HTMLParser):
    """What a page would load: link href, script src, img/source/iframe/embed src, srcset,
    url(...) in style elements and attributes; and the anchors (navigation, not loaded)."""

    LOADS = {
        "link": ("href",),
        "script": ("src",),
        "img": ("src", "srcset"),
        "source": ("src", "srcset"),
        "iframe": ("src",),
        "embed": ("src",),
        "object": ("data",),
        "video": ("src", "poster"),
        "audio": ("src",),
        "input": ("src",),
    }

    def __init__(self):
        super().__init__()
        self.found: dict[str, list[str]] = {"load": [], "a": [], "style": [], "script": []}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.LOADS.get(tag, ()):
            if attrs.get(name):
                self.found["load"].append(attrs[name])
        if tag == "a" and attrs.get("href"):
            self.found["a"].append(attrs["href"])
        if attrs.get("style"):
            self.found["style"].append(attrs["style"])
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in:
            self.found[self._in].append(data)


def _resources(page: Path) -> dict[str, list[str]]:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def _unquote(href: str) -> str:
    import urllib.parse

    return urllib.parse.unquote(href.split("#")[0])


EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)


def _external(page: Path) -> list[str]:
    found = _resources(page)
    bad = [u for u in found["load"] if EXTERNAL.match(u)]
    for css in found["style"]:
        bad += [u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", css) if EXTERNAL.match(u)]
        bad += re.findall(r"@import\s+['\"]?(?:url\()?\s*['\"]?((?:https?:)?//[^'\")\s;]+)", css)
    for js in found["script"]:  # a script that would fetch or load from elsewhere
        bad += re.findall(r"""['"`]((?:https?:)?//[^'"`]+)['"`]""", js)
    return bad


def test_no_data_docs_page_requests_anything_outside_the_machine(two_nights):
    out, _, _ = two_nights
    pages = sorted(out.rglob("*.html"))
    assert len(pages) >= 2 * (
        1 + 2 * len(gx_checks.SUITES)
    )  # site + nights: index, suites, results
    assert {p: _external(p) for p in pages if _external(p)} == {}


def test_the_check_finds_what_gx_pages_load(tmp_path):
    """The parser sees GX's own CDN references (so the test above can fail)."""
    page = tmp_path / "gx.html"
    page.write_text(
        '<html><head><link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/b.css"/>'
        '<script src="https://code.jquery.com/jquery.js"></script>'
        "<style>.logo { background: url('https://example.org/logo.png') }</style></head>"
        '<body><img src="//cdn.example.org/x.png"><a href="https://greatexpectations.io">GX</a>'
        '<script>fetch("https://example.org/t")</script></body></html>'
    )
    assert len(_external(page)) == 5  # the anchor is navigation, not a request


def test_the_pages_are_readable_without_scripts(two_nights):
    """The tables GX draws with JavaScript are plain HTML: the results, with their status and a
    link to each page, are in the markup; every page carries the inline stylesheet."""
    _, store, _ = two_nights
    index = store / "data_docs" / "index.html"
    html = index.read_text()
    table = html[html.index("<table") : html.index("</table>")]
    rows = table.count("<tr") - 1  # minus the header
    assert rows == len(NIGHTS) * len(gx_checks.SUITES)
    assert table.count(">Failed</a>") == 2 and table.count(">Success</a>") == 6
    for page in (store / "data_docs").rglob("*.html"):
        styles = "".join(_resources(page)["style"])
        assert ".tc-navbar" in styles, page  # the project's stylesheet, inline
        assert "bootstrapTable" not in page.read_text() and "$(" not in page.read_text(), page


# ----------------------------------------------------------------------------- whole runs


def test_a_nightly_run_writes_the_project_stores_under_the_output_root(tmp_path):
    """Two nights through the command line; then GX, in a fresh process with only the
    environment variable set, finds both nights' results."""
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    env.pop(gx_checks.ENV_EXPECTATIONS, None)
    out = tmp_path / "out"
    for night in NIGHTS:
        extract = tmp_path / f"encounters_{night}.csv"
        cli = [sys.executable, "-m", "therapy_claims"]
        for args in (
            ["generate", "--encounters", "40", "--out", str(extract), "--run-date", night],
            ["run", "--input", str(extract), "--out", str(out), "--run-date", night],
        ):
            done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
    manifests = [json.loads((out / "manifest" / f"run_date={n}.json").read_text()) for n in NIGHTS]
    code = (
        "import json, great_expectations as gx, therapy_claims.gx_expectations\n"
        "import sys\n"
        "ctx = gx.get_context(context_root_dir=sys.argv[1])\n"
        "keys = ctx.validation_results_store.list_keys()\n"
        "print(json.dumps(sorted({k.run_id.run_name for k in keys})))\n"
        "print(len(keys), ctx.checkpoints.get('nightly').name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(gx_checks.expectations_dir())],
        env={**env, gx_project.STORE_VARIABLE: str(out / "gx")},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names, count = done.stdout.splitlines()
    assert json.loads(names) == [f"run_date={m['run_date']}.run={m['run_id']}" for m in manifests]
    assert count == f"{len(NIGHTS) * len(gx_checks.SUITES)} nightly"
    assert (out / "gx" / "data_docs" / "index.html").is_file()
    for m in manifests:  # the validation layer keeps the night's own results and Data Docs
        folder = Path(m["outputs"]["validation"])
        folder = folder if folder.is_absolute() else tmp_path / folder
        assert (folder / "data_docs" / "index.html").is_file()
        assert (folder / "extract_schema.json").is_file()
