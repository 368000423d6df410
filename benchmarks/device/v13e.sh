#!/bin/bash
# v13e: the v13 defaults (_CACHE_ORDER: phase order and eviction hints per m and direction; m = 1 backward BT 16):
# every GPU float64 test; bench_scan (correctness pass, then the grid at B=8 T=8192 D=1536); the previous commit's
# package (.exp/base, fd4a564) in the same call; then DRAM bytes and L2 hit rate (ncu) of the m = 4 forward and the
# m = 1 backward for both packages and for the split variant (.exp/split, benchmarks/experiments/split_v13d.patch).
source benchmarks/device/common.sh
all_gpu_tests v13e
bench_with_base v13e fd4a564 300 150
export PATH=$PATH:$(ls -d /opt/nvidia/nsight-compute/*/ 2>/dev/null | head -n 1)
MET=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct
mem() {  # label pythonpath env m kernel-regex
    echo "== $1"
    env PYTHONPATH=$2 $3 ncu --clock-control none -k "regex:$5" --launch-skip 2 --launch-count 1 --metrics $MET \
        python benchmarks/experiments/ncu_target.py bdlru $4 2>&1 | grep -E "duration|bytes|hit_rate"
}
{ mem m4fwd_v13e . "" 4 tile_fwd; mem m4fwd_base .exp/base "" 4 tile_fwd
  mem m4fwd_split2 .exp/split "HLRU_TILE_SPLIT=2 HLRU_TILE_WARPS=4 HLRU_TILE_REV=1 HLRU_TILE_EVICT=2" 4 split_fwd
  mem m1bwd_v13e . "" 1 tile_bwd; mem m1bwd_base .exp/base "" 1 tile_bwd
  mem m1bwd_split2 .exp/split "HLRU_TILE_SPLIT=2 HLRU_TILE_REV=1 HLRU_TILE_EVICT=1" 1 split_bwd; } 2>&1 \
  | tee "$OUT/ncu_mem_v13e.txt"
echo "total $(( $(date +%s) - t0 )) s"
