#!/bin/bash
# v14j: a wider look-back (HLRU_DIAG_WINDOW = W: each round polls W predecessors' flags at once and composes their
# published maps), m = 1 forward and backward; GPU tests with W = 4 first (look-back maps composed too).
# HLRU_DIAG_WINDOW exists only at commit a09d8bf: slower at every W, it was removed after this run.
source benchmarks/device/common.sh
job p1 "HLRU_DIAG_WINDOW=4" "(bdlru_fp32 or hlru_fp32 or bf16 or no_nan) and 1-"
job p2 "HLRU_DIAG_WINDOW=4 HLRU_DEBUG_AGG_ONLY=1" "(bdlru_fp32 or hlru_fp32) and 1-"
job p3 "HLRU_DIAG_WINDOW=8 HLRU_DEBUG_AGG_ONLY=1" "bdlru_fp32 and 1-"
collect v14j
W=HLRU_DIAG_WINDOW
for S in 8x8192x1536 8x8192x2048; do
    python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v14j_$S.json" --shape $S --budget-s 60 "bdlru:1:" \
        "bdlru:1:$W=2" "bdlru:1:$W=4" "bdlru:1:$W=8" "bdlru:1:" 2>&1 | tee "$OUT/knob_sweep_v14j_$S.log"
done
