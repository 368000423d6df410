#!/bin/bash
# v11e: package defaults after v11d (tile backward at m = 1, 2; m = 4 BT 64/32, 2 warps): every GPU test, the m = 8
# tile kernel (then opt-in, HLRU_TILE_M8) against float64, then bench_scan: sweep m = 1, 2, 4, 8 and the grid at
# three shapes
source benchmarks/device/common.sh
job p1 HLRU_TILE=1 "bdlru_fp32 and (1- or 2-)"
job p2 HLRU_TILE=1 "bdlru_fp32 and (4- or 16-)"
job p3 HLRU_TILE=1 "bdlru_fp32 and 8-"
job p4 HLRU_TILE=1 "bdlru_bf16 or steps or no_nan"
job p5 HLRU_TILE=1 "hlru_fp32"
job p6 HLRU_TILE_M8=1 "bdlru_fp32 and (8-softmax or 8-relu_l1) or bdlru_bf16[8]"
job p7 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax)"
collect v11e
python scripts/bench_scan.py --sweep 1,2,4,8 --no-torch --tag v11e --out "$OUT" --budget-s 480 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$" | grep -v "^check"
