"""Single-pass chained tile scan for BD-LRU with small blocks (m = 1, 2).

One program owns one tile: BN blocks x BT time steps of one batch row. Blocks sit on axis 0: with every load strided,
Triton's layout then puts a warp's lanes on consecutive blocks (near-contiguous addresses) and time in registers and
across warps. The program loads the tile's logits and v once, normalises the gate rows in registers (each gate entry
is its own [BN, BT] tensor, so every normalisation and mat-vec is element-wise), and runs `tl.associative_scan` over
time on the affine maps (A_t, a0_t * v_t). The tile's start state comes from the previous tile through global memory:
a tile publishes its end state as soon as it knows its start (end = M_tile start + e_tile, with (M_tile, e_tile) the
scan's last step), so the serial chain costs one small read and write per tile while the tiles' loads, scans and
stores all overlap. Each program takes a ticket from an atomic counter and derives its tile from it, so a tile's
predecessor has always started before it: the spin-wait cannot deadlock, whatever order programs are launched in.
A carry word packs the fp32 value with a ready flag in one int64, so no memory fence orders value against flag.
Backward runs the same chain in reverse on the adjoint lam_t = g_t + A_{t+1}^T lam_{t+1}, with A_{t+1} recomputed
from logits one step ahead; h_{t-1} is read back from the saved output.
"""

import torch
import triton
import triton.language as tl

from .common import NORM_IDS, _env_int

CHAIN_M = (1, 2)
_READY = 1 << 32


# ---------------------------------------------------------------------------------------------------------------------
# gate rows as separate tensors: phi over (z0, z1) for m = 1 and (z0, z1, z2) for m = 2, and their adjoints


@triton.jit
def _sig(z):
    return 1.0 / (1.0 + tl.exp2(-z * 1.4426950408889634))


@triton.jit
def _phi2(z0, z1, NORM: tl.constexpr):
    if NORM == 0:
        mx = tl.maximum(z0, z1)
        e0 = tl.exp2((z0 - mx) * 1.4426950408889634)
        e1 = tl.exp2((z1 - mx) * 1.4426950408889634)
    elif NORM == 1:
        e0 = _sig(z0)
        e1 = _sig(z1)
    elif NORM == 2:
        e0 = tl.maximum(z0, 0.0)
        e1 = tl.maximum(z1, 0.0)
    if NORM == 3:
        inv = z0 * 0.0 + 1.0
        p0 = z0
        p1 = z1
    else:
        if NORM == 2:
            inv = 1.0 / (e0 + e1 + 1e-6)
        else:
            inv = 1.0 / (e0 + e1)
        p0 = e0 * inv
        p1 = e1 * inv
    return p0, p1, inv


@triton.jit
def _phi3(z0, z1, z2, NORM: tl.constexpr):
    if NORM == 0:
        mx = tl.maximum(tl.maximum(z0, z1), z2)
        e0 = tl.exp2((z0 - mx) * 1.4426950408889634)
        e1 = tl.exp2((z1 - mx) * 1.4426950408889634)
        e2 = tl.exp2((z2 - mx) * 1.4426950408889634)
    elif NORM == 1:
        e0 = _sig(z0)
        e1 = _sig(z1)
        e2 = _sig(z2)
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
            inv = 1.0 / (e0 + e1 + e2 + 1e-6)
        else:
            inv = 1.0 / (e0 + e1 + e2)
        p0 = e0 * inv
        p1 = e1 * inv
        p2 = e2 * inv
    return p0, p1, p2, inv


@triton.jit
def _dphi(z, p, dp, dot, inv, NORM: tl.constexpr):
    """One entry of the closed-form adjoint of phi; dot = sum_k p_k dp_k over the row."""
    if NORM == 0:
        dz = p * (dp - dot)
    elif NORM == 1:
        s = _sig(z)
        dz = (dp - dot) * inv * s * (1.0 - s)
    elif NORM == 2:
        dz = tl.where(z > 0.0, (dp - dot) * inv, 0.0)
    else:
        dz = dp
    return dz


@triton.jit
def _comb1(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


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


# ---------------------------------------------------------------------------------------------------------------------
# ticket, carry words


@triton.jit
def _ticket(ticket_ptr, B, NT, NTT, REVERSE: tl.constexpr):
    ticket = tl.atomic_add(ticket_ptr, 1)
    per = B * NT
    k = ticket // per
    if REVERSE:
        k = NTT - 1 - k
    r = ticket % per
    return k, r // NT, r % NT


@triton.jit
def _publish(ptr, val, mask):
    bits = val.to(tl.uint32, bitcast=True).to(tl.int64)
    tl.atomic_xchg(ptr, bits | 0x100000000, mask=mask, sem="relaxed")


@triton.jit
def _wait(ptr, mask):
    x = tl.load(ptr, mask=mask, other=0x100000000, volatile=True)
    while tl.min((x >> 32).to(tl.int32), axis=0) == 0:
        x = tl.load(ptr, mask=mask, other=0x100000000, volatile=True)
    return x.to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _row(x, sel):
    """The time step of a [BN, BT] tile selected by the [1, BT] mask sel (exactly one true column)."""
    return tl.sum(tl.where(sel, x, 0.0), axis=1)


# ---------------------------------------------------------------------------------------------------------------------
# forward


@triton.jit
def _bdlru_chain_fwd_kernel(
    z_ptr,
    v_ptr,
    h0_ptr,
    h_ptr,
    final_ptr,
    carry_ptr,
    ticket_ptr,
    B,
    T,
    N,
    NT,
    NTT,
    M: tl.constexpr,
    BT: tl.constexpr,
    BN: tl.constexpr,
    NORM: tl.constexpr,
):
    k, b, nt = _ticket(ticket_ptr, B, NT, NTT, False)
    tt = tl.arange(0, BT)
    t = k * BT + tt
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    mask = nmask[:, None] & (t < T)[None, :]
    tok = (b * T + t).to(tl.int64)[None, :] * N + n[:, None]  # (token, block) index
    last = (tt == BT - 1)[None, :]
    sbase = (b * N).to(tl.int64) * M + n * M  # state (b, n, 0)
    cin = carry_ptr + ((k - 1) * B * N).to(tl.int64) * M + sbase
    cout = carry_ptr + (k * B * N).to(tl.int64) * M + sbase
    if M == 1:
        z0 = tl.load(z_ptr + tok * 2, mask=mask, other=0.0).to(tl.float32)
        z1 = tl.load(z_ptr + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + tok, mask=mask, other=0.0).to(tl.float32)
        a, w, _ = _phi2(z0, z1, NORM)
        a = tl.where(mask, a, 1.0)  # identity maps past T keep the scan's last row = the tile's map
        e = tl.where(mask, w * v, 0.0)
        ca, ce = tl.associative_scan((a, e), 1, _comb1)
        ma = _row(ca, last)
        me = _row(ce, last)
        if k == 0:
            s = tl.load(h0_ptr + sbase, mask=nmask, other=0.0)
        else:
            s = _wait(cin, nmask)
        end = ma * s + me
        if k == NTT - 1:
            tl.store(final_ptr + sbase, end, mask=nmask)
        else:
            _publish(cout, end, nmask)
        h = ca * s[:, None] + ce
        tl.store(h_ptr + tok, h.to(h_ptr.dtype.element_ty), mask=mask)
    else:
        zp = z_ptr + tok * 6
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
        v0 = tl.load(v_ptr + tok * 2, mask=mask, other=0.0).to(tl.float32)
        v1 = tl.load(v_ptr + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        p00 = tl.where(mask, p00, 1.0)
        p01 = tl.where(mask, p01, 0.0)
        p10 = tl.where(mask, p10, 0.0)
        p11 = tl.where(mask, p11, 1.0)
        e0 = tl.where(mask, q0 * v0, 0.0)
        e1 = tl.where(mask, q1 * v1, 0.0)
        c00, c01, c10, c11, ce0, ce1 = tl.associative_scan((p00, p01, p10, p11, e0, e1), 1, _comb2)
        if k == 0:
            s0 = tl.load(h0_ptr + sbase, mask=nmask, other=0.0)
            s1 = tl.load(h0_ptr + sbase + 1, mask=nmask, other=0.0)
        else:
            s0 = _wait(cin, nmask)
            s1 = _wait(cin + 1, nmask)
        end0 = _row(c00, last) * s0 + _row(c01, last) * s1 + _row(ce0, last)
        end1 = _row(c10, last) * s0 + _row(c11, last) * s1 + _row(ce1, last)
        if k == NTT - 1:
            tl.store(final_ptr + sbase, end0, mask=nmask)
            tl.store(final_ptr + sbase + 1, end1, mask=nmask)
        else:
            _publish(cout, end0, nmask)
            _publish(cout + 1, end1, nmask)
        h0 = c00 * s0[:, None] + c01 * s1[:, None] + ce0
        h1 = c10 * s0[:, None] + c11 * s1[:, None] + ce1
        tl.store(h_ptr + tok * 2, h0.to(h_ptr.dtype.element_ty), mask=mask)
        tl.store(h_ptr + tok * 2 + 1, h1.to(h_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# backward


@triton.jit
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
    carry_ptr,
    ticket_ptr,
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
):
    """Tile k gets mu = A_{t1}^T lam_{t1} from tile k + 1 (t1 its first step; d final state for the last tile),
    scans lam_t = g_t + alpha_t lam_{t+1} backwards with alpha_t = A_{t+1}^T inside the tile and alpha = I on its
    last row (lam = C mu + c), publishes A_{t0}^T lam_{t0} and writes dlogits, dv; tile 0 writes d h0."""
    k, b, nt = _ticket(ticket_ptr, B, NT, NTT, True)
    tt = tl.arange(0, BT)
    t = k * BT + tt
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    mask = nmask[:, None] & (t < T)[None, :]
    inner = nmask[:, None] & ((tt < BT - 1) & (t + 1 < T))[None, :]  # rows whose alpha is A_{t+1}
    hmask = nmask[:, None] & ((t > 0) & (t < T))[None, :]
    tok = (b * T + t).to(tl.int64)[None, :] * N + n[:, None]
    first = (tt == 0)[None, :]
    sbase = (b * N).to(tl.int64) * M + n * M
    cin = carry_ptr + ((k + 1) * B * N).to(tl.int64) * M + sbase
    cout = carry_ptr + (k * B * N).to(tl.int64) * M + sbase
    if M == 1:
        z0 = tl.load(z_ptr + tok * 2, mask=mask, other=0.0).to(tl.float32)
        z1 = tl.load(z_ptr + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + tok, mask=mask, other=0.0).to(tl.float32)
        a, w, inv = _phi2(z0, z1, NORM)
        an, _, _ = _phi2(
            tl.load(z_ptr + (tok + N) * 2, mask=inner, other=0.0).to(tl.float32),
            tl.load(z_ptr + (tok + N) * 2 + 1, mask=inner, other=0.0).to(tl.float32),
            NORM,
        )
        alpha = tl.where(inner, an, 1.0)
        if HAS_G:
            g = tl.load(g_ptr + tok, mask=mask, other=0.0).to(tl.float32)
        else:
            g = tl.zeros([BN, BT], dtype=tl.float32)
        ca, cg = tl.associative_scan((alpha, g), 1, _comb1, reverse=True)
        ma = _row(ca, first)
        mg = _row(cg, first)
        a_first = _row(a, first)
        if k == NTT - 1:
            mu = tl.load(dfinal_ptr + sbase, mask=nmask, other=0.0)
        else:
            mu = _wait(cin, nmask)
        out = a_first * (ma * mu + mg)
        if k == 0:
            tl.store(dh0_ptr + sbase, out, mask=nmask)
        else:
            _publish(cout, out, nmask)
        lam = ca * mu[:, None] + cg
        hp = tl.load(h_ptr + tok - N, mask=hmask, other=0.0).to(tl.float32)
        if k == 0:
            hp = tl.where(first, tl.load(h0_ptr + sbase, mask=nmask, other=0.0)[:, None], hp)
        da = lam * hp
        dw = lam * v
        dot = a * da + w * dw
        tl.store(dz_ptr + tok * 2, _dphi(z0, a, da, dot, inv, NORM).to(dz_ptr.dtype.element_ty), mask=mask)
        tl.store(dz_ptr + tok * 2 + 1, _dphi(z1, w, dw, dot, inv, NORM).to(dz_ptr.dtype.element_ty), mask=mask)
        tl.store(dv_ptr + tok, (lam * w).to(dv_ptr.dtype.element_ty), mask=mask)
    else:
        zp = z_ptr + tok * 6
        z00 = tl.load(zp, mask=mask, other=0.0).to(tl.float32)
        z01 = tl.load(zp + 1, mask=mask, other=0.0).to(tl.float32)
        z02 = tl.load(zp + 2, mask=mask, other=0.0).to(tl.float32)
        z10 = tl.load(zp + 3, mask=mask, other=0.0).to(tl.float32)
        z11 = tl.load(zp + 4, mask=mask, other=0.0).to(tl.float32)
        z12 = tl.load(zp + 5, mask=mask, other=0.0).to(tl.float32)
        p00, p01, q0, inv0 = _phi3(z00, z01, z02, NORM)
        p10, p11, q1, inv1 = _phi3(z10, z11, z12, NORM)
        zn = zp + N * 6  # the same block one step later
        n00, n01, _, _ = _phi3(
            tl.load(zn, mask=inner, other=0.0).to(tl.float32),
            tl.load(zn + 1, mask=inner, other=0.0).to(tl.float32),
            tl.load(zn + 2, mask=inner, other=0.0).to(tl.float32),
            NORM,
        )
        n10, n11, _, _ = _phi3(
            tl.load(zn + 3, mask=inner, other=0.0).to(tl.float32),
            tl.load(zn + 4, mask=inner, other=0.0).to(tl.float32),
            tl.load(zn + 5, mask=inner, other=0.0).to(tl.float32),
            NORM,
        )
        # alpha = A_{t+1}^T
        a00 = tl.where(inner, n00, 1.0)
        a01 = tl.where(inner, n10, 0.0)
        a10 = tl.where(inner, n01, 0.0)
        a11 = tl.where(inner, n11, 1.0)
        if HAS_G:
            g0 = tl.load(g_ptr + tok * 2, mask=mask, other=0.0).to(tl.float32)
            g1 = tl.load(g_ptr + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        else:
            g0 = tl.zeros([BN, BT], dtype=tl.float32)
            g1 = tl.zeros([BN, BT], dtype=tl.float32)
        c00, c01, c10, c11, cg0, cg1 = tl.associative_scan((a00, a01, a10, a11, g0, g1), 1, _comb2, reverse=True)
        if k == NTT - 1:
            mu0 = tl.load(dfinal_ptr + sbase, mask=nmask, other=0.0)
            mu1 = tl.load(dfinal_ptr + sbase + 1, mask=nmask, other=0.0)
        else:
            mu0 = _wait(cin, nmask)
            mu1 = _wait(cin + 1, nmask)
        l0 = _row(c00, first) * mu0 + _row(c01, first) * mu1 + _row(cg0, first)
        l1 = _row(c10, first) * mu0 + _row(c11, first) * mu1 + _row(cg1, first)
        out0 = _row(p00, first) * l0 + _row(p10, first) * l1
        out1 = _row(p01, first) * l0 + _row(p11, first) * l1
        if k == 0:
            tl.store(dh0_ptr + sbase, out0, mask=nmask)
            tl.store(dh0_ptr + sbase + 1, out1, mask=nmask)
        else:
            _publish(cout, out0, nmask)
            _publish(cout + 1, out1, nmask)
        lam0 = c00 * mu0[:, None] + c01 * mu1[:, None] + cg0
        lam1 = c10 * mu0[:, None] + c11 * mu1[:, None] + cg1
        hp0 = tl.load(h_ptr + (tok - N) * 2, mask=hmask, other=0.0).to(tl.float32)
        hp1 = tl.load(h_ptr + (tok - N) * 2 + 1, mask=hmask, other=0.0).to(tl.float32)
        if k == 0:
            hp0 = tl.where(first, tl.load(h0_ptr + sbase, mask=nmask, other=0.0)[:, None], hp0)
            hp1 = tl.where(first, tl.load(h0_ptr + sbase + 1, mask=nmask, other=0.0)[:, None], hp1)
        v0 = tl.load(v_ptr + tok * 2, mask=mask, other=0.0).to(tl.float32)
        v1 = tl.load(v_ptr + tok * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        d00 = lam0 * hp0
        d01 = lam0 * hp1
        d02 = lam0 * v0
        d10 = lam1 * hp0
        d11 = lam1 * hp1
        d12 = lam1 * v1
        dot0 = p00 * d00 + p01 * d01 + q0 * d02
        dot1 = p10 * d10 + p11 * d11 + q1 * d12
        dzp = dz_ptr + tok * 6
        ty = dz_ptr.dtype.element_ty
        tl.store(dzp, _dphi(z00, p00, d00, dot0, inv0, NORM).to(ty), mask=mask)
        tl.store(dzp + 1, _dphi(z01, p01, d01, dot0, inv0, NORM).to(ty), mask=mask)
        tl.store(dzp + 2, _dphi(z02, q0, d02, dot0, inv0, NORM).to(ty), mask=mask)
        tl.store(dzp + 3, _dphi(z10, p10, d10, dot1, inv1, NORM).to(ty), mask=mask)
        tl.store(dzp + 4, _dphi(z11, p11, d11, dot1, inv1, NORM).to(ty), mask=mask)
        tl.store(dzp + 5, _dphi(z12, q1, d12, dot1, inv1, NORM).to(ty), mask=mask)
        tl.store(dv_ptr + tok * 2, (lam0 * q0).to(dv_ptr.dtype.element_ty), mask=mask)
        tl.store(dv_ptr + tok * 2 + 1, (lam1 * q1).to(dv_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# launch


def use_chain(m: int) -> bool:
    """m in CHAIN_M takes the chained kernels unless HLRU_CHAIN=0 (the generic chunked kernels, for comparison)."""
    return m in CHAIN_M and _env_int("HLRU_CHAIN", 1) == 1


def _chain_config(bsz: int, seqlen: int, nblocks: int, m: int) -> tuple[int, int, int, int, int]:
    bt = min(_env_int("HLRU_CHAIN_BT", 64), max(16, triton.next_power_of_2(seqlen)))
    bn = min(_env_int("HLRU_CHAIN_BN", 64 if m == 1 else 32), max(16, triton.next_power_of_2(nblocks)))
    warps = _env_int("HLRU_CHAIN_WARPS", 4)
    return bt, bn, triton.cdiv(nblocks, bn), triton.cdiv(seqlen, bt), warps


def _carry_buffers(bsz: int, ntt: int, nblocks: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    buf = torch.zeros(1 + ntt * bsz * nblocks * m, dtype=torch.int64, device=device)
    return buf[1:], buf[:1]


def bdlru_chain_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str):
    bsz, seqlen, nblocks, m = v.shape
    bt, bn, nt, ntt, warps = _chain_config(bsz, seqlen, nblocks, m)
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    carry, ticket = _carry_buffers(bsz, ntt, nblocks, m, v.device)
    _bdlru_chain_fwd_kernel[(ntt * bsz * nt,)](
        z, v, h0, h, final, carry, ticket, bsz, seqlen, nblocks, nt, ntt,
        M=m, BT=bt, BN=bn, NORM=NORM_IDS[norm], num_warps=warps,
    )  # fmt: skip
    return h, final


def bdlru_chain_bwd(z, v, h0, h, dh, dfinal, norm: str):
    bsz, seqlen, nblocks, m = v.shape
    bt, bn, nt, ntt, warps = _chain_config(bsz, seqlen, nblocks, m)
    has_g = dh is not None
    g = dh.contiguous() if has_g else v
    if dfinal is None:
        dfinal = torch.zeros(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    dfinal = dfinal.float().contiguous()
    dz = torch.empty_like(z)
    dv = torch.empty_like(v)
    dh0 = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    carry, ticket = _carry_buffers(bsz, ntt, nblocks, m, v.device)
    _bdlru_chain_bwd_kernel[(ntt * bsz * nt,)](
        z, v, h, h0, g, dfinal, dz, dv, dh0, carry, ticket, bsz, seqlen, nblocks, nt, ntt,
        M=m, BT=bt, BN=bn, NORM=NORM_IDS[norm], HAS_G=has_g, num_warps=warps,
    )  # fmt: skip
    return dz, dv, dh0
