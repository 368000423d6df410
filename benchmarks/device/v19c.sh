#!/bin/bash
# v19c: the final tree (the raw-word m = 1 backward as default) over bench_scan.py's full grid (B in 1, 8; T in 2048,
# 8192, 32768; D in 1536, 2048; m in 1-16; float64 checks first; fla's chunk_hgrn at m = 1), then baseline (a),
# materialise + the best torch scan, at B=8 T=8192 D=1536 in a second run of the same call.
source benchmarks/device/common.sh
python scripts/bench_scan.py --no-torch --tag v19c --out "$OUT" --budget-s 470 2>&1 | grep -v "^$" | grep -v "^check.*OK"
left=$(( 560 - ($(date +%s) - t0) ))
if [ $left -gt 40 ]; then
    python scripts/bench_scan.py --no-check --tag v19c_torch --out "$OUT" --budget-s $(( left - 30 )) \
        --shapes 8x8192x1536 2>&1 | grep -v "^$"
fi
echo "total $(( $(date +%s) - t0 )) s"
