#!/bin/bash
# v15c: L2 prefetches (HLRU_ROWS_PF steps beyond the group being loaded) in the row-per-lane forward. v15b's profile:
# one warp per scheduler, 4.1 cycles per issued instruction at m = 16, half of them waiting on the group loads,
# which ptxas schedules late in the loop body. Sweep of prefetch distance x unroll at B=8 T=8192 D=1536.
source benchmarks/device/common.sh
R=HLRU_ROWS
knob_sweep v15c 150 "bdlru:16:${R}_PF=0" "bdlru:16:" "bdlru:16:${R}_PF=64" "bdlru:16:${R}_UNROLL=8,${R}_PF=0" \
    "bdlru:16:${R}_UNROLL=8" "bdlru:16:${R}_UNROLL=8,${R}_PF=64" \
    "bdlru:8:${R}_MIN_M=8,${R}_PF=0" "bdlru:8:${R}_MIN_M=8" "bdlru:8:${R}_MIN_M=8,${R}_UNROLL=16" \
    "bdlru:8:${R}_MIN_M=8,${R}_UNROLL=16,${R}_PF=64" "bdlru:4:${R}_MIN_M=4" "bdlru:4:${R}_MIN_M=4,${R}_PF=64" "bdlru:4:"
