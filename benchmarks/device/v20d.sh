#!/bin/bash
# v20d: bench_scan.py's full grid (B in 1, 8; T in 2048, 8192, 32768; D in 1536, 2048; m in 1-16; fla at m = 1)
# timed eagerly (do_bench, the protocol) and replayed from CUDA graphs (GPU time without host gaps; v20a:
# eager fwd+bwd below ~0.6 ms measures the host). The kernels are 42937fe's (v19c's float64 checks passed on them;
# the GPU tests ran in v20e), so --no-check; baseline (a) is v19c's.
source benchmarks/device/common.sh
python scripts/bench_scan.py --no-check --no-torch --graphs --tag v20d --out "$OUT" --budget-s 480 2>&1 \
    | grep -v "^$"
echo "total $(( $(date +%s) - t0 )) s"
