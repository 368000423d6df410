#!/bin/bash
# v13c: fewer tiles in flight -- HLRU_TILE_PERSIST (P programs per SM take tiles from a ticket counter) with
# HLRU_TILE_REV=1 (v13b: the backward's phase 1 now without shuffles) and eviction hints, over tile lengths and
# UNROLL; each case checked against float64 (bf16, B=2) then timed (B=8 T=8192 D=1536), as v13b.
# (Rewritten after the run to call knob_sweep in common.sh: the same cases in the same order; the parallel compile
# runs now group the cases by MIXER:M, 4 runs.)
source benchmarks/device/common.sh
R=HLRU_TILE_REV=1; E2=HLRU_TILE_EVICT=2; E1=HLRU_TILE_EVICT=1; P=HLRU_TILE_PERSIST; U=HLRU_TILE_UNROLL
BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$R,$E2" "bdlru:4:$R,$E2,$P=4" "bdlru:4:$R,$E2,$P=2" "bdlru:4:$R,$E2,$P=4,$BT=32,$BB=32"
    "bdlru:4:$R,$E2,$P=2,$BT=32,$BB=16" "bdlru:4:$R,$E2,$P=3,$BT=32,$BB=32,$U=4" "bdlru:4:$R,$E2,$P=2,$U=4")
C1=("bdlru:1:" "bdlru:1:$R,$E1,$BB=16" "bdlru:1:$R,$E1,$P=4" "bdlru:1:$R,$E1,$P=4,$U=4" "bdlru:1:$R,$E1,$P=2,$U=8"
    "bdlru:1:$R,$E1,$P=6,$BB=16")
C8=("bdlru:8:" "bdlru:8:$R,$E2" "bdlru:8:$R,$E2,$P=4" "bdlru:8:$R,$E2,$P=2,$BT=32" "bdlru:8:$R,$E2,$P=6")
C2=("bdlru:2:" "bdlru:2:$R,$E1" "bdlru:2:$R,$E1,$P=8" "hlru:4:" "hlru:4:$R,$E2" "hlru:4:$R,$E2,$P=4"
    "hlru:2:" "hlru:2:$R,$E2" "hlru:2:$R,$E2,$P=4")
knob_sweep v13c 400 "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}"
