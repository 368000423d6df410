"""Fused-gate Triton kernels for the BD-LRU / H-LRU scans (forward, backward by recomputation, decode step).

BD-LRU at m = 1 (and H-LRU of order 1): look-back tile scans with two channels per lane (diag_tile.py); the BD-LRU
forward at m = 2: the single-pass look-back tile scan (bdlru_chain.py); BD-LRU at m = 4 (and at m = 8 below B N m =
8192 lanes), the m = 2 backward and H-LRU of order 2, 4 (and 8 below 8192 lanes; companion form): the two-phase
look-back tile scan (bdlru_tile.py); BD-LRU at m = 16, and at m = 8 from 8192 lanes: a row per lane (two at m = 16),
in time order (bdlru_rows.py); H-LRU of order 16, and 8 from 8192 lanes: a lane per lag, in time order
(hlru_lags.py).

The scans are registered as opaque custom ops (``hlru::bdlru_scan``, ``hlru::hlru_scan`` and their backwards) with
fake implementations and autograd formulas: ``torch.compile(..., fullgraph=True, dynamic=True)`` traces a model
through them at any B, T without reaching into the Triton launches. Eager calls take a plain autograd.Function over
the same kernels (the custom ops' dispatch layers cost host time that bounds small eager calls).

Entry points follow the hlru_lm.ops contract: f(gate_logits, v, h0, gate_norm) -> (h_or_y, final_state), with h0 a
(B, N, m) tensor. Unsupported m (not in SUPPORTED_M), float64 inputs, and CPU tensors outside TRITON_INTERPRET=1 fall
back to the torch path (hlru_lm.ops) with a one-time warning.
"""

import torch

from ..ops import chunk_bdlru_scan, chunk_hlru_scan, naive_bdlru_step, naive_hlru_step
from .bdlru import bdlru_backward, bdlru_forward
from .bdlru_chain import use_chain
from .common import SUPPORTED_M, triton_usable
from .hlru import hlru_backward, hlru_forward

__all__ = ["SUPPORTED_M", "triton_bdlru_scan", "triton_bdlru_step", "triton_hlru_scan", "triton_hlru_step"]


def _final_like(h0: torch.Tensor) -> torch.Tensor:
    return h0.new_empty(h0.shape, dtype=torch.float32)


@torch.library.custom_op("hlru::bdlru_scan", mutates_args=())
def _bdlru_scan(
    z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return bdlru_forward(z.contiguous(), v.contiguous(), h0.contiguous(), gate_norm)


@_bdlru_scan.register_fake
def _(z, v, h0, gate_norm):
    return torch.empty_like(v, memory_format=torch.contiguous_format), _final_like(h0)


@torch.library.custom_op("hlru::bdlru_scan_backward", mutates_args=())
def _bdlru_scan_backward(
    z: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor,
    h: torch.Tensor,
    dh: torch.Tensor | None,
    dfinal: torch.Tensor | None,
    gate_norm: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return bdlru_backward(z.contiguous(), v.contiguous(), h0.contiguous(), h, dh, dfinal, gate_norm)


@_bdlru_scan_backward.register_fake
def _(z, v, h0, h, dh, dfinal, gate_norm):
    return torch.empty_like(z, memory_format=torch.contiguous_format), torch.empty_like(v), _final_like(h0)


def _hlru_scan_impl(z, v, h0, gate_norm: str):
    if h0.shape[-1] == 1 and use_chain(1):  # order 1 is the m = 1 BD-LRU: logits (N, 2) as (N, 1, 2), v as (N, 1)
        return bdlru_forward(z.unsqueeze(-2), v.unsqueeze(-1), h0, gate_norm)
    return hlru_forward(z, v, h0, gate_norm)


def _hlru_scan_backward_impl(z, v, h0, y, dy, dfinal, gate_norm: str):
    if h0.shape[-1] == 1 and use_chain(1):
        dz, dv, dh0 = bdlru_backward(z.unsqueeze(-2), v.unsqueeze(-1), h0, y, dy, dfinal, gate_norm)
        return dz.squeeze(-2), dv.squeeze(-1), dh0
    return hlru_backward(z, v, h0, y, dy, dfinal, gate_norm)


@torch.library.custom_op("hlru::hlru_scan", mutates_args=())
def _hlru_scan(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    return _hlru_scan_impl(z.contiguous(), v.contiguous(), h0.contiguous(), gate_norm)


@_hlru_scan.register_fake
def _(z, v, h0, gate_norm):
    return v.new_empty((*v.shape, h0.shape[-1])), _final_like(h0)


@torch.library.custom_op("hlru::hlru_scan_backward", mutates_args=())
def _hlru_scan_backward(
    z: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor,
    y: torch.Tensor,
    dy: torch.Tensor | None,
    dfinal: torch.Tensor | None,
    gate_norm: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _hlru_scan_backward_impl(z.contiguous(), v.contiguous(), h0.contiguous(), y, dy, dfinal, gate_norm)


@_hlru_scan_backward.register_fake
def _(z, v, h0, y, dy, dfinal, gate_norm):
    return torch.empty_like(z, memory_format=torch.contiguous_format), torch.empty_like(v), _final_like(h0)


def _setup(ctx, inputs, output):
    z, v, h0, gate_norm = inputs
    ctx.save_for_backward(z, v, h0, output[0])
    ctx.gate_norm = gate_norm


def _bdlru_grad(ctx, dh, dfinal):
    dz, dv, dh0 = _bdlru_scan_backward(*ctx.saved_tensors, dh, dfinal, ctx.gate_norm)
    return dz, dv, dh0, None


def _hlru_grad(ctx, dy, dfinal):
    dz, dv, dh0 = _hlru_scan_backward(*ctx.saved_tensors, dy, dfinal, ctx.gate_norm)
    return dz, dv, dh0, None


_bdlru_scan.register_autograd(_bdlru_grad, setup_context=_setup)
_hlru_scan.register_autograd(_hlru_grad, setup_context=_setup)


class _EagerScan(torch.autograd.Function):
    """The same kernels without the custom-op dispatch, for eager calls: the op's Python layers cost ~0.3 ms of host
    time per forward + backward, which bounds small eager calls (an m = 1 fwd + bwd at B=8 T=8192 N=1536 went from
    0.75 to 1.10 ms). Under torch.compile the custom ops above run instead."""

    @staticmethod
    def forward(ctx, z, v, h0, gate_norm, forward, backward):
        z, v, h0 = z.contiguous(), v.contiguous(), h0.contiguous()
        out, final = forward(z, v, h0, gate_norm)
        ctx.save_for_backward(z, v, h0, out)
        ctx.gate_norm, ctx.backward_fn = gate_norm, backward
        return out, final

    @staticmethod
    def backward(ctx, dout, dfinal):
        dz, dv, dh0 = ctx.backward_fn(*ctx.saved_tensors, dout, dfinal, ctx.gate_norm)
        return dz, dv, dh0, None, None, None


def _bdlru(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return _bdlru_scan(z, v, h0, gate_norm)
    return _EagerScan.apply(z, v, h0, gate_norm, bdlru_forward, bdlru_backward)


def _hlru(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return _hlru_scan(z, v, h0, gate_norm)
    return _EagerScan.apply(z, v, h0, gate_norm, _hlru_scan_impl, _hlru_scan_backward_impl)


def _state_in(h0: torch.Tensor) -> torch.Tensor:
    return h0.float().contiguous()


def triton_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    if not triton_usable(v, v.shape[-1], "bdlru_scan"):
        return chunk_bdlru_scan(gate_logits, v, h0, gate_norm)
    return _bdlru(gate_logits, v, _state_in(h0), gate_norm)


def triton_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    if not triton_usable(v, h0.shape[-1], "hlru_scan"):
        return chunk_hlru_scan(gate_logits, v, h0, gate_norm)
    return _hlru(gate_logits, v, _state_in(h0), gate_norm)


def triton_bdlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token: the fused scan kernel launched with T = 1 (one launch, state stays fp32)."""
    if not triton_usable(v, v.shape[-1], "bdlru_step"):
        return naive_bdlru_step(gate_logits, v, state, gate_norm)
    h, new_state = _bdlru(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return h.squeeze(1), new_state


def triton_hlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    if not triton_usable(v, state.shape[-1], "hlru_step"):
        return naive_hlru_step(gate_logits, v, state, gate_norm)
    y, new_state = _hlru(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return y.squeeze(1), new_state
