#!/bin/bash
# v13d: the split tile kernels (bdlru_split.py: a tile's steps split over HLRU_TILE_SPLIT lane groups, so a lane
# re-reads its steps BT / SPLIT steps after reading them) against the v13c defaults and v13c's best knobs; each case
# checked against float64 (bf16, B=2, T/4) then timed (B=8 T=8192 D=1536), as v13b.
# (Rewritten after the run to call knob_sweep in common.sh: the same cases in the same order; the parallel compile
# runs now group the cases by MIXER:M, 4 runs.)
source benchmarks/device/common.sh
R=HLRU_TILE_REV=1; E2=HLRU_TILE_EVICT=2; E1=HLRU_TILE_EVICT=1; SP=HLRU_TILE_SPLIT; W=HLRU_TILE_WARPS
BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$R,$E2" "bdlru:4:$R,$E2,$SP=2,$W=4" "bdlru:4:$R,$E2,$SP=4,$W=4" "bdlru:4:$SP=4,$W=4"
    "bdlru:4:$R,$E2,$SP=4,$W=4,$BT=128,$BB=64" "bdlru:4:$R,$E2,$SP=8,$W=8,$BT=128,$BB=64" "bdlru:4:$R,$E2,$SP=2,$W=2")
C1=("bdlru:1:" "bdlru:1:$R,$E1,$BB=16" "bdlru:1:$R,$E1,$SP=2" "bdlru:1:$R,$E1,$SP=4,$BB=64" "bdlru:1:$R,$E1,$SP=8,$BB=64"
    "bdlru:1:$R,$E1,$SP=4" "bdlru:1:$SP=4,$BB=64")
C8=("bdlru:8:" "bdlru:8:$R,$E2,$SP=2,$W=2" "bdlru:8:$SP=2,$W=2" "bdlru:8:$R,$E2,$SP=4,$W=4,$BT=128,$BB=64")
C2=("bdlru:2:" "bdlru:2:$R,$E1,$SP=4,$W=4,$BB=64" "bdlru:2:$R,$E1,$SP=2,$W=4" "hlru:4:" "hlru:4:$R,$E2,$SP=4,$W=4"
    "hlru:2:" "hlru:2:$R,$E2,$SP=4,$W=4")
knob_sweep v13d 400 "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}"
