"""Datasets of the offline lm-eval tasks, built at run time from the held-out split of the embedded corpus.

Used through ``custom_dataset: !function utils.<name>`` in the YAMLs next to this file, so the tasks carry no paths of
any machine. The held-out documents are exactly the validation documents of ``hlru_lm.data`` with the same
``val_fraction`` (default 0.05, the default of the training configs), so a model trained on the embedded corpus never
saw them.
"""

from __future__ import annotations

import random
import re


def _heldout(val_fraction: float = 0.05) -> list[dict]:
    from hlru_lm.data import embedded_corpus

    return embedded_corpus("validation", val_fraction=float(val_fraction))


def pydoc_ppl(val_fraction: float = 0.05, max_docs: int | None = None, **kwargs) -> dict:
    """One row per held-out document: ``{"id", "text"}`` (scored with loglikelihood_rolling)."""
    import datasets

    docs = _heldout(val_fraction)
    if max_docs is not None:
        docs = docs[: int(max_docs)]
    return {"test": datasets.Dataset.from_list(docs)}


def _clean_lines(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", ln).strip() for ln in text.splitlines() if ln.strip()]


def _good_target(line: str) -> bool:
    return 30 <= len(line) <= 120 and sum(c.isalpha() for c in line) >= 0.6 * len(line)


def pydoc_continuation(
    val_fraction: float = 0.05,
    num_items: int = 300,
    num_choices: int = 4,
    context_chars: int = 200,
    seed: int = 1234,
    **kwargs,
) -> dict:
    """Multiple choice: given a passage of a held-out document, pick the true next line among ``num_choices - 1``
    distractor lines of similar length drawn from other held-out documents. Deterministic for a Python version."""
    import datasets

    rng = random.Random(int(seed))
    docs = [(d["id"], _clean_lines(d["text"])) for d in _heldout(val_fraction)]
    pool = [(i, ln) for i, (_, lines) in enumerate(docs) for ln in lines if _good_target(ln)]
    candidates = [(i, j) for i, (_, lines) in enumerate(docs) for j in range(2, len(lines)) if _good_target(lines[j])]
    rng.shuffle(candidates)
    rows = []
    for i, j in candidates:
        lines = docs[i][1]
        gold = lines[j]
        ctx_lines: list[str] = []
        for ln in reversed(lines[:j]):
            if sum(len(c) + 1 for c in ctx_lines) + len(ln) > context_chars and ctx_lines:
                break
            ctx_lines.insert(0, ln)
        similar = [ln for k, ln in pool if k != i and 0.6 <= len(ln) / len(gold) <= 1.6 and ln != gold]
        if len(similar) < num_choices - 1:
            continue
        distractors = rng.sample(similar, num_choices - 1)
        label = rng.randrange(num_choices)
        choices = distractors[:label] + [gold] + distractors[label:]
        rows.append({"id": f"{docs[i][0]}#{j}", "context": "\n".join(ctx_lines), "choices": choices, "label": label})
        if len(rows) >= int(num_items):
            break
    return {"test": datasets.Dataset.from_list(rows)}
