#!/bin/bash
# v17g: the final tree (this session's defaults: lane-per-lag H-LRU at orders 8, 16; the m = 2 forward's words, cap
# and planar look-back). GPU tests of the m = 2 paths and decode steps, then bench_scan (no checks: v17a-f checked
# every changed path against float64) for this tree and for a81dd41, the last landed commit, in the same call.
source benchmarks/device/common.sh
job p1 "" "bdlru_fp32 and 2-"
job p2 "" "(bdlru_bf16 and 2) or steps or no_nan"
collect v17g
python scripts/bench_scan.py --no-torch --no-check --tag v17g --out "$OUT" --budget-s 150 --shapes 8x8192x1536 2>&1 \
    | grep -v "^$"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v17g_base \
    --out "$OUT" --budget-s 150 --shapes 8x8192x1536 2>&1 | grep -v "^$"
echo "total $(( $(date +%s) - t0 )) s"
