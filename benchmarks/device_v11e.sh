#!/bin/bash
# v11e: package defaults after v11d (tile backward at m = 1, 2; m = 4 BT 64/32, 2 warps): every GPU test, the m = 8
# tile kernel (opt-in) against float64, then bench_scan: sweep m = 1, 2, 4, 8 and the grid at three shapes
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
python -m pip install -q --no-deps .whl/*.whl 2>&1 | grep -v WARNING
T=tests/test_triton_gpu.py
t0=$(date +%s)
job() { local name=$1; shift; (echo "## $name: env $E -k '$*'"; env $E python -m pytest -q $T -k "$*" 2>&1 | tail -n 25) > $OUT/$name.log; }
E="HLRU_TILE=1" job p1 "bdlru_fp32 and (1- or 2-)" &
E="HLRU_TILE=1" job p2 "bdlru_fp32 and (4- or 16-)" &
E="HLRU_TILE=1" job p3 "bdlru_fp32 and 8-" &
E="HLRU_TILE=1" job p4 "bdlru_bf16 or steps or no_nan" &
E="HLRU_TILE=1" job p5 "hlru_fp32" &
E="HLRU_TILE_M8=1" job p6 "bdlru_fp32 and (8-softmax or 8-relu_l1) or bdlru_bf16[8]" &
E="HLRU_DEBUG_AGG_ONLY=1" job p7 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax)" &
wait
echo "tests took $(( $(date +%s) - t0 )) s"
for f in $OUT/p?.log; do head -n 1 $f; tail -n 1 $f; done
cat $OUT/p?.log > $OUT/pytest_gpu_v11e.log; rm $OUT/p?.log
python scripts/bench_scan.py --sweep 1,2,4,8 --no-torch --tag v11e --out $OUT --budget-s 480 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$" | grep -v "^check"
