#!/bin/bash
# v18d: what publishing costs. v18c: publishing maps and end states without ever waiting (nowait_v18c.patch) left
# m = 1 at 0.255 ms (full look-back 0.287, none 0.199), m = 2 0.333 (0.382 / 0.264), m = 4 0.719 (0.786 / 0.655).
# nofence_v18d.patch publishes the same bytes with plain flag stores (no barrier, no release fence). Prediction: if
# the fences are what costs, m = 1 lands near 0.21 ms; if the stores themselves, near 0.255.
source benchmarks/device/common.sh
CASES=("bdlru:1:" "bdlru:2:" "bdlru:4:")
knob_sweep v18d 60 "${CASES[@]}"
git apply benchmarks/experiments/nowait_v18c.patch && echo "patched: publish, never wait"
knob_sweep v18d_nowait 60 "${CASES[@]}"
git checkout -q hlru_lm && git apply benchmarks/experiments/nofence_v18d.patch && echo "patched: publish without fences"
knob_sweep v18d_nofence 60 "${CASES[@]}"
echo "total $(( $(date +%s) - t0 )) s"
