#!/bin/bash
# v13c: fewer tiles in flight -- HLRU_TILE_PERSIST (P programs per SM take tiles from a ticket counter) with
# HLRU_TILE_REV=1 (v13b: the backward's phase 1 now without shuffles) and eviction hints, over tile lengths and
# UNROLL; each case checked against float64 (bf16, B=2) then timed (B=8 T=8192 D=1536), as v13b.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
R=HLRU_TILE_REV=1; E2=HLRU_TILE_EVICT=2; E1=HLRU_TILE_EVICT=1; P=HLRU_TILE_PERSIST; U=HLRU_TILE_UNROLL
BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$R,$E2" "bdlru:4:$R,$E2,$P=4" "bdlru:4:$R,$E2,$P=2" "bdlru:4:$R,$E2,$P=4,$BT=32,$BB=32"
    "bdlru:4:$R,$E2,$P=2,$BT=32,$BB=16" "bdlru:4:$R,$E2,$P=3,$BT=32,$BB=32,$U=4" "bdlru:4:$R,$E2,$P=2,$U=4")
C1=("bdlru:1:" "bdlru:1:$R,$E1,$BB=16" "bdlru:1:$R,$E1,$P=4" "bdlru:1:$R,$E1,$P=4,$U=4" "bdlru:1:$R,$E1,$P=2,$U=8"
    "bdlru:1:$R,$E1,$P=6,$BB=16")
C8=("bdlru:8:" "bdlru:8:$R,$E2" "bdlru:8:$R,$E2,$P=4" "bdlru:8:$R,$E2,$P=2,$BT=32" "bdlru:8:$R,$E2,$P=6")
C2=("bdlru:2:" "bdlru:2:$R,$E1" "bdlru:2:$R,$E1,$P=8" "hlru:4:" "hlru:4:$R,$E2" "hlru:4:$R,$E2,$P=4"
    "hlru:2:" "hlru:2:$R,$E2" "hlru:2:$R,$E2,$P=4")
t0=$(date +%s)
S=benchmarks/experiments/knob_sweep.py
python $S /tmp/c4.json "${C4[@]}" --check-only > "$OUT/compile4.log" 2>&1 &
python $S /tmp/c1.json "${C1[@]}" --check-only > "$OUT/compile1.log" 2>&1 &
python $S /tmp/c8.json "${C8[@]}" --check-only > "$OUT/compile8.log" 2>&1 &
python $S /tmp/c2.json "${C2[@]}" --check-only > "$OUT/compile2.log" 2>&1 &
wait
echo "compiled in $(( $(date +%s) - t0 )) s"; cat "$OUT"/compile*.log | grep -v "^\s*$" | grep -v OK; rm "$OUT"/compile*.log
PYTHONUNBUFFERED=1 python $S "$OUT/knob_sweep_v13c.json" "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}" --budget-s 400 \
    2>&1 | tee "$OUT/knob_sweep_v13c.log"
echo "total $(( $(date +%s) - t0 )) s"
