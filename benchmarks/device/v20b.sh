#!/bin/bash
# v20b: what the host time of a small m = 1 fwd+bwd is made of (host_time.py's pieces, before and after importing
# fla), and the m = 1 grid (12 shapes) timed eagerly and from CUDA graphs, ours and fla's chunk_hgrn in one run.
# The kernels are those of 42937fe (v19c's checks; v20a's knob_sweep checks at 1x2048, 8x2048 and 1x32768), so
# bench_scan runs with --no-check. Prediction: graph fwd+bwd >= 2.5x fla at every shape (v20a: 2.85-4.5x at five).
source benchmarks/device/common.sh
python benchmarks/experiments/host_time.py "$OUT/host_time_v20b.json" 1x2048x1536 8x2048x1536 2>&1 \
    | tee "$OUT/host_time_v20b.log"
echo "host_time done at $(( $(date +%s) - t0 )) s"
python scripts/bench_scan.py --no-check --no-torch --no-hlru --ms 1 --graphs --tag v20b --out "$OUT" \
    --budget-s 300 2>&1 | grep -v "^$"
echo "total $(( $(date +%s) - t0 )) s"
