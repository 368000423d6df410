#!/bin/bash
# v13f: v13e's ncu counters say the tile kernels are latency-bound (m = 1 backward: 32% fewer DRAM bytes, 6% faster);
# HLRU_TILE_STAGES = num_stages of the step loops (Triton pipelines the step loads through shared memory with
# cp.async, i.e. prefetches the next iterations), each case checked against float64 then timed, as v13b. The knob
# was removed after this run (slower everywhere): it made the four step loops `tl.range(0, BT, UNROLL, num_stages=NS)`.
# (Rewritten after the run to call knob_sweep in common.sh: the same cases in the same order; the parallel compile
# runs now group the cases by MIXER:M, 4 runs.)
source benchmarks/device/common.sh
NS=HLRU_TILE_STAGES; U=HLRU_TILE_UNROLL
C4=("bdlru:4:" "bdlru:4:$NS=2" "bdlru:4:$NS=3" "bdlru:4:$NS=2,$U=1" "bdlru:4:$NS=2,HLRU_TILE_REV=0,HLRU_TILE_EVICT=0")
C1=("bdlru:1:" "bdlru:1:$NS=2" "bdlru:1:$NS=3" "bdlru:1:$NS=2,HLRU_TILE_BT_BWD=32")
C8=("bdlru:8:" "bdlru:8:$NS=2" "bdlru:2:" "bdlru:2:$NS=2")
C2=("hlru:2:" "hlru:2:$NS=2" "hlru:4:" "hlru:4:$NS=2")
knob_sweep v13f 200 "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}"
