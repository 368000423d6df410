"""Generic fused-gate BD-LRU scan, any m: h_t = A_t h_{t-1} + a0_t * v_t with [A_t | a0_t] = phi(logits_t) row-wise.
The route at m = 4 (and m = 8 below 8192 lanes) for logits the tile kernels cannot read as words (router.py).

Time-parallel chunked scan (three launches, each reading only logits and v from HBM):
  1. `_bdlru_chunk_fwd_kernel`: per (batch, block tile, chunk) the chunk's affine map from a zero start: end state e_c
     and transition product M_c = A_{t1-1} ... A_{t0} (skipped when one chunk suffices).
  2. `_chunk_carry_kernel`: a short sequential pass over chunks, start_{c+1} = M_c start_c + e_c.
  3. `_bdlru_fwd_kernel`: recompute each chunk from its true start state, write h (v.dtype) and the final state (fp32).
The gates are normalised in registers (softmax with exp2, one reciprocal per row); A and a0*v never touch HBM.
Backward mirrors it with the reverse adjoint scan lam_t = g_t + A_{t+1}^T lam_{t+1} (`_bdlru_chunk_bwd_kernel`,
`_chunk_carry_kernel` reversed, `_bdlru_bwd_kernel`), recomputing phi from the logits and using the saved output
h_{t-1}; the closed-form adjoint of phi gives the logit gradients.
"""

import torch
import triton
import triton.language as tl

from .common import NORM_IDS, _chunk_carry_kernel, _norm_rows, _norm_rows_bwd, _tile_offsets, bwd_buffers, num_sms
from .config import settings


@triton.jit(do_not_specialize=["ONE"])
def _bdlru_chunk_fwd_kernel(
    z_ptr,
    v_ptr,
    e_ptr,
    mat_ptr,
    T,
    N,
    NT,
    NC,
    CL,
    ONE,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    SCALAR: tl.constexpr,
):
    pid_nt = tl.program_id(0)
    c = tl.program_id(1)  # chunks 0 .. NC-2 (the last chunk's map is never needed)
    b, ii, jj, offA, offa, offv, mask3, mask2 = _tile_offsets(pid_nt, NT, N, M, BN, ONE, SCALAR)
    t0 = c * CL
    n_steps = tl.minimum(CL, T - t0)
    e = tl.zeros([BN, M], dtype=tl.float32)
    eye = (ii[:, None] == jj[None, :]).to(tl.float32)
    mat = tl.zeros([BN, M, M], dtype=tl.float32) + eye[None, :, :]
    for k0 in range(0, n_steps, UNROLL):
        for kk in tl.static_range(UNROLL):
            tm = (k0 + kk) < n_steps
            row = (b * T + t0 + k0 + kk).to(tl.int64)
            zA = tl.load(z_ptr + row * (N * M * (M + 1)) + offA, mask=(mask3 & tm) != 0, other=0.0).to(tl.float32)
            za = tl.load(z_ptr + row * (N * M * (M + 1)) + offa, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
            vv = tl.load(v_ptr + row * (N * M) + offv, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
            pA, pa, inv = _norm_rows(zA, za, NORM, 2, False)
            e_new = tl.sum(pA * e[:, None, :], axis=2) + pa * vv
            mat_new = tl.sum(pA[:, :, :, None] * mat[:, None, :, :], axis=2)
            e = tl.where(tm, e_new, e)
            mat = tl.where(tm, mat_new, mat)
    soff = ((b * NC + c) * N).to(tl.int64) * M + offv
    tl.store(e_ptr + soff, e, mask=mask2)
    moff = ((b * NC + c) * N).to(tl.int64) * (M * M) + (offv * M)[:, :, None] + jj[None, None, :]
    tl.store(mat_ptr + moff, mat, mask=mask3)


@triton.jit
def _ld_fwd(z_ptr, v_ptr, b, T, N, t0, k, n_steps, offA, offa, offv, mask3, mask2, M: tl.constexpr):
    tm = k < n_steps
    row = (b * T + t0 + k).to(tl.int64)
    zA = tl.load(z_ptr + row * (N * M * (M + 1)) + offA, mask=(mask3 & tm) != 0, other=0.0).to(tl.float32)
    za = tl.load(z_ptr + row * (N * M * (M + 1)) + offa, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    vv = tl.load(v_ptr + row * (N * M) + offv, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    return zA, za, vv, tm, row


@triton.jit
def _step_fwd(h, zA, za, vv, tm, row, h_ptr, N, offv, mask2, M: tl.constexpr, NORM: tl.constexpr):
    pA, pa, inv = _norm_rows(zA, za, NORM, 2, False)
    h_new = tl.sum(pA * h[:, None, :], axis=2) + pa * vv
    tl.store(h_ptr + row * (N * M) + offv, h_new.to(h_ptr.dtype.element_ty), mask=(mask2 & tm) != 0)
    return tl.where(tm, h_new, h)


@triton.jit(do_not_specialize=["ONE"])
def _bdlru_fwd_kernel(
    z_ptr,
    v_ptr,
    start_ptr,
    h_ptr,
    final_ptr,
    T,
    N,
    NT,
    NC,
    CL,
    ONE,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    SCALAR: tl.constexpr,
):
    """Recompute pass. The loads of 4 steps are issued before any store of h: the compiler cannot move a load above
    a store that may alias it, so per-step loads would otherwise each pay the full memory latency."""
    pid_nt = tl.program_id(0)
    c = tl.program_id(1)
    b, ii, jj, offA, offa, offv, mask3, mask2 = _tile_offsets(pid_nt, NT, N, M, BN, ONE, SCALAR)
    t0 = c * CL
    n_steps = tl.minimum(CL, T - t0)
    h = tl.load(start_ptr + ((b * NC + c) * N).to(tl.int64) * M + offv, mask=mask2, other=0.0)
    for k0 in range(0, n_steps, 4):
        zA0, za0, v0, tm0, r0 = _ld_fwd(z_ptr, v_ptr, b, T, N, t0, k0, n_steps, offA, offa, offv, mask3, mask2, M)
        zA1, za1, v1, tm1, r1 = _ld_fwd(z_ptr, v_ptr, b, T, N, t0, k0 + 1, n_steps, offA, offa, offv, mask3, mask2, M)
        zA2, za2, v2, tm2, r2 = _ld_fwd(z_ptr, v_ptr, b, T, N, t0, k0 + 2, n_steps, offA, offa, offv, mask3, mask2, M)
        zA3, za3, v3, tm3, r3 = _ld_fwd(z_ptr, v_ptr, b, T, N, t0, k0 + 3, n_steps, offA, offa, offv, mask3, mask2, M)
        h = _step_fwd(h, zA0, za0, v0, tm0, r0, h_ptr, N, offv, mask2, M, NORM)
        h = _step_fwd(h, zA1, za1, v1, tm1, r1, h_ptr, N, offv, mask2, M, NORM)
        h = _step_fwd(h, zA2, za2, v2, tm2, r2, h_ptr, N, offv, mask2, M, NORM)
        h = _step_fwd(h, zA3, za3, v3, tm3, r3, h_ptr, N, offv, mask2, M, NORM)
    if c == NC - 1:
        tl.store(final_ptr + (b * N).to(tl.int64) * M + offv, h, mask=mask2)


@triton.jit(do_not_specialize=["ONE"])
def _bdlru_chunk_bwd_kernel(
    z_ptr,
    g_ptr,
    f_ptr,
    mat_ptr,
    T,
    N,
    NT,
    NC,
    CL,
    ONE,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    SCALAR: tl.constexpr,
    HAS_G: tl.constexpr,
):
    """Reverse local adjoint of chunk c (1..NC-1): mu_out = A_{t0}^T (g_{t0} + ... A_{t1-1}^T (g_{t1-1} + mu_in))."""
    pid_nt = tl.program_id(0)
    c = tl.program_id(1) + 1
    b, ii, jj, offA, offa, offv, mask3, mask2 = _tile_offsets(pid_nt, NT, N, M, BN, ONE, SCALAR)
    t0 = c * CL
    n_steps = tl.minimum(CL, T - t0)
    f = tl.zeros([BN, M], dtype=tl.float32)
    eye = (ii[:, None] == jj[None, :]).to(tl.float32)
    mat = tl.zeros([BN, M, M], dtype=tl.float32) + eye[None, :, :]
    for k0 in range(0, n_steps, UNROLL):
        for kk in tl.static_range(UNROLL):
            tm = (k0 + kk) < n_steps
            row = (b * T + t0 + n_steps - 1 - k0 - kk).to(tl.int64)
            zA = tl.load(z_ptr + row * (N * M * (M + 1)) + offA, mask=(mask3 & tm) != 0, other=0.0).to(tl.float32)
            za = tl.load(z_ptr + row * (N * M * (M + 1)) + offa, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
            pA, pa, inv = _norm_rows(zA, za, NORM, 2, False)
            if HAS_G:
                lam = f + tl.load(g_ptr + row * (N * M) + offv, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
            else:
                lam = f
            f_new = tl.sum(pA * lam[:, :, None], axis=1)
            mat_new = tl.sum(pA[:, :, :, None] * mat[:, :, None, :], axis=1)
            f = tl.where(tm, f_new, f)
            mat = tl.where(tm, mat_new, mat)
    soff = ((b * NC + c) * N).to(tl.int64) * M + offv
    tl.store(f_ptr + soff, f, mask=mask2)
    moff = ((b * NC + c) * N).to(tl.int64) * (M * M) + (offv * M)[:, :, None] + jj[None, None, :]
    tl.store(mat_ptr + moff, mat, mask=mask3)


@triton.jit
def _ld_bwd(
    z_ptr,
    v_ptr,
    h_ptr,
    g_ptr,
    h0,
    b,
    T,
    N,
    t0,
    k,
    n_steps,
    offA,
    offa,
    offv,
    mask3,
    mask2,
    M: tl.constexpr,
    HAS_G: tl.constexpr,
):
    tm = k < n_steps
    t = t0 + n_steps - 1 - k
    row = (b * T + t).to(tl.int64)
    zA = tl.load(z_ptr + row * (N * M * (M + 1)) + offA, mask=(mask3 & tm) != 0, other=0.0).to(tl.float32)
    za = tl.load(z_ptr + row * (N * M * (M + 1)) + offa, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    vv = tl.load(v_ptr + row * (N * M) + offv, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    hp = tl.load(h_ptr + (row - 1) * (N * M) + offv, mask=(mask2 & tm & (t > 0)) != 0, other=0.0).to(tl.float32)
    hp = tl.where(t > 0, hp, h0)
    if HAS_G:
        g = tl.load(g_ptr + row * (N * M) + offv, mask=(mask2 & tm) != 0, other=0.0).to(tl.float32)
    else:
        g = vv * 0.0
    return zA, za, vv, hp, g, tm, row


@triton.jit
def _step_bwd(
    mu,
    zA,
    za,
    vv,
    hp,
    g,
    tm,
    row,
    dz_ptr,
    dv_ptr,
    N,
    offA,
    offa,
    offv,
    mask3,
    mask2,
    M: tl.constexpr,
    NORM: tl.constexpr,
):
    lam = mu + g
    pA, pa, inv = _norm_rows(zA, za, NORM, 2, False)
    dpA = lam[:, :, None] * hp[:, None, :]
    dpa = lam * vv
    dzA, dza = _norm_rows_bwd(zA, za, pA, pa, inv, dpA, dpa, NORM, 2, False)
    zrow = row * (N * M * (M + 1))
    tl.store(dz_ptr + zrow + offA, dzA.to(dz_ptr.dtype.element_ty), mask=(mask3 & tm) != 0)
    tl.store(dz_ptr + zrow + offa, dza.to(dz_ptr.dtype.element_ty), mask=(mask2 & tm) != 0)
    tl.store(dv_ptr + row * (N * M) + offv, (lam * pa).to(dv_ptr.dtype.element_ty), mask=(mask2 & tm) != 0)
    return tl.where(tm, tl.sum(pA * lam[:, :, None], axis=1), mu)


@triton.jit(do_not_specialize=["ONE"])
def _bdlru_bwd_kernel(
    z_ptr,
    v_ptr,
    h_ptr,
    h0_ptr,
    g_ptr,
    carry_ptr,
    dz_ptr,
    dv_ptr,
    dh0_ptr,
    T,
    N,
    NT,
    NC,
    CL,
    ONE,
    M: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    SCALAR: tl.constexpr,
    HAS_G: tl.constexpr,
):
    pid_nt = tl.program_id(0)
    c = tl.program_id(1)
    b, ii, jj, offA, offa, offv, mask3, mask2 = _tile_offsets(pid_nt, NT, N, M, BN, ONE, SCALAR)
    t0 = c * CL
    n_steps = tl.minimum(CL, T - t0)
    mu = tl.load(carry_ptr + ((b * NC + c) * N).to(tl.int64) * M + offv, mask=mask2, other=0.0)
    h0 = tl.load(h0_ptr + (b * N).to(tl.int64) * M + offv, mask=mask2, other=0.0)
    for k0 in range(0, n_steps, 2):
        zA0, za0, v0, hp0, g0, tm0, r0 = _ld_bwd(
            z_ptr, v_ptr, h_ptr, g_ptr, h0, b, T, N, t0, k0, n_steps, offA, offa, offv, mask3, mask2, M, HAS_G
        )
        zA1, za1, v1, hp1, g1, tm1, r1 = _ld_bwd(
            z_ptr, v_ptr, h_ptr, g_ptr, h0, b, T, N, t0, k0 + 1, n_steps, offA, offa, offv, mask3, mask2, M, HAS_G
        )
        mu = _step_bwd(mu, zA0, za0, v0, hp0, g0, tm0, r0, dz_ptr, dv_ptr, N, offA, offa, offv, mask3, mask2, M, NORM)
        mu = _step_bwd(mu, zA1, za1, v1, hp1, g1, tm1, r1, dz_ptr, dv_ptr, N, offA, offa, offv, mask3, mask2, M, NORM)
    if c == 0:
        tl.store(dh0_ptr + (b * N).to(tl.int64) * M + offv, mu, mask=mask2)


# ---------------------------------------------------------------------------------------------------------------------
# launch configuration


def _config(bsz: int, seqlen: int, nblocks: int, m: int, device: torch.device, bwd: bool = False):
    """Block tile (BN), chunk length (CL), chunk count (NC), unroll, warps, for the main (recompute) kernels, from
    config.GenericSettings."""
    cfg = settings("generic", m, "bwd" if bwd else "fwd")
    bn = max(1, min(triton.next_power_of_2(nblocks), cfg.tile_elems // (m * m)))
    unroll = cfg.unroll
    nt = triton.cdiv(nblocks, bn)
    # one-warp programs in the scalar layout: ask for more of them
    target = cfg.target_programs or (16 if cfg.scalar else 4) * num_sms(device)
    nc = max(1, min(triton.cdiv(target, bsz * nt), triton.cdiv(seqlen, cfg.min_chunk)))
    if m > cfg.chunk_max_m:  # the chunk map costs m^3 per step: measured far slower at m = 16
        nc = 1
    cl = cfg.chunk if cfg.chunk else triton.cdiv(seqlen, nc)
    cl = triton.cdiv(cl, unroll) * unroll
    nc = triton.cdiv(seqlen, cl)
    if cfg.warps:
        warps = cfg.warps
    elif cfg.scalar:
        warps = _lane_warps(bn)
    else:
        warps = 4 if bn * m * m >= 512 else (2 if bn * m * m >= 128 else 1)
    return bn, nt, cl, nc, unroll, warps


def _lane_warps(bn: int) -> int:
    """Scalar layout: one lane per block, so BN / 32 warps (more would split a block's rows across warps)."""
    return max(1, bn // 32)


def _aux_bn(nblocks: int, m: int, scalar: bool) -> tuple[int, int]:
    """Block tile and warps for the chunk-map kernels (they hold an m x m x m product per block)."""
    bn = max(1, min(triton.next_power_of_2(nblocks), 2048 // (m * m * m)))
    warps = _lane_warps(bn) if scalar else (8 if bn * m**3 >= 2048 else 4)
    return bn, warps


def generic_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    bsz, seqlen, nblocks, m = v.shape
    bn, nt, cl, nc, unroll, warps = _config(bsz, seqlen, nblocks, m, v.device)
    norm_id = NORM_IDS[norm]
    scalar = settings("generic", m, "fwd").scalar
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    if nc == 1:
        start = h0
    else:
        e = torch.empty(bsz, nc, nblocks, m, dtype=torch.float32, device=v.device)
        mat = torch.empty(bsz, nc, nblocks, m, m, dtype=torch.float32, device=v.device)
        bna, wa = _aux_bn(nblocks, m, scalar)
        nta = triton.cdiv(nblocks, bna)
        _bdlru_chunk_fwd_kernel[(bsz * nta, nc - 1)](
            z, v, e, mat, seqlen, nblocks, nta, nc, cl, 1,
            M=m, BN=bna, NORM=norm_id, UNROLL=unroll, SCALAR=scalar, num_warps=wa,
        )  # fmt: skip
        start = torch.empty(bsz, nc, nblocks, m, dtype=torch.float32, device=v.device)
        bnc = max(1, min(triton.next_power_of_2(nblocks), 1024 // (m * m)))
        ntc = triton.cdiv(nblocks, bnc)
        wc = _lane_warps(bnc) if scalar else 4
        _chunk_carry_kernel[(bsz * ntc,)](
            e, mat, h0, start, nblocks, ntc, nc, 1, M=m, BN=bnc, REVERSE=False, SCALAR=scalar, num_warps=wc
        )
    _bdlru_fwd_kernel[(bsz * nt, nc)](
        z, v, start, h, final, seqlen, nblocks, nt, nc, cl, 1,
        M=m, BN=bn, NORM=norm_id, UNROLL=unroll, SCALAR=scalar, num_warps=warps,
    )  # fmt: skip
    return h, final


def generic_bwd(z, v, h0, h, dh, dfinal, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bsz, seqlen, nblocks, m = v.shape
    bn, nt, cl, nc, unroll, warps = _config(bsz, seqlen, nblocks, m, v.device, bwd=True)
    norm_id = NORM_IDS[norm]
    scalar = settings("generic", m, "bwd").scalar
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dh, dfinal, (bsz, nblocks, m))
    if nc == 1:
        carry = dfinal
    else:
        f = torch.empty(bsz, nc, nblocks, m, dtype=torch.float32, device=v.device)
        mat = torch.empty(bsz, nc, nblocks, m, m, dtype=torch.float32, device=v.device)
        bna, wa = _aux_bn(nblocks, m, scalar)
        nta = triton.cdiv(nblocks, bna)
        _bdlru_chunk_bwd_kernel[(bsz * nta, nc - 1)](
            z,
            g,
            f,
            mat,
            seqlen,
            nblocks,
            nta,
            nc,
            cl,
            1,
            M=m,
            BN=bna,
            NORM=norm_id,
            UNROLL=unroll,
            SCALAR=scalar,
            HAS_G=has_g,
            num_warps=wa,
        )
        carry = torch.empty(bsz, nc, nblocks, m, dtype=torch.float32, device=v.device)
        bnc = max(1, min(triton.next_power_of_2(nblocks), 1024 // (m * m)))
        ntc = triton.cdiv(nblocks, bnc)
        wc = _lane_warps(bnc) if scalar else 4
        _chunk_carry_kernel[(bsz * ntc,)](
            f, mat, dfinal, carry, nblocks, ntc, nc, 1, M=m, BN=bnc, REVERSE=True, SCALAR=scalar, num_warps=wc
        )
    _bdlru_bwd_kernel[(bsz * nt, nc)](
        z,
        v,
        h,
        h0,
        g,
        carry,
        dz,
        dv,
        dh0,
        seqlen,
        nblocks,
        nt,
        nc,
        cl,
        1,
        M=m,
        BN=bn,
        NORM=norm_id,
        UNROLL=unroll,
        SCALAR=scalar,
        HAS_G=has_g,
        num_warps=warps,
    )
    return dz, dv, dh0
