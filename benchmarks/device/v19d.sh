#!/bin/bash
# v19d: the m = 1 backward at B=1 T=32768 (8 or 6 chains of 2048 tiles): the same two kernels timed three times
# each, alternating, in one process (knob_sweep), at D = 2048 and D = 1536. v19c's grid had the raw-word fwd+bwd at
# 1.090 ms there against 0.700 in v19a's m1_fla.py. Run as one inline command (this file is that command); its
# last step was meant to time the raw backward without its look-back, but nolookback_bwd_v19a.patch applies to
# e4a1b17 only (the knobs removed after it moved its context) and did not apply, so knob_sweep_v19d_repeat.* are
# two more timings of the unchanged kernel (renamed from _nolb after the call).
source benchmarks/device/common.sh
C=("bdlru:1:" "bdlru:1:HLRU_DIAG_RAW_BWD=0")
KS_SHAPE=1x32768x2048 knob_sweep v19d 100 "${C[@]}" "${C[@]}" "${C[@]}"
KS_SHAPE=1x32768x1536 knob_sweep v19d_1536 60 "${C[@]}" "${C[@]}"
KS_SHAPE=1x32768x2048 knob_sweep v19d_repeat 60 "bdlru:1:" "bdlru:1:"
