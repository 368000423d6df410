"""Fused-gate Triton kernels for the BD-LRU / H-LRU scans (forward, backward by recomputation, decode step).

BD-LRU at m = 1 (and H-LRU of order 1): look-back tile scans with two channels per lane (diag_tile.py); the BD-LRU
forward at m = 2: the single-pass look-back tile scan (bdlru_chain.py); BD-LRU at m = 4 (and at m = 8 below B N m =
8192 lanes), the m = 2 backward and H-LRU of order 2, 4 (and 8 below 8192 lanes; companion form): the two-phase
look-back tile scan (bdlru_tile.py); BD-LRU at m = 16, and at m = 8 from 8192 lanes: a row per lane (two at m = 16),
in time order (bdlru_rows.py); H-LRU of order 16, and 8 from 8192 lanes: a lane per lag, in time order
(hlru_lags.py).

Entry points follow the hlru_lm.ops contract: f(gate_logits, v, h0, gate_norm) -> (h_or_y, final_state), with h0 a
(B, N, m) tensor. Unsupported m (not in SUPPORTED_M), float64 inputs, and CPU tensors outside TRITON_INTERPRET=1 fall
back to the torch path (hlru_lm.ops) with a one-time warning.
"""

import torch

from ..ops import chunk_bdlru_scan, chunk_hlru_scan, naive_bdlru_step, naive_hlru_step
from .bdlru import BDLRUScanFn
from .bdlru_chain import use_chain
from .common import SUPPORTED_M, triton_usable
from .hlru import HLRUScanFn

__all__ = ["SUPPORTED_M", "triton_bdlru_scan", "triton_bdlru_step", "triton_hlru_scan", "triton_hlru_step"]


def _state_in(h0: torch.Tensor) -> torch.Tensor:
    return h0.float().contiguous()


def triton_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    if not triton_usable(v, v.shape[-1], "bdlru_scan"):
        return chunk_bdlru_scan(gate_logits, v, h0, gate_norm)
    return BDLRUScanFn.apply(gate_logits, v, _state_in(h0), gate_norm)


def triton_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    m = h0.shape[-1]
    if not triton_usable(v, m, "hlru_scan"):
        return chunk_hlru_scan(gate_logits, v, h0, gate_norm)
    if use_chain(m) and m == 1:  # order 1 is the m = 1 BD-LRU: (N, 2) logits as (N, 1, 2), v as (N, 1)
        return BDLRUScanFn.apply(gate_logits.unsqueeze(-2), v.unsqueeze(-1), _state_in(h0), gate_norm)
    return HLRUScanFn.apply(gate_logits, v, _state_in(h0), gate_norm)


def triton_bdlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token: the fused scan kernel launched with T = 1 (one launch, state stays fp32)."""
    if not triton_usable(v, v.shape[-1], "bdlru_step"):
        return naive_bdlru_step(gate_logits, v, state, gate_norm)
    h, new_state = BDLRUScanFn.apply(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return h.squeeze(1), new_state


def triton_hlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    if not triton_usable(v, state.shape[-1], "hlru_step"):
        return naive_hlru_step(gate_logits, v, state, gate_norm)
    y, new_state = HLRUScanFn.apply(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return y.squeeze(1), new_state
