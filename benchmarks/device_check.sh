#!/usr/bin/env bash
# The one prepared run for a lent accelerator machine (the `device` tool; jaxlaws has never been timed on one).
#
# That machine's image already holds jax (with its CUDA plugin), flax, optax, optimistix, pandas, scipy and
# torch, and nothing can be installed there, so this runs the checkout in place (PYTHONPATH) under its python3.
# The unbundled public data (Chinchilla, DML) must travel: copy ../shared/data/public into the ignored folder
# .public_data here and name it in `carry`:
#
#   mkdir -p .public_data && cp -r ../shared/data/public/. .public_data/   # once, on this machine
#   device run: bash benchmarks/device_check.sh   (carry [".public_data"], timeout_s 560)
#
# What it measures, each part under its own time limit so that one slow part cannot eat the lease, results in
# $OUT (what comes back): the default-path fits of issue 9 against their residual+Jacobian bound and SciPy
# (bench_fit.py --public), jit(vmap(jl.solve)) next to fit_batched and the implicit gradients
# (bench_solve.py), the vmapped-sweep speed-up of training (bench_train.py), and the growth curve
# (bench_growth.py --quick). Total at most 9 min; prints progressively, so a part cut at its limit still
# returns what it measured. Tried on the project's 2-core CPU (08:36 UTC): fit 84 s, growth 20 s, train cut at
# its limit after the steady-state tables.
#
# PARTS chooses the parts (default: the four above). `PARTS=testbed` is the short version of the testbed study
# (jaxlaws.train.testbeds): the noise testbed at the accelerator size (4-layer width-256 decoder, batch 16 x 256)
# cut to 600 steps, 2 seeds, headroom check then stratified / Aioli (original and cumulative) / DoReMi, limit
# 300 s; the full study is `python benchmarks/compare_methods.py --testbeds noise,scarce,skewed,m7 --size
# accelerator --seeds 0,1,2,3,4 --probe` (not timed on an accelerator yet; not tried here: the CPU is shared).
#
#   device run: PARTS=testbed bash benchmarks/device_check.sh   (timeout_s 360)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jaxlaws-device-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d .public_data ] && export JAXLAWS_PUBLIC_DATA="$PWD/.public_data"
PY=${PYTHON:-python3}

{
    date -u; uname -m; nproc
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c "import jax, jaxlib, optax, flax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'optax', optax.__version__, 'flax', flax.__version__); print(jax.devices())"
    git log --oneline -1 2>/dev/null || true
} 2>&1 | tee "$OUT/machine.txt"

run() {  # run NAME SECONDS CMD...: the command's output in $OUT/NAME.log, its status in $OUT/status.txt
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc ${limit}s-limit wall=$((SECONDS - t0))s" | tee -a "$OUT/status.txt"
}

PARTS=${PARTS:-solve fit_public train growth}
part() { [[ " $PARTS " == *" $1 "* ]]; }
part solve && run solve 150 "$PY" benchmarks/bench_solve.py --base none --repeats 2 --rounds 1 \
    --out "$OUT/solve_device.md"
part fit_public && run fit_public 200 "$PY" benchmarks/bench_fit.py --public --cases chinchilla dml regmix \
    --repeats 3 --out "$OUT/fit_public_device.md"
part train && run train 150 "$PY" benchmarks/bench_train.py --steps 10 --sweep-steps 30 --micro-steps 300
part growth && run growth 60 "$PY" benchmarks/bench_growth.py --quick --out "$OUT/growth_device.md"
# the testbed study, short: its judgement.md (headroom + paired table) comes back as testbed_noise.md
part testbed && run testbed 300 "$PY" benchmarks/compare_methods.py --testbeds noise --size accelerator \
    --steps 600 --seeds 0,1 --methods stratified,aioli,aioli_cumulative,doremi --allow-no-headroom \
    --work /tmp/jaxlaws-testbed-work --results "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.json  # at most 8 files come back: the tables and logs are what matter
ls -la "$OUT"
