#!/usr/bin/env bash
# The main job: set up the environment if needed, then build the whole book, executing every notebook
# (tiny tier on a CPU), with warnings as errors. Prints where the HTML is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
venv=${JITLIB_VENV:-.venv}
# plotly must embed its JavaScript in the page (the default renderer would leave the figure blank in the HTML book).
export PLOTLY_RENDERER=notebook
"$venv/bin/jupyter-book" build --all -W --keep-going . >&2
echo "The book is at: $(pwd)/_build/html/index.html"
