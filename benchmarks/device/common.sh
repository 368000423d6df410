# Shared by the benchmarks/device/v*.sh scripts (one device call each, run from the repository root as
# `bash benchmarks/device/vNN.sh <commit>`; the fla-core wheel is carried in .whl/, results go to $OUT). Write the
# commit out: `$(git rev-parse HEAD)` run on the device names the last landed commit, not the tree that travelled.
#   job NAME "ENV" "PYTEST -k EXPRESSION"   GPU tests in the background, log in $OUT/NAME.log
#   collect TAG                             wait for the jobs, print their summaries, merge the logs
#   all_gpu_tests TAG                       every GPU test in 7 parallel jobs (look-back maps composed too), collected
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
python -m pip install -q --no-deps .whl/*.whl 2>&1 | grep -v WARNING
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
