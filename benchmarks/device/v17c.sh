#!/bin/bash
# v17c: around v17b's best m = 2 forward (words for logits, v, h and a 128-register cap: 0.389 ms against 0.424): caps
# 112-144 (offline: 112 / 120 / 136 / 144 registers spill 192 / 128 / 40 / 0 B; 9 / 8 / 7 / 7 programs of 2 warps per
# SM), 1 or 4 warps per program. And a register cap on the m = 4 tile forward (96 registers now, 10 programs of 2
# warps per SM; v13 read it as short of warps to hide its loads): 80 / 72 / 64 (offline 80: 72 B of spills, 64: 144 B).
# Prediction: m = 2 best near 128-136 (~0.38 ms); m = 4 -5% at 80 if warps are what it lacks.
source benchmarks/device/common.sh
W=HLRU_CHAIN_WORDS=2
knob_sweep v17c 240 "bdlru:2:" "bdlru:2:$W,HLRU_CHAIN_MAXNREG=128" "bdlru:2:$W,HLRU_CHAIN_MAXNREG=112" \
    "bdlru:2:$W,HLRU_CHAIN_MAXNREG=120" "bdlru:2:$W,HLRU_CHAIN_MAXNREG=136" "bdlru:2:$W,HLRU_CHAIN_MAXNREG=144" \
    "bdlru:2:$W,HLRU_CHAIN_MAXNREG=128,HLRU_CHAIN_WARPS=1" "bdlru:2:$W,HLRU_CHAIN_MAXNREG=128,HLRU_CHAIN_WARPS=4" \
    "bdlru:4:" "bdlru:4:HLRU_TILE_MAXNREG=80" "bdlru:4:HLRU_TILE_MAXNREG=72" "bdlru:4:HLRU_TILE_MAXNREG=64" \
    "bdlru:2:$W,HLRU_CHAIN_MAXNREG=128" "bdlru:2:"
