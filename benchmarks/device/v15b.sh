#!/bin/bash
# v15b: the row-per-lane forward after v15a, with each group's gates computed before its h chain, pairwise max / sum
# trees, four partial sums in the mat-vec and pointer increments (offline: 185 / 103 / 66 instructions per step at
# m = 16 / 8 / 4, from 191 / 122 / 83). Sweeps of its unroll against the tile (m = 4, 8) and generic (m = 16)
# kernels at B=8 T=8192 D=1536, the routing shape B=1 T=32768 D=2048, then stall profiles of the m = 8, 16 kernel.
source benchmarks/device/common.sh
R=HLRU_ROWS
knob_sweep v15b 200 "bdlru:16:" "bdlru:16:${R}_UNROLL=2" "bdlru:16:${R}_UNROLL=8" "bdlru:16:${R}=0" \
    "bdlru:8:${R}_MIN_M=8" "bdlru:8:${R}_MIN_M=8,${R}_UNROLL=16" "bdlru:8:" \
    "bdlru:4:${R}_MIN_M=4,${R}_UNROLL=8" "bdlru:4:${R}_MIN_M=4" "bdlru:4:" "bdlru:1:"
S=1x32768x2048
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v15b_$S.json" --shape $S --budget-s 60 \
    "bdlru:16:" "bdlru:8:${R}_MIN_M=8" "bdlru:8:" "bdlru:4:${R}_MIN_M=4" "bdlru:4:" 2>&1 | tee "$OUT/knob_sweep_v15b_$S.log"
ncu_prof r16 bdlru 16 rows_fwd
HLRU_ROWS_MIN_M=8 ncu_prof r8 bdlru 8 rows_fwd
rm -r "$OUT/src" "$OUT/rep"
mv "$OUT/ncu_details.txt" "$OUT/ncu_v15b_details.txt"
grep -E "^=====|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|L2 Hit|No Eligible|Stall" "$OUT/ncu_v15b_details.txt" | head -60
echo "total $(( $(date +%s) - t0 )) s"
