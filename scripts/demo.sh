#!/usr/bin/env bash
# The main job, offline on CPU in a few minutes: set up .venv, train the tiny BD-LRU on the embedded corpus
# (Python's bundled docs + standard-library docstrings, byte-level BPE trained on it), stream a generation from it,
# and score it with lm-eval on the offline tasks (held-out perplexity, continuation multiple choice).
#   bash scripts/demo.sh                # output in runs/demo
#   OUT=runs/x STEPS=100 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
STEPS=${STEPS:-}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)

echo "== [1/4] environment (.venv) =="
bash scripts/setup_env.sh
PY=.venv/bin/python

echo "== [2/4] train configs/tiny.yaml -> $OUT =="
# --resume: a re-run continues (or, when finished, just re-saves) the run in $OUT instead of refusing it.
$PY -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    scripts/train.py --config configs/tiny.yaml --output_dir "$OUT" --resume ${STEPS:+--max_steps "$STEPS"}

echo "== [3/4] stream-generate =="
$PY scripts/generate.py --model "$OUT" --max_new_tokens 60 --seed 0 \
    --prompt "The for statement is used to" --prompt "def"

echo "== [4/4] lm-eval on the offline tasks =="
$PY scripts/evaluate.py --model "$OUT" --tasks hlru_offline --batch_size 16 --output_path "$OUT/lm_eval"

echo "== done in $(( $(date +%s) - start )) s: model, tokenizer, checkpoints, logs and lm-eval results in $OUT =="
$PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"final validation loss {r['val_loss']:.4f}, perplexity {r['val_ppl']:.2f} after {r['step']} steps\")" "$OUT/train_results.json"
