"""Checks on the built HTML book: it must work with no network (no CDN), with plotly, widgets and maths in place.

Run after `bash scripts/build_book.sh` (scripts/test.sh does so and sets JITLIB_BOOK_BUILT=1, making a missing build a failure).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jitlib.device import tier

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"

if not (HTML / "index.html").exists():
    if os.environ.get("JITLIB_BOOK_BUILT"):
        raise RuntimeError(f"the book should have been built, but {HTML / 'index.html'} does not exist")
    pytest.skip("book not built (run scripts/build_book.sh first)", allow_module_level=True)

PAGES = sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts and "vendor" not in p.parts)


class _Resources(HTMLParser):
    """Collects every script source and stylesheet address of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"] or "")
        if tag == "link" and "stylesheet" in (a.get("rel") or "") and a.get("href"):
            self.urls.append(a["href"] or "")


def resources(page: Path) -> list[str]:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def test_pages_were_built() -> None:
    names = {p.name for p in PAGES}
    assert "preface.html" in names and len(PAGES) >= 2


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_page_loads_nothing_from_the_network(page: Path) -> None:
    remote = [u for u in resources(page) if re.match(r"^(https?:)?//", u)]
    assert not remote, f"{page.name} loads scripts/stylesheets from the network: {remote}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_local_resources_exist(page: Path) -> None:
    for url in resources(page):
        target = (page.parent / url.split("?")[0].split("#")[0]).resolve()
        assert target.exists(), f"{page.name} refers to {url}, which is not in the built book"


def test_mathjax_is_served_by_the_book() -> None:
    preface = (HTML / "book" / "preface.html").read_text(encoding="utf-8")
    assert any("vendor/mathjax/tex-chtml-full.js" in u for u in resources(HTML / "book" / "preface.html"))
    assert r"\varepsilon" in preface  # the display maths reached the page for MathJax to typeset


def test_plotly_is_served_once_for_the_whole_site() -> None:
    preface = (HTML / "book" / "preface.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in preface, "no plotly figure in the preface"
    library = HTML / "_static" / "plotly.min.js"
    assert library.exists() and re.search(r"plotly\.js v\d", library.read_text(encoding="utf-8")[:300])
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"\* plotly\.js v\d", text), f"{page.name} embeds its own copy of plotly.js"
        if "Plotly.newPlot" in text:
            assert any(u.split("?")[0].endswith("_static/plotly.min.js") for u in resources(page)), page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_no_page_weighs_more_than_1_5_mb(page: Path) -> None:
    assert page.stat().st_size < 1.5e6, f"{page.name} is {page.stat().st_size / 1e6:.2f} MB"


def test_widgets_are_embedded_with_a_local_manager() -> None:
    page = HTML / "book" / "preface.html"
    text = page.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in text
    assert any(u.split("?")[0].endswith("vendor/html-manager/embed-amd.js") for u in resources(page))


def _execution_rows() -> dict[str, tuple[float, str]]:
    """{docname: (seconds, status)} from the build's execution table (book/appendix_execution.md)."""
    page = (HTML / "book" / "appendix_execution.html").read_text(encoding="utf-8")
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, flags=re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        ]
        if len(cells) == 5:  # Document, Modified, Method, Run Time (s), Status
            rows[cells[0]] = (float(cells[3]) if cells[3] != "-" else float("inf"), cells[4])
    return rows


def test_every_notebook_ran_in_the_build_and_under_90_seconds() -> None:
    """The build executes every notebook (a raising cell fails it); its own table must list each one as succeeded,
    in under 90 s: the tiny tier's budget on two CPU cores. This replaces running every notebook a second time."""
    rows = _execution_rows()
    notebooks = sorted(f"book/{p.stem}" for p in (ROOT / "book").glob("*.ipynb"))
    assert sorted(rows) == notebooks, (sorted(rows), notebooks)
    failed = {name: status for name, (_, status) in rows.items() if status != "✅"}
    assert not failed, failed
    if tier() == "tiny":  # the full tier (a GPU) takes as long as its chapters say
        slow = {name: seconds for name, (seconds, _) in rows.items() if not seconds < 90}
        assert not slow, slow
