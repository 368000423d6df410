"""Ops vs the float64 loop reference of the equations: values, gradients, states, bounds and input checks."""

import pytest
import torch

from hlru_lm.ops import GATE_NORMS, bdlru_scan, bdlru_step, hlru_scan, hlru_step

B, T, N = 2, 37, 3  # T deliberately not a power of two nor a multiple of the chunk


def _inputs(mixer: str, m: int, gate_norm: str, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gate_shape = (B, T, N, m, m + 1) if mixer == "bdlru" else (B, T, N, m + 1)
    v_shape = (B, T, N, m) if mixer == "bdlru" else (B, T, N)
    z = torch.randn(gate_shape, generator=g, dtype=torch.float64)
    if gate_norm == "none":  # raw gates: keep the map contractive so values stay O(1)
        z = z.abs() / (m + 1) * 0.9
    v = torch.randn(v_shape, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, N, m, generator=g, dtype=torch.float64)
    return [x.to(dtype).requires_grad_() for x in (z, v, h0)]


SCAN = {"bdlru": bdlru_scan, "hlru": hlru_scan}


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("gate_norm", GATE_NORMS)
def test_torch_scan_matches_float64_reference(mixer, m, gate_norm):
    scan = SCAN[mixer]
    z, v, h0 = _inputs(mixer, m, gate_norm)
    ref_h, ref_final = scan(z, v, h0, gate_norm, backend="naive")
    w = torch.randn_like(ref_h)
    ref_grads = torch.autograd.grad((ref_h * w).sum() + ref_final.sum(), (z, v, h0))

    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        zc, vc, h0c = (x.detach().to(dtype).requires_grad_() for x in (z, v, h0))
        h, final = scan(zc, vc, h0c, gate_norm, backend="torch")
        assert h.dtype == dtype and final.dtype == dtype
        grads = torch.autograd.grad((h * w.to(dtype)).sum() + final.sum(), (zc, vc, h0c))
        for got, ref in [(h, ref_h), (final, ref_final), *zip(grads, ref_grads, strict=True)]:
            err = (got.double() - ref).norm() / ref.norm().clamp_min(1e-12)
            assert err < tol, f"{dtype}: relative error {err:.2e}"


def test_reference_is_the_paper_equations():
    """Hand-written scalar recursions, independent of the library code."""
    g = torch.Generator().manual_seed(1)
    # BD-LRU, m = 1, softmax: h_t = a_t h_{t-1} + (1 - a_t) v_t with a_t = sigmoid(z0 - z1).
    z, v = torch.randn(1, 9, 1, 1, 2, generator=g, dtype=torch.float64), torch.randn(1, 9, 1, 1, generator=g).double()
    h, expected = 0.0, []
    for t in range(9):
        a = torch.sigmoid(z[0, t, 0, 0, 0] - z[0, t, 0, 0, 1]).item()
        h = a * h + (1 - a) * v[0, t, 0, 0].item()
        expected.append(h)
    got, _ = bdlru_scan(z, v, backend="naive")
    torch.testing.assert_close(got[0, :, 0, 0], torch.tensor(expected, dtype=torch.float64))
    # H-LRU, m = 2, sigmoid_l1: x_t = p0 x_{t-1} + p1 x_{t-2} + p2 v_t.
    z, v = torch.randn(1, 9, 1, 3, generator=g, dtype=torch.float64), torch.randn(1, 9, 1, generator=g).double()
    x1, x2, expected = 0.5, -0.25, []
    for t in range(9):
        s = torch.sigmoid(z[0, t, 0])
        p = (s / s.sum()).tolist()
        x1, x2 = p[0] * x1 + p[1] * x2 + p[2] * v[0, t, 0].item(), x1
        expected.append([x1, x2])
    got, final = hlru_scan(z, v, torch.tensor([[[0.5, -0.25]]], dtype=torch.float64), "sigmoid_l1", backend="naive")
    torch.testing.assert_close(got[0, :, 0], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(final[0, 0], torch.tensor(expected[-1], dtype=torch.float64))
    # BD-LRU, m = 2, raw gates ("none"): h_t[i] = sum_j z[i, j] h_{t-1}[j] + z[i, 2] v_t[i] (row i of A, a0 = z[:, 2])
    z = 0.4 * torch.randn(1, 9, 1, 2, 3, generator=g, dtype=torch.float64)
    v = torch.randn(1, 9, 1, 2, generator=g, dtype=torch.float64)
    h, expected = [0.5, -1.0], []
    for t in range(9):
        p, x = z[0, t, 0].tolist(), v[0, t, 0].tolist()
        h = [p[i][0] * h[0] + p[i][1] * h[1] + p[i][2] * x[i] for i in range(2)]
        expected.append(h)
    h0 = torch.tensor([[[0.5, -1.0]]], dtype=torch.float64)
    for backend in ("naive", "torch"):
        got, _ = bdlru_scan(z, v, h0, "none", backend=backend)
        torch.testing.assert_close(got[0, :, 0], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("gate_norm", ["softmax", "sigmoid_l1", "relu_l1"])
@pytest.mark.parametrize("backend", ["naive", "torch"])
def test_normalised_gates_keep_state_bounded(mixer, gate_norm, backend):
    """Every update is a convex (or sub-convex) combination: |h_t| <= max_s |v_s| from a zero state."""
    g = torch.Generator().manual_seed(2)
    m, t = 4, 300
    z = 6 * torch.randn((B, t, N, m, m + 1) if mixer == "bdlru" else (B, t, N, m + 1), generator=g)
    v = 10 * torch.randn((B, t, N, m) if mixer == "bdlru" else (B, t, N), generator=g)
    h, final = SCAN[mixer](z, v, gate_norm=gate_norm, backend=backend)
    assert h.abs().max() <= v.abs().max() * (1 + 1e-5)
    assert torch.isfinite(final).all()


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("gate_norm", GATE_NORMS)
def test_step_equals_one_token_scan(mixer, gate_norm):
    z, v, h0 = (x.detach() for x in _inputs(mixer, 3, gate_norm))
    step = bdlru_step if mixer == "bdlru" else hlru_step
    h_scan, final_scan = SCAN[mixer](z[:, :1], v[:, :1], h0, gate_norm, backend="torch")
    h_step, final_step = step(z[:, 0], v[:, 0], h0, gate_norm)
    torch.testing.assert_close(h_step, h_scan[:, 0])
    torch.testing.assert_close(final_step, final_scan)


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_low_precision_inputs_accumulate_in_float32(mixer):
    z, v, _ = (x.detach() for x in _inputs(mixer, 2, "softmax"))
    h, final = SCAN[mixer](z.bfloat16(), v.bfloat16(), backend="torch")
    ref, _ = SCAN[mixer](z.bfloat16().double(), v.bfloat16().double(), backend="naive")
    assert h.dtype == torch.bfloat16 and final.dtype == torch.float32
    assert (h.double() - ref).norm() / ref.norm() < 1e-2


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_torch_scan_carries_the_state_across_chunks(mixer):
    # T = 37 fits one default chunk of 64: here 5 chunks of 8, the last one partial
    from hlru_lm.ops import chunk_bdlru_scan, chunk_hlru_scan

    z, v, h0 = (x.detach() for x in _inputs(mixer, 2, "relu_l1"))
    chunked = chunk_bdlru_scan if mixer == "bdlru" else chunk_hlru_scan
    ref_h, ref_final = SCAN[mixer](z, v, h0, "relu_l1", backend="naive")
    h, final = chunked(z, v, h0, "relu_l1", chunk_size=8)
    torch.testing.assert_close(h, ref_h)
    torch.testing.assert_close(final, ref_final)


def test_split_scan_continues_from_final_state():
    z, v, h0 = (x.detach() for x in _inputs("bdlru", 2, "softmax"))
    full, _ = bdlru_scan(z, v, h0)
    first, state = bdlru_scan(z[:, :20], v[:, :20], h0)
    second, _ = bdlru_scan(z[:, 20:], v[:, 20:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bdlru_scan(torch.zeros(1, 4, 2, 2, 3), torch.zeros(1, 4, 2, 2), gate_norm="tanh"), "gate_norm"),
        (lambda: bdlru_scan(torch.zeros(1, 4, 2, 2, 3), torch.zeros(1, 4, 2, 2), backend="cuda"), "backend"),
        (lambda: bdlru_scan(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 4, 2, 2)), "gate_logits"),
        (lambda: bdlru_scan(torch.zeros(1, 4, 2, 2, 3), torch.zeros(1, 4, 2, 3)), "v must"),
        (
            lambda: bdlru_scan(torch.zeros(1, 4, 2, 2, 3), torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 3)),
            "initial_state",
        ),
        (lambda: hlru_scan(torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 3)), "v must"),
        (lambda: hlru_scan(torch.zeros(1, 4, 2, 1), torch.zeros(1, 4, 2)), "m >= 1"),
        (lambda: hlru_scan(torch.zeros(1, 4, 2, 3, dtype=torch.long), torch.zeros(1, 4, 2)), "floating"),
        (lambda: hlru_step(torch.zeros(1, 2, 3), torch.zeros(1, 2), torch.zeros(1, 2, 3)), "initial_state"),
        (
            lambda: hlru_scan(torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 2), torch.zeros(1, 2, 2, dtype=torch.cfloat)),
            "initial_state must be a real floating-point",
        ),
        (lambda: hlru_scan(*_zeros_hlru(), pos_in_doc=torch.tensor([[0, -1, 1, 2]])), "pos_in_doc must be >= 0"),
        (lambda: hlru_scan(*_zeros_hlru(), pos_in_doc=torch.ones(1, 4, dtype=torch.bool)), "integer tensor"),
        (lambda: hlru_scan(*_zeros_hlru(), pos_in_doc=torch.zeros(1, 4, dtype=torch.long, device="meta")), "is on"),
    ],
)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _zeros_hlru():
    return torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 2)


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_documents_accumulate_in_the_precision_of_v(mixer):
    # with or without pos_in_doc, float64 v gives a float64 state and float64 agreement
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 6, 2, 2, 3), (1, 6, 2, 2)] if mixer == "bdlru" else [(1, 6, 2, 3), (1, 6, 2)]
    z, v = (torch.randn(s, generator=g, dtype=torch.float64) for s in shapes)
    fn = bdlru_scan if mixer == "bdlru" else hlru_scan
    h, final = fn(z.float(), v, backend="torch")
    hp, fp = fn(z.float(), v, backend="torch", pos_in_doc=torch.arange(6)[None])  # one document: the same scan
    assert final.dtype == fp.dtype == torch.float64 and hp.dtype == torch.float64
    assert torch.allclose(h, hp, atol=1e-12) and torch.allclose(final, fp, atol=1e-12)


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("backend", ["naive", "torch"])
def test_autocast_leaves_the_state_in_float32(mixer, backend):
    """Under autocast the scans' matmuls ran in bf16, rounding the state every step (relative error 2e-3 on fp32
    inputs): scans, steps and gradients (backward outside autocast, as recommended) equal those without autocast."""
    z, v, h0 = (x.detach().float() for x in _inputs(mixer, 3, "softmax"))
    step = bdlru_step if mixer == "bdlru" else hlru_step

    def run(autocast: bool):
        leaves = [x.clone().requires_grad_() for x in (z, v, h0)]
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            h, final = SCAN[mixer](*leaves, backend=backend)
            outs = [h, final, *step(z[:, 0], v[:, 0], h0)]
        (h.sum() + final.sum()).backward()
        return [*outs, *(x.grad for x in leaves)]

    for a, b in zip(run(True), run(False), strict=True):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("backend, length", [("torch", 256), ("naive", 8)])
def test_scan_backward_is_linear_in_length(mixer, backend, length):
    """The chunk carry indexed a[:, c, -1] per chunk (the loop: z[:, t] per step); each index's backward wrote a zero
    gradient of the whole input: bytes and time grew as T^2 (a T = 8192 m = 4 torch backward took 4.8 s, not 0.06 s)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class CountBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.nbytes = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.nbytes += sum(t.nbytes for t in tree_leaves(out) if isinstance(t, torch.Tensor))
            return out

    def backward_bytes(t: int) -> int:
        g = torch.Generator().manual_seed(0)
        shapes = [(1, t, 1, 2, 3), (1, t, 1, 2)] if mixer == "bdlru" else [(1, t, 1, 3), (1, t, 1)]
        z, v = (torch.randn(s, generator=g).requires_grad_() for s in shapes)
        h, final = SCAN[mixer](z, v, backend=backend)
        with CountBytes() as count:
            (h.sum() + final.sum()).backward()
        return count.nbytes

    assert backward_bytes(16 * length) < 18 * backward_bytes(length)  # 16x the bytes (it was 35x, the loop's 250x)
