#!/bin/bash
# v12e: tile pointers at the tile's origin, so per-step offsets are int32 (offline: m = 1 backward 223 -> 200
# instructions per two steps): every GPU float64 test; bench_scan (no check: the tests above compare with float64)
# with an m = 4 sweep (maxnreg 112), then the previous commit (.exp/base) in the same call
source benchmarks/device/common.sh
all_gpu_tests v12e
python scripts/bench_scan.py --no-torch --no-check --sweep 4 --tag v12e --out "$OUT" --budget-s 150 \
  --shapes 8x8192x1536 2>&1 | grep -v "^$"
PYTHONPATH=.exp/base HLRU_GIT_COMMIT=$2 python scripts/bench_scan.py --no-torch --no-check --tag v12e_base \
  --out "$OUT" --budget-s 100 --shapes 8x8192x1536 2>&1 | grep -v "^$"
