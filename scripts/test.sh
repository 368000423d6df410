#!/usr/bin/env bash
# The project's test command (README, .ci/run): install into .venv, lint, run the CPU suite offline, then run the
# model, generation, Hub and packing tests again under transformers 5.17, the oldest supported release, from an overlay folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
if [ ! -d .venv-tf517/transformers-5.17.0.dist-info ]; then
    rm -rf .venv-tf517
    .venv/bin/python -m pip install -q --target .venv-tf517 "transformers==5.17.0"
fi
PYTHONPATH=.venv-tf517 .venv/bin/python -m pytest -q tests/test_model.py tests/test_generation.py tests/test_hub.py \
    tests/test_packing.py tests/test_model_inputs.py tests/test_decode_graph.py
