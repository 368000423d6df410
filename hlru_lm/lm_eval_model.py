"""lm-evaluation-harness integration: an ``HFLM`` subclass registered as ``--model hlru`` and the offline task dir.

    python scripts/evaluate.py --model runs/tiny --tasks hlru_offline          # the wrapper around lm-eval's CLI
    lm_eval --model hf --model_args pretrained=runs/tiny/model,trust_remote_code=True --tasks ...   # stock lm-eval

(``--model hlru`` exists only where this module was imported, as scripts/evaluate.py does; lm-eval's own CLI does
not import it. Stock lm-eval loads a saved model through its carried code instead.)

or from Python::

    import hlru_lm, lm_eval
    from lm_eval.models.huggingface import HFLM
    lm = HFLM(pretrained=model, tokenizer=tok, backend="causal")
    lm_eval.simple_evaluate(model=lm, tasks=["hlru_offline"], task_manager=hlru_lm.lm_eval_model.task_manager())
"""

from __future__ import annotations

from pathlib import Path

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

import hlru_lm  # noqa: F401  (registers model_type "hlru" with the Auto classes)

TASK_DIR = Path(__file__).resolve().parent / "eval_tasks"
OFFLINE_TASKS = ("hlru_pydoc_ppl", "hlru_pydoc_continuation")


@register_model("hlru")
class HLRULM(HFLM):
    """HFLM with the causal backend, the model's own tokenizer (never the Hub) and, unless ``max_length`` is given,
    the model's training context (``config.max_position_embeddings``) as window: the recurrence has no positional
    limit, but the rolling-perplexity windows then match what the model was trained on. Log-likelihood requests are
    right-padded without a mask (harmless for a causal recurrence); ``generate_until`` left-pads with a mask."""

    def __init__(self, pretrained, tokenizer=None, backend: str = "causal", device: str | None = None, **kwargs):
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if tokenizer is None and isinstance(pretrained, (str, Path)) and Path(pretrained).is_dir():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(pretrained))
        if isinstance(pretrained, Path):
            pretrained = str(pretrained)
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, backend=backend, device=device, **kwargs)

    def _loglikelihood_tokens(self, requests, *args, **kwargs):
        # HFLM asserts that every continuation fits the window; name the problem and the fix instead
        longest = max((len(continuation) for _, _, continuation in requests), default=0)
        if longest > self.max_length:
            raise ValueError(
                f"a continuation of {longest} tokens is longer than the window max_length={self.max_length} (the "
                f"model's training context): pass --model_args max_length=<n> with n >= {longest} (the recurrence "
                "has no positional limit)"
            )
        return super()._loglikelihood_tokens(requests, *args, **kwargs)


def task_manager(**kwargs):
    """A ``TaskManager`` that also knows the package's offline tasks (``hlru_offline`` and its members)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASK_DIR), **kwargs)
