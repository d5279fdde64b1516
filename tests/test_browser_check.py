"""Every built page in headless Chromium, network off (scripts/browser_check.py): no overflow, every figure rendered,
no console error, every static slider moves its figure, no page over 1.5 MB.

Runs after `bash scripts/build_book.sh` (scripts/test.sh builds first, installs Chromium with
scripts/install_browser.sh, and sets JITLIB_BOOK_BUILT=1, making a missing build a failure). Without Chromium the
test is skipped with one line that says so.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCRIPT = ROOT / "scripts" / "browser_check.py"


def _browser_check():
    spec = importlib.util.spec_from_file_location("browser_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_built_page_passes_in_a_browser() -> None:
    if not (HTML / "index.html").exists():
        if os.environ.get("JITLIB_BOOK_BUILT"):
            raise AssertionError(f"the book should have been built, but {HTML / 'index.html'} does not exist")
        pytest.skip("book not built (run scripts/build_book.sh first)")
    check = _browser_check()
    if check.find_browser() is None:
        pytest.skip(check.NO_BROWSER)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(HTML)], capture_output=True, text=True, timeout=900
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_the_check_fails_a_page_that_a_reader_would_find_broken(tmp_path: Path) -> None:
    check = _browser_check()
    if check.find_browser() is None:
        pytest.skip(check.NO_BROWSER)
    (tmp_path / "index.html").write_text("<html><body>index</body></html>")
    (tmp_path / "book").mkdir()
    broken = (
        "<html><body><main><article class='bd-article'>"
        "<div style='width:3000px'>too wide</div><img src='missing.png'>"
        "<script>console.error('boom')</script></article></main></body></html>"
    )
    (tmp_path / "book" / "broken.html").write_text(broken)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1, run.stdout
    for symptom in ("overflows horizontally", "image does not load", "console error: boom"):
        assert symptom in run.stdout, run.stdout
