#!/bin/bash
# v20f: peek before publishing (HLRU_PEEK=1, bdlru_chain._peek): a tile first reads its predecessor's flag once; if
# that tile's end state is out, it takes it and publishes no map (one barrier + release and the map's bytes fewer:
# 8 B per channel at m = 1, 24 B per block at m = 2, 80 B at m = 4). The look-backs of the raw m = 1 forward and
# backward, the m = 2 chained forward and the tile kernels (m = 2 backward, m = 4, H-LRU 2-8) take it.
# Prediction (v18d: fences and barriers 0.024 / 0.040 ms, published bytes 0.032 / 0.029 at m = 1 / 2; v14j: walks
# about one tile long, so the predecessor is often done): m = 2 forward 0.380 -> 0.34-0.36 ms, m = 1 forward
# 0.272 -> 0.25-0.26, m = 4 forward -2-5%; if the predecessor is rarely done at the peek, slower (the map goes out
# one poll later). Each case twice, alternating, in one process; then every GPU test with HLRU_PEEK=1.
source benchmarks/device/common.sh
P=HLRU_PEEK=1
C=("bdlru:1:" "bdlru:1:$P" "bdlru:2:" "bdlru:2:$P" "bdlru:4:" "bdlru:4:$P" "hlru:4:" "hlru:4:$P")
i=0; for c in "${C[@]}"; do
    python benchmarks/experiments/knob_sweep.py "/tmp/pc$((i++)).json" "$c" --check-only > /dev/null 2>&1 &
done; wait
knob_sweep v20f 150 "${C[@]}" "${C[@]:0:6}"
KS_SHAPE=1x32768x2048 knob_sweep v20f_1x32768 60 "${C[@]:0:6}"
job p1 $P "bdlru_fp32 and (1- or 2-)"
job p2 $P "bdlru_fp32 and (4- or 16-)"
job p3 $P "bdlru_fp32 and 8-"
job p4 $P "bdlru_bf16 or steps or no_nan"
job p5 $P "hlru_fp32"
collect v20f
echo "total $(( $(date +%s) - t0 )) s"
