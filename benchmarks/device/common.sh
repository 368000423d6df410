# Shared by the benchmarks/device/v*.sh scripts (one device call each, run from the repository root as
# `bash benchmarks/device/vNN.sh <commit>`; the fla-core wheel is carried in .whl/, results go to $OUT). Write the
# commit out: `$(git rev-parse HEAD)` run on the device names the last landed commit, not the tree that travelled.
#   job NAME "ENV" "PYTEST -k EXPRESSION"   GPU tests in the background, log in $OUT/NAME.log
#   collect TAG                             wait for the jobs, print their summaries, merge the logs
#   all_gpu_tests TAG                       every GPU test in 7 parallel jobs (look-back maps composed too), collected
#   knob_sweep TAG BUDGET_S CASE...         benchmarks/experiments/knob_sweep.py over the cases (MIXER:M:KNOBS);
#                                           KS_SHAPE=BxTxD times another shape
#   bench_with_base TAG COMMIT S1 S2        bench_scan.py for this tree, then for .exp/base (COMMIT's package)
#   ncu_prof LABEL MIXER M KERNEL_REGEX     Nsight Compute --set full of one warm launch (ncu_target.py) into
#                                           $OUT/ncu_details.txt, $OUT/src/LABEL.csv, $OUT/rep/LABEL.ncu-rep
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
if compgen -G ".whl/*.whl" > /dev/null; then python -m pip install -q --no-deps .whl/*.whl 2>&1 | grep -v WARNING; fi
t0=$(date +%s)

job() {
    (echo "## $1: env $2 -k '$3'"; env $2 python -m pytest -q tests/test_triton_gpu.py -k "$3" 2>&1 | tail -n 25) \
        > "$OUT/$1.log" &
}

collect() {
    wait
    echo "tests took $(( $(date +%s) - t0 )) s"
    for f in "$OUT"/p?.log; do head -n 1 "$f"; tail -n 1 "$f"; done
    cat "$OUT"/p?.log > "$OUT/pytest_gpu_$1.log"
    rm "$OUT"/p?.log
}

all_gpu_tests() {
    job p1 HLRU_TILE=1 "bdlru_fp32 and (1- or 2-)"
    job p2 HLRU_TILE=1 "bdlru_fp32 and (4- or 16-)"
    job p3 HLRU_TILE=1 "bdlru_fp32 and 8-"
    job p4 HLRU_TILE=1 "bdlru_bf16 or steps or no_nan"
    job p5 HLRU_TILE=1 "hlru_fp32"
    job p6 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax or 8-softmax)"
    job p7 HLRU_DEBUG_AGG_ONLY=1 "hlru_fp32 and (4-softmax or 8-softmax)"
    collect "$1"
}

knob_sweep() {
    # Triton's cache is filled first by 4 parallel check-only runs (the cases of one MIXER:M in one run, so each
    # float64 reference is computed once there); then one run checks and times every case in the given order.
    local tag=$1 budget=$2 sweep=benchmarks/experiments/knob_sweep.py c i n=0
    shift 2
    local -A slot=()
    for c in "$@"; do [[ -v "slot[${c%:*}]" ]] || slot[${c%:*}]=$(( n++ % 4 )); done
    for i in 0 1 2 3; do
        local -a grp=()
        for c in "$@"; do [ "${slot[${c%:*}]}" = "$i" ] && grp+=("$c"); done
        if [ ${#grp[@]} -gt 0 ]; then
            python $sweep "/tmp/compile$i.json" "${grp[@]}" --check-only ${KS_SHAPE:+--shape $KS_SHAPE} \
                > "$OUT/compile$i.log" 2>&1 &
        fi
    done
    wait
    echo "compiled in $(( $(date +%s) - t0 )) s"
    cat "$OUT"/compile?.log | grep -v "^\s*$" | grep -v OK
    rm -f "$OUT"/compile?.log
    PYTHONUNBUFFERED=1 python $sweep "$OUT/knob_sweep_$tag.json" "$@" --budget-s "$budget" \
        ${KS_SHAPE:+--shape $KS_SHAPE} 2>&1 \
        | tee "$OUT/knob_sweep_$tag.log"
    echo "total $(( $(date +%s) - t0 )) s"
}

bench_with_base() {
    python scripts/bench_scan.py --no-torch --tag "$1" --out "$OUT" --budget-s "$3" --shapes 8x8192x1536 2>&1 \
        | grep -v "^$" | grep -v "^check.*OK"
    PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag "$1_base" \
        --out "$OUT" --budget-s "$4" --shapes 8x8192x1536 2>&1 | grep -v "^$"
}

ncu_prof() {
    export PATH=$PATH:$(ls -d /opt/nvidia/nsight-compute/*/ 2>/dev/null | head -n 1)
    mkdir -p "$OUT/src" "$OUT/rep"
    ncu --clock-control none -k "regex:$4" --launch-skip 2 --launch-count 1 --set full --import-source no \
        -o "$OUT/rep/$1" -f python benchmarks/experiments/ncu_target.py "$2" "$3" > "$OUT/rep/$1.log" 2>&1 \
        || { echo "ncu $1 failed"; tail -n 20 "$OUT/rep/$1.log"; return; }
    { echo "=================== $1: $2 m=$3 kernel $4"; ncu --import "$OUT/rep/$1.ncu-rep" --page details; } \
        >> "$OUT/ncu_details.txt" 2>&1
    ncu --import "$OUT/rep/$1.ncu-rep" --page source --print-source sass --csv > "$OUT/src/$1.csv" 2>&1
    echo "$1 done at $(( $(date +%s) - t0 )) s"
}
