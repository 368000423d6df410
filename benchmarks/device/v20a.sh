#!/bin/bash
# v20a: are the small shapes host-bound (as NOTES said since v12) or bound by the look-back's chain of tiles?
# host_time.py: do_bench, CUDA-graph replay (GPU time) and host time per call, ours and fla's chunk_hgrn, m = 1.
# Then the m = 1 time tiles at three few-chain shapes: the two-phase backward (runtime step loop, any BT) and the
# two-phase tile forward (bdlru_tile.py at m = 1) with long tiles, against the defaults (raw words, BT 32 / 16).
# Last, lead B: H-LRU order 1 against BD-LRU m = 1 at the main shape, alternating, three times each.
# Prediction: at B=1 T=2048 the graph time is near the bench time (the 64-128-tile chains, ~1-4 us a hop), not the
# host time; long tiles then cut fwd+bwd there several-fold.
source benchmarks/device/common.sh
S=benchmarks/experiments/knob_sweep.py
C=("bdlru:1:" "bdlru:1:HLRU_DIAG_RAW_BWD=0" "bdlru:1:HLRU_DIAG_RAW_BWD=0,HLRU_DIAG_BT_BWD=64"
   "bdlru:1:HLRU_DIAG_RAW_BWD=0,HLRU_DIAG_BT_BWD=256" "bdlru:1:HLRU_DIAG_FWD=0,HLRU_CHAIN=0,HLRU_TILE_BT=128"
   "bdlru:1:HLRU_DIAG_FWD=0,HLRU_CHAIN=0,HLRU_TILE_BT=512")
i=0; for c in "${C[@]}" "hlru:1:"; do
    python $S "/tmp/pc$((i++)).json" "$c" --check-only --shape 1x2048x1536 > /dev/null 2>&1 &
done; wait
echo "compiled in $(( $(date +%s) - t0 )) s"
python benchmarks/experiments/host_time.py "$OUT/host_time_v20a.json" 1x2048x1536 1x8192x1536 8x2048x1536 \
    1x32768x2048 8x8192x1536 2>&1 | tee "$OUT/host_time_v20a.log"
echo "host_time done at $(( $(date +%s) - t0 )) s"
KS_SHAPE=1x2048x1536 knob_sweep v20a_1x2048 60 "${C[@]}"
KS_SHAPE=8x2048x1536 knob_sweep v20a_8x2048 60 "${C[@]}"
KS_SHAPE=1x32768x2048 knob_sweep v20a_1x32768 80 "${C[@]}" "${C[@]:0:2}"
knob_sweep v20a_hlru1 60 "hlru:1:" "bdlru:1:" "hlru:1:" "bdlru:1:" "hlru:1:" "bdlru:1:"
