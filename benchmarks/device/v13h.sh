#!/bin/bash
# v13h: the final v13 defaults (v13e's plus v13g: UNROLL 1 at m = 4, the m = 2 backward as the m = 1 one, H-LRU
# order 4 UNROLL 4): every GPU float64 test, then bench_scan (correctness pass, the grid at B=8 T=8192 D=1536) and
# fd4a564 (.exp/base) in the same call.
source benchmarks/device/common.sh
all_gpu_tests v13h
bench_with_base v13h fd4a564 200 100
echo "total $(( $(date +%s) - t0 )) s"
