"""Fused-gate H-LRU scan (companion form, O(m) per step).

x_t = sum_{k=1..m} P_t[k-1] x_{t-k} + P_t[m] v_t; y_t = (x_t, ..., x_{t-m+1}).
The lag window lives in registers in *time-slot order*: x_s sits in slot s mod m. A step then only overwrites one slot
(no shift): the gate logits are loaded with permuted offsets so that the coefficient of each slot lines up, and y_t is
stored with permuted offsets. The backward runs the transposed companion recurrence in the same slot order.
One program per (batch, channel tile), sequential over T (no time parallelism: parallelism is B*N channels). Orders
2, 4, 8 run the two-phase tile scan of bdlru_tile.py instead (the companion matrix as a dense BD-LRU block), which is
parallel over time too; order 16, and order 8 from 8192 lanes, the lane-per-lag kernels of hlru_lags.py; order 1 the
m = 1 BD-LRU kernels. This kernel runs where none takes the call (logits of a dtype the tile kernels do not unpack),
or when the route is forced (router.py).
"""

import torch
import triton
import triton.language as tl

from .common import NORM_IDS, _norm_rows, _norm_rows_bwd, bwd_buffers


@triton.jit
def _ld_hfwd(z_ptr, v_ptr, b, T, N, t, n, slot, nmask, mask2, M: tl.constexpr):
    tm = t < T
    row = (b * T + t).to(tl.int64)
    kidx = (t - 1 - slot) & (M - 1)  # slot s holds x_{t-1-kidx}: coefficient P[kidx]
    zoff = row * (N * (M + 1)) + n[:, None] * (M + 1) + kidx[None, :]
    zl = tl.load(z_ptr + zoff, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    zv = tl.load(z_ptr + row * (N * (M + 1)) + n * (M + 1) + M, mask=(nmask & tm) != 0, other=0.0).to(tl.float32)
    vv = tl.load(v_ptr + row * N + n, mask=(nmask & tm) != 0, other=0.0).to(tl.float32)
    return zl, zv, vv, tm, row


@triton.jit
def _step_hfwd(win, zl, zv, vv, tm, row, t, y_ptr, N, n, slot, mask2, M: tl.constexpr, NORM: tl.constexpr):
    pl, pv, inv = _norm_rows(zl, zv, NORM, 1, True)
    x = tl.sum(pl * win, axis=1) + pv * vv
    win = tl.where(((slot[None, :] == (t & (M - 1))) & tm) != 0, x[:, None], win)
    kout = (t - slot) & (M - 1)  # slot s holds x_{t-kout} = y_t[kout]
    yoff = (row * N + n[:, None]) * M + kout[None, :]
    tl.store(y_ptr + yoff, win.to(y_ptr.dtype.element_ty), mask=(mask2 & tm) != 0)
    return win


@triton.jit
def _hlru_fwd_kernel(
    z_ptr,
    v_ptr,
    h0_ptr,
    y_ptr,
    final_ptr,
    T,
    N,
    NT,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // NT
    n = (pid % NT) * BN + tl.arange(0, BN)
    slot = tl.arange(0, M)
    nmask = n < N
    mask2 = nmask[:, None] & (slot[None, :] < M)
    # h0[j] = x_{-1-j} sits in slot (-1-j) mod m
    jinit = (-1 - slot) & (M - 1)
    win = tl.load(h0_ptr + (b * N + n[:, None]).to(tl.int64) * M + jinit[None, :], mask=mask2, other=0.0)
    for k0 in range(0, T, 4):  # the loads of 4 steps go out before any store of y (stores may alias loads)
        zl0, zv0, v0, tm0, r0 = _ld_hfwd(z_ptr, v_ptr, b, T, N, k0, n, slot, nmask, mask2, M)
        zl1, zv1, v1, tm1, r1 = _ld_hfwd(z_ptr, v_ptr, b, T, N, k0 + 1, n, slot, nmask, mask2, M)
        zl2, zv2, v2, tm2, r2 = _ld_hfwd(z_ptr, v_ptr, b, T, N, k0 + 2, n, slot, nmask, mask2, M)
        zl3, zv3, v3, tm3, r3 = _ld_hfwd(z_ptr, v_ptr, b, T, N, k0 + 3, n, slot, nmask, mask2, M)
        win = _step_hfwd(win, zl0, zv0, v0, tm0, r0, k0, y_ptr, N, n, slot, mask2, M, NORM)
        win = _step_hfwd(win, zl1, zv1, v1, tm1, r1, k0 + 1, y_ptr, N, n, slot, mask2, M, NORM)
        win = _step_hfwd(win, zl2, zv2, v2, tm2, r2, k0 + 2, y_ptr, N, n, slot, mask2, M, NORM)
        win = _step_hfwd(win, zl3, zv3, v3, tm3, r3, k0 + 3, y_ptr, N, n, slot, mask2, M, NORM)
    jfin = (T - 1 - slot) & (M - 1)
    tl.store(final_ptr + (b * N + n[:, None]).to(tl.int64) * M + jfin[None, :], win, mask=mask2)


@triton.jit
def _hlru_bwd_kernel(
    z_ptr,
    v_ptr,
    y_ptr,
    h0_ptr,
    g_ptr,
    dfinal_ptr,
    dz_ptr,
    dv_ptr,
    dh0_ptr,
    T,
    N,
    NT,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    HAS_G: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // NT
    n = (pid % NT) * BN + tl.arange(0, BN)
    slot = tl.arange(0, M)
    nmask = n < N
    mask2 = nmask[:, None] & (slot[None, :] < M)
    sbase = (b * N + n[:, None]).to(tl.int64) * M
    # W[slot] = adjoint of the x that lives in that slot; starts as dL/d final state
    W = tl.load(dfinal_ptr + sbase + ((T - 1 - slot) & (M - 1))[None, :], mask=mask2, other=0.0)
    for k0 in range(0, T, UNROLL):
        for kk in tl.static_range(UNROLL):
            t = T - 1 - k0 - kk
            tm = t >= 0
            row = (b * T + t).to(tl.int64)
            if HAS_G:
                jg = (t - slot) & (M - 1)
                g = tl.load(g_ptr + (row * N + n[:, None]) * M + jg[None, :], mask=(mask2 & tm) != 0, other=0.0)
                W = W + g.to(tl.float32)
            cur = slot[None, :] == (t & (M - 1))
            lam = tl.sum(tl.where(cur, W, 0.0), axis=1)  # dL/dx_t
            kidx = (t - 1 - slot) & (M - 1)
            zoff = row * (N * (M + 1)) + n[:, None] * (M + 1) + kidx[None, :]
            zvoff = row * (N * (M + 1)) + n * (M + 1) + M
            zl = tl.load(z_ptr + zoff, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
            zv = tl.load(z_ptr + zvoff, mask=(nmask & tm) != 0, other=0.0).to(tl.float32)
            vv = tl.load(v_ptr + row * N + n, mask=(nmask & tm) != 0, other=0.0).to(tl.float32)
            # lags x_{t-1-kidx}: y_{t-1}[kidx], or h0[kidx] at t = 0
            xl = tl.load(
                y_ptr + ((row - 1) * N + n[:, None]) * M + kidx[None, :], mask=(mask2 & tm & (t > 0)) != 0, other=0.0
            )
            xh = tl.load(h0_ptr + sbase + kidx[None, :], mask=(mask2 & tm & (t == 0)) != 0, other=0.0)
            xl = tl.where(t > 0, xl.to(tl.float32), xh)
            pl, pv, inv = _norm_rows(zl, zv, NORM, 1, True)
            dpl = lam[:, None] * xl
            dpv = lam * vv
            dzl, dzv = _norm_rows_bwd(zl, zv, pl, pv, inv, dpl, dpv, NORM, 1, True)
            tl.store(dz_ptr + zoff, dzl.to(dz_ptr.dtype.element_ty), mask=(mask2 & tm) != 0)
            tl.store(dz_ptr + zvoff, dzv.to(dz_ptr.dtype.element_ty), mask=(nmask & tm) != 0)
            tl.store(dv_ptr + row * N + n, (lam * pv).to(dv_ptr.dtype.element_ty), mask=(nmask & tm) != 0)
            W_new = tl.where(cur, 0.0, W) + pl * lam[:, None]
            W = tl.where(tm, W_new, W)
    # W[slot] is now dL/dx_s for s = -1..-m: h0[j] = x_{-1-j}
    tl.store(dh0_ptr + sbase + ((-1 - slot) & (M - 1))[None, :], W, mask=mask2)


def _cfg(nch: int, m: int, bwd: bool):
    bn = max(1, min(triton.next_power_of_2(nch), (128 if bwd else 256) // max(1, m // 4)))
    warps = 4 if bn * m >= 512 else (2 if bn * m >= 128 else 1)
    return bn, triton.cdiv(nch, bn), warps


def seq_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    bn, nt, warps = _cfg(nch, m, False)
    y = torch.empty(bsz, seqlen, nch, m, dtype=v.dtype, device=v.device)
    final = torch.empty(bsz, nch, m, dtype=torch.float32, device=v.device)
    _hlru_fwd_kernel[(bsz * nt,)](
        z, v, h0, y, final, seqlen, nch, nt, M=m, BN=bn, NORM=NORM_IDS[norm], UNROLL=4, num_warps=warps
    )
    return y, final


def seq_bwd(z, v, h0, y, dy, dfinal, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    bn, nt, warps = _cfg(nch, m, True)
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dy, dfinal, (bsz, nch, m))
    _hlru_bwd_kernel[(bsz * nt,)](
        z,
        v,
        y,
        h0,
        g,
        dfinal,
        dz,
        dv,
        dh0,
        seqlen,
        nch,
        nt,
        M=m,
        BN=bn,
        NORM=NORM_IDS[norm],
        UNROLL=4,
        HAS_G=has_g,
        num_warps=warps,
    )
    return dz, dv, dh0
