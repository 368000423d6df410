#!/bin/bash
# v13d: the split tile kernels (bdlru_split.py: a tile's steps split over HLRU_TILE_SPLIT lane groups, so a lane
# re-reads its steps BT / SPLIT steps after reading them) against the v13c defaults and v13c's best knobs; each case
# checked against float64 (bf16, B=2, T/4) then timed (B=8 T=8192 D=1536), as v13b.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
R=HLRU_TILE_REV=1; E2=HLRU_TILE_EVICT=2; E1=HLRU_TILE_EVICT=1; S=HLRU_TILE_SPLIT; W=HLRU_TILE_WARPS
BT=HLRU_TILE_BT; BB=HLRU_TILE_BT_BWD
C4=("bdlru:4:" "bdlru:4:$R,$E2" "bdlru:4:$R,$E2,$S=2,$W=4" "bdlru:4:$R,$E2,$S=4,$W=4" "bdlru:4:$S=4,$W=4"
    "bdlru:4:$R,$E2,$S=4,$W=4,$BT=128,$BB=64" "bdlru:4:$R,$E2,$S=8,$W=8,$BT=128,$BB=64" "bdlru:4:$R,$E2,$S=2,$W=2")
C1=("bdlru:1:" "bdlru:1:$R,$E1,$BB=16" "bdlru:1:$R,$E1,$S=2" "bdlru:1:$R,$E1,$S=4,$BB=64" "bdlru:1:$R,$E1,$S=8,$BB=64"
    "bdlru:1:$R,$E1,$S=4" "bdlru:1:$S=4,$BB=64")
C8=("bdlru:8:" "bdlru:8:$R,$E2,$S=2,$W=2" "bdlru:8:$S=2,$W=2" "bdlru:8:$R,$E2,$S=4,$W=4,$BT=128,$BB=64")
C2=("bdlru:2:" "bdlru:2:$R,$E1,$S=4,$W=4,$BB=64" "bdlru:2:$R,$E1,$S=2,$W=4" "hlru:4:" "hlru:4:$R,$E2,$S=4,$W=4"
    "hlru:2:" "hlru:2:$R,$E2,$S=4,$W=4")
t0=$(date +%s)
P=benchmarks/experiments/knob_sweep.py
python $P /tmp/c4.json "${C4[@]}" --check-only > "$OUT/compile4.log" 2>&1 &
python $P /tmp/c1.json "${C1[@]}" --check-only > "$OUT/compile1.log" 2>&1 &
python $P /tmp/c8.json "${C8[@]}" --check-only > "$OUT/compile8.log" 2>&1 &
python $P /tmp/c2.json "${C2[@]}" --check-only > "$OUT/compile2.log" 2>&1 &
wait
echo "compiled in $(( $(date +%s) - t0 )) s"; cat "$OUT"/compile*.log | grep -v "^\s*$" | grep -v OK; rm "$OUT"/compile*.log
PYTHONUNBUFFERED=1 python $P "$OUT/knob_sweep_v13d.json" "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}" --budget-s 400 \
    2>&1 | tee "$OUT/knob_sweep_v13d.log"
echo "total $(( $(date +%s) - t0 )) s"
