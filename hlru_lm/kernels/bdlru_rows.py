"""Row-per-lane kernels for the BD-LRU at larger m: each block's recurrence in time order, forward (`_rows_fwd_kernel`)
and backward (`_rows_bwd_kernel`).

The look-back tile scans (bdlru_tile.py) give a lane a whole block and compose its m x m carry map: m^3 FMA per
block-step and m^2 + m(m + 1) values per lane, which spill at m = 8 and do not fit at m = 16 (NOTES "What limits
it"). Here no maps are formed. A lane owns row i of block n:
  - it reads the row's m + 1 logits and normalises them in its registers (for 2-byte dtypes as (m + 2) / 2 32-bit
    words: a row is 2(m + 1) bytes at a 2-byte offset, so a word load serves two logits);
  - h_{t-1} of its block reaches it from the block's m lanes by m warp shuffles (tl.gather inside one warp);
  - h_t[i] = inv (sum_j e_ij h_{t-1}[j] + e_im v_t[i]): m FMA per step.
Parallelism is one lane per row, B N m lanes, each walking all T steps; so a lane keeps many bytes in flight: the
loads of the next U steps are issued before the current U steps are computed (double buffering in registers), and L2
prefetches run PF steps further ahead. With P lanes per row (P = 2 at m = 16) each lane takes m / P columns, and the
row's max, sum and mat-vec are combined over its lanes by shuffles: twice the warps, each with a shorter chain. The
backward runs the reverse adjoint the same way, its column sums over the block's rows by a reduce-scatter of
shuffles.
"""

import torch
import triton
import triton.language as tl

from .common import (
    _DTYPE_IDS,
    NORM_IDS,
    RELU_EPS,
    _butterfly,
    _exp_shift,
    _half,
    _pf,
    _rcp,
    _sig_l1,
    _sig_l1_dz,
    bwd_buffers,
)
from .config import settings


@triton.jit
def _rows(pid, NR, N, T, zw_ptr, step, M: tl.constexpr, WORDS: tl.constexpr, P: tl.constexpr):
    """A program's 32 lanes: 32 / P rows (32 / (m P) blocks) of one batch row, P lanes per row, lane part k of a row
    holding its columns k m / P .. (k + 1) m / P - 1 (and the last part column m). Returns (b, lane r, row g = n m +
    i, part k, valid, the block's first lane, the row's logits start at an odd 2-byte offset, step sizes SZ of the
    logits and SV of v / h (elements, or words with WORDS), the part's logits pointer at time step `step`)."""
    b = pid // NR
    r = tl.arange(0, 32)
    g = (pid % NR) * (32 // P) + r // P
    k = r % P
    ok = g < N * M
    odd = ((g * (M + 1)) % 2) == 1
    SV = (N * M).to(tl.int64)
    row = (b * T + step).to(tl.int64)
    e0 = g * (M + 1) + k * (M // P)  # the part's first logit; M / P is even, so it has the row's parity
    if WORDS:
        SZ = (N * (M * (M + 1) // 2)).to(tl.int64)
        zq = zw_ptr + row * SZ + e0 // 2
    else:
        SZ = SV * (M + 1)
        zq = zw_ptr + row * SZ + e0
    return b, r, g, k, ok, (r // (M * P)) * (M * P), odd, SZ, SV, row * SV, zq


@triton.jit
def _raw_row(zt, okt, W: tl.constexpr, WORDS: tl.constexpr):
    """One step's raw logits of the lane at zt: W (odd) logits as (W + 1) / 2 32-bit words (WORDS) or W elements."""
    raw = ()
    for k in tl.static_range((W + 1) // 2 if WORDS else W):
        raw = raw + (tl.load(zt + k, mask=okt, other=0),)
    return raw


@triton.jit
def _load_group(zq, vq, SZ, SV, t0, T, ok, W: tl.constexpr, U: tl.constexpr, WORDS: tl.constexpr):
    """Steps t0 .. t0 + U - 1 as U (raw logits, v_t[row]). zq, vq point at the row in step t0 and a step is SZ, SV
    further, so a step's loads differ by immediates and their addresses cost one 64-bit add."""
    group = ()
    for u in tl.static_range(U):
        okt = (ok & (t0 + u < T)) != 0  # != 0: the interpreter takes only bool masks
        group = group + ((_raw_row(zq + u * SZ, okt, W, WORDS), tl.load(vq + u * SV, mask=okt, other=0.0)),)
    return group


@triton.jit
def _pf_step(zt, vt, okt, W: tl.constexpr, WORDS: tl.constexpr):
    """L2 prefetches of one step of the lane: its first and last logit word (W logits span one or two 32-byte
    sectors) and v."""
    _pf(zt, okt)
    _pf(zt + ((W + 1) // 2 if WORDS else W) - 1, okt)
    _pf(vt, okt)


@triton.jit
def _row_logits(raw, odd, W: tl.constexpr, WORDS: tl.constexpr, DT: tl.constexpr):
    """The lane's W logits (fp32). With WORDS, logit j is element odd + j of the words' 16-bit sequence."""
    zs = ()
    if WORDS:
        seq = ()
        for k in tl.static_range((W + 1) // 2):
            seq = seq + (_half(raw[k], False, DT), _half(raw[k], True, DT))
        for j in tl.static_range(W):
            zs = zs + (tl.where(odd, seq[j + 1], seq[j]),)
    else:
        for j in tl.static_range(W):
            zs = zs + (raw[j].to(tl.float32),)
    return zs


@triton.jit
def _tree(xs, LO: tl.constexpr, K: tl.constexpr, MAX: tl.constexpr):
    """max (MAX) or sum of xs[LO : LO + K] as a pairwise tree: log2 K dependent steps instead of K."""
    if K == 1:
        return xs[LO]
    else:
        a = _tree(xs, LO, K // 2, MAX)
        b = _tree(xs, LO + K // 2, K - K // 2, MAX)
        if MAX:
            return tl.maximum(a, b)
        else:
            return a + b


@triton.jit
def _over_parts(x, r, P: tl.constexpr, MAX: tl.constexpr):
    """max (MAX) or sum of x over the P lanes of each row."""
    return _butterfly(x, r, 1, P, MAX)


@triton.jit
def _row_phi(zs, r, k, C: tl.constexpr, P: tl.constexpr, NORM: tl.constexpr, FAST: tl.constexpr):
    """The unnormalised phi terms e of the lane's C + 1 logits and the reciprocal row sum (phi = e inv). With P parts
    per row the lane's last logit is the next part's first (counted there) except in the last part (column m)."""
    if NORM <= 1:  # softmax, sigmoid_l1: the row max; any logit of the row may be counted twice
        mx = _over_parts(_tree(zs, 0, C + 1, True), r, P, True)
    es = ()
    for j in tl.static_range(C + 1):
        if NORM == 0:
            es = es + (_exp_shift(zs[j], mx, FAST),)
        elif NORM == 1:
            es = es + (_sig_l1(zs[j], mx, FAST),)
        elif NORM == 2:
            es = es + (tl.maximum(zs[j], 0.0),)
        else:
            es = es + (zs[j],)
    if P > 1:
        es = es[:C] + (tl.where(k == P - 1, es[C], 0.0),)
    if NORM == 3:
        inv = tl.full(zs[0].shape, 1.0, tl.float32)
    elif NORM == 2:
        inv = _rcp(_over_parts(_tree(es, 0, C + 1, False), r, P, False) + RELU_EPS, FAST)
    else:
        inv = _rcp(_over_parts(_tree(es, 0, C + 1, False), r, P, False), FAST)
    return es, inv


@triton.jit
def _row_matvec(es, ev, inv, h, src, r, C: tl.constexpr, P: tl.constexpr):
    """h_t[row] = inv (sum_j e_ij h_{t-1}[j] + e_im v_t[row]) over the lane's C columns, h_{t-1}[j] from lane src +
    j P, then summed over the row's P lanes; four partial sums shorten the FMA chain that h_{t-1} feeds."""
    NA: tl.constexpr = 4 if C >= 4 else C
    accs = ()
    for a in tl.static_range(NA):
        accs = accs + (tl.gather(h, src + a * P, 0) * es[a],)
    for j in tl.static_range(NA, C):
        accs = accs[: j % NA] + (accs[j % NA] + es[j] * tl.gather(h, src + j * P, 0),) + accs[j % NA + 1 :]
    return _over_parts(_tree(accs, 0, NA, False) + ev, r, P, False) * inv


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
    P: tl.constexpr,
    U: tl.constexpr,
    PF: tl.constexpr,
    NORM: tl.constexpr,
    WORDS: tl.constexpr,
    DT: tl.constexpr,
    FAST: tl.constexpr,
):
    """One warp: 32 / P rows (32 / (m P) blocks) of one batch row, P lanes per row, all T steps. NR: row tiles per
    batch row."""
    C: tl.constexpr = M // P
    b, r, g, k, ok, lane0, odd, SZ, SV, s0, zq = _rows(tl.program_id(0), NR, N, T, zw_ptr, 0, M, WORDS, P)
    h = tl.load(h0_ptr + (b * N * M).to(tl.int64) + g, mask=ok, other=0.0)
    src = lane0 + k * (C * P)  # the lane of the block's row k C (part 0)
    vq = v_ptr + s0 + g
    hq = h_ptr + s0 + g
    cur = _load_group(zq, vq, SZ, SV, 0, T, ok, C + 1, U, WORDS)
    for t0 in range(0, T, U):
        zq += U * SZ
        vq += U * SV
        nxt = _load_group(zq, vq, SZ, SV, t0 + U, T, ok, C + 1, U, WORDS)
        if PF > 0:
            for u in tl.static_range(U):
                _pf_step(zq + (PF + u) * SZ, vq + (PF + u) * SV, ok & (t0 + U + PF + u < T), C + 1, WORDS)
        # the group's gates first: they do not depend on h, so the steps' latency chains overlap
        gates = ()
        for u in tl.static_range(U):
            raw, vv = cur[u]
            es, inv = _row_phi(_row_logits(raw, odd, C + 1, WORDS, DT), r, k, C, P, NORM, FAST)
            gates = gates + ((es, es[C] * vv.to(tl.float32), inv),)
        for u in tl.static_range(U):
            es, ev, inv = gates[u]
            hn = _row_matvec(es, ev, inv, h, src, r, C, P)
            tin = t0 + u < T
            tl.store(hq + u * SV, hn.to(h_ptr.dtype.element_ty), mask=(ok & tin & (k == 0)) != 0)
            h = tl.where(tin, hn, h)
        hq += U * SV
        cur = nxt
    tl.store(final_ptr + (b * N * M).to(tl.int64) + g, h, mask=(ok & (k == 0)) != 0)


@triton.jit
def _load_group_bwd(zq, vq, hq, gq, SZ, SV, t0, ok, W: tl.constexpr, U: tl.constexpr, WORDS: tl.constexpr,
                    HAS_G: tl.constexpr):  # fmt: skip
    """Steps t0, t0 - 1, ..., t0 - U + 1 as U (W raw logits, v_t, h_{t-1}, dh_t) of the lane (h_{-1}: not loaded, the
    kernel takes h0). The pointers are at step t0."""
    group = ()
    for u in tl.static_range(U):
        t = t0 - u
        okt = (ok & (t >= 0)) != 0
        vv = tl.load(vq - u * SV, mask=okt, other=0.0)
        hp = tl.load(hq - (u + 1) * SV, mask=(okt & (t >= 1)) != 0, other=0.0)
        if HAS_G:
            gg = tl.load(gq - u * SV, mask=okt, other=0.0)
        else:
            gg = tl.zeros_like(vv)
        group = group + ((_raw_row(zq - u * SZ, okt, W, WORDS), vv, hp, gg),)
    return group


@triton.jit
def _reduce_scatter(vals, i, r, D: tl.constexpr, P: tl.constexpr):
    """Sum of the lanes' vectors vals (2 D values each) over the 2 D rows that share the upper bits of i (the lane's
    row in its block), lanes of the same part (P per row) together; entry e ends in the rows with i mod 2 D = e. Call
    with D = C / 2: log2 C rounds, each lane keeping half of its vector and adding the half its partner (row i ^ D,
    lane r ^ D P) kept: C - 1 shuffles and adds, where gathering every entry to every lane would take C^2."""
    up = (i & D) != 0
    half = ()
    for k in tl.static_range(D):
        keep = tl.where(up, vals[D + k], vals[k])
        send = tl.where(up, vals[k], vals[D + k])
        half = half + (keep + tl.gather(send, r ^ (D * P), 0),)
    if D == 1:
        return half[0]
    else:
        return _reduce_scatter(half, i, r, D // 2, P)


@triton.jit
def _rows_bwd_kernel(
    zw_ptr,
    v_ptr,
    h_ptr,
    h0_ptr,
    g_ptr,
    dfinal_ptr,
    dz_ptr,
    dv_ptr,
    dh0_ptr,
    T,
    N,
    NR,
    M: tl.constexpr,
    P: tl.constexpr,
    U: tl.constexpr,
    PF: tl.constexpr,
    NORM: tl.constexpr,
    WORDS: tl.constexpr,
    DT: tl.constexpr,
    FAST: tl.constexpr,
    HAS_G: tl.constexpr,
):
    """The reverse adjoint scan, a row per lane, t = T-1 .. 0: lam_t = dh_t + c_t with c_t[j] = sum_i A_{t+1}[i, j]
    lam_{t+1}[i] (c_{T-1} = d final state; c after step 0 is d h0). A lane has row i of A_t, so c is a column sum:
    _reduce_scatter over the block's lanes. dP_t[i, :] = lam_t[i] (h_{t-1}, v_t[i]) with h_{t-1} shuffled in, then
    the closed-form adjoint of phi on the lane's row gives dz; dv_t[i] = lam_t[i] P_t[i, m]. With P lanes per row a
    lane has C = m / P columns of the row (as the forward) and row sums are combined over the row's lanes. The column
    sums are reduce-scattered within groups of C rows (C - 1 shuffles), then summed over the m / C groups (log2 P):
    lane (row i, part k) then holds column k C + i mod C, which every lane of row j fetches for j (one shuffle)."""
    C: tl.constexpr = M // P
    b, r, g, k, ok, lane0, odd, SZ, SV, s0, zq = _rows(tl.program_id(0), NR, N, T, zw_ptr, T - 1, M, WORDS, P)
    i = (r - lane0) // P  # the lane's row in its block
    src = lane0 + k * (C * P)  # the lane of the block's row k C (part 0)
    if P > 1:  # a lane holding column sum i of the block (part i / C, row i mod C)
        csrc = lane0 + (i % C) * P + i // C
    h0v = tl.load(h0_ptr + (b * N * M).to(tl.int64) + g, mask=ok, other=0.0)
    c = tl.load(dfinal_ptr + (b * N * M).to(tl.int64) + g, mask=ok, other=0.0)
    vq = v_ptr + s0 + g  # the pointers start at step T - 1
    hq = h_ptr + s0 + g
    gq = g_ptr + s0 + g
    dzq = dz_ptr + s0 * (M + 1) + g * (M + 1) + k * C
    dvq = dv_ptr + s0 + g
    cur = _load_group_bwd(zq, vq, hq, gq, SZ, SV, T - 1, ok, C + 1, U, WORDS, HAS_G)
    for k0 in range(0, T, U):
        t0 = T - 1 - k0
        zq -= U * SZ
        vq -= U * SV
        hq -= U * SV
        gq -= U * SV
        nxt = _load_group_bwd(zq, vq, hq, gq, SZ, SV, t0 - U, ok, C + 1, U, WORDS, HAS_G)
        if PF > 0:
            for u in tl.static_range(U):
                okt = ok & (t0 - U - PF - u >= 0)
                _pf_step(zq - (PF + u) * SZ, vq - (PF + u) * SV, okt, C + 1, WORDS)
                _pf(hq - (PF + u + 1) * SV, okt)
                if HAS_G:
                    _pf(gq - (PF + u) * SV, okt)
        # the group's gates first (independent of the adjoint chain)
        gates = ()
        for u in tl.static_range(U):
            zs = _row_logits(cur[u][0], odd, C + 1, WORDS, DT)
            gates = gates + ((zs,) + _row_phi(zs, r, k, C, P, NORM, FAST),)
        for u in tl.static_range(U):
            zs, es, inv = gates[u]
            raw, vv, hp, gg = cur[u]
            t = t0 - u
            tin = t >= 0
            okt = (ok & tin) != 0
            vf = vv.to(tl.float32)
            hprev = tl.where(t == 0, h0v, hp.to(tl.float32))
            lam = gg.to(tl.float32) + c
            p = ()
            for j in tl.static_range(C + 1):
                p = p + (es[j] * inv,)
            hs = ()
            for j in tl.static_range(C):
                hs = hs + (tl.gather(hprev, src + j * P, 0),)
            # dot = sum_k p_k dP_k = lam h_t[row], h_t recomputed in fp32
            hrow = p[C] * vf
            for j in tl.static_range(C):
                hrow += p[j] * hs[j]
            dot = lam * _over_parts(hrow, r, P, False)
            dzt = dzq - u * (SV * (M + 1))
            for j in tl.static_range(C + 1):
                if j < C:
                    dp = lam * hs[j]
                else:
                    dp = lam * vf
                if NORM == 0:
                    dz = p[j] * (dp - dot)
                elif NORM == 1:
                    dz = _sig_l1_dz(zs[j], p[j], dp, dot, FAST)
                elif NORM == 2:
                    dz = tl.where(zs[j] > 0.0, (dp - dot) * inv, 0.0)
                else:
                    dz = dp
                if j < C:
                    tl.store(dzt + j, dz.to(dz_ptr.dtype.element_ty), mask=okt)
                else:  # column m, in the last part (the other parts' column C is the next part's first)
                    tl.store(dzt + j, dz.to(dz_ptr.dtype.element_ty), mask=(okt & (k == P - 1)) != 0)
            tl.store(dvq - u * SV, (lam * p[C]).to(dv_ptr.dtype.element_ty), mask=(okt & (k == P - 1)) != 0)
            cols = ()
            for j in tl.static_range(C):
                cols = cols + (p[j] * lam,)
            cs = _reduce_scatter(cols, i, r, C // 2, P)
            if P > 1:
                cs = tl.gather(_butterfly(cs, r, C * P, P, False), csrc, 0)
            c = tl.where(tin, cs, c)
        dzq -= U * (SV * (M + 1))
        dvq -= U * SV
        cur = nxt
    tl.store(dh0_ptr + (b * N * M).to(tl.int64) + g, c, mask=(ok & (k == 0)) != 0)


def _launch_args(z: torch.Tensor, seqlen: int, m: int, bwd: bool) -> dict:
    """Constexprs and launch options shared by both kernels, from config.RowsSettings: the measured unroll (v16b)
    and lanes per row (v16c: m = 16 forward 1.72 ms at 2 against 1.91 at 1; v16e: backward 4.54 against 7.15)."""
    cfg = settings("rows", m, "bwd" if bwd else "fwd")
    dt = _DTYPE_IDS.get(z.dtype, 2)
    words = dt != 2 and z.data_ptr() % 4 == 0 and cfg.words
    unroll = min(cfg.unroll, triton.next_power_of_2(seqlen))
    return dict(M=m, U=unroll, PF=cfg.pf, WORDS=words, DT=dt, FAST=cfg.fast, num_warps=1, P=cfg.parts)


def _words(z: torch.Tensor, kw: dict) -> torch.Tensor:
    """z as the kernels read it: int32 words (2-byte dtypes, 4-byte aligned) or elements."""
    return z.reshape(-1).view(torch.int32) if kw["WORDS"] else z


def rows_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, N, m, m + 1), v (B, T, N, m), h0 (B, N, m) fp32 -> (h (B, T, N, m), final state (B, N, m) fp32).
    Launch settings: config.RowsSettings."""
    bsz, seqlen, nblocks, m = v.shape
    kw = _launch_args(z, seqlen, m, bwd=False)
    h = torch.empty_like(v)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    nr = triton.cdiv(nblocks * m * kw["P"], 32)
    _rows_fwd_kernel[(bsz * nr,)](_words(z, kw), v, h0, h, final, seqlen, nblocks, nr, NORM=NORM_IDS[norm], **kw)
    return h, final


def rows_bwd(z, v, h0, h, dh, dfinal, norm: str):
    """Gradients (dz, dv, dh0) of rows_fwd from dh (or None) and d final state (or None); settings as rows_fwd."""
    bsz, seqlen, nblocks, m = v.shape
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dh, dfinal, (bsz, nblocks, m))
    kw = _launch_args(z, seqlen, m, bwd=True)
    nr = triton.cdiv(nblocks * m * kw["P"], 32)
    _rows_bwd_kernel[(bsz * nr,)](
        _words(z, kw), v, h, h0, g, dfinal, dz, dv, dh0, seqlen, nblocks, nr, NORM=NORM_IDS[norm], HAS_G=has_g, **kw
    )
    return dz, dv, dh0
