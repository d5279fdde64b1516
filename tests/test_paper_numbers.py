"""The paper's figures live once, in jitlib.book.paper; the built pages quote them correctly; notebooks do not retype them.

The built-page part runs after `bash scripts/build_book.sh` (scripts/test.sh sets JITLIB_BOOK_BUILT=1).
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jitlib.book import paper

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


def test_the_checker_catches_a_wrong_attribution() -> None:
    wrong = "FID 1.82 for JiT-G/16 at 256 × 256, 4.37 for JiT-B/16 after 600 epochs (Li & He, 2025)."
    assert paper.check_text(wrong) and not paper.check_text(wrong.replace("4.37", "3.66"))
    assert paper.check_text("The paper reports FID 4.71 here.")
    assert not paper.check_text(
        "A user got FID 4.71 with the README recipe."
    )  # a reproduction, not the paper


def test_tables_agree_where_the_paper_repeats_a_number() -> None:
    assert paper.TAB2_256["v"]["x"] == paper.TAB3[-0.8]["x"] == paper.FIG4_BOTTLENECK[768]
    assert paper.TAB4["JiT-B/16"]["baseline"][0] == paper.FIG4_BOTTLENECK[128]
    assert paper.TAB4["JiT-B/16"]["in_context"][1] == paper.fid("JiT-B/16", 200)
    assert paper.TAB4["JiT-L/16"]["in_context"][1] == paper.fid("JiT-L/16", 200)
    assert all(paper.SYSTEM[m][0] == paper.fid(m, 600) for m in paper.SYSTEM)
    assert paper.FIG6_L16["interval"] == paper.fid("JiT-L/16", 600)
    assert all(r.paper in paper.figures() for r in paper.REPORTS)
    with pytest.raises(KeyError, match="JiT-B/16 @ 200"):
        paper.fid("JiT-B/16", 400)


def _fid_literals(source: str) -> list[str]:
    fids = {v for v in paper.figures() if v >= 1 and round(v, 2) != round(v)}
    return [n for n in re.findall(r"(?<![\w.])\d+\.\d\d(?![\d])", source) if float(n) in fids]


@pytest.mark.parametrize("notebook", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_read_the_paper_figures_from_one_table(notebook: Path) -> None:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = [n for c in cells for n in _fid_literals("".join(c["source"]))]
    assert not found, f"{notebook.name} types the paper's figures {found}: read them from jitlib.book.paper"


class _Text(HTMLParser):
    """The reading text of a built page's article: paragraphs, list items and table rows on their own lines."""

    BLOCKS = {"p", "li", "tr", "h1", "h2", "h3", "h4", "div", "pre", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data.replace("\n", " "))


def page_text(page: Path) -> str:
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts)


def _built_pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        return []
    return sorted(p for p in (HTML / "book").glob("*.html"))


@pytest.mark.parametrize("page", _built_pages(), ids=lambda p: p.name)
def test_built_pages_quote_the_paper_correctly(page: Path) -> None:
    problems = paper.check_text(page_text(page))
    assert not problems, "\n".join(problems)


def test_the_book_was_built_when_it_should_be() -> None:
    if os.environ.get("JITLIB_BOOK_BUILT") and not _built_pages():
        raise AssertionError(f"the book should have been built, but {HTML / 'index.html'} does not exist")
