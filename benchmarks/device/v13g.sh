#!/bin/bash
# v13g: with the v13 defaults (latency-bound, v13e), more steps per loop iteration (HLRU_TILE_UNROLL: loads of
# several steps in flight at once), other warps per program and tile lengths; each case checked against float64 then
# timed, as v13b.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
U=HLRU_TILE_UNROLL; W=HLRU_TILE_WARPS; BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$U=4" "bdlru:4:$U=1" "bdlru:4:$BT=128,$BB=64" "bdlru:4:$W=4" "bdlru:4:$W=1")
C1=("bdlru:1:" "bdlru:1:$U=4" "bdlru:1:$U=8" "bdlru:1:$U=4,$BB=32" "bdlru:1:$W=4,$U=4")
C8=("bdlru:2:" "bdlru:2:$U=4" "bdlru:2:HLRU_TILE_REV=1,HLRU_TILE_EVICT=1,$BB=16" "bdlru:2:$W=4")
C2=("hlru:2:" "hlru:2:$U=4" "hlru:4:" "hlru:4:$U=4")
t0=$(date +%s)
P=benchmarks/experiments/knob_sweep.py
python $P /tmp/c4.json "${C4[@]}" --check-only > "$OUT/compile4.log" 2>&1 &
python $P /tmp/c1.json "${C1[@]}" --check-only > "$OUT/compile1.log" 2>&1 &
python $P /tmp/c8.json "${C8[@]}" --check-only > "$OUT/compile8.log" 2>&1 &
python $P /tmp/c2.json "${C2[@]}" --check-only > "$OUT/compile2.log" 2>&1 &
wait
echo "compiled in $(( $(date +%s) - t0 )) s"; cat "$OUT"/compile*.log | grep -v "^\s*$" | grep -v OK; rm "$OUT"/compile*.log
PYTHONUNBUFFERED=1 python $P "$OUT/knob_sweep_v13g.json" "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}" --budget-s 200 \
    2>&1 | tee "$OUT/knob_sweep_v13g.log"
echo "total $(( $(date +%s) - t0 )) s"
