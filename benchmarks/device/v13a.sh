#!/bin/bash
# v13a: stall profile (Nsight Compute, --set full, clocks left alone) of the kernels that miss issue 3's targets at
# B=8 T=8192 D=1536 bf16 softmax: the m = 1 forward (chain) and backward (tile), the m = 4 forward and backward, the
# m = 8 forward. Per kernel: the details page (text) and the per-SASS-instruction source page (CSV); reports in a tar.
# (Rewritten after the run to call ncu_prof in common.sh, which holds the same ncu commands.)
source benchmarks/device/common.sh
export PATH=$PATH:$(ls -d /opt/nvidia/nsight-compute/*/ 2>/dev/null | head -n 1)
ncu --version | tail -n 1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
ncu_prof m1fwd bdlru 1 chain_fwd
ncu_prof m1bwd bdlru 1 tile_bwd
ncu_prof m4fwd bdlru 4 tile_fwd
ncu_prof m4bwd bdlru 4 tile_bwd
ncu_prof m8fwd bdlru 8 tile_fwd
tar -C "$OUT" -czf "$OUT/ncu_src.tgz" src && rm -r "$OUT/src"
tar -C "$OUT" -czf "$OUT/ncu_rep.tgz" rep && rm -r "$OUT/rep"
ls -la "$OUT"
grep -E "^=====|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|L1/TEX Hit|L2 Hit" "$OUT/ncu_details.txt"
