#!/bin/bash
# v16d: the v16 defaults (row backward at m = 8, 16; row forward at m = 16 with P = 2 lanes per row). GPU tests of
# the m = 16 paths (fp32 two norms, bf16, T = 65536), then bench_scan without checks for this tree and for the last
# landed commit's package (.exp/base, $2) at the main shape and B=1 T=32768 D=2048, then the m = 16 P = 2 unroll
# and prefetch distance.
source benchmarks/device/common.sh
job p1 "" "bdlru_fp32 and (16-sigmoid_l1 or 16-none)"
job p2 "" "(bdlru_bf16 and 16) or (no_nan and 16)"
collect v16d
S=8x8192x1536,1x32768x2048
python scripts/bench_scan.py --no-torch --no-check --tag v16d --out "$OUT" --budget-s 150 --shapes $S 2>&1 | grep -v "^$"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v16d_base \
    --out "$OUT" --budget-s 120 --shapes $S 2>&1 | grep -v "^$"
echo "bench done at $(( $(date +%s) - t0 )) s"
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v16d.json" --budget-s 60 \
    "bdlru:16:" "bdlru:16:HLRU_ROWS_UNROLL=16" "bdlru:16:HLRU_ROWS_PF=16" 2>&1 | tee "$OUT/knob_sweep_v16d.log"
echo "total $(( $(date +%s) - t0 )) s"
