"""docs/ is the project's contract: it must name what the code does, no more and no less."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from therapy_claims import config, findings, layout, schemas
from therapy_claims.catalogue import CATALOGUE

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = (
    "README.md",
    "extract-format.md",
    "outputs.md",
    "data-dictionary.md",
    "rules.md",
    "performance.md",
    "architecture.md",
    "analytics.md",
    "great-expectations.md",
)


def _table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the first Markdown table whose header row starts with ``header``, as
    cells without their backquotes."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("`", "") for c in line.strip("|").split("|")])
    return rows


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_page_exists_and_the_index_links_them():
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        assert (DOCS / page).is_file(), page
        if page != "README.md":
            assert f"]({page})" in index, page


def test_rules_page_lists_exactly_the_catalogue():
    rows = _table_rows((DOCS / "rules.md").read_text(), "code")
    codes = [r[0] for r in rows]
    assert len(codes) == len(set(codes)), "a code is listed twice"
    assert set(codes) == set(CATALOGUE)
    for code, severity, *_, owner in rows:
        assert severity == CATALOGUE[code].severity, code
        assert owner == CATALOGUE[code].owner, code


def test_extract_page_lists_exactly_the_layout():
    rows = _table_rows((DOCS / "extract-format.md").read_text(), "column")
    assert [r[0] for r in rows] == list(layout.COLUMN_NAMES)
    required = {r[0] for r in rows if r[1] == "yes"}
    assert required == set(layout.REQUIRED_COLUMNS)


def test_outputs_page_matches_the_published_layers_and_columns():
    text = (DOCS / "outputs.md").read_text()
    layout_paths = [r[0] for r in _table_rows(text, "path under the output root")]
    for kind in config.PUBLISHED_DIRS:
        assert any(p.startswith(f"{kind}/run_date=D/") for p in layout_paths), kind
    scored = [
        c.strip() for r in _table_rows(_section(text, "scored"), "column") for c in r[0].split(",")
    ]
    assert scored == schemas.SCORED.names
    exceptions = [
        c.strip()
        for r in _table_rows(_section(text, "exceptions"), "column")
        for c in r[0].split(",")
    ]
    assert set(findings.FINDING_COLUMNS) <= set(exceptions)
    assert exceptions == schemas.EXCEPTIONS.names
    worklist = [
        c.strip()
        for r in _table_rows(_section(text, "worklist"), "column")
        for c in r[0].split(",")
    ]
    assert worklist == schemas.WORKLIST.names


OUTSIDE = re.compile(
    r"\.\./shared|shared/spec|(?<![\w.=-])/work/"
)  # /work/...: a path of this machine


SOURCES = sorted(
    p
    for folder in ("src", "dags", "plugins", "tests", "docker")
    for p in (REPO / folder).rglob("*")
    if p.suffix in (".py", ".md", ".sh", ".json") and p.name != "test_docs.py"
)


@pytest.mark.parametrize(
    "path",
    [REPO / "README.md", REPO / "Makefile", *(DOCS / p for p in PAGES), *SOURCES],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_no_path_outside_the_repository(path):
    """A clone has only the repository: nothing it ships or tests may point outside it."""
    assert not OUTSIDE.findall(path.read_text(encoding="utf-8"))
