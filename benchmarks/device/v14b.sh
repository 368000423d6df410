#!/bin/bash
# v14b: the single-pass diagonal forward (HLRU_DIAG_FWD=1: VEC channels per lane, time in registers) against
# bdlru_chain.py's (HLRU_DIAG_FWD=0, the default), and backward launch combinations around v14a's best (VEC 2);
# GPU tests of the m = 1 paths with the new forward first (look-back maps composed too).
source benchmarks/device/common.sh
job p1 HLRU_DIAG_FWD=1 "(bdlru_fp32 or hlru_fp32 or bf16 or no_nan) and 1-"
job p2 "HLRU_DIAG_FWD=1 HLRU_DEBUG_AGG_ONLY=1" "(bdlru_fp32 or hlru_fp32) and 1-"
job p3 "HLRU_DIAG_FWD=1 HLRU_DIAG_VEC=4 HLRU_DIAG_BT=8" "(bdlru_fp32 or bf16) and 1-"
collect v14b
D=HLRU_DIAG; F=${D}_FWD=1
CF=("bdlru:1:${D}_FWD=0" "bdlru:1:$F" "bdlru:1:$F,${D}_BT=8" "bdlru:1:$F,${D}_BT=32" "bdlru:1:$F,${D}_VEC=4,${D}_BT=8"
    "bdlru:1:$F,${D}_VEC=4,${D}_BT=4" "bdlru:1:$F,${D}_WARPS=2" "bdlru:1:$F,${D}_WARPS=8"
    "bdlru:1:$F,${D}_VEC=4,${D}_BT=8,${D}_WARPS=2" "bdlru:1:$F,${D}_BT=8,${D}_WARPS=8")
CB=("bdlru:1:${D}_WARPS=8" "bdlru:1:${D}_EVICT=2" "bdlru:1:${D}_WARPS=8,${D}_EVICT=2" "bdlru:1:${D}_BT_BWD=32"
    "bdlru:1:${D}_UNROLL=4" "bdlru:1:${D}_WARPS=2" "bdlru:1:${D}_BWD=0")
knob_sweep v14b 240 "${CF[@]}" "${CB[@]}"
