"""Packed documents (HF's padding-free convention: position_ids restart at 0 per document) give each document the
logits and gradients it has alone, in every backend; the cache holds the last document's state."""

import pytest
import torch

import hlru_lm.modeling_hlru as mh
from hlru_lm.ops import bdlru_scan, hlru_scan

from .conftest import run_triton_tests_in_interpreter, tiny_model

triton = pytest.importorskip("triton")
INTERPRETED = type(triton.language.standard.zeros).__name__ == "InterpretedFunction"
DEV = "cpu" if INTERPRETED else "cuda"
LENGTHS = (5, 1, 7, 3)  # a one-token document too


def _positions(lengths=LENGTHS) -> torch.Tensor:
    return torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)


@pytest.mark.parametrize("mixer,m", [("bdlru", 1), ("bdlru", 4), ("hlru", 2), ("hlru", 4)])
def test_packed_equals_separate_model(mixer, m):
    model = tiny_model(mixer, block_size=m, num_blocks=3, scan_backend="torch").train()
    ids = torch.randint(3, 96, (1, sum(LENGTHS)), generator=torch.Generator().manual_seed(m))
    packed = model(ids, position_ids=_positions()).logits
    g = torch.randn(packed.shape, generator=torch.Generator().manual_seed(1))
    (packed * g).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    start, parts = 0, []
    for n in LENGTHS:
        alone = model(ids[:, start : start + n]).logits
        (alone * g[:, start : start + n]).sum().backward()
        parts.append(alone)
        start += n
    assert torch.allclose(packed, torch.cat(parts, dim=1), atol=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(grads[n], p.grad, atol=1e-5), n


def test_packed_scan_compiles_without_graph_breaks():
    z, v = torch.randn(1, 16, 2, 2, 3), torch.randn(1, 16, 2, 2)
    compiled = torch.compile(bdlru_scan, fullgraph=True, dynamic=True, backend="aot_eager")
    got = compiled(z, v, backend="torch", pos_in_doc=_positions())[0]
    assert torch.allclose(got, bdlru_scan(z, v, backend="torch", pos_in_doc=_positions())[0], atol=1e-6)


def test_transformers_flattening_collator():
    """The batches HF's padding-free collator builds (what TRL's packing=True feeds) give each document's own loss."""
    from transformers import DataCollatorWithFlattening

    model = tiny_model("bdlru", block_size=2, num_blocks=8)
    g = torch.Generator().manual_seed(6)
    docs = [torch.randint(3, 96, (n,), generator=g).tolist() for n in LENGTHS]
    batch = DataCollatorWithFlattening()([{"input_ids": d} for d in docs])
    packed = model(**batch)
    alone = [model(torch.tensor([d]), labels=torch.tensor([d])) for d in docs if len(d) > 1]
    n_pred = [len(d) - 1 for d in docs if len(d) > 1]
    want = sum(o.loss * n for o, n in zip(alone, n_pred, strict=True)) / sum(n_pred)
    assert torch.allclose(packed.loss, want, atol=1e-5)


def test_packed_cache_holds_the_last_document():
    model = tiny_model("hlru", block_size=4, num_blocks=3)
    ids = torch.randint(3, 96, (1, sum(LENGTHS)), generator=torch.Generator().manual_seed(3))
    packed = model(ids, position_ids=_positions(), use_cache=True)
    alone = model(ids[:, -LENGTHS[-1] :], use_cache=True)
    cache_p = packed.cache if hasattr(packed, "cache") else packed.past_key_values
    cache_a = alone.cache if hasattr(alone, "cache") else alone.past_key_values
    for lp, la in zip(cache_p.layers, cache_a.layers, strict=True):
        assert torch.allclose(lp.state, la.state, atol=1e-6)


@pytest.mark.parametrize("mixer,graphs", [("bdlru", False), ("hlru", False), ("bdlru", True)])
@torch.no_grad()
def test_a_document_starting_at_a_chunk_after_a_cache(mixer, graphs, monkeypatch):
    # a 0 at a chunk's first position after a cache started a document only if the chunk also restarted inside
    monkeypatch.setattr(mh, "_graphs_supported", lambda device: graphs)  # the decode step's graph runner, on CPU
    model = tiny_model(mixer, block_size=2, num_blocks=8)
    ids = torch.randint(3, 96, (1, 9), generator=torch.Generator().manual_seed(7))

    def prefix_cache():
        out = model(ids[:, :6], use_cache=True)
        return getattr(out, "cache", None) or out.past_key_values

    for chunk in ([0, 1, 2], [0, 1, 0], [0]):  # no restart inside, one inside, a single token
        n = len(chunk)
        got = model(ids[:, 6 : 6 + n], position_ids=torch.tensor([chunk]), past_key_values=prefix_cache()).logits
        torch.testing.assert_close(got, model(ids[:, 6 : 6 + n], position_ids=torch.tensor([chunk])).logits)
    for start in (6, 8):  # positions that count on continue the state, also one token at a time
        cache = prefix_cache()
        if start == 8:
            cache = model(ids[:, 6:8], position_ids=torch.tensor([[6, 7]]), past_key_values=cache).past_key_values
        got = model(ids[:, start:], position_ids=torch.arange(start, 9)[None], past_key_values=cache).logits
        torch.testing.assert_close(got, model(ids).logits[:, start:])


def test_counting_positions_change_nothing():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 8), generator=torch.Generator().manual_seed(4))
    base = model(ids).logits
    assert torch.equal(model(ids, position_ids=torch.arange(8).expand(2, 8)).logits, base)
    with pytest.raises(ValueError, match="position_ids must have shape"):
        model(ids, position_ids=torch.arange(7).unsqueeze(0))


def _check_ops(fn, shapes, dtype, tol):
    b, t, rest = 2, sum(LENGTHS), shapes
    g = torch.Generator().manual_seed(5)
    z = torch.randn(b, t, *rest[0], generator=g)
    v = torch.randn(b, t, *rest[1], generator=g)
    pos = torch.cat([_positions(), _positions(LENGTHS[::-1])])
    zt, vt = (x.to(dtype).to(DEV).clone().requires_grad_() for x in (z, v))
    h, final = fn(zt, vt, backend="triton", pos_in_doc=pos.to(DEV))
    gh = torch.randn(h.shape, generator=g)
    (h.float() * gh.to(DEV)).sum().backward()
    for row, lengths in ((0, LENGTHS), (1, LENGTHS[::-1])):
        start = 0
        for n in lengths:
            zr = z[row : row + 1, start : start + n].to(dtype).double().requires_grad_()
            vr = v[row : row + 1, start : start + n].to(dtype).double().requires_grad_()
            hr, fr = fn(zr, vr, backend="naive")
            (hr * gh[row : row + 1, start : start + n].double()).sum().backward()
            assert torch.allclose(h[row, start : start + n].double().cpu(), hr[0], atol=tol)
            assert torch.allclose(zt.grad[row, start : start + n].double().cpu(), zr.grad[0], atol=10 * tol)
            assert torch.allclose(vt.grad[row, start : start + n].double().cpu(), vr.grad[0], atol=10 * tol)
            start += n
        assert torch.allclose(final[row].double().cpu(), fr[0], atol=tol)


@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("mixer", ["bdlru", "hlru"])
def test_triton_packed_equals_separate(mixer, m):
    if mixer == "bdlru":
        _check_ops(bdlru_scan, ((3, m, m + 1), (3, m)), torch.float32, 1e-5)
    else:
        _check_ops(hlru_scan, ((3, m + 1), (3,)), torch.float32, 1e-5)


if not INTERPRETED and not torch.cuda.is_available():
    run_triton_tests_in_interpreter(globals(), __file__)
