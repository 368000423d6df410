#!/bin/bash
# v17e: the m = 2 forward (0.384 ms in v17d, 63% of copy; 70% needs ~0.348) with the short normalisation
# (HLRU_CHAIN_FAST=1: one MUFU.RCP, exp2 with one FFMA; offline 1928 SASS instructions per tile against 2240, the
# same 128 registers and 80 B of spills), around the register cap; and the m = 16 forward of this tree (v17d's
# bench ran out of budget before it). Prediction: FAST -3..5% (issue is about half the time: 120 instructions per
# thread and step, ~0.18 ms at one per clock per scheduler).
source benchmarks/device/common.sh
F=HLRU_CHAIN_FAST=1
knob_sweep v17e 200 "bdlru:2:" "bdlru:2:$F" "bdlru:2:$F,HLRU_CHAIN_MAXNREG=112" "bdlru:2:$F,HLRU_CHAIN_MAXNREG=120" \
    "bdlru:2:$F,HLRU_CHAIN_MAXNREG=136" "bdlru:2:HLRU_CHAIN_MAXNREG=120" "bdlru:2:$F" "bdlru:2:" "bdlru:16:"
