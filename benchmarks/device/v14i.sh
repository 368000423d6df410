#!/bin/bash
# v14i: the m = 1 forward at a small B·N (B=1 T=8192 D=1536: 6 channel tiles per batch row at the defaults, 512 time
# tiles each), where v14h measured it slower than m = 2: fewer channels per program (warps, VEC) and longer tiles.
source benchmarks/device/common.sh
D=HLRU_DIAG; S="--shape 1x8192x1536"
python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v14i.json" $S --budget-s 150 "bdlru:1:" "bdlru:1:${D}_FWD=0" \
    "bdlru:1:${D}_WARPS=2" "bdlru:1:${D}_WARPS=1" "bdlru:1:${D}_VEC=1" "bdlru:1:${D}_VEC=1,${D}_WARPS=2" \
    "bdlru:1:${D}_VEC=1,${D}_WARPS=1" "bdlru:1:${D}_BT=32,${D}_MAXNREG=0" "bdlru:1:${D}_WARPS=1,${D}_BT=32,${D}_MAXNREG=0" \
    "bdlru:1:${D}_VEC=1,${D}_BT=32,${D}_MAXNREG=0" "bdlru:1:${D}_WARPS=2,${D}_BT=32,${D}_MAXNREG=0" "bdlru:2:" 2>&1 \
    | tee "$OUT/knob_sweep_v14i.log"
