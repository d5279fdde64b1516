#!/usr/bin/env bash
# Every test: builds the book (warnings as errors), then runs the unit tests, every notebook under nbval, and the
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
exec "$venv/bin/python" -m pytest tests book --nbval-lax --durations=15 "$@"
