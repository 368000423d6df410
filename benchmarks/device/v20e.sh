#!/bin/bash
# v20e: every GPU test (tests/test_triton_gpu.py in 7 parallel jobs, look-back maps composed too) on the package
# as of 42937fe (its review commit, one m = 1 logit adjoint for three backwards, had run only in the interpreter).
source benchmarks/device/common.sh
all_gpu_tests v20e
echo "total $(( $(date +%s) - t0 )) s"
