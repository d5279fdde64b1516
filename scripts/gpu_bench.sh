#!/usr/bin/env bash
# The prepared GPU benchmark: one run of at most 8 minutes on one GPU (sized for an H100/H200), JiT-B/16 at 256 px, bf16.
#   stage 1 (eager, ≤ 3 min): the largest training batch that fits (doubling, then bisection to a multiple of 8);
#     training images/s, MFU, peak memory, host-device syncs per step and the step's most expensive kernels;
#     sampling images/s (50-step Heun, CFG 3.0 on (0.1, 1]) at batch 64; before/after of every speed path
#     (fused AdamW, for-each EMA, SDPA vs the official fp32-logit attention, matmul patch embedding, batched CFG);
#     the trainer's JPEG loader with 8 workers.
#   stage 2 (torch.compile, the rest of the 8 minutes): training and sampling at stage 1's batch.
# Writes gpu-b16-eager.{json,md} and gpu-b16-compile.{json,md} (and gpu.txt: nvidia-smi) to OUT_DIR.
# Usage: bash scripts/gpu_bench.sh [OUT_DIR]   (default: $OUT, else data/bench). Needs torch with CUDA and the
# `jitlib bench` sub-command; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${JITLIB_PYTHON:-python}
out=${1:-${OUT:-data/bench}}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
start=$SECONDS
budget=470 # seconds for both stages, leaving margin inside 8 minutes

nvidia-smi --query-gpu=name,memory.total,power.limit,clocks.max.sm --format=csv | tee "$out/gpu.txt"
common=(--model JiT-B/16 --resolution 256 --precision bf16 --cfg 3.0 --sample-batch 64 --steps 10 --warmup 3 --profile)

status=0
timeout 180 "$py" -m jitlib bench "${common[@]}" --batch max --compile off \
    --loader-workers 8 --loader-images 1024 --out "$out" --name gpu-b16-eager || status=$?
batch=128 # used if stage 1 did not finish
if [[ -f "$out/gpu-b16-eager.json" ]]; then
    batch=$("$py" -c "import json, sys; print(json.load(open(sys.argv[1]))['models'][0]['train'][0]['batch'])" \
        "$out/gpu-b16-eager.json")
fi
echo "stage 1: exit $status after $((SECONDS - start)) s; compiled stage at batch $batch" >&2

left=$((budget - (SECONDS - start)))
timeout "$left" "$py" -m jitlib bench "${common[@]}" --batch "$batch" --compile on --parts train,sample \
    --out "$out" --name gpu-b16-compile || status=$?
echo "done in $((SECONDS - start)) s (exit $status)" >&2
exit "$status"
