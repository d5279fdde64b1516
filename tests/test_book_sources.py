"""The book's sources: the table of contents, the shared set-up cell, and notebooks stored without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# The set-up cell every chapter starts with. The repository address comes from _config.yml, the one place it is set.
SETUP_CELL = """\
# Set-up (identical in every chapter): install jitlib when missing (e.g. on Colab), then report device and tier.
try:
    import jitlib
except ImportError:
    %pip install -q "jitlib[book] @ git+{url}"
    import jitlib
TIER = jitlib.doctor().tier  # "tiny" on a CPU, "full" on a GPU; override with JITLIB_TIER"""


def toc_files() -> list[str]:
    """Every file the table of contents names, root first."""
    files = [TOC["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in TOC.get("parts", []):
        walk(part.get("chapters", []))
    return files


def test_toc_lists_only_existing_pages() -> None:
    for name in toc_files():
        found = [p for p in (ROOT / f"{name}.ipynb", ROOT / f"{name}.md") if p.exists()]
        assert found, f"_toc.yml names {name!r}, which is neither {name}.ipynb nor {name}.md"


def test_every_notebook_is_in_the_toc() -> None:
    listed = set(toc_files())
    orphans = [p.name for p in NOTEBOOKS if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


def test_api_appendix_documents_every_module() -> None:
    """Every library module (top level and the core subpackages) has its section in the API appendix."""
    appendix = (ROOT / "book" / "appendix_api.md").read_text()
    pkg = ROOT / "jitlib"
    modules = sorted(
        ".".join(p.relative_to(pkg).with_suffix("").parts)
        for p in pkg.rglob("*.py")
        if not p.stem.startswith("_")
        and p.relative_to(pkg).parts[0] not in ("book",)
        or p.stem == "__init__"
        and p.parent.name == "cli"
    )
    modules = [m.removesuffix(".__init__") for m in modules]
    missing = [m for m in modules if f".. automodule:: jitlib.{m}\n" not in appendix]
    assert not missing, f"book/appendix_api.md has no automodule for: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_shared_setup_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source.strip() == SETUP_CELL.format(url=CONFIG["repository"]["url"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    heavy = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.outputs and "NBVAL_CHECK_OUTPUT" not in c.source
    ]
    assert not heavy, f"{path.name}: code cells {heavy} carry outputs; commit notebooks stripped"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_a_title(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
