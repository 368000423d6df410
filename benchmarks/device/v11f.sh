#!/bin/bash
# v11f: the tile kernels as the m = 8 default (UNROLL 1): GPU float64 checks at m = 8, then bench_scan: sweep m = 8
# and the grid at three shapes
source benchmarks/device/common.sh
job p1 HLRU_TILE=1 "bdlru_fp32 and (8-softmax or 8-sigmoid_l1)"
job p2 HLRU_TILE=1 "bdlru_fp32 and (8-relu_l1 or 8-none)"
job p3 HLRU_TILE=1 "bdlru_bf16[8] or no_nan[8]"
job p4 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and 8-softmax"
collect v11f
python scripts/bench_scan.py --sweep 8 --no-torch --no-check --tag v11f --out "$OUT" --budget-s 300 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$"
