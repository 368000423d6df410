#!/bin/bash
# v17f: every look-back (diag_tile, bdlru_chain, bdlru_tile) publishes a tile's map only when its first predecessor
# has no end state yet; otherwise the tile goes straight to its end state (flag 0 -> 2). v14j found most look-backs
# end one tile back, and the maps are a large share of what a tile writes: 8 of 12 B per channel at m = 1 (BT 16:
# ~6% of the forward's bytes), 24 of 32 B per block at m = 2 (~7.5%), 80 of 96 B at m = 4 (BT 64: ~2%); each skip
# also saves a barrier and a release fence. Prediction: forward m = 1 -3..5%, m = 2 -4..7%, m = 4 -1..2%; the m = 1
# backward -2..4%. GPU tests first (composed maps with HLRU_DEBUG_AGG_ONLY=1 too), then this tree against aac90f5
# (.exp/prev, the maps always published), alternating, twice.
source benchmarks/device/common.sh
job p1 "" "bdlru_fp32 and (1- or 2- or 4-)"
job p2 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax or 8-softmax)"
job p3 "" "(hlru_fp32 and (1- or 2- or 4-)) or (bdlru_bf16 and (1 or 2 or 4))"
collect v17f
K=benchmarks/experiments/knob_sweep.py
for i in 1 2; do
    python $K "$OUT/knob_sweep_v17f_new$i.json" "bdlru:1:" "bdlru:2:" "bdlru:4:" "hlru:2:" 2>&1 | grep "fwd "
    PYTHONPATH=.exp/prev HLRU_GIT_COMMIT=aac90f5 python $K "$OUT/knob_sweep_v17f_prev$i.json" "bdlru:1:" "bdlru:2:" \
        "bdlru:4:" "hlru:2:" 2>&1 | grep "fwd " | sed 's/^/prev /'
done
echo "total $(( $(date +%s) - t0 )) s"
