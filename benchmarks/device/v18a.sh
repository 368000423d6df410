#!/bin/bash
# v18a: the m = 2 forward with two blocks per lane (bdlru_pair.py; lead 0 of v17): a pair's 12 logits as three 8-byte
# loads, v and h one 8-byte load / store, [BP, BT, 2] tensors. Offline (triton 3.6): BT 8, 2 warps: 185 registers,
# no spills, 32 LDG.64 per tile (the chain kernel at BT 16: 75 32-bit loads, 128 registers + 80 B spills); cap 128:
# 128 B spills. Prediction: 0.35-0.36 ms (the chain kernel 0.384, 63% of copy; 70% needs 0.348), best with the cap
# (8 programs per SM instead of 5). Then the same at B=1 T=32768 D=2048 (1024 pairs: a thin look-back window).
source benchmarks/device/common.sh
P=HLRU_PAIR
knob_sweep v18a 240 "bdlru:2:$P=0" "bdlru:2:" "bdlru:2:${P}_MAXNREG=128" "bdlru:2:${P}_MAXNREG=168" \
    "bdlru:2:${P}_WARPS=4" "bdlru:2:${P}_WARPS=4,${P}_MAXNREG=128" "bdlru:2:${P}_WARPS=1" \
    "bdlru:2:${P}_WARPS=1,${P}_MAXNREG=128" "bdlru:2:${P}_BT=4" "bdlru:2:${P}_BT=4,${P}_WARPS=4" \
    "bdlru:2:${P}_BT=16,${P}_WARPS=1" "bdlru:2:$P=0"
python benchmarks/experiments/knob_sweep.py "$OUT/knob_sweep_v18a_small.json" --shape 1x32768x2048 --budget-s 90 \
    "bdlru:2:$P=0" "bdlru:2:" "bdlru:2:${P}_MAXNREG=128" "bdlru:2:${P}_BT=4" 2>&1 | tee "$OUT/knob_sweep_v18a_small.log"
echo "total $(( $(date +%s) - t0 )) s"
