#!/bin/bash
# v16f: GPU tests of the m = 16 paths under the final v16 defaults (row forward and backward with P = 2 lanes per
# row): fp32 every gate_norm, bf16, T = 65536.
source benchmarks/device/common.sh
job p1 "" "bdlru_fp32 and (16-softmax or 16-sigmoid_l1)"
job p2 "" "bdlru_fp32 and (16-relu_l1 or 16-none)"
job p3 "" "(bdlru_bf16 and 16) or (no_nan and 16) or steps"
collect v16f
