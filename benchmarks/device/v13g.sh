#!/bin/bash
# v13g: with the v13 defaults (latency-bound, v13e), more steps per loop iteration (HLRU_TILE_UNROLL: loads of
# several steps in flight at once), other warps per program and tile lengths; each case checked against float64 then
# timed, as v13b.
# (Rewritten after the run to call knob_sweep in common.sh: the same cases in the same order; the parallel compile
# runs now group the cases by MIXER:M, 4 runs.)
source benchmarks/device/common.sh
U=HLRU_TILE_UNROLL; W=HLRU_TILE_WARPS; BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$U=4" "bdlru:4:$U=1" "bdlru:4:$BT=128,$BB=64" "bdlru:4:$W=4" "bdlru:4:$W=1")
C1=("bdlru:1:" "bdlru:1:$U=4" "bdlru:1:$U=8" "bdlru:1:$U=4,$BB=32" "bdlru:1:$W=4,$U=4")
C8=("bdlru:2:" "bdlru:2:$U=4" "bdlru:2:HLRU_TILE_REV=1,HLRU_TILE_EVICT=1,$BB=16" "bdlru:2:$W=4")
C2=("hlru:2:" "hlru:2:$U=4" "hlru:4:" "hlru:4:$U=4")
knob_sweep v13g 200 "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}"
