"""Shared fixtures: tests run offline on CPU with tiny models and a tokenizer built in memory."""

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import hlru_lm  # noqa: E402

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a linear recurrence mixes states with convex gates",
    "block diagonal and higher order recurrences share one scan",
] * 4


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error |a - b| / |b| (Frobenius norms, in float64)."""
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def tiny_config(mixer_type: str = "bdlru", **overrides) -> hlru_lm.HLRUConfig:
    kwargs = dict(
        vocab_size=96,
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        mixer_type=mixer_type,
        block_size=4,
        num_blocks=3,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    kwargs.update(overrides)
    return hlru_lm.HLRUConfig(**kwargs)


def tiny_model(mixer_type: str = "bdlru", seed: int = 0, **overrides) -> hlru_lm.HLRUForCausalLM:
    torch.manual_seed(seed)
    return hlru_lm.HLRUForCausalLM(tiny_config(mixer_type, **overrides)).eval()


@pytest.fixture(scope="session")
def tokenizer():
    """A byte-level BPE tokenizer trained on a few sentences (vocab <= 96), wrapped as PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=96,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()[:40],
    )
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def run_triton_tests_in_interpreter(namespace: dict, path: str) -> None:
    """Without a GPU and without TRITON_INTERPRET=1 (Triton reads it once, at import), replace a module's
    `test_triton_*` tests by one test that re-runs them in a subprocess under the interpreter."""
    import subprocess
    import sys

    def test_triton_in_interpreter_subprocess():
        env = dict(os.environ, TRITON_INTERPRET="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "triton", path]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(path)))
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]

    for name in [k for k in namespace if k.startswith("test_triton_")]:
        del namespace[name]
    namespace["test_triton_in_interpreter_subprocess"] = test_triton_in_interpreter_subprocess


def pytest_report_header(config):
    import transformers

    return f"hlru-lm {hlru_lm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}"
