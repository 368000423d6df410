#!/bin/bash
# v18f: the m = 2 forward with raw words across the look-back (bdlru_chain._bdlru_chain_raw_fwd_kernel,
# HLRU_CHAIN_RAW=1; v18e's m = 1 idea: BT 32 at cap 128 took m = 1 from 0.288 to 0.273 ms, and at B=1 T=32768 D=2048
# from 0.256 to 0.213). Offline (2 warps): BT 16 128 registers, no spills (the chained kernel: 128 + 80 B at its cap),
# 2920 SASS instructions (2240); BT 32 220 (cap 168: 48 B, cap 128: 288 B). Prediction: BT 32 at cap 168 ~0.35 ms
# (today 0.382; 70% needs 0.345), unless the second normalisation (issue) eats it. Then the bf16 GPU tests with the
# raw kernels at BT 32.
source benchmarks/device/common.sh
R=HLRU_CHAIN_RAW=1
knob_sweep v18f 150 "bdlru:2:" "bdlru:2:$R" "bdlru:2:$R,HLRU_CHAIN_BT=32,HLRU_CHAIN_MAXNREG=168" \
    "bdlru:2:$R,HLRU_CHAIN_BT=32,HLRU_CHAIN_MAXNREG=0" "bdlru:2:$R,HLRU_CHAIN_BT=32" \
    "bdlru:2:$R,HLRU_CHAIN_BT=32,HLRU_CHAIN_MAXNREG=168,HLRU_CHAIN_WARPS=1"
python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v18f_small.json" --shape 1x32768x2048 --budget-s 60 \
    "bdlru:2:" "bdlru:2:$R,HLRU_CHAIN_BT=32,HLRU_CHAIN_MAXNREG=168" 2>&1 | tee "$OUT/knob_sweep_v18f_small.log"
RAW="HLRU_DIAG_RAW=1 HLRU_DIAG_BT=32 HLRU_DIAG_MAXNREG=128 HLRU_CHAIN_RAW=1 HLRU_CHAIN_BT=32 HLRU_CHAIN_MAXNREG=168"
job p1 "$RAW" "bdlru_bf16 or steps or no_nan"
job p2 "$RAW HLRU_DEBUG_AGG_ONLY=1" "bdlru_bf16"
collect v18f
echo "total $(( $(date +%s) - t0 )) s"
