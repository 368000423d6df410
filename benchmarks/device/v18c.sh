#!/bin/bash
# v18c: look-back polls with ld.acquire in every thread (be9fd46) against the atomic poll of 38970aa (.exp/base, same
# call), then this tree with benchmarks/experiments/nowait_v18c.patch (every tile publishes its map and end state but
# never waits: wrong results, checks BAD; what is left of the look-back's cost after that is the waiting). v18b: no
# look-back at all takes m = 1 from 0.288 to 0.199 ms, m = 2 0.384 -> 0.264, m = 4 0.786 -> 0.655. Prediction: the
# ld.acquire poll saves a barrier and a shared-memory round per hop, -3 to -8% at m = 1, 2.
source benchmarks/device/common.sh
CASES=("bdlru:1:" "bdlru:1:HLRU_DIAG_BT=8" "bdlru:2:" "bdlru:2:HLRU_PAIR=1" "bdlru:4:" "hlru:2:" "hlru:4:")
knob_sweep v18c 150 "${CASES[@]}"
(export PYTHONPATH=.exp/base HLRU_GIT_COMMIT=38970aa; knob_sweep v18c_base 150 "${CASES[@]}")
git apply benchmarks/experiments/nowait_v18c.patch && echo "patched: publish, never wait"
knob_sweep v18c_nowait 150 "${CASES[@]}"
git checkout -q hlru_lm && echo "unpatched: GPU tests of the look-back"
job p1 "" "bdlru_fp32 and (1- or 2- or 4-)"
job p4 "" "bdlru_bf16 or steps or no_nan"
job p5 "" "hlru_fp32 and (2- or 4-)"
job p6 HLRU_DEBUG_AGG_ONLY=1 "bdlru_fp32 and (1-softmax or 2-softmax or 4-softmax)"
job p7 HLRU_DEBUG_AGG_ONLY=1 "hlru_fp32 and (2-softmax or 4-softmax)"
collect v18c
echo "total $(( $(date +%s) - t0 )) s"
