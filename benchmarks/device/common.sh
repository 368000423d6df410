# Shared by the benchmarks/device/v*.sh scripts (one device call each, run from the repository root as
# `bash benchmarks/device/vNN.sh <commit>`; the fla-core wheel is carried in .whl/, results go to $OUT).
#   job NAME "ENV" "PYTEST -k EXPRESSION"   GPU tests in the background, log in $OUT/NAME.log
#   collect TAG                             wait for the jobs, print their summaries, merge the logs
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
