#!/bin/bash
# v14g: the m = 1 backward under a register cap (HLRU_DIAG_MAXNREG_BWD): 32 registers (full occupancy, 24 B of
# spills) or 4 steps per loop iteration in 40 (no spills); the defaults timed first and last to gauge run noise.
# HLRU_DIAG_MAXNREG_BWD (the backward's maxnreg in diag_tile._launch_args) was removed after this run: no case was
# faster than the defaults.
source benchmarks/device/common.sh
D=HLRU_DIAG; R=${D}_MAXNREG_BWD
knob_sweep v14g 150 "bdlru:1:" "bdlru:1:$R=32" "bdlru:1:${D}_UNROLL=4,$R=40" "bdlru:1:${D}_UNROLL=4,$R=40,${D}_BT_BWD=32" \
    "bdlru:1:${D}_UNROLL=4,$R=32" "bdlru:1:${D}_BT_BWD=16"
