#!/bin/bash
# v12a: fast reciprocal (rcp.approx), exp2 shifts as FFMA, unnormalised rows in the tile forward's phase 2 (m <= 4):
# every GPU float64 test, then bench_scan at B=8 T=8192 D=1536 for these kernels (with its correctness pass) and,
# in the same call, for the previous commit's package (carried in .exp/base; no check)
source benchmarks/device/common.sh
all_gpu_tests v12a
python scripts/bench_scan.py --no-torch --tag v12a --out "$OUT" --budget-s 400 --shapes 8x8192x1536 2>&1 \
  | grep -v "^$" | grep -v "^check.*OK"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v12a_base \
  --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 | grep -v "^$"
