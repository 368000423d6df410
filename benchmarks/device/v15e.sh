#!/bin/bash
# v15e: bench_scan.py at the v15 defaults and, in the same call, the last landed commit's package (.exp/base).
source benchmarks/device/common.sh
bench_with_base v15e "$2" 200 100
echo "total $(( $(date +%s) - t0 )) s"
