"""The Triton scans are opaque custom ops: torch.compile(fullgraph=True, dynamic=True) traces through them at any
(B, T) and matches eager and the float64 reference, values and gradients (CPU: the Triton interpreter, in a
subprocess when this process was started without TRITON_INTERPRET=1)."""

import pytest
import torch

from hlru_lm.ops import bdlru_scan, hlru_scan

from .conftest import run_triton_tests_in_interpreter

triton = pytest.importorskip("triton")
INTERPRETED = type(triton.language.standard.zeros).__name__ == "InterpretedFunction"
DEV = "cpu" if INTERPRETED else "cuda"


def _inputs(mixer: str, b: int, t: int, n: int, m: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    if mixer == "bdlru":
        shapes = [(b, t, n, m, m + 1), (b, t, n, m), (b, n, m)]
    else:
        shapes = [(b, t, n, m + 1), (b, t, n), (b, n, m)]
    return [torch.randn(s, generator=g) for s in shapes]


def _loss_and_grads(fn, z, v, h0, gh, gf, backend, norm):
    leaves = [x.detach().clone().requires_grad_() for x in (z, v, h0)]
    h, final = fn(*leaves, gate_norm=norm, backend=backend)
    ((h * gh.to(h.dtype)).sum() + (final * gf.to(final.dtype)).sum()).backward()
    return (h, final), [x.grad for x in leaves]


# a gate_norm other than the default in each mixer: the custom op's backward must take it from the forward
CASES = [("bdlru", 1, "softmax"), ("bdlru", 4, "sigmoid_l1"), ("hlru", 1, "sigmoid_l1"), ("hlru", 2, "softmax")]


@pytest.mark.parametrize("mixer,m,norm", CASES)
def test_triton_compiled_matches_eager_and_float64(mixer, m, norm):
    fn = bdlru_scan if mixer == "bdlru" else hlru_scan
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    for b, t in ((2, 9), (3, 21)):  # the second shape must reuse the dynamic graph, not crash on SymInts
        z, v, h0 = (x.to(DEV) for x in _inputs(mixer, b, t, 4, m, seed=b * t))
        g = torch.Generator().manual_seed(7)
        gh = torch.randn((b, t, 4, m), generator=g).to(DEV)
        gf = torch.randn((b, 4, m), generator=g).to(DEV)
        out_c, grads_c = _loss_and_grads(compiled, z, v, h0, gh, gf, "triton", norm)
        out_e, grads_e = _loss_and_grads(fn, z, v, h0, gh, gf, "triton", norm)
        f64 = (x.double() for x in (z, v, h0, gh, gf))
        out_r, grads_r = _loss_and_grads(fn, *f64, "naive", norm)
        for a, e, r in zip([*out_c, *grads_c], [*out_e, *grads_e], [*out_r, *grads_r], strict=True):
            assert torch.allclose(a, e, atol=1e-6)
            assert torch.allclose(a.double(), r, atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 2  # one graph per dynamic shape family


@pytest.mark.parametrize("op", ["bdlru_scan", "hlru_scan"])
def test_triton_opcheck(op):
    import hlru_lm.kernels  # noqa: F401  (registers the ops)

    mixer = op.split("_")[0]
    z, v, h0 = (x.to(DEV) for x in _inputs(mixer, 2, 7, 4, 2, seed=3))
    z.requires_grad_()
    v.requires_grad_()
    torch.library.opcheck(getattr(torch.ops.hlru, op), (z, v, h0, "softmax"))


if not INTERPRETED and not torch.cuda.is_available():
    run_triton_tests_in_interpreter(globals(), __file__)
