#!/bin/bash
# v13a: stall profile (Nsight Compute, --set full, clocks left alone) of the kernels that miss issue 3's targets at
# B=8 T=8192 D=1536 bf16 softmax: the m = 1 forward (chain) and backward (tile), the m = 4 forward and backward, the
# m = 8 forward. Per kernel: the details page (text) and the per-SASS-instruction source page (CSV); reports in a tar.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
export PATH=$PATH:$(ls -d /opt/nvidia/nsight-compute/*/ 2>/dev/null | head -n 1)
ncu --version | tail -n 1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
mkdir -p "$OUT/src" "$OUT/rep"
prof() {  # label mixer m kernel-regex
    ncu --clock-control none -k "regex:$4" --launch-skip 2 --launch-count 1 --set full --import-source no \
        -o "$OUT/rep/$1" -f python benchmarks/experiments/ncu_target.py "$2" "$3" > "$OUT/rep/$1.log" 2>&1 \
        || { echo "ncu $1 failed"; tail -n 20 "$OUT/rep/$1.log"; return; }
    { echo "=================== $1: $2 m=$3 kernel $4"; ncu --import "$OUT/rep/$1.ncu-rep" --page details; } \
        >> "$OUT/ncu_details.txt" 2>&1
    ncu --import "$OUT/rep/$1.ncu-rep" --page source --print-source sass --csv > "$OUT/src/$1.csv" 2>&1
    echo "$1 done at $(( $(date +%s) - t0 )) s"
}
t0=$(date +%s)
prof m1fwd bdlru 1 chain_fwd
prof m1bwd bdlru 1 tile_bwd
prof m4fwd bdlru 4 tile_fwd
prof m4bwd bdlru 4 tile_bwd
prof m8fwd bdlru 8 tile_fwd
tar -C "$OUT" -czf "$OUT/ncu_src.tgz" src && rm -r "$OUT/src"
tar -C "$OUT" -czf "$OUT/ncu_rep.tgz" rep && rm -r "$OUT/rep"
ls -la "$OUT"
grep -E "^=====|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|L1/TEX Hit|L2 Hit" "$OUT/ncu_details.txt"
