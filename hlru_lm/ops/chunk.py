"""Parallel torch path: a chunked affine scan over materialised transitions (differentiable, O(log C) depth per chunk).

Each step is the affine map h -> A_t h + b_t. Inside a chunk of C steps the maps are composed with a Hillis-Steele
doubling scan (log2 C batched matmuls); the chunk-end states are then carried across chunks in a short loop.
"""

import torch

from .gate_norm import normalize_gates
from .naive import state_dtype


def affine_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """h_t = a_t @ h_{t-1} + b_t for a (B,T,N,m,m), b (B,T,N,m), h0 (B,N,m); returns h (B,T,N,m)."""
    bsz, seqlen, nblocks, m = b.shape
    chunk = min(chunk_size, seqlen)
    n_chunks = -(-seqlen // chunk)
    pad = n_chunks * chunk - seqlen
    if pad:  # identity maps at the end leave the state unchanged; sliced off below
        eye = torch.eye(m, dtype=a.dtype, device=a.device).expand(bsz, pad, nblocks, m, m)
        a = torch.cat([a, eye], dim=1)
        b = torch.cat([b, b.new_zeros(bsz, pad, nblocks, m)], dim=1)
    a = a.reshape(bsz, n_chunks, chunk, nblocks, m, m)
    b = b.reshape(bsz, n_chunks, chunk, nblocks, m, 1)
    # Inclusive scan of map compositions within each chunk: (A2, b2) o (A1, b1) = (A2 A1, A2 b1 + b2).
    offset = 1
    while offset < chunk:
        a_prev, b_prev = a[:, :, :-offset], b[:, :, :-offset]
        a_cur, b_cur = a[:, :, offset:], b[:, :, offset:]
        a = torch.cat([a[:, :, :offset], a_cur @ a_prev], dim=2)
        b = torch.cat([b[:, :, :offset], a_cur @ b_prev + b_cur], dim=2)
        offset *= 2
    # Carry the state across chunks: start_c = A_end(c-1) start_{c-1} + b_end(c-1).
    starts, h = [], h0.unsqueeze(-1)
    for c in range(n_chunks):
        starts.append(h)
        h = a[:, c, -1] @ h + b[:, c, -1]
    start = torch.stack(starts, dim=1).unsqueeze(2)  # (B, n_chunks, 1, N, m, 1)
    out = (a @ start + b).reshape(bsz, n_chunks * chunk, nblocks, m)
    return out[:, :seqlen]


def chunk_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str, chunk_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    acc = state_dtype(v.dtype)
    m = v.shape[-1]
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    h = affine_scan(p[..., :m], p[..., m] * v.to(acc), initial_state.to(acc), chunk_size)
    return h.to(v.dtype), h[:, -1]


def chunk_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str, chunk_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    acc = state_dtype(v.dtype)
    bsz, seqlen, nch = v.shape
    m = initial_state.shape[-1]
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    # Companion form: first row mixes the m lags, the sub-diagonal shifts them by one.
    shift = torch.eye(m - 1, m, dtype=acc, device=v.device).expand(bsz, seqlen, nch, m - 1, m)
    a = torch.cat([p[..., :m].unsqueeze(-2), shift], dim=-2)
    b = torch.cat([(p[..., m] * v.to(acc)).unsqueeze(-1), p.new_zeros(bsz, seqlen, nch, m - 1)], dim=-1)
    y = affine_scan(a, b, initial_state.to(acc), chunk_size)
    return y.to(v.dtype), y[:, -1]
