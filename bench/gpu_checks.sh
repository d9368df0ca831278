#!/usr/bin/env bash
# Every GPU check of the project, in one call of the device tool (15 minutes per session).
#
# Here, once per checkout (fetches the two wheels the GPU image lacks into .whl/, ignored):
#     bash bench/gpu_checks.sh prepare
# Then one device call, with carry [".whl"] and timeout_s 590:
#     bash bench/gpu_checks.sh run
# Each check writes its table to $OUT as soon as it ends, so a run stopped at the time
# limit still brings back what finished. Copy the files into bench/results/ afterwards.
#
# GPU_CHECKS_SMOKE=1 OUT=/tmp/x bash bench/gpu_checks.sh run   runs the same steps on the CPU
# with tiny presets (a check of this script, not of the GPU).
#
# The checks, cheapest first:
#   1. nvidia-smi and the Python packages used
#   2. bench/train_step.py at batch 256, bf16 autocast, eager (the four paper variants)
#   3. bench/sample.py on the paper preset (SD-VAE and CLIP-L shapes), batch 50, 50 steps
#   4. bench/train_step.py at batch 256, bf16 autocast, torch.compile (the issue's table)
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=("diffusers==0.42.1" "importlib_metadata==10.2.0")

prepare() {
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
        -d .whl "${WHEELS[@]}"
    ls -l .whl
}

check() {  # check NAME TIMEOUT_S COMMAND...: run it, its output to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "   rc=$rc after $((SECONDS - start))s"
    tail -n 12 "$OUT/$name.txt"
}

run() {
    : "${OUT:?run this on the device machine, where OUT is set}"
    export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
    if compgen -G ".whl/*.whl" > /dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site:$PWD"
    else
        echo "no .whl/: bench/sample.py needs diffusers (run 'bash bench/gpu_checks.sh prepare' here first)"
    fi
    { nvidia-smi; python3 -c "import sys, torch; print(sys.version); print('torch', torch.__version__, torch.version.cuda)"
      python3 -m pip list 2>/dev/null | grep -i -E '^(torch|triton|diffusers|transformers) '; } > "$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
    local device=cuda train=(--batch 256 --warmup 3 --rounds 5 --steps 5)
    local sample=(uvit-s-concat-early uvit-s-cross-intermediate --batch 50 --steps 50 --repeats 3)
    if [ -n "${GPU_CHECKS_SMOKE:-}" ]; then
        device=cpu train=(--batch 2 --warmup 1 --rounds 1 --steps 1 --variants tiny-concat-early tiny-cross-intermediate)
        sample=(tiny-concat-early --batch 2 --steps 2 --repeats 1)
    fi
    check train_step-eager 150 python3 bench/train_step.py --device "$device" --bf16 "${train[@]}"
    check sample-paper 150 python3 bench/sample.py "${sample[@]}" --device "$device"
    check train_step-compile 270 python3 bench/train_step.py --device "$device" --bf16 --compile "${train[@]}"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash bench/gpu_checks.sh prepare|run" >&2; exit 2 ;;
esac
