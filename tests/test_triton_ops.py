"""Triton kernels vs the float64 loop reference, on CPU through TRITON_INTERPRET=1 (tiny shapes).

T is not a multiple of the chunk length and several chunks are forced (HLRU_CHUNK), so the chunk-map, carry and
recompute kernels of the forward and backward are all exercised; for m = 1 (HLRU_DIAG_BT), m = 2 (HLRU_CHAIN_BT,
HLRU_TILE_BT_BWD) and m = 4, 8 (HLRU_TILE_BT) several time tiles run the look-back kernels' carry path, and
HLRU_CHAIN=0 / HLRU_TILE=0 run the generic kernels at those m too (HLRU_CHAIN_BWD=1: the chained backward at m = 1,
2; HLRU_DIAG_FWD=0 / HLRU_DIAG_BWD=0: the chained and tile kernels at m = 1; HLRU_DIAG_RAW=0: diag_tile.py's prefix
forward for 2-byte inputs).
"""

import os
import subprocess
import sys

import pytest  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip("triton")

from hlru_lm.ops import bdlru_scan, bdlru_step, hlru_scan, hlru_step  # noqa: E402

# Triton fixes interpreter mode when it is first imported (torch imports it), so TRITON_INTERPRET must be in the
# environment before Python starts. If it was not, one test re-runs this file in a subprocess with it set.
INTERPRETED = type(triton.language.standard.zeros).__name__ == "InterpretedFunction"
if not INTERPRETED and os.environ.get("HLRU_TRITON_SUBPROCESS") == "1":
    raise RuntimeError("TRITON_INTERPRET=1 did not take effect in the subprocess")
DEV = "cpu" if INTERPRETED else "cuda"
NORMS = ("softmax", "sigmoid_l1", "relu_l1", "none")
TOL = 1e-5


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _inputs(shape_z, shape_v, shape_h, norm, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape_z, generator=g)
    if norm == "none":
        z = z * 0.3  # keep the un-normalised recurrence bounded
    v = torch.randn(shape_v, generator=g)
    h0 = torch.randn(shape_h, generator=g)
    return z, v, h0


def _check(fn, z, v, h0, norm, grads=True):
    leaves = [
        [x.clone().to(DEV).requires_grad_(grads) for x in (z, v, h0)],
        [x.double().requires_grad_(grads) for x in (z, v, h0)],
    ]
    out_t = fn(*leaves[0], gate_norm=norm, backend="triton")
    out_r = fn(*leaves[1], gate_norm=norm, backend="naive")
    assert out_t[0].dtype == v.dtype and out_t[1].dtype == torch.float32
    assert rel(out_t[0].cpu(), out_r[0]) < TOL
    assert rel(out_t[1].cpu(), out_r[1]) < TOL
    if not grads:
        return
    g = torch.Generator().manual_seed(1)
    gh = torch.randn(out_r[0].shape, generator=g, dtype=torch.float64)
    gf = torch.randn(out_r[1].shape, generator=g, dtype=torch.float64)
    for h, f in (out_t, out_r):
        ((h * gh.to(h.device, h.dtype)).sum() + (f * gf.to(f.device, f.dtype)).sum()).backward()
    for a, b in zip(leaves[0], leaves[1], strict=True):
        assert rel(a.grad.cpu(), b.grad) < 20 * TOL


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setenv("HLRU_CHUNK", "8")
    monkeypatch.setenv("HLRU_CHAIN_BT", "16")  # m = 1, 2 chained kernels: 3 time tiles, the last one partial
    monkeypatch.setenv("HLRU_CHAIN_BT_BWD", "8")
    monkeypatch.setenv("HLRU_TILE_BT", "16")  # tile kernels (m = 4, 8; the m = 2 backward): 3 and 5 time tiles
    monkeypatch.setenv("HLRU_TILE_BT_BWD", "8")
    monkeypatch.setenv("HLRU_DIAG_BT", "16")  # m = 1 (diag_tile.py): 3 and 5 time tiles
    monkeypatch.setenv("HLRU_DIAG_BT_BWD", "8")


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [1, 2, 4, 8])
def test_bdlru_scan(small_chunks, m, norm):
    b, t, n = 2, 37, 3
    z, v, h0 = _inputs((b, t, n, m, m + 1), (b, t, n, m), (b, n, m), norm, seed=m)
    _check(bdlru_scan, z, v, h0, norm)


def test_bdlru_scan_m16(small_chunks, monkeypatch):
    monkeypatch.setenv("HLRU_ROWS", "0")  # the generic forward (bdlru.py), not bdlru_rows.py's
    z, v, h0 = _inputs((1, 19, 2, 16, 17), (1, 19, 2, 16), (1, 2, 16), "softmax", seed=16)
    _check(bdlru_scan, z, v, h0, "softmax")


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [1, 2, 4, 8])
def test_bdlru_generic_kernels(small_chunks, monkeypatch, m, norm):
    monkeypatch.setenv("HLRU_CHAIN", "0")
    monkeypatch.setenv("HLRU_TILE", "0")
    z, v, h0 = _inputs((2, 37, 3, m, m + 1), (2, 37, 3, m), (2, 3, m), norm, seed=11)
    _check(bdlru_scan, z, v, h0, norm)


@pytest.mark.parametrize("agg_only", ["0", "1"])
@pytest.mark.parametrize("bt", ["8", "64"])
@pytest.mark.parametrize("m", [1, 2])
def test_bdlru_chain_tiles(monkeypatch, m, bt, agg_only):
    """One time tile or several, two block tiles (N = 40 > BN = 32). agg_only=1: tiles never publish their end
    state, so each look-back composes every earlier tile's map (programs run one at a time in the interpreter,
    so otherwise a look-back always finds its predecessor finished)."""
    monkeypatch.setenv("HLRU_CHAIN_BT", bt)
    monkeypatch.setenv("HLRU_CHAIN_BT_BWD", bt)
    monkeypatch.setenv("HLRU_CHAIN_WARPS", "1")
    monkeypatch.setenv("HLRU_CHAIN_BWD", "1")  # the chained backward (opt-in; the tile backward is the default)
    monkeypatch.setenv("HLRU_DIAG_FWD", "0")  # m = 1: the chained forward, not diag_tile.py's
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", agg_only)
    z, v, h0 = _inputs((2, 30, 40, m, m + 1), (2, 30, 40, m), (2, 40, m), "softmax", seed=12)
    _check(bdlru_scan, z, v, h0, "softmax")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("words", ["1", "2"])
def test_chain_words(monkeypatch, words, dtype):
    """The m = 2 chained forward reading logits (and at 2, the default, also v, h) as 32-bit words under a register
    cap gives the element path's bits; misaligned tensors fall back (z: element loads, v: WORDS 1); bad knob values
    name the knob."""
    from hlru_lm.kernels import bdlru_chain

    monkeypatch.setenv("HLRU_CHAIN_BT", "8")
    monkeypatch.setenv("HLRU_CHAIN_WARPS", "1")
    z, v, h0 = _inputs((2, 19, 40, 2, 3), (2, 19, 40, 2), (2, 40, 2), "sigmoid_l1", seed=13)
    z, v, h0 = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
    assert bdlru_chain._fwd_words(z, v, 2) == dict(WORDS=2, DT=int(dtype == torch.float16), maxnreg=128)
    monkeypatch.setenv("HLRU_CHAIN_WORDS", "0")
    ref = bdlru_chain.bdlru_chain_fwd(z, v, h0, "sigmoid_l1")
    monkeypatch.setenv("HLRU_CHAIN_WORDS", words)
    assert bdlru_chain._fwd_words(z, v, 2)["WORDS"] == int(words)
    out = bdlru_chain.bdlru_chain_fwd(z, v, h0, "sigmoid_l1")
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])

    def misaligned(x):  # 2-byte aligned only
        return torch.empty(x.numel() + 1, dtype=dtype, device=DEV)[1:].view_as(x).copy_(x)

    zo, vo = misaligned(z), misaligned(v)
    assert bdlru_chain._fwd_words(zo, v, 2)["WORDS"] == 0 and bdlru_chain._fwd_words(z, vo, 2)["WORDS"] == 1
    assert bdlru_chain._fwd_words(z.float(), v, 2)["WORDS"] == 0 and bdlru_chain._fwd_words(z, v, 1)["WORDS"] == 0
    for zi, vi in ((zo, v), (z, vo)):
        assert torch.equal(bdlru_chain.bdlru_chain_fwd(zi, vi, h0, "sigmoid_l1")[0], ref[0])
    _check_dtype(bdlru_scan, z.float().cpu(), v.float().cpu(), h0.cpu(), "softmax", dtype)
    monkeypatch.setenv("HLRU_CHAIN_WORDS", "3")
    with pytest.raises(ValueError, match="HLRU_CHAIN_WORDS=3 must be 0, 1 or 2"):
        bdlru_chain.bdlru_chain_fwd(z, v, h0, "softmax")
    monkeypatch.setenv("HLRU_CHAIN_WORDS", words)
    monkeypatch.setenv("HLRU_CHAIN_MAXNREG", "300")
    with pytest.raises(ValueError, match="HLRU_CHAIN_MAXNREG=300 must be 0"):
        bdlru_chain.bdlru_chain_fwd(z, v, h0, "softmax")


def _check_dtype(fn, z, v, h0, norm, dtype):
    """_check for fp32; bf16 / fp16 inputs against the reference on the same rounded inputs (the output is rounded
    to dtype): 1e-2 on values and grads."""
    if dtype == torch.float32:
        _check(fn, z, v, h0, norm)
        return
    z, v = z.to(dtype), v.to(dtype)
    lt = [x.clone().to(DEV).requires_grad_() for x in (z, v, h0)]
    lr = [x.double().requires_grad_() for x in (z, v, h0)]
    ot = fn(*lt, gate_norm=norm, backend="triton")
    orf = fn(*lr, gate_norm=norm, backend="naive")
    assert ot[0].dtype == dtype and rel(ot[0].cpu(), orf[0]) < 1e-2 and rel(ot[1].cpu(), orf[1]) < TOL
    (ot[0].float().sum() + ot[1].sum()).backward()
    (orf[0].sum() + orf[1].sum()).backward()
    for a, b in zip(lt, lr, strict=True):
        assert rel(a.grad.cpu(), b.grad) < 1e-2


def _check_final_state_only(fn, z, v, h0, norm):
    """A loss on the final state only (no output gradient: the kernels' HAS_G=False), fp32 grads to 20 TOL."""
    zt, vt, ht = (x.clone().to(DEV).requires_grad_() for x in (z, v, h0))
    zr, vr, hr = (x.double().requires_grad_() for x in (z, v, h0))
    fn(zt, vt, ht, gate_norm=norm, backend="triton")[1].sum().backward()
    fn(zr, vr, hr, gate_norm=norm, backend="naive")[1].sum().backward()
    for a, b in ((zt, zr), (vt, vr), (ht, hr)):
        assert rel(a.grad.cpu(), b.grad) < 20 * TOL


def _record_calls(monkeypatch, module, names) -> list:
    """Wrap module.<name> so the test sees which kernels ran, in order."""
    calls = []
    for name in names:
        fn = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, fn=fn, name=name: calls.append(name) or fn(*a))
    return calls


def _tile_case(monkeypatch, m, bt, agg_only, dtype):
    monkeypatch.setenv("HLRU_TILE_WARPS", "1")  # two block tiles at N = 40
    monkeypatch.setenv("HLRU_TILE_BT", bt)
    monkeypatch.setenv("HLRU_TILE_BT_BWD", bt)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", agg_only)
    z, v, h0 = _inputs((2, 30, 40, m, m + 1), (2, 30, 40, m), (2, 40, m), "sigmoid_l1", seed=13)
    _check_dtype(bdlru_scan, z, v, h0, "sigmoid_l1", dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("agg_only", ["0", "1"])
@pytest.mark.parametrize("bt", ["4", "64"])
def test_bdlru_tile(monkeypatch, bt, agg_only, dtype):
    """m = 4 two-phase tile kernels (forward and backward): several time tiles (the last one partial) or one, two
    block tiles (N = 40 > BN = 32), every logit dtype the 64-bit word loads unpack and the word stores pack.
    agg_only as in test_bdlru_chain_tiles."""
    _tile_case(monkeypatch, 4, bt, agg_only, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tile_fwd", [True, False])
@pytest.mark.parametrize("m", [1, 2])
def test_bdlru_tile_small_m(monkeypatch, m, tile_fwd, dtype):
    """The tile kernels at m = 1, 2 (32-bit logit words for bf16 / fp16, 64-bit for fp32), look-back maps composed:
    the backward after the chained forward (the m = 2 default), or both directions (HLRU_CHAIN=0). At m = 1 they
    run with HLRU_DIAG_FWD=0 / HLRU_DIAG_BWD=0 (diag_tile.py is the default there)."""
    from hlru_lm.kernels import bdlru

    monkeypatch.setenv("HLRU_DIAG_FWD", "0")
    monkeypatch.setenv("HLRU_DIAG_BWD", "0")
    calls = _record_calls(monkeypatch, bdlru, ("bdlru_tile_fwd", "bdlru_tile_bwd"))
    if tile_fwd:
        monkeypatch.setenv("HLRU_CHAIN", "0")
    _tile_case(monkeypatch, m, "4", "1", dtype)
    assert calls == (["bdlru_tile_fwd"] if tile_fwd else []) + ["bdlru_tile_bwd"]


@pytest.mark.parametrize("coal_m", ["8", "16"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bdlru_tile_m8(monkeypatch, dtype, coal_m):
    """m = 8 tile kernels (one step per loop iteration), look-back maps composed; logit words read and written
    coalesced through shared memory (the default, 18 or 36 words per block) or one word per lane (HLRU_TILE_COAL_M)."""
    monkeypatch.setenv("HLRU_TILE_COAL_M", coal_m)
    _tile_case(monkeypatch, 8, "8", "1", dtype)


@pytest.mark.parametrize("rev, evict", [("0", "0"), ("1", "1"), ("1", "2")])
@pytest.mark.parametrize("m", [1, 4])
def test_bdlru_tile_phase_order(monkeypatch, m, rev, evict):
    """Phase 1 in the same time order as phase 2 or the opposite one (HLRU_TILE_REV, which composes the maps from the
    other side), with and without L2 eviction hints, forward and backward on the tile kernels (HLRU_CHAIN=0 for the
    m = 1 forward, HLRU_DIAG_FWD=0 / HLRU_DIAG_BWD=0 for m = 1); the defaults pick these per m and direction
    (_CACHE_ORDER)."""
    monkeypatch.setenv("HLRU_CHAIN", "0")
    monkeypatch.setenv("HLRU_DIAG_FWD", "0")
    monkeypatch.setenv("HLRU_DIAG_BWD", "0")
    monkeypatch.setenv("HLRU_TILE_REV", rev)
    monkeypatch.setenv("HLRU_TILE_EVICT", evict)
    _tile_case(monkeypatch, m, "8", "1", torch.bfloat16)


def test_cache_order_knobs_out_of_range(monkeypatch):
    monkeypatch.setenv("HLRU_TILE_EVICT", "3")
    z, v, h0 = _inputs((1, 4, 2, 4, 5), (1, 4, 2, 4), (1, 2, 4), "softmax", seed=0)
    with pytest.raises(ValueError, match="HLRU_TILE_EVICT=3 0, 1 or 2"):
        bdlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), gate_norm="softmax", backend="triton")


def test_launch_knob_not_an_integer(monkeypatch):
    monkeypatch.setenv("HLRU_TILE_COAL_M", "eight")
    z, v, h0 = _inputs((1, 4, 2, 8, 9), (1, 4, 2, 8), (1, 2, 8), "softmax", seed=0)
    with pytest.raises(ValueError, match="HLRU_TILE_COAL_M='eight' must be an integer"):
        bdlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), gate_norm="softmax", backend="triton")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_bdlru_tile_m4_coalesced(monkeypatch, dtype):
    """m = 4 with the coalesced logit words of m = 8 (HLRU_TILE_COAL_M=4; 5 or 10 words per block)."""
    monkeypatch.setenv("HLRU_TILE_COAL_M", "4")
    _tile_case(monkeypatch, 4, "8", "1", dtype)


@pytest.mark.parametrize("m", [1, 4])
def test_bdlru_tile_unaligned_logits_fall_back(monkeypatch, m):
    """Logits that are not aligned to the tile kernel's 64-bit words (fp32) cannot be read as words: the generic
    kernels run instead at m = 4 (m = 1 runs diag_tile.py's kernels, which need no alignment); the tile kernels are
    made to fail here, so the test sees which path ran."""
    from hlru_lm.kernels import bdlru
    from hlru_lm.kernels.bdlru_tile import use_tile

    def no_tile(*args):
        raise AssertionError("tile kernel called with unaligned logits")

    monkeypatch.setattr(bdlru, "bdlru_tile_fwd", no_tile)
    monkeypatch.setattr(bdlru, "bdlru_tile_bwd", no_tile)
    z, v, h0 = _inputs((1, 9, 3, m, m + 1), (1, 9, 3, m), (1, 3, m), "softmax", seed=14)
    shifted = torch.empty(z.numel() + 1)[1:].view(z.shape)  # 4 bytes past an aligned allocation
    shifted.copy_(z)
    assert use_tile(z, m) and not use_tile(shifted, m)
    zt = shifted.requires_grad_()
    zr, vr, hr = (x.double().requires_grad_() for x in (z, v, h0))
    h, f = bdlru_scan(zt, v, h0, backend="triton")
    href, fref = bdlru_scan(zr, vr, hr, backend="naive")
    assert rel(h, href) < TOL and rel(f, fref) < TOL
    (h.sum() + f.sum()).backward()
    (href.sum() + fref.sum()).backward()
    assert rel(zt.grad, zr.grad) < 20 * TOL


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("agg_only", ["0", "1"])
@pytest.mark.parametrize("vec, bt, n", [("1", "4", 40), ("2", "8", 136), ("4", "4", 37), ("2", "64", 136)])
def test_diag(monkeypatch, vec, bt, n, agg_only, dtype):
    """m = 1 on diag_tile.py (single-pass prefix forward, two-phase tile backward), VEC channels per lane: several
    time tiles (the last partial) or one, several channel tiles (one warp: 32 VEC channels each), N not a multiple of
    the tile or of 16 (element loads); agg_only as in test_bdlru_chain_tiles."""
    from hlru_lm.kernels import bdlru

    calls = _record_calls(monkeypatch, bdlru, ("diag_fwd", "diag_bwd"))
    for knob, val in dict(VEC=vec, BT=bt, BT_BWD=bt, WARPS="1", RAW="0", RAW_BWD="0").items():  # test_diag_raw*
        monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", agg_only)
    z, v, h0 = _inputs((2, 30, n, 1, 2), (2, 30, n, 1), (2, n, 1), "softmax", seed=15)
    _check_dtype(bdlru_scan, z, v, h0, "softmax", dtype)
    assert calls == ["diag_fwd", "diag_bwd"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("agg_only", ["0", "1"])
@pytest.mark.parametrize("bt, n", [("4", 40), ("8", 136), ("64", 136)])
def test_diag_raw(monkeypatch, bt, n, agg_only, dtype):
    """The m = 1 raw-word forward (the default for 2-byte inputs and N even): several time tiles (the last partial)
    or one, several pair tiles (one warp: 32 pairs; N = 136: the last tile partial), agg_only as in
    test_bdlru_chain_tiles. Against the float64 reference (values, final state, grads), and against the prefix
    forward (HLRU_DIAG_RAW=0) on the same tiles: the same maps composed in the same order."""
    from hlru_lm.kernels import diag_tile

    for knob, val in dict(BT=bt, BT_BWD=bt, WARPS="1").items():
        monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", agg_only)
    z, v, h0 = _inputs((2, 30, n, 1, 2), (2, 30, n, 1), (2, n, 1), "softmax", seed=15)
    _check_dtype(bdlru_scan, z, v, h0, "softmax", dtype)
    zd, vd, hd = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
    assert diag_tile.use_raw(zd, vd)
    h, f = diag_tile.diag_fwd(zd, vd, hd, "softmax")
    monkeypatch.setenv("HLRU_DIAG_RAW", "0")
    hp, fp = diag_tile.diag_fwd(zd, vd, hd, "softmax")
    assert rel(f, fp) < 1e-6 and rel(h.float(), hp.float()) < 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("agg_only", ["0", "1"])
@pytest.mark.parametrize("bt, n, has_g", [("4", 40, True), ("8", 136, True), ("64", 136, True), ("8", 72, False)])
def test_diag_raw_bwd(monkeypatch, bt, n, has_g, agg_only, dtype):
    """The m = 1 raw-word backward (the default for 2-byte inputs and N even) with a random dh (a constant one would
    not tell its halves apart) and d final state, or d final state only (HAS_G=False): against the float64
    reference on the same rounded inputs, and its d h0 against the tile backward's (HLRU_DIAG_RAW_BWD=0) on the same
    tiles, which composes the same maps."""
    from hlru_lm.kernels import diag_tile

    for knob, val in dict(BT_BWD=bt, WARPS="1").items():
        monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", agg_only)
    z, v, h0 = _inputs((2, 30, n, 1, 2), (2, 30, n, 1), (2, n, 1), "softmax", seed=17)
    zd, vd, hd = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
    h, f = diag_tile.diag_fwd(zd, vd, hd, "softmax")
    g = torch.Generator().manual_seed(3)
    dh = torch.randn(h.shape, generator=g).to(dtype).to(DEV) if has_g else None
    df = torch.randn(f.shape, generator=g).to(DEV)
    assert diag_tile.use_raw(zd, vd, h, vd if dh is None else dh, bwd=True)
    grads = diag_tile.diag_bwd(zd, vd, hd, h, dh, df, "softmax")
    lr = [x.cpu().double().requires_grad_() for x in (zd, vd, hd)]
    hr, fr = bdlru_scan(*lr, gate_norm="softmax", backend="naive")
    loss = (fr * df.cpu().double()).sum()
    if has_g:
        loss = loss + (hr * dh.cpu().double()).sum()
    loss.backward()
    for a, b in zip(grads, lr, strict=True):
        assert rel(a.cpu(), b.grad) < 1e-2
    monkeypatch.setenv("HLRU_DIAG_RAW_BWD", "0")
    tile = diag_tile.diag_bwd(zd, vd, hd, h, dh, df, "softmax")
    assert rel(grads[2], tile[2]) < 1e-5 and rel(grads[0].float(), tile[0].float()) < 1e-2


@pytest.mark.parametrize("bwd, raw", [(False, False), (False, True), (True, False), (True, True)])
def test_diag_launch_args(bwd, raw):
    """Every constexpr _launch_args passes is one of its kernel's parameters: Triton's interpreter accepts unknown
    keywords that the GPU compiler refuses."""
    from hlru_lm.kernels import diag_tile

    fwd_kernels = (diag_tile._diag_fwd_kernel, diag_tile._diag_raw_fwd_kernel)
    kernel = (diag_tile._diag_bwd_kernel, diag_tile._diag_raw_bwd_kernel)[raw] if bwd else fwd_kernels[raw]
    kw, _, _ = diag_tile._launch_args(4096, 1536, bwd=bwd, raw=raw)
    assert set(kw) - {"num_warps", "maxnreg"} <= set(kernel.arg_names)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("fast", ["0", "1"])
def test_diag_raw_norms(monkeypatch, fast, norm):
    """The raw-word forward with every gate_norm, exact or short normalisation (HLRU_DIAG_FAST), maps composed."""
    for knob, val in dict(FAST=fast, BT="8", WARPS="1").items():
        monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", "1")
    z, v, h0 = _inputs((2, 30, 72, 1, 2), (2, 30, 72, 1), (2, 72, 1), norm, seed=16)
    _check_dtype(bdlru_scan, z, v, h0, norm, torch.bfloat16)


def test_diag_raw_routing(monkeypatch):
    """use_raw takes 2-byte logits and v (the backward: h, dh too) of one dtype, 4-byte aligned, N even, unless
    HLRU_DIAG_RAW=0 (the backward: HLRU_DIAG_RAW_BWD=0)."""
    from hlru_lm.kernels.diag_tile import use_raw

    z = torch.zeros(1, 4, 6, 1, 2, dtype=torch.bfloat16)
    v = torch.zeros(1, 4, 6, 1, dtype=torch.bfloat16)
    assert use_raw(z, v) and use_raw(z.half(), v.half())
    assert not use_raw(z.float(), v.float()) and not use_raw(z, v.half())
    assert not use_raw(torch.zeros(1, 4, 5, 1, 2, dtype=torch.bfloat16), torch.zeros(1, 4, 5, 1, dtype=torch.bfloat16))
    buf = torch.zeros(1 + z.numel(), dtype=torch.bfloat16)
    assert not use_raw(buf[1:].view(z.shape), v)  # 2-byte aligned only
    assert use_raw(z, v, v, v, bwd=True) and not use_raw(z, v, v, v.float(), bwd=True)  # the backward: h, dh too
    monkeypatch.setenv("HLRU_DIAG_RAW_BWD", "0")
    assert not use_raw(z, v, v, v, bwd=True) and use_raw(z, v)
    monkeypatch.setenv("HLRU_DIAG_RAW", "0")
    assert not use_raw(z, v)
    monkeypatch.setenv("HLRU_DIAG_RAW", "yes")
    with pytest.raises(ValueError, match="HLRU_DIAG_RAW='yes' must be an integer"):
        use_raw(z, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m, n, t, unroll", [(4, 11, 30, "8"), (8, 5, 13, "4"), (16, 3, 9, "2"), (16, 2, 5, "8")])
def test_rows(monkeypatch, m, n, t, unroll, dtype):
    """The row-per-lane kernels (bdlru_rows.py) at m = 4, 8, 16: N m rows over several 32-row
    programs, the last partial (44, 40, 48 rows), or one partial program (32 rows at U > T); T not a multiple of U;
    2-byte logits read as words (rows start at odd and even 2-byte offsets)."""
    from hlru_lm.kernels import bdlru

    calls = _record_calls(monkeypatch, bdlru, ("rows_fwd", "rows_bwd"))
    monkeypatch.setenv("HLRU_ROWS_MIN_M", "4")
    monkeypatch.setenv("HLRU_ROWS_MIN_LANES", "0")
    monkeypatch.setenv("HLRU_ROWS_UNROLL", unroll)
    monkeypatch.setenv("HLRU_ROWS_UNROLL_BWD", unroll)
    z, v, h0 = _inputs((2, t, n, m, m + 1), (2, t, n, m), (2, n, m), "softmax", seed=17)
    _check_dtype(bdlru_scan, z, v, h0, "softmax", dtype)
    assert calls == ["rows_fwd", "rows_bwd"]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("fast, words", [("1", "1"), ("0", "0")])
def test_rows_knobs(monkeypatch, fast, words, norm):
    """Every gate_norm, forward and backward, with the short or exact normalisation (HLRU_ROWS_FAST) and bf16 logits
    as words or elements (HLRU_ROWS_WORDS)."""
    monkeypatch.setenv("HLRU_ROWS_MIN_LANES", "0")
    monkeypatch.setenv("HLRU_ROWS_FAST", fast)
    monkeypatch.setenv("HLRU_ROWS_WORDS", words)
    z, v, h0 = _inputs((2, 11, 5, 8, 9), (2, 11, 5, 8), (2, 5, 8), norm, seed=18)
    _check_dtype(bdlru_scan, z, v, h0, norm, torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m, parts, n", [(4, 2, 11), (8, 2, 5), (8, 4, 3), (16, 2, 3)])
def test_rows_parts(monkeypatch, m, parts, n, norm, dtype):
    """The row kernels with P lanes per row (HLRU_ROWS_PARTS, _PARTS_BWD): each lane m / P columns, the row's max,
    sums and mat-vec combined over its lanes, the backward's column sums completed over the parts; rows over several
    programs, the last partial; every gate_norm."""
    from hlru_lm.kernels import bdlru

    calls = _record_calls(monkeypatch, bdlru, ("rows_fwd", "rows_bwd"))
    for knob, val in dict(MIN_M="4", MIN_LANES="0", PARTS=str(parts), PARTS_BWD=str(parts), UNROLL="4").items():
        monkeypatch.setenv(f"HLRU_ROWS_{knob}", val)
    monkeypatch.setenv("HLRU_ROWS_UNROLL_BWD", "2")
    z, v, h0 = _inputs((2, 7, n, m, m + 1), (2, 7, n, m), (2, n, m), norm, seed=21)
    _check_dtype(bdlru_scan, z, v, h0, norm, dtype)
    assert calls == ["rows_fwd", "rows_bwd"]


def test_rows_routing(monkeypatch):
    """Which BD-LRU scans take bdlru_rows.py: m = 16 always, m = 8 from B N m = 8192 lanes, m = 4 on request; the
    backward on the same terms unless HLRU_ROWS_BWD=0."""
    from hlru_lm.kernels.bdlru_rows import use_rows

    assert use_rows(16, 32) and use_rows(8, 8 * 1536) and not use_rows(8, 2048) and not use_rows(4, 8 * 1536)
    assert not use_rows(1, 8 * 1536) and not use_rows(2, 8 * 1536)
    monkeypatch.setenv("HLRU_ROWS_MIN_M", "4")
    assert use_rows(4, 8192) and not use_rows(4, 8191)
    assert use_rows(16, 8 * 1536, bwd=True) and use_rows(16, 32, bwd=True) and not use_rows(8, 2048, bwd=True)
    monkeypatch.setenv("HLRU_ROWS_BWD", "0")
    assert use_rows(16, 8 * 1536) and not use_rows(16, 8 * 1536, bwd=True)
    monkeypatch.setenv("HLRU_ROWS", "0")
    assert not use_rows(16, 8 * 1536) and not use_rows(16, 8 * 1536, bwd=True)


@pytest.mark.parametrize("parts", ["1", "2"])
def test_rows_bwd_final_state_only(monkeypatch, parts):
    """The row backward with a loss on the final state only (no dh: HAS_G=False), fp32 to 1e-5."""
    monkeypatch.setenv("HLRU_ROWS_PARTS_BWD", parts)
    z, v, h0 = _inputs((2, 13, 3, 16, 17), (2, 13, 3, 16), (2, 3, 16), "sigmoid_l1", seed=20)
    _check_final_state_only(bdlru_scan, z, v, h0, "sigmoid_l1")


def test_rows_unaligned_logits():
    """bf16 logits 2 bytes past a 4-byte boundary cannot be read as 32-bit words: element loads, same result."""
    from hlru_lm.kernels.bdlru_rows import rows_fwd

    z, v, h0 = _inputs((1, 7, 3, 16, 17), (1, 7, 3, 16), (1, 3, 16), "softmax", seed=19)
    z, v = z.bfloat16(), v.bfloat16()
    shifted = torch.empty(z.numel() + 1, dtype=z.dtype)[1:].view(z.shape)
    shifted.copy_(z)
    assert shifted.data_ptr() % 4 == 2
    h, f = rows_fwd(shifted, v, h0, "softmax")
    hr, fr = bdlru_scan(z.double(), v.double(), h0.double(), backend="naive")
    assert rel(h, hr) < 1e-2 and rel(f, fr) < TOL


@pytest.mark.parametrize("knob, val, msg", [("UNROLL", "3", "HLRU_ROWS_UNROLL=3 must be a power of two"),
                                            ("PF", "-8", "HLRU_ROWS_PF=-8 must be 0"),
                                            ("UNROLL_BWD", "6", "HLRU_ROWS_UNROLL_BWD=6 must be"),
                                            ("PARTS", "4", "HLRU_ROWS_PARTS=4 at m = 16"),
                                            ("PARTS", "3", "HLRU_ROWS_PARTS=3 at m = 16"),
                                            ("PARTS_BWD", "4", "HLRU_ROWS_PARTS_BWD=4 at m = 16")])  # fmt: skip
def test_rows_knobs_out_of_range(monkeypatch, knob, val, msg):
    monkeypatch.setenv(f"HLRU_ROWS_{knob}", val)
    z, v, h0 = _inputs((1, 4, 2, 16, 17), (1, 4, 2, 16), (1, 2, 16), "softmax", seed=0)
    with pytest.raises(ValueError, match=msg):
        z = z.to(DEV).requires_grad_()
        bdlru_scan(z, v.to(DEV), h0.to(DEV), gate_norm="softmax", backend="triton")[0].sum().backward()


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("fast, evict", [("0", "0"), ("1", "1"), ("1", "2")])
def test_diag_knobs(monkeypatch, fast, evict, norm):
    """Every gate_norm with the forward's exact or short normalisation (HLRU_DIAG_FAST) and the backward's L2
    eviction hints (HLRU_DIAG_EVICT), look-back maps composed."""
    for knob, val in dict(FAST=fast, EVICT=evict, BT="8", BT_BWD="4", WARPS="1", VEC="2").items():
        monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", "1")
    z, v, h0 = _inputs((2, 30, 72, 1, 2), (2, 30, 72, 1), (2, 72, 1), norm, seed=16)
    _check(bdlru_scan, z, v, h0, norm)


@pytest.mark.parametrize("knob, val, msg", [("VEC", "3", "HLRU_DIAG_VEC=3 must be a power of two"),
                                            ("EVICT", "5", "HLRU_DIAG_EVICT=5 must be 0, 1 or 2"),
                                            ("MAXNREG", "8", "HLRU_DIAG_MAXNREG=8 must be 0")])  # fmt: skip
def test_diag_knobs_out_of_range(monkeypatch, knob, val, msg):
    monkeypatch.setenv(f"HLRU_DIAG_{knob}", val)
    z, v, h0 = _inputs((1, 4, 2, 1, 2), (1, 4, 2, 1), (1, 2, 1), "softmax", seed=0)
    with pytest.raises(ValueError, match=msg):
        bdlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), gate_norm="softmax", backend="triton")


def test_bdlru_single_chunk_no_grad_out():
    """One chunk (no carry kernels) and a loss on the final state only (dh is None in backward)."""
    z, v, h0 = _inputs((2, 21, 3, 2, 3), (2, 21, 3, 2), (2, 3, 2), "softmax", seed=5)
    zt, vt, ht = (x.clone().requires_grad_() for x in (z, v, h0))
    zr, vr, hr = (x.double().requires_grad_() for x in (z, v, h0))
    bdlru_scan(zt, vt, ht, backend="triton")[1].sum().backward()
    bdlru_scan(zr, vr, hr, backend="naive")[1].sum().backward()
    for a, b in ((zt, zr), (vt, vr), (ht, hr)):
        assert rel(a.grad, b.grad) < 20 * TOL


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [1, 2, 4, 16])
def test_hlru_scan(m, norm):
    b, t, n = 2, 37, 3
    z, v, h0 = _inputs((b, t, n, m + 1), (b, t, n), (b, n, m), norm, seed=100 + m)
    _check(hlru_scan, z, v, h0, norm)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m", [2, 4, 8])
def test_hlru_tile(monkeypatch, m, dtype):
    """H-LRU of order 2, 4, 8 on the BD-LRU tile kernels in companion form: several time tiles, two channel tiles
    (N = 40 > BN = 32), look-back maps composed (HLRU_DEBUG_AGG_ONLY=1)."""
    from hlru_lm.kernels import hlru

    calls = _record_calls(monkeypatch, hlru, ("hlru_tile_fwd", "hlru_tile_bwd"))
    monkeypatch.setenv("HLRU_TILE_WARPS", "1")
    monkeypatch.setenv("HLRU_TILE_BT", "4")
    monkeypatch.setenv("HLRU_TILE_BT_BWD", "8")
    monkeypatch.setenv("HLRU_DEBUG_AGG_ONLY", "1")
    z, v, h0 = _inputs((2, 30, 40, m + 1), (2, 30, 40), (2, 40, m), "softmax", seed=200 + m)
    _check_dtype(hlru_scan, z, v, h0, "softmax", dtype)
    assert calls == ["hlru_tile_fwd", "hlru_tile_bwd"]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m, n, t", [(2, 21, 13), (4, 11, 9), (8, 5, 13), (16, 3, 5)])
def test_hlru_lags(monkeypatch, m, n, t, norm):
    """H-LRU on the lane-per-lag kernels (hlru_lags.py; HLRU_LAGS=1 takes every order there): channels over several
    32-lane programs, the last partial; T not a multiple of U (4 forward, 2 backward); every gate_norm, fp32 to 1e-5."""
    from hlru_lm.kernels import hlru

    calls = _record_calls(monkeypatch, hlru, ("lags_fwd", "lags_bwd"))
    for knob, val in dict(LAGS="1", LAGS_UNROLL="4", LAGS_UNROLL_BWD="2").items():
        monkeypatch.setenv(f"HLRU_{knob}", val)
    z, v, h0 = _inputs((2, t, n, m + 1), (2, t, n), (2, n, m), norm, seed=300 + m)
    _check(hlru_scan, z, v, h0, norm)
    assert calls == ["lags_fwd", "lags_bwd"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [4, 16])
def test_hlru_lags_dtypes(monkeypatch, m, dtype):
    """The lane-per-lag kernels with 2-byte inputs at their default unrolls (T = 19 not a multiple of U), and a loss
    on the final state only (no dy: HAS_G=False)."""
    monkeypatch.setenv("HLRU_LAGS", "1")
    z, v, h0 = _inputs((2, 19, 6, m + 1), (2, 19, 6), (2, 6, m), "sigmoid_l1", seed=310 + m)
    _check_dtype(hlru_scan, z, v, h0, "sigmoid_l1", dtype)
    _check_final_state_only(hlru_scan, z, v, h0, "softmax")


@pytest.mark.parametrize("knob, val, msg", [("UNROLL", "6", "HLRU_LAGS_UNROLL=6 must be a power of two"),
                                            ("UNROLL_BWD", "0", "HLRU_LAGS_UNROLL_BWD=0 must be"),
                                            ("PF", "-1", "HLRU_LAGS_PF=-1 must be 0")])  # fmt: skip
def test_hlru_lags_knobs_out_of_range(monkeypatch, knob, val, msg):
    monkeypatch.setenv("HLRU_LAGS", "1")
    monkeypatch.setenv(f"HLRU_LAGS_{knob}", val)
    z, v, h0 = _inputs((1, 4, 2, 5), (1, 4, 2), (1, 2, 4), "softmax", seed=0)
    with pytest.raises(ValueError, match=msg):
        z = z.to(DEV).requires_grad_()
        hlru_scan(z, v.to(DEV), h0.to(DEV), gate_norm="softmax", backend="triton")[0].sum().backward()


def test_hlru_lags_routing(monkeypatch):
    """The lane-per-lag kernels take order 16, and order 8 from 8192 lanes (v17a); HLRU_LAGS=1 / 0 takes every order
    in LAGS_M / none; bad values name the variable."""
    from hlru_lm.kernels.hlru_lags import use_lags

    assert use_lags(16, 32) and use_lags(8, 8192) and not use_lags(8, 4096) and not use_lags(4, 12288)
    assert not use_lags(2, 12288) and not use_lags(1, 12288)
    monkeypatch.setenv("HLRU_LAGS_MIN_LANES", "4096")
    assert use_lags(8, 4096)
    monkeypatch.setenv("HLRU_LAGS", "1")
    assert use_lags(2, 32) and use_lags(16, 32) and not use_lags(1, 32) and not use_lags(32, 32)
    monkeypatch.setenv("HLRU_LAGS", "0")
    assert not use_lags(16, 12288)
    monkeypatch.setenv("HLRU_LAGS", "yes")
    with pytest.raises(ValueError, match="HLRU_LAGS='yes' must be an integer"):
        use_lags(16, 32)


@pytest.mark.parametrize("m", [2, 4, 16])
def test_hlru_generic_kernel(monkeypatch, m):
    """HLRU_TILE=0, HLRU_LAGS=0: the sequential H-LRU kernel (hlru.py), kept for the calls the others do not take."""
    monkeypatch.setenv("HLRU_TILE", "0")
    monkeypatch.setenv("HLRU_LAGS", "0")
    z, v, h0 = _inputs((2, 37, 3, m + 1), (2, 37, 3), (2, 3, m), "relu_l1", seed=102)
    _check(hlru_scan, z, v, h0, "relu_l1")


def test_hlru_m1_generic_kernel(monkeypatch):
    """H-LRU of order 1 runs the m = 1 BD-LRU look-back kernel; HLRU_CHAIN=0 keeps the H-LRU kernel tested there."""
    monkeypatch.setenv("HLRU_CHAIN", "0")
    z, v, h0 = _inputs((2, 37, 3, 2), (2, 37, 3), (2, 3, 1), "sigmoid_l1", seed=101)
    _check(hlru_scan, z, v, h0, "sigmoid_l1")


@pytest.mark.parametrize("m", [1, 4])
def test_steps(m):
    z, v, s = _inputs((2, 3, m, m + 1), (2, 3, m), (2, 3, m), "softmax", seed=7)
    _check(bdlru_step, z, v, s, "softmax")
    z, v, s = _inputs((2, 3, m + 1), (2, 3), (2, 3, m), "sigmoid_l1", seed=8)
    _check(hlru_step, z, v, s, "sigmoid_l1")


def test_bf16_inputs(small_chunks):
    z, v, h0 = _inputs((2, 33, 2, 4, 5), (2, 33, 2, 4), (2, 2, 4), "softmax", seed=9)
    h, f = bdlru_scan(z.bfloat16().to(DEV), v.bfloat16().to(DEV), h0.to(DEV), backend="triton")
    hr, fr = bdlru_scan(z.double(), v.double(), h0.double(), backend="naive")
    assert h.dtype == torch.bfloat16 and f.dtype == torch.float32
    assert rel(h.cpu(), hr) < 1e-2 and rel(f.cpu(), fr) < 1e-2


def test_unsupported_m_falls_back():
    from hlru_lm.kernels import common

    common._warned.clear()
    z, v, h0 = _inputs((1, 9, 2, 3, 4), (1, 9, 2, 3), (1, 2, 3), "softmax", seed=3)
    with pytest.warns(UserWarning, match="m=3"):
        h, f = bdlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), backend="triton")
    hr, fr = bdlru_scan(z.double(), v.double(), h0.double(), backend="naive")
    assert rel(h.cpu(), hr) < TOL and rel(f.cpu(), fr) < TOL
    z, v, h0 = _inputs((1, 9, 2, 4), (1, 9, 2), (1, 2, 3), "softmax", seed=4)
    with pytest.warns(UserWarning, match="m=3"):
        y, _ = hlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), backend="triton")
    assert rel(y.cpu(), hlru_scan(z.double(), v.double(), h0.double(), backend="naive")[0]) < TOL


if not INTERPRETED and not torch.cuda.is_available():

    def test_in_interpreter_subprocess():
        env = dict(os.environ, TRITON_INTERPRET="1", HLRU_TRITON_SUBPROCESS="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
        res = subprocess.run(
            cmd, env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__))
        )
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]

    for _name in [k for k in globals() if k.startswith("test_") and k != "test_in_interpreter_subprocess"]:
        del globals()[_name]
