"""Functional ops of the BD-LRU and H-LRU recurrences (Dubinin, Orvieto & Effenberger, 2026).

Backends: "naive" (Python loop over time, the reference), "torch" (chunked parallel scan, differentiable),
"triton" (fused-gate GPU kernels), "auto" (triton on CUDA tensors when available, else torch).
"""

import torch

from .chunk import chunk_bdlru_scan, chunk_hlru_scan
from .gate_norm import GATE_NORMS, check_gate_norm, normalize_gates
from .naive import naive_bdlru_scan, naive_bdlru_step, naive_hlru_scan, naive_hlru_step, state_dtype

BACKENDS = ("auto", "torch", "naive", "triton")

__all__ = [
    "BACKENDS",
    "GATE_NORMS",
    "bdlru_scan",
    "bdlru_step",
    "hlru_scan",
    "hlru_step",
    "normalize_gates",
    "state_dtype",
]


def _check_common(v: torch.Tensor, gate_logits: torch.Tensor, gate_norm: str, backend: str) -> None:
    check_gate_norm(gate_norm)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, x in (("gate_logits", gate_logits), ("v", v)):
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if gate_logits.device != v.device:
        raise ValueError(f"gate_logits is on {gate_logits.device} but v is on {v.device}")


def _initial_state(initial_state: torch.Tensor | None, shape: tuple[int, ...], v: torch.Tensor) -> torch.Tensor:
    if initial_state is None:
        return torch.zeros(shape, dtype=state_dtype(v.dtype), device=v.device)
    if tuple(initial_state.shape) != shape:
        raise ValueError(f"initial_state must have shape {shape}, got {tuple(initial_state.shape)}")
    if initial_state.device != v.device:
        raise ValueError(f"initial_state is on {initial_state.device} but v is on {v.device}")
    return initial_state


def _use_triton(backend: str, v: torch.Tensor) -> bool:
    if backend == "triton":
        return True
    return backend == "auto" and v.is_cuda and _triton_available()


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def bdlru_scan(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-diagonal LRU scan.

    For every block n and step t: P = phi(gate_logits[:, t, n]) row-wise, A = P[:, :m], a0 = P[:, m],
    h_t = A h_{t-1} + a0 * v_t.

    Args:
        gate_logits: (B, T, N, m, m+1) gate logits z.
        v: (B, T, N, m) inputs.
        initial_state: (B, N, m) state before the first step; zeros if None.
        gate_norm: row normalisation phi, one of GATE_NORMS.
        backend: one of BACKENDS.

    Returns:
        h (B, T, N, m) in v's dtype, and the final state (B, N, m) in float32 (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 5 or gate_logits.shape[-1] != gate_logits.shape[-2] + 1:
        raise ValueError(f"gate_logits must have shape (B, T, N, m, m+1), got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:4]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:4])} (B, T, N, m), got {tuple(v.shape)}")
    bsz, _, nblocks, m = v.shape
    h0 = _initial_state(initial_state, (bsz, nblocks, m), v)
    if _use_triton(backend, v):
        from ..kernels import triton_bdlru_scan

        return triton_bdlru_scan(gate_logits, v, h0, gate_norm)
    if backend == "naive":
        return naive_bdlru_scan(gate_logits, v, h0, gate_norm)
    return chunk_bdlru_scan(gate_logits, v, h0, gate_norm)


def hlru_scan(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Higher-order LRU scan (order m per channel).

    For every channel n and step t: P = phi(gate_logits[:, t, n]), x_t = sum_{k=1..m} P[k-1] x_{t-k} + P[m] v_t.
    The state is (x_t, x_{t-1}, ..., x_{t-m+1}): state[..., k] = x_{t-k}.

    Args:
        gate_logits: (B, T, N, m+1) gate logits z.
        v: (B, T, N) inputs.
        initial_state: (B, N, m) lags before the first step (state[..., k] = x_{-1-k}); zeros if None.
        gate_norm: normalisation phi, one of GATE_NORMS.
        backend: one of BACKENDS.

    Returns:
        y (B, T, N, m), the state after each step, in v's dtype, and the final state (B, N, m) in float32
        (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 4 or gate_logits.shape[-1] < 2:
        raise ValueError(f"gate_logits must have shape (B, T, N, m+1) with m >= 1, got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:3]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:3])} (B, T, N), got {tuple(v.shape)}")
    bsz, _, nch = v.shape
    h0 = _initial_state(initial_state, (bsz, nch, gate_logits.shape[-1] - 1), v)
    if _use_triton(backend, v):
        from ..kernels import triton_hlru_scan

        return triton_hlru_scan(gate_logits, v, h0, gate_norm)
    if backend == "naive":
        return naive_hlru_scan(gate_logits, v, h0, gate_norm)
    return chunk_hlru_scan(gate_logits, v, h0, gate_norm)


def bdlru_step(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One BD-LRU decoding step (same math as bdlru_scan for a single token).

    Args:
        gate_logits: (B, N, m, m+1); v: (B, N, m); state: (B, N, m) state before the step.

    Returns:
        h (B, N, m) in v's dtype and the new state (B, N, m) in float32 (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 4 or gate_logits.shape[-1] != gate_logits.shape[-2] + 1:
        raise ValueError(f"gate_logits must have shape (B, N, m, m+1), got {tuple(gate_logits.shape)}")
    shape = tuple(gate_logits.shape[:3])
    if tuple(v.shape) != shape:
        raise ValueError(f"v must have shape {shape} (B, N, m), got {tuple(v.shape)}")
    state = _initial_state(state, shape, v)
    if _use_triton(backend, v):
        from ..kernels import triton_bdlru_step

        return triton_bdlru_step(gate_logits, v, state, gate_norm)
    return naive_bdlru_step(gate_logits, v, state, gate_norm)


def hlru_step(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One H-LRU decoding step (same math as hlru_scan for a single token).

    Args:
        gate_logits: (B, N, m+1); v: (B, N); state: (B, N, m) lags before the step, state[..., k] = x_{t-1-k}.

    Returns:
        y (B, N, m) = (x_t, ..., x_{t-m+1}) in v's dtype and the same new state in float32.
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 3 or gate_logits.shape[-1] < 2:
        raise ValueError(f"gate_logits must have shape (B, N, m+1) with m >= 1, got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:2]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:2])} (B, N), got {tuple(v.shape)}")
    state = _initial_state(state, (*v.shape, gate_logits.shape[-1] - 1), v)
    if _use_triton(backend, v):
        from ..kernels import triton_hlru_step

        return triton_hlru_step(gate_logits, v, state, gate_norm)
    return naive_hlru_step(gate_logits, v, state, gate_norm)
