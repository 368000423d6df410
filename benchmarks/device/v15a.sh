#!/bin/bash
# v15a: the row-per-lane forward (bdlru_rows.py) at m = 4, 8, 16 against the tile kernels (m = 4, 8) and the generic
# kernels (m = 16): GPU tests with it at every m >= 4, then sweeps of its unroll and word loads at B=8 T=8192 D=1536
# and the routing question at B=1 T=32768 D=2048.
source benchmarks/device/common.sh
job p1 HLRU_ROWS_MIN_M=4 "bdlru_fp32 and (4- or 8- or 16-)"
job p2 HLRU_ROWS_MIN_M=4 "bdlru_bf16 or steps or no_nan"
collect v15a
R=HLRU_ROWS
knob_sweep v15a 240 "bdlru:16:" "bdlru:16:${R}=0" "bdlru:16:${R}_UNROLL=2" "bdlru:16:${R}_UNROLL=8" \
    "bdlru:16:${R}_WORDS=0" "bdlru:8:" "bdlru:8:${R}_MIN_M=8" "bdlru:8:${R}_MIN_M=8,${R}_UNROLL=4" \
    "bdlru:8:${R}_MIN_M=8,${R}_UNROLL=16" "bdlru:4:" "bdlru:4:${R}_MIN_M=4" "bdlru:4:${R}_MIN_M=4,${R}_UNROLL=4" \
    "bdlru:4:${R}_MIN_M=4,${R}_UNROLL=16" "bdlru:1:"
S=1x32768x2048
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v15a_$S.json" --shape $S --budget-s 90 \
    "bdlru:16:" "bdlru:16:${R}=0" "bdlru:8:" "bdlru:8:${R}_MIN_M=8" "bdlru:4:" "bdlru:4:${R}_MIN_M=4" 2>&1 \
    | tee "$OUT/knob_sweep_v15a_$S.log"
echo "total $(( $(date +%s) - t0 )) s"
