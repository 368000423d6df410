"""Single-pass chained tile scan for BD-LRU at m = 2: the default forward. (The m = 1 branches, never the default
since diag_tile.py took m = 1, are in git history: commit 3e6b01e.)

One program owns one tile: BN blocks x BT time steps of one batch row. Blocks sit on axis 0: with every load strided,
Triton's layout then puts a warp's lanes on consecutive blocks (near-contiguous addresses) and time in registers and
across warps. The program loads the tile's logits and v once, normalises the gate rows in registers (each gate entry
is its own [BN, BT] tensor, so every normalisation and mat-vec is element-wise), and runs `tl.associative_scan` over
time on the affine maps (A_t, a0_t * v_t). The tile's start state comes from the tiles before it by a decoupled
look-back: a tile publishes its own map (M_tile, e_tile) (the scan's last step) at once, then walks back over its
predecessors, composing their published maps until it meets one that has published its end state; it then publishes
its own end state. No tile waits for a serial chain through all its predecessors, so tiles can be short (time stays
in each thread's registers: the scan needs no shuffles) while every byte is read from HBM once. Program ids run
time-major, so a tile's predecessors have lower ids and, launched first, have always started (see _tile). One int32
flag per tile (raised with release semantics after a barrier) guards the published values.
Backward runs the same scheme in reverse on the adjoint lam_t = g_t + A_{t+1}^T lam_{t+1} (scanned as the carry
u_t = A_t^T lam_t, so each step needs only its own gates); h_{t-1} is read back from the saved output. Its tiles must
be short (BT = 4), so the two-phase tile backward of bdlru_tile.py is faster and the default; this one runs for
logits that kernel cannot read as words (router.py).
"""

import torch
import triton
import triton.language as tl

from .common import (
    _DTYPE_IDS,
    NORM_IDS,
    RELU_EPS,
    _dphi,
    _exp_shift,
    _finish,
    _half,
    _pack,
    _poll,
    _rcp,
    _sig_l1,
    _signal,
    _tile,
    bwd_buffers,
    lookback_buffers,
)
from .config import settings

# ---------------------------------------------------------------------------------------------------------------------
# gate rows as separate tensors: phi over (z0, z1, z2), and its adjoint. They keep
# the exact reciprocal and exp2 form: common._rcp / _exp_shift made the m = 1 forward 6% slower (NOTES v12a), the m = 2
# one 1% (v17e)


@triton.jit
def _phi3(z0, z1, z2, NORM: tl.constexpr):
    """phi over one m = 2 gate row (z0, z1, z2), exact forms (the short ones made the m = 2 forward 1% slower, v17e)."""
    if NORM == 0:
        mx = tl.maximum(tl.maximum(z0, z1), z2)
        e0 = _exp_shift(z0, mx, False)
        e1 = _exp_shift(z1, mx, False)
        e2 = _exp_shift(z2, mx, False)
    elif NORM == 1:
        mx = tl.maximum(tl.maximum(z0, z1), z2)
        e0 = _sig_l1(z0, mx, False)
        e1 = _sig_l1(z1, mx, False)
        e2 = _sig_l1(z2, mx, False)
    elif NORM == 2:
        e0 = tl.maximum(z0, 0.0)
        e1 = tl.maximum(z1, 0.0)
        e2 = tl.maximum(z2, 0.0)
    if NORM == 3:
        inv = z0 * 0.0 + 1.0
        p0 = z0
        p1 = z1
        p2 = z2
    else:
        if NORM == 2:
            inv = _rcp(e0 + e1 + e2 + RELU_EPS, False)
        else:
            inv = _rcp(e0 + e1 + e2, False)
        p0 = e0 * inv
        p1 = e1 * inv
        p2 = e2 * inv
    return p0, p1, p2, inv


@triton.jit
def _comb2(p00, p01, p10, p11, p0, p1, q00, q01, q10, q11, q0, q1):
    """(Q, q) after (P, p): x -> Q (P x + p) + q."""
    return (
        q00 * p00 + q01 * p10,
        q00 * p01 + q01 * p11,
        q10 * p00 + q11 * p10,
        q10 * p01 + q11 * p11,
        q00 * p0 + q01 * p1 + q0,
        q10 * p0 + q11 * p1 + q1,
    )


@triton.jit
def _comb_adj2(
    p00, p01, p10, p11, p0, p1, l00, l01, l10, l11, l0, l1, q00, q01, q10, q11, q0, q1, r00, r01, r10, r11, r0, r1
):  # fmt: skip
    """Adjoint scan, m = 2. A segment maps the carry x entering it (u of the step before) to the carry leaving it,
    u = P x + p, and to lam at its last step, lam = L x + l; (Q, q), (R, r) are the second segment's (a step:
    u = A_t^T (g_t + x), lam = g_t + x)."""
    u00, u01, u10, u11, u0, u1 = _comb2(p00, p01, p10, p11, p0, p1, q00, q01, q10, q11, q0, q1)
    m00, m01, m10, m11, m0, m1 = _comb2(p00, p01, p10, p11, p0, p1, r00, r01, r10, r11, r0, r1)
    return u00, u01, u10, u11, u0, u1, m00, m01, m10, m11, m0, m1


# ---------------------------------------------------------------------------------------------------------------------
# the m = 2 look-back (common.py: tile order, flags, m = 1)


@triton.jit
def _lookback2(
    flag_ptr, agg_ptr, inc_ptr, k, STEP: tl.constexpr, B, b, N, n, nmask, NT, nt, m00, m01, m10, m11, e0, e1
):
    """As common._lookback1 for the map x -> [[m00, m01], [m10, m11]] x + (e0, e1); returns the entering state. A
    tile's six map entries (and, _finish, its two end-state entries) are stored planar, entry e of block n at
    e N + n, so each access of a warp is one contiguous run."""
    q = agg_ptr + (k * B + b).to(tl.int64) * N * 6 + n
    tl.store(q, m00, mask=nmask)
    tl.store(q + N, m01, mask=nmask)
    tl.store(q + 2 * N, m10, mask=nmask)
    tl.store(q + 3 * N, m11, mask=nmask)
    tl.store(q + 4 * N, e0, mask=nmask)
    tl.store(q + 5 * N, e1, mask=nmask)
    _signal(flag_ptr + (k * B + b) * NT + nt, 1)
    zero = e0 * 0.0
    a00 = zero + 1.0
    a01 = zero
    a10 = zero
    a11 = zero + 1.0
    c0 = zero
    c1 = zero
    s0 = zero
    s1 = zero
    j = k + STEP
    done = k * 0
    while done == 0:
        f = _poll(flag_ptr + (j * B + b) * NT + nt)
        rj = (j * B + b).to(tl.int64) * N
        if f == 2:
            x0 = tl.load(inc_ptr + rj * 2 + n, mask=nmask, other=0.0, volatile=True)
            x1 = tl.load(inc_ptr + rj * 2 + N + n, mask=nmask, other=0.0, volatile=True)
            s0 = a00 * x0 + a01 * x1 + c0
            s1 = a10 * x0 + a11 * x1 + c1
            done = k * 0 + 1
        elif f == 1:
            q = agg_ptr + rj * 6 + n
            q00 = tl.load(q, mask=nmask, other=0.0, volatile=True)
            q01 = tl.load(q + N, mask=nmask, other=0.0, volatile=True)
            q10 = tl.load(q + 2 * N, mask=nmask, other=0.0, volatile=True)
            q11 = tl.load(q + 3 * N, mask=nmask, other=0.0, volatile=True)
            q0 = tl.load(q + 4 * N, mask=nmask, other=0.0, volatile=True)
            q1 = tl.load(q + 5 * N, mask=nmask, other=0.0, volatile=True)
            c0, c1 = a00 * q0 + a01 * q1 + c0, a10 * q0 + a11 * q1 + c1
            a00, a01, a10, a11 = (
                a00 * q00 + a01 * q10,
                a00 * q01 + a01 * q11,
                a10 * q00 + a11 * q10,
                a10 * q01 + a11 * q11,
            )
            j += STEP
    return s0, s1


@triton.jit
def _row(x, sel):
    """The time step of a [BN, BT] tile selected by the [1, BT] mask sel (exactly one true column)."""
    return tl.sum(tl.where(sel, x, 0.0), axis=1)


# ---------------------------------------------------------------------------------------------------------------------
# forward


# No alignment specialisation on v and h: at m = 1 (the removed branch) Triton vectorised them along blocks and moved
# lanes onto time (see the module docstring); kept so that the m = 2 kernel compiles as measured.
@triton.jit(do_not_specialize_on_alignment=["v_ptr", "h_ptr"])
def _bdlru_chain_fwd_kernel(
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
    M: tl.constexpr,
    BT: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    WORDS: tl.constexpr,
    DT: tl.constexpr,
):
    """WORDS (m = 2, 2-byte dtypes): 1 reads a block's 6 logits as three 32-bit words, 2 also v and h as one word."""
    k, b, nt = _tile(B, NT, NTT, False)
    tt = tl.arange(0, BT)
    t = k * BT + tt
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    mask = nmask[:, None] & (t < T)[None, :]
    row0 = (b * T + k * BT).to(tl.int64) * N  # (token, block) index of the tile's origin
    tok = tt[None, :] * N + n[:, None]  # int32 offsets from it
    zb = z_ptr + row0 * (M * (M + 1))
    vb = v_ptr + row0 * M
    hb = h_ptr + row0 * M
    last = (tt == BT - 1)[None, :]
    sbase = (b * N).to(tl.int64) * M + n * M  # state (b, n, 0)
    if WORDS > 0:  # a block's logits: words (z00, z01), (z02, z10), (z11, z12)
        wp = z_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 * 3 + tok * 3
        w0 = tl.load(wp, mask=mask, other=0)
        w1 = tl.load(wp + 1, mask=mask, other=0)
        w2 = tl.load(wp + 2, mask=mask, other=0)
        p00, p01, q0, _ = _phi3(_half(w0, 0, DT), _half(w0, 1, DT), _half(w1, 0, DT), NORM)
        p10, p11, q1, _ = _phi3(_half(w1, 1, DT), _half(w2, 0, DT), _half(w2, 1, DT), NORM)
    else:
        zp = zb + tok * 6
        p00, p01, q0, _ = _phi3(
            tl.load(zp, mask=mask, other=0.0).to(tl.float32),
            tl.load(zp + 1, mask=mask, other=0.0).to(tl.float32),
            tl.load(zp + 2, mask=mask, other=0.0).to(tl.float32),
            NORM,
        )
        p10, p11, q1, _ = _phi3(
            tl.load(zp + 3, mask=mask, other=0.0).to(tl.float32),
            tl.load(zp + 4, mask=mask, other=0.0).to(tl.float32),
            tl.load(zp + 5, mask=mask, other=0.0).to(tl.float32),
            NORM,
        )
    if WORDS == 2:
        vw = tl.load(v_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + tok, mask=mask, other=0)
        v0 = _half(vw, 0, DT)
        v1 = _half(vw, 1, DT)
    else:
        v0 = tl.load(vb + tok * 2, mask=mask, other=0.0).to(tl.float32)
        v1 = tl.load(vb + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
    p00 = tl.where(mask, p00, 1.0)
    p01 = tl.where(mask, p01, 0.0)
    p10 = tl.where(mask, p10, 0.0)
    p11 = tl.where(mask, p11, 1.0)
    e0 = tl.where(mask, q0 * v0, 0.0)
    e1 = tl.where(mask, q1 * v1, 0.0)
    c00, c01, c10, c11, ce0, ce1 = tl.associative_scan((p00, p01, p10, p11, e0, e1), 1, _comb2)
    m00 = _row(c00, last)
    m01 = _row(c01, last)
    m10 = _row(c10, last)
    m11 = _row(c11, last)
    me0 = _row(ce0, last)
    me1 = _row(ce1, last)
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
    h0 = c00 * s0[:, None] + c01 * s1[:, None] + ce0
    h1 = c10 * s0[:, None] + c11 * s1[:, None] + ce1
    if WORDS == 2:
        tl.store(h_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + tok, _pack(h0, h1, DT), mask=mask)
    else:
        tl.store(hb + tok * 2, h0.to(h_ptr.dtype.element_ty), mask=mask)
        tl.store(hb + tok * 2 + 1, h1.to(h_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# backward


@triton.jit(do_not_specialize_on_alignment=["v_ptr", "h_ptr", "g_ptr", "dv_ptr"])
def _bdlru_chain_bwd_kernel(
    z_ptr,
    v_ptr,
    h_ptr,
    h0_ptr,
    g_ptr,
    dfinal_ptr,
    dz_ptr,
    dv_ptr,
    dh0_ptr,
    flag_ptr,
    agg_ptr,
    inc_ptr,
    B,
    T,
    N,
    NT,
    NTT,
    M: tl.constexpr,
    BT: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
    HAS_G: tl.constexpr,
    AGG_ONLY: tl.constexpr,
):
    """Reverse scan of lam_t = g_t + A_{t+1}^T lam_{t+1} on the carry u_t = A_t^T lam_t: a step maps the carry x
    from the step after it to u = A_t^T (g_t + x) and lam_t = g_t + x, so the scan needs only the step's own gates
    (no reload of A_{t+1}). Tile k gets the carry from tile k + 1 (d final state for the last tile) by look-back,
    publishes u at its first step and writes dlogits, dv; tile 0 writes d h0 = u_0. Time runs backwards along the
    tile, so a forward scan is the reverse-time scan (Triton's reverse=True scan costs shuffles even in-thread)."""
    k, b, nt = _tile(B, NT, NTT, True)
    tt = tl.arange(0, BT)
    t = k * BT + BT - 1 - tt
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    mask = nmask[:, None] & (t < T)[None, :]
    hmask = nmask[:, None] & ((t > 0) & (t < T))[None, :]
    row0 = (b * T + k * BT).to(tl.int64) * N
    tok = (BT - 1 - tt)[None, :] * N + n[:, None]
    zb = z_ptr + row0 * (M * (M + 1))
    vb = v_ptr + row0 * M
    hb = h_ptr + row0 * M
    gb = g_ptr + row0 * M
    dzb = dz_ptr + row0 * (M * (M + 1))
    dvb = dv_ptr + row0 * M
    first = (tt == BT - 1)[None, :]  # the tile's first time step
    sbase = (b * N).to(tl.int64) * M + n * M
    zp = zb + tok * 6
    z00 = tl.load(zp, mask=mask, other=0.0).to(tl.float32)
    z01 = tl.load(zp + 1, mask=mask, other=0.0).to(tl.float32)
    z02 = tl.load(zp + 2, mask=mask, other=0.0).to(tl.float32)
    z10 = tl.load(zp + 3, mask=mask, other=0.0).to(tl.float32)
    z11 = tl.load(zp + 4, mask=mask, other=0.0).to(tl.float32)
    z12 = tl.load(zp + 5, mask=mask, other=0.0).to(tl.float32)
    p00, p01, q0, inv0 = _phi3(z00, z01, z02, NORM)
    p10, p11, q1, inv1 = _phi3(z10, z11, z12, NORM)
    if HAS_G:
        g0 = tl.load(gb + tok * 2, mask=mask, other=0.0).to(tl.float32)
        g1 = tl.load(gb + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
    else:
        g0 = tl.zeros([BN, BT], dtype=tl.float32)
        g1 = tl.zeros([BN, BT], dtype=tl.float32)
    # a step: carry map u = A_t^T (g_t + x), lam map lam = g_t + x; identity past T
    u00 = tl.where(mask, p00, 1.0)
    u01 = tl.where(mask, p10, 0.0)
    u10 = tl.where(mask, p01, 0.0)
    u11 = tl.where(mask, p11, 1.0)
    one = u00 * 0.0 + 1.0
    zero = u00 * 0.0
    sc = tl.associative_scan(
        (u00, u01, u10, u11, u00 * g0 + u01 * g1, u10 * g0 + u11 * g1, one, zero, zero, one, g0, g1),
        1,
        _comb_adj2,
    )
    m00 = _row(sc[0], first)
    m01 = _row(sc[1], first)
    m10 = _row(sc[2], first)
    m11 = _row(sc[3], first)
    me0 = _row(sc[4], first)
    me1 = _row(sc[5], first)
    if k == NTT - 1:
        mu0 = tl.load(dfinal_ptr + sbase, mask=nmask, other=0.0)
        mu1 = tl.load(dfinal_ptr + sbase + 1, mask=nmask, other=0.0)
    else:
        mu0, mu1 = _lookback2(flag_ptr, agg_ptr, inc_ptr, k, 1, B, b, N, n, nmask, NT, nt, m00, m01, m10, m11, me0, me1)
    out0 = m00 * mu0 + m01 * mu1 + me0
    out1 = m10 * mu0 + m11 * mu1 + me1
    if k == 0:
        tl.store(dh0_ptr + sbase, out0, mask=nmask)
        tl.store(dh0_ptr + sbase + 1, out1, mask=nmask)
    else:
        _finish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, nmask, NT, nt, 2, out0, out1, AGG_ONLY)
    lam0 = sc[6] * mu0[:, None] + sc[7] * mu1[:, None] + sc[10]
    lam1 = sc[8] * mu0[:, None] + sc[9] * mu1[:, None] + sc[11]
    hp0 = tl.load(hb + (tok - N) * 2, mask=hmask, other=0.0).to(tl.float32)
    hp1 = tl.load(hb + (tok - N) * 2 + 1, mask=hmask, other=0.0).to(tl.float32)
    if k == 0:
        hp0 = tl.where(first, tl.load(h0_ptr + sbase, mask=nmask, other=0.0)[:, None], hp0)
        hp1 = tl.where(first, tl.load(h0_ptr + sbase + 1, mask=nmask, other=0.0)[:, None], hp1)
    v0 = tl.load(vb + tok * 2, mask=mask, other=0.0).to(tl.float32)
    v1 = tl.load(vb + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
    d00 = lam0 * hp0
    d01 = lam0 * hp1
    d02 = lam0 * v0
    d10 = lam1 * hp0
    d11 = lam1 * hp1
    d12 = lam1 * v1
    dot0 = p00 * d00 + p01 * d01 + q0 * d02
    dot1 = p10 * d10 + p11 * d11 + q1 * d12
    dzp = dzb + tok * 6
    ty = dz_ptr.dtype.element_ty
    tl.store(dzp, _dphi(z00, p00, d00, dot0, inv0, NORM, False).to(ty), mask=mask)
    tl.store(dzp + 1, _dphi(z01, p01, d01, dot0, inv0, NORM, False).to(ty), mask=mask)
    tl.store(dzp + 2, _dphi(z02, q0, d02, dot0, inv0, NORM, False).to(ty), mask=mask)
    tl.store(dzp + 3, _dphi(z10, p10, d10, dot1, inv1, NORM, False).to(ty), mask=mask)
    tl.store(dzp + 4, _dphi(z11, p11, d11, dot1, inv1, NORM, False).to(ty), mask=mask)
    tl.store(dzp + 5, _dphi(z12, q1, d12, dot1, inv1, NORM, False).to(ty), mask=mask)
    tl.store(dvb + tok * 2, (lam0 * q0).to(dv_ptr.dtype.element_ty), mask=mask)
    tl.store(dvb + tok * 2 + 1, (lam1 * q1).to(dv_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# launch


def _chain_config(seqlen: int, nblocks: int, m: int, bwd: bool) -> tuple[int, int, int, int, int]:
    """Time tile BT (kept in registers, so short: the best spill-free sizes measured, benchmarks/NOTES.md) and block
    tile BN = 32 lanes x warps, every warp on its own blocks."""
    cfg = settings("chain", m, "bwd" if bwd else "fwd")
    bt = min(cfg.bt, max(4, triton.next_power_of_2(seqlen)))
    warps = max(1, min(cfg.warps, triton.next_power_of_2(nblocks) // 32))
    bn = 32 * warps
    return bt, bn, triton.cdiv(nblocks, bn), triton.cdiv(seqlen, bt), warps


def _fwd_words(z: torch.Tensor, v: torch.Tensor, m: int) -> dict:
    """WORDS, DT and the register cap of the forward. The words setting (default 2) applies with 2-byte, 4-byte
    aligned logits only, else 0; 2 needs v of the logits' dtype, aligned, else 1. The cap (maxnreg None)
    defaults to 128 where 2 words are read. v17b/c (B=8 T=8192 D=1536 bf16): 0.424 ms with element loads, 0.447
    (words 1), 0.418 (words 2), 0.388 (words 2 with the cap: 8 programs per SM instead of 5, for 72 B of spills);
    the cap alone 0.451; with the look-back planar (v17d) 0.384."""
    cfg = settings("chain", m, "fwd")
    words = cfg.words
    if z.element_size() != 2 or z.data_ptr() % 4 != 0:
        words = 0
    elif words == 2 and (v.dtype != z.dtype or v.data_ptr() % 4 != 0):
        words = 1
    maxnreg = (128 if words == 2 else 0) if cfg.maxnreg is None else cfg.maxnreg
    kw = dict(WORDS=words, DT=_DTYPE_IDS.get(z.dtype, 2))
    if maxnreg:
        kw["maxnreg"] = maxnreg
    return kw


def bdlru_chain_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    bsz, seqlen, nblocks, m = v.shape
    bt, bn, nt, ntt, warps = _chain_config(seqlen, nblocks, m, bwd=False)
    agg_only = int(settings("chain", m, "fwd").agg_only)
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    flags, agg, inc = lookback_buffers(bsz, ntt, nblocks, nt, m, v.device)
    _bdlru_chain_fwd_kernel[(ntt * bsz * nt,)](
        z, v, h0, h, final, flags, agg, inc, bsz, seqlen, nblocks, nt, ntt,
        M=m, BT=bt, BN=bn, NORM=NORM_IDS[norm], AGG_ONLY=agg_only, num_warps=warps, **_fwd_words(z, v, m),
    )  # fmt: skip
    return h, final


def bdlru_chain_bwd(z, v, h0, h, dh, dfinal, norm: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bsz, seqlen, nblocks, m = v.shape
    bt, bn, nt, ntt, warps = _chain_config(seqlen, nblocks, m, bwd=True)
    agg_only = int(settings("chain", m, "bwd").agg_only)
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dh, dfinal, (bsz, nblocks, m))
    flags, agg, inc = lookback_buffers(bsz, ntt, nblocks, nt, m, v.device)
    _bdlru_chain_bwd_kernel[(ntt * bsz * nt,)](
        z, v, h, h0, g, dfinal, dz, dv, dh0, flags, agg, inc, bsz, seqlen, nblocks, nt, ntt,
        M=m, BT=bt, BN=bn, NORM=NORM_IDS[norm], HAS_G=has_g, AGG_ONLY=agg_only, num_warps=warps,
    )  # fmt: skip
    return dz, dv, dh0
