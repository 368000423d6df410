"""Lane-per-lag kernels for the H-LRU of order m in companion form, forward (`_lags_fwd_kernel`) and backward
(`_lags_bwd_kernel`); the default at order 16, and at order 8 from B N m = 8192 lanes (router.py). v17a (B=8
T=8192 D=1536, fwd / fwd+bwd ms) measured order 16 at 1.07 / 2.18 against the sequential kernel's 6.41 / 22.3, order
8 at 0.79 / 1.90 against the tile kernel's 1.08 / 2.51, but orders 4 and 2 at 0.76 / 1.82 and 0.87 / 1.79 against
0.55 / 1.21 and 0.38 / 0.97; below 8192 lanes too few warps are resident to beat the time-parallel tile kernel.

The other H-LRU kernels give a lane a whole channel: the sequential kernel (hlru_seq.py) walks T with B N lanes (768 at
B=8 N=96, so 24 warps on the GPU), and the tile kernels (bdlru_tile.py) treat the companion matrix as a dense block.
Here lane j of a channel holds lag j of its state, s[j] = x_{t-1-j}, as bdlru_rows.py gives a lane a row:
  - it reads logit j of its channel (every lane also reads logit m and v_t, shared by the channel's lanes) and
    normalises with the channel's max and sum, combined over the m lanes by xor shuffles;
  - x_t = inv (sum_j e_j s[j] + e_m v_t): one FMA per lane, then log2 m shuffle-adds;
  - the shift s[j] <- s[j - 1] is one shuffle of the previous state, off the x_t chain; s[0] <- x_t;
  - y_t[j] = s[j] leaves as one 2-byte store per lane, m contiguous per channel.
The backward is the transposed companion recurrence: mu_t = dy_t + c_t, c_{t-1}[j] = p_t[j] mu_t[0] + mu_t[j + 1]
(two shuffles per step), with s_{t-1}[j] = y_{t-1}[j] read back, so dz needs no recomputed chain. Parallelism is
B N m lanes, each walking all T steps; loads are grouped U steps ahead, L2 prefetches PF steps further, as in
bdlru_rows.py.
"""

import torch
import triton
import triton.language as tl

from .common import NORM_IDS, RELU_EPS, _butterfly, _exp_shift, _pf, _rcp, _sig_l1, _sig_l1_dz, bwd_buffers
from .config import settings


@triton.jit
def _lanes(pid, NC, N, T, step, M: tl.constexpr):
    """A program's 32 lanes: 32 / m channels c of one batch row, lane j of a channel holding lag j. Returns (lane r,
    lag j, valid, the channel's first lane, the (b, step, c) offset into v and the (b, c) offset into the state
    tensors)."""
    b = pid // NC
    r = tl.arange(0, 32)
    c = (pid % NC) * (32 // M) + r // M
    row = (b * T + step).to(tl.int64)
    return r, r % M, c < N, (r // M) * M, row * N + c, (b * N + c).to(tl.int64) * M


@triton.jit
def _lag_phi(zj, zm, r, M: tl.constexpr, NORM: tl.constexpr, FAST: tl.constexpr):
    """The unnormalised phi terms e_j (this lane's logit) and e_m (the channel's last, on every lane) and the
    reciprocal sum over the channel (phi = e inv)."""
    if NORM <= 1:  # softmax, sigmoid_l1: the channel's max over its lanes (logit m is on every lane)
        mx = _butterfly(tl.maximum(zj, zm), r, 1, M, True)
    if NORM == 0:
        ej = _exp_shift(zj, mx, FAST)
        em = _exp_shift(zm, mx, FAST)
    elif NORM == 1:
        ej = _sig_l1(zj, mx, FAST)
        em = _sig_l1(zm, mx, FAST)
    elif NORM == 2:
        ej = tl.maximum(zj, 0.0)
        em = tl.maximum(zm, 0.0)
    else:
        ej = zj
        em = zm
    if NORM == 3:
        inv = tl.full(zj.shape, 1.0, tl.float32)
    elif NORM == 2:
        inv = _rcp(_butterfly(ej, r, 1, M, False) + em + RELU_EPS, FAST)
    else:
        inv = _rcp(_butterfly(ej, r, 1, M, False) + em, FAST)
    return ej, em, inv


@triton.jit
def _load_group(zq, zmq, vq, SZ, SV, t0, T, ok, U: tl.constexpr):
    """Steps t0 .. t0 + U - 1 as U (the lane's logit, the channel's logit m, v_t); zq, zmq, vq point at step t0 and
    a step is SZ, SV further."""
    group = ()
    for u in tl.static_range(U):
        okt = (ok & (t0 + u < T)) != 0
        zj = tl.load(zq + u * SZ, mask=okt, other=0.0)
        zm = tl.load(zmq + u * SZ, mask=okt, other=0.0)
        group = group + ((zj, zm, tl.load(vq + u * SV, mask=okt, other=0.0)),)
    return group


@triton.jit
def _load_group_bwd(zq, zmq, vq, yq, gq, SZ, SV, t0, ok, M: tl.constexpr, U: tl.constexpr, HAS_G: tl.constexpr):
    """Steps t0, t0 - 1, ..., t0 - U + 1 as U (the lane's logit, logit m, v_t, y_{t-1}[j], dy_t[j]) (y_{-1}: not
    loaded, the kernel takes h0); the pointers are at step t0."""
    group = ()
    for u in tl.static_range(U):
        t = t0 - u
        okt = (ok & (t >= 0)) != 0
        zj = tl.load(zq - u * SZ, mask=okt, other=0.0)
        zm = tl.load(zmq - u * SZ, mask=okt, other=0.0)
        vv = tl.load(vq - u * SV, mask=okt, other=0.0)
        yp = tl.load(yq - (u + 1) * (SV * M), mask=(okt & (t >= 1)) != 0, other=0.0)
        if HAS_G:
            gg = tl.load(gq - u * (SV * M), mask=okt, other=0.0)
        else:
            gg = tl.zeros_like(yp)
        group = group + ((zj, zm, vv, yp, gg),)
    return group


@triton.jit
def _lags_fwd_kernel(
    z_ptr,
    v_ptr,
    h0_ptr,
    y_ptr,
    final_ptr,
    T,
    N,
    NC,
    M: tl.constexpr,
    U: tl.constexpr,
    PF: tl.constexpr,
    NORM: tl.constexpr,
    FAST: tl.constexpr,
):
    """One warp: 32 / m channels of one batch row, a lane per lag, all T steps. NC: channel tiles per batch row."""
    r, j, ok, lane0, cv, cs = _lanes(tl.program_id(0), NC, N, T, 0, M)
    s = tl.load(h0_ptr + cs + j, mask=ok, other=0.0)
    SZ = (N * (M + 1)).to(tl.int64)
    SV = N.to(tl.int64)
    zq = z_ptr + cv * (M + 1) + j
    zmq = z_ptr + cv * (M + 1) + M
    vq = v_ptr + cv
    yq = y_ptr + cv * M + j
    left = tl.where(j == 0, r, r - 1)  # the lane of lag j - 1 (lag 0 takes x_t)
    cur = _load_group(zq, zmq, vq, SZ, SV, 0, T, ok, U)
    for t0 in range(0, T, U):
        zq += U * SZ
        zmq += U * SZ
        vq += U * SV
        nxt = _load_group(zq, zmq, vq, SZ, SV, t0 + U, T, ok, U)
        if PF > 0:
            for u in tl.static_range(U):
                okp = ok & (t0 + U + PF + u < T)
                _pf(zq + (PF + u) * SZ, okp)
                _pf(zmq + (PF + u) * SZ, okp)
                _pf(vq + (PF + u) * SV, okp)
        gates = ()  # the group's gates first: they do not depend on the state
        for u in tl.static_range(U):
            zj, zm, vv = cur[u]
            ej, em, inv = _lag_phi(zj.to(tl.float32), zm.to(tl.float32), r, M, NORM, FAST)
            gates = gates + ((ej, em * vv.to(tl.float32), inv),)
        for u in tl.static_range(U):
            ej, ev, inv = gates[u]
            shifted = tl.gather(s, left, 0)
            x = (_butterfly(ej * s, r, 1, M, False) + ev) * inv
            sn = tl.where(j == 0, x, shifted)
            tin = t0 + u < T
            tl.store(yq + u * (SV * M), sn.to(y_ptr.dtype.element_ty), mask=(ok & tin) != 0)
            s = tl.where(tin, sn, s)
        yq += U * (SV * M)
        cur = nxt
    tl.store(final_ptr + cs + j, s, mask=ok)


@triton.jit
def _lags_bwd_kernel(
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
    NC,
    M: tl.constexpr,
    U: tl.constexpr,
    PF: tl.constexpr,
    NORM: tl.constexpr,
    FAST: tl.constexpr,
    HAS_G: tl.constexpr,
):
    """The transposed companion recurrence, t = T-1 .. 0: mu_t = dy_t + c_t (c_{T-1} = d final state), c_{t-1}[j] =
    p_t[j] mu_t[0] + mu_t[j + 1]; after step 0, c is d h0. dp_t = mu_t[0] (s_{t-1}, v_t) with s_{t-1}[j] =
    y_{t-1}[j] (h0 at t = 0), then the closed-form adjoint of phi; dv_t = mu_t[0] p_t[m]."""
    r, j, ok, lane0, cv, cs = _lanes(tl.program_id(0), NC, N, T, T - 1, M)
    h0v = tl.load(h0_ptr + cs + j, mask=ok, other=0.0)
    cc = tl.load(dfinal_ptr + cs + j, mask=ok, other=0.0)
    SZ = (N * (M + 1)).to(tl.int64)
    SV = N.to(tl.int64)
    SY = SV * M
    zq = z_ptr + cv * (M + 1) + j  # the pointers start at step T - 1
    zmq = z_ptr + cv * (M + 1) + M
    vq = v_ptr + cv
    yq = y_ptr + cv * M + j
    gq = g_ptr + cv * M + j
    dzq = dz_ptr + cv * (M + 1) + j
    dvq = dv_ptr + cv
    right = tl.where(j == M - 1, r, r + 1)  # the lane of lag j + 1 (the last lag has none)
    cur = _load_group_bwd(zq, zmq, vq, yq, gq, SZ, SV, T - 1, ok, M, U, HAS_G)
    for k0 in range(0, T, U):
        t0 = T - 1 - k0
        zq -= U * SZ
        zmq -= U * SZ
        vq -= U * SV
        yq -= U * SY
        gq -= U * SY
        nxt = _load_group_bwd(zq, zmq, vq, yq, gq, SZ, SV, t0 - U, ok, M, U, HAS_G)
        if PF > 0:
            for u in tl.static_range(U):
                okp = ok & (t0 - U - PF - u >= 0)
                _pf(zq - (PF + u) * SZ, okp)
                _pf(zmq - (PF + u) * SZ, okp)
                _pf(vq - (PF + u) * SV, okp)
                _pf(yq - (PF + u + 1) * SY, okp)
                if HAS_G:
                    _pf(gq - (PF + u) * SY, okp)
        gates = ()
        for u in tl.static_range(U):
            zj = cur[u][0].to(tl.float32)
            zm = cur[u][1].to(tl.float32)
            gates = gates + ((zj, zm) + _lag_phi(zj, zm, r, M, NORM, FAST),)
        for u in tl.static_range(U):
            zj, zm, ej, em, inv = gates[u]
            _, _, vv, yp, gg = cur[u]
            vf = vv.to(tl.float32)
            t = t0 - u
            tin = t >= 0
            okt = (ok & tin) != 0
            sp = tl.where(t == 0, h0v, yp.to(tl.float32))
            pj = ej * inv
            pm = em * inv
            mu = gg.to(tl.float32) + cc
            mu0 = tl.gather(mu, lane0, 0)
            # dot = sum_k p_k dp_k = mu0 x_t, x_t recomputed in fp32
            dot = mu0 * (_butterfly(pj * sp, r, 1, M, False) + pm * vf)
            dpj = mu0 * sp
            dpm = mu0 * vf
            if NORM == 0:
                dzj = pj * (dpj - dot)
                dzm = pm * (dpm - dot)
            elif NORM == 1:
                dzj = _sig_l1_dz(zj, pj, dpj, dot, FAST)
                dzm = _sig_l1_dz(zm, pm, dpm, dot, FAST)
            elif NORM == 2:
                dzj = tl.where(zj > 0.0, (dpj - dot) * inv, 0.0)
                dzm = tl.where(zm > 0.0, (dpm - dot) * inv, 0.0)
            else:
                dzj = dpj
                dzm = dpm
            tl.store(dzq - u * SZ, dzj.to(dz_ptr.dtype.element_ty), mask=okt)
            first = (okt & (j == 0)) != 0
            tl.store(dzq + (M - j) - u * SZ, dzm.to(dz_ptr.dtype.element_ty), mask=first)
            tl.store(dvq - u * SV, (mu0 * pm).to(dv_ptr.dtype.element_ty), mask=first)
            nxt_c = pj * mu0 + tl.where(j == M - 1, 0.0, tl.gather(mu, right, 0))
            cc = tl.where(tin, nxt_c, cc)
        dzq -= U * SZ
        dvq -= U * SV
        cur = nxt
    tl.store(dh0_ptr + cs + j, cc, mask=ok)


def _launch_args(m: int, seqlen: int, bwd: bool) -> dict:
    """Constexprs and launch options of both kernels, from config.LagsSettings (v17a: order 16 forward 1.07 ms at
    unroll 8, 1.24 at 4; 16 needs 248 registers)."""
    cfg = settings("lags", m, "bwd" if bwd else "fwd")
    return dict(M=m, U=min(cfg.unroll, triton.next_power_of_2(seqlen)), PF=cfg.pf, FAST=cfg.fast, num_warps=1)


def lags_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, N, m + 1), v (B, T, N), h0 (B, N, m) fp32 -> (y (B, T, N, m), final state (B, N, m) fp32).
    Launch settings: config.LagsSettings."""
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    kw = _launch_args(m, seqlen, bwd=False)
    y = torch.empty(bsz, seqlen, nch, m, dtype=v.dtype, device=v.device)
    final = torch.empty(bsz, nch, m, dtype=torch.float32, device=v.device)
    nc = triton.cdiv(nch * m, 32)
    _lags_fwd_kernel[(bsz * nc,)](z, v, h0, y, final, seqlen, nch, nc, NORM=NORM_IDS[norm], **kw)
    return y, final


def lags_bwd(z, v, h0, y, dy, dfinal, norm: str):
    """Gradients (dz, dv, dh0) of lags_fwd from dy (or None) and d final state (or None); settings as lags_fwd."""
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dy, dfinal, (bsz, nch, m))
    kw = _launch_args(m, seqlen, bwd=True)
    nc = triton.cdiv(nch * m, 32)
    _lags_bwd_kernel[(bsz * nc,)](
        z, v, y, h0, g, dfinal, dz, dv, dh0, seqlen, nch, nc, NORM=NORM_IDS[norm], HAS_G=has_g, **kw
    )
    return dz, dv, dh0
