#!/bin/bash
# v11h: H-LRU of order 2, 4, 8 on the tile kernels (companion form): GPU float64 checks, then bench_scan at
# B=8 T=8192 D=1536 (its correctness pass covers H-LRU fp32 at every m and norm at m = 4, bf16 at m = 4, 16)
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
python -m pip install -q --no-deps .whl/*.whl 2>&1 | grep -v WARNING
T=tests/test_triton_gpu.py
t0=$(date +%s)
job() { local name=$1; shift; (echo "## $name: env $E -k '$*'"; env $E python -m pytest -q $T -k "$*" 2>&1 | tail -n 25) > $OUT/$name.log; }
E="HLRU_TILE=1" job p1 "hlru_fp32 and (2-softmax or 2-sigmoid_l1 or 8-softmax or 8-sigmoid_l1)" &
E="HLRU_TILE=1" job p2 "hlru_fp32 and (2-relu_l1 or 2-none or 8-relu_l1 or 8-none)" &
E="HLRU_DEBUG_AGG_ONLY=1" job p3 "hlru_fp32 and (4-softmax or 8-softmax)" &
wait
echo "tests took $(( $(date +%s) - t0 )) s"
for f in $OUT/p?.log; do head -n 1 $f; tail -n 1 $f; done
cat $OUT/p?.log > $OUT/pytest_gpu_v11h.log; rm $OUT/p?.log
python scripts/bench_scan.py --no-torch --tag v11h --out $OUT --budget-s 200 --shapes 8x8192x1536 2>&1 \
  | grep -v "^$" | grep -v "^check.*OK"
