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


def _recall_example(rng, vocab: int, seq_len: int, noise_vocab: int, frac_noise: float, train: bool):
    """MAD's multi-query in-context recall (`generate_in_context_recall_instance`, multi_query=True).

    Keys are `[0, nv//2)` and values `[nv//2, nv)` with `nv = vocab - noise_vocab`; noise tokens are `[nv, vocab)`.
    `seq_len // 2 - 1` slots each hold a key-value pair from a per-example map (a key's value is drawn the first time
    the key appears, values may repeat across keys) or, with probability `frac_noise`, two noise tokens; a final pair
    re-presents a key already seen. Inputs are the first `seq_len - 1` tokens. Test targets: the value at the position
    of its key whenever the key was presented before (multi-query); train targets: the next token everywhere (MAD
    trains the recall tasks as language models).
    """
    nv = vocab - noise_vocab
    half = nv // 2
    pairs = seq_len // 2
    not_noise = int(rng.integers(pairs - 1))  # MAD draws from `pairs`; the last index would allow no pair at all
    toks, tgt, kv = [], [], {}
    for i in range(pairs - 1):
        if frac_noise > 0 and i != not_noise and rng.random() < frac_noise:
            toks += rng.integers(nv, vocab, 2).tolist()
            tgt += [IGNORE, IGNORE]
            continue
        k = int(rng.integers(half))
        seen = k in kv
        if not seen:
            kv[k] = int(rng.integers(half, nv))
        toks += [k, kv[k]]
        tgt += [IGNORE, kv[k] if seen else IGNORE]
    k = list(kv)[int(rng.integers(len(kv)))]
    toks += [k, kv[k]]
    tgt += [IGNORE, kv[k]]
    x = toks[:-1]
    return x, (toks[1:] if train else tgt[1:])


def _perms(tokens: range, size: int) -> list[tuple[int, ...]]:
    return list(itertools.permutations(tokens, size))


def _fuzzy_recall_example(rng, vocab: int, seq_len: int, max_key: int, max_val: int, train: bool):
    """MAD's multi-query fuzzy recall (`generate_fuzzy_in_context_recall_instance`, multi_query=True).

    Token `vocab - 1` pads; keys are motifs of 1..max_key distinct tokens from `[0, (vocab-1)//2)`, values motifs of
    1..max_val distinct tokens from `[(vocab-1)//2, vocab-1)`. At test time every key is `max_key` tokens long. One
    probe pair is placed at a random point and repeated at the end; pairs are added while the sequence is shorter than
    `seq_len - |probe| - (max_key + max_val)`, then the front is padded to `seq_len + 1` and shifted. Test targets: the
    value tokens of keys presented before, at the positions that predict them; train targets: the next token.
    """
    nv = vocab - 1
    pad = vocab - 1
    key_toks, val_toks = range(nv // 2), range(nv // 2, nv)
    key_sizes = list(range(1, max_key + 1)) if train else [max_key]
    keys = {s: _perms(key_toks, s) for s in key_sizes}
    vals = {s: _perms(val_toks, s) for s in range(1, max_val + 1)}

    def pick(table, size):
        return table[size][int(rng.integers(len(table[size])))]

    k_probe = pick(keys, key_sizes[int(rng.integers(len(key_sizes)))])
    v_probe = pick(vals, int(rng.integers(1, max_val + 1)))
    probe_len = len(k_probe) + len(v_probe)
    probe_at = int(rng.integers(seq_len - 2 * probe_len))
    added = False
    toks, tgt, kv = [], [], {}
    while len(toks) < seq_len - probe_len - (max_key + max_val):
        k_size = key_sizes[int(rng.integers(len(key_sizes)))]
        v_size = int(rng.integers(1, max_val + 1))
        if len(toks) >= probe_at and not added:
            toks += [*k_probe, *v_probe]
            tgt += [IGNORE] * probe_len  # MAD never scores the first presentation of the probe
            kv[k_probe] = v_probe
            added = True
            continue
        k = pick(keys, k_size)
        if k == k_probe:
            v, added = v_probe, True
        else:
            v = kv.get(k) or pick(vals, v_size)
        seen = k in kv
        kv[k] = v
        toks += [*k, *v]
        tgt += [IGNORE] * len(k) + (list(v) if seen else [IGNORE] * len(v))
    toks += [*k_probe, *v_probe]
    tgt += [IGNORE] * len(k_probe) + list(v_probe)
    n_pad = seq_len + 1 - len(toks)
    assert n_pad >= 0, "fuzzy recall overflowed its length"
    toks, tgt = [pad] * n_pad + toks, [IGNORE] * n_pad + tgt
    return toks[:-1], (toks[1:] if train else tgt[1:])


def _selective_copy_example(rng, vocab: int, seq_len: int, n_copy: int):
    """MAD selective copying: `n_copy` tokens from `[0, vocab-2)` with `seq_len - 2 n_copy - 1` blanks (`vocab - 2`)
    inserted before them at random (never after the last one: MAD's `np.insert` indices are `< n_copy`), one copy token
    (`vocab - 1`), then `n_copy` blanks at which the tokens are recalled in order."""
    blank, copy = vocab - 2, vocab - 1
    n_blank = seq_len - 2 * n_copy - 1
    if n_blank < 0:
        raise ValueError(f"selective copying needs seq_len > 2 n_copy, got {seq_len}, {n_copy}")
    toks = rng.integers(0, vocab - 2, n_copy)
    before = np.bincount(rng.integers(0, n_copy, n_blank), minlength=n_copy)  # blanks inserted before token j
    x = []
    for j in range(n_copy):
        x += [blank] * int(before[j]) + [int(toks[j])]
    x += [copy] + [blank] * n_copy
    y = [IGNORE] * (seq_len - n_copy) + toks.tolist()
    return x, y


def _compression_example(rng, vocab: int, seq_len: int):
    """MAD compression: `seq_len - 1` tokens from `[0, vocab-1)` then the compression token `vocab - 1`; the model
    reconstructs every token (the compression token too) from its last state."""
    x = np.concatenate([rng.integers(0, vocab - 1, seq_len - 1), [vocab - 1]])
    return x.tolist(), x.tolist()


@lru_cache(maxsize=8)
def memory_map(vocab: int, seed: int = 12345) -> dict[int, int]:
    """MAD's fixed key->value map (`generate_kv_map`): shuffled keys `[0, n//2)` zipped with shuffled values
    `[n//2, n)`, `n = vocab - 1`, shuffled by `default_rng(12345)` as MAD does: MAD's own map, one for train and test.
    """
    n = vocab - 1
    rng = np.random.default_rng(seed)
    keys = _perms(range(n // 2), 1)
    vals = _perms(range(n // 2, n), 1)
    rng.shuffle(keys)
    rng.shuffle(vals)
    return {int(k[0]): int(v[0]) for k, v in zip(keys, vals, strict=False)}


def _memorization_example(rng, vocab: int, seq_len: int):
    """MAD memorization: `seq_len // 2` (key, insert) pairs, insert token `vocab - 1`; the value of the fixed map is
    predicted at the insert token."""
    table = memory_map(vocab)
    keys = list(table)
    ks = [keys[i] for i in rng.integers(0, len(keys), seq_len // 2)]
    x = [t for k in ks for t in (k, vocab - 1)]
    y = [t for k in ks for t in (IGNORE, table[k])]
    return x, y


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
    """MAD's baseline settings (`configs/tasks/*.yml`, `full`) or shortened ones for the CPU smoke suite.

    Every MAD task scores the model's full vocabulary (MAD's LM head), so `num_classes == vocab_size`; `chance` is a
    uniform guess over the tokens that can be a target at a scored position. `n_train` is MAD's per task (memorization
    trains on 256 examples); `seq_len` is MAD's `seq_len` (the recall tasks' inputs are one token shorter, as in MAD).
    """
    if scale not in ("full", "smoke"):
        raise ValueError(f"scale must be 'full' or 'smoke', got {scale!r}")
    s = scale == "smoke"
    mem_vocab = 64 if s else 256
    return {
        "in_context_recall": TaskSpec(
            "in_context_recall", "mad", 16, 16, 32 if s else 128, 1 / 8, (("noise_vocab", 0), ("frac_noise", 0.0))
        ),
        "noisy_recall": TaskSpec(
            "noisy_recall", "mad", 32, 32, 32 if s else 128, 1 / 8, (("noise_vocab", 16), ("frac_noise", 0.2))
        ),
        "fuzzy_recall": TaskSpec(
            "fuzzy_recall", "mad", 16, 16, 32 if s else 128, 1 / 8, (("key_len", 3), ("value_len", 3))
        ),
        "selective_copying": TaskSpec(
            "selective_copying", "mad", 16, 16, 32 if s else 256, 1 / 14, (("n_copy", 4 if s else 16),)
        ),
        "compression": TaskSpec("compression", "mad", 16, 16, 8 if s else 32, 1 / 15),
        "memorization": TaskSpec(
            "memorization",
            "mad",
            mem_vocab,
            mem_vocab,
            16 if s else 32,
            1 / ((mem_vocab - 1) // 2),
            (("n_train", 512 if s else 256),),
        ),
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
    train = split == "train"
    rows = []
    for _ in range(n):
        if spec.name in ("in_context_recall", "noisy_recall"):
            ex = _recall_example(rng, v, L, spec.option("noise_vocab", 0), spec.option("frac_noise", 0.0), train)
        elif spec.name == "fuzzy_recall":
            ex = _fuzzy_recall_example(rng, v, L, spec.option("key_len", 3), spec.option("value_len", 3), train)
        elif spec.name == "selective_copying":
            ex = _selective_copy_example(rng, v, L, spec.option("n_copy"))
        elif spec.name == "compression":
            ex = _compression_example(rng, v, L)
        elif spec.name == "memorization":
            ex = _memorization_example(rng, v, L)
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
