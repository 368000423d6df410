"""Checkpoints usable by people who never installed hlru-lm: remote code, stock lm-eval, other heads, PEFT, and
the refusals a recurrent model owes its users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hlru_lm

from .conftest import tiny_model

# A child process that cannot import hlru_lm (the editable install included) and runs from a folder without it.
BLOCK_HLRU = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "hlru_lm" or name.startswith("hlru_lm."):
                raise ImportError("hlru_lm is blocked in this process")
    sys.meta_path.insert(0, _Block())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    """
)


def run_without_package(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run(
        [sys.executable, "-c", BLOCK_HLRU + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A tiny model + tokenizer saved with save_pretrained, an input and its logits in this process."""
    folder = tmp_path_factory.mktemp("hub") / "model"
    model = tiny_model("hlru", block_size=2, num_blocks=8)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ids = torch.randint(3, 96, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    torch.save({"ids": ids, "logits": logits}, folder.parent / "expected.pt")
    return folder, ids, logits


def test_checkpoint_carries_its_code(saved):
    folder, _, _ = saved
    names = {p.name for p in folder.iterdir()}
    assert {"configuration_hlru.py", "modeling_hlru.py", "ops.py", "loss.py"} <= names
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}


def test_loads_and_generates_without_the_package(saved):
    folder, _, _ = saved
    proc = run_without_package(
        f"""
        import torch
        from transformers import AutoModelForCausalLM
        try:
            import hlru_lm
            raise SystemExit("hlru_lm importable")
        except ImportError:
            pass
        expected = torch.load({str(folder.parent / "expected.pt")!r})
        model = AutoModelForCausalLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(expected["ids"]).logits
        assert torch.allclose(logits, expected["logits"], atol=1e-5), (logits - expected["logits"]).abs().max()
        out = model.generate(expected["ids"][:1, :4], max_new_tokens=5, do_sample=False)
        assert out.shape == (1, 9)
        from transformers import AutoTokenizer  # as the model card says: no prompt, no error

        assert len(AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)("gates").input_ids) > 0
        from transformers import AutoModelForSequenceClassification  # its body is built without AutoModel
        cls = AutoModelForSequenceClassification.from_pretrained({str(folder)!r}, trust_remote_code=True, num_labels=3)
        assert cls(expected["ids"]).logits.shape == (2, 3)
        print("OK")
        """,
        cwd=folder.parent,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_stock_lm_eval_hf_model_without_the_package(saved, tmp_path):
    pytest.importorskip("lm_eval")
    folder, _, _ = saved
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the quick brown fox", "a linear recurrence"]))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tiny_ppl.yaml").write_text(
        textwrap.dedent(
            f"""
            task: tiny_ppl
            dataset_path: json
            dataset_kwargs:
              data_files:
                test: {docs}
            test_split: test
            output_type: loglikelihood_rolling
            doc_to_text: ""
            doc_to_target: "{{{{text}}}}"
            metric_list:
              - metric: word_perplexity
            """
        )
    )
    proc = run_without_package(
        f"""
        import math
        import lm_eval
        from lm_eval.tasks import TaskManager
        res = lm_eval.simple_evaluate(
            model="hf",
            model_args="pretrained={folder},trust_remote_code=True,max_length=32",
            tasks=["tiny_ppl"],
            task_manager=TaskManager(include_path={str(tmp_path / "tasks")!r}),
            device="cpu",
            batch_size=2,
        )
        ppl = res["results"]["tiny_ppl"]["word_perplexity,none"]
        assert math.isfinite(ppl) and ppl > 1, ppl
        print("OK", ppl)
        """,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_sequence_classification_head(saved, tmp_path):
    from transformers import AutoModelForSequenceClassification

    folder, ids, _ = saved
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert isinstance(model, hlru_lm.HLRUForSequenceClassification)
    ids = ids.clone()
    ids[0, -3:] = model.config.pad_token_id  # right padding: pooled at the last real token
    out = model(ids, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.score.weight.grad is not None and model.model.layers[0].mixer.logit_proj.weight.grad is not None
    alone = model(ids[:1, :-3]).logits
    assert torch.allclose(out.logits[:1], alone, atol=1e-5)
    model.save_pretrained(tmp_path / "cls")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls")
    assert torch.allclose(again(ids).logits, out.logits, atol=1e-6)


def test_old_checkpoint_names_still_load(saved, tmp_path):
    """Before the mixer's W_g became `logit_proj` it was `gate_proj`, like the SwiGLU's gate."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    folder, ids, logits = saved
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    sd = {k.replace("mixer.logit_proj", "mixer.gate_proj"): v for k, v in load_file(old / "model.safetensors").items()}
    assert any("mixer.gate_proj" in k for k in sd)
    save_file(sd, old / "model.safetensors", metadata={"format": "pt"})
    model = AutoModelForCausalLM.from_pretrained(old)
    assert torch.allclose(model(ids).logits, logits, atol=1e-6)


def test_lora_train_and_merge():
    peft = pytest.importorskip("peft")
    model = tiny_model(block_size=2, num_blocks=8)
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(hlru_lm.LORA_TARGET_MODULES), lora_dropout=0.0)
    )
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("mixer.logit_proj.lora_A" in n for n in names) and any("mlp.gate_proj.lora_A" in n for n in names)
    ids = torch.randint(3, 96, (4, 12), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.train()
    first = None
    for _ in range(5):
        loss = lora(input_ids=ids, labels=ids).loss
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < first
    lora.eval()
    with torch.no_grad():
        adapted = lora(ids).logits
        merged = lora.merge_and_unload()
        assert isinstance(merged, hlru_lm.HLRUForCausalLM)
        assert torch.allclose(merged(ids).logits, adapted, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"prompt_lookup_num_tokens": 2}, {"assistant_model": "self"}, {"positional_config": True}]
)
def test_assisted_decoding_is_refused_clearly(kwargs):
    from transformers import GenerationConfig

    model = tiny_model()
    args = (torch.ones(1, 4, dtype=torch.long),)
    if kwargs.get("assistant_model") == "self":
        kwargs = {"assistant_model": tiny_model()}
    if kwargs.pop("positional_config", False):  # generate(inputs, generation_config)
        args += (GenerationConfig(prompt_lookup_num_tokens=2, max_new_tokens=3),)
    with pytest.raises(ValueError, match="not supported by recurrent models"):
        model.generate(*args, max_new_tokens=3, **kwargs)
