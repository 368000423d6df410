#!/bin/bash
# v15d: the v15 defaults (bdlru_rows.py forward at m = 16, and at m = 8 from B N m = 8192 lanes; U = 8, L2 prefetch
# 32 steps ahead): every GPU test, plus the row kernel at m = 4, 8, 16 at any lane count; then the prefetch
# distance around 32 at B=8 T=8192 D=1536 and the m = 16 unroll at B=1 T=32768 D=2048.
source benchmarks/device/common.sh
job p8 "HLRU_ROWS_MIN_M=4 HLRU_ROWS_MIN_LANES=0" "bdlru_fp32 and (4- or 8- or 16-) or bdlru_bf16 or no_nan or steps"
all_gpu_tests v15d
R=HLRU_ROWS
knob_sweep v15d 100 "bdlru:16:" "bdlru:16:${R}_PF=16" "bdlru:16:${R}_PF=24" "bdlru:8:" "bdlru:8:${R}_PF=16" \
    "bdlru:8:${R}_PF=24" "bdlru:8:${R}_UNROLL=4" "bdlru:4:${R}_MIN_M=4,${R}_UNROLL=8,${R}_PF=16" "bdlru:4:"
S=1x32768x2048
PYTHONUNBUFFERED=1 python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v15d_$S.json" --shape $S --budget-s 60 \
    "bdlru:16:" "bdlru:16:${R}_UNROLL=4" "bdlru:16:${R}=0" 2>&1 | tee "$OUT/knob_sweep_v15d_$S.log"
echo "total $(( $(date +%s) - t0 )) s"
