#!/bin/bash
# v20g: baseline (a) at m = 16 (materialise A in torch + the chunked torch scan, B=8 T=8192 D=1536), the one cell of
# the table v19c's time budget left out, with the m = 16 kernels timed in the same run.
source benchmarks/device/common.sh
python scripts/bench_scan.py --no-check --no-hlru --ms 16 --shapes 8x8192x1536 --tag v20g --out "$OUT" \
    --budget-s 400 2>&1 | grep -v "^$"
echo "total $(( $(date +%s) - t0 )) s"
