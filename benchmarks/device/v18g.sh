#!/bin/bash
# v18g: the final tree's m = 1 forward (raw words, BT 32, cap 128) against the prefix forward it replaces as the
# default (HLRU_DIAG_RAW=0, the kernel of 38970aa) and fla's chunk_hgrn, in one process, at three shapes, with the
# float64 checks. v18e measured 0.273 against 0.288 ms at B=8 T=8192 D=1536 and 0.213 against 0.256 at B=1
# T=32768 D=2048.
source benchmarks/device/common.sh
python benchmarks/experiments/m1_fla.py "$OUT/m1_fla_v18g.json" 2>&1 | tee "$OUT/m1_fla_v18g.log"
echo "total $(( $(date +%s) - t0 )) s"
