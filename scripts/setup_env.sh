#!/usr/bin/env bash
# Create ./.venv once and install hlru-lm (editable) with training, evaluation, Triton and test extras.
# torch is pinned to the CPU wheel this project's machines carry locally; on a GPU machine install your own torch
# first (any torch already importable in .venv is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
