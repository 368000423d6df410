#!/bin/bash
# v19b: the raw-word m = 1 backward at BT 32 with its loads before the look-back (v19a timed BT 32 only with v and h
# loaded after it: 0.541 ms; offline, BT 32 needs 200 registers for 8 B of stack, 255 uncapped), against the BT 16
# default (0.483) and the tile backward (0.540); 2 warps per program keep 10 warps per SM at 200 registers where 4
# keep 8. Then every GPU test. Prediction: BT 32 halves the look-back's ~0.09 ms (v19a: 0.393 without it) but
# 8-10 warps per SM cost more: 0.47-0.52 ms.
source benchmarks/device/common.sh
CASES=("bdlru:1:HLRU_DIAG_RAW_BWD=0" "bdlru:1:" "bdlru:1:HLRU_DIAG_BT_BWD=32"
       "bdlru:1:HLRU_DIAG_BT_BWD=32,HLRU_DIAG_MAXNREG_BWD=200"
       "bdlru:1:HLRU_DIAG_BT_BWD=32,HLRU_DIAG_MAXNREG_BWD=200,HLRU_DIAG_WARPS=2" "bdlru:1:HLRU_DIAG_WARPS=2")
i=0; for c in "${CASES[@]}"; do  # compile every case in parallel first (knob_sweep compiles one m's cases in turn)
    python benchmarks/experiments/knob_sweep.py "/tmp/pc$((i++)).json" "$c" --check-only > /dev/null 2>&1 &
done; wait
knob_sweep v19b 200 "${CASES[@]}"
all_gpu_tests v19b
echo "total $(( $(date +%s) - t0 )) s"
