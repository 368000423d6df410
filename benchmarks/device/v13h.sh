#!/bin/bash
# v13h: the final v13 defaults (v13e's plus v13g: UNROLL 1 at m = 4, the m = 2 backward as the m = 1 one, H-LRU
# order 4 UNROLL 4): every GPU float64 test, then bench_scan (correctness pass, the grid at B=8 T=8192 D=1536) and
# fd4a564 (.exp/base) in the same call.
source benchmarks/device/common.sh
all_gpu_tests v13h
python scripts/bench_scan.py --no-torch --tag v13h --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 \
  | grep -v "^$" | grep -v "^check.*OK"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=fd4a564 python scripts/bench_scan.py --no-torch --no-check --tag v13h_base \
  --out "$OUT" --budget-s 100 --shapes 8x8192x1536 2>&1 | grep -v "^$"
echo "total $(( $(date +%s) - t0 )) s"
