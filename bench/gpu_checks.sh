#!/usr/bin/env bash
# Every GPU check of the project, in one call of the device tool (15 minutes per session).
#
# Here, once per checkout (fetches the wheels the GPU image lacks into .whl/, ignored):
#     bash bench/gpu_checks.sh prepare
# Then one device call, with carry [".whl"] and timeout_s 450 (the checks' limits add up
# to 380 s, a bound, not the expected time; the rest is room for the start-up):
#     bash bench/gpu_checks.sh run
# Each check writes its table to $OUT as it goes (the training-step checks after every
# variant), so a run stopped at the time limit still brings back what was measured. Copy
# the files into bench/results/ afterwards.
#
#     GPU_CHECKS_SMOKE=1 OUT=/tmp/x bash bench/gpu_checks.sh run
# runs the same scripts on the CPU with tiny sizes, in an interpreter that sees only what
# the GPU image holds (bench/gpu_image/packages.txt) and the WHEELS below: a package
# missing there fails here first. `... gpu_checks.sh imports` stops after the imports.
# tests/generator/test_gpu_checks.py runs both.
#
# The checks, cheapest first (limits in seconds):
#   1. nvidia-smi, the Python packages, and an import of everything the checks use
#   2.  60  bench/train_step.py, batch 256, bf16 autocast, eager, the four paper variants
#   3. 4x25 bench/sample.py, each paper preset (SD-VAE and CLIP-L shapes), batch 50, 50 steps, CFG
#   4.  40  bench/train_throughput.py, the demo recipe's training loop (steps/s, data vs in memory)
#   5. 180  bench/train_step.py, batch 256, bf16, torch.compile; no variant starts after 120 s
set -uo pipefail
cd "$(dirname "$0")/.."

# Every distribution the checks import that the GPU image lacks (bench/gpu_image/packages.txt),
# with what diffusers declares it needs: importlib_metadata, which needs lazy-importer.
WHEELS=("ptflops==0.7.5" "diffusers==0.42.1" "importlib_metadata==10.2.0" "lazy-importer==0.1.0")
PYTHON=${PYTHON:-python3}

prepare() {
    local exclude
    exclude=$(git rev-parse --git-path info/exclude) || exit 1  # a worktree's .git is a file
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    mkdir -p .whl
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
        -d .whl "${WHEELS[@]}" || exit 1
    ls -l .whl
}

FAILED=()
check() {  # check NAME TIMEOUT_S COMMAND...: run it, its output added to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    # The smoke run proves imports and plumbing, not speed: a busy CPU gets 10x the time.
    [ -n "${GPU_CHECKS_SMOKE:-}" ] && limit=$((limit * 10))
    echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/$name.log"
    local start=$SECONDS
    timeout "$limit" "$@" >> "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc after $((SECONDS - start))s" | tee -a "$OUT/$name.log"
    tail -n 14 "$OUT/$name.log"
    [ "$rc" -eq 0 ] || FAILED+=("$name (rc $rc)")
}

setup() {  # the interpreter and packages of the run; then the environment report and imports
    : "${OUT:?run this on the device machine, where OUT is set}"
    export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
    local names=() w
    for w in "${WHEELS[@]}"; do names+=("${w%%==*}"); done
    if [ -n "${GPU_CHECKS_SMOKE:-}" ]; then
        # An interpreter that sees only the GPU image's packages and the wheels (bench/gpu_image/).
        local env_dir
        env_dir=$(mktemp -d) || exit 1
        PYTHON=$("$PYTHON" bench/gpu_image/make_env.py "$env_dir" "${names[@]}") || exit 1
        echo "smoke run: $PYTHON (the GPU image's packages and ${names[*]})"
    elif [ "$(ls .whl/*.whl 2>/dev/null | wc -l)" -ne "${#WHEELS[@]}" ]; then
        echo "expected ${#WHEELS[@]} wheels in .whl/: run 'bash bench/gpu_checks.sh prepare' here and carry .whl" >&2
        exit 1
    else
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site:$PWD"
    fi
    { nvidia-smi 2>&1 || echo "no nvidia-smi"
      "$PYTHON" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, torch.version.cuda)"
      "$PYTHON" -m pip list 2>/dev/null | grep -i -E '^(torch|triton|transformers|accelerate|numpy) '
      date -u; uptime
      # Fails here, in seconds, if a check would fail later on an import.
      "$PYTHON" -c "import ptflops, diffusers, transformers, accelerate, bench.train_step, bench.sample, \
bench.train_throughput, generator.train; print('imports ok')"; } > "$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
    grep -q '^imports ok' "$OUT/env.txt" || exit 1
}

run() {
    setup
    local device=cuda batch=(--batch 256) timing=(--warmup 3 --rounds 3 --steps 5)
    local variants=(uvit-s-concat-early uvit-s-concat-intermediate uvit-s-cross-early uvit-s-cross-intermediate)
    local sample=(--batch 50 --steps 50 --repeats 2) demo=(--steps 200 --log-every 50 --repeats 1)
    if [ -n "${GPU_CHECKS_SMOKE:-}" ]; then
        device=cpu batch=(--batch 2) timing=(--warmup 1 --rounds 1 --steps 1)
        variants=(tiny-concat-early tiny-cross-intermediate)
        sample=(--batch 1 --steps 2 --repeats 1) demo=(--steps 4 --batch 4 --log-every 1 --repeats 1)
    fi
    local ts=(bench/train_step.py --device "$device" --bf16 --sequential --variants "${variants[@]}"
              "${batch[@]}" "${timing[@]}")
    check train_step-eager 60 "$PYTHON" "${ts[@]}" --table "$OUT/train_step-eager.txt"
    # The paper presets in both modes: the smoke run must import diffusers as the GPU run does.
    for v in uvit-s-concat-early uvit-s-concat-intermediate uvit-s-cross-early uvit-s-cross-intermediate; do
        [ -n "${GPU_CHECKS_SMOKE:-}" ] && [ "$v" != uvit-s-concat-early ] && continue
        check sample-paper 25 "$PYTHON" bench/sample.py "$v" "${sample[@]}" --device "$device"
    done
    check train_throughput-demo 40 "$PYTHON" bench/train_throughput.py --device "$device" "${demo[@]}" \
        --out "$OUT/train_throughput-demo.txt"
    # Compiling takes most of this check's time: the baseline first, then the variant the paper
    # finds fastest, so a budget spent early still gives a speed-up.
    local ordered=("${variants[0]}" "${variants[@]: -1}" "${variants[@]:1:${#variants[@]}-2}")
    ts=(bench/train_step.py --device "$device" --bf16 --sequential --variants "${ordered[@]}" "${batch[@]}" "${timing[@]}")
    check train_step-compile 180 "$PYTHON" "${ts[@]}" --compile --budget-s 120 --table "$OUT/train_step-compile.txt"
    if [ "${#FAILED[@]}" -gt 0 ]; then
        echo "failed or stopped at their limit: ${FAILED[*]}"
        exit 1
    fi
    echo "all checks passed"
}

case "${1:-}" in
    prepare) prepare ;;
    imports) setup ;;
    run) run ;;
    *) echo "usage: bash bench/gpu_checks.sh prepare|imports|run" >&2; exit 2 ;;
esac
