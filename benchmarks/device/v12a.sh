#!/bin/bash
# v12a: fast reciprocal (rcp.approx), exp2 shifts as FFMA, unnormalised rows in the tile forward's phase 2 (m <= 4):
# every GPU float64 test, then bench_scan at B=8 T=8192 D=1536 for these kernels (with its correctness pass) and,
# in the same call, for the previous commit's package (carried in .exp/base; no check)
source benchmarks/device/common.sh
job p1 HLRU_TILE=1 "bdlru_fp32 and (1- or 2-)"
job p2 HLRU_TILE=1 "bdlru_fp32 and (4- or 16-)"
job p3 HLRU_TILE=1 "bdlru_fp32 and 8-"
job p4 HLRU_TILE=1 "bdlru_bf16 or steps or no_nan"
job p5 HLRU_TILE=1 "hlru_fp32"
job p6 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax or 8-softmax)"
job p7 HLRU_DEBUG_AGG_ONLY=1 "hlru_fp32 and (4-softmax or 8-softmax)"
collect v12a
python scripts/bench_scan.py --no-torch --tag v12a --out "$OUT" --budget-s 400 --shapes 8x8192x1536 2>&1 \
  | grep -v "^$" | grep -v "^check.*OK"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v12a_base \
  --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 | grep -v "^$"
