#!/bin/bash
# v19a: the m = 1 backward in one pass over raw words (_diag_raw_bwd_kernel) against the two-phase tile backward
# (HLRU_DIAG_RAW_BWD=0), its knobs, what its look-back costs (nolookback_bwd_v19a.patch: wrong results, timings
# only), then both backwards and fla's chunk_hgrn in one process at three shapes (m1_fla.py). Prediction: the
# backward 0.538 -> 0.47-0.50 ms at B=8 T=8192 D=1536 (one read of every byte, all of a tile's loads in flight);
# BT 32 spills (255 registers offline) and loses.
source benchmarks/device/common.sh
CASES=("bdlru:1:HLRU_DIAG_RAW_BWD=0" "bdlru:1:" "bdlru:1:HLRU_DIAG_MAXNREG_BWD=128" "bdlru:1:HLRU_DIAG_VH_EARLY=0"
       "bdlru:1:HLRU_DIAG_BT_BWD=8" "bdlru:1:HLRU_DIAG_BT_BWD=32,HLRU_DIAG_VH_EARLY=0" "bdlru:1:HLRU_DIAG_WARPS=2"
       "bdlru:1:HLRU_DIAG_WARPS=8")
i=0; for c in "${CASES[@]}"; do  # compile every case in parallel first (knob_sweep compiles one m's cases in turn)
    python benchmarks/experiments/knob_sweep.py "/tmp/pc$((i++)).json" "$c" --check-only > /dev/null 2>&1 &
done; wait
knob_sweep v19a 200 "${CASES[@]}"
KS_SHAPE=8x8192x2048 knob_sweep v19a_2048 60 "bdlru:1:HLRU_DIAG_RAW_BWD=0" "bdlru:1:" "bdlru:1:HLRU_DIAG_MAXNREG_BWD=128"
python benchmarks/experiments/m1_fla.py "$OUT/m1_fla_v19a.json" "raw_bwd:" "tile_bwd:HLRU_DIAG_RAW_BWD=0" 2>&1 \
    | tee "$OUT/m1_fla_v19a.log"
git apply benchmarks/experiments/nolookback_bwd_v19a.patch && echo "patched: no look-back in the raw backward"
knob_sweep v19a_nolb 60 "bdlru:1:" "bdlru:1:HLRU_DIAG_BT_BWD=8" "bdlru:1:HLRU_DIAG_BT_BWD=32,HLRU_DIAG_VH_EARLY=0"
git apply -R benchmarks/experiments/nolookback_bwd_v19a.patch
job p4 HLRU_TILE=1 "bdlru_bf16 or no_nan"
collect v19a
echo "total $(( $(date +%s) - t0 )) s"
