"""Triton kernels vs the float64 loop reference, on CPU through TRITON_INTERPRET=1 (tiny shapes).

Every route of hlru_lm.kernels.router runs forward and backward against float64 at least once, every gate_norm at
least once per kernel family; the tests assert which route ran. Launch settings are set with
hlru_lm.kernels.launch_settings: short tiles so that several time tiles run the look-back kernels' carry path,
fixed chunks so that the generic kernels' chunk-map, carry and recompute kernels all run, agg_only so that every
look-back composes maps (programs run one at a time in the interpreter, so otherwise a look-back always finds its
predecessor finished), and forced routes for the kernels a shape does not pick by default. The routing table itself
is tested cell by cell (test_routing_table).
"""

import os
import subprocess
import sys
import threading

import pytest
import torch

triton = pytest.importorskip("triton")

from hlru_lm import kernels  # noqa: E402
from hlru_lm.kernels import launch_settings, select  # noqa: E402
from hlru_lm.kernels.config import RouteSettings, settings  # noqa: E402
from hlru_lm.ops import bdlru_scan, bdlru_step, hlru_scan, hlru_step  # noqa: E402

from .conftest import rel  # noqa: E402

# Triton fixes interpreter mode when it is first imported (torch imports it), so TRITON_INTERPRET must be in the
# environment before Python starts. If it was not, one test re-runs this file in a subprocess with it set.
INTERPRETED = type(triton.language.standard.zeros).__name__ == "InterpretedFunction"
if not INTERPRETED and os.environ.get("HLRU_TRITON_SUBPROCESS") == "1":
    raise RuntimeError("TRITON_INTERPRET=1 did not take effect in the subprocess")
DEV = "cpu" if INTERPRETED else "cuda"
NORMS = ("softmax", "sigmoid_l1", "relu_l1", "none")
TOL = 1e-5
F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16


def _inputs(shape_z, shape_v, shape_h, norm, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape_z, generator=g)
    if norm == "none":
        z = z * 0.3  # keep the un-normalised recurrence bounded
    v = torch.randn(shape_v, generator=g)
    h0 = torch.randn(shape_h, generator=g)
    return z, v, h0


def _bd(b, t, n, m, norm="softmax", seed=0):
    return _inputs((b, t, n, m, m + 1), (b, t, n, m), (b, n, m), norm, seed)


def _hl(b, t, n, m, norm="softmax", seed=0):
    return _inputs((b, t, n, m + 1), (b, t, n), (b, n, m), norm, seed)


@pytest.fixture
def routes(monkeypatch) -> list:
    """The (route, direction) of every kernel call, in order (kernels.KERNELS entries wrapped)."""
    calls = []
    for route, (fwd, bwd) in list(kernels.KERNELS.items()):
        wrapped = (
            lambda *a, f=fwd, r=route: calls.append((r, "fwd")) or f(*a),
            lambda *a, f=bwd, r=route: calls.append((r, "bwd")) or f(*a),
        )
        monkeypatch.setitem(kernels.KERNELS, route, wrapped)
    return calls


def _check(fn, z, v, h0, norm, dtype=F32, final_only=False):
    """The Triton scan against float64 (the reference on the same rounded inputs), values, final state and the grads
    of a random linear loss on both (final_only: on the final state only, so the kernels see no output gradient:
    HAS_G=False). fp32: 1e-5 (grads 2e-4); bf16 / fp16 inputs: the output is rounded to dtype, 1e-2."""
    z, v = z.to(dtype), v.to(dtype)
    lt = [x.clone().to(DEV).requires_grad_() for x in (z, v, h0)]
    lr = [x.double().requires_grad_() for x in (z, v, h0)]
    out_t = fn(*lt, gate_norm=norm, backend="triton")
    out_r = fn(*lr, gate_norm=norm, backend="naive")
    tol = TOL if dtype == F32 else 1e-2
    assert out_t[0].dtype == dtype and out_t[1].dtype == torch.float32
    assert rel(out_t[0].cpu(), out_r[0]) < tol and rel(out_t[1].cpu(), out_r[1]) < TOL
    g = torch.Generator().manual_seed(1)
    gh = torch.randn(out_r[0].shape, generator=g, dtype=torch.float64)
    gf = torch.randn(out_r[1].shape, generator=g, dtype=torch.float64)
    for h, f in (out_t, out_r):
        loss = (f.double() * gf.to(f.device)).sum()
        if not final_only:
            loss = loss + (h.double() * gh.to(h.device)).sum()
        loss.backward()
    for a, b in zip(lt, lr, strict=True):
        assert rel(a.grad.cpu(), b.grad) < (20 * TOL if dtype == F32 else 1e-2)


# ---------------------------------------------------------------------------------------------------------------------
# the router


def _cell(mixer, m, direction, lanes, words=True, raw=False):
    return select(mixer, m, direction, lanes, words, raw, thresholds=RouteSettings(), forced={})


# (mixer, m, direction, lanes, words, raw) -> route: every cell of the table in router.py's docstring, both sides of
# each threshold and each readability condition
TABLE = [
    ("bdlru", 1, "fwd", 12288, True, True, "diag_raw"),
    ("bdlru", 1, "fwd", 12288, True, False, "diag_tile"),
    ("bdlru", 1, "bwd", 64, False, True, "diag_raw"),
    ("bdlru", 1, "bwd", 64, False, False, "diag_tile"),
    ("bdlru", 2, "fwd", 12288, True, False, "bdlru_chain"),
    ("bdlru", 2, "fwd", 12288, False, False, "bdlru_chain"),
    ("bdlru", 2, "bwd", 12288, True, False, "bdlru_tile"),
    ("bdlru", 2, "bwd", 12288, False, False, "bdlru_chain"),
    ("bdlru", 4, "fwd", 12288, True, False, "bdlru_tile"),
    ("bdlru", 4, "bwd", 12288, True, False, "bdlru_tile"),
    ("bdlru", 4, "fwd", 12288, False, False, "bdlru_generic"),
    ("bdlru", 4, "bwd", 12288, False, False, "bdlru_generic"),
    ("bdlru", 8, "fwd", 8191, True, False, "bdlru_tile"),
    ("bdlru", 8, "bwd", 8191, True, False, "bdlru_tile"),
    ("bdlru", 8, "fwd", 8191, False, False, "bdlru_generic"),
    ("bdlru", 8, "bwd", 8191, False, False, "bdlru_generic"),
    ("bdlru", 8, "fwd", 8192, True, False, "bdlru_rows"),
    ("bdlru", 8, "bwd", 8192, False, False, "bdlru_rows"),
    ("bdlru", 16, "fwd", 32, True, False, "bdlru_rows"),
    ("bdlru", 16, "bwd", 32, False, False, "bdlru_rows"),
    ("hlru", 1, "fwd", 12288, True, True, "diag_raw"),
    ("hlru", 1, "bwd", 12288, True, False, "diag_tile"),
    ("hlru", 2, "fwd", 12288, True, False, "hlru_tile"),
    ("hlru", 2, "bwd", 12288, False, False, "hlru_seq"),
    ("hlru", 4, "fwd", 12288, True, False, "hlru_tile"),
    ("hlru", 4, "bwd", 12288, True, False, "hlru_tile"),
    ("hlru", 4, "fwd", 12288, False, False, "hlru_seq"),
    ("hlru", 8, "fwd", 8191, True, False, "hlru_tile"),
    ("hlru", 8, "bwd", 8191, True, False, "hlru_tile"),
    ("hlru", 8, "fwd", 8191, False, False, "hlru_seq"),
    ("hlru", 8, "fwd", 8192, True, False, "hlru_lags"),
    ("hlru", 8, "bwd", 8192, False, False, "hlru_lags"),
    ("hlru", 16, "fwd", 48, True, False, "hlru_lags"),
    ("hlru", 16, "bwd", 48, False, False, "hlru_lags"),
]


@pytest.mark.parametrize("mixer, m, direction, lanes, words, raw, route", TABLE)
def test_routing_table(mixer, m, direction, lanes, words, raw, route):
    assert _cell(mixer, m, direction, lanes, words, raw) == route


def test_routing_settings():
    """The thresholds and forced routes come from launch_settings; a forced route that cannot take the call raises."""
    assert select("bdlru", 8, "fwd", 8192, True) == "bdlru_rows" and select("hlru", 8, "fwd", 8192) == "hlru_lags"
    with launch_settings(route=dict(rows_min_lanes=16384, lags_min_lanes=4096)):
        assert select("bdlru", 8, "fwd", 8192, True) == "bdlru_tile"
        assert select("hlru", 8, "fwd", 4096) == "hlru_lags" and select("hlru", 8, "fwd", 4095) == "hlru_tile"
    with launch_settings(routes={("bdlru", 4): "bdlru_rows", ("hlru", 1, "bwd"): "hlru_seq"}):
        assert select("bdlru", 4, "fwd", 32) == select("bdlru", 4, "bwd", 32) == "bdlru_rows"
        assert select("hlru", 1, "fwd", 32) == "diag_tile" and select("hlru", 1, "bwd", 32) == "hlru_seq"
        with launch_settings(routes={("bdlru", 4, "fwd"): "bdlru_tile"}):  # nested: the inner one wins
            assert select("bdlru", 4, "fwd", 32) == "bdlru_tile" and select("bdlru", 4, "bwd", 32) == "bdlru_rows"
    assert select("bdlru", 4, "fwd", 32) == "bdlru_tile"
    for forced, call, msg in [
        ("bdlru_rows", ("bdlru", 2, "fwd", 32), "does not run bdlru at m = 2"),
        ("bdlru_chain", ("bdlru", 1, "fwd", 32), "does not run bdlru at m = 1"),
        ("hlru_lags", ("bdlru", 4, "fwd", 32), "does not run bdlru at m = 4"),
        ("bdlru_tile", ("bdlru", 4, "fwd", 32, False), "cannot read"),
        ("diag_raw", ("bdlru", 1, "fwd", 32, True, False), "cannot read"),
        ("hlru_tile", ("hlru", 4, "bwd", 32, False), "cannot read"),
    ]:
        with launch_settings(routes={call[:3]: forced}), pytest.raises(ValueError, match=msg):
            select(*call)


def test_launch_settings():
    """Family-wide then per-direction overrides, nesting, and checks: unknown names raise at once, bad values when a
    kernel asks for the entry (a value may be bad at one m only)."""
    assert settings("tile", 4, "fwd", "bdlru").bt == 64 and settings("tile", 4, "bwd", "bdlru").bt == 32
    with launch_settings(tile=dict(bt=8, warps=1), tile_bwd=dict(bt=4)):
        assert settings("tile", 4, "fwd", "bdlru").bt == 8 and settings("tile", 2, "bwd", "hlru").bt == 4
        assert settings("tile", 8, "fwd", "bdlru").warps == 1
        with launch_settings(tile_fwd=dict(bt=2)):
            assert settings("tile", 4, "fwd", "bdlru").bt == 2 and settings("tile", 4, "bwd", "bdlru").bt == 4
        assert settings("tile", 4, "fwd", "bdlru").bt == 8
    assert settings("tile", 4, "fwd", "bdlru").bt == 64
    seen = []  # other threads see an override too (CUDA backwards run on the autograd engine's threads)
    with launch_settings(tile_bwd=dict(bt=4), routes={("bdlru", 4): "bdlru_generic"}):
        worker = threading.Thread(
            target=lambda: seen.append((settings("tile", 4, "bwd", "bdlru").bt, select("bdlru", 4, "bwd", 32)))
        )
        worker.start()
        worker.join()
    assert seen == [(4, "bdlru_generic")]
    outer, inner = launch_settings(tile=dict(bt=8)), launch_settings(tile_bwd=dict(bt=4))
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # blocks that end out of order (threads, generators)
    assert settings("tile", 4, "bwd", "bdlru").bt == 4
    inner.__exit__(None, None, None)
    assert settings("tile", 4, "fwd", "bdlru").bt == 64 and settings("tile", 4, "bwd", "bdlru").bt == 32
    for key, route, msg in [
        (("bdlru", 4, "forward"), "bdlru_generic", "is not \\(mixer, m\\[, direction\\]\\)"),
        (("bdlru", 3), "bdlru_generic", "is not"),
        (("lstm", 4), "bdlru_generic", "is not"),
        (("bdlru", 4), "bdlru_fast", "unknown route 'bdlru_fast'"),
    ]:
        with pytest.raises(ValueError, match=msg):
            with launch_settings(routes={key: route}):
                pass
    with pytest.raises(ValueError, match="unknown family 'tiles'"):
        with launch_settings(tiles=dict(bt=8)):
            pass
    with pytest.raises(ValueError, match="unexpected keyword argument 'bn'"):
        with launch_settings(tile=dict(bn=8)):
            pass
    with launch_settings(rows=dict(parts=4)):
        assert settings("rows", 8, "fwd").parts == 4
        with pytest.raises(ValueError, match="rows m=16 fwd: parts=4 at m = 16"):
            settings("rows", 16, "fwd")
    for name, fields, msg in [
        ("rows_bwd", dict(unroll=6), "rows m=4 bwd: unroll=6 must be a power of two"),
        ("lags", dict(pf=-1), "pf=-1 must be 0"),
        ("diag", dict(vec=3), "vec=3 must be a power of two"),
        ("diag_fwd", dict(maxnreg=8), "maxnreg=8 must be 0"),
        ("tile", dict(evict=3), "evict=3 must be 0, 1 or 2"),
        ("chain", dict(words=3), "words=3 must be 0, 1 or 2"),
    ]:
        with launch_settings(**{name: fields}), pytest.raises(ValueError, match=msg):
            for key in kernels.config.DEFAULTS:
                settings(*key)


def test_relu_eps_matches_ops():
    from hlru_lm import ops
    from hlru_lm.kernels import common

    assert common.RELU_EPS.value == ops.RELU_L1_EPS


def test_launch_settings_reach_the_kernels():
    """Every constexpr a launch passes is one of its kernel's parameters (Triton's interpreter accepts unknown
    keywords that the GPU compiler refuses), for the default settings of every family."""
    from hlru_lm.kernels import bdlru_chain, bdlru_rows, bdlru_tile, diag_tile, hlru_lags

    z = torch.zeros(8, 64, 96, 4, 5, dtype=BF16)
    for bwd in (False, True):
        for raw in (False, True):
            kernel = [[diag_tile._diag_fwd_kernel, diag_tile._diag_raw_fwd_kernel],
                      [diag_tile._diag_bwd_kernel, diag_tile._diag_raw_bwd_kernel]][bwd][raw]  # fmt: skip
            kw, _, _ = diag_tile._launch_args(4096, 1536, bwd=bwd, raw=raw)
            assert set(kw) - {"num_warps", "maxnreg"} <= set(kernel.arg_names)
        kernel = bdlru_tile._bdlru_tile_bwd_kernel if bwd else bdlru_tile._bdlru_tile_fwd_kernel
        for hlru in (False, True):
            kw = bdlru_tile._launch_args(z, 4096, 96, 4, bwd, hlru)[0]
            assert set(kw) - {"num_warps", "maxnreg"} <= set(kernel.arg_names)
        kernel = bdlru_rows._rows_bwd_kernel if bwd else bdlru_rows._rows_fwd_kernel
        assert set(bdlru_rows._launch_args(z, 4096, 16, bwd)) - {"num_warps"} <= set(kernel.arg_names)
        kernel = hlru_lags._lags_bwd_kernel if bwd else hlru_lags._lags_fwd_kernel
        assert set(hlru_lags._launch_args(16, 4096, bwd)) - {"num_warps"} <= set(kernel.arg_names)
    kw = bdlru_chain._fwd_words(z[..., :2, :3].contiguous(), z[..., :2, 0].contiguous(), 2)
    assert set(kw) - {"maxnreg"} <= set(bdlru_chain._bdlru_chain_fwd_kernel.arg_names)


def test_launch_settings_exit_on_error():
    """A block left by an exception restores the table it replaced (the next launches, other tests, see defaults)."""
    with pytest.raises(RuntimeError, match="inside"):
        with launch_settings(tile=dict(bt=8), routes={("bdlru", 4): "bdlru_generic"}):
            raise RuntimeError("inside")
    assert settings("tile", 4, "fwd", "bdlru").bt == 64 and select("bdlru", 4, "fwd", 32) == "bdlru_tile"


def test_launch_settings_fields_reach_the_launch():
    """Every field of a family's settings reaches its launch arguments (a field dropped on the way would leave the
    tests that set it running the defaults, which give the same values)."""
    from hlru_lm.kernels import bdlru_chain, bdlru_generic, bdlru_rows, bdlru_tile, diag_tile, hlru_lags

    z = torch.zeros(1, 64, 256, 4, 5)
    tile = dict(bt=8, warps=2, unroll=4, rev=True, evict=2, coal=True, maxnreg=64, agg_only=True)
    with launch_settings(tile=tile):
        for bwd in (False, True):
            for hlru in (False, True):
                kw = bdlru_tile._launch_args(z, 64, 256, 4, bwd, hlru)[0]
                assert (kw["BT"], kw["num_warps"], kw["UNROLL"], kw["REV"], kw["maxnreg"]) == (8, 2, 4, True, 64)
                assert (kw["EV1"], kw["EV2"], kw["EVS"]) == ("evict_last", "evict_first", "evict_first")
                assert kw["AGG_ONLY"] == 1
                assert kw["COAL"] is (not hlru)
    diag = dict(bt=8, vec=4, warps=2, unroll=2, evict=1, fast=False, maxnreg=64, agg_only=True)
    with launch_settings(diag=diag):
        kw = diag_tile._launch_args(64, 256, bwd=False)[0]
        assert kw == dict(BT=8, AGG_ONLY=1, num_warps=2, BC=256, FAST=False, VEC=4, maxnreg=64)
        kw = diag_tile._launch_args(64, 256, bwd=True)[0]
        assert kw == dict(BT=8, AGG_ONLY=1, num_warps=2, BC=256, UNROLL=2, EV1="", EV2="evict_first", EVS="evict_first")
        assert diag_tile._launch_args(64, 256, bwd=True, raw=True)[0] == dict(BT=8, AGG_ONLY=1, num_warps=2, BP=64)
    with launch_settings(chain=dict(bt=8, warps=2)):
        assert bdlru_chain._chain_config(64, 256, 2, bwd=True) == (8, 64, 4, 8, 2)
    zb = z.bfloat16()
    with launch_settings(rows=dict(unroll=4, parts=2, pf=8, words=False, fast=False)):
        kw = bdlru_rows._launch_args(zb, 64, 8, bwd=True)
        assert (kw["U"], kw["P"], kw["PF"], kw["WORDS"], kw["FAST"]) == (4, 2, 8, False, False)
    with launch_settings(lags=dict(unroll=2, pf=4, fast=False)):
        assert hlru_lags._launch_args(8, 64, bwd=True) == dict(M=8, U=2, PF=4, FAST=False, num_warps=1)
    with launch_settings(generic=dict(tile_elems=64, unroll=4, chunk=8, warps=2)):
        assert bdlru_generic._config(1, 64, 256, 4, z.device, bwd=True) == (4, 64, 8, 8, 4, 2)  # bn nt cl nc u warps
    # (chunk length, chunks) at T = 512, 8 block tiles: 16 programs per SM (4 on CPU), or as many as asked, chunks
    # no shorter than min_chunk, one chunk above chunk_max_m
    assert bdlru_generic._config(1, 512, 256, 4, z.device)[2:4] == (64, 8)
    for generic, chunks in [(dict(target_programs=16), (256, 2)), (dict(min_chunk=128), (128, 4)),
                            (dict(chunk_max_m=2), (512, 1))]:  # fmt: skip
        with launch_settings(generic=generic):
            assert bdlru_generic._config(1, 512, 256, 4, z.device)[2:4] == chunks


@pytest.mark.parametrize("m, route", [(1, "diag_tile"), (2, "bdlru_chain"), (4, "bdlru_tile")])
def test_agg_only_composes_maps(monkeypatch, m, route):
    """agg_only, which the look-back tests rely on to compose maps, reaches the kernels: only a chain's first tile
    (forward: tile 0, backward: the last one) publishes its end state; the other tiles' slots stay poisoned and the
    result still matches float64. T = 13 at BT 4: four time tiles."""
    from hlru_lm.kernels import common

    module = getattr(kernels, route)  # the route's module
    incs = []

    def buffers(*args):
        flags, agg, inc = common.lookback_buffers(*args)
        incs.append(inc.fill_(float("nan")))
        return flags, agg, inc

    monkeypatch.setattr(module, "lookback_buffers", buffers)
    family = {1: "diag", 2: "chain", 4: "tile"}[m]
    with launch_settings(routes={("bdlru", m): route}, **{family: dict(bt=4, warps=1, agg_only=True)}):
        _check(bdlru_scan, *_bd(1, 13, 6, m, seed=22), "softmax")
    published = [(~inc.view(4, -1).isnan()).any(dim=1).tolist() for inc in incs]  # per time tile
    assert published == [[True, False, False, False], [False, False, False, True]]


# ---------------------------------------------------------------------------------------------------------------------
# every route at its default choice, every gate_norm


@pytest.fixture
def short_tiles():
    """Several time tiles at T = 21 (the last one partial) and several chunks of the generic kernels."""
    with launch_settings(
        generic=dict(chunk=8), chain_fwd=dict(bt=16), chain_bwd=dict(bt=8), tile_fwd=dict(bt=16),
        tile_bwd=dict(bt=8), diag_fwd=dict(bt=16), diag_bwd=dict(bt=8),
    ):  # fmt: skip
        yield


EXPECTED = {1: ("diag_tile", "diag_tile"), 2: ("bdlru_chain", "bdlru_tile"), 4: ("bdlru_tile",) * 2}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [1, 2, 4])
def test_bdlru_scan(short_tiles, routes, m, norm):
    """The default routes at small B N (fp32: diag_tile at m = 1), every gate_norm."""
    _check(bdlru_scan, *_bd(2, 21, 3, m, norm, seed=m), norm)
    assert routes == [(EXPECTED[m][0], "fwd"), (EXPECTED[m][1], "bwd")]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [2, 4, 16])
def test_hlru_scan(short_tiles, routes, m, norm):
    """H-LRU at its default routes (companion-form tile kernels, lane per lag at order 16), every gate_norm."""
    _check(hlru_scan, *_hl(2, 21, 3, m, norm, seed=100 + m), norm)
    route = "hlru_lags" if m == 16 else "hlru_tile"
    assert routes == [(route, "fwd"), (route, "bwd")]


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_strided_inputs(mixer):
    """Logits, v and h0 stored with their first two axes swapped (time-major) give float64's values and grads."""

    def time_major(x):  # _check's clone keeps these strides
        return x.transpose(0, 1).contiguous().transpose(0, 1)

    fn, (z, v, h0) = (bdlru_scan, _bd(2, 13, 3, 2, seed=23)) if mixer == "bdlru" else (hlru_scan, _hl(2, 13, 3, 2))
    z, v, h0 = time_major(z), time_major(v), time_major(h0)
    assert not (z.is_contiguous() or v.is_contiguous() or h0.is_contiguous())
    with launch_settings(chain_fwd=dict(bt=4), tile=dict(bt=4)):
        _check(fn, z, v, h0, "softmax")


def test_hlru_order1(routes):
    """H-LRU of order 1 runs the m = 1 BD-LRU kernels on reshaped tensors."""
    _check(hlru_scan, *_hl(2, 21, 3, 1, "sigmoid_l1", seed=101), "sigmoid_l1")
    assert routes == [("diag_tile", "fwd"), ("diag_tile", "bwd")]


# ---------------------------------------------------------------------------------------------------------------------
# the generic kernels (bdlru_generic.py) and the sequential H-LRU kernel (hlru_seq.py)


GENERIC = [(4, "softmax"), (4, "sigmoid_l1"), (4, "relu_l1"), (4, "none"), (2, "sigmoid_l1"), (8, "relu_l1")]


@pytest.mark.parametrize("m, norm", [*GENERIC, (16, "softmax")])
def test_bdlru_generic(routes, m, norm):
    """Forced at every m where it is not the default; several chunks at m <= 4, one above (chunk_max_m: as by
    default); the non-scalar layout at m = 16; every gate_norm."""
    t, n, chunk = (19, 2, 0) if m >= 8 else (21, 3, 8)
    with launch_settings(generic=dict(chunk=chunk), routes={("bdlru", m): "bdlru_generic"}):
        _check(bdlru_scan, *_bd(2, t, n, m, norm, seed=11), norm)
    assert routes == [("bdlru_generic", "fwd"), ("bdlru_generic", "bwd")]


@pytest.mark.parametrize("m", [4, 8])
def test_bdlru_unaligned_logits(routes, m):
    """Logits not aligned to the tile kernels' 64-bit words (fp32) take the generic kernels, by default."""
    z, v, h0 = (x.to(DEV) for x in _bd(1, 9, 3, m, seed=14))
    shifted = torch.empty(z.numel() + 1, device=z.device)[1:].view(z.shape)  # 4 bytes past an aligned allocation
    shifted.copy_(z)
    zt = shifted.requires_grad_()
    zr, vr, hr = (x.double().requires_grad_() for x in (z, v, h0))
    h, f = bdlru_scan(zt, v, h0, backend="triton")
    href, fref = bdlru_scan(zr, vr, hr, backend="naive")
    assert rel(h, href) < TOL and rel(f, fref) < TOL
    (h.sum() + f.sum()).backward()
    (href.sum() + fref.sum()).backward()
    assert rel(zt.grad, zr.grad) < 20 * TOL
    assert routes == [("bdlru_generic", "fwd"), ("bdlru_generic", "bwd")]


@pytest.mark.parametrize("m, norm", [(4, "softmax"), (4, "sigmoid_l1"), (4, "relu_l1"), (4, "none"), (1, "sigmoid_l1"),
                                     (2, "relu_l1"), (16, "softmax")])  # fmt: skip
def test_hlru_seq(routes, m, norm):
    """The sequential H-LRU kernel (forced; the default only for logits the tile kernels do not unpack), every
    gate_norm, order 1 too."""
    with launch_settings(routes={("hlru", m): "hlru_seq"}):
        _check(hlru_scan, *_hl(2, 13 if m == 16 else 29, 3, m, norm, seed=102), norm)
    assert routes == [("hlru_seq", "fwd"), ("hlru_seq", "bwd")]


@pytest.mark.parametrize("m", [1, 2, 4])
def test_step_leaves_lookback_flags_unzeroed(monkeypatch, m):
    """A decode step is one time tile: no look-back polls, so its flags are not zeroed (one kernel fewer). Poisoned
    flags must not change the step's result."""
    from hlru_lm.kernels import common

    real_empty, poisoned = torch.empty, []

    def empty(*shape, **kw):
        out = real_empty(*shape, **kw)
        if kw.get("dtype") == torch.int32:
            poisoned.append(out.fill_(-7))
        return out

    monkeypatch.setattr(common.torch, "empty", empty)
    z, v, h0 = (x.to(DEV) for x in _bd(2, 1, 40 // m, m, seed=21))
    h, f = bdlru_step(z[:, 0], v[:, 0], h0, backend="triton")
    hr, fr = bdlru_step(z[:, 0].double(), v[:, 0].double(), h0.double(), backend="naive")
    monkeypatch.undo()
    assert poisoned, "the step's kernel did not take its flags from torch.empty"
    assert rel(h, hr) < TOL and rel(f, fr) < TOL


@pytest.mark.parametrize("generic", [False, True])
def test_bdlru_no_grad_out(routes, generic):
    """A loss on the final state only (dh is None: HAS_G=False) at m = 2: the default tile backward, or the generic
    kernels in one chunk (no carry kernels)."""
    with launch_settings(routes={("bdlru", 2): "bdlru_generic"} if generic else None):
        _check(bdlru_scan, *_bd(2, 21, 3, 2, seed=5), "softmax", final_only=True)
    expected = [("bdlru_generic",) * 2] if generic else [("bdlru_chain", "bdlru_tile")]
    assert routes == [(expected[0][0], "fwd"), (expected[0][1], "bwd")]


# ---------------------------------------------------------------------------------------------------------------------
# the chained kernels (bdlru_chain.py)


@pytest.mark.parametrize("bt, agg_only", [(8, True), (64, False)])
def test_bdlru_chain(routes, bt, agg_only):
    """m = 2 forward and backward (the chained backward is the default only for logits the tile kernels cannot
    read): several time tiles or one, two block tiles (N = 40 > BN = 32), maps composed."""
    chain = dict(bt=bt, warps=1, agg_only=agg_only)
    with launch_settings(chain=chain, routes={("bdlru", 2, "bwd"): "bdlru_chain"}):
        _check(bdlru_scan, *_bd(1, 19, 40, 2, seed=12), "softmax")
    assert routes == [("bdlru_chain", "fwd"), ("bdlru_chain", "bwd")]


@pytest.mark.parametrize("norm", ["sigmoid_l1", "relu_l1", "none"])
def test_bdlru_chain_bwd_norms(routes, norm):
    """The chained backward with the other gate_norms (test_bdlru_scan runs the forward with all of them)."""
    with launch_settings(chain=dict(bt=8), routes={("bdlru", 2, "bwd"): "bdlru_chain"}):
        _check(bdlru_scan, *_bd(2, 19, 3, 2, norm, seed=13), norm)
    assert routes == [("bdlru_chain", "fwd"), ("bdlru_chain", "bwd")]


@pytest.mark.parametrize("dtype, words", [(BF16, 1), (F16, 2)])
def test_chain_words(dtype, words):
    """The m = 2 chained forward reading logits (and at 2, the default, also v, h) as 32-bit words under a register
    cap gives the element path's bits; misaligned tensors fall back (z: element loads, v: words 1)."""
    from hlru_lm.kernels import bdlru_chain

    z, v, h0 = _inputs((1, 19, 40, 2, 3), (1, 19, 40, 2), (1, 40, 2), "sigmoid_l1", seed=13)
    z, v, h0 = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
    with launch_settings(chain=dict(bt=8, warps=1)):
        assert bdlru_chain._fwd_words(z, v, 2) == dict(WORDS=2, DT=int(dtype == F16), maxnreg=128)
        with launch_settings(chain=dict(words=0)):
            ref = bdlru_chain.bdlru_chain_fwd(z, v, h0, "sigmoid_l1")
        with launch_settings(chain=dict(words=words)):
            assert bdlru_chain._fwd_words(z, v, 2)["WORDS"] == words
            out = bdlru_chain.bdlru_chain_fwd(z, v, h0, "sigmoid_l1")
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])

        def misaligned(x):  # 2-byte aligned only
            return torch.empty(x.numel() + 1, dtype=dtype, device=DEV)[1:].view_as(x).copy_(x)

        zo, vo = misaligned(z), misaligned(v)
        assert bdlru_chain._fwd_words(zo, v, 2)["WORDS"] == 0 and bdlru_chain._fwd_words(z, vo, 2)["WORDS"] == 1
        assert bdlru_chain._fwd_words(z.float(), v, 2)["WORDS"] == 0
        for zi, vi in ((zo, v), (z, vo)):
            assert torch.equal(bdlru_chain.bdlru_chain_fwd(zi, vi, h0, "sigmoid_l1")[0], ref[0])


# ---------------------------------------------------------------------------------------------------------------------
# the two-phase tile kernels (bdlru_tile.py)


def _tile_case(m, bt, agg_only, dtype, **tile):
    """B = 1 (the batch offsets: test_bdlru_scan), two block tiles at N = 40, T = 13: several time tiles at bt = 4
    (the last one partial); the interpreter's cost grows with the tiles a look-back composes."""
    with launch_settings(tile=dict(warps=1, bt=bt, agg_only=agg_only, **tile)):
        _check(bdlru_scan, *_bd(1, 13, 40, m, "sigmoid_l1", seed=13), "sigmoid_l1", dtype)


@pytest.mark.parametrize("dtype, agg_only, bt", [(F32, True, 4), (BF16, False, 64), (F16, True, 4)])
def test_bdlru_tile(routes, bt, agg_only, dtype):
    """m = 4 tile kernels: several time tiles (the last one partial) or one, two block tiles (N = 40 > BN = 32),
    every logit dtype the 64-bit word loads unpack and the word stores pack."""
    _tile_case(4, bt, agg_only, dtype)
    assert routes == [("bdlru_tile", "fwd"), ("bdlru_tile", "bwd")]


@pytest.mark.parametrize("m, tile_fwd, dtype", [(1, True, F32), (2, True, BF16), (2, False, F16)])
def test_bdlru_tile_small_m(routes, m, tile_fwd, dtype):
    """The tile kernels at m = 1, 2 (32-bit logit words for bf16 / fp16, 64-bit for fp32), maps composed: the
    backward after the chained forward (the m = 2 default), or both directions (forced)."""
    forced = {("bdlru", m, "bwd"): "bdlru_tile"} | ({("bdlru", m, "fwd"): "bdlru_tile"} if tile_fwd else {})
    with launch_settings(routes=forced):
        _tile_case(m, 4, True, dtype)
    first = "bdlru_tile" if tile_fwd else {1: "diag_tile", 2: "bdlru_chain"}[m]
    assert routes == [(first, "fwd"), ("bdlru_tile", "bwd")]


@pytest.mark.parametrize("m, coal, dtype", [(8, True, BF16), (8, False, F32), (4, True, F16)])
def test_bdlru_tile_coalesced(routes, m, coal, dtype):
    """Logit words read and written coalesced through shared memory (the m = 8 default; 18 or 36 words per block,
    at m = 4 5 or 10) or one word per lane."""
    _tile_case(m, 8, True, dtype, coal=coal)
    assert routes == [("bdlru_tile", "fwd"), ("bdlru_tile", "bwd")]


@pytest.mark.parametrize("m, rev, evict", [(4, False, 0), (1, True, 1), (4, True, 2)])
def test_bdlru_tile_phase_order(m, rev, evict):
    """Phase 1 in the same time order as phase 2 or the opposite one (rev composes the maps from the other side),
    with and without L2 eviction hints; the defaults pick these per m and direction."""
    with launch_settings(routes={("bdlru", m): "bdlru_tile"}):
        _tile_case(m, 8, True, BF16, rev=rev, evict=evict)


@pytest.mark.parametrize("m, dtype", [(2, F32), (4, BF16), (8, F32)])
def test_hlru_tile(routes, m, dtype):
    """H-LRU of order 2, 4, 8 on the tile kernels in companion form: several time tiles, two channel tiles (N = 40 >
    BN = 32), maps composed."""
    with launch_settings(tile=dict(warps=1, agg_only=True), tile_fwd=dict(bt=4), tile_bwd=dict(bt=8)):
        _check(hlru_scan, *_hl(1, 13, 40, m, seed=200 + m), "softmax", dtype)
    assert routes == [("hlru_tile", "fwd"), ("hlru_tile", "bwd")]


# ---------------------------------------------------------------------------------------------------------------------
# m = 1 (diag_tile.py)


@pytest.mark.parametrize("vec, bt, n, agg_only, dtype", [(1, 4, 40, True, F32), (2, 8, 136, False, BF16),
                                                         (4, 4, 37, True, F16), (2, 64, 136, True, F32)])  # fmt: skip
def test_diag(routes, vec, bt, n, agg_only, dtype):
    """The prefix forward and two-phase tile backward (route diag_tile) with VEC channels per lane: several time
    tiles (the last partial) or one, several channel tiles (one warp: 32 VEC channels each), N not a multiple of the
    tile or of 16 (element loads)."""
    diag = dict(vec=vec, bt=bt, warps=1, agg_only=agg_only)
    with launch_settings(diag=diag, routes={("bdlru", 1): "diag_tile"}):
        _check(bdlru_scan, *_bd(2, 30, n, 1, seed=15), "softmax", dtype)
    assert routes == [("diag_tile", "fwd"), ("diag_tile", "bwd")]


@pytest.mark.parametrize("norm, fast, evict", [("softmax", False, 0), ("sigmoid_l1", True, 1), ("relu_l1", True, 2),
                                               ("none", False, 2)])  # fmt: skip
def test_diag_norms(routes, norm, fast, evict):
    """Every gate_norm with the forward's exact or short normalisation and the backward's L2 eviction hints."""
    diag = dict(fast=fast, evict=evict, warps=1, agg_only=True)
    with launch_settings(diag=diag, diag_fwd=dict(bt=8), diag_bwd=dict(bt=4)):
        _check(bdlru_scan, *_bd(2, 30, 72, 1, norm, seed=16), norm)
    assert routes == [("diag_tile", "fwd"), ("diag_tile", "bwd")]


@pytest.mark.parametrize("bt, n, agg_only, dtype", [(4, 40, True, BF16), (8, 136, False, F16), (64, 136, True, BF16)])
def test_diag_raw(routes, bt, n, agg_only, dtype):
    """The raw-word kernels (the default for 2-byte inputs and N even): several time tiles (the last partial) or one,
    several pair tiles (one warp: 32 pairs; N = 136: the last tile partial). Against float64 (values, final state,
    grads), and the raw-word forward against the prefix forward on the same tiles (the same maps composed)."""
    from hlru_lm.kernels import diag_tile

    with launch_settings(diag=dict(bt=bt, warps=1, agg_only=agg_only)):
        z, v, h0 = _bd(2, 30, n, 1, seed=15)
        _check(bdlru_scan, z, v, h0, "softmax", dtype)
        assert routes == [("diag_raw", "fwd"), ("diag_raw", "bwd")]
        zd, vd, hd = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
        h, f = diag_tile.diag_fwd(zd, vd, hd, "softmax", raw=True)
        hp, fp = diag_tile.diag_fwd(zd, vd, hd, "softmax", raw=False)
    assert rel(f, fp) < 1e-6 and rel(h.float(), hp.float()) < 1e-3


@pytest.mark.parametrize("bt, seqlen, n, has_g, agg_only, dtype", [(4, 30, 40, True, True, BF16),
                          (16, 13, 136, True, False, F16), (8, 30, 72, False, True, BF16)])  # fmt: skip
def test_diag_raw_bwd(bt, seqlen, n, has_g, agg_only, dtype):
    """The raw-word backward with a random dh (a constant one would not tell its halves apart) and d final state, or
    d final state only (HAS_G=False): against float64 on the same rounded inputs, and its d h0 against the tile
    backward's on the same tiles, which composes the same maps. T = 13 at BT 16: one partial time tile, no look-back
    (BT 16 is the default; at BT 32 each kernel of the test takes ~40 s to compile for the GPU)."""
    from hlru_lm.kernels import diag_tile

    z, v, h0 = _bd(2, seqlen, n, 1, seed=17)
    zd, vd, hd = z.to(dtype).to(DEV), v.to(dtype).to(DEV), h0.to(DEV)
    with launch_settings(diag=dict(warps=1, agg_only=agg_only), diag_bwd=dict(bt=bt)):
        h, f = diag_tile.diag_fwd(zd, vd, hd, "softmax", raw=True)
        g = torch.Generator().manual_seed(3)
        dh = torch.randn(h.shape, generator=g).to(dtype).to(DEV) if has_g else None
        df = torch.randn(f.shape, generator=g).to(DEV)
        assert diag_tile.raw_words(zd, vd, h, vd if dh is None else dh)
        grads = diag_tile.diag_bwd(zd, vd, hd, h, dh, df, "softmax", raw=True)
        tile = diag_tile.diag_bwd(zd, vd, hd, h, dh, df, "softmax", raw=False)
    lr = [x.cpu().double().requires_grad_() for x in (zd, vd, hd)]
    hr, fr = bdlru_scan(*lr, gate_norm="softmax", backend="naive")
    loss = (fr * df.cpu().double()).sum()
    if has_g:
        loss = loss + (hr * dh.cpu().double()).sum()
    loss.backward()
    for a, b in zip(grads, lr, strict=True):
        assert rel(a.cpu(), b.grad) < 1e-2
    assert rel(grads[2], tile[2]) < 1e-5 and rel(grads[0].float(), tile[0].float()) < 1e-2


@pytest.mark.parametrize("norm, fast", [("softmax", True), ("sigmoid_l1", False), ("relu_l1", True), ("none", False)])
def test_diag_raw_norms(routes, norm, fast):
    """The raw-word kernels with every gate_norm, the forward's exact or short normalisation, maps composed."""
    with launch_settings(diag=dict(fast=fast, warps=1, agg_only=True), diag_fwd=dict(bt=8)):
        _check(bdlru_scan, *_bd(2, 30, 72, 1, norm, seed=16), norm, BF16)
    assert routes == [("diag_raw", "fwd"), ("diag_raw", "bwd")]


def test_diag_raw_misaligned_grad(routes):
    """An output gradient 2 bytes past a 4-byte boundary (torch.cat's backward hands each input a view of its
    gradient) cannot be read as raw words: the backward takes diag_tile, with float64's gradients."""
    z, v, h0 = _bd(1, 9, 4, 1, seed=24)
    w = torch.randn(1 + v.numel(), generator=torch.Generator().manual_seed(2)).to(BF16)
    lt = [x.to(t).clone().to(DEV).requires_grad_() for x, t in ((z, BF16), (v, BF16), (h0, F32))]
    lr = [x.to(t).double().requires_grad_() for x, t in ((z, BF16), (v, BF16), (h0, F32))]
    for leaves, backend in ((lt, "triton"), (lr, "naive")):
        h, _ = bdlru_scan(*leaves, backend=backend)
        (torch.cat([h.new_zeros(1), h.flatten()]) * w.to(h)).sum().backward()
    assert routes == [("diag_raw", "fwd"), ("diag_tile", "bwd")]
    for a, b in zip(lt, lr, strict=True):
        assert rel(a.grad.cpu(), b.grad) < 1e-2


def test_raw_words():
    """raw_words takes 2-byte logits and v (the backward: h, dh too) of one dtype, 4-byte aligned, N even."""
    from hlru_lm.kernels.diag_tile import raw_words

    z = torch.zeros(1, 4, 6, 1, 2, dtype=BF16)
    v = torch.zeros(1, 4, 6, 1, dtype=BF16)
    assert raw_words(z, v) and raw_words(z.half(), v.half())
    assert not raw_words(z.float(), v.float()) and not raw_words(z, v.half())
    assert not raw_words(torch.zeros(1, 4, 5, 1, 2, dtype=BF16), torch.zeros(1, 4, 5, 1, dtype=BF16))
    buf = torch.zeros(1 + z.numel(), dtype=BF16)
    assert not raw_words(buf[1:].view(z.shape), v)  # 2-byte aligned only
    assert raw_words(z, v, v, v) and not raw_words(z, v, v, v.float())  # the backward: h, dh too


# ---------------------------------------------------------------------------------------------------------------------
# the sequential kernels (bdlru_rows.py, hlru_lags.py)


@pytest.mark.parametrize("m, n, t, unroll, dtype", [(4, 11, 30, 8, F32), (8, 5, 13, 4, BF16), (16, 3, 9, 2, F16),
                                                    (16, 2, 5, 8, F32)])  # fmt: skip
def test_rows(routes, m, n, t, unroll, dtype):
    """The row-per-lane kernels at m = 4 (forced), 8 (forced below 8192 lanes), 16: N m rows over several 32-row
    programs, the last partial (44, 40, 48 rows), or one partial program (32 rows at U > T); T not a multiple of U;
    2-byte logits read as words (rows start at odd and even 2-byte offsets)."""
    with launch_settings(rows=dict(unroll=unroll), routes={("bdlru", m): "bdlru_rows"}):
        _check(bdlru_scan, *_bd(2, t, n, m, seed=17), "softmax", dtype)
    assert routes == [("bdlru_rows", "fwd"), ("bdlru_rows", "bwd")]


@pytest.mark.parametrize("norm, fast, words", [("softmax", False, False), ("sigmoid_l1", True, True),
                                               ("relu_l1", False, True), ("none", True, False)])  # fmt: skip
def test_rows_norms(routes, norm, fast, words):
    """Every gate_norm, forward and backward, with the short or exact normalisation and bf16 logits as words or
    elements."""
    with launch_settings(rows=dict(fast=fast, words=words), routes={("bdlru", 8): "bdlru_rows"}):
        _check(bdlru_scan, *_bd(2, 11, 5, 8, norm, seed=18), norm, BF16)
    assert routes == [("bdlru_rows", "fwd"), ("bdlru_rows", "bwd")]


@pytest.mark.parametrize("m, parts, n, norm, dtype", [(4, 2, 11, "relu_l1", F32), (8, 2, 5, "sigmoid_l1", BF16),
                                                      (8, 4, 3, "none", F32), (16, 2, 3, "softmax", BF16)])  # fmt: skip
def test_rows_parts(routes, m, parts, n, norm, dtype):
    """P lanes per row: each lane m / P columns, the row's max, sums and mat-vec combined over its lanes, the
    backward's column sums completed over the parts; rows over several programs, the last partial."""
    rows = dict(parts=parts, unroll=4)
    with launch_settings(rows=rows, rows_bwd=dict(unroll=2), routes={("bdlru", m): "bdlru_rows"}):
        _check(bdlru_scan, *_bd(2, 7, n, m, norm, seed=21), norm, dtype)
    assert routes == [("bdlru_rows", "fwd"), ("bdlru_rows", "bwd")]


@pytest.mark.parametrize("parts", [1, 2])
def test_rows_bwd_final_state_only(routes, parts):
    """The row backward with a loss on the final state only (no dh: HAS_G=False), fp32 to 1e-5."""
    with launch_settings(rows_bwd=dict(parts=parts)):
        _check(bdlru_scan, *_bd(2, 13, 3, 16, "sigmoid_l1", seed=20), "sigmoid_l1", final_only=True)
    assert routes == [("bdlru_rows", "fwd"), ("bdlru_rows", "bwd")]


def test_rows_unaligned_logits():
    """bf16 logits 2 bytes past a 4-byte boundary cannot be read as 32-bit words: element loads, same result."""
    from hlru_lm.kernels.bdlru_rows import rows_fwd

    z, v, h0 = (x.to(DEV) for x in _bd(1, 7, 3, 16, seed=19))
    z, v = z.bfloat16(), v.bfloat16()
    shifted = torch.empty(z.numel() + 1, dtype=z.dtype, device=z.device)[1:].view(z.shape)
    shifted.copy_(z)
    assert shifted.data_ptr() % 4 == 2
    h, f = rows_fwd(shifted, v, h0, "softmax")
    hr, fr = bdlru_scan(z.double(), v.double(), h0.double(), backend="naive")
    assert rel(h, hr) < 1e-2 and rel(f, fr) < TOL


@pytest.mark.parametrize("m, n, t, norm", [(2, 21, 13, "softmax"), (4, 11, 9, "sigmoid_l1"), (8, 5, 13, "relu_l1"),
                                           (16, 3, 5, "none")])  # fmt: skip
def test_hlru_lags(routes, m, n, t, norm):
    """The lane-per-lag kernels (forced at orders 2, 4, and 8 below 8192 lanes): channels over several 32-lane
    programs, the last partial; T not a multiple of U (4 forward, 2 backward); every gate_norm, fp32 to 1e-5."""
    with launch_settings(lags_fwd=dict(unroll=4), lags_bwd=dict(unroll=2), routes={("hlru", m): "hlru_lags"}):
        _check(hlru_scan, *_hl(2, t, n, m, norm, seed=300 + m), norm)
    assert routes == [("hlru_lags", "fwd"), ("hlru_lags", "bwd")]


@pytest.mark.parametrize("m, dtype", [(4, BF16), (16, F16)])
def test_hlru_lags_dtypes(m, dtype):
    """The lane-per-lag kernels with 2-byte inputs at their default unrolls (T = 19 not a multiple of U), and a loss
    on the final state only (no dy: HAS_G=False)."""
    with launch_settings(routes={("hlru", m): "hlru_lags"}):
        _check(hlru_scan, *_hl(2, 19, 6, m, "sigmoid_l1", seed=310 + m), "sigmoid_l1", dtype)
        _check(hlru_scan, *_hl(2, 19, 6, m, "softmax", seed=310 + m), "softmax", final_only=True)


# ---------------------------------------------------------------------------------------------------------------------
# steps and fallbacks


@pytest.mark.parametrize("m", [1, 4])
def test_steps(m):
    """The decode steps (the scans at T = 1)."""
    z, v, s = _inputs((2, 3, m, m + 1), (2, 3, m), (2, 3, m), "softmax", seed=7)
    _check(bdlru_step, z, v, s, "softmax")
    z, v, s = _inputs((2, 3, m + 1), (2, 3), (2, 3, m), "sigmoid_l1", seed=8)
    _check(hlru_step, z, v, s, "sigmoid_l1")


def test_unsupported_m_falls_back():
    from hlru_lm import ops

    ops._warned.clear()
    z, v, h0 = _bd(1, 9, 2, 3, seed=3)
    with pytest.warns(UserWarning, match="m=3"):
        h, f = bdlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), backend="triton")
    hr, fr = bdlru_scan(z.double(), v.double(), h0.double(), backend="naive")
    assert rel(h.cpu(), hr) < TOL and rel(f.cpu(), fr) < TOL
    z, v, h0 = _hl(1, 9, 2, 3, seed=4)
    with pytest.warns(UserWarning, match="m=3"):
        y, _ = hlru_scan(z.to(DEV), v.to(DEV), h0.to(DEV), backend="triton")
    assert rel(y.cpu(), hlru_scan(z.double(), v.double(), h0.double(), backend="naive")[0]) < TOL


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_second_derivatives_are_refused(mixer):
    # the kernels' gradients carry no graph: create_graph=True raises instead of silently dropping the scan's part
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 5, 2, 2, 3), (1, 5, 2, 2)] if mixer == "bdlru" else [(1, 5, 2, 3), (1, 5, 2)]
    z, v = (torch.randn(s, generator=g).to(DEV).requires_grad_() for s in shapes)
    h, _ = (bdlru_scan if mixer == "bdlru" else hlru_scan)(z, v, backend="triton")
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(h.pow(2).sum(), z, create_graph=True)
    (dz,) = torch.autograd.grad(h.pow(2).sum(), z)  # first derivatives as before
    assert torch.isfinite(dz).all()


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_is_not_a_second_derivative(reentrant):
    # the refusal above looks at grad mode in backward: checkpointing's recomputation must not trip it
    from .conftest import tiny_model

    model = tiny_model(scan_backend="triton").to(DEV).train()
    ids = torch.randint(3, 96, (2, 12), generator=torch.Generator().manual_seed(0)).to(DEV)
    model(ids, labels=ids).loss.backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    model(ids, labels=ids).loss.backward()
    for a, p in zip(ref, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6)


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
