#!/bin/bash
# v14c: look-back maps as vector pairs (diag_tile._lookback); the single-pass diagonal backward (HLRU_DIAG_BWD=2)
# against the two-phase one (1); the single-pass forward (HLRU_DIAG_FWD=1) at other warps. GPU tests of the
# single-pass kernels first (look-back maps composed too).
source benchmarks/device/common.sh
job p1 "HLRU_DIAG_FWD=1 HLRU_DIAG_BWD=2" "(bdlru_fp32 or hlru_fp32 or bf16 or no_nan) and 1-"
job p2 "HLRU_DIAG_FWD=1 HLRU_DIAG_BWD=2 HLRU_DEBUG_AGG_ONLY=1" "(bdlru_fp32 or hlru_fp32) and 1-"
job p3 "HLRU_DIAG_FWD=2 HLRU_DEBUG_AGG_ONLY=1" "(bdlru_fp32 or bf16) and 1-"
collect v14c
D=HLRU_DIAG; F=${D}_FWD=1; C=${D}_BWD=2
CF=("bdlru:1:${D}_FWD=0" "bdlru:1:$F" "bdlru:1:$F,${D}_WARPS=1" "bdlru:1:$F,${D}_WARPS=2" "bdlru:1:$F,${D}_WARPS=8"
    "bdlru:1:${D}_FWD=2")
CB=("bdlru:1:$C" "bdlru:1:$C,${D}_WARPS=2" "bdlru:1:$C,${D}_WARPS=8" "bdlru:1:$C,${D}_VEC=4,${D}_BT_BWD=4"
    "bdlru:1:$C,${D}_VEC=1,${D}_BT_BWD=16" "bdlru:1:$C,${D}_BT_BWD=4" "bdlru:1:${D}_EVICT=2"
    "bdlru:1:${D}_WARPS=8,${D}_EVICT=2" "bdlru:1:${D}_BWD=0")
knob_sweep v14c 240 "${CF[@]}" "${CB[@]}"
