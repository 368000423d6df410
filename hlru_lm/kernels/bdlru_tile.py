"""Two-phase look-back tile scan for BD-LRU (m = 4, 8 forward and backward, the m = 2 backward; at m = 1 only when
the route is forced, diag_tile.py being the default) and for H-LRU of order 2, 4, 8 (HLRU=True: the companion
matrix as a BD-LRU block, see _step). Launch settings: config.TileSettings (the measured ones per m, direction and
variant: NOTES v11, v13).

One program owns one tile: BN = 32 x warps blocks x BT time steps of one batch row, one lane per block (the scalar
layout of common._tile_offsets: a block's m x (m+1) gate logits sit in one thread's registers, so the row
normalisation and the mat-vecs need no shuffles).
  Phase 1 composes the tile's affine map x -> M x + e over its BT steps (M <- A_t M: m^3 FMA per step).
  The tiles before it hand over their end states by the decoupled look-back of bdlru_chain.py (maps published at
  once, end states once known; a tile composes its predecessors' maps until it meets an end state).
  Phase 2 reruns the BT steps from the true start state and writes h.
Only one map is live across a tile (the associative scan of bdlru_chain.py keeps one per step), so tiles can be long
and there is no chunk-map kernel. The chain's first tile knows its start state and runs phase 2 only. The backward
runs the same two phases in reverse on the adjoint carry (see _bdlru_tile_bwd_kernel).
Phase 2 re-reads what phase 1 read, a whole tile later; with ~1000 tiles in flight most re-reads missed L2 (NOTES
v13a). Where it measured faster (TileSettings rev, evict), phase 1 therefore runs the steps in the opposite order
(REV: the maps composed from the other side), so phase 2 first re-reads the steps phase 1 read last, and the loads
carry L2 eviction priorities (EV1, EV2, EVS).

Both phases loop over the tile at run time, UNROLL steps per iteration, so registers do not grow with BT (fully
unrolled, ptxas hoisted every step's loads: 255 registers at m = 4, BT = 8).

Logits are read and their gradients written as words (a block's m(m+1) logits are contiguous): 64-bit where they
fill whole words (m = 4, 8; fp32), else 32-bit (bf16 / fp16 at m = 1, 2). Narrow two-byte accesses at a 40-byte
lane stride touch ~10 cache lines per warp each: as loads they cost 1.7x (v10), as the backward's stores 4x (v11b).
At m = 8 a warp reads and writes the words of its blocks coalesced and moves them between lanes through shared memory
(_word_axes, _columns), instead of one word per lane and instruction (v12b).
Words need aligned logits: tile_words checks, other calls take bdlru_chain.py (m = 2) or bdlru_generic.py.
"""

import torch
import triton
import triton.language as tl

from .common import (
    _DTYPE_IDS,
    NORM_IDS,
    _as_words,
    _bits,
    _norm_rows,
    _norm_rows_bwd,
    _phi_terms,
    _poll,
    _signal,
    _tile,
    _unpack,
    bwd_buffers,
    lookback_buffers,
)
from .config import settings


@triton.jit
def _halves(x):
    """x [BN, K] (K >= 2) as its even and odd columns, [BN, K / 2] each."""
    BN: tl.constexpr = x.shape[0]
    K: tl.constexpr = x.shape[1]
    return tl.split(tl.reshape(x, [BN, K // 2, 2]))


@triton.jit
def _columns(x):
    """The K columns of x [BN, K] (K = 1, 2, 4, ..., 32) as a tuple of [BN] tensors. tl.split needs a row's entries in
    one thread, so Triton moves x there through shared memory once, whatever layout x was loaded in: x can be loaded
    coalesced (lanes along a row) and still end up one block per lane."""
    BN: tl.constexpr = x.shape[0]
    K: tl.constexpr = x.shape[1]
    if K == 1:
        return (tl.reshape(x, [BN]),)
    else:
        e, o = _halves(x)
        ce = _columns(e)
        co = _columns(o)
        out = ()
        for i in tl.static_range(K // 2):
            out = out + (ce[i], co[i])
        return out


@triton.jit
def _stack(cols, K: tl.constexpr):
    """The inverse of _columns: K [BN] tensors as the columns of a [BN, K] tensor (tl.join), which can then be
    stored coalesced."""
    BN: tl.constexpr = cols[0].shape[0]
    if K == 1:
        return tl.reshape(cols[0], [BN, 1])
    else:
        evens = ()
        odds = ()
        for i in tl.static_range(K // 2):
            evens = evens + (cols[2 * i],)
            odds = odds + (cols[2 * i + 1],)
        return tl.reshape(tl.join(_stack(evens, K // 2), _stack(odds, K // 2)), [BN, K])


@triton.jit
def _word_axes(COAL: tl.constexpr, WL: tl.constexpr, WH: tl.constexpr, ONE):
    """Word offsets [1, WL] and [1, WH] within a block. COAL (m = 8 by default): contiguous, so a warp's load covers
    ~5 cache lines instead of one line per lane (36 per load at m = 8, blocks 144 B apart), and _columns moves the
    words to their lanes through shared memory (m = 8 fwd+bwd 7.72 -> 5.03 ms, NOTES v12b). Else strided by the
    runtime ONE, which keeps one block per lane from the load on, with no shared memory: at m = 4, 2 warps per
    program, the transpose and its barriers cost more than the lines they save (fwd 0.84 -> 1.05 ms)."""
    if COAL:
        return tl.arange(0, WL)[None, :], tl.arange(0, WH)[None, :]
    else:
        return tl.arange(0, WL)[None, :] * ONE, tl.arange(0, WH)[None, :] * ONE


@triton.jit
def _anchor(wq, n, ii, jj, ONE, M: tl.constexpr):
    """Integer zeros [BN, m, m] and [BN, m] in the scalar layout, from a load that never runs (its mask is false at run
    time). They anchor the layout of the unpacked logits, which otherwise get a default layout that spreads a block
    over lanes, and shuffles."""
    offx = n[:, None, None] * 0 + (ii[:, None] * M + jj[None, :])[None] * ONE
    xA = tl.load(wq + offx, mask=offx < 0, other=0)
    return xA, tl.sum(xA, axis=2)


@triton.jit
def _logits_at(wq, s, N, n, nmask, ok, ii, jj, xA, xa, ONE, M: tl.constexpr, WB: tl.constexpr, WL: tl.constexpr,
               WH: tl.constexpr, EPW: tl.constexpr, DT: tl.constexpr, WORD: tl.constexpr,
               COAL: tl.constexpr, EV: tl.constexpr):  # fmt: skip
    """Step s of the tile as (zA [BN, m, m], za [BN, m]) fp32. A block's WB words are loaded as [BN, WL] and
    [BN, WH] (powers of two, so no padding word is loaded; _word_axes), split into one [BN] tensor per word; each
    logit then picks its word (a constant index, so the picks fold at compile time) and its slot in the word. xA, xa:
    _anchor."""
    base = wq + ((s * N + n) * WB)[:, None]
    wl, wh = _word_axes(COAL, WL, WH, ONE)
    lo = _columns(tl.load(base + wl, mask=(nmask[:, None] & ok) != 0, other=0, eviction_policy=EV))
    hi = _columns(
        tl.load(base + (WL + wh), mask=(nmask[:, None] & (wh < WB - WL) & ok) != 0, other=0, eviction_policy=EV)
    )
    fA = ii[:, None] * (M + 1) + jj[None, :]  # flat index of logit (i, j) in its block
    fa = ii * (M + 1) + M
    for w in tl.static_range(WB):
        if w < WL:
            word = lo[w]
        else:
            word = hi[w - WL]
        xA = tl.where((fA // EPW == w)[None], word[:, None, None], xA)
        xa = tl.where((fa // EPW == w)[None], word[:, None], xa)
    return _unpack(xA, (fA % EPW)[None], DT, WORD), _unpack(xa, (fa % EPW)[None], DT, WORD)


@triton.jit
def _store_words(dq, s, N, n, mask, dzA, dza, ii, jj, ONE, M: tl.constexpr, WB: tl.constexpr, WL: tl.constexpr,
                 WH: tl.constexpr, EPW: tl.constexpr, DT: tl.constexpr, WORD: tl.constexpr,
                 COAL: tl.constexpr, EV: tl.constexpr):  # fmt: skip
    """Store step s of dlogits (dzA [BN, m, m], dza [BN, m]) as words, the inverse of _logits_at: WB wide stores per
    lane instead of m(m+1) narrow ones (at m = 4 those touch ~10 cache lines per warp each, and made the backward
    4x slower: NOTES v11)."""
    fA = ii[:, None] * (M + 1) + jj[None, :]
    fa = ii * (M + 1) + M
    bA = _bits(dzA, DT, WORD)
    ba = _bits(dza, DT, WORD)
    bA = bA << ((fA % EPW) * (WORD // EPW)).to(bA.dtype)[None]  # disjoint bit fields: a word is their sum
    ba = ba << ((fa % EPW) * (WORD // EPW)).to(ba.dtype)[None]
    lo = ()
    hi = ()
    for w in tl.static_range(WL + WH):
        word = tl.sum(tl.sum(tl.where((fA // EPW == w)[None], bA, 0), axis=2), axis=1)
        word += tl.sum(tl.where((fa // EPW == w)[None], ba, 0), axis=1)  # 0 past the block's WB words
        if w < WL:
            lo = lo + (word,)
        else:
            hi = hi + (word,)
    base = dq + ((s * N + n) * WB)[:, None]
    wl, wh = _word_axes(COAL, WL, WH, ONE)
    tl.store(base + wl, _stack(lo, WL), mask=mask[:, None], eviction_policy=EV)
    tl.store(base + (WL + wh), _stack(hi, WH), mask=(mask[:, None] & (wh < WB - WL)) != 0, eviction_policy=EV)


@triton.jit
def _vec(ptr, row0, s, N, n, ii, ONE, rmask, M: tl.constexpr, EV: tl.constexpr):
    """[BN, m] fp32: step s of a (B, T, N, m) tensor (v, h or dh) in the tile (row0 = the tile's first token row).
    Element loads: reading a block's m entries as words measured no faster (NOTES v11d)."""
    offs = ((row0 + s * N + n) * M)[:, None] + ii[None, :] * ONE
    return tl.load(ptr + offs, mask=rmask[:, None], other=0.0, eviction_policy=EV).to(tl.float32)


@triton.jit
def _step(wq, z_ptr, v_ptr, row0, s, N, n, nmask, ok, ii, jj, xA, xa, ONE, M: tl.constexpr, WB: tl.constexpr,
          WL: tl.constexpr, WH: tl.constexpr, EPW: tl.constexpr, DT: tl.constexpr, WORD: tl.constexpr,
          COAL: tl.constexpr, NORM: tl.constexpr, HLRU: tl.constexpr, RAW: tl.constexpr,
          EV: tl.constexpr):  # fmt: skip
    """Step s of the tile as a BD-LRU step, (A [BN, m, m], a0 [BN, m], v [BN, m]), then what the adjoint of phi
    needs: the logit rows, their phi and inv (_norm_rows). RAW (BD-LRU only): A and a0 unnormalised, A = diag(inv) A'
    (_phi_terms). HLRU: the H-LRU in companion form, A's row 0 = P[:m] and row i > 0 the unit row e_{i-1} (the lag
    shift), a0 = (P[m], 0, ...), v = (v_t, 0, ...); its one logit row per channel is returned as [BN, m] + [BN].
    xA, xa (_anchor) give the companion entries the scalar layout."""
    okn = (nmask & ok) != 0
    if HLRU:
        row = row0 + s * N + n
        zr = tl.load(
            z_ptr + (row * (M + 1))[:, None] + ii[None, :] * ONE, mask=okn[:, None], other=0.0, eviction_policy=EV
        )
        zl = tl.load(z_ptr + row * (M + 1) + M * ONE, mask=okn, other=0.0, eviction_policy=EV).to(tl.float32)
        zr = zr.to(tl.float32)
        pr, pl, inv = _norm_rows(zr, zl, NORM, 1, True)
        vt = tl.load(v_ptr + row, mask=okn, other=0.0, eviction_policy=EV).to(tl.float32)
        i3 = ii[None, :, None]
        zero3 = xA.to(tl.float32)
        zero2 = xa.to(tl.float32)
        pA = tl.where(i3 == 0, zero3 + pr[:, None, :], zero3 + (jj[None, None, :] == i3 - 1).to(tl.float32))
        pa = tl.where(ii[None, :] == 0, zero2 + pl[:, None], zero2)
        vs = tl.where(ii[None, :] == 0, zero2 + vt[:, None], zero2)
    else:
        zr, zl = _logits_at(wq, s, N, n, nmask, ok, ii, jj, xA, xa, ONE, M, WB, WL, WH, EPW, DT, WORD, COAL, EV)
        if RAW:
            pA, pa, inv = _phi_terms(zr, zl, NORM, 2, True)
        else:
            pA, pa, inv = _norm_rows(zr, zl, NORM, 2, True)
        pr, pl = pA, pa
        vs = _vec(v_ptr, row0, s, N, n, ii, ONE, okn, M, EV)
    return pA, pa, vs, zr, zl, pr, pl, inv


@triton.jit
def _matmul(a, b, ii3, jj3, M: tl.constexpr):
    """a @ b for [BN, m, m] tensors as m outer products: 3-D tensors only (a 4-D product gets a layout that splits a
    block over lanes and costs shuffles)."""
    acc = a * 0.0
    for j in tl.static_range(M):
        col = tl.sum(tl.where(jj3 == j, a, 0.0), axis=2)
        row = tl.sum(tl.where(ii3 == j, b, 0.0), axis=1)
        acc += col[:, :, None] * row[:, None, :]
    return acc


@triton.jit
def _matmul_tn(a, b, ii3, M: tl.constexpr):
    """a^T @ b for [BN, m, m] tensors, as _matmul."""
    acc = a * 0.0
    for j in tl.static_range(M):
        acc += (
            tl.sum(tl.where(ii3 == j, a, 0.0), axis=1)[:, :, None]
            * tl.sum(tl.where(ii3 == j, b, 0.0), axis=1)[:, None, :]
        )
    return acc


@triton.jit
def _lookback(flag_ptr, agg_ptr, inc_ptr, k, STEP: tl.constexpr, B, b, N, n, nmask, NT, nt, mat, e, ii, jj, ONE,
              M: tl.constexpr):  # fmt: skip
    """Publish this tile's map x -> mat x + e, return the state entering it (tiles k+STEP, k+2 STEP, ...)."""
    offm = (ii[:, None] * M + jj[None, :]) * ONE
    offe = M * M + ii * ONE
    mask2 = nmask[:, None]
    mask3 = nmask[:, None, None]
    row = (k * B + b).to(tl.int64) * N + n
    tl.store(agg_ptr + (row * (M * M + M))[:, None, None] + offm[None], mat, mask=mask3)
    tl.store(agg_ptr + (row * (M * M + M))[:, None] + offe[None], e, mask=mask2)
    _signal(flag_ptr + (k * B + b) * NT + nt, 1)
    acc = mat * 0.0 + (ii[:, None] == jj[None, :]).to(tl.float32)[None]
    c = e * 0.0
    s = e * 0.0
    j = k + STEP
    done = k * 0
    while done == 0:
        f = _poll(flag_ptr + (j * B + b) * NT + nt)
        rj = (j * B + b).to(tl.int64) * N + n
        if f == 2:
            x = tl.load(inc_ptr + (rj * M)[:, None] + ii[None] * ONE, mask=mask2, other=0.0, volatile=True)
            s = tl.sum(acc * x[:, None, :], axis=2) + c
            done = k * 0 + 1
        elif f == 1:
            q = agg_ptr + rj * (M * M + M)
            qm = tl.load(q[:, None, None] + offm[None], mask=mask3, other=0.0, volatile=True)
            qe = tl.load(q[:, None] + offe[None], mask=mask2, other=0.0, volatile=True)
            c = tl.sum(acc * qe[:, None, :], axis=2) + c
            acc = _matmul(acc, qm, ii[None, :, None], jj[None, None, :], M)
            j += STEP
    return s


@triton.jit
def _publish(flag_ptr, inc_ptr, k, K0, B, b, N, n, smask, NT, nt, ii, ONE, x, M: tl.constexpr, AGG_ONLY: tl.constexpr):
    """Publish the state leaving tile k. AGG_ONLY (tests): only the chain's first tile K0 publishes it, so every
    look-back composes maps back to K0, a path a sequential interpreter never takes."""
    if (k == K0).to(tl.int32) + (1 - AGG_ONLY) > 0:
        row = (k * B + b).to(tl.int64) * N + n
        tl.store(inc_ptr + (row * M)[:, None] + ii[None, :] * ONE, x, mask=smask)
        _signal(flag_ptr + (k * B + b) * NT + nt, 2)


@triton.jit(do_not_specialize=["ONE"], do_not_specialize_on_alignment=["v_ptr", "h_ptr"])
def _bdlru_tile_fwd_kernel(
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
    ONE,
    M: tl.constexpr,
    BT: tl.constexpr,
    BN: tl.constexpr,
    WB: tl.constexpr,
    WL: tl.constexpr,
    WH: tl.constexpr,
    EPW: tl.constexpr,
    WORD: tl.constexpr,
    COAL: tl.constexpr,
    DT: tl.constexpr,
    NORM: tl.constexpr,
    UNROLL: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    HLRU: tl.constexpr,
    REV: tl.constexpr,
    EV1: tl.constexpr,
    EV2: tl.constexpr,
    EVS: tl.constexpr,
):
    # phase 2 on unnormalised rows scales the m results instead of the m(m + 1) entries: m = 4 forward 537 -> 421
    # instructions per 2 steps; at m = 8 those rows live longer and spill more (296 vs 192 B per thread; offline, v12a)
    RAW: tl.constexpr = (not HLRU) and M < 8
    k, b, nt = _tile(B, NT, NTT, False)
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    ii = tl.arange(0, M)
    jj = tl.arange(0, M)
    row0 = (b * T + k * BT).to(tl.int64) * N  # (token, block) index of the tile's origin
    wq = _as_words(z_ptr, WORD) + row0 * WB  # the tile's logits as words
    xA, xa = _anchor(wq, n, ii, jj, ONE, M)
    offs = (b * N).to(tl.int64) * M + n[:, None] * M + ii[None, :] * ONE  # state (b, n, i)
    smask = nmask[:, None]
    if k == 0:  # the start state is known: no map, no look-back
        h = tl.load(h0_ptr + offs, mask=smask, other=0.0)
    else:
        # phase 1: the tile's map
        mat = tl.zeros([BN, M, M], dtype=tl.float32) + (ii[:, None] == jj[None, :]).to(tl.float32)[None]
        e = tl.zeros([BN, M], dtype=tl.float32)
        for s0 in range(0, BT, UNROLL):
            for r in tl.static_range(UNROLL):
                s = BT - 1 - s0 - r if REV else s0 + r
                ok = (k * BT + s) < T
                pAs, pas, vs, _, _, _, _, _ = _step(wq, z_ptr, v_ptr, row0, s, N, n, nmask, ok, ii, jj, xA, xa, ONE,
                                                    M, WB, WL, WH, EPW, DT, WORD, COAL, NORM, HLRU, False,
                                                    EV1)  # fmt: skip
                if REV:  # steps s..BT-1 map x -> mat x + e; prepend step s: mat <- mat A_s, e <- mat a0_s v_s + e
                    e = tl.where(ok, tl.sum(mat * (pas * vs)[:, None, :], axis=2) + e, e)
                    mat = tl.where(ok, _matmul(mat, pAs, ii[None, :, None], jj[None, None, :], M), mat)
                else:
                    e = tl.where(ok, tl.sum(pAs * e[:, None, :], axis=2) + pas * vs, e)
                    mat = tl.where(ok, _matmul(pAs, mat, ii[None, :, None], jj[None, None, :], M), mat)
        h = _lookback(flag_ptr, agg_ptr, inc_ptr, k, -1, B, b, N, n, nmask, NT, nt, mat, e, ii, jj, ONE, M)
        end = tl.sum(mat * h[:, None, :], axis=2) + e
        if k == NTT - 1:
            tl.store(final_ptr + offs, end, mask=smask)
        else:
            _publish(flag_ptr, inc_ptr, k, 0, B, b, N, n, smask, NT, nt, ii, ONE, end, M, AGG_ONLY)
    # phase 2: rerun from the true start state (the reloaded words and v hit L1 / L2)
    for s0 in range(0, BT, UNROLL):
        for r in tl.static_range(UNROLL):
            s = s0 + r
            ok = (k * BT + s) < T
            okn = (nmask & ok) != 0
            pAs, pas, vs, _, _, _, _, inv = _step(wq, z_ptr, v_ptr, row0, s, N, n, nmask, ok, ii, jj, xA, xa, ONE,
                                                  M, WB, WL, WH, EPW, DT, WORD, COAL, NORM, HLRU, RAW,
                                                  EV2)  # fmt: skip
            hn = tl.sum(pAs * h[:, None, :], axis=2) + pas * vs
            if RAW:
                hn = hn * inv
            h = tl.where(ok, hn, h)
            offh = ((row0 + s * N + n) * M)[:, None] + ii[None, :] * ONE
            tl.store(h_ptr + offh, h.to(h_ptr.dtype.element_ty), mask=okn[:, None], eviction_policy=EVS)
    if k == 0:  # its end state is published only now
        if NTT == 1:
            tl.store(final_ptr + offs, h, mask=smask)
        else:
            _publish(flag_ptr, inc_ptr, k, 0, B, b, N, n, smask, NT, nt, ii, ONE, h, M, AGG_ONLY)


@triton.jit(do_not_specialize=["ONE"], do_not_specialize_on_alignment=["v_ptr", "h_ptr", "g_ptr", "dv_ptr"])
def _bdlru_tile_bwd_kernel(
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
    ONE,
    M: tl.constexpr,
    BT: tl.constexpr,
    BN: tl.constexpr,
    WB: tl.constexpr,
    WL: tl.constexpr,
    WH: tl.constexpr,
    EPW: tl.constexpr,
    WORD: tl.constexpr,
    COAL: tl.constexpr,
    DT: tl.constexpr,
    NORM: tl.constexpr,
    HAS_G: tl.constexpr,
    UNROLL: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    HLRU: tl.constexpr,
    REV: tl.constexpr,
    EV1: tl.constexpr,
    EV2: tl.constexpr,
    EVS: tl.constexpr,
):
    """Reverse adjoint lam_t = g_t + A_{t+1}^T lam_{t+1}, run on the carry u_t = A_t^T lam_t (a step maps the carry x
    from the step after it to A_t^T (g_t + x)). Phase 1 composes the tile's carry map backwards over its steps; the
    carry entering it from the future comes by look-back from tile k + 1 (d final state for the last tile); phase 2
    reruns the steps backwards from it and writes dlogits (closed-form adjoint of phi) and dv. Tile 0 writes
    d h0 = u_0."""
    k, b, nt = _tile(B, NT, NTT, True)
    n = nt * BN + tl.arange(0, BN)
    nmask = n < N
    ii = tl.arange(0, M)
    jj = tl.arange(0, M)
    row0 = (b * T + k * BT).to(tl.int64) * N
    wq = _as_words(z_ptr, WORD) + row0 * WB
    xA, xa = _anchor(wq, n, ii, jj, ONE, M)
    offs = (b * N).to(tl.int64) * M + n[:, None] * M + ii[None, :] * ONE
    smask = nmask[:, None]
    if k == NTT - 1:  # the carry entering it is d final state: no map, no look-back
        x = tl.load(dfinal_ptr + offs, mask=smask, other=0.0)
    else:
        # phase 1: the tile's carry map, steps in reverse
        mat = tl.zeros([BN, M, M], dtype=tl.float32) + (ii[:, None] == jj[None, :]).to(tl.float32)[None]
        e = tl.zeros([BN, M], dtype=tl.float32)
        for r0 in range(0, BT, UNROLL):
            for r in tl.static_range(UNROLL):
                s = r0 + r if REV else BT - 1 - r0 - r
                ok = (k * BT + s) < T
                pAs, _, _, _, _, _, _, _ = _step(wq, z_ptr, v_ptr, row0, s, N, n, nmask, ok, ii, jj, xA, xa, ONE,
                                                 M, WB, WL, WH, EPW, DT, WORD, COAL, NORM, HLRU, False,
                                                 EV1)  # fmt: skip
                if REV:  # steps 0..s map x -> mat x + e; append step s: mat <- mat A_s^T, e <- e + mat g_s
                    pAt = tl.permute(pAs, (0, 2, 1))  # a transposed _matmul instead got 352 shuffles per tile (v13b)
                    mat = tl.where(ok, _matmul(mat, pAt, ii[None, :, None], jj[None, None, :], M), mat)
                    if HAS_G:
                        g = _vec(g_ptr, row0, s, N, n, ii, ONE, (nmask & ok) != 0, M, EV1)
                        e += tl.sum(mat * g[:, None, :], axis=2)
                else:
                    if HAS_G:
                        e += _vec(g_ptr, row0, s, N, n, ii, ONE, (nmask & ok) != 0, M, EV1)
                    e = tl.where(ok, tl.sum(pAs * e[:, :, None], axis=1), e)
                    mat = tl.where(ok, _matmul_tn(pAs, mat, ii[None, :, None], M), mat)
        x = _lookback(flag_ptr, agg_ptr, inc_ptr, k, 1, B, b, N, n, nmask, NT, nt, mat, e, ii, jj, ONE, M)
        out = tl.sum(mat * x[:, None, :], axis=2) + e
        if k == 0:
            tl.store(dh0_ptr + offs, out, mask=smask)
        else:
            _publish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, smask, NT, nt, ii, ONE, out, M, AGG_ONLY)
    # phase 2: rerun backwards from the true carry, write dlogits and dv
    h0 = tl.load(h0_ptr + offs, mask=smask, other=0.0)
    dq = _as_words(dz_ptr, WORD) + row0 * WB  # dlogits as words
    for r0 in range(0, BT, UNROLL):
        for r in tl.static_range(UNROLL):
            s = BT - 1 - r0 - r
            ok = (k * BT + s) < T
            okn = (nmask & ok) != 0
            pAs, pas, vs, zr, zl, pr, pl, inv = _step(wq, z_ptr, v_ptr, row0, s, N, n, nmask, ok, ii, jj, xA, xa,
                                                      ONE, M, WB, WL, WH, EPW, DT, WORD, COAL, NORM, HLRU,
                                                      False, EV2)  # fmt: skip
            lam = x
            if HAS_G:
                lam += _vec(g_ptr, row0, s, N, n, ii, ONE, okn, M, EV2)
            hp = _vec(h_ptr, row0, s - 1, N, n, ii, ONE, (okn & (k * BT + s > 0)) != 0, M, EV2)
            hps = tl.where(k * BT + s == 0, h0, hp)
            if HLRU:  # only row 0 of the companion matrix and a0[0] come from the logits
                lam0 = tl.sum(tl.where(ii[None, :] == 0, lam, 0.0), axis=1)
                dpr = lam0[:, None] * hps
                dzr, dzl = _norm_rows_bwd(zr, zl, pr, pl, inv, dpr, lam0 * tl.sum(vs, axis=1), NORM, 1, True)
                row = row0 + s * N + n
                ty = dz_ptr.dtype.element_ty
                tl.store(
                    dz_ptr + (row * (M + 1))[:, None] + ii[None, :] * ONE,
                    dzr.to(ty),
                    mask=okn[:, None],
                    eviction_policy=EVS,
                )
                tl.store(dz_ptr + row * (M + 1) + M * ONE, dzl.to(ty), mask=okn, eviction_policy=EVS)
                tl.store(dv_ptr + row, (lam0 * pl).to(dv_ptr.dtype.element_ty), mask=okn, eviction_policy=EVS)
            else:
                dpA = lam[:, :, None] * hps[:, None, :]
                dzA, dza = _norm_rows_bwd(zr, zl, pr, pl, inv, dpA, lam * vs, NORM, 2, True)
                _store_words(dq, s, N, n, okn, dzA, dza, ii, jj, ONE, M, WB, WL, WH, EPW, DT, WORD, COAL, EVS)
                offd = ((row0 + s * N + n) * M)[:, None] + ii[None, :] * ONE
                tl.store(dv_ptr + offd, (lam * pas).to(dv_ptr.dtype.element_ty), mask=okn[:, None], eviction_policy=EVS)
            x = tl.where(ok, tl.sum(pAs * lam[:, :, None], axis=1), x)
    if k == NTT - 1:  # its carry is published only now
        if k == 0:
            tl.store(dh0_ptr + offs, x, mask=smask)
        else:
            _publish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, smask, NT, nt, ii, ONE, x, M, AGG_ONLY)


# ---------------------------------------------------------------------------------------------------------------------
# launch


def _word_bytes(m: int, dtype: torch.dtype) -> int:
    """Logit word size: 8 bytes where a block's logits fill whole 64-bit words (m = 4, or fp32), else 4 (bf16 / fp16
    at m = 1, 2: 4 and 12 bytes per block)."""
    return 8 if (m * (m + 1) * dtype.itemsize) % 8 == 0 else 4


def tile_words(z: torch.Tensor, m: int) -> bool:
    """Whether the BD-LRU tile kernels can read the logits as aligned words (of a dtype they unpack); the router
    sends other calls to bdlru_chain.py (m = 2) or bdlru_generic.py."""
    return z.dtype in _DTYPE_IDS and z.data_ptr() % _word_bytes(m, z.dtype) == 0


def _launch_args(
    z: torch.Tensor, seqlen: int, nblocks: int, m: int, bwd: bool, hlru: bool = False
) -> tuple[dict, int, int, int]:
    """Constexprs and launch options shared by both kernels; also (BN tiles, time tiles, grid size / (B))."""
    cfg = settings("tile", m, "bwd" if bwd else "fwd", "hlru" if hlru else "bdlru")
    bt = min(cfg.bt, max(2, triton.next_power_of_2(seqlen)))
    warps = max(1, min(cfg.warps, triton.next_power_of_2(nblocks) // 32))
    bn = 32 * warps
    nt, ntt = triton.cdiv(nblocks, bn), triton.cdiv(seqlen, bt)
    if hlru:  # element loads of the (m + 1) logits per channel
        kw = dict(WB=0, WL=1, WH=1, EPW=1, WORD=0, COAL=False)
    else:
        word = _word_bytes(m, z.dtype)
        wb = m * (m + 1) * z.element_size() // word  # words per block
        wl = 1 << (wb.bit_length() - 1)
        kw = dict(WB=wb, WL=wl, WH=triton.next_power_of_2(max(1, wb - wl)), EPW=word // z.element_size(), WORD=8 * word)
        kw["COAL"] = cfg.coal  # _word_axes
    kw.update(M=m, BT=bt, BN=bn, DT=_DTYPE_IDS[z.dtype], UNROLL=min(bt, cfg.unroll))
    kw.update(AGG_ONLY=int(cfg.agg_only), HLRU=hlru, num_warps=warps, REV=cfg.rev)
    ev = "evict_first" if cfg.evict else ""
    kw.update(EV1="evict_last" if cfg.evict == 2 else "", EV2=ev, EVS=ev)
    if cfg.maxnreg:
        kw["maxnreg"] = cfg.maxnreg
    return kw, nt, ntt, bn


def bdlru_tile_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str):
    bsz, seqlen, nblocks, m = v.shape
    h = torch.empty_like(v)
    kw, nt, ntt, _ = _launch_args(z, seqlen, nblocks, m, bwd=False)
    final = torch.empty(bsz, nblocks, m, dtype=torch.float32, device=v.device)
    flags, agg, inc = lookback_buffers(bsz, ntt, nblocks, nt, m, v.device)
    _bdlru_tile_fwd_kernel[(ntt * bsz * nt,)](
        z, v, h0, h, final, flags, agg, inc, bsz, seqlen, nblocks, nt, ntt, 1, NORM=NORM_IDS[norm], **kw
    )
    return h, final


def bdlru_tile_bwd(z, v, h0, h, dh, dfinal, norm: str):
    bsz, seqlen, nblocks, m = v.shape
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dh, dfinal, (bsz, nblocks, m))
    kw, nt, ntt, _ = _launch_args(z, seqlen, nblocks, m, bwd=True)
    flags, agg, inc = lookback_buffers(bsz, ntt, nblocks, nt, m, v.device)
    _bdlru_tile_bwd_kernel[(ntt * bsz * nt,)](
        z, v, h, h0, g, dfinal, dz, dv, dh0, flags, agg, inc, bsz, seqlen, nblocks, nt, ntt, 1,
        NORM=NORM_IDS[norm], HAS_G=has_g, **kw,
    )  # fmt: skip
    return dz, dv, dh0


def hlru_tile_fwd(z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str):
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    kw, nt, ntt, _ = _launch_args(z, seqlen, nch, m, bwd=False, hlru=True)
    y = torch.empty(bsz, seqlen, nch, m, dtype=v.dtype, device=v.device)
    final = torch.empty(bsz, nch, m, dtype=torch.float32, device=v.device)
    flags, agg, inc = lookback_buffers(bsz, ntt, nch, nt, m, v.device)
    _bdlru_tile_fwd_kernel[(ntt * bsz * nt,)](
        z, v, h0, y, final, flags, agg, inc, bsz, seqlen, nch, nt, ntt, 1, NORM=NORM_IDS[norm], **kw
    )
    return y, final


def hlru_tile_bwd(z, v, h0, y, dy, dfinal, norm: str):
    bsz, seqlen, nch = v.shape
    m = h0.shape[-1]
    kw, nt, ntt, _ = _launch_args(z, seqlen, nch, m, bwd=True, hlru=True)
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dy, dfinal, (bsz, nch, m))
    flags, agg, inc = lookback_buffers(bsz, ntt, nch, nt, m, v.device)
    _bdlru_tile_bwd_kernel[(ntt * bsz * nt,)](
        z, v, y, h0, g, dfinal, dz, dv, dh0, flags, agg, inc, bsz, seqlen, nch, nt, ntt, 1,
        NORM=NORM_IDS[norm], HAS_G=has_g, **kw,
    )  # fmt: skip
    return dz, dv, dh0
