#!/bin/bash
# v11h: H-LRU of order 2, 4, 8 on the tile kernels (companion form): GPU float64 checks, then bench_scan at
# B=8 T=8192 D=1536 (its correctness pass covers H-LRU fp32 at every m and norm at m = 4, bf16 at m = 4, 16)
source benchmarks/device/common.sh
job p1 HLRU_TILE=1 "hlru_fp32 and (2-softmax or 2-sigmoid_l1 or 8-softmax or 8-sigmoid_l1)"
job p2 HLRU_TILE=1 "hlru_fp32 and (2-relu_l1 or 2-none or 8-relu_l1 or 8-none)"
job p3 HLRU_DEBUG_AGG_ONLY=1 "hlru_fp32 and (4-softmax or 8-softmax)"
collect v11h
python scripts/bench_scan.py --no-torch --tag v11h --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 \
  | grep -v "^$" | grep -v "^check.*OK"
