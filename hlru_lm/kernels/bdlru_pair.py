"""BD-LRU forward at m = 2 with two blocks per lane: bdlru_chain.py's single-pass look-back scan, read in 8-byte words.

bdlru_chain.py gives each lane one m = 2 block and reads its six 2-byte logits as three 32-bit words, v and h as one
(NOTES v17). Here a lane owns the adjacent blocks 2p, 2p + 1: their twelve logits are 24 contiguous bytes, read as
three 8-byte loads, and their v and h as one 8-byte load and store each, so a step moves twice the bytes per load
instruction. The two blocks sit on a trailing axis of size 2 ([BP, BT, 2] tensors: lanes and warps on the pairs,
time in each thread's registers; with time on axis 0 Triton's layout would put lanes on it), so the normalisation,
the scan over time and the look-back (bdlru_chain._lookback2, its planar maps now one 8-byte access per lane and
entry) run on both blocks at once.
Needs N even, 2-byte logits and v of one dtype, 4-byte aligned; bdlru_chain.py's forward takes every other call.
"""

import torch
import triton
import triton.language as tl

from .bdlru_chain import _comb2, _finish, _lookback2, _lookback_buffers, _phi3, _tile
from .common import _DTYPE_IDS, NORM_IDS, _env_int, _half, _pack

# (BT, warps, register cap) of the pair forward (NOTES v18)
_DEFAULTS = (8, 2, 0)


def use_pair(z: torch.Tensor, v: torch.Tensor) -> bool:
    """The m = 2 forward runs here unless HLRU_PAIR=0, for logits it can read as words: N even, bf16 / fp16 z and v
    of one dtype, both 4-byte aligned (contiguous, as BDLRUScanFn passes them)."""
    if _env_int("HLRU_PAIR", 0) != 1 or v.shape[-1] != 2 or v.shape[-2] % 2 != 0:
        return False
    return z.element_size() == 2 and v.dtype == z.dtype and z.data_ptr() % 4 == 0 and v.data_ptr() % 4 == 0


@triton.jit
def _last(x, last):
    """The [BP, 2] entries of the tile's last time step (last: [1, BT, 1], one true entry)."""
    return tl.sum(tl.where(last, x, 0.0), axis=1)


@triton.jit
def _bdlru_pair_fwd_kernel(
    z_ptr,
    v_ptr,
    h0_ptr,
    h_ptr,
    final_ptr,
    flag_ptr,
    agg_ptr,
    inc_ptr,
    B,
    T,
    N,
    NT,
    NTT,
    BT: tl.constexpr,
    BP: tl.constexpr,
    NORM: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    DT: tl.constexpr,
):
    """One program: BP pairs of blocks x BT steps of one batch row. A token's logits are 3 N words (block n: words
    3n .. 3n + 2 = (z00, z01), (z02, z10), (z11, z12)), its v and h N words (block n: word n)."""
    k, b, nt = _tile(B, NT, NTT, False)
    tt = tl.arange(0, BT)
    jj = tl.arange(0, 2)
    p = nt * BP + tl.arange(0, BP)
    n = 2 * p[:, None] + jj[None, :]  # [BP, 2]: the lane's two blocks
    nmask = n < N
    mask = nmask[:, None, :] & ((k * BT + tt) < T)[None, :, None]
    row0 = (b * T + k * BT).to(tl.int64) * N  # (token, block) index of the tile's origin
    tok = n[:, None, :] + (tt * N)[None, :, None]  # block offsets from it, [BP, BT, 2]
    # words 6p + 2r + j, r = 0, 1, 2: the pair's 24 logit bytes as three 8-byte loads
    zo = (6 * p)[:, None, None] + (tt * 3 * N)[None, :, None] + jj[None, None, :]
    zw = z_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 * 3 + zo
    w0, w1 = tl.split(tl.load(zw, mask=mask, other=0))
    w2, w3 = tl.split(tl.load(zw + 2, mask=mask, other=0))
    w4, w5 = tl.split(tl.load(zw + 4, mask=mask, other=0))
    x0 = tl.join(w0, w3)  # block 2p: w0 w1 w2, block 2p + 1: w3 w4 w5
    x1 = tl.join(w1, w4)
    x2 = tl.join(w2, w5)
    p00, p01, q0, _ = _phi3(_half(x0, 0, DT), _half(x0, 1, DT), _half(x1, 0, DT), NORM)
    p10, p11, q1, _ = _phi3(_half(x1, 1, DT), _half(x2, 0, DT), _half(x2, 1, DT), NORM)
    vw = tl.load(v_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + tok, mask=mask, other=0)
    p00 = tl.where(mask, p00, 1.0)  # identity maps past T keep the scan's last row = the tile's map
    p01 = tl.where(mask, p01, 0.0)
    p10 = tl.where(mask, p10, 0.0)
    p11 = tl.where(mask, p11, 1.0)
    e0 = tl.where(mask, q0 * _half(vw, 0, DT), 0.0)
    e1 = tl.where(mask, q1 * _half(vw, 1, DT), 0.0)
    c00, c01, c10, c11, ce0, ce1 = tl.associative_scan((p00, p01, p10, p11, e0, e1), 1, _comb2)
    last = (tt == BT - 1)[None, :, None]
    m00 = _last(c00, last)
    m01 = _last(c01, last)
    m10 = _last(c10, last)
    m11 = _last(c11, last)
    me0 = _last(ce0, last)
    me1 = _last(ce1, last)
    sbase = (b * N).to(tl.int64) * 2 + n * 2  # state (b, n, 0)
    if k == 0:
        s0 = tl.load(h0_ptr + sbase, mask=nmask, other=0.0)
        s1 = tl.load(h0_ptr + sbase + 1, mask=nmask, other=0.0)
    else:
        s0, s1 = _lookback2(flag_ptr, agg_ptr, inc_ptr, k, -1, B, b, N, n, nmask, NT, nt, m00, m01, m10, m11, me0, me1)
    end0 = m00 * s0 + m01 * s1 + me0
    end1 = m10 * s0 + m11 * s1 + me1
    if k == NTT - 1:
        tl.store(final_ptr + sbase, end0, mask=nmask)
        tl.store(final_ptr + sbase + 1, end1, mask=nmask)
    else:
        _finish(flag_ptr, inc_ptr, k, 0, B, b, N, n, nmask, NT, nt, 2, end0, end1, AGG_ONLY)
    h0 = c00 * s0[:, None, :] + c01 * s1[:, None, :] + ce0
    h1 = c10 * s0[:, None, :] + c11 * s1[:, None, :] + ce1
    tl.store(h_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + tok, _pack(h0, h1, DT), mask=mask)


def _launch_args(seqlen: int, nblocks: int) -> tuple[dict, int, int]:
    """Constexprs and launch options (HLRU_PAIR_BT, HLRU_PAIR_WARPS, HLRU_PAIR_MAXNREG), (pair tiles, time tiles)."""
    bt, warps, maxnreg = _DEFAULTS
    bt = _env_int("HLRU_PAIR_BT", bt)
    warps = _env_int("HLRU_PAIR_WARPS", warps)
    maxnreg = _env_int("HLRU_PAIR_MAXNREG", maxnreg)
    for name, val in dict(BT=bt, WARPS=warps).items():
        if val < 1 or val & (val - 1):
            raise ValueError(f"HLRU_PAIR_{name}={val} must be a power of two")
    if maxnreg != 0 and not 32 <= maxnreg <= 255:
        raise ValueError(f"HLRU_PAIR_MAXNREG={maxnreg} must be 0 (no cap) or a register count from 32 to 255")
    bt = min(bt, max(2, triton.next_power_of_2(seqlen)))
    warps = max(1, min(warps, triton.next_power_of_2(nblocks // 2) // 32))
    kw = dict(BT=bt, BP=32 * warps, num_warps=warps, AGG_ONLY=_env_int("HLRU_DEBUG_AGG_ONLY", 0))
    if maxnreg:
        kw["maxnreg"] = maxnreg
    return kw, triton.cdiv(nblocks // 2, 32 * warps), triton.cdiv(seqlen, bt)


def pair_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, N, 2, 3), v (B, T, N, 2) bf16 / fp16, N even, h0 (B, N, 2) fp32 -> (h like v, final state fp32)."""
    bsz, seqlen, nblocks, m = v.shape
    kw, nt, ntt = _launch_args(seqlen, nblocks)
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    flags, agg, inc = _lookback_buffers(bsz, ntt, nblocks, nt, m, v.device)
    _bdlru_pair_fwd_kernel[(ntt * bsz * nt,)](
        z, v, h0, h, final, flags, agg, inc, bsz, seqlen, nblocks, nt, ntt, NORM=NORM_IDS[norm], DT=_DTYPE_IDS[z.dtype],
        **kw,
    )  # fmt: skip
    return h, final
