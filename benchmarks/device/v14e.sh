#!/bin/bash
# v14e: the forward's register cap around v14d's best (96, FAST normalisation), other tile lengths and warps under a
# cap; the m = 1 GPU tests with the capped forward first.
source benchmarks/device/common.sh
job p1 "" "(bdlru_fp32 or hlru_fp32 or bf16 or no_nan) and 1-"
job p2 "HLRU_DEBUG_AGG_ONLY=1" "(bdlru_fp32 or hlru_fp32) and 1-"
collect v14e
D=HLRU_DIAG; R=${D}_MAXNREG
CF=("bdlru:1:" "bdlru:1:$R=0,${D}_FAST=0" "bdlru:1:$R=112" "bdlru:1:$R=104" "bdlru:1:$R=88" "bdlru:1:${D}_FAST=0"
    "bdlru:1:${D}_BT=8,$R=64" "bdlru:1:${D}_BT=8,$R=0" "bdlru:1:${D}_WARPS=2" "bdlru:1:${D}_WARPS=8")
knob_sweep v14e 200 "${CF[@]}"
