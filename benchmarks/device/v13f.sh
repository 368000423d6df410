#!/bin/bash
# v13f: v13e's ncu counters say the tile kernels are latency-bound (m = 1 backward: 32% fewer DRAM bytes, 6% faster);
# HLRU_TILE_STAGES = num_stages of the step loops (Triton pipelines the step loads through shared memory with
# cp.async, i.e. prefetches the next iterations), each case checked against float64 then timed, as v13b. The knob
# was removed after this run (slower everywhere): it made the four step loops `tl.range(0, BT, UNROLL, num_stages=NS)`.
set -u
export PYTHONPATH=. HLRU_GIT_COMMIT=${1:-unknown}
NS=HLRU_TILE_STAGES; U=HLRU_TILE_UNROLL
C4=("bdlru:4:" "bdlru:4:$NS=2" "bdlru:4:$NS=3" "bdlru:4:$NS=2,$U=1" "bdlru:4:$NS=2,HLRU_TILE_REV=0,HLRU_TILE_EVICT=0")
C1=("bdlru:1:" "bdlru:1:$NS=2" "bdlru:1:$NS=3" "bdlru:1:$NS=2,HLRU_TILE_BT_BWD=32")
C8=("bdlru:8:" "bdlru:8:$NS=2" "bdlru:2:" "bdlru:2:$NS=2")
C2=("hlru:2:" "hlru:2:$NS=2" "hlru:4:" "hlru:4:$NS=2")
t0=$(date +%s)
P=benchmarks/experiments/knob_sweep.py
python $P /tmp/c4.json "${C4[@]}" --check-only > "$OUT/compile4.log" 2>&1 &
python $P /tmp/c1.json "${C1[@]}" --check-only > "$OUT/compile1.log" 2>&1 &
python $P /tmp/c8.json "${C8[@]}" --check-only > "$OUT/compile8.log" 2>&1 &
python $P /tmp/c2.json "${C2[@]}" --check-only > "$OUT/compile2.log" 2>&1 &
wait
echo "compiled in $(( $(date +%s) - t0 )) s"; cat "$OUT"/compile*.log | grep -v "^\s*$" | grep -v OK; rm "$OUT"/compile*.log
PYTHONUNBUFFERED=1 python $P "$OUT/knob_sweep_v13f.json" "${C4[@]}" "${C1[@]}" "${C8[@]}" "${C2[@]}" --budget-s 200 \
    2>&1 | tee "$OUT/knob_sweep_v13f.log"
echo "total $(( $(date +%s) - t0 )) s"
