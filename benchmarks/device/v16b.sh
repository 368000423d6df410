#!/bin/bash
# v16b: v16a's measurement, smaller. v16a timed out at 520 s in its fp32 test job (12 tests, every norm at m = 4, 8,
# 16: each compiles a row forward and a row backward, ~20-28 s apiece offline at m = 16), before the sweep ran; its
# bf16 / no-NaN / steps job passed (11 tests, row backward at m = 4, 8, 16). Here: two fp32 tests beside the sweep's
# compiles, and the sweep without the U = 8 backward (255 registers at U = 4 already).
source benchmarks/device/common.sh
E="HLRU_ROWS_BWD=1 HLRU_ROWS_MIN_M=4 HLRU_ROWS_MIN_LANES=0"
job p1 "$E" "bdlru_fp32 and (16-softmax or 8-relu_l1)"
R=HLRU_ROWS
knob_sweep v16b 200 "bdlru:16:" "bdlru:16:${R}_BWD=1" "bdlru:16:${R}_BWD=1,${R}_UNROLL_BWD=2" \
    "bdlru:8:" "bdlru:8:${R}_BWD=1,${R}_MIN_LANES=0" "bdlru:8:${R}_BWD=1,${R}_MIN_LANES=0,${R}_UNROLL_BWD=2"
collect v16b
