"""Look-back tile scans for the diagonal LRU (BD-LRU with m = 1, H-LRU of order 1) with VEC channels per lane.

The recurrence is h_t = a_t h_{t-1} + b_t v_t per channel, (a_t, b_t) = phi(z_t) over the channel's two logits.
bdlru_chain.py and bdlru_tile.py give each lane one channel, so a lane moves 2 B per load of v, h, dh and 4 B of
logits: the m = 1 backward there was latency-bound at full occupancy (NOTES v13a, 77% of stall samples on loads).
Here a lane owns VEC adjacent channels and reads a step's VEC values of v, h, dh (2 VEC bytes) and 2 VEC logits
(4 VEC bytes) as one vector load each. One program owns BC = 32 x warps x VEC channels x BT steps of one batch row;
the tiles of a (batch row, channel tile) chain hand their carries over by the decoupled look-back of common.py (its
flags and tile order; the maps travel as vectors of (a, e) pairs, _lookback).
  Forward (_diag_raw_fwd_kernel, the default for 2-byte logits and v of one dtype and N even): a lane owns a pair
  of channels and keeps only their raw words in registers across the look-back (1.5 registers per channel-step),
  folds the tile's map, and after the look-back reruns the steps, normalising again. Half the registers of the
  prefixes allow twice the tile length (BT 32), so half the tiles pay the look-back's stores, fences and waits,
  which cost the single-pass forward a third of its time (NOTES v18b-e).
  Forward (_diag_fwd_kernel, every other call, or route "diag_tile"): single pass, as bdlru_chain.py at m = 2. The
  tile's [BT, BC] logits and v sit in registers, time on axis 0 in each thread (_runs keeps lanes and warps on
  channels) and tl.associative_scan over time gives each step's map from the tile's start.
  Backward (_diag_raw_bwd_kernel, the default for 2-byte logits, v, h and dh of one dtype and N even): one pass over
  raw words, as the raw-word forward. A lane loads its pair's logit, dh, v and h_{t-1} words for the whole tile
  before the look-back (5 registers per pair-step), folds the carry map, and after the look-back reruns the steps
  in reverse from its registers, writing dz and dv as words. 0.483 against 0.540 ms (NOTES v19a): every byte is
  read once, and a tile's loads are all in flight while it waits. BT 16: at BT 32 (200-255 registers) it is slower.
  Backward (_diag_bwd_kernel, every other call, or route "diag_tile"): two phases, as bdlru_tile.py at m = 1.
  Phase 1 composes the tile's carry map over its steps in time order; phase 2 reruns them in reverse (first
  re-reading what phase 1 read last) and writes dz, dv. A single-pass backward with prefixes (bdlru_chain.py's
  adjoint scan with VEC channels) was slower at every tile shape, and a two-phase forward slower than the single
  pass (NOTES v14c; both at commit 5bd2eb7).
Tensors are contiguous 1-D runs over the tile's channels, so Triton vectorises the loads when N is a multiple of 16
(other N are read element by element, correctly).
"""

import torch
import triton
import triton.language as tl

from .common import (
    _DTYPE_IDS,
    NORM_IDS,
    _at,
    _comb1,
    _dphi2,
    _finish,
    _half,
    _lookback1,
    _opaque,
    _pack,
    _phi2,
    _poll,
    _signal,
    _tile,
    bwd_buffers,
    lookback_buffers,
)
from .config import settings


def raw_words(z: torch.Tensor, *more: torch.Tensor) -> bool:
    """Whether the raw-word kernels (_diag_raw_fwd_kernel, _diag_raw_bwd_kernel) can read the call: 2-byte logits
    and v (backward: also h, dh) of one dtype, 4-byte aligned (contiguous, as the scans pass them), N even (a lane
    owns a pair of channels). The router sends such calls there (route "diag_raw")."""
    if z.shape[2] % 2 != 0:
        return False
    return z.element_size() == 2 and all(x.dtype == z.dtype and x.data_ptr() % 4 == 0 for x in (z, *more))


@triton.jit
def _runs(L: tl.constexpr, R: tl.constexpr):
    """arange(0, L) as Triton's analysis sees runs of R contiguous entries. A 2-D load vectorises its contiguous
    axis up to 16 bytes per thread; at VEC < 8 that is more than a thread's channels, so the lanes would not cover
    the channel axis and warps would move onto time (whose scan then crosses warps through shared memory)."""
    i = tl.arange(0, L)
    return (i // R) * R + i % R


@triton.jit
def _lookback(flag_ptr, agg_ptr, inc_ptr, k, STEP: tl.constexpr, B, b, N, n, nmask, zo, NT, nt, ma, me,
              BC: tl.constexpr):  # fmt: skip
    """bdlru_chain._lookback1 with the map (ma, me) stored and read as interleaved pairs in the logits' layout (zo):
    one vector access per thread, where _lookback1's stride-2 accesses moved the pairs through shared memory."""
    zmask = zo < 2 * N
    tl.store(agg_ptr + (k * B + b).to(tl.int64) * N * 2 + zo, tl.reshape(tl.join(ma, me), [2 * BC]), mask=zmask)
    _signal(flag_ptr + (k * B + b) * NT + nt, 1)
    acc_a = ma * 0.0 + 1.0
    acc_e = ma * 0.0
    s = ma * 0.0
    j = k + STEP
    done = k * 0
    while done == 0:
        f = _poll(flag_ptr + (j * B + b) * NT + nt)
        rj = (j * B + b).to(tl.int64) * N
        if f == 2:
            s = acc_a * tl.load(inc_ptr + rj + n, mask=nmask, other=0.0, volatile=True) + acc_e
            done = k * 0 + 1
        elif f == 1:
            q = tl.load(agg_ptr + rj * 2 + zo, mask=zmask, other=0.0, volatile=True)
            qa, qe = tl.split(tl.reshape(q, [BC, 2]))
            acc_e = acc_a * qe + acc_e
            acc_a = acc_a * qa
            j += STEP
    return s


@triton.jit
def _gates(z_ptr, row, c0, ok, N, BC: tl.constexpr, EV: tl.constexpr):
    """Step `row` (the (token, channel 0) index) of the tile's channels c0 .. c0 + BC: its two gate logits ([BC] each,
    fp32), read as one contiguous [2 BC] vector and split in registers."""
    zo = 2 * c0 + tl.arange(0, 2 * BC)
    zz = tl.load(z_ptr + row * 2 + zo, mask=(ok & (zo < 2 * N)) != 0, other=0.0, eviction_policy=EV).to(tl.float32)
    return tl.split(tl.reshape(zz, [BC, 2]))


@triton.jit
def _diag_fwd_kernel(
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
    BT: tl.constexpr,
    BC: tl.constexpr,
    VEC: tl.constexpr,
    NORM: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    FAST: tl.constexpr,
):
    """Single pass (as bdlru_chain.py, with VEC channels per lane): the tile's [BT, BC] logits and v are loaded once,
    time on axis 0 in each thread's registers (lanes and warps on the contiguous channel axis), and
    tl.associative_scan over time gives every step's map from the tile's start; the look-back gives the start."""
    k, b, nt = _tile(B, NT, NTT, False)
    c0 = nt * BC
    tt = tl.arange(0, BT)
    n = c0 + _runs(BC, VEC)
    zo = 2 * c0 + _runs(2 * BC, 2 * VEC)
    nmask = n < N
    tmask = (k * BT + tt) < T
    row0 = (b * T + k * BT).to(tl.int64) * N
    zmask = tmask[:, None] & (zo < 2 * N)[None, :]
    zz = tl.load(z_ptr + row0 * 2 + (tt * N * 2)[:, None] + zo[None, :], mask=zmask, other=0.0).to(tl.float32)
    z0, z1 = tl.split(tl.reshape(zz, [BT, BC, 2]))
    off = (tt * N)[:, None] + n[None, :]
    mask = tmask[:, None] & nmask[None, :]
    v = tl.load(v_ptr + row0 + off, mask=mask, other=0.0).to(tl.float32)
    a, w, _ = _phi2(z0, z1, NORM, FAST)
    a = tl.where(mask, a, 1.0)  # identity maps past T keep the scan's last row = the tile's map
    ca, ce = tl.associative_scan((a, tl.where(mask, w * v, 0.0)), 0, _comb1)
    last = (tt == BT - 1)[:, None]
    ma = tl.sum(tl.where(last, ca, 0.0), axis=0)
    me = tl.sum(tl.where(last, ce, 0.0), axis=0)
    sb = (b * N).to(tl.int64)
    if k == 0:
        s = tl.load(h0_ptr + sb + n, mask=nmask, other=0.0)
    else:
        s = _lookback(flag_ptr, agg_ptr, inc_ptr, k, -1, B, b, N, n, nmask, zo, NT, nt, ma, me, BC)
    end = ma * s + me
    if k == NTT - 1:
        tl.store(final_ptr + sb + n, end, mask=nmask)
    else:
        _finish(flag_ptr, inc_ptr, k, 0, B, b, N, n, nmask, NT, nt, 1, end, end, AGG_ONLY)
    h = ca * s[None, :] + ce
    tl.store(h_ptr + row0 + off, h.to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fold(ma, me, x, vr, ok, NORM: tl.constexpr, DT: tl.constexpr, FAST: tl.constexpr):
    """Append a step (logit word x, input vr) to the map h -> ma h + me."""
    a, w, _ = _phi2(_half(x, 0, DT), _half(x, 1, DT), NORM, FAST)
    return tl.where(ok, ma * a, ma), tl.where(ok, a * me + w * vr, me)


@triton.jit(do_not_specialize_on_alignment=["v_ptr", "h_ptr"])
def _diag_raw_fwd_kernel(
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
    BT: tl.constexpr,
    BP: tl.constexpr,
    NORM: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    FAST: tl.constexpr,
    DT: tl.constexpr,
):
    """A lane owns the channels 2p, 2p + 1 (a pair) and keeps only raw words in registers across the
    look-back: per step the two channels' logit words and one word of v (1.5 registers per channel-step, against
    2 fp32 prefixes), so a tile can be twice as long. Pass 1 folds the tile's map step by step; pass 2 runs the
    recurrence from the look-back's state, normalising again, and stores h as one word per pair and step
    (raw_words says which inputs it takes)."""
    k, b, nt = _tile(B, NT, NTT, False)
    tt = tl.arange(0, BT)
    jj = tl.arange(0, 2)
    p = nt * BP + tl.arange(0, BP)
    pmask = p < N // 2
    okt = (k * BT + tt) < T
    mask = pmask[:, None] & okt[None, :]
    row0 = (b * T + k * BT).to(tl.int64) * N  # (token, channel) index of the tile's origin
    zo = (2 * p)[:, None, None] + (tt * N)[None, :, None] + jj[None, None, :]
    zlo, zhi = tl.split(
        tl.load(z_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + zo, mask=mask[:, :, None], other=0)
    )
    vo = p[:, None] + (tt * (N // 2))[None, :]
    vw = tl.load(v_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 // 2 + vo, mask=mask, other=0)
    one = tl.full([BP], 1.0, tl.float32)
    ma0, me0, ma1, me1 = one, one * 0.0, one, one * 0.0
    for r in tl.static_range(BT):
        ok = k * BT + r < T
        vr = _at(vw, tt, r)
        ma0, me0 = _fold(ma0, me0, _at(zlo, tt, r), _half(vr, 0, DT), ok, NORM, DT, FAST)
        ma1, me1 = _fold(ma1, me1, _at(zhi, tt, r), _half(vr, 1, DT), ok, NORM, DT, FAST)
    n = 2 * p[:, None] + jj[None, :]  # [BP, 2] channels
    nmask = n < N
    ma = tl.join(ma0, ma1)
    me = tl.join(me0, me1)
    sb = (b * N).to(tl.int64)
    if k == 0:
        s = tl.load(h0_ptr + sb + n, mask=nmask, other=0.0)
    else:
        s = _lookback1(flag_ptr, agg_ptr, inc_ptr, k, -1, B, b, N, n, nmask, NT, nt, ma, me)
    end = ma * s + me
    if k == NTT - 1:
        tl.store(final_ptr + sb + n, end, mask=nmask)
    else:
        _finish(flag_ptr, inc_ptr, k, 0, B, b, N, n, nmask, NT, nt, 1, end, end, AGG_ONLY)
    h0, h1 = tl.split(s)
    hw = h_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 // 2 + p
    zlo = _opaque(zlo)  # pass 2 normalises again: keeping pass 1's gates would double the registers
    zhi = _opaque(zhi)
    vw = _opaque(vw)
    for r in tl.static_range(BT):
        ok = (pmask & (k * BT + r < T)) != 0
        vr = _at(vw, tt, r)
        x0 = _at(zlo, tt, r)
        x1 = _at(zhi, tt, r)
        a0, w0, _ = _phi2(_half(x0, 0, DT), _half(x0, 1, DT), NORM, FAST)
        a1, w1, _ = _phi2(_half(x1, 0, DT), _half(x1, 1, DT), NORM, FAST)
        h0 = a0 * h0 + w0 * _half(vr, 0, DT)
        h1 = a1 * h1 + w1 * _half(vr, 1, DT)
        tl.store(hw + r * (N // 2), _pack(h0, h1, DT), mask=ok)


@triton.jit
def _diag_bwd_kernel(
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
    BT: tl.constexpr,
    BC: tl.constexpr,
    NORM: tl.constexpr,
    HAS_G: tl.constexpr,
    UNROLL: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    EV1: tl.constexpr,
    EV2: tl.constexpr,
    EVS: tl.constexpr,
):
    """lam_t = g_t + a_{t+1} lam_{t+1}, run on the carry u_t = a_t lam_t (a step maps the carry x from the step after
    it to a_t (g_t + x)); phase 2 writes dz (closed-form adjoint of phi with dP = (lam_t h_{t-1}, lam_t v_t)) and
    dv_t = b_t lam_t. Tile 0 writes d h0 = u_0."""
    k, b, nt = _tile(B, NT, NTT, True)
    c0 = nt * BC
    n = c0 + tl.arange(0, BC)
    nmask = n < N
    row0 = (b * T + k * BT).to(tl.int64) * N
    sb = (b * N).to(tl.int64)
    if k == NTT - 1:  # the carry entering it is d final state: no map, no look-back
        x = tl.load(dfinal_ptr + sb + n, mask=nmask, other=0.0)
    else:
        # phase 1: the tile's carry map x -> ma x + me
        ma = tl.full([BC], 1.0, tl.float32)
        me = tl.zeros([BC], dtype=tl.float32)
        for r0 in range(0, BT, UNROLL):
            for r in tl.static_range(UNROLL):
                s = r0 + r
                ok = (k * BT + s) < T
                row = row0 + s * N
                z0, z1 = _gates(z_ptr, row, c0, ok, N, BC, EV1)
                a, _, _ = _phi2(z0, z1, NORM, True)
                a = tl.where(ok, a, 1.0)
                if HAS_G:
                    g = tl.load(g_ptr + row + n, mask=(ok & nmask) != 0, other=0.0, eviction_policy=EV1).to(tl.float32)
                ma = ma * a  # steps 0..s map x -> ma x + me; append step s
                if HAS_G:
                    me += ma * g
        x = _lookback(
            flag_ptr, agg_ptr, inc_ptr, k, 1, B, b, N, n, nmask, 2 * c0 + tl.arange(0, 2 * BC), NT, nt, ma, me, BC
        )
        out = ma * x + me
        if k == 0:
            tl.store(dh0_ptr + sb + n, out, mask=nmask)
        else:
            _finish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, nmask, NT, nt, 1, out, out, AGG_ONLY)
    # phase 2: rerun backwards from the true carry, write dlogits and dv
    h0 = tl.load(h0_ptr + sb + n, mask=nmask, other=0.0)
    zo = 2 * c0 + tl.arange(0, 2 * BC)
    for r0 in range(0, BT, UNROLL):
        for r in tl.static_range(UNROLL):
            s = BT - 1 - r0 - r
            ok = (k * BT + s) < T
            okn = (ok & nmask) != 0
            row = row0 + s * N
            z0, z1 = _gates(z_ptr, row, c0, ok, N, BC, EV2)
            vt = tl.load(v_ptr + row + n, mask=okn, other=0.0, eviction_policy=EV2).to(tl.float32)
            lam = x
            if HAS_G:
                lam += tl.load(g_ptr + row + n, mask=okn, other=0.0, eviction_policy=EV2).to(tl.float32)
            hp = tl.load(h_ptr + row - N + n, mask=(okn & (k * BT + s > 0)) != 0, other=0.0, eviction_policy=EV2)
            hp = tl.where(k * BT + s == 0, h0, hp.to(tl.float32))
            a, w, inv = _phi2(z0, z1, NORM, True)
            dz0, dz1 = _dphi2(z0, z1, a, w, inv, lam, hp, vt, NORM, True)
            dz = tl.join(dz0, dz1)
            ty = dz_ptr.dtype.element_ty
            tl.store(dz_ptr + row * 2 + zo, tl.reshape(dz, [2 * BC]).to(ty), mask=(ok & (zo < 2 * N)) != 0,
                     eviction_policy=EVS)  # fmt: skip
            tl.store(dv_ptr + row + n, (lam * w).to(dv_ptr.dtype.element_ty), mask=okn, eviction_policy=EVS)
            x = tl.where(ok, a * lam, x)
    if k == NTT - 1:  # its carry is published only now
        if k == 0:
            tl.store(dh0_ptr + sb + n, x, mask=nmask)
        else:
            _finish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, nmask, NT, nt, 1, x, x, AGG_ONLY)


@triton.jit
def _adj(x, vr, hp, lam, u, ok, NORM: tl.constexpr, DT: tl.constexpr):
    """One channel-step of the reverse rerun from its logit word x, v, h_{t-1} and lam: (dz word, dv, the carry to
    the step before)."""
    z0 = _half(x, 0, DT)
    z1 = _half(x, 1, DT)
    a, w, inv = _phi2(z0, z1, NORM, True)
    dz0, dz1 = _dphi2(z0, z1, a, w, inv, lam, hp, vr, NORM, True)
    return _pack(dz0, dz1, DT), lam * w, tl.where(ok, a * lam, u)


@triton.jit(do_not_specialize_on_alignment=["v_ptr", "h_ptr", "g_ptr", "dv_ptr"])
def _diag_raw_bwd_kernel(
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
    BT: tl.constexpr,
    BP: tl.constexpr,
    NORM: tl.constexpr,
    HAS_G: tl.constexpr,
    AGG_ONLY: tl.constexpr,
    DT: tl.constexpr,
):
    """_diag_bwd_kernel in one pass over raw words, as _diag_raw_fwd_kernel: a lane owns a pair of channels and loads
    the tile's logit, dh, v and h_{t-1} words once, before the look-back (v19a: v and h after it took 0.530 ms
    against 0.483), folds the carry map from them, and after the look-back reruns the steps in reverse from the
    registers, where _diag_bwd_kernel re-reads the logits and dh (from L2 mostly) and has fewer loads in flight."""
    k, b, nt = _tile(B, NT, NTT, True)
    tt = tl.arange(0, BT)
    jj = tl.arange(0, 2)
    p = nt * BP + tl.arange(0, BP)
    pmask = p < N // 2
    okt = (k * BT + tt) < T
    mask = pmask[:, None] & okt[None, :]
    row0 = (b * T + k * BT).to(tl.int64) * N
    zw = z_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0
    zo = (2 * p)[:, None, None] + (tt * N)[None, :, None] + jj[None, None, :]
    zlo, zhi = tl.split(tl.load(zw + zo, mask=mask[:, :, None], other=0))
    wo = row0 // 2 + p[:, None] + (tt * (N // 2))[None, :]
    if HAS_G:
        gw = tl.load(g_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + wo, mask=mask, other=0)
    hmask = mask & ((k * BT + tt) > 0)[None, :]  # h_{t-1}: none before the sequence's first step (h0 there)
    vw = tl.load(v_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + wo, mask=mask, other=0)
    hw = tl.load(h_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + wo - N // 2, mask=hmask, other=0)
    n = 2 * p[:, None] + jj[None, :]  # [BP, 2] channels
    nmask = n < N
    sb = (b * N).to(tl.int64)
    if k == NTT - 1:  # the carry entering it is d final state: no map, no look-back
        x = tl.load(dfinal_ptr + sb + n, mask=nmask, other=0.0)
    else:
        one = tl.full([BP], 1.0, tl.float32)
        ma0, me0, ma1, me1 = one, one * 0.0, one, one * 0.0
        for r in tl.static_range(BT):  # steps 0..r map the carry x -> ma x + me; append step r
            x0 = _at(zlo, tt, r)
            x1 = _at(zhi, tt, r)
            a0, _, _ = _phi2(_half(x0, 0, DT), _half(x0, 1, DT), NORM, True)
            a1, _, _ = _phi2(_half(x1, 0, DT), _half(x1, 1, DT), NORM, True)
            ma0 = ma0 * a0
            ma1 = ma1 * a1
            if HAS_G:
                gr = _at(gw, tt, r)
                me0 += ma0 * _half(gr, 0, DT)
                me1 += ma1 * _half(gr, 1, DT)
        ma = tl.join(ma0, ma1)
        me = tl.join(me0, me1)
        x = _lookback1(flag_ptr, agg_ptr, inc_ptr, k, 1, B, b, N, n, nmask, NT, nt, ma, me)
        out = ma * x + me
        if k == 0:
            tl.store(dh0_ptr + sb + n, out, mask=nmask)
        else:
            _finish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, nmask, NT, nt, 1, out, out, AGG_ONLY)
    hs0, hs1 = tl.split(tl.load(h0_ptr + sb + n, mask=nmask, other=0.0))
    u0, u1 = tl.split(x)
    zlo = _opaque(zlo)  # the rerun normalises again: keeping the fold's gates and dh would double the registers
    zhi = _opaque(zhi)
    if HAS_G:
        gw = _opaque(gw)
    dzw = dz_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 + 2 * p[:, None] + jj[None, :]
    dvw = dv_ptr.to(tl.pointer_type(tl.int32), bitcast=True) + row0 // 2 + p
    for i in tl.static_range(BT):
        r = BT - 1 - i
        ok = (pmask & (k * BT + r < T)) != 0
        x0 = _at(zlo, tt, r)
        x1 = _at(zhi, tt, r)
        vr = _at(vw, tt, r)
        hr = _at(hw, tt, r)
        lam0 = u0
        lam1 = u1
        if HAS_G:
            gr = _at(gw, tt, r)
            lam0 += _half(gr, 0, DT)
            lam1 += _half(gr, 1, DT)
        hp0 = _half(hr, 0, DT)
        hp1 = _half(hr, 1, DT)
        if r == 0:
            hp0 = tl.where(k == 0, hs0, hp0)
            hp1 = tl.where(k == 0, hs1, hp1)
        d0, dv0, u0 = _adj(x0, _half(vr, 0, DT), hp0, lam0, u0, ok, NORM, DT)
        d1, dv1, u1 = _adj(x1, _half(vr, 1, DT), hp1, lam1, u1, ok, NORM, DT)
        tl.store(dzw + r * N, tl.join(d0, d1), mask=(ok[:, None] & nmask) != 0)
        tl.store(dvw + r * (N // 2), _pack(dv0, dv1, DT), mask=ok)
    if k == NTT - 1:  # its carry is published only now
        x = tl.join(u0, u1)
        if k == 0:
            tl.store(dh0_ptr + sb + n, x, mask=nmask)
        else:
            _finish(flag_ptr, inc_ptr, k, NTT - 1, B, b, N, n, nmask, NT, nt, 1, x, x, AGG_ONLY)


# ---------------------------------------------------------------------------------------------------------------------
# launch


def _launch_args(seqlen: int, nch: int, bwd: bool, raw: bool = False) -> tuple[dict, int, int]:
    """Constexprs and launch options of the forward or backward kernel (raw: the raw-word one) from config's diag
    settings; also (channel tiles, time tiles)."""
    cfg = settings("diag", 1, "bwd" if bwd else "fwd", "raw" if raw else "prefix")
    bt = min(cfg.bt, max(2, triton.next_power_of_2(seqlen)))
    # shrink the channel tile to the channels there are: lanes first, then VEC (the raw-word kernels' is 2)
    vec = 2 if raw else cfg.vec
    warps = max(1, min(cfg.warps, triton.next_power_of_2(nch) // (32 * vec)))
    vec = vec if raw else max(1, min(vec, triton.next_power_of_2(nch) // 32))
    kw = dict(BT=bt, AGG_ONLY=int(cfg.agg_only), num_warps=warps)
    kw["BP" if raw else "BC"] = 32 * warps * (1 if raw else vec)
    if bwd:
        if not raw:
            kw.update(UNROLL=min(bt, cfg.unroll), EV1="evict_last" if cfg.evict == 2 else "")
            kw.update(EV2="evict_first" if cfg.evict else "", EVS="evict_first" if cfg.evict else "")
    else:
        kw["FAST"] = cfg.fast
        if not raw:
            kw["VEC"] = vec
        if cfg.maxnreg:
            kw["maxnreg"] = cfg.maxnreg
    return kw, triton.cdiv(nch, 32 * warps * vec), triton.cdiv(seqlen, bt)


def diag_fwd(
    z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, norm: str, raw: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, N, 1, 2), v (B, T, N, 1), h0 (B, N, 1) fp32 -> (h (B, T, N, 1), final state (B, N, 1) fp32). raw:
    the raw-word kernel (only where raw_words(z, v))."""
    bsz, seqlen, nch, _ = v.shape
    kw, nt, ntt = _launch_args(seqlen, nch, bwd=False, raw=raw)
    h = torch.empty_like(v)
    final = torch.empty(bsz, nch, 1, dtype=torch.float32, device=v.device)
    flags, agg, inc = lookback_buffers(bsz, ntt, nch, nt, 1, v.device)
    if raw:
        kw["DT"] = _DTYPE_IDS[z.dtype]
    kernel = _diag_raw_fwd_kernel if raw else _diag_fwd_kernel
    kernel[(ntt * bsz * nt,)](z, v, h0, h, final, flags, agg, inc, bsz, seqlen, nch, nt, ntt, NORM=NORM_IDS[norm], **kw)
    return h, final


def diag_bwd(
    z: torch.Tensor, v: torch.Tensor, h0: torch.Tensor, h: torch.Tensor, dh, dfinal, norm: str, raw: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dz, dv, dh0) of diag_fwd from dh (or None) and d final state (or None). raw: the raw-word kernel
    (only where raw_words(z, v, h, dh or v))."""
    bsz, seqlen, nch, _ = v.shape
    has_g, g, dfinal, dz, dv, dh0 = bwd_buffers(z, v, dh, dfinal, (bsz, nch, 1))
    kw, nt, ntt = _launch_args(seqlen, nch, bwd=True, raw=raw)
    flags, agg, inc = lookback_buffers(bsz, ntt, nch, nt, 1, v.device)
    if raw:
        kw["DT"] = _DTYPE_IDS[z.dtype]
    kernel = _diag_raw_bwd_kernel if raw else _diag_bwd_kernel
    kernel[(ntt * bsz * nt,)](
        z, v, h, h0, g, dfinal, dz, dv, dh0, flags, agg, inc, bsz, seqlen, nch, nt, ntt,
        NORM=NORM_IDS[norm], HAS_G=has_g, **kw,
    )  # fmt: skip
    return dz, dv, dh0
