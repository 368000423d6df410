#!/bin/bash
# v17d: GPU tests of the m = 2 forward's new defaults (words, 128-register cap); the m = 2 look-back's maps and end
# states stored planar (entry e of block n at e N + n: one contiguous run per warp access, where the stride-6 / -2
# layout touched 6 / 2 lines per access) against c369852 (.exp/prev) with the same words and cap, twice, alternating;
# then bench_scan for this tree and a81dd41 (.exp/base), the last landed commit, in the same call.
# Prediction: planar -2% on the m = 2 forward (v13a: 27% of its stall samples in the look-back loop; offline 80 B of
# spills against 72).
source benchmarks/device/common.sh
job p1 "" "bdlru_fp32 and 2-"
job p2 "" "(bdlru_bf16 and 2) or (hlru_fp32 and 16-)"
collect v17d
K=benchmarks/experiments/knob_sweep.py
for i in 1 2; do
    python $K "$OUT/ab_new$i.json" "bdlru:2:" 2>&1 | grep "fwd "
    PYTHONPATH=.exp/prev python $K "$OUT/ab_prev$i.json" "bdlru:2:HLRU_CHAIN_WORDS=2,HLRU_CHAIN_MAXNREG=128" 2>&1 \
        | grep "fwd " | sed 's/^/prev /'
done
rm -f "$OUT"/ab_*.json
echo "a/b done at $(( $(date +%s) - t0 )) s"
bench_with_base v17d "$2" 150 120
echo "total $(( $(date +%s) - t0 )) s"
