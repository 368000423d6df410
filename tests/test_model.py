"""Model forward/backward, paper parameter counts, config errors, save/load and Auto* registration."""

import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import hlru_lm
from tests.conftest import tiny_config, tiny_model


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
def test_forward_backward(mixer_type):
    model = tiny_model(mixer_type).train()
    ids = torch.randint(3, 96, (2, 21))
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 21, 96) and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_with_a_cache_gives_the_same_gradients(mixer_type, reentrant):
    # truncated backprop through time: a chunk continues the state of the previous one, the cache is updated
    model = tiny_model(mixer_type).train()
    ids = torch.randint(3, 96, (2, 12), generator=torch.Generator().manual_seed(0))

    def grads(checkpointing: bool):
        model.zero_grad()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        else:
            model.gradient_checkpointing_disable()
        with torch.no_grad():
            cache = model(ids[:, :5], use_cache=True)[1]
        out = model(ids[:, 5:], labels=ids[:, 5:], past_key_values=cache, use_cache=True)
        out.loss.backward()
        return [p.grad.clone() for p in model.parameters()], cache.layers[0].state.detach().clone()

    (ref, ref_state), (got, got_state) = grads(False), grads(True)
    assert torch.equal(ref_state, got_state)
    for a, b in zip(ref, got, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def test_last_hidden_state_is_the_last_of_the_hidden_states():
    # (embeddings, output of each layer but the last, the normed output), as transformers' models
    model = tiny_model().model
    ids = torch.randint(3, 96, (2, 6))
    out = model(ids, output_hidden_states=True)
    assert len(out.hidden_states) == 3 and torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert torch.equal(out.hidden_states[0], model.embed_tokens(ids))
    assert torch.equal(out.hidden_states[1], model.layers[0](out.hidden_states[0])[0])


def test_the_eos_embedding_learns_when_it_pads():
    # tokenizers without a pad token pad with EOS: that row must still get gradients
    model = tiny_model(pad_token_id=2, eos_token_id=2).train()
    ids = torch.tensor([[5, 2, 7, 2, 9]])
    model(ids, labels=ids).loss.backward()
    assert model.model.embed_tokens.weight.grad[2].norm() > 0


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
@pytest.mark.parametrize("m", [1, 2, 4])
def test_mixer_parameter_count_matches_paper(mixer_type, m):
    cfg = tiny_config(mixer_type, block_size=m, num_blocks=5)
    mixer = hlru_lm.modeling_hlru.HLRUMixer(cfg)
    d, n = cfg.hidden_size, cfg.num_blocks
    expected = n * (d * (2 * m + 2) + m + 1) if mixer_type == "hlru" else n * m * (d * (m + 3) + m + 1)
    assert sum(p.numel() for p in mixer.parameters()) == expected


def test_init_follows_paper():
    # every weight matrix (embedding, gates, v, W_out, SwiGLU, head) N(0, 0.02), biases zero, norms one
    model = tiny_model(hidden_size=256, initializer_range=0.02)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        elif name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        else:
            assert abs(p.std().item() - 0.02) < 0.002 and abs(p.mean().item()) < 0.002, name


def test_config_defaults_follow_paper():
    # SwiGLU width 8/3 d rounded up to a multiple of 256; N = d // m blocks
    cfg = hlru_lm.HLRUConfig(hidden_size=512, block_size=4)
    assert (cfg.intermediate_size, cfg.num_blocks) == (1536, 128)
    assert hlru_lm.HLRUConfig(hidden_size=768, block_size=1).intermediate_size == 2048
    cfg = hlru_lm.HLRUConfig(hidden_size=512, block_size=4, intermediate_size=100, num_blocks=7)
    assert (cfg.intermediate_size, cfg.num_blocks) == (100, 7)


@pytest.mark.parametrize(
    "field, value",
    [
        ("block_size", 0),
        ("num_blocks", 0),
        ("hidden_size", -4),
        ("num_hidden_layers", 0),
        ("vocab_size", 0),
        ("mixer_type", "lstm"),
        ("gate_norm", "tanh"),
        ("scan_backend", "cuda"),
        ("rms_norm_eps", 0.0),
        ("initializer_range", -1.0),
        ("intermediate_size", 0),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
def test_save_load_round_trip_bit_exact(tmp_path, mixer_type):
    model = tiny_model(mixer_type)
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "hlru"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(loaded, hlru_lm.HLRUForCausalLM)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ids = torch.randint(3, 96, (1, 9))
    assert torch.equal(model(ids).logits, loaded.eval()(ids).logits)
    assert isinstance(AutoModel.from_pretrained(tmp_path), hlru_lm.HLRUModel)


def test_tied_head_stays_tied_after_loading(tmp_path):
    model = tiny_model(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    ids = torch.randint(3, 96, (1, 5))
    assert torch.equal(model(ids).logits, loaded.eval()(ids).logits)


def test_bf16_checkpoint_keeps_float32_state(tmp_path):
    tiny_model().to(torch.bfloat16).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)  # dtype="auto": loads as bf16
    assert model.dtype == torch.bfloat16
    out = model(torch.randint(3, 96, (1, 5)), use_cache=True)
    cache = getattr(out, hlru_lm.modeling_hlru._CACHE_FIELD)
    assert all(layer.state.dtype == torch.float32 for layer in cache.layers)


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
def test_chunked_prefill_matches_full_forward(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (2, 30))
    full = model(ids).logits
    cache_field = hlru_lm.modeling_hlru._CACHE_FIELD
    out = model(ids[:, :17], use_cache=True)
    cache = getattr(out, cache_field)
    assert cache.get_seq_length() == 17
    rest = [model(ids[:, 17:25], cache=cache).logits]
    rest += [model(ids[:, t : t + 1], past_key_values=cache).logits for t in range(25, 30)]  # both argument names
    torch.testing.assert_close(torch.cat([out.logits, *rest], 1), full, rtol=1e-4, atol=1e-5)


def test_logits_to_keep_computes_only_the_last_positions():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 6))
    full = model(ids).logits
    torch.testing.assert_close(model(ids, logits_to_keep=2).logits, full[:, -2:])  # also checks the shape
    torch.testing.assert_close(model(ids, logits_to_keep=torch.tensor([0, 3])).logits, full[:, [0, 3]])


def test_model_input_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="HLRUCache"):
        model(torch.ones(1, 3, dtype=torch.long), cache=object())


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated")  # its 5.24 name is missing in 5.17
def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_model().train()
    ids = torch.randint(3, 96, (2, 10))
    model(ids, labels=ids).loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model(ids, labels=ids).loss.backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, a)


def test_rmsnorm_eager_and_compiled_forms_match_float64():
    """Eager RMSNorm is torch's fused rms_norm (one kernel on CUDA; it rounds x * rstd * w once); under compile, and for
    a weight of another dtype than x (no fused kernel then, and no warning), the two-rounding formula. Every form is
    RMSNorm: each against float64, values and gradients; in float32 the forms agree to rounding."""
    from hlru_lm.modeling_hlru import HLRURMSNorm

    g = torch.Generator().manual_seed(0)
    x64 = torch.randn(3, 5, 48, generator=g, dtype=torch.float64)
    w64 = 1 + 0.1 * torch.randn(48, generator=g, dtype=torch.float64)
    ref = w64 * x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + 1e-6)
    dy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    xr, wr = x64.clone().requires_grad_(), w64.clone().requires_grad_()
    (wr * xr * torch.rsqrt(xr.pow(2).mean(-1, keepdim=True) + 1e-6)).backward(dy)

    def run(norm, x):
        x = x.clone().requires_grad_()
        y = norm(x)
        y.backward(dy.to(y.dtype))
        return y, x.grad, norm.weight.grad

    def rel(a, b):
        return ((a.double() - b).norm() / b.norm()).item()

    outs = {}
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        for form in ("eager", "compiled", "mixed"):
            norm = HLRURMSNorm(48, 1e-6).to(torch.float32 if form == "mixed" else dtype)
            norm.weight.data.copy_(w64)
            fn = torch.compile(norm, backend="eager", fullgraph=True) if form == "compiled" else norm
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the mixed form must not hit torch's "cannot dispatch" warning
                y, dx, dw = run(fn, x64.to(dtype))
            assert y.dtype == torch.promote_types(dtype, norm.weight.dtype)
            assert rel(y, ref) < tol and rel(dx, xr.grad) < 10 * tol and rel(dw, wr.grad) < 10 * tol, (dtype, form)
            outs[dtype, form] = y
    assert torch.allclose(outs[torch.float32, "eager"], outs[torch.float32, "compiled"], rtol=1e-6, atol=1e-6)


def test_rmsnorm_compiled_keeps_float64():
    """The compiled form cast x to float32 (x.float()): a float64 model under torch.compile lost its precision."""
    from hlru_lm.modeling_hlru import HLRURMSNorm

    x = torch.randn(2, 3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    norm = torch.compile(HLRURMSNorm(16, 1e-6).double(), backend="eager", fullgraph=True)
    y = norm(x)
    assert y.dtype == torch.float64 and torch.allclose(y, ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("mixer_type", ["bdlru", "hlru"])
@pytest.mark.parametrize("backend", ["torch", "naive"])
def test_cache_holds_only_the_states(mixer_type, backend):
    # the torch scan's final state was a view of its (B, T, N, m) float32 output: a prefill's cache kept all of it
    model = tiny_model(mixer_type, scan_backend=backend).to(torch.bfloat16)
    with torch.no_grad():
        cache = getattr(model(torch.randint(3, 96, (2, 40)), use_cache=True), hlru_lm.modeling_hlru._CACHE_FIELD)
    assert cache.nbytes() == 2 * 2 * 3 * 4 * 4  # layers x (B, N, m) float32
    assert sum(layer.state.untyped_storage().nbytes() for layer in cache.layers) == cache.nbytes()


@pytest.mark.parametrize("mixer_type, gate_norm", [("bdlru", "sigmoid_l1"), ("hlru", "relu_l1")])
def test_forward_and_decode_match_a_float64_hand_written_model(mixer_type, gate_norm):
    """The documented architecture written out from the weights: embed; per block x += W_out vec(h) of the recurrence
    on RMSNorm(x) (logits z = x W_g + b_g viewed (N, m, m+1) or (N, m+1); v = x W_v), then x += down(silu(gate(x')) *
    up(x')) with x' = RMSNorm(x); final RMSNorm; LM head. Non-default eps and norm weights, so neither can be dropped;
    the prefill and a token-by-token decode of the cache both match."""

    def phi(z):  # sigma(z) / sum sigma(z); relu(z) / (sum relu(z) + 1e-6)
        r = torch.sigmoid(z) if gate_norm == "sigmoid_l1" else torch.relu(z)
        return r / (r.sum(-1, keepdim=True) + (1e-6 if gate_norm == "relu_l1" else 0.0))

    model = tiny_model(mixer_type, block_size=2, gate_norm=gate_norm, rms_norm_eps=0.25).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("logit_proj.bias"):
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    ids = torch.randint(3, 96, (2, 7), generator=g)
    n, m = model.config.num_blocks, model.config.block_size

    def rms(x, norm):
        return norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 0.25)

    x = model.model.embed_tokens.weight[ids]
    for layer in model.model.layers:
        mix, xn = layer.mixer, rms(x, layer.mixer_norm)
        z, v = mix.logit_proj.weight @ xn[..., None], mix.v_proj.weight @ xn[..., None]
        z, v = z[..., 0] + mix.logit_proj.bias, v[..., 0]
        state, outs = torch.zeros(2, n, m, dtype=torch.float64), []
        for t in range(ids.shape[1]):
            if mixer_type == "bdlru":  # h = A h + a0 * v with [A | a0] = phi(z) row by row
                p = phi(z[:, t].view(2, n, m, m + 1))
                state = (p[..., :m] * state[:, :, None, :]).sum(-1) + p[..., m] * v[:, t].view(2, n, m)
            else:  # x_t = sum_k P[k-1] x_{t-k} + P[m] v_t; the state (x_t, ..., x_{t-m+1}) all goes to W_out
                p = phi(z[:, t].view(2, n, m + 1))
                new = (p[..., :m] * state).sum(-1) + p[..., m] * v[:, t]
                state = torch.cat([new[..., None], state[..., :-1]], -1)
            outs.append(state.reshape(2, n * m))
        x = x + torch.stack(outs, 1) @ mix.out_proj.weight.T
        xn, mlp = rms(x, layer.mlp_norm), layer.mlp
        x = (
            x
            + (torch.nn.functional.silu(xn @ mlp.gate_proj.weight.T) * (xn @ mlp.up_proj.weight.T))
            @ mlp.down_proj.weight.T
        )
    ref = rms(x, model.model.norm) @ model.lm_head.weight.T

    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref, rtol=1e-9, atol=1e-10)
        out = model(ids[:, :3], use_cache=True)
        cache = getattr(out, hlru_lm.modeling_hlru._CACHE_FIELD)
        steps = [model(ids[:, t : t + 1], cache=cache, use_cache=True).logits for t in range(3, 7)]
    torch.testing.assert_close(torch.cat([out.logits, *steps], 1), ref, rtol=1e-9, atol=1e-10)
