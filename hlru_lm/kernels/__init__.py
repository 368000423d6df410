"""Fused-gate Triton kernels for the BD-LRU / H-LRU scans (forward, backward by recomputation, decode step).

Layout (kernel files by role; shared pieces in common.py, none imported from another family):
  router.py         select(): the only place a kernel is chosen (the table of routes is in its docstring)
  config.py         launch settings as data (measured defaults) and the launch_settings override
  common.py         word packing, gate normalisation and its adjoint, the decoupled look-back, shuffles, asm helpers
  diag_tile.py      m = 1 (and H-LRU order 1): look-back tile scans with two channels per lane (diag_raw, diag_tile)
  bdlru_chain.py    the m = 2 forward: single-pass look-back tile scan (bdlru_chain)
  bdlru_tile.py     m = 4, m = 8 below 8192 lanes, the m = 2 backward, H-LRU orders 2, 4 (8 below 8192 lanes) in
                    companion form: two-phase look-back tile scan (bdlru_tile, hlru_tile)
  bdlru_rows.py     m = 16, and m = 8 from 8192 lanes: a row per lane in time order (bdlru_rows)
  hlru_lags.py      H-LRU order 16, and 8 from 8192 lanes: a lane per lag in time order (hlru_lags)
  bdlru_generic.py  the chunked scan for any m, for logits the tile kernels cannot read as words (bdlru_generic)
  hlru_seq.py       the sequential H-LRU kernel, for logits the tile kernels cannot unpack (hlru_seq)

The scans are registered as opaque custom ops (``hlru::bdlru_scan``, ``hlru::hlru_scan`` and their backwards) with
fake implementations and autograd formulas: ``torch.compile(..., fullgraph=True, dynamic=True)`` traces a model
through them at any B, T without reaching into the Triton launches. Eager calls take a plain autograd.Function over
the same kernels (the custom ops' dispatch layers cost host time that bounds small eager calls).

Entry points follow the hlru_lm.ops contract: f(gate_logits, v, h0, gate_norm) -> (h_or_y, final_state), with h0 a
(B, N, m) tensor. They assume a call the kernels take (m in SUPPORTED_M, no float64, CUDA tensors or
TRITON_INTERPRET=1): hlru_lm.ops decides the torch fallback before calling them.
"""

from collections.abc import Callable
from functools import partial

import torch

from .bdlru_chain import bdlru_chain_bwd, bdlru_chain_fwd
from .bdlru_generic import generic_bwd, generic_fwd
from .bdlru_rows import rows_bwd, rows_fwd
from .bdlru_tile import bdlru_tile_bwd, bdlru_tile_fwd, hlru_tile_bwd, hlru_tile_fwd, tile_words
from .common import _DTYPE_IDS, INTERPRETED, SUPPORTED_M
from .config import launch_settings
from .diag_tile import diag_bwd, diag_fwd, raw_words
from .hlru_lags import lags_bwd, lags_fwd
from .hlru_seq import seq_bwd, seq_fwd
from .router import ROUTES, select

__all__ = [
    "INTERPRETED",
    "KERNELS",
    "ROUTES",
    "SUPPORTED_M",
    "launch_settings",
    "select",
    "triton_bdlru_scan",
    "triton_bdlru_step",
    "triton_hlru_scan",
    "triton_hlru_step",
]

# route -> (forward, backward). Looked up at each call, so tests can wrap an entry to see which kernels ran.
KERNELS: dict[str, tuple[Callable, Callable]] = {
    "diag_raw": (partial(diag_fwd, raw=True), partial(diag_bwd, raw=True)),
    "diag_tile": (diag_fwd, diag_bwd),
    "bdlru_chain": (bdlru_chain_fwd, bdlru_chain_bwd),
    "bdlru_tile": (bdlru_tile_fwd, bdlru_tile_bwd),
    "bdlru_rows": (rows_fwd, rows_bwd),
    "bdlru_generic": (generic_fwd, generic_bwd),
    "hlru_tile": (hlru_tile_fwd, hlru_tile_bwd),
    "hlru_lags": (lags_fwd, lags_bwd),
    "hlru_seq": (seq_fwd, seq_bwd),
}


def _bdlru_route(z: torch.Tensor, v: torch.Tensor, direction: str, *more: torch.Tensor) -> str:
    m = v.shape[-1]
    raw = m == 1 and raw_words(z, v, *more)
    return select("bdlru", m, direction, v.shape[0] * v.shape[2] * m, tile_words(z, m), raw)


def bdlru_forward(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, final) of the routed forward kernel; z, v, h0 contiguous."""
    return KERNELS[_bdlru_route(z, v, "fwd")][0](z, v, h0, norm)


def bdlru_backward(z, v, h0, h, dh, dfinal, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dz, dv, dh0) of the routed backward kernel from the forward's inputs and output h (every backward kernel
    takes these, whichever kernel ran forward); dh or dfinal may be None."""
    dh = None if dh is None else dh.contiguous()
    route = _bdlru_route(z, v, "bwd", h, v if dh is None else dh)
    return KERNELS[route][1](z, v, h0, h, dh, dfinal, norm)


def _hlru_route(z: torch.Tensor, v: torch.Tensor, m: int, direction: str, *more: torch.Tensor) -> str:
    if m == 1:  # order 1 is the m = 1 BD-LRU: the raw-word check on the (N, 1, 2) view
        raw = raw_words(z.unsqueeze(-2), v.unsqueeze(-1), *more)
    else:
        raw = False
    return select("hlru", m, direction, v.shape[0] * v.shape[2] * m, z.dtype in _DTYPE_IDS, raw)


def hlru_forward(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, final) of the routed forward kernel; z, v, h0 contiguous. Order 1 on a BD-LRU route: logits (N, 2) as
    (N, 1, 2), v as (N, 1)."""
    m = h0.shape[-1]
    route = _hlru_route(z, v, m, "fwd")
    if route.startswith("hlru_"):
        return KERNELS[route][0](z, v, h0, norm)
    return KERNELS[route][0](z.unsqueeze(-2), v.unsqueeze(-1), h0, norm)


def hlru_backward(z, v, h0, y, dy, dfinal, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dz, dv, dh0) of the routed backward kernel."""
    m = h0.shape[-1]
    dy = None if dy is None else dy.contiguous()
    route = _hlru_route(z, v, m, "bwd", *((y, v.unsqueeze(-1) if dy is None else dy) if m == 1 else ()))
    if route.startswith("hlru_"):
        return KERNELS[route][1](z, v, h0, y, dy, dfinal, norm)
    dz, dv, dh0 = KERNELS[route][1](z.unsqueeze(-2), v.unsqueeze(-1), h0, y, dy, dfinal, norm)
    return dz.squeeze(-2), dv.squeeze(-1), dh0


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


@torch.library.custom_op("hlru::hlru_scan", mutates_args=())
def _hlru_scan(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    return hlru_forward(z.contiguous(), v.contiguous(), h0.contiguous(), gate_norm)


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
    return hlru_backward(z.contiguous(), v.contiguous(), h0.contiguous(), y, dy, dfinal, gate_norm)


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
        if torch.is_grad_enabled():  # create_graph=True: the kernels' gradients would carry no graph (silently)
            raise RuntimeError(
                "second derivatives (create_graph=True) through the Triton scans are not supported: their gradients "
                "come from kernels; use the torch backend (backend='torch', or config.scan_backend = 'torch')"
            )
        dz, dv, dh0 = ctx.backward_fn(*ctx.saved_tensors, dout, dfinal, ctx.gate_norm)
        return dz, dv, dh0, None, None, None


def _bdlru(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return _bdlru_scan(z, v, h0, gate_norm)
    return _EagerScan.apply(z, v, h0, gate_norm, bdlru_forward, bdlru_backward)


def _hlru(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    if torch.compiler.is_compiling():
        return _hlru_scan(z, v, h0, gate_norm)
    return _EagerScan.apply(z, v, h0, gate_norm, hlru_forward, hlru_backward)


def _state_in(h0: torch.Tensor) -> torch.Tensor:
    return h0.float().contiguous()


def triton_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    return _bdlru(gate_logits, v, _state_in(h0), gate_norm)


def triton_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    return _hlru(gate_logits, v, _state_in(h0), gate_norm)


def triton_bdlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding token: the fused scan kernel launched with T = 1 (one launch, state stays fp32)."""
    h, new_state = _bdlru(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return h.squeeze(1), new_state


def triton_hlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    y, new_state = _hlru(gate_logits.unsqueeze(1), v.unsqueeze(1), _state_in(state), gate_norm)
    return y.squeeze(1), new_state
