#!/bin/bash
# v14d: diag_tile.py with the single-pass forward and the two-phase backward as the m = 1 defaults (v14c): every GPU
# test, then the forward's register cap (HLRU_DIAG_MAXNREG: more resident programs, some spills) and short
# reciprocal (HLRU_DIAG_FAST), and backward launch shapes with evict_last phase-1 loads (HLRU_DIAG_EVICT=2).
source benchmarks/device/common.sh
job p8 "HLRU_DIAG_VEC=4 HLRU_DIAG_BT=8 HLRU_DIAG_FAST=1" "(bdlru_fp32 or hlru_fp32 or bf16) and 1-"
all_gpu_tests v14d
D=HLRU_DIAG
CF=("bdlru:1:${D}_FWD=0,${D}_BWD=0" "bdlru:1:" "bdlru:1:${D}_FAST=1" "bdlru:1:${D}_MAXNREG=128"
    "bdlru:1:${D}_MAXNREG=128,${D}_FAST=1" "bdlru:1:${D}_MAXNREG=96,${D}_FAST=1" "bdlru:1:${D}_MAXNREG=80,${D}_FAST=1")
CB=("bdlru:1:${D}_WARPS=8" "bdlru:1:${D}_UNROLL=1" "bdlru:1:${D}_UNROLL=4" "bdlru:1:${D}_BT_BWD=32"
    "bdlru:1:${D}_VEC=4" "bdlru:1:${D}_EVICT=1")
knob_sweep v14d 240 "${CF[@]}" "${CB[@]}"
