#!/bin/bash
# v16c: the row forward with P lanes per row (HLRU_ROWS_PARTS; v16). Offline (triton 3.6, loop instructions per step
# per lane): m = 16 115 at P = 2 against 190 at P = 1; m = 8 84 (P = 2), 70 (P = 4) against 109; m = 4 67 (P = 2,
# U = 16) against 80. P doubles the warps: at the main shape 768 instead of 384 one-warp programs for 528 schedulers.
# Main shape, then B=1 T=32768 D=2048 (2048 rows: 64 warps at P = 1). MIN_LANES=0 puts the B = 2 checks of m = 4, 8
# on the row kernels too (the timing shapes have >= 8192 lanes except B=1 m = 4, 8).
source benchmarks/device/common.sh
R=HLRU_ROWS
L="${R}_MIN_M=4,${R}_MIN_LANES=0"
knob_sweep v16c 200 "bdlru:16:" "bdlru:16:${R}_PARTS=2" "bdlru:16:${R}_PARTS=2,${R}_UNROLL=4" \
    "bdlru:8:" "bdlru:8:$L,${R}_PARTS=2" "bdlru:8:$L,${R}_PARTS=4" \
    "bdlru:4:" "bdlru:4:$L,${R}_PARTS=2"
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v16c_b1.json" --shape 1x32768x2048 \
    --budget-s 120 "bdlru:16:" "bdlru:16:${R}_PARTS=2" "bdlru:8:" "bdlru:8:$L,${R}_PARTS=2" "bdlru:4:" \
    "bdlru:4:$L,${R}_PARTS=2" 2>&1 | tee "$OUT/knob_sweep_v16c_b1.log"
echo "total $(( $(date +%s) - t0 )) s"
