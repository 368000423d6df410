#!/bin/bash
# v20c (NOTES lead A): the m = 1 kernels at B=1 T=32768 D=2048 (8 chains of 1024 / 2048 tiles) and B=8 T=8192
# D=1536 with the look-back buffers placed at chosen offsets (placement.py), the allocator's placement in between.
# Prediction (v19d's hypothesis): the backward's time is a function of the offsets, 0.36-0.92 ms at B = 1.
source benchmarks/device/common.sh
python benchmarks/experiments/placement.py "$OUT/placement_v20c.json" 1x32768x2048 8x8192x1536 2>&1 \
    | tee "$OUT/placement_v20c.log"
echo "total $(( $(date +%s) - t0 )) s"
