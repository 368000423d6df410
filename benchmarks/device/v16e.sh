#!/bin/bash
# v16e: the row backward with P = 2 lanes per row (HLRU_ROWS_PARTS_BWD; v16). Offline (triton 3.6, loop instructions
# per step per lane): m = 16 247 (U = 2) / 254 (U = 4) at P = 2 against 402 at P = 1 (U = 2); m = 8 181 (U = 4)
# against 238. Main shape, then B=1 T=32768 D=2048 for m = 16, where the generic backward (HLRU_ROWS_BWD=0) is
# timed too: the row backward became the default there in v16 without a small-B timing.
source benchmarks/device/common.sh
R=HLRU_ROWS
knob_sweep v16e 90 "bdlru:16:" "bdlru:16:${R}_PARTS_BWD=2" "bdlru:16:${R}_PARTS_BWD=2,${R}_UNROLL_BWD=4" \
    "bdlru:8:" "bdlru:8:${R}_MIN_LANES=0,${R}_PARTS_BWD=2"
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v16e_b1.json" --shape 1x32768x2048 \
    --budget-s 60 "bdlru:16:" "bdlru:16:${R}_PARTS_BWD=2" "bdlru:16:${R}_BWD=0" 2>&1 | tee "$OUT/knob_sweep_v16e_b1.log"
echo "total $(( $(date +%s) - t0 )) s"
