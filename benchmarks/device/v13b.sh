#!/bin/bash
# v13b: phase-2 re-reads (v13a: the tile kernels move 1.4-1.9x their byte floor from DRAM) -- launch-knob sweep of
# HLRU_TILE_REV (phase 1 in the opposite time order, so the last steps it reads are re-read first), HLRU_TILE_EVICT
# (1: phase-2 loads and the outputs evict_first; 2: and phase-1 loads evict_last) and tile lengths, each case checked
# against float64 (bf16, B=2) then timed (B=8 T=8192 D=1536). Kernels are compiled first by 4 parallel check-only runs.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
R=HLRU_TILE_REV=1; E1=HLRU_TILE_EVICT=1; E2=HLRU_TILE_EVICT=2
C4=("bdlru:4:" "bdlru:4:$R" "bdlru:4:$E1" "bdlru:4:$R,$E1" "bdlru:4:$R,$E2"
    "bdlru:4:$R,$E1,HLRU_TILE_BT=32,HLRU_TILE_BT_BWD=16" "bdlru:4:$R,$E1,HLRU_TILE_BT=16,HLRU_TILE_BT_BWD=16")
C1=("bdlru:1:" "bdlru:1:$R" "bdlru:1:$R,$E1" "bdlru:1:$R,$E2" "bdlru:1:$R,$E1,HLRU_TILE_BT_BWD=16"
    "bdlru:1:$R,$E1,HLRU_TILE_BT_BWD=64")
C8=("bdlru:8:" "bdlru:8:$R,$E1" "bdlru:8:$R,$E1,HLRU_TILE_BT=32")
C2=("bdlru:2:" "bdlru:2:$R,$E1" "hlru:4:" "hlru:4:$R,$E1" "hlru:8:" "hlru:8:$R,$E1")
t0=$(date +%s)
S=benchmarks/experiments/knob_sweep.py
python $S /tmp/c4.json "${C4[@]}" --check-only > "$OUT/compile4.log" 2>&1 &
python $S /tmp/c1.json "${C1[@]}" --check-only > "$OUT/compile1.log" 2>&1 &
python $S /tmp/c8.json "${C8[@]}" --check-only > "$OUT/compile8.log" 2>&1 &
python $S /tmp/c2.json "${C2[@]}" --check-only > "$OUT/compile2.log" 2>&1 &
wait
echo "compiled in $(( $(date +%s) - t0 )) s"; cat "$OUT"/compile*.log | grep -v "^\s*$" | grep -v OK; rm "$OUT"/compile*.log
PYTHONUNBUFFERED=1 python $S "$OUT/knob_sweep_v13b.json" "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}" --budget-s 420 \
    2>&1 | tee "$OUT/knob_sweep_v13b.log"
echo "total $(( $(date +%s) - t0 )) s"
