"""The model and the torch scans across dtypes: bf16 / fp16 / float64 models keep a float32 (float64) state, their
greedy generate() follows their own full forward, and the torch paths match float64 at awkward gate logits (huge,
tiny, all equal, zero rows, rows with no positive logit) for every gate norm, both mixers and 2-byte inputs."""

import pytest
import torch

import hlru_lm
from hlru_lm.ops import GATE_NORMS, bdlru_scan, hlru_scan

from .conftest import rel, tiny_model


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_model_dtypes_keep_the_state_and_greedy_follows_the_forward(mixer_type, dtype):
    # a wide init spreads the logits, so the greedy tokens are the forward's argmax, not bf16 ties
    model = tiny_model(mixer_type, block_size=3, initializer_range=0.3).to(dtype)
    ids = torch.randint(3, 96, (2, 7), generator=torch.Generator().manual_seed(0))
    out = model.train()(ids, labels=ids)
    out.loss.backward()
    assert out.logits.dtype == dtype and torch.isfinite(out.loss)
    assert all(p.grad.dtype == dtype and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        cache = getattr(model(ids, use_cache=True), hlru_lm.modeling_hlru._CACHE_FIELD)
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        assert {layer.state.dtype for layer in cache.layers} == {state_dtype}
        seq = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        logits = model(seq).logits[:, ids.shape[1] - 1 : -1]
    assert torch.equal(logits.argmax(-1), seq[:, ids.shape[1] :])


def awkward_logits(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Rows (last axis) cycling through: +-1e4, 1e4 + O(1) spread, 1e-30 scale, all equal, all zero, no positive
    logit (one exact zero), half exact zeros, ordinary."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=g)
    rows, k = z.view(-1, shape[-1]), shape[-1]
    for i in range(rows.shape[0]):
        kind = i % 8
        if kind == 0:
            rows[i] = torch.where(torch.rand(k, generator=g) < 0.5, -1e4, 1e4)
        elif kind == 1:
            rows[i] = -1e4 + torch.randn(k, generator=g)
        elif kind == 2:
            rows[i] = 1e-30 * torch.randn(k, generator=g)
        elif kind == 3:
            rows[i] = 3.0
        elif kind == 4:
            rows[i] = 0.0
        elif kind == 5:
            rows[i] = -torch.rand(k, generator=g)
            rows[i, 0] = 0.0
        elif kind == 6:
            rows[i, ::2] = 0.0
    return z


@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("gate_norm", GATE_NORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_torch_paths_at_awkward_logits_match_float64(mixer, m, gate_norm, dtype):
    b, t, n = 1, 6, 8
    fn = bdlru_scan if mixer == "bdlru" else hlru_scan
    z = awkward_logits((b, t, n, m, m + 1) if mixer == "bdlru" else (b, t, n, m + 1), seed=m)
    if gate_norm == "none":  # raw gates: keep the map contractive (+-1e4 would overflow float64 too)
        z = z.clamp(-1.0, 1.0) * 0.3
    g = torch.Generator().manual_seed(1)
    v = torch.randn((b, t, n, m) if mixer == "bdlru" else (b, t, n), generator=g)
    h0 = torch.randn(b, n, m, generator=g)
    z, v = z.to(dtype), v.to(dtype)
    ref_in = [x.double().requires_grad_() for x in (z, v, h0)]
    ref = fn(*ref_in, gate_norm=gate_norm, backend="naive")
    gh, gf = torch.randn(ref[0].shape, generator=g, dtype=torch.float64), torch.randn(b, n, m, dtype=torch.float64)
    torch.autograd.backward(ref, (gh, gf))
    tol = 1e-5 if dtype == torch.float32 else 1e-2  # 2-byte outputs are rounded once
    for backend in ("naive", "torch"):
        leaves = [x.clone().requires_grad_() for x in (z, v, h0)]
        h, final = fn(*leaves, gate_norm=gate_norm, backend=backend)
        assert h.dtype == dtype and final.dtype == torch.float32
        torch.autograd.backward((h, final), (gh.to(dtype), gf.float()))
        grads = [(x.grad, r.grad) for x, r in zip(leaves, ref_in, strict=True)]
        for got, want in ((h, ref[0]), (final, ref[1]), *grads):
            assert torch.isfinite(got).all() and rel(got, want) < tol, (backend, rel(got, want))
        if gate_norm != "none":  # convex updates: bounded by the initial state and the inputs
            assert h.float().abs().max() <= max(v.float().abs().max(), h0.abs().max()) * (1 + tol)
