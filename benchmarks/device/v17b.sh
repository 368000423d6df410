#!/bin/bash
# v17b: the m = 2 chained forward (0.426 ms, 57% of copy; 70% needs 0.347) with its logits read as three 32-bit words
# per block (HLRU_CHAIN_WORDS=1) and v, h as one word (=2), and a register cap (HLRU_CHAIN_MAXNREG). Offline (triton
# 3.6, BT 16, 2 warps): 131 / 83 / 67 global loads per tile at WORDS 0 / 1 / 2, 196-199 registers (5 programs of 2
# warps per SM); cap 128 spills 72 B, 96 320 B; BT 8: 110 registers, no spills. Prediction: words -5%, the cap (or
# BT 8) -5% (the m = 1 forward's cap gained 6%, v14d), together ~0.37 ms. Then H-LRU of order 8 / 16 at B=1 T=32768
# D=2048 (2048 lanes, below use_lags' 8192): the tile / sequential kernels against the lane-per-lag ones.
source benchmarks/device/common.sh
W=HLRU_CHAIN_WORDS
knob_sweep v17b 200 "bdlru:2:" "bdlru:2:$W=1" "bdlru:2:$W=2" "bdlru:2:$W=2,HLRU_CHAIN_MAXNREG=128" \
    "bdlru:2:$W=2,HLRU_CHAIN_MAXNREG=160" "bdlru:2:$W=2,HLRU_CHAIN_BT=8" "bdlru:2:$W=2,HLRU_CHAIN_BT=8,HLRU_CHAIN_WARPS=4" \
    "bdlru:2:$W=2,HLRU_CHAIN_WARPS=4" "bdlru:2:HLRU_CHAIN_MAXNREG=128" "bdlru:2:"
python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v17b_small.json" --shape 1x32768x2048 --budget-s 120 \
    "hlru:8:" "hlru:8:HLRU_LAGS=1" "hlru:16:" "hlru:16:HLRU_LAGS=0" 2>&1 | tee "$OUT/knob_sweep_v17b_small.log"
echo "total $(( $(date +%s) - t0 )) s"
