#!/bin/bash
# v12c: the v12 defaults (coalesced logit words at m = 8 only, HLRU_TILE_COAL_M; exact reciprocal in the chained and
# generic kernels): every GPU float64 test; bench_scan with its correctness pass, an m = 4, 8 sweep (coalesced words
# at m = 4 with 1 and 2 warps; bench_scan.py's m = 4 knob list has since become v12e's, bench_scan_v12c.json records
# the knobs that ran) and the grid at three shapes; then the previous commit (.exp/base) in the same call
source benchmarks/device/common.sh
all_gpu_tests v12c
python scripts/bench_scan.py --no-torch --sweep 4,8 --tag v12c --out "$OUT" --budget-s 330 \
  --shapes 8x8192x1536,1x8192x1536,8x2048x2048 2>&1 | grep -v "^$" | grep -v "^check.*OK"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v12c_base \
  --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 | grep -v "^$"
