#!/bin/bash
# v11f: the tile kernels as the m = 8 default (UNROLL 1): GPU float64 checks at m = 8, then bench_scan: sweep m = 8
# and the grid at three shapes
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
python -m pip install -q --no-deps .whl/*.whl 2>&1 | grep -v WARNING
T=tests/test_triton_gpu.py
t0=$(date +%s)
job() { local name=$1; shift; (echo "## $name: env $E -k '$*'"; env $E python -m pytest -q $T -k "$*" 2>&1 | tail -n 25) > $OUT/$name.log; }
E="HLRU_TILE=1" job p1 "bdlru_fp32 and (8-softmax or 8-sigmoid_l1)" &
E="HLRU_TILE=1" job p2 "bdlru_fp32 and (8-relu_l1 or 8-none)" &
E="HLRU_TILE=1" job p3 "bdlru_bf16[8] or no_nan[8]" &
E="HLRU_DEBUG_AGG_ONLY=1" job p4 "bdlru_fp32 and 8-softmax" &
wait
echo "tests took $(( $(date +%s) - t0 )) s"
for f in $OUT/p?.log; do head -n 1 $f; tail -n 1 $f; done
cat $OUT/p?.log > $OUT/pytest_gpu_v11f.log; rm $OUT/p?.log
python scripts/bench_scan.py --sweep 8 --no-torch --no-check --tag v11f --out $OUT --budget-s 300 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$"
