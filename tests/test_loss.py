"""The chunked linear cross-entropy (hlru_lm.loss) against transformers' loss on materialised logits."""

import os

import pytest
import torch

from hlru_lm import HLRUConfig, HLRUForCausalLM
from hlru_lm import loss as L
from hlru_lm.loss import linear_cross_entropy

from .conftest import run_triton_tests_in_interpreter

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() and not INTERPRETED else "cpu"


def _reference(hidden, weight, labels, num_items=None):
    logits = hidden @ weight.t()
    target = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).double(), target.flatten(), ignore_index=-100, reduction="sum"
    )
    return loss / (num_items if num_items is not None else (target != -100).sum())


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 64])
@pytest.mark.parametrize("num_items", [None, 7])
def test_values_and_grads_match_float64(chunk_size, num_items):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 11, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 37, (3, 11), generator=g)
    labels[0, :4] = -100  # ignored targets count for nothing
    loss = linear_cross_entropy(hidden, weight, labels, num_items, chunk_size=chunk_size)
    gh, gw = torch.autograd.grad(3.0 * loss, (hidden, weight))
    ref = _reference(hidden, weight, labels, num_items)
    rh, rw = torch.autograd.grad(3.0 * ref, (hidden, weight))
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gh, rh, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, rw, rtol=1e-10, atol=1e-12)


def test_model_training_loss_equals_the_unfused_loss_under_bf16_autocast():
    config = HLRUConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, block_size=2, scan_backend="torch")
    model = HLRUForCausalLM(config).train()
    x = torch.randint(0, 97, (2, 24), generator=torch.Generator().manual_seed(1))
    grads = []
    for fuse in (True, False):
        model.config.fuse_cross_entropy = fuse
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        assert (out.logits is None) == fuse  # fused: the logits are never materialised
        grads.append(
            (out.loss.detach(), model.lm_head.weight.grad.clone(), model.model.embed_tokens.weight.grad.clone())
        )
    (l1, w1, e1), (l2, w2, e2) = grads
    torch.testing.assert_close(l1, l2, rtol=1e-3, atol=0)
    torch.testing.assert_close(w1, w2, rtol=2e-2, atol=1e-4)
    torch.testing.assert_close(e1, e2, rtol=2e-2, atol=1e-4)
    model.eval()
    model.config.fuse_cross_entropy = True
    with torch.no_grad():
        plain = model(input_ids=x, labels=x)
        assert plain.logits is not None  # eval keeps the logits
        chunked = model(input_ids=x, labels=x, skip_logits=True)  # evaluation without the logits (no gradients)
    assert chunked.logits is None
    torch.testing.assert_close(chunked.loss, plain.loss, rtol=1e-5, atol=1e-6)


def test_skip_logits_default_and_per_call():
    """By default a training forward returns its logits (as any HF model: TRL reads them); skip_logits=True or
    config.fuse_cross_entropy drops them; skip_logits without labels is refused."""
    model = HLRUForCausalLM(HLRUConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, scan_backend="torch"))
    model.train()
    x = torch.randint(0, 50, (2, 8))
    assert model(input_ids=x, labels=x).logits.shape == (2, 8, 50)
    assert model(input_ids=x, labels=x, skip_logits=True).logits is None
    model.config.fuse_cross_entropy = True
    assert model(input_ids=x, labels=x).logits is None
    assert model(input_ids=x, labels=x, skip_logits=False).logits is not None
    with pytest.raises(ValueError, match="needs labels"):
        model(input_ids=x, skip_logits=True)


def test_bad_inputs_are_refused():
    hidden, weight = torch.randn(2, 3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="labels"):
        linear_cross_entropy(hidden, weight, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="weight"):
        linear_cross_entropy(hidden, torch.randn(5, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        linear_cross_entropy(hidden, weight, torch.zeros(2, 3, dtype=torch.long), chunk_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the compiled chunk kernel)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_compiled_chunks_match_float64(dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(2, 700, 64, device="cuda", generator=g).to(dtype).requires_grad_()
    weight = (0.2 * torch.randn(5000, 64, device="cuda", generator=g)).to(dtype).requires_grad_()
    labels = torch.randint(0, 5000, (2, 700), device="cuda", generator=g)
    labels[1, 100:300] = -100
    loss = linear_cross_entropy(hidden, weight, labels, chunk_size=512)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    h64, w64 = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    ref = _reference(h64, w64, labels)
    rh, rw = torch.autograd.grad(ref, (h64, w64))
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(loss.double(), ref, rtol=tol, atol=tol)
    torch.testing.assert_close(gh.double(), rh, rtol=tol, atol=tol * rh.abs().max().item())
    torch.testing.assert_close(gw.double(), rw, rtol=tol, atol=tol * rw.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_chunk_kernel_matches_torch(dtype):
    """The Triton chunk kernel (several column blocks per row, ignored rows) equals the torch chunk function."""
    g = torch.Generator().manual_seed(3)
    logits = (3 * torch.randn(6, 37, generator=g)).to(dtype).to(DEV)
    target = torch.tensor([0, 36, -100, 5, 17, -100], device=DEV)
    scale = torch.tensor(0.25, device=DEV)
    ref_loss, ref_grad = L._chunk_loss_grad(logits.clone(), target, scale)
    loss, grad = L._chunk_loss_grad_triton(logits.clone(), target, scale, block=16)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(loss, ref_loss.float(), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad.float(), ref_grad.float(), rtol=tol, atol=tol)


def test_triton_linear_cross_entropy_matches_float64():
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 9, 8, generator=g).to(DEV).requires_grad_()
    weight = torch.randn(40, 8, generator=g).to(DEV).requires_grad_()
    labels = torch.randint(0, 40, (2, 9), generator=g).to(DEV)
    loss = linear_cross_entropy(hidden, weight, labels, chunk_size=4)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    h64, w64 = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    ref = _reference(h64, w64, labels)
    rh, rw = torch.autograd.grad(ref, (h64, w64))
    assert L._chunk_fn(hidden) is L._chunk_loss_grad_triton  # the kernel, not the torch fallback
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh.double(), rh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw.double(), rw, rtol=1e-4, atol=1e-6)


if not torch.cuda.is_available() and not INTERPRETED:
    run_triton_tests_in_interpreter(globals(), __file__)
