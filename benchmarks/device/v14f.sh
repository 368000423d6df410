#!/bin/bash
# v14f: the v14 defaults (diag_tile.py at m = 1: single-pass forward capped at 96 registers with the short
# normalisation, two-phase backward with evict_last phase-1 loads): every GPU test, bench_scan for this tree and for
# the last landed commit's package (.exp/base) in the same call, then a stall profile of the two m = 1 kernels.
source benchmarks/device/common.sh
all_gpu_tests v14f
bench_with_base v14f "$2" 200 100
ncu_prof d1fwd bdlru 1 diag_fwd
ncu_prof d1bwd bdlru 1 diag_bwd
tar -C "$OUT" -czf "$OUT/ncu_v14f_src.tgz" src && rm -r "$OUT/src" "$OUT/rep"
mv "$OUT/ncu_details.txt" "$OUT/ncu_v14f_details.txt"
grep -E "^=====|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|L2 Hit" "$OUT/ncu_v14f_details.txt"
