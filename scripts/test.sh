#!/usr/bin/env bash
# Every test: builds the book (warnings as errors, executing every notebook), then runs the unit tests and the
# checks on the built HTML, including the browser check (every page in headless Chromium, network off) — in one pytest
# run, so its closing line counts them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/install_browser.sh  # Chromium for tests/test_browser_check.py (skipped, with one line, if it cannot be installed)
venv=${JITLIB_VENV:-.venv}
"$venv/bin/ruff" check jitlib tests scripts
"$venv/bin/ruff" format --check jitlib tests scripts
start=$(date +%s)
bash scripts/build_book.sh
echo "book built in $(( $(date +%s) - start )) s" >&2
export JITLIB_BOOK_BUILT=1
# every notebook was executed by the build above (a raising cell fails it); tests/test_built_book.py reads the
# build's execution table: each notebook succeeded, each under 90 s in the tiny tier. No second execution.
exec "$venv/bin/python" -m pytest tests --durations=15 "$@"
