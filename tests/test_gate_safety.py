"""Gate normalisation at extreme logits, every backend: equal to float64 at +-1e4 and at rows whose every logit lies
below fp32 sigmoid's underflow (sigmoid_l1 was 0 / 0 there), values and gradients.

The Triton cases run under TRITON_INTERPRET=1 (in a subprocess when this process was started without it) and take
each kernel route by its default choice: m and the mixer pick the kernel family, 2-byte inputs the raw-word m = 1
paths, T = 1 the decode steps.
"""

import pytest
import torch

from hlru_lm.ops import bdlru_scan, bdlru_step, hlru_scan, hlru_step, normalize_gates

from .conftest import rel, run_triton_tests_in_interpreter

triton = pytest.importorskip("triton")
INTERPRETED = type(triton.language.standard.zeros).__name__ == "InterpretedFunction"
DEV = "cpu" if INTERPRETED else "cuda"

# rows: all below sigmoid's fp32 underflow, far below it, saturated both ways, and ordinary
PATTERNS = ("low", "very_low", "saturated", "normal")


def extreme_logits(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Logits whose rows (last axis) cycle through PATTERNS."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g)
    rows = z.reshape(-1, shape[-1])
    for i in range(rows.shape[0]):
        kind = PATTERNS[i % len(PATTERNS)]
        if kind == "low":
            rows[i] = -120.0 - 5 * torch.rand(shape[-1], generator=g)
        elif kind == "very_low":
            rows[i] = -1e4
            rows[i, i % shape[-1]] = -9e3
        elif kind == "saturated":
            rows[i] = torch.where(torch.rand(shape[-1], generator=g) < 0.5, -1e4, 1e4)
    return z


def sigmoid_l1_f64(z: torch.Tensor) -> torch.Tensor:
    """sigma(z) / sum sigma(z) in float64 with the row's largest sigma factored out (exact wherever float64 is)."""
    z = z.double()
    ls = torch.nn.functional.logsigmoid(z)
    e = torch.exp(ls - ls.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def test_torch_sigmoid_l1_underflow():
    z = extreme_logits((64, 5), seed=0)
    p = normalize_gates(z, "sigmoid_l1")
    assert torch.isfinite(p).all()
    assert rel(p, sigmoid_l1_f64(z)) < 1e-6
    # a row at -120: float64 sigma is still representable there, and every entry is 1 / (m + 1)
    row = normalize_gates(torch.full((1, 5), -120.0), "sigmoid_l1")
    assert torch.allclose(row, torch.full((1, 5), 0.2))


@pytest.mark.parametrize("norm", ["sigmoid_l1", "relu_l1", "none", "softmax"])
@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_torch_backends_extreme_logits(backend, norm):
    """fp32 torch paths against float64, values and grads, |h| <= max|v| for the normalised gates."""
    z = extreme_logits((2, 6, 3, 2, 3), seed=1)
    if norm == "none":
        z = z.clamp(-1.0, 1.0) * 0.3  # +-1e4 un-normalised would overflow float64 too within a few steps
    v = torch.randn(2, 6, 3, 2, generator=torch.Generator().manual_seed(2))
    _check_scan(bdlru_scan, z, v, torch.zeros(2, 3, 2), norm, backend, "cpu", tol=1e-5)


def _check_scan(fn, z, v, h0, norm, backend, dev, tol):
    lt = [x.detach().clone().to(dev).requires_grad_() for x in (z, v, h0)]
    lr = [x.detach().double().requires_grad_() for x in (z, v, h0)]
    out_t = fn(*lt, gate_norm=norm, backend=backend)
    out_r = fn(*lr, gate_norm=norm, backend="naive")
    for a, b in zip(out_t, out_r, strict=True):
        assert torch.isfinite(a).all()
        assert rel(a.cpu(), b) < tol
    if norm != "none":
        assert out_t[0].float().abs().max() <= v.float().abs().max() * (1 + tol) + h0.abs().max()
    g = torch.Generator().manual_seed(3)
    gh = torch.randn(out_r[0].shape, generator=g, dtype=torch.float64)
    gf = torch.randn(out_r[1].shape, generator=g, dtype=torch.float64)
    for h, f in (out_t, out_r):
        ((h * gh.to(h.device, h.dtype)).float().sum() + (f * gf.to(f.device, f.dtype)).float().sum()).backward()
    for a, b in zip(lt, lr, strict=True):
        assert torch.isfinite(a.grad).all()
        assert rel(a.grad.cpu(), b.grad) < 20 * tol


# (mixer, m, dtype): the default route of each kernel family, the raw-word m = 1 paths (2-byte inputs, N even)
ROUTES = [
    ("bdlru", 1, torch.float32),
    ("bdlru", 1, torch.bfloat16),
    ("bdlru", 2, torch.float32),
    ("bdlru", 2, torch.bfloat16),
    ("bdlru", 4, torch.float32),
    ("bdlru", 8, torch.float32),
    ("bdlru", 16, torch.float32),
    ("hlru", 1, torch.float32),
    ("hlru", 1, torch.bfloat16),
    ("hlru", 2, torch.float32),
    ("hlru", 4, torch.float32),
    ("hlru", 8, torch.float32),
    ("hlru", 16, torch.float32),
]


# the interpreter's numpy warns where exp2 reaches inf (sigma(-1e4) = 1 / (1 + inf) = 0, as on the GPU)
@pytest.mark.filterwarnings("ignore:overflow encountered in exp2:RuntimeWarning")
@pytest.mark.parametrize("norm", ["softmax", "sigmoid_l1", "relu_l1"])
@pytest.mark.parametrize("mixer,m,dtype", ROUTES)
def test_triton_extreme_logits(mixer, m, dtype, norm):
    b, t, n = 1, 5, 4
    if mixer == "bdlru":
        fn, z = bdlru_scan, extreme_logits((b, t, n, m, m + 1), seed=m)
        v = torch.randn(b, t, n, m, generator=torch.Generator().manual_seed(m))
    else:
        fn, z = hlru_scan, extreme_logits((b, t, n, m + 1), seed=m)
        v = torch.randn(b, t, n, generator=torch.Generator().manual_seed(m))
    z, v = z.to(dtype), v.to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    _check_scan(fn, z, v, torch.zeros(b, n, m), norm, "triton", DEV, tol)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp2:RuntimeWarning")
@pytest.mark.parametrize("norm", ["softmax", "sigmoid_l1", "relu_l1", "none"])
@pytest.mark.parametrize("m", [1, 4])
def test_triton_steps_extreme_logits(m, norm):
    g = torch.Generator().manual_seed(5)
    state = torch.randn(2, 4, m, generator=g)
    for fn, z, v in (
        (bdlru_step, extreme_logits((2, 4, m, m + 1), seed=6), torch.randn(2, 4, m, generator=g)),
        (hlru_step, extreme_logits((2, 4, m + 1), seed=7), torch.randn(2, 4, generator=g)),
    ):
        h, new = fn(z.to(DEV), v.to(DEV), state.to(DEV), gate_norm=norm, backend="triton")
        hr, newr = fn(z.double(), v.double(), state.double(), gate_norm=norm, backend="naive")
        assert torch.isfinite(new).all() and rel(new.cpu(), newr) < 1e-5 and rel(h.cpu(), hr) < 1e-5


if not INTERPRETED and not torch.cuda.is_available():
    run_triton_tests_in_interpreter(globals(), __file__)
