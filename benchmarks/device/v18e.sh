#!/bin/bash
# v18e: the m = 1 forward with raw words across the look-back (diag_tile._diag_raw_fwd_kernel, HLRU_DIAG_RAW=1).
# v18b-d: the look-back costs the m = 1 forward 0.088 of 0.287 ms (none: 0.199), a third each in its stores, its
# fences and its waits, all per tile; BT 32 would halve the tiles but spills today's kernel (2 fp32 prefixes per
# channel-step). Here a lane keeps a pair of channels' logit words and one v word per step (1.5 registers per
# channel-step), folds the tile's map, and after the look-back reruns the steps (normalising again: +33% SASS).
# Offline (triton 3.6, 4 warps): BT 16 83 registers, BT 32 164 (cap 128: 40 B spills), BT 64 255 + 16 B.
# Prediction: BT 32 at 4-5 programs per SM: 0.25-0.26 ms (70% of copy needs 0.279).
source benchmarks/device/common.sh
R=HLRU_DIAG_RAW=1
knob_sweep v18e 200 "bdlru:1:" "bdlru:1:$R" "bdlru:1:$R,HLRU_DIAG_MAXNREG=80" "bdlru:1:$R,HLRU_DIAG_MAXNREG=64" \
    "bdlru:1:$R,HLRU_DIAG_BT=32,HLRU_DIAG_MAXNREG=0" "bdlru:1:$R,HLRU_DIAG_BT=32,HLRU_DIAG_MAXNREG=128" \
    "bdlru:1:$R,HLRU_DIAG_BT=32,HLRU_DIAG_MAXNREG=128,HLRU_DIAG_WARPS=2" \
    "bdlru:1:$R,HLRU_DIAG_BT=32,HLRU_DIAG_MAXNREG=0,HLRU_DIAG_WARPS=8" \
    "bdlru:1:$R,HLRU_DIAG_BT=64,HLRU_DIAG_MAXNREG=0,HLRU_DIAG_WARPS=2" \
    "bdlru:1:$R,HLRU_DIAG_BT=64,HLRU_DIAG_MAXNREG=0" "bdlru:1:"
python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v18e_small.json" --shape 1x32768x2048 --budget-s 60 \
    "bdlru:1:" "bdlru:1:$R" "bdlru:1:$R,HLRU_DIAG_BT=32,HLRU_DIAG_MAXNREG=128" 2>&1 | tee "$OUT/knob_sweep_v18e_small.log"
echo "total $(( $(date +%s) - t0 )) s"
