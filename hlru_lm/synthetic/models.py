"""One backbone (embedding, [mixer, SwiGLU] x L, pre-norm) with the package's BD-LRU / H-LRU mixer and baselines."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hlru_lm.configuration_hlru import HLRUConfig
from hlru_lm.modeling_hlru import HLRUMixer

MODELS = ("bdlru1", "bdlru2", "bdlru3", "bdlru4", "bdlru8", "hlru2", "hlru4", "hlru8", "lstm", "mamba2", "gdn")
# Examples per forward pass, where a model's transient memory needs it: transformers' torch Mamba2 path materialises
# (batch, chunks, chunk, chunk, heads, head_dim) products, 4-16 GiB at batch 256 and length 256 (12 workers share a GPU)
MICRO_BATCH = {"mamba2": 32}


def gated_delta_rule(q, k, v, alpha, beta, state=None):
    """Gated delta rule with beta in (0, 2) (negative eigenvalues): S_t = a_t S (I - b_t k k^T) + b_t v k^T, o = S q.

    q, k: (B, L, H, dk), v: (B, L, H, dv), alpha, beta: (B, L, H). Returns o (B, L, H, dv) and S (B, H, dv, dk).
    """
    b, length, h, dk = k.shape
    s = q.new_zeros(b, h, v.shape[-1], dk) if state is None else state
    outs = []
    for t in range(length):
        kt, vt, bt = k[:, t], v[:, t], beta[:, t, :, None]
        s = alpha[:, t, :, None, None] * s
        s = s + (bt * (vt - torch.einsum("bhvk,bhk->bhv", s, kt))).unsqueeze(-1) * kt.unsqueeze(-2)
        outs.append(torch.einsum("bhvk,bhk->bhv", s, q[:, t]))
    return torch.stack(outs, 1), s


def chunked_gated_delta_rule(q, k, v, log_alpha, beta, state=None, chunk: int = 64):
    """`gated_delta_rule` in chunks of `chunk` steps (same arguments, but log alpha): a Python loop over chunks only.

    Within a chunk (cumulative log decay G_i, S the (dk, dv) state entering it), the delta rule is
    S_i = e^{G_i} S + sum_{j<=i} e^{G_i - G_j} k_j u_j^T with u_i = b_i (v_i - (alpha_i S_{i-1})^T k_i), i.e.
    (I + A) U = b V - diag(b e^G) K S, A_ij = b_i e^{G_i - G_j} k_i.k_j (j < i): one unit-triangular solve for all
    chunks; then O = diag(e^G) Q S + (Q K^T o M) U (M_ti = e^{G_t - G_i}, i <= t) and the next state
    S' = e^{G_C} S + (e^{G_C - G} K)^T U.
    Every exponent is <= 0.
    """
    b, length, h, dk = k.shape
    dv = v.shape[-1]
    n = -(-length // chunk)
    pad = n * chunk - length

    def blocks(x, fill=0.0):  # (B, L, H, ...) -> (B, H, n, C, ...), padded with steps that change nothing
        x = x.transpose(1, 2)
        if pad:
            x = torch.cat([x, x.new_full((*x.shape[:2], pad, *x.shape[3:]), fill)], 2)
        return x.reshape(*x.shape[:2], n, chunk, *x.shape[3:])

    qc, kc, vc = blocks(q), blocks(k), blocks(v)
    g = blocks(log_alpha).cumsum(-1)  # (B, H, n, C)
    bc = blocks(beta)
    diff = g[..., :, None] - g[..., None, :]  # G_t - G_i
    lower = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = torch.exp(diff.masked_fill(~lower, float("-inf")))  # M, zero above the diagonal
    kk = kc @ kc.transpose(-1, -2)
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril(-1)
    a = (bc[..., None] * kk * decay).masked_fill(~strict, 0.0)
    eye = torch.eye(chunk, dtype=q.dtype, device=q.device)
    rhs = torch.cat([bc[..., None] * vc, (bc * g.exp())[..., None] * kc], -1)
    sol = torch.linalg.solve_triangular(eye + a, rhs, upper=False, unitriangular=True)
    w1, w2 = sol[..., :dv], sol[..., dv:]  # U = w1 - w2 S
    qk = (qc @ kc.transpose(-1, -2)) * decay
    qg = qc * g.exp()[..., None]
    kend = kc * torch.exp(g[..., -1:] - g)[..., None]
    s = q.new_zeros(b, h, dk, dv) if state is None else state.transpose(-1, -2)
    outs = []
    for c in range(n):
        u = w1[:, :, c] - w2[:, :, c] @ s
        outs.append(qg[:, :, c] @ s + qk[:, :, c] @ u)
        s = torch.exp(g[:, :, c, -1])[..., None, None] * s + kend[:, :, c].transpose(-1, -2) @ u
    o = torch.stack(outs, 2).reshape(b, h, n * chunk, dv)[:, :, :length].transpose(1, 2)
    return o, s.transpose(-1, -2)


class GatedDeltaNet(nn.Module):
    """Gated DeltaNet layer (Yang et al. 2025) with beta = 2 sigmoid (Grazzi et al. 2025); no short convolution."""

    def __init__(self, d: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.h, self.dk = heads, head_dim
        self.qkv = nn.Linear(d, 3 * heads * head_dim, bias=False)
        self.ab = nn.Linear(d, 2 * heads, bias=True)
        self.gate = nn.Linear(d, heads * head_dim, bias=False)
        self.a_log = nn.Parameter(torch.zeros(heads))
        self.norm = nn.RMSNorm(head_dim)
        self.out = nn.Linear(heads * head_dim, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.h, self.dk).unbind(2)
        q, k = F.normalize(F.silu(q), dim=-1), F.normalize(F.silu(k), dim=-1)
        a, bb = self.ab(x).chunk(2, -1)
        log_alpha = -torch.exp(self.a_log) * F.softplus(a)
        o, _ = chunked_gated_delta_rule(
            q.float(), k.float(), v.float(), log_alpha.float(), 2 * torch.sigmoid(bb.float())
        )
        o = self.norm(o.to(x.dtype)).reshape(b, length, -1) * F.silu(self.gate(x))
        return self.out(o)


class _Mixer(nn.Module):
    def __init__(self, kind: str, d: int, width: int, backend: str) -> None:
        super().__init__()
        self.kind = kind
        if kind.startswith(("bdlru", "hlru")):
            mtype, m = ("bdlru", int(kind[5:])) if kind.startswith("bdlru") else ("hlru", int(kind[4:]))
            cfg = HLRUConfig(hidden_size=d, mixer_type=mtype, block_size=m, num_blocks=width, scan_backend=backend)
            self.layer = HLRUMixer(cfg)
            self.state_size = width * m
        elif kind == "lstm":
            self.layer = nn.LSTM(d, width, batch_first=True)
            self.proj = nn.Linear(width, d, bias=False)
            self.state_size = 2 * width
        elif kind == "mamba2":
            from transformers import Mamba2Config
            from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

            cfg = Mamba2Config(
                hidden_size=d, expand=2, head_dim=32, num_heads=2 * d // 32, state_size=width, n_groups=1, chunk_size=64
            )
            self.layer = Mamba2Mixer(cfg, layer_idx=0)
            self.state_size = 2 * d * width
        elif kind == "gdn":
            self.layer = GatedDeltaNet(d, heads=2, head_dim=width)
            self.state_size = 2 * width * width
        else:
            raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(MODELS)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind.startswith(("bdlru", "hlru")):
            return self.layer(x, None, None)[0]
        if self.kind == "lstm":
            return self.proj(self.layer(x)[0])
        return self.layer(x)


def posemb_sincos(n: int, d: int) -> torch.Tensor:
    """MAD's `posemb_sincos_1d` (fairseq's sinusoidal table): (n, d), sines then cosines."""
    half = d // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
    ang = torch.arange(n, dtype=torch.float)[:, None] * freq[None]
    emb = torch.cat([torch.sin(ang), torch.cos(ang)], 1)
    return torch.cat([emb, torch.zeros(n, 1)], 1) if d % 2 else emb


class SwiGLU(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.up(x).chunk(2, -1)
        return self.down(F.silu(a) * b)


class SyntheticModel(nn.Module):
    """Backbone for all models; `autoencoder` reads every target out of the last state (MAD compression: the last
    position's residual stream plus a fixed sin-cos position code, MAD's 2-layer GELU decoder, then norm and head)."""

    def __init__(
        self,
        kind: str,
        vocab: int,
        classes: int,
        d: int,
        layers: int,
        width: int,
        seq_len: int,
        autoencoder: bool,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if d < 1 or layers < 1 or width < 1:
            raise ValueError(f"d, layers and width must be >= 1, got {d}, {layers}, {width}")
        self.embed = nn.Embedding(vocab, d)
        self.mixers = nn.ModuleList(_Mixer(kind, d, width, backend) for _ in range(layers))
        self.mlps = nn.ModuleList(SwiGLU(d, 2 * d) for _ in range(layers))
        self.norms = nn.ModuleList(nn.RMSNorm(d) for _ in range(2 * layers + 1))
        self.autoencoder = autoencoder
        if autoencoder:  # MAD's AutoEncoder decoder: sin-cos positions on the last state, a 2-layer GELU MLP
            self.register_buffer("pos", posemb_sincos(seq_len, d), persistent=False)
            self.decoder = nn.Sequential(
                nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d), nn.Linear(d, d), nn.GELU()
            )
        self.head = nn.Linear(d, classes)
        self.state_size = layers * self.mixers[0].state_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for i, (mix, mlp) in enumerate(zip(self.mixers, self.mlps, strict=True)):
            h = h + mix(self.norms[2 * i](h))
            h = h + mlp(self.norms[2 * i + 1](h))
        if self.autoencoder:  # one last state, decoded at every position
            h = self.decoder(h[:, -1:, :] + self.pos[: x.shape[1]].unsqueeze(0))
        return self.head(self.norms[-1](h))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


WIDTH_RANGE = {"lstm": range(4, 513, 4), "mamba2": range(1, 129), "gdn": range(2, 129, 2)}


def solve_width(kind: str, tier: str, budget: int, d: int, layers: int, vocab: int, classes: int) -> int:
    """Width knob (LRU: blocks N; LSTM: hidden; Mamba2: d_state; GDN: head dim) whose params/state is nearest budget."""
    if tier not in ("iso_state", "iso_param"):
        raise ValueError(f"tier must be 'iso_state' or 'iso_param', got {tier!r}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    widths = WIDTH_RANGE.get(kind, range(1, 4 * d + 1))

    def metric(w: int) -> int:
        m = SyntheticModel(kind, vocab, classes, d, layers, w, 2, False, "torch")
        return m.state_size if tier == "iso_state" else count_params(m)

    if tier == "iso_state":  # state is linear in the knob (quadratic for GDN): no need to build every model
        return min(widths, key=lambda w: abs(metric(w) - budget))
    lo, hi = 0, len(widths) - 1  # params grow with the knob: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if metric(widths[mid]) < budget:
            lo = mid + 1
        else:
            hi = mid - 1 if mid > lo else mid
    cands = [widths[i] for i in {max(lo - 1, 0), lo, min(lo + 1, len(widths) - 1)}]
    return min(cands, key=lambda w: abs(metric(w) - budget))
