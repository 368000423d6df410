"""Synthetic tasks generated on the fly, deterministic per seed.

MAD tasks follow the baseline settings of MAD (Poli et al. 2024, `mad/data/instances.py`); group state tracking is
prefix products over S3, S4, A5, S5. Every generator returns `(inputs, targets)` int64 tensors of shape (n, L);
`targets == IGNORE` marks positions that are not scored.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

IGNORE = -100


@dataclass(frozen=True)
class TaskSpec:
    """One task: its family, generator settings and the sizes the model needs."""

    name: str
    family: str  # "mad" or "group"
    vocab_size: int  # input vocabulary (incl. special tokens)
    num_classes: int  # output classes
    seq_len: int  # training length
    chance: float  # accuracy of a uniform guess over the scored classes
    kwargs: tuple = ()  # extra generator settings, as (key, value) pairs

    def option(self, key: str, default=None):
        return dict(self.kwargs).get(key, default)


def _rng(seed: int, split: str) -> np.random.Generator:
    # train and test come from different streams; for recall tasks the disjointness is also enforced (see `_dedup`).
    return np.random.default_rng([seed, {"train": 0, "test": 1}[split]])


# ---------------------------------------------------------------- MAD: recall family


def _recall_example(rng, vocab: int, seq_len: int, noise_vocab: int, frac_noise: float, key_len: tuple[int, int]):
    """Key-value pairs from a per-example random map; a value is scored when its key was seen before (multi-query).

    Keys and values come from disjoint halves of the (non-noise) vocabulary; `key_len` > 1 gives MAD's fuzzy recall
    (keys and values of 1-3 tokens). Noise tokens (ids `vocab..vocab+noise_vocab-1`) are inserted between pairs.
    """
    half = vocab // 2
    keys_pool, vals_pool = np.arange(half), np.arange(half, vocab)
    n_keys = max(2, half // 2)
    lo, hi = key_len
    kv, keys = [], set()
    while len(kv) < n_keys:  # distinct keys, else a key token would have two values
        k = tuple(rng.choice(keys_pool, rng.integers(lo, hi + 1)).tolist())
        v = tuple(rng.choice(vals_pool, rng.integers(lo, hi + 1)).tolist())
        if k not in keys:
            keys.add(k)
            kv.append((k, v))
    x, y = [], []
    seen: set[int] = set()
    while len(x) < seq_len:
        if noise_vocab and rng.random() < frac_noise:
            x.append(int(rng.integers(vocab, vocab + noise_vocab)))
            y.append(IGNORE)
            continue
        i = int(rng.integers(n_keys))
        k, v = kv[i]
        x += list(k)
        y += [IGNORE] * len(k)
        x += list(v)
        # the value's tokens are predicted at the positions that read the key's last token and the value's prefix
        y[-1] = v[0] if i in seen else IGNORE
        y += [(v[j + 1] if i in seen else IGNORE) for j in range(len(v) - 1)] + [IGNORE]
        seen.add(i)
    return x[:seq_len], y[:seq_len]


def _selective_copy_example(rng, vocab: int, seq_len: int, n_copy: int):
    """MAD selective copying: `n_copy` tokens among blanks, then `n_copy` copy signals; recall them in order."""
    blank, signal = vocab - 2, vocab - 1
    ctx = seq_len - n_copy
    toks = rng.integers(0, vocab - 2, n_copy)
    pos = np.sort(rng.choice(ctx, n_copy, replace=False))
    x = np.full(seq_len, blank)
    x[pos] = toks
    x[ctx:] = signal
    y = np.full(seq_len, IGNORE)
    y[ctx - 1 : seq_len - 1] = toks  # the position before each signal predicts the next copied token
    return x.tolist(), y.tolist()


def _compression_example(rng, vocab: int, seq_len: int):
    """MAD compression: random tokens then a compression token; the model reconstructs all from its last state."""
    x = np.concatenate([rng.integers(0, vocab - 1, seq_len - 1), [vocab - 1]])
    return x.tolist(), x.tolist()  # targets are read out from the last position by the autoencoder head


@lru_cache(maxsize=8)
def _memory_map(vocab: int) -> np.ndarray:
    # the fixed key->value map is part of the task, not of the seed (MAD: one map shared by train and test)
    half = vocab // 2
    return np.random.default_rng(12345).integers(half, vocab, half)


def _memorization_example(rng, vocab: int, seq_len: int):
    """MAD memorization: key, insert-token pairs; predict the value of a fixed global key->value map."""
    half = vocab // 2
    insert = vocab  # one extra token id beyond the vocabulary
    keys = rng.integers(0, half, seq_len // 2)
    x = np.stack([keys, np.full_like(keys, insert)], 1).reshape(-1)
    y = np.stack([_memory_map(vocab)[keys], np.full_like(keys, IGNORE)], 1).reshape(-1)
    return x.tolist(), y.tolist()


# ---------------------------------------------------------------- groups


@lru_cache(maxsize=8)
def group_table(name: str) -> np.ndarray:
    """Multiplication table T[a, b] = index of a∘b (apply b first) for S3, S4, A5, S5; built once per process."""
    n = {"S3": 3, "S4": 4, "A5": 5, "S5": 5}.get(name)
    if n is None:
        raise ValueError(f"unknown group {name!r}; expected one of S3, S4, A5, S5")
    perms = list(itertools.permutations(range(n)))
    if name == "A5":
        perms = [p for p in perms if _parity(p) == 0]
    index = {p: i for i, p in enumerate(perms)}
    table = np.empty((len(perms), len(perms)), dtype=np.int64)
    for i, a in enumerate(perms):
        for j, b in enumerate(perms):
            table[i, j] = index[tuple(a[b[k]] for k in range(n))]
    return table


def _parity(p: tuple[int, ...]) -> int:
    return sum(1 for i in range(len(p)) for j in range(i + 1, len(p)) if p[i] > p[j]) % 2


def group_prefix_products(g: np.ndarray, table: np.ndarray) -> np.ndarray:
    """y_t = g_t ∘ ... ∘ g_1 for each row of g (n, L): the state after reading t elements."""
    y = np.empty_like(g)
    y[:, 0] = g[:, 0]
    for t in range(1, g.shape[1]):
        y[:, t] = table[g[:, t], y[:, t - 1]]
    return y


# ---------------------------------------------------------------- registry


def mad_tasks(scale: str = "full") -> dict[str, TaskSpec]:
    """MAD's baseline settings (`full`) or shortened ones for the CPU smoke suite."""
    s = scale == "smoke"
    return {
        "in_context_recall": TaskSpec(
            "in_context_recall", "mad", 16, 16, 32 if s else 128, 1 / 8, (("noise_vocab", 0), ("frac_noise", 0.0))
        ),
        "noisy_recall": TaskSpec(
            "noisy_recall", "mad", 32, 32, 32 if s else 128, 1 / 8, (("noise_vocab", 16), ("frac_noise", 0.2))
        ),
        "fuzzy_recall": TaskSpec("fuzzy_recall", "mad", 16, 16, 32 if s else 128, 1 / 8, (("key_len", (1, 3)),)),
        "selective_copying": TaskSpec(
            "selective_copying", "mad", 16, 16, 32 if s else 256, 1 / 14, (("n_copy", 4 if s else 16),)
        ),
        "compression": TaskSpec("compression", "mad", 16, 16, 8 if s else 32, 1 / 15),
        "memorization": TaskSpec("memorization", "mad", 257, 256, 16 if s else 32, 1 / 128),
    }


def group_tasks(train_len: int = 64) -> dict[str, TaskSpec]:
    """Prefix products; inputs are group elements, outputs the running product (classes = group order)."""
    out = {}
    for g in ("S3", "S4", "A5", "S5"):
        order = len(group_table(g))
        out[g] = TaskSpec(g, "group", order, order, train_len, 1 / order)
    return out


def generate(
    spec: TaskSpec, n: int, seed: int, split: str = "train", seq_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` examples of `spec` (length `seq_len`, default the task's) from stream (`seed`, `split`)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    L = spec.seq_len if seq_len is None else seq_len
    if L < 2:
        raise ValueError(f"seq_len must be >= 2, got {L}")
    rng = _rng(seed, split)
    if spec.family == "group":
        table = group_table(spec.name)
        g = rng.integers(0, len(table), (n, L))
        return torch.from_numpy(g), torch.from_numpy(group_prefix_products(g, table))
    v = spec.vocab_size
    rows = []
    for _ in range(n):
        if spec.name in ("in_context_recall", "noisy_recall", "fuzzy_recall"):
            nv = spec.option("noise_vocab", 0)
            ex = _recall_example(rng, v - nv, L, nv, spec.option("frac_noise", 0.0), spec.option("key_len", (1, 1)))
        elif spec.name == "selective_copying":
            ex = _selective_copy_example(rng, v, L, spec.option("n_copy"))
        elif spec.name == "compression":
            ex = _compression_example(rng, v, L)
        elif spec.name == "memorization":
            ex = _memorization_example(rng, v - 1, L)
        else:
            raise ValueError(f"unknown MAD task {spec.name!r}")
        rows.append(ex)
    x = torch.tensor([r[0] for r in rows], dtype=torch.long)
    y = torch.tensor([r[1] for r in rows], dtype=torch.long)
    return x, y


def train_test(spec: TaskSpec, n_train: int, n_test: int, seed: int) -> tuple[tuple, tuple]:
    """Train and test sets with no test sequence also in train (MAD draws them independently; we drop duplicates)."""
    xtr, ytr = generate(spec, n_train, seed, "train")
    xte, yte = generate(spec, n_test, seed, "test")
    train_rows = {tuple(r) for r in xtr.tolist()}
    keep = torch.tensor([tuple(r) not in train_rows for r in xte.tolist()])
    return (xtr, ytr), (xte[keep], yte[keep])
