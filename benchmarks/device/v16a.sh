#!/bin/bash
# v16a (written in v15, not run yet: no device time was left): the row-per-lane backward of bdlru_rows.py
# (HLRU_ROWS_BWD=1, opt-in) at m = 8, 16. GPU tests with it at every m >= 4, then its unroll against the generic
# (m = 16) and tile (m = 8) backward at B=8 T=8192 D=1536. Offline (v15, triton 3.6): 400 / 238 instructions and
# 31 / 15 shuffles per step at m = 16 / 8 (U = 4), 255 / 222 registers, no spills. Prediction in NOTES (lead 1).
# MIN_LANES=0 makes knob_sweep's check (B = 2, 3072 lanes) run the row kernels at m = 8 too; the timing shape has
# 12288 lanes either way.
source benchmarks/device/common.sh
E="HLRU_ROWS_BWD=1 HLRU_ROWS_MIN_M=4 HLRU_ROWS_MIN_LANES=0"
job p1 "$E" "bdlru_fp32 and (4- or 8- or 16-)"
job p2 "$E" "bdlru_bf16 or no_nan or steps"
collect v16a
R=HLRU_ROWS
knob_sweep v16a 150 "bdlru:16:" "bdlru:16:${R}_BWD=1" "bdlru:16:${R}_BWD=1,${R}_UNROLL_BWD=2" \
    "bdlru:16:${R}_BWD=1,${R}_UNROLL_BWD=8" "bdlru:8:" "bdlru:8:${R}_BWD=1,${R}_MIN_LANES=0" \
    "bdlru:8:${R}_BWD=1,${R}_MIN_LANES=0,${R}_UNROLL_BWD=2" "bdlru:8:${R}_BWD=1,${R}_MIN_LANES=0,${R}_UNROLL_BWD=8"
echo "total $(( $(date +%s) - t0 )) s"
