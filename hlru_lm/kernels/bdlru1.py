"""m = 1 BD-LRU (a convex-gated diagonal scan) as a slab scan: each program loads a [BT, BD] time x channel tile of
logits and v at once (many bytes in flight), normalises the 2-entry rows in registers and runs tl.associative_scan
over time; the state is carried across tiles in registers. Time chunks (chunk map = product of gates and local end
state, then a short carry pass) only when B*N is too small to fill the GPU.
Backward: reverse associative scan of lam_t = g_t + a_{t+1} lam_{t+1}, then closed-form logit gradients.
"""

import torch
import triton
import triton.language as tl

from .common import NORM_IDS, _chunk_carry_kernel, _env_int, _norm_rows, _norm_rows_bwd, num_sms


@triton.jit
def _affine_combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _gate2(z_ptr, row, n, mask, N, NORM: tl.constexpr):
    z0 = tl.load(z_ptr + row * (2 * N) + 2 * n, mask=mask, other=0.0).to(tl.float32)
    z1 = tl.load(z_ptr + row * (2 * N) + 2 * n + 1, mask=mask, other=0.0).to(tl.float32)
    pA, pa, inv = _norm_rows(z0[:, :, None], z1, NORM, 2)
    return z0, z1, tl.sum(pA, axis=2), pa, inv


@triton.jit
def _bdlru1_fwd_kernel(
    z_ptr,
    v_ptr,
    start_ptr,
    h_ptr,
    final_ptr,
    e_ptr,
    p_ptr,
    T,
    N,
    ND,
    NC,
    CL,
    BT: tl.constexpr,
    BD: tl.constexpr,
    NORM: tl.constexpr,
    MAP_ONLY: tl.constexpr,
):
    pid = tl.program_id(0)
    c = tl.program_id(1)
    b = pid // ND
    n = (pid % ND) * BD + tl.arange(0, BD)
    nmask = n < N
    tt = tl.arange(0, BT)
    t0 = c * CL
    t_end = tl.minimum(t0 + CL, T)
    sbase = (b * NC + c).to(tl.int64) * N
    if MAP_ONLY:
        h = tl.zeros([BD], dtype=tl.float32)
        ptot = tl.zeros([BD], dtype=tl.float32) + 1.0
    else:
        h = tl.load(start_ptr + sbase + n, mask=nmask, other=0.0)
    for ts in range(t0, t_end, BT):
        t = ts + tt
        mask = ((t < t_end)[:, None] & nmask[None, :]) != 0
        row = (b * T + t).to(tl.int64)[:, None]
        z0, z1, a, w, inv = _gate2(z_ptr, row, n[None, :], mask, N, NORM)
        vv = tl.load(v_ptr + row * N + n[None, :], mask=mask, other=0.0).to(tl.float32)
        a = tl.where(mask, a, 1.0)
        bb = tl.where(mask, w * vv, 0.0)
        acum, bcum = tl.associative_scan((a, bb), 0, _affine_combine)
        hs = acum * h[None, :] + bcum
        last = (tt == BT - 1)[:, None]
        if not MAP_ONLY:
            tl.store(h_ptr + row * N + n[None, :], hs.to(h_ptr.dtype.element_ty), mask=mask)
        else:
            ptot = ptot * tl.sum(tl.where(last, acum, 0.0), axis=0)
        h = tl.sum(tl.where(last, hs, 0.0), axis=0)
    if MAP_ONLY:
        tl.store(e_ptr + sbase + n, h, mask=nmask)
        tl.store(p_ptr + sbase + n, ptot, mask=nmask)
    elif c == NC - 1:
        tl.store(final_ptr + b.to(tl.int64) * N + n, h, mask=nmask)


@triton.jit
def _bdlru1_bwd_kernel(
    z_ptr,
    v_ptr,
    h_ptr,
    h0_ptr,
    g_ptr,
    carry_ptr,
    dz_ptr,
    dv_ptr,
    dh0_ptr,
    f_ptr,
    p_ptr,
    T,
    N,
    ND,
    NC,
    CL,
    BT: tl.constexpr,
    BD: tl.constexpr,
    NORM: tl.constexpr,
    MAP_ONLY: tl.constexpr,
    HAS_G: tl.constexpr,
):
    """Reverse scan over tiles of chunk c. The carry entering a chunk is lam at its end t1 (lam_T = d final state,
    with a_T := 1). MAP_ONLY: write the chunk map lam_{t0} = P lam_{t1} + f in the carry's convention, where the
    value passed to the previous chunk is a_{t0} * lam_{t0} (so P, f include the factor a_{t0})."""
    pid = tl.program_id(0)
    c = tl.program_id(1)
    b = pid // ND
    n = (pid % ND) * BD + tl.arange(0, BD)
    nmask = n < N
    tt = tl.arange(0, BT)
    t0 = c * CL
    t_end = tl.minimum(t0 + CL, T)
    n_tiles = tl.cdiv(t_end - t0, BT)
    sbase = (b * NC + c).to(tl.int64) * N
    if MAP_ONLY:
        mu = tl.zeros([BD], dtype=tl.float32)
        ptot = tl.zeros([BD], dtype=tl.float32) + 1.0
    else:
        mu = tl.load(carry_ptr + sbase + n, mask=nmask, other=0.0)  # a_{t1} lam_{t1} (or d final at the end)
        h0 = tl.load(h0_ptr + b.to(tl.int64) * N + n, mask=nmask, other=0.0)
    for k in range(0, n_tiles):
        ts = t_end - (k + 1) * BT  # tile [ts, ts + BT), may start before t0: masked
        t = ts + tt
        mask = ((t >= t0)[:, None] & nmask[None, :]) != 0
        row = (b * T + t).to(tl.int64)[:, None]
        z0, z1, a, w, inv = _gate2(z_ptr, row, n[None, :], mask, N, NORM)
        a = tl.where(mask, a, 1.0)
        if HAS_G:
            g = tl.load(g_ptr + row * N + n[None, :], mask=mask, other=0.0).to(tl.float32)
        else:
            g = tl.zeros([BT, BD], dtype=tl.float32)
        # lam_t = g_t + alpha_t lam_{t+1} with alpha_t = a_{t+1} inside the tile; the last row takes the carry mu_in
        # (= a_{t_end} lam_{t_end}) with alpha = 1. Reverse affine scan, then lam = acum * mu_in + bcum.
        smask = ((tt < BT - 1)[:, None] & ((t >= t0) & (t + 1 < t_end))[:, None] & nmask[None, :]) != 0
        _, _, a_next, _, _ = _gate2(z_ptr, row + 1, n[None, :], smask, N, NORM)
        alpha = tl.where(smask, a_next, 1.0)
        acum, bcum = tl.associative_scan((alpha, g), 0, _affine_combine, reverse=True)
        lam = acum * mu[None, :] + bcum
        first = (t == tl.maximum(ts, t0))[:, None]  # first valid row of the tile
        if MAP_ONLY:
            ptot = ptot * tl.sum(tl.where(first, a * acum, 0.0), axis=0)
        else:
            vv = tl.load(v_ptr + row * N + n[None, :], mask=mask, other=0.0).to(tl.float32)
            hmask = (mask & (t > 0)[:, None]) != 0
            hp = tl.load(h_ptr + (row - 1) * N + n[None, :], mask=hmask, other=0.0).to(tl.float32)
            hp = tl.where((t == 0)[:, None], h0[None, :], hp)
            dzA, dza = _norm_rows_bwd(
                z0[:, :, None], z1, a[:, :, None], w, inv, (lam * hp)[:, :, None], lam * vv, NORM, 2
            )
            zrow = row * (2 * N) + 2 * n[None, :]
            tl.store(dz_ptr + zrow, tl.sum(dzA, axis=2).to(dz_ptr.dtype.element_ty), mask=mask)
            tl.store(dz_ptr + zrow + 1, dza.to(dz_ptr.dtype.element_ty), mask=mask)
            tl.store(dv_ptr + row * N + n[None, :], (lam * w).to(dv_ptr.dtype.element_ty), mask=mask)
        mu = tl.sum(tl.where(first, a * lam, 0.0), axis=0)
    if MAP_ONLY:
        tl.store(f_ptr + sbase + n, mu, mask=nmask)
        tl.store(p_ptr + sbase + n, ptot, mask=nmask)
    elif c == 0:
        tl.store(dh0_ptr + b.to(tl.int64) * N + n, mu, mask=nmask)


def _cfg1(bsz, seqlen, nch, device):
    bd = min(_env_int("HLRU_SLAB_BD", 64), triton.next_power_of_2(nch))
    bt = _env_int("HLRU_SLAB_BT", 32)
    nd = triton.cdiv(nch, bd)
    target = _env_int("HLRU_TARGET_PROGRAMS", 4 * num_sms(device))
    nc = max(1, min(triton.cdiv(target, bsz * nd), triton.cdiv(seqlen, 256)))
    forced = _env_int("HLRU_CHUNK", 0)
    cl = forced if forced else triton.cdiv(seqlen, nc)
    cl = triton.cdiv(cl, bt) * bt
    return bd, bt, nd, cl, triton.cdiv(seqlen, cl)


def bdlru1_fwd(z, v, h0, norm, chunk_len=None):
    bsz, seqlen, nch, _ = v.shape
    bd, bt, nd, cl, nc = _cfg1(bsz, seqlen, nch, v.device)
    if chunk_len is not None:
        cl = triton.cdiv(chunk_len, bt) * bt
        nc = triton.cdiv(seqlen, cl)
    nid = NORM_IDS[norm]
    h = torch.empty_like(v)
    final = torch.empty(bsz, nch, 1, dtype=torch.float32, device=v.device)
    if nc == 1:
        start = h0
    else:
        e = torch.empty(bsz, nc, nch, 1, dtype=torch.float32, device=v.device)
        p = torch.empty(bsz, nc, nch, 1, 1, dtype=torch.float32, device=v.device)
        _bdlru1_fwd_kernel[(bsz * nd, nc - 1)](
            z, v, h0, h, final, e, p, seqlen, nch, nd, nc, cl, BT=bt, BD=bd, NORM=nid, MAP_ONLY=True, num_warps=4
        )
        start = torch.empty(bsz, nc, nch, 1, dtype=torch.float32, device=v.device)
        bnc = min(1024, triton.next_power_of_2(nch))
        ntc = triton.cdiv(nch, bnc)
        _chunk_carry_kernel[(bsz * ntc,)](e, p, h0, start, nch, ntc, nc, M=1, BN=bnc, REVERSE=False, num_warps=4)
    _bdlru1_fwd_kernel[(bsz * nd, nc)](
        z, v, start, h, final, h, h, seqlen, nch, nd, nc, cl, BT=bt, BD=bd, NORM=nid, MAP_ONLY=False, num_warps=4
    )
    return h, final


def bdlru1_bwd(z, v, h0, h, dh, dfinal, norm, chunk_len=None):
    bsz, seqlen, nch, _ = v.shape
    bd, bt, nd, cl, nc = _cfg1(bsz, seqlen, nch, v.device)
    if chunk_len is not None:
        cl = triton.cdiv(chunk_len, bt) * bt
        nc = triton.cdiv(seqlen, cl)
    nid = NORM_IDS[norm]
    has_g = dh is not None
    g = dh.contiguous() if has_g else v
    if dfinal is None:
        dfinal = torch.zeros(bsz, nch, 1, dtype=torch.float32, device=v.device)
    dfinal = dfinal.float().contiguous()
    dz = torch.empty_like(z)
    dv = torch.empty_like(v)
    dh0 = torch.empty(bsz, nch, 1, dtype=torch.float32, device=v.device)
    if nc == 1:
        carry = dfinal
    else:
        f = torch.empty(bsz, nc, nch, 1, dtype=torch.float32, device=v.device)
        p = torch.empty(bsz, nc, nch, 1, 1, dtype=torch.float32, device=v.device)
        _bdlru1_bwd_kernel[(bsz * nd, nc)](
            z,
            v,
            h,
            h0,
            g,
            dfinal,
            dz,
            dv,
            dh0,
            f,
            p,
            seqlen,
            nch,
            nd,
            nc,
            cl,
            BT=bt,
            BD=bd,
            NORM=nid,
            MAP_ONLY=True,
            HAS_G=has_g,
            num_warps=4,
        )
        carry = torch.empty(bsz, nc, nch, 1, dtype=torch.float32, device=v.device)
        bnc = min(1024, triton.next_power_of_2(nch))
        ntc = triton.cdiv(nch, bnc)
        _chunk_carry_kernel[(bsz * ntc,)](f, p, dfinal, carry, nch, ntc, nc, M=1, BN=bnc, REVERSE=True, num_warps=4)
    _bdlru1_bwd_kernel[(bsz * nd, nc)](
        z,
        v,
        h,
        h0,
        g,
        carry,
        dz,
        dv,
        dh0,
        dh0,
        dh0,
        seqlen,
        nch,
        nd,
        nc,
        cl,
        BT=bt,
        BD=bd,
        NORM=nid,
        MAP_ONLY=False,
        HAS_G=has_g,
        num_warps=4,
    )
    return dz, dv, dh0
