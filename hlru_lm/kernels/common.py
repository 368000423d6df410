"""Shared Triton helpers: word packing, in-register gate normalisation and its closed-form adjoint, the decoupled
look-back of the tile scans (tile order, flags, the m = 1 maps), warp shuffles and L2 prefetches, and the generic
kernels' chunk carry. Every kernel family imports its shared pieces from here, none from another family."""

import torch
import triton
import triton.language as tl

SUPPORTED_M = (1, 2, 4, 8, 16)
NORM_IDS = {"softmax": 0, "sigmoid_l1": 1, "relu_l1": 2, "none": 3}
LOG2E = tl.constexpr(1.4426950408889634)
RELU_EPS = tl.constexpr(1e-6)  # relu_l1's eps in the row sum: must equal hlru_lm.ops.RELU_L1_EPS

_DTYPE_IDS = {torch.bfloat16: 0, torch.float16: 1, torch.float32: 2}


@triton.jit
def _as_words(ptr, WORD: tl.constexpr):
    """ptr as a pointer to WORD-bit words (bdlru_tile._launch_args); WORD = 0 keeps it."""
    if WORD == 64:
        return ptr.to(tl.pointer_type(tl.int64), bitcast=True)
    elif WORD == 32:
        return ptr.to(tl.pointer_type(tl.int32), bitcast=True)
    else:  # H-LRU: element loads
        return ptr


@triton.jit
def _unpack(w, slot, DT: tl.constexpr, WORD: tl.constexpr):
    """Logits from their words w (int64 or int32), slot = position of the logit in its word."""
    if WORD == 64:
        if DT == 2:  # fp32: two per word
            return tl.where(slot == 0, w, w >> 32).to(tl.int32).to(tl.float32, bitcast=True)
        half = tl.where(slot < 2, w, w >> 32).to(tl.int32)
        sub = slot % 2
    else:
        if DT == 2:
            return w.to(tl.float32, bitcast=True)
        half = w
        sub = slot
    if DT == 0:  # bf16: the top 16 bits of an fp32
        bits = tl.where(sub == 0, half << 16, half & -65536)
        return bits.to(tl.float32, bitcast=True)
    bits = tl.where(sub == 0, half, half >> 16) & 65535
    return bits.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _half(w, HI: tl.constexpr, DT: tl.constexpr):
    """The low (HI = 0) or high (HI = 1) 2-byte value of int32 words w as fp32 (DT 0: bf16, 1: fp16)."""
    if DT == 0:  # bf16: the top 16 bits of an fp32
        return (w & -65536 if HI else w << 16).to(tl.float32, bitcast=True)
    bits = (w >> 16 if HI else w) & 65535
    return bits.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _bits(x, DT: tl.constexpr, WORD: tl.constexpr):
    """x (fp32) rounded to the logits' dtype, as its raw bits in the low 16 (bf16, fp16) or 32 (fp32) bits of
    WORD-bit integers."""
    if DT == 2:
        b = x.to(tl.int32, bitcast=True)
    else:
        y = x.to(tl.bfloat16) if DT == 0 else x.to(tl.float16)
        b = y.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    if WORD == 64:
        b = b.to(tl.int64) & 0xFFFFFFFF
    return b


@triton.jit
def _pack(lo, hi, DT: tl.constexpr):
    """Two fp32 tensors rounded to bf16 (DT 0) or fp16 (DT 1), packed as int32 words (lo in the low half)."""
    return _bits(lo, DT, 32) | (_bits(hi, DT, 32) << 16)


# Inline asm on the GPU only: the interpreter (CPU tests) runs none. Triton fixes interpreter mode when the kernels
# are defined, and this flag is read then too (through Triton's own setting, TRITON_INTERPRET).
INTERPRETED = bool(triton.knobs.runtime.interpret)
_ASM = tl.constexpr(not INTERPRETED)


@triton.jit
def _rcp(x, FAST: tl.constexpr):
    """1 / x for the row sums of phi, which lie in [1e-6, inf]. FAST: one MUFU.RCP on the GPU; `1.0 / x` compiles to
    div.full.f32, whose range checks cost ~7 more instructions."""
    if FAST and _ASM:
        return tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)  # fmt: skip
    else:
        return 1.0 / x


@triton.jit
def _exp_shift(z, mx, FAST: tl.constexpr):
    """exp(z - mx). FAST: exp2(z log2e - mx log2e), one FFMA per entry (mx log2e is shared by the row) instead of an
    FADD and an FMUL."""
    if FAST:
        return tl.exp2(z * LOG2E - mx * LOG2E)
    else:
        return tl.exp2((z - mx) * LOG2E)


@triton.jit
def _sigmoid(z, FAST: tl.constexpr):
    return _rcp(1.0 + tl.exp2(-z * LOG2E), FAST)


@triton.jit
def _sig_l1(z, mx, FAST: tl.constexpr):
    """sigmoid_l1's unnormalised term sigma(z) e^{-min(mx, 0)}, mx the row max: a factor common to the row, so phi is
    unchanged, but the row sum stays >= 1/2 where every sigma(z) of the row underflows fp32 (z < -88.7: 0 / 0)."""
    return _exp_shift(tl.minimum(z, 0.0), tl.minimum(mx, 0.0), FAST) * _sigmoid(tl.abs(z), FAST)


@triton.jit
def _sig_l1_dz(z, p, dp, dot, FAST: tl.constexpr):
    """Adjoint of sigmoid_l1 for one entry: dz = p (1 - sigma(z)) (dp - <p, dp>), with 1 - sigma(z) = sigma(-z) (no
    cancellation, no 1 / row sum that could overflow)."""
    return (dp - dot) * p * _sigmoid(-z, FAST)


@triton.jit
def _at(x, tt, r):
    """Step r of an [L, BT] int32 tensor whose time axis lies in each thread: the selects fold to a register pick."""
    return tl.sum(tl.where((tt == r)[None, :], x, 0), axis=1)


@triton.jit
def _opaque(x):
    """x (int32) through an asm copy the compiler cannot see through, on the GPU (the interpreter runs no asm): the
    raw-word forwards recompute the gates after the look-back, and LLVM would otherwise keep the first pass's."""
    if _ASM:
        return tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=False, pack=1)
    else:
        return x


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


@triton.jit
def _phi_terms(zA, za, NORM: tl.constexpr, AX: tl.constexpr, FAST: tl.constexpr):
    """phi over rows made of zA[..., :] (last axis) and za[...], unnormalised: (eA, ea, inv) with phi = (eA, ea) * inv.
    A mat-vec can then scale its m row results instead of the m(m + 1) entries. FAST: the short forms of _rcp and
    _exp_shift. They cut the tile kernels' instructions (m = 4 forward: -17% per step) and made the m = 1 backward
    12% faster, but the generic kernels at m = 16 4-5% slower (NOTES v12a), which keep the exact forms."""
    if NORM == 0:  # softmax via exp2, one reciprocal per row
        mx = tl.maximum(tl.max(zA, axis=AX), za)
        eA = _exp_shift(zA, tl.expand_dims(mx, AX), FAST)
        ea = _exp_shift(za, mx, FAST)
        inv = _rcp(tl.sum(eA, axis=AX) + ea, FAST)
    elif NORM == 1:  # sigmoid_l1
        mx = tl.maximum(tl.max(zA, axis=AX), za)
        eA = _sig_l1(zA, tl.expand_dims(mx, AX), FAST)
        ea = _sig_l1(za, mx, FAST)
        inv = _rcp(tl.sum(eA, axis=AX) + ea, FAST)
    elif NORM == 2:  # relu_l1
        eA = tl.maximum(zA, 0.0)
        ea = tl.maximum(za, 0.0)
        inv = _rcp(tl.sum(eA, axis=AX) + ea + RELU_EPS, FAST)
    else:
        eA = zA
        ea = za
        inv = za * 0.0 + 1.0
    return eA, ea, inv


@triton.jit
def _norm_rows(zA, za, NORM: tl.constexpr, AX: tl.constexpr, FAST: tl.constexpr):
    """phi over rows made of zA[..., :] (last axis) and za[...]: returns (pA, pa, inv) with inv = 1/row-sum term."""
    eA, ea, inv = _phi_terms(zA, za, NORM, AX, FAST)
    if NORM == 3:
        return eA, ea, inv
    else:
        return eA * tl.expand_dims(inv, AX), ea * inv, inv


@triton.jit
def _norm_rows_bwd(zA, za, pA, pa, inv, dpA, dpa, NORM: tl.constexpr, AX: tl.constexpr, FAST: tl.constexpr):
    """Closed-form adjoint of _norm_rows: (dzA, dza) from dP."""
    if NORM == 3:
        dzA = dpA
        dza = dpa
    else:
        dot = tl.sum(pA * dpA, axis=AX) + pa * dpa
        dotx = tl.expand_dims(dot, AX)
        if NORM == 0:
            dzA = pA * (dpA - dotx)
            dza = pa * (dpa - dot)
        elif NORM == 1:
            dzA = _sig_l1_dz(zA, pA, dpA, dotx, FAST)
            dza = _sig_l1_dz(za, pa, dpa, dot, FAST)
        else:
            invx = tl.expand_dims(inv, AX)
            dzA = tl.where(zA > 0.0, (dpA - dotx) * invx, 0.0)
            dza = tl.where(za > 0.0, (dpa - dot) * inv, 0.0)
    return dzA, dza


def bwd_buffers(z: torch.Tensor, v: torch.Tensor, dout, dfinal, state_shape: tuple[int, ...]):
    """Shared backward set-up: (has_g, g, dfinal, dz, dv, dh0). A missing output gradient passes v as a never-read
    placeholder (HAS_G=False); a missing final-state gradient becomes zeros; state gradients are fp32."""
    has_g = dout is not None
    g = dout.contiguous() if has_g else v
    if dfinal is None:
        dfinal = torch.zeros(state_shape, dtype=torch.float32, device=v.device)
    dfinal = dfinal.float().contiguous()
    dh0 = torch.empty(state_shape, dtype=torch.float32, device=v.device)
    return has_g, g, dfinal, torch.empty_like(z), torch.empty_like(v), dh0


@triton.jit
def _tile_offsets(pid_nt, NT, N, M: tl.constexpr, BN: tl.constexpr, ONE, SCALAR: tl.constexpr):
    """Offsets of a (BN blocks) x (m rows) x (m entries) tile. SCALAR: the unit strides inside a block are multiplied
    by ONE, a runtime 1 that Triton may not specialise. Seeing no contiguous axis, Triton then puts a warp's lanes on
    blocks and a block's m x m entries in one thread's registers, so row sums and mat-vecs need no shuffles (without
    it, lanes go to the contiguous entry axis). Measured faster at m = 4 and at m = 8, where it spills (v9)."""
    if SCALAR:
        unit = ONE
    else:
        unit = 1
    b = pid_nt // NT
    n = (pid_nt % NT) * BN + tl.arange(0, BN)
    ii = tl.arange(0, M)
    jj = tl.arange(0, M)
    nmask = n < N
    offA = n[:, None, None] * (M * (M + 1)) + ii[None, :, None] * (M + 1) + jj[None, None, :] * unit
    offa = n[:, None] * (M * (M + 1)) + ii[None, :] * (M + 1) + M
    offv = n[:, None] * M + ii[None, :] * unit
    mask3 = nmask[:, None, None] & (jj[None, None, :] < M)
    mask2 = nmask[:, None] & (ii[None, :] < M)
    return b, ii, jj, offA, offa, offv, mask3, mask2


@triton.jit(do_not_specialize=["ONE"])
def _chunk_carry_kernel(
    e_ptr,
    mat_ptr,
    init_ptr,
    out_ptr,
    N,
    NT,
    NC,
    ONE,
    M: tl.constexpr,
    BN: tl.constexpr,
    REVERSE: tl.constexpr,
    SCALAR: tl.constexpr,
):
    """Forward: out[c] = start of chunk c, start_0 = init, start_{c+1} = M_c start_c + e_c.
    Reverse: out[c] = adjoint entering chunk c from the future, out[NC-1] = init, out[c-1] = M_c out[c] + e_c."""
    pid_nt = tl.program_id(0)
    b, ii, jj, offA, offa, offv, mask3, mask2 = _tile_offsets(pid_nt, NT, N, M, BN, ONE, SCALAR)
    s = tl.load(init_ptr + (b * N).to(tl.int64) * M + offv, mask=mask2, other=0.0)
    for k in range(0, NC):
        if REVERSE:
            c = NC - 1 - k
        else:
            c = k
        base = ((b * NC + c) * N).to(tl.int64) * M
        tl.store(out_ptr + base + offv, s, mask=mask2)
        if REVERSE:
            last = c == 0
        else:
            last = c == NC - 1
        if not last:
            mat = tl.load(mat_ptr + base * M + (offv * M)[:, :, None] + jj[None, None, :], mask=mask3, other=0.0)
            e = tl.load(e_ptr + base + offv, mask=mask2, other=0.0)
            s = tl.sum(mat * s[:, None, :], axis=2) + e


# ---------------------------------------------------------------------------------------------------------------------
# gate rows as separate tensors (diag_tile.py): phi over (z0, z1) for m = 1 and its adjoint


@triton.jit
def _phi2(z0, z1, NORM: tl.constexpr, FAST: tl.constexpr):
    """FAST: common._rcp / _exp_shift's short forms (diag_tile.py's kernels; the chained ones keep the exact forms)."""
    if NORM == 0:
        mx = tl.maximum(z0, z1)
        e0 = _exp_shift(z0, mx, FAST)
        e1 = _exp_shift(z1, mx, FAST)
    elif NORM == 1:
        mx = tl.maximum(z0, z1)
        e0 = _sig_l1(z0, mx, FAST)
        e1 = _sig_l1(z1, mx, FAST)
    elif NORM == 2:
        e0 = tl.maximum(z0, 0.0)
        e1 = tl.maximum(z1, 0.0)
    if NORM == 3:
        inv = z0 * 0.0 + 1.0
        p0 = z0
        p1 = z1
    else:
        if NORM == 2:
            inv = _rcp(e0 + e1 + RELU_EPS, FAST)
        else:
            inv = _rcp(e0 + e1, FAST)
        p0 = e0 * inv
        p1 = e1 * inv
    return p0, p1, inv


@triton.jit
def _dphi(z, p, dp, dot, inv, NORM: tl.constexpr, FAST: tl.constexpr):
    """One entry of the closed-form adjoint of phi; dot = sum_k p_k dp_k over the row."""
    if NORM == 0:
        dz = p * (dp - dot)
    elif NORM == 1:
        dz = _sig_l1_dz(z, p, dp, dot, FAST)
    elif NORM == 2:
        dz = tl.where(z > 0.0, (dp - dot) * inv, 0.0)
    else:
        dz = dp
    return dz


@triton.jit
def _dphi2(z0, z1, a, w, inv, lam, hp, v, NORM: tl.constexpr, FAST: tl.constexpr):
    """m = 1: the gradients of one step's two logits, whose row is (a, w) = phi(z0, z1) (inv from _phi2), from lam,
    h_{t-1} and v: dP = (lam h_{t-1}, lam v)."""
    da = lam * hp
    dw = lam * v
    dot = a * da + w * dw
    return _dphi(z0, a, da, dot, inv, NORM, FAST), _dphi(z1, w, dw, dot, inv, NORM, FAST)


@triton.jit
def _comb1(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


# ---------------------------------------------------------------------------------------------------------------------
# tile order and decoupled look-back (bdlru_chain.py, bdlru_tile.py, diag_tile.py): flag[tile] = 1 once the tile's own
# map (M, e) is in agg, 2 once the state leaving it is in inc. A waiting tile composes the maps of the tiles in between
# until it meets a finished one, so no tile waits for a serial chain through all its predecessors.


@triton.jit
def _tile(B, NT, NTT, REVERSE: tl.constexpr):
    """(tile k, batch b, block tile nt) of this program. Program ids run time-major, so a tile's predecessors in its
    chain (b, nt) have lower ids; the GPU launches programs in increasing id order (the assumption CUB's single-pass
    scan makes too), so every tile a look-back waits on has started and the spin-wait cannot deadlock."""
    pid = tl.program_id(0)
    per = B * NT
    k = pid // per
    if REVERSE:
        k = NTT - 1 - k
    chain = pid % per
    return k, chain // NT, chain % NT


@triton.jit
def _signal(flag_ptr, val):
    tl.debug_barrier()  # every lane's values are stored before the flag is raised (release orders them)
    tl.atomic_xchg(flag_ptr, val, sem="release", scope="gpu")


@triton.jit
def _poll(flag_ptr):
    return tl.atomic_add(flag_ptr, 0, sem="acquire", scope="gpu")


@triton.jit
def _lookback1(flag_ptr, agg_ptr, inc_ptr, k, STEP: tl.constexpr, B, b, N, n, nmask, NT, nt, ma, me):
    """m = 1: publish this tile's map x -> ma x + me, return the state entering it (tiles k+STEP, k+2 STEP, ...)."""
    row = (k * B + b).to(tl.int64) * N + n
    tl.store(agg_ptr + row * 2, ma, mask=nmask)
    tl.store(agg_ptr + row * 2 + 1, me, mask=nmask)
    _signal(flag_ptr + (k * B + b) * NT + nt, 1)
    acc_a = ma * 0.0 + 1.0
    acc_e = ma * 0.0
    s = ma * 0.0
    j = k + STEP
    done = k * 0
    while done == 0:
        f = _poll(flag_ptr + (j * B + b) * NT + nt)
        rj = (j * B + b).to(tl.int64) * N + n
        if f == 2:
            s = acc_a * tl.load(inc_ptr + rj, mask=nmask, other=0.0, volatile=True) + acc_e
            done = k * 0 + 1
        elif f == 1:
            acc_e = acc_a * tl.load(agg_ptr + rj * 2 + 1, mask=nmask, other=0.0, volatile=True) + acc_e
            acc_a = acc_a * tl.load(agg_ptr + rj * 2, mask=nmask, other=0.0, volatile=True)
            j += STEP
    return s


@triton.jit
def _finish(flag_ptr, inc_ptr, k, K0, B, b, N, n, nmask, NT, nt, M: tl.constexpr, x0, x1, AGG_ONLY: tl.constexpr):
    """Publish the state leaving tile k (x1 unused for m = 1). AGG_ONLY (tests): only the chain's first tile K0
    publishes it, so every look-back composes maps back to K0, a path a sequential interpreter never takes."""
    if (k == K0).to(tl.int32) + (1 - AGG_ONLY) > 0:
        q = inc_ptr + (k * B + b).to(tl.int64) * N * M + n  # planar at m = 2 (_lookback2)
        tl.store(q, x0, mask=nmask)
        if M == 2:
            tl.store(q + N, x1, mask=nmask)
        _signal(flag_ptr + (k * B + b) * NT + nt, 2)


def lookback_buffers(bsz: int, ntt: int, nblocks: int, nt: int, m: int, device) -> tuple[torch.Tensor, ...]:
    """Flags (one int32 per tile), tile maps and tile end states (each written before it is read). A look-back polls
    its predecessors' flags, so they start at zero; with one time tile (a decode step) nothing polls, and the flags
    are left unzeroed: one kernel fewer per call."""
    flags = (torch.zeros if ntt > 1 else torch.empty)(ntt * bsz * nt, dtype=torch.int32, device=device)
    agg = torch.empty(ntt * bsz * nblocks * (m * m + m), dtype=torch.float32, device=device)
    inc = torch.empty(ntt * bsz * nblocks * m, dtype=torch.float32, device=device)
    return flags, agg, inc


# ---------------------------------------------------------------------------------------------------------------------
# lanes that share a row or channel (bdlru_rows.py, hlru_lags.py)


@triton.jit
def _butterfly(x, r, S: tl.constexpr, K: tl.constexpr, MAX: tl.constexpr):
    """max (MAX) or sum of x over K lanes r ^ S, r ^ 2 S, ... (log2 K shuffles)."""
    if K == 1:
        return x
    else:
        y = _butterfly(x, r, S, K // 2, MAX)
        o = tl.gather(y, r ^ (S * (K // 2)), 0)
        if MAX:
            return tl.maximum(y, o)
        else:
            return y + o


@triton.jit
def _pf(q, ok):
    """prefetch.global.L2 of the addresses q where ok (inline PTX; nothing in the interpreter). Prefetches cost no
    registers, so they can run far ahead of the loads, which then wait on L2 instead of DRAM: ptxas schedules a
    group's register loads late in the loop body (after the gates, to save registers), too late to hide DRAM latency
    with one warp per scheduler (v15b: half of each warp's stall cycles on them; v15c: PF 32 took 24-35% off)."""
    if _ASM:
        tl.inline_asm_elementwise(
            "{ .reg .pred q; setp.ne.b32 q, $2, 0; @q prefetch.global.L2 [$1]; mov.u32 $0, 0; }",
            "=r,l,r", [q.to(tl.int64), ok.to(tl.int32)], dtype=tl.int32, is_pure=False, pack=1,
        )  # fmt: skip
