#!/bin/bash
# v14a: the diagonal tile scan (diag_tile.py, VEC channels per lane) for the m = 1 backward (default) and forward
# (HLRU_DIAG_FWD=1): every GPU test (plus the m = 1 tests with the diag forward), then a knob sweep against the
# bdlru_tile.py backward (HLRU_DIAG_BWD=0), each case checked against float64 first.
source benchmarks/device/common.sh
job p8 HLRU_DIAG_FWD=1 "(bdlru_fp32 or hlru_fp32 or bf16 or no_nan) and 1-"
all_gpu_tests v14a
D=HLRU_DIAG
CB=("bdlru:1:${D}_BWD=0" "bdlru:1:" "bdlru:1:${D}_VEC=2" "bdlru:1:${D}_VEC=8" "bdlru:1:${D}_VEC=1,${D}_WARPS=8"
    "bdlru:1:${D}_WARPS=2" "bdlru:1:${D}_WARPS=8" "bdlru:1:${D}_BT_BWD=32" "bdlru:1:${D}_BT_BWD=8"
    "bdlru:1:${D}_UNROLL=1" "bdlru:1:${D}_UNROLL=4" "bdlru:1:${D}_REV=0,${D}_EVICT=0" "bdlru:1:${D}_EVICT=2")
CF=("bdlru:1:${D}_FWD=1" "bdlru:1:${D}_FWD=1,${D}_VEC=2" "bdlru:1:${D}_FWD=1,${D}_VEC=8" "bdlru:1:${D}_FWD=1,${D}_BT=64"
    "bdlru:1:${D}_FWD=1,${D}_BT=16" "bdlru:1:${D}_FWD=1,${D}_WARPS=8" "bdlru:1:${D}_FWD=1,${D}_UNROLL=4"
    "bdlru:1:${D}_FWD=1,${D}_REV=0,${D}_EVICT=0" "bdlru:1:${D}_FWD=1,${D}_EVICT=0")
knob_sweep v14a 240 "${CB[@]}" "${CF[@]}"
