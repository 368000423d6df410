#!/bin/bash
# v12c: the v12 defaults (coalesced logit words at m = 8 only, HLRU_TILE_COAL_M; exact reciprocal in the chained and
# generic kernels): every GPU float64 test; bench_scan with its correctness pass, an m = 4, 8 sweep (coalesced words
# at m = 4 with 1 and 2 warps) and the grid at three shapes; then the previous commit (.exp/base) in the same call
source benchmarks/device/common.sh
job p1 HLRU_TILE=1 "bdlru_fp32 and (1- or 2-)"
job p2 HLRU_TILE=1 "bdlru_fp32 and (4- or 16-)"
job p3 HLRU_TILE=1 "bdlru_fp32 and 8-"
job p4 HLRU_TILE=1 "bdlru_bf16 or steps or no_nan"
job p5 HLRU_TILE=1 "hlru_fp32"
job p6 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax or 8-softmax)"
job p7 HLRU_DEBUG_AGG_ONLY=1 "hlru_fp32 and (4-softmax or 8-softmax)"
collect v12c
python scripts/bench_scan.py --no-torch --sweep 4,8 --tag v12c --out "$OUT" --budget-s 330 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$" | grep -v "^check.*OK"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v12c_base \
  --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 | grep -v "^$"
