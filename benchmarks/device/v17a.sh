#!/bin/bash
# v17a (written in v16, not run: no device time was left): the lane-per-lag H-LRU kernels (hlru_lags.py, opt-in
# HLRU_LAGS=1) at orders 2-16. Offline (triton 3.6, loop instructions per step and lane): forward 90 / 77 at order
# 16 / 4 (U = 8; 153 / 155 registers), backward 141 (order 16, U = 4; 202). B N m = 12288 lanes at the main shape
# (N = 1536 / m), the same warp count as the BD-LRU row kernels. Prediction (NOTES v16, "H-LRU"): order 16 ~0.7 ms
# forward against the sequential kernel's 6.39. GPU tests with the kernels at every order, then the sweep against
# the defaults (tile kernels at 2-8, sequential at 16) at the main shape.
source benchmarks/device/common.sh
job p1 "HLRU_LAGS=1" "hlru_fp32 and (softmax or none)"
job p2 "HLRU_LAGS=1" "hlru_fp32 and (sigmoid_l1 or relu_l1)"
collect v17a
L=HLRU_LAGS=1
knob_sweep v17a 200 "hlru:16:" "hlru:16:$L" "hlru:16:$L,HLRU_LAGS_UNROLL=4" "hlru:8:" "hlru:8:$L" "hlru:4:" \
    "hlru:4:$L" "hlru:2:" "hlru:2:$L"
