"""CUDA-graph decoding (config.decode_cuda_graph): the shared decode step, when the graph path is taken, and its
buffer bookkeeping. On CPU the graph runner is exercised eagerly (`_graphs_supported` widened to CPU: same buffers,
same ownership rules, no capture); the GPU tests at the end capture real graphs and skip cleanly without CUDA."""

import copy

import pytest
import torch

import hlru_lm.modeling_hlru as mh
from hlru_lm import HLRUConfig, HLRUForCausalLM
from hlru_lm.modeling_hlru import _CACHE_FIELD, HLRUCache
from tests.conftest import tiny_model

VARIANTS = [("bdlru", 1), ("bdlru", 4), ("hlru", 4)]
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _model(mixer_type="bdlru", m=4, **kw):
    return tiny_model(mixer_type, block_size=m, num_blocks=max(32 // m, 1) if m == 1 else 3, **kw)


def _gen(model, ids, **kw):
    kw.setdefault("do_sample", False)
    kw.setdefault("pad_token_id", 0)
    return model.generate(ids, return_dict_in_generate=True, output_scores=True, **kw)


def _off(model):
    off = copy.deepcopy(model)
    off.config.decode_cuda_graph = False
    return off


def _left_padded(bsz, vocab=96, device="cpu"):
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (bsz, 9), device=device)
    mask = torch.ones_like(ids)
    for row in range(1, bsz):
        ids[row, : 2 * row] = 0
        mask[row, : 2 * row] = 0
    return ids, mask


def _prefill(model, ids):
    with torch.no_grad():
        out = model(ids, use_cache=True)
    return getattr(out, _CACHE_FIELD), out.logits[:, -1].argmax(-1, keepdim=True)


def _step(model, ids, cache):
    with torch.no_grad():
        return model(ids, **{_CACHE_FIELD: cache}).logits


@pytest.fixture
def graphs_on_cpu(monkeypatch):
    """Run the graph runner on CPU (eager replay over the static buffers)."""
    monkeypatch.setattr(mh, "_graphs_supported", lambda device: True)


# --- the decode step and the flag --------------------------------------------------------------------------------


@pytest.mark.parametrize("mixer_type,m", VARIANTS)
def test_decode_step_equals_forward_with_cache(mixer_type, m):
    model = _model(mixer_type, m)
    model.config.decode_cuda_graph = False
    cache, nxt = _prefill(model, torch.randint(3, 96, (3, 7)))
    states = [layer.state.clone() for layer in cache.layers]
    with torch.no_grad():
        logits, new_states = model._decode_step(nxt, states)
    ref = _step(model, nxt, cache)
    assert logits.shape == ref.shape == (3, 1, 96)
    torch.testing.assert_close(logits, ref, rtol=0, atol=0)
    for new, layer in zip(new_states, cache.layers, strict=True):
        assert new.dtype == torch.float32
        torch.testing.assert_close(new, layer.state, rtol=0, atol=0)
    assert all(torch.equal(s, s0) for s, s0 in zip(states, [x.clone() for x in states], strict=True))


def test_flag_defaults_on_validates_and_round_trips(tmp_path):
    assert HLRUConfig().decode_cuda_graph is True
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="decode_cuda_graph"):
            HLRUConfig(decode_cuda_graph=bad)
    model = tiny_model(decode_cuda_graph=False)
    model.save_pretrained(tmp_path)
    assert HLRUForCausalLM.from_pretrained(tmp_path).config.decode_cuda_graph is False
    assert "_decode_graphs" not in "".join(model.state_dict())


def test_graph_path_not_taken_on_cpu(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no decode graph on CPU")

    monkeypatch.setattr(mh, "_DecodeGraph", refuse)
    model = tiny_model()
    out = _gen(model, torch.randint(3, 96, (2, 5)), max_new_tokens=4)
    assert out.sequences.shape == (2, 9) and len(model._decode_graphs) == 0


@pytest.mark.usefixtures("graphs_on_cpu")
def test_graph_path_only_for_eval_no_grad_single_token_steps():
    model = tiny_model()
    cache, nxt = _prefill(model, torch.randint(3, 96, (2, 5)))
    model(nxt, **{_CACHE_FIELD: cache}, use_cache=True)  # grad enabled: eager
    with torch.no_grad():
        model(nxt, **{_CACHE_FIELD: cache}, output_hidden_states=True)  # hidden states asked for: eager
        model(torch.cat([nxt, nxt], 1), **{_CACHE_FIELD: cache})  # two tokens: eager
        model(inputs_embeds=model.model.embed_tokens(nxt), **{_CACHE_FIELD: cache})
        model(nxt)  # no cache: eager
        model.train()
        model(nxt, **{_CACHE_FIELD: cache})
        model.eval()
        assert len(model._decode_graphs) == 0
        model.config.decode_cuda_graph = False
        model(nxt, **{_CACHE_FIELD: cache})
        assert len(model._decode_graphs) == 0
        model.config.decode_cuda_graph = True
        model(nxt, **{_CACHE_FIELD: cache})
    assert list(model._decode_graphs) == [(2, torch.float32, torch.device("cpu"))]


# --- the runner's bookkeeping, eagerly on CPU ----------------------------------------------------------------------


@pytest.mark.usefixtures("graphs_on_cpu")
@pytest.mark.parametrize("mixer_type,m", VARIANTS)
@pytest.mark.parametrize("bsz", [1, 3])
def test_runner_greedy_equals_eager(mixer_type, m, bsz):
    model = _model(mixer_type, m)
    ids, mask = _left_padded(bsz)
    a = _gen(model, ids, attention_mask=mask, max_new_tokens=10)
    b = _gen(_off(model), ids, attention_mask=mask, max_new_tokens=10)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), rtol=0, atol=0)
    graph = model._decode_graphs[(bsz, torch.float32, torch.device("cpu"))]
    cache = getattr(a, _CACHE_FIELD)
    assert all(layer.state is buf for layer, buf in zip(cache.layers, graph.states, strict=True))
    assert cache.get_seq_length() == 9 + 9


@pytest.mark.usefixtures("graphs_on_cpu")
def test_interleaved_caches_do_not_corrupt_each_other():
    model = tiny_model()
    off = _off(model)
    prompts = [torch.randint(3, 96, (2, 6)), torch.randint(3, 96, (2, 4))]

    def run(m, interleave):
        caches, toks, logits = [], [], [[], []]
        for p in prompts:
            cache, nxt = _prefill(m, p)
            caches.append(cache)
            toks.append(nxt)
        order = [0, 1] * 5 if interleave else [0] * 5 + [1] * 5
        for i in order:
            out = _step(m, toks[i], caches[i])
            logits[i].append(out)
            toks[i] = out[:, -1].argmax(-1, keepdim=True)
        return logits, caches

    got, caches = run(model, interleave=True)
    want, ref_caches = run(off, interleave=False)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(torch.stack(g), torch.stack(w), rtol=0, atol=0)
    for c, r in zip(caches, ref_caches, strict=True):
        for a, b in zip(c.layers, r.layers, strict=True):
            torch.testing.assert_close(a.state, b.state, rtol=0, atol=0)
    buffers = model._decode_graphs[(2, torch.float32, torch.device("cpu"))].states
    # the last cache to step holds the buffers, the other its own copies
    assert all(layer.state is buf for layer, buf in zip(caches[1].layers, buffers, strict=True))
    assert not any(mh._same_memory(layer.state, buf) for layer in caches[0].layers for buf in buffers)


@pytest.mark.usefixtures("graphs_on_cpu")
@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
def test_runner_beam_search_and_continuation(mixer_type):
    model = tiny_model(mixer_type)
    off = _off(model)
    ids = torch.randint(3, 96, (2, 7))
    kw = dict(num_beams=2, num_return_sequences=2, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, **kw), off.generate(ids, **kw))
    first = _gen(model, ids, max_new_tokens=4)
    second = _gen(model, ids[:, :5], max_new_tokens=3)  # takes the same graph: the first cache gets its own copy
    cont = _gen(model, first.sequences, max_new_tokens=6, **{_CACHE_FIELD: getattr(first, _CACHE_FIELD)})
    assert torch.equal(cont.sequences, _gen(off, ids, max_new_tokens=10).sequences)
    assert torch.equal(second.sequences, _gen(off, ids[:, :5], max_new_tokens=3).sequences)


@pytest.mark.usefixtures("graphs_on_cpu")
def test_runner_cache_memory_constant_and_graphs_dropped():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 8))
    sizes = {n: getattr(_gen(model, ids, max_new_tokens=n, min_new_tokens=n), _CACHE_FIELD).nbytes() for n in (3, 40)}
    cfg = model.config
    assert sizes[3] == sizes[40] == cfg.num_hidden_layers * 2 * cfg.num_blocks * cfg.block_size * 4
    assert len(model._decode_graphs) == 1
    model.train().eval()
    assert len(model._decode_graphs) == 0
    _gen(model, ids, max_new_tokens=3)
    model.to(torch.float64)  # new parameter tensors: graphs dropped, the next step captures for float64
    assert len(model._decode_graphs) == 0
    a = _gen(model, ids.clone(), max_new_tokens=4)
    assert list(model._decode_graphs) == [(2, torch.float64, torch.device("cpu"))]
    assert getattr(a, _CACHE_FIELD).layers[0].state.dtype == torch.float64
    clone = copy.deepcopy(model)  # graphs are not copied
    assert len(clone._decode_graphs) == 0 and len(model._decode_graphs) == 1
    model.load_state_dict(clone.state_dict())
    assert len(model._decode_graphs) == 0


@pytest.mark.usefixtures("graphs_on_cpu")
def test_runner_inference_mode_then_no_grad():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 5))
    with torch.inference_mode():
        a = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    b = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(a, b)


@pytest.mark.usefixtures("graphs_on_cpu")
def test_runner_skipped_for_hooked_or_changed_models():
    model = tiny_model()
    off = _off(model)
    ids = torch.randint(3, 96, (1, 4))
    handle = model.model.layers[0].mlp.register_forward_hook(lambda mod, args, out: out)
    _gen(model, ids, max_new_tokens=3)
    assert len(model._decode_graphs) == 0
    handle.remove()
    _gen(model, ids, max_new_tokens=3)  # each generate() looks at every module, hook and tensor again
    assert len(model._decode_graphs) == 1
    # a hook added after capture, and a tensor replaced (not the embedding / head): graphs dropped at generate()
    handle = model.model.layers[1].mlp.register_forward_hook(lambda mod, args, out: out * 0)
    a = _gen(model, ids, max_new_tokens=3)
    assert len(model._decode_graphs) == 0
    handle.remove()
    off.model.layers[1].mlp.register_forward_hook(lambda mod, args, out: out * 0)
    assert torch.equal(a.sequences, _gen(off, ids, max_new_tokens=3).sequences)
    _gen(model, ids, max_new_tokens=3)
    graph = next(iter(model._decode_graphs.values()))
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight = torch.nn.Parameter(torch.zeros_like(model.lm_head.weight[:64, :32]))
    _gen(model, ids, max_new_tokens=3)
    assert next(iter(model._decode_graphs.values())) is not graph


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's imports
@pytest.mark.usefixtures("graphs_on_cpu")
def test_runner_with_compiled_step_matches_eager():
    model = tiny_model("hlru")
    model.decode_compile = True  # experimental: torch.compile the step before capture (inductor on CPU here)
    ids = torch.randint(3, 96, (2, 6))
    a = _gen(model, ids, max_new_tokens=6)
    b = _gen(_off(model), ids, max_new_tokens=6)
    assert list(model._decode_graphs) == [(2, torch.float32, torch.device("cpu"), "compiled")]
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), rtol=1e-5, atol=1e-5)


# --- real CUDA graphs ----------------------------------------------------------------------------------------------


def _gpu_model(mixer_type, m, dtype=torch.float32):
    d = 256
    cfg = dict(hidden_size=d, num_hidden_layers=3, intermediate_size=512, vocab_size=512)
    cfg.update(block_size=m, num_blocks=d // m)
    return tiny_model(mixer_type, **cfg).to("cuda", dtype)


@GPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mixer_type,m", VARIANTS)
@pytest.mark.parametrize("bsz", [1, 4])
def test_gpu_greedy_with_graph_equals_without(mixer_type, m, bsz, dtype):
    model = _gpu_model(mixer_type, m, dtype)
    off = _off(model)
    ids, mask = _left_padded(bsz, vocab=512, device="cuda")
    a = _gen(model, ids, attention_mask=mask, max_new_tokens=24)
    b = _gen(off, ids, attention_mask=mask, max_new_tokens=24)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), rtol=1e-5, atol=1e-5)
    graph = model._decode_graphs[(bsz, dtype, ids.device)]
    assert graph.graph is not None and len(off._decode_graphs) == 0


@GPU
def test_gpu_interleaved_caches_and_beams():
    model = _gpu_model("bdlru", 4)
    off = _off(model)
    p1, p2 = torch.randint(3, 512, (2, 6), device="cuda"), torch.randint(3, 512, (2, 9), device="cuda")
    (c1, t1), (c2, t2) = _prefill(model, p1), _prefill(model, p2)
    (r1, u1), (r2, u2) = _prefill(off, p1), _prefill(off, p2)
    for _ in range(6):
        l1, l2 = _step(model, t1, c1), _step(model, t2, c2)
        k1, k2 = _step(off, u1, r1), _step(off, u2, r2)
        torch.testing.assert_close(l1, k1, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l2, k2, rtol=1e-5, atol=1e-5)
        t1, t2 = l1[:, -1].argmax(-1, keepdim=True), l2[:, -1].argmax(-1, keepdim=True)
        u1, u2 = k1[:, -1].argmax(-1, keepdim=True), k2[:, -1].argmax(-1, keepdim=True)
    kw = dict(num_beams=2, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(p2, **kw), off.generate(p2, **kw))
    assert any(g.graph is not None for g in model._decode_graphs.values())


@GPU
@pytest.mark.parametrize("mixer_type,m", [("bdlru", 1), ("hlru", 4)])
def test_gpu_compiled_step_close_to_eager(mixer_type, m):
    model = _gpu_model(mixer_type, m)
    model.decode_compile = True
    ids, mask = _left_padded(4, vocab=512, device="cuda")
    a = _gen(model, ids, attention_mask=mask, max_new_tokens=16)
    b = _gen(_off(model), ids, attention_mask=mask, max_new_tokens=16)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), rtol=1e-4, atol=1e-4)
    assert model._decode_graphs[(4, torch.float32, ids.device, "compiled")].graph is not None


@GPU
def test_gpu_cache_memory_constant_in_length():
    model = _gpu_model("bdlru", 4, torch.bfloat16)
    ids = torch.randint(3, 512, (4, 16), device="cuda")
    _gen(model, ids, max_new_tokens=4)  # capture first
    torch.cuda.synchronize()
    used, sizes = {}, {}
    for n in (16, 256):
        base = torch.cuda.memory_allocated()
        out = model.generate(
            ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, return_dict_in_generate=True
        )
        cache = getattr(out, _CACHE_FIELD)
        assert isinstance(cache, HLRUCache)
        sizes[n] = cache.nbytes()
        used[n] = torch.cuda.memory_allocated() - base - out.sequences.nbytes
        del out, cache
    assert sizes[16] == sizes[256]
    assert abs(used[256] - used[16]) < 64 * 1024


@GPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_decode_step_runs_each_rmsnorm_as_one_fused_op(dtype):
    """The replayed step is bound by its kernel count: each of its 2L + 1 RMSNorms must be torch's fused rms_norm (one
    kernel), not the eight-op formula."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    model = _gpu_model("bdlru", 1, dtype)
    states = [torch.zeros(2, 256, 1, device="cuda") for _ in model.model.layers]
    with torch.no_grad(), Ops() as ops:
        model._decode_step(torch.randint(3, 512, (2, 1), device="cuda"), states)
    assert ops.names.count("aten._fused_rms_norm.default") == 2 * len(model.model.layers) + 1
    assert "aten.rsqrt.default" not in ops.names


@GPU
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gpu_decode_step_follows_scan_backend(backend, monkeypatch):
    """The one-token step runs the backend the config names (it only differs from "auto" on CUDA)."""
    import hlru_lm.kernels as kernels

    calls = []
    step = kernels.triton_bdlru_step
    monkeypatch.setattr(kernels, "triton_bdlru_step", lambda *a: calls.append(1) or step(*a))
    model = _off(_gpu_model("bdlru", 4))
    model.config.scan_backend = backend
    for layer in model.model.layers:
        layer.mixer.backend = backend
    cache, token = _prefill(model, torch.randint(3, 512, (2, 6), device="cuda"))
    _step(model, token, cache)
    assert len(calls) == (len(model.model.layers) if backend == "triton" else 0)


@GPU
def test_gpu_graph_step_follows_a_replaced_head():
    """Replacing the LM head's weight between cached steps must not replay a graph that reads the old one."""
    model = _gpu_model("bdlru", 1)
    off = _off(model)
    ids = torch.randint(3, 512, (2, 6), device="cuda")
    (c1, t1), (c2, t2) = _prefill(model, ids), _prefill(off, ids)
    torch.testing.assert_close(_step(model, t1, c1), _step(off, t2, c2), rtol=1e-5, atol=1e-5)  # captured
    new = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))
    model.lm_head.weight, off.lm_head.weight = new, torch.nn.Parameter(new.detach().clone())
    torch.testing.assert_close(_step(model, t1, c1), _step(off, t2, c2), rtol=1e-5, atol=1e-5)
