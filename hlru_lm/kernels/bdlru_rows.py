"""Row-per-lane forward for the BD-LRU at larger m (`_rows_fwd_kernel`): each block's recurrence in time order.

The look-back tile scans (bdlru_tile.py) give a lane a whole block and compose its m x m carry map: m^3 FMA per
block-step and m^2 + m(m + 1) values per lane, which spill at m = 8 and do not fit at m = 16 (NOTES "What limits
it"). Here no maps are formed. A lane owns row i of block n:
  - it reads the row's m + 1 logits and normalises them in its registers (for 2-byte dtypes as (m + 2) / 2 32-bit
    words: a row is 2(m + 1) bytes at a 2-byte offset, so a word load serves two logits);
  - h_{t-1} of its block reaches it from the block's m lanes by m warp shuffles (tl.gather inside one warp);
  - h_t[i] = inv (sum_j e_ij h_{t-1}[j] + e_im v_t[i]): m FMA per step.
Parallelism is one lane per row, B N m lanes, each walking all T steps; so a lane keeps many bytes in flight: the
loads of the next U steps are issued before the current U steps are computed (double buffering in registers).
The backward stays with the time-parallel kernels, which read the h written here.
"""

import torch
import triton
import triton.language as tl

from .bdlru_tile import _DTYPE_IDS
from .common import NORM_IDS, _env_int, _exp_shift, _rcp, _sigmoid

ROWS_M = (4, 8, 16)
# the forward's steps per loaded group (the next group's loads are in flight while a group is computed), per m
_UNROLL = {4: 8, 8: 8, 16: 4}


def use_rows(m: int) -> bool:
    """The BD-LRU forward at m >= HLRU_ROWS_MIN_M (m in ROWS_M) runs here unless HLRU_ROWS=0."""
    return m in ROWS_M and m >= _env_int("HLRU_ROWS_MIN_M", 16) and _env_int("HLRU_ROWS", 1) == 1


@triton.jit
def _load_step(zw_ptr, v_ptr, b, t, T, N, g, ok, M: tl.constexpr, WORDS: tl.constexpr):
    """Step t's raw row data: the row's K 32-bit logit words (WORDS) or its m + 1 logits, and v_t[row]."""
    ok = (ok & (t < T)) != 0  # != 0: the interpreter takes only bool masks
    row = (b * T + t).to(tl.int64)
    raw = ()
    if WORDS:
        w0 = row * (N * (M * (M + 1) // 2)) + (g * (M + 1)) // 2
        for k in tl.static_range((M + 2) // 2):
            raw = raw + (tl.load(zw_ptr + w0 + k, mask=ok, other=0),)
    else:
        z0 = row * (N * M * (M + 1)) + g * (M + 1)
        for j in tl.static_range(M + 1):
            raw = raw + (tl.load(zw_ptr + z0 + j, mask=ok, other=0.0),)
    return raw, tl.load(v_ptr + row * (N * M) + g, mask=ok, other=0.0)


@triton.jit
def _load_group(zw_ptr, v_ptr, b, t0, T, N, g, ok, M: tl.constexpr, U: tl.constexpr, WORDS: tl.constexpr):
    group = ()
    for u in tl.static_range(U):
        group = group + (_load_step(zw_ptr, v_ptr, b, t0 + u, T, N, g, ok, M, WORDS),)
    return group


@triton.jit
def _half(w, HI: tl.constexpr, DT: tl.constexpr):
    """The low (HI = 0) or high 16 bits of the int32 words w as fp32 (DT 0: bf16, 1: fp16)."""
    if DT == 0:  # bf16: the top 16 bits of an fp32
        if HI:
            return (w & -65536).to(tl.float32, bitcast=True)
        else:
            return (w << 16).to(tl.float32, bitcast=True)
    if HI:
        bits = (w >> 16) & 65535
    else:
        bits = w & 65535
    return bits.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _row_logits(raw, odd, M: tl.constexpr, WORDS: tl.constexpr, DT: tl.constexpr):
    """The row's m + 1 logits (fp32). With WORDS, logit j is element odd + j of the words' 16-bit sequence."""
    zs = ()
    if WORDS:
        seq = ()
        for k in tl.static_range((M + 2) // 2):
            seq = seq + (_half(raw[k], False, DT), _half(raw[k], True, DT))
        for j in tl.static_range(M + 1):
            zs = zs + (tl.where(odd, seq[j + 1], seq[j]),)
    else:
        for j in tl.static_range(M + 1):
            zs = zs + (raw[j].to(tl.float32),)
    return zs


@triton.jit
def _row_step(zs, vv, h, lane0, M: tl.constexpr, NORM: tl.constexpr, FAST: tl.constexpr):
    """h_t[row] from the row's logits zs, v_t[row] and h_{t-1} (one row per lane)."""
    if NORM == 0:  # softmax: exp2 of the shifted logits, one reciprocal
        mx = zs[M]
        for j in tl.static_range(M):
            mx = tl.maximum(mx, zs[j])
    es = ()
    for j in tl.static_range(M + 1):
        if NORM == 0:
            es = es + (_exp_shift(zs[j], mx, FAST),)
        elif NORM == 1:
            es = es + (_sigmoid(zs[j], FAST),)
        elif NORM == 2:
            es = es + (tl.maximum(zs[j], 0.0),)
        else:
            es = es + (zs[j],)
    # two partial sums halve the dependent FMA chain that h_{t-1} feeds
    acc0 = es[M] * vv.to(tl.float32)
    acc1 = tl.zeros_like(acc0)
    for j in tl.static_range(M):
        hj = tl.gather(h, lane0 + j, 0)
        if j % 2 == 0:
            acc0 += es[j] * hj
        else:
            acc1 += es[j] * hj
    acc = acc0 + acc1
    if NORM == 3:
        return acc
    s = es[M]
    for j in tl.static_range(M):
        s += es[j]
    if NORM == 2:
        s += 1e-6
    return acc * _rcp(s, FAST)


@triton.jit
def _rows_fwd_kernel(
    zw_ptr,
    v_ptr,
    h0_ptr,
    h_ptr,
    final_ptr,
    T,
    N,
    NR,
    M: tl.constexpr,
    U: tl.constexpr,
    NORM: tl.constexpr,
    WORDS: tl.constexpr,
    DT: tl.constexpr,
    FAST: tl.constexpr,
):
    """One warp: 32 rows (32 / m blocks) of one batch row, all T steps. NR: row tiles per batch row."""
    pid = tl.program_id(0)
    b = pid // NR
    r = tl.arange(0, 32)
    g = (pid % NR) * 32 + r  # row n m + i of the batch row's N m rows
    ok = g < N * M
    lane0 = (r // M) * M  # the block's first lane
    odd = ((g * (M + 1)) % 2) == 1
    h = tl.load(h0_ptr + (b * N * M).to(tl.int64) + g, mask=ok, other=0.0)
    cur = _load_group(zw_ptr, v_ptr, b, 0, T, N, g, ok, M, U, WORDS)
    for t0 in range(0, T, U):
        nxt = _load_group(zw_ptr, v_ptr, b, t0 + U, T, N, g, ok, M, U, WORDS)
        for u in tl.static_range(U):
            raw, vv = cur[u]
            hn = _row_step(_row_logits(raw, odd, M, WORDS, DT), vv, h, lane0, M, NORM, FAST)
            tin = t0 + u < T
            row = (b * T + t0 + u).to(tl.int64)
            tl.store(h_ptr + row * (N * M) + g, hn.to(h_ptr.dtype.element_ty), mask=(ok & tin) != 0)
            h = tl.where(tin, hn, h)
        cur = nxt
    tl.store(final_ptr + (b * N * M).to(tl.int64) + g, h, mask=ok)


def rows_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, N, m, m + 1), v (B, T, N, m), h0 (B, N, m) fp32 -> (h (B, T, N, m), final state (B, N, m) fp32).

    Knobs: HLRU_ROWS_UNROLL (steps per loaded group, a power of two), HLRU_ROWS_WORDS (0: element loads of the
    logits), HLRU_ROWS_FAST (0: exact reciprocal and exp2 shift)."""
    bsz, seqlen, nblocks, m = v.shape
    unroll = _env_int("HLRU_ROWS_UNROLL", _UNROLL[m])
    if unroll < 1 or unroll & (unroll - 1):
        raise ValueError(f"HLRU_ROWS_UNROLL={unroll} must be a power of two")
    unroll = min(unroll, triton.next_power_of_2(seqlen))
    dt = _DTYPE_IDS.get(z.dtype, 2)
    words = dt != 2 and z.data_ptr() % 4 == 0 and _env_int("HLRU_ROWS_WORDS", 1) == 1
    zw = z.reshape(-1).view(torch.int32) if words else z
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    nr = triton.cdiv(nblocks * m, 32)
    _rows_fwd_kernel[(bsz * nr,)](
        zw, v, h0, h, final, seqlen, nblocks, nr,
        M=m, U=unroll, NORM=NORM_IDS[norm], WORDS=words, DT=dt, FAST=_env_int("HLRU_ROWS_FAST", 1) == 1,
        num_warps=1,
    )  # fmt: skip
    return h, final
