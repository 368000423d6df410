#!/bin/bash
# v18b: what the decoupled look-back costs the forwards. The same cases run twice in one call: as committed, then
# with benchmarks/experiments/nolookback_v18b.patch applied (every tile starts from zero and publishes nothing: wrong
# results, so the checks say BAD; the timings bound what any look-back change can gain). Tile lengths at each m show
# whether short tiles (v17b: m = 2 BT 8 0.605 ms against BT 16 0.418; v18a: the pair kernel at BT 8 0.469) lose to
# the look-back or to per-tile work. Prediction: the look-back is 15-25% of the m = 1, 2 forwards, more at BT 8.
source benchmarks/device/common.sh
CASES=("bdlru:1:" "bdlru:1:HLRU_DIAG_BT=8" "bdlru:1:HLRU_DIAG_BT=32" "bdlru:2:HLRU_PAIR=0"
       "bdlru:2:HLRU_PAIR=0,HLRU_CHAIN_BT=8" "bdlru:2:HLRU_PAIR=0,HLRU_CHAIN_BT=32" "bdlru:2:" "bdlru:4:"
       "bdlru:4:HLRU_TILE_BT=32")
knob_sweep v18b 150 "${CASES[@]}"
git apply benchmarks/experiments/nolookback_v18b.patch && echo "patched: no look-back"
knob_sweep v18b_nolb 150 "${CASES[@]}"
echo "total $(( $(date +%s) - t0 )) s"
