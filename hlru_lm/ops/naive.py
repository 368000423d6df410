"""Readable reference of the recurrences: a Python loop over time. Used by tests and for single-token decoding."""

import torch

from .gate_norm import normalize_gates


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The recurrent state accumulates in float32 (float64 when the inputs are float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def naive_bdlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One BD-LRU token: gate_logits (B,N,m,m+1), v (B,N,m), state (B,N,m) -> (h in v.dtype, new float32 state)."""
    acc = state_dtype(v.dtype)
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    m = v.shape[-1]
    h = (p[..., :m] @ state.to(acc).unsqueeze(-1)).squeeze(-1) + p[..., m] * v.to(acc)
    return h.to(v.dtype), h


def naive_hlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One H-LRU token: gate_logits (B,N,m+1), v (B,N), state (B,N,m) with state[..., k] = x_{t-1-k}.

    Returns (y, new_state), both the shifted state (x_t, x_{t-1}, ..., x_{t-m+1}); y in v.dtype, new_state float32.
    """
    acc = state_dtype(v.dtype)
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    m = state.shape[-1]
    state = state.to(acc)
    x = (p[..., :m] * state).sum(-1) + p[..., m] * v.to(acc)
    new_state = torch.cat([x.unsqueeze(-1), state[..., : m - 1]], dim=-1)
    return new_state.to(v.dtype), new_state


def naive_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    state, hs = initial_state, []
    for t in range(v.shape[1]):
        h, state = naive_bdlru_step(gate_logits[:, t], v[:, t], state, gate_norm)
        hs.append(h)
    return torch.stack(hs, dim=1), state


def naive_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    state, ys = initial_state, []
    for t in range(v.shape[1]):
        y, state = naive_hlru_step(gate_logits[:, t], v[:, t], state, gate_norm)
        ys.append(y)
    return torch.stack(ys, dim=1), state
