#!/bin/bash
# v13b: phase-2 re-reads (v13a: the tile kernels move 1.4-1.9x their byte floor from DRAM) -- launch-knob sweep of
# HLRU_TILE_REV (phase 1 in the opposite time order, so the last steps it reads are re-read first), HLRU_TILE_EVICT
# (1: phase-2 loads and the outputs evict_first; 2: and phase-1 loads evict_last) and tile lengths, each case checked
# against float64 (bf16, B=2) then timed (B=8 T=8192 D=1536). Kernels are compiled first by 4 parallel check-only runs.
# (Rewritten after the run to call knob_sweep in common.sh: the same cases in the same order; the parallel compile
# runs now group the cases by MIXER:M, 4 runs.)
source benchmarks/device/common.sh
R=HLRU_TILE_REV=1; E1=HLRU_TILE_EVICT=1; E2=HLRU_TILE_EVICT=2
C4=("bdlru:4:" "bdlru:4:$R" "bdlru:4:$E1" "bdlru:4:$R,$E1" "bdlru:4:$R,$E2"
    "bdlru:4:$R,$E1,HLRU_TILE_BT=32,HLRU_TILE_BT_BWD=16" "bdlru:4:$R,$E1,HLRU_TILE_BT=16,HLRU_TILE_BT_BWD=16")
C1=("bdlru:1:" "bdlru:1:$R" "bdlru:1:$R,$E1" "bdlru:1:$R,$E2" "bdlru:1:$R,$E1,HLRU_TILE_BT_BWD=16"
    "bdlru:1:$R,$E1,HLRU_TILE_BT_BWD=64")
C8=("bdlru:8:" "bdlru:8:$R,$E1" "bdlru:8:$R,$E1,HLRU_TILE_BT=32")
C2=("bdlru:2:" "bdlru:2:$R,$E1" "hlru:4:" "hlru:4:$R,$E1" "hlru:8:" "hlru:8:$R,$E1")
knob_sweep v13b 420 "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}"
