#!/bin/bash
# v12b: logits read (and dlogits written) coalesced at m = 4, 8 (_word_axes / _columns: one shared-memory transpose
# per step instead of one cache line per lane and word); the chained m = 1, 2 forward back to the exact reciprocal.
# Every GPU float64 test; bench_scan with its correctness pass and an m = 4, 8 launch sweep; then, in the same call,
# the v12a tile kernels (.exp/v12a: this tree without the coalesced words) and the previous commit (.exp/base)
source benchmarks/device/common.sh
all_gpu_tests v12b
python scripts/bench_scan.py --no-torch --sweep 4,8 --tag v12b --out "$OUT" --budget-s 420 --shapes 8x8192x1536 \
  2>&1 | grep -v "^$" | grep -v "^check.*OK"
for base in v12a base; do
  PYTHONPATH=.exp/$base HLRU_GIT_COMMIT=$2-$base python scripts/bench_scan.py --no-torch --no-check \
    --tag v12b_$base --out "$OUT" --budget-s 200 --shapes 8x8192x1536 2>&1 | grep -v "^$"
done
