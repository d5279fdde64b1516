#!/usr/bin/env bash
# The prepared GPU check: one run of under 9 minutes on one GPU (sized for an H100/H200), on a fresh machine with only
# the project's own set-up (scripts/setup_env.sh). Nothing is downloaded; no stage can stop the others.
#   1 doctor           jitlib doctor and nvidia-smi                                   -> doctor.txt
#   2 train + resume   JiT-B/16, 256 px, bf16 (auto), torch.compile (auto), synthetic data: 200 steps, SIGKILL
#                      after step 80, resume to the end                               -> train/ (run), train.jsonl
#   3 guided sampling  50-step Heun, CFG 3.0, from the smoke run: compiled (default), eager, CUDA graphs
#                      (images/s and largest difference each)                          -> sample/samples.png, sample.json
#   4 benchmark table  train img/s, MFU, peak memory, sample img/s and the first (compiling) step for JiT-B/16 and
#                      JiT-L/16 at 256, one `jitlib bench` per model, each row appended as soon as it is measured
#                                                                                     -> bench.md, bench-*.json
#   5 FID pipeline     256 generated images vs 256 synthetic ones, jitlib.evaluation.fid -> fid/fid.json
#                      (on a machine without the FID wheel: from the parts scripts/device_fid.sh makes)
# summary.md gets one line per stage (exit status, seconds) the moment the stage ends; every stage runs under
# `timeout`, sized from what is left of the budget. Exit status: 0 when every stage passed, else 1.
# Usage: bash scripts/gpu_check.sh [OUT_DIR] [--dry-run]   (default OUT_DIR: $OUT, else data/gpu_check)
#   On the lent GPU machine: GPU_CHECK_COLLECT=$OUT bash scripts/gpu_check.sh /tmp/gpu_check  (eight files come
#   back; the checkpoints stay there). Without the FID wheel there, see scripts/device_fid.sh first.
#   --dry-run (or GPU_CHECK_DRY_RUN=1): the same stages on the CPU at tiny sizes (about 2 minutes; tested in CI).
cd "$(dirname "$0")/.." || exit 1
dry=${GPU_CHECK_DRY_RUN:-0}
args=()
for a in "$@"; do if [[ $a == --dry-run ]]; then dry=1; else args+=("$a"); fi; done
out=${args[0]:-${OUT:-data/gpu_check}}
py=${JITLIB_PYTHON:-$(command -v python || echo python3)} # a GPU image may have python3 alone
[[ -x .venv/bin/python && -z ${JITLIB_PYTHON:-} ]] && py=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
start=$SECONDS
budget=510 # seconds for everything: under 9 minutes with margin for start-up
scale=1    # multiplies each stage's limit
failed=0

if [[ $dry == 1 ]]; then
    export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    model=JiT-tiny/4 res=32 batch=8 steps=40 kill_at=12 ckpt=4 sleep=0.05
    bench_models=(JiT-tiny/4 JiT-tiny/8) bench_res=32 bench_batch=8 sample_steps=5 num_sample=8 num_fid=16
    bench_extra=(--compile off --steps 2 --warmup 1 --sample-steps 5)
    budget=900 scale=3 # a shared CPU is slow to start Python and torch: longer limits, same stages
else
    model=JiT-B/16 res=256 batch=32 steps=200 kill_at=80 ckpt=20 sleep=0
    bench_models=(JiT-B/16 JiT-L/16) bench_res=256 bench_batch=64 sample_steps=50 num_sample=32 num_fid=256
    bench_extra=(--compile on --steps 10 --warmup 3 --sample-steps 50)
fi
echo "# GPU check $(date -u +%FT%TZ)$([[ $dry == 1 ]] && echo ' (CPU dry run)')" > "$out/summary.md"

left() { echo $((budget - (SECONDS - start))); }
# stage NAME MAX_SECONDS COMMAND...: run under timeout min(MAX, what is left), log, one summary line.
stage() {
    local name=$1 max=$2 t0=$SECONDS status
    shift 2
    local limit
    limit=$(left)
    ((limit > max * scale)) && limit=$((max * scale))
    if ((limit < 5)); then
        echo "- $name: skipped (budget spent)" >> "$out/summary.md"
        failed=1
        return 1
    fi
    timeout --kill-after=5 "$limit" "$@" >> "$out/$name.log" 2>&1
    status=$?
    echo "- $name: exit $status in $((SECONDS - t0)) s$( ((status == 124)) && echo " (timed out after $limit s)")" \
        >> "$out/summary.md"
    ((status == 0)) || failed=1
    return $status
}

# 1. doctor
{ "$py" -m jitlib doctor; nvidia-smi --query-gpu=name,memory.total,power.limit,clocks.max.sm --format=csv \
    || echo "nvidia-smi: not available"; } > "$out/doctor.txt" 2>&1
echo "- doctor: $(head -n 1 "$out/doctor.txt")" >> "$out/summary.md"

# 2. training smoke run, killed with SIGKILL mid-run, then resumed to the end
train_once() { # run the trainer in the background, SIGKILL it once its log has kill_at steps; fail if it failed
    "$py" scripts/gpu_check.py train "$out/train" --model "$model" --res "$res" --batch "$batch" --steps "$steps" \
        --ckpt-every "$ckpt" --step-sleep "$sleep" >> "$out/train.jsonl" &
    local pid=$! deadline=$((SECONDS + $1))
    while kill -0 "$pid" 2> /dev/null && ((SECONDS < deadline)); do
        if [[ -f $out/train/log.jsonl ]] && (($(wc -l < "$out/train/log.jsonl") >= kill_at)); then
            kill -9 "$pid"
            wait "$pid" 2> /dev/null
            echo "killed with SIGKILL after $(wc -l < "$out/train/log.jsonl") logged steps"
            return 0
        fi
        sleep 0.2
    done
    kill -0 "$pid" 2> /dev/null && { kill -9 "$pid"; echo "killed at the stage's deadline"; }
    wait "$pid"
}
rm -rf "$out/train"
train_limit=$(($(left) - 15))
((train_limit > 140 * scale)) && train_limit=$((140 * scale))
stage train 150 bash -c "$(declare -f train_once); out=$out py=$py model=$model res=$res batch=$batch \
    steps=$steps ckpt=$ckpt sleep=$sleep kill_at=$kill_at; train_once $train_limit"
stage resume 120 "$py" scripts/gpu_check.py train "$out/train" --model "$model" --res "$res" --batch "$batch" \
    --steps "$steps" --ckpt-every "$ckpt" --resume
tail -n 1 "$out/resume.log" >> "$out/train.jsonl" 2> /dev/null

# 3. guided sampling from the smoke run
stage sample 100 "$py" scripts/gpu_check.py sample "$out/train" --num "$num_sample" --batch "$num_sample" \
    --sample-steps "$sample_steps" --out "$out/sample"
tail -n 1 "$out/sample.log" > "$out/sample.json" 2> /dev/null

# 4. benchmark table, one model (row) at a time
rm -f "$out/bench.md"
for m in "${bench_models[@]}"; do
    name=bench-${m//\//-}
    stage "$name" 90 "$py" -m jitlib bench --model "$m" --resolution "$bench_res" --batch "$bench_batch" \
        --sample-batch "$bench_batch" --precision auto --parts train,sample "${bench_extra[@]}" \
        --out "$out" --name "$name" \
        && "$py" scripts/gpu_check.py row "$out/$name.json" "$out/bench.md"
done

# 5. the FID pipeline on a few hundred images. A GPU machine that cannot install the FID network's wheel gets the
# file in two parts (scripts/device_fid.sh), joined here; its SHA-256 is checked when it loads.
parts=${JITLIB_FID_PARTS:-.device/fid}
if [[ -z ${JITLIB_FID_NETWORK:-} ]] && compgen -G "$parts/part-*" > /dev/null; then
    export JITLIB_FID_NETWORK=${TMPDIR:-/tmp}/jitlib-fid-network.pt
    cat "$parts"/part-* > "$JITLIB_FID_NETWORK"
    echo "FID network: joined from $(compgen -G "$parts/part-*" | wc -l) parts in $parts" >> "$out/fid.log"
fi
stage fid 60 "$py" scripts/gpu_check.py fid "$out/train" --num "$num_fid" --batch 64 --sample-steps "$sample_steps" \
    --out "$out/fid"

echo "- total: $((SECONDS - start)) s; $([[ $failed == 0 ]] && echo 'every stage passed' || echo 'some stage failed: see its .log')" \
    >> "$out/summary.md"
# GPU_CHECK_COLLECT=DIR: what a reader needs, copied flat into DIR (the device tool returns at most 8 files of
# 16 MiB each): the summary, the tables and results, and every log and per-model benchmark file in one archive.
if [[ -n ${GPU_CHECK_COLLECT:-} ]]; then
    mkdir -p "$GPU_CHECK_COLLECT"
    for f in summary.md bench.md doctor.txt train.jsonl sample.json sample/samples.png fid/fid.json; do
        [[ -f $out/$f ]] && cp "$out/$f" "$GPU_CHECK_COLLECT/"
    done
    (cd "$out" && tar -czf - ./*.log ./bench-*.json ./bench-*.md 2> /dev/null) > "$GPU_CHECK_COLLECT/logs.tar.gz"
fi
cat "$out/summary.md"
[[ -f $out/bench.md ]] && cat "$out/bench.md"
exit $failed
