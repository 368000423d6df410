"""lm-eval on the offline tasks (simple_evaluate and the scripts/evaluate.py CLI) and streaming generation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random tiny model + a BPE trained on a few embedded-corpus training documents, saved like train.py does."""
    import torch

    import hlru_lm
    from hlru_lm import data as D

    texts = [d["text"] for d in D.embedded_corpus("train", max_documents=12)]
    tok = D.train_bpe_tokenizer([texts], vocab_size=320)
    torch.manual_seed(0)
    cfg = hlru_lm.HLRUConfig(
        vocab_size=320,
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        block_size=2,
        num_blocks=16,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    out = tmp_path_factory.mktemp("evalmodel")
    hlru_lm.HLRUForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_offline_task_data_is_heldout_and_deterministic():
    sys.path.insert(0, str(ROOT / "hlru_lm" / "eval_tasks"))
    try:
        import utils
    finally:
        sys.path.pop(0)
    from hlru_lm import data as D

    ppl = utils.pydoc_ppl()["test"]
    val_docs = {d["id"]: d["text"] for d in D.embedded_corpus("validation")}
    val_ids = set(val_docs)
    assert len(ppl) > 5 and set(ppl["id"]) == val_ids
    mc1, mc2 = utils.pydoc_continuation(num_items=50)["test"], utils.pydoc_continuation(num_items=50)["test"]
    assert mc1.to_list() == mc2.to_list() and len(mc1) == 50
    for row in mc1:
        doc_id = row["id"].split("#")[0]
        assert doc_id in val_ids and len(row["choices"]) == 4 and len(set(row["choices"])) == 4
        gold = row["choices"][row["label"]]
        text = " ".join(val_docs[doc_id].split())
        assert " ".join(gold.split()) in text
        # the passage is the lines just before the gold line (never the gold line itself); distractors come from
        # other documents
        lines = utils._clean_lines(val_docs[doc_id])
        j = int(row["id"].split("#")[1])
        context = row["context"].split("\n")
        assert lines[j] == gold and lines[j - len(context) : j] == context
        assert not set(row["choices"]) - {gold} & set(lines)
    # the package ships no absolute paths: the YAMLs build their data at run time
    for y in (ROOT / "hlru_lm" / "eval_tasks").glob("*.yaml"):
        assert "/work/" not in y.read_text() and "custom_dataset: !function utils." in y.read_text()


def test_simple_evaluate_with_hflm(tiny_model_dir):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hlru_lm.lm_eval_model import task_manager

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=8, device="cpu")
    assert lm.max_length == 128  # the training context (config.max_position_embeddings)
    res = lm_eval.simple_evaluate(model=lm, tasks=["hlru_offline"], limit=6, task_manager=task_manager())
    ppl, mc = res["results"]["hlru_pydoc_ppl"], res["results"]["hlru_pydoc_continuation"]
    # an untrained model over ~320 tokens: about log2(320)/~3 bytes per token bits per byte, far from perfect
    assert 1.0 < ppl["bits_per_byte,none"] < 10 and math.isfinite(ppl["word_perplexity,none"]), ppl
    assert ppl["byte_perplexity,none"] == pytest.approx(2 ** ppl["bits_per_byte,none"], rel=1e-6)
    assert 0.0 <= mc["acc,none"] <= 1.0 and 0.0 <= mc["acc_norm,none"] <= 1.0


def test_continuation_longer_than_the_window_is_named(tiny_model_dir):
    from lm_eval.api.instance import Instance

    from hlru_lm.lm_eval_model import HLRULM

    lm = HLRULM(pretrained=tiny_model_dir, max_length=8, batch_size=1)
    long = Instance("loglikelihood", doc={}, arguments=("The gate", " mixes the state of every block " * 3), idx=0)
    with pytest.raises(ValueError, match=r"longer than the window max_length=8.*--model_args max_length="):
        lm.loglikelihood([long])
    short = Instance("loglikelihood", doc={}, arguments=("The gate", " mixes"), idx=0)
    assert math.isfinite(lm.loglikelihood([short])[0][0])
    # a continuation of exactly max_length tokens fits (HFLM scores it): not refused
    n = len(lm._encode_pair("The gate", " mixes the state")[1])
    exact = HLRULM(pretrained=tiny_model_dir, max_length=n, batch_size=1)
    fits = Instance("loglikelihood", doc={}, arguments=("The gate", " mixes the state"), idx=0)
    assert n > 1 and math.isfinite(exact.loglikelihood([fits])[0][0])


def test_generate_until_left_pads_with_a_tokenizer_without_pad_token(tiny_model_dir):
    # GPT-2-style tokenizers have no pad token: lm-eval picks one, and a batch of prompts of different lengths
    # (left-padded with a mask) generates what each prompt generates alone
    from lm_eval.api.instance import Instance
    from transformers import AutoTokenizer

    from hlru_lm.lm_eval_model import HLRULM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token = None
    prompts = ["The gate mixes the state of every", "A"]
    reqs = [
        Instance("generate_until", doc={}, arguments=(p, {"until": [], "max_gen_toks": 5}), idx=i)
        for i, p in enumerate(prompts)
    ]
    together = HLRULM(pretrained=tiny_model_dir, tokenizer=tok, batch_size=2).generate_until(reqs)
    alone = [HLRULM(pretrained=tiny_model_dir, tokenizer=tok, batch_size=1).generate_until([r])[0] for r in reqs]
    assert together == alone and all(together)


def test_evaluate_cli(tiny_model_dir, tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            "--model",
            str(tiny_model_dir),
            "--tasks",
            "hlru_offline",
            "--limit",
            "4",
            "--batch_size",
            "4",
            "--output_path",
            str(out),
            "--model_args",
            "dtype=float32",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = proc.stdout
    assert "hlru_pydoc_ppl" in table and "bits_per_byte" in table and "hlru_pydoc_continuation" in table
    files = list(out.rglob("results_*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())["results"]
    assert res["hlru_pydoc_ppl"]["bits_per_byte,none"] > 0


def test_evaluate_argv_rewrite(tiny_model_dir):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from evaluate import rewrite_argv
    finally:
        sys.path.pop(0)
    from lm_eval._cli.harness import HarnessCLI

    from hlru_lm.lm_eval_model import TASK_DIR

    def parsed(argv: list[str]):  # lm-eval's own parser on the rewritten command line
        old, sys.argv = sys.argv, ["lm-eval", *rewrite_argv(argv)]
        try:
            return HarnessCLI().parse_args()
        finally:
            sys.argv = old

    # every form lm-eval accepts for --model_args: comma-separated, space-separated, JSON, the -a alias
    for extra in (
        ["--model_args", "max_length=32,dtype=float32"],
        ["--model_args", "max_length=32", "dtype=float32"],
        ["--model_args", '{"max_length": 32, "dtype": "float32"}'],
        ["-a", "max_length=32", "-a", "dtype=float32"],
    ):
        args = parsed(["--model", str(tiny_model_dir), "--tasks", "x", *extra])
        assert args.model == "hlru", extra
        assert args.model_args == {"pretrained": str(tiny_model_dir), "max_length": 32, "dtype": "float32"}, extra
        assert args.include_path == str(TASK_DIR)
    assert parsed(["-M", str(tiny_model_dir), "--tasks", "x"]).model_args == {"pretrained": str(tiny_model_dir)}
    argv = rewrite_argv(["--model", "hf", "--model_args", "pretrained=gpt2", "--include_path", "/t"])
    assert argv[argv.index("--model") + 1] == "hf" and argv[argv.index("--include_path") + 1] == f"/t:{TASK_DIR}"


def test_generate_streams(tiny_model_dir):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate.py"),
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "The import statement",
            "--max_new_tokens",
            "12",
            "--greedy",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("The import statement") and len(proc.stdout.strip()) > len("The import statement")


def test_generate_stops_at_max_new_tokens(tiny_model_dir, monkeypatch, capsys):
    import hlru_lm

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import generate

    new_tokens, real = [], hlru_lm.HLRUForCausalLM.generate

    def counting(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        new_tokens.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(hlru_lm.HLRUForCausalLM, "generate", counting)
    argv = ["--model", str(tiny_model_dir), "--prompt", "The import statement", "--max_new_tokens", "3", "--greedy"]
    assert generate.main(argv) == 0
    assert new_tokens == [3] and capsys.readouterr().out.startswith("The import statement")
    # --greedy is the model's greedy continuation; sampling with the same --seed prints the same text twice
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = hlru_lm.HLRUForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = tok("The import statement", return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = real(model, input_ids=ids, do_sample=False, max_new_tokens=8, repetition_penalty=1.1)
    assert generate.main([*argv[:-2], "8", "--greedy"]) == 0
    text = tok.decode(greedy[0, ids.shape[1] :], skip_special_tokens=True)
    assert capsys.readouterr().out == f"The import statement{text}\n"
    sampled = []
    for _ in range(2):
        assert generate.main([*argv[:-2], "8", "--seed", "3"]) == 0
        sampled.append(capsys.readouterr().out)
    assert sampled[0] == sampled[1]
