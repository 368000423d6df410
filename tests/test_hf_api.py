"""The transformers API surface beyond the basics: loading options, forward arguments, generate() features, heads."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import hlru_lm.modeling_hlru as mh

from .conftest import tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    path = tmp_path_factory.mktemp("hf_api") / "model"
    model.save_pretrained(path, max_shard_size="20KB")  # several shards and an index
    return model, path


@pytest.mark.parametrize(
    "override",
    [dict(gate_norm="bad"), dict(num_hidden_layers=0), dict(rms_norm_eps=float("nan")), dict(use_cache="yes")],
)
def test_config_overrides_at_load_are_validated(saved, override):
    # from_pretrained / AutoConfig set keyword overrides after the config's own checks ran
    _, path = saved
    (field,) = override
    with pytest.raises(ValueError, match=field):
        AutoConfig.from_pretrained(path, **override)
    with pytest.raises(ValueError, match=field):
        AutoModelForCausalLM.from_pretrained(path, **override)


def test_sharded_checkpoint_loads_bit_exact_with_overrides(saved):
    model, path = saved
    assert len(list(path.glob("model-*.safetensors"))) > 1
    ids = torch.randint(3, 96, (2, 5))
    for kwargs in (dict(), dict(trust_remote_code=True), dict(device_map="cpu", low_cpu_mem_usage=True)):
        loaded = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        assert torch.equal(loaded(ids).logits, model(ids).logits), kwargs
    one = AutoModelForCausalLM.from_pretrained(path, num_hidden_layers=1)
    assert one.config.num_hidden_layers == len(one.model.layers) == 1
    assert torch.equal(one.model.layers[0].mixer.v_proj.weight, model.model.layers[0].mixer.v_proj.weight)


def _left_padded(lengths: tuple[int, ...], width: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    rows = [torch.randint(3, 96, (1, n)) for n in lengths]
    ids = torch.cat([torch.cat([torch.zeros(1, width - r.shape[1], dtype=torch.long), r], 1) for r in rows])
    mask = (torch.arange(width) >= width - torch.tensor(lengths)[:, None]).long()
    return ids, mask, rows


@pytest.mark.parametrize("mixer_type,graphs", [("bdlru", False), ("hlru", False), ("bdlru", True)])
@torch.no_grad()
def test_one_token_chunks_of_a_left_padded_prompt_skip_the_padding(mixer_type, graphs, monkeypatch):
    # a one-token forward was never masked: fed token by token, the padding went into the state (on CUDA through the
    # decode step's graph, run here on CPU)
    monkeypatch.setattr(mh, "_graphs_supported", lambda device: graphs)
    model = tiny_model(mixer_type)
    ids, mask, _ = _left_padded((3, 6), 6)
    full = model(ids, attention_mask=mask, use_cache=True)
    cache, logits = None, []
    for t in range(6):
        out = model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        logits.append(out.logits)
    real = mask.bool()
    torch.testing.assert_close(torch.cat(logits, 1)[real], full.logits[real])
    full_cache = getattr(full, "cache", None) or full.past_key_values
    for a, b in zip(cache.layers, full_cache.layers, strict=True):
        torch.testing.assert_close(a.state, b.state)
    with pytest.raises(ValueError, match="right padding"):  # a padded token after real ones
        model(ids[:, :1], attention_mask=torch.cat([mask, torch.zeros(2, 1, dtype=torch.long)], 1), cache=cache)


@pytest.mark.parametrize("chunk", [1, 4])
def test_prefill_chunk_size_gives_the_unchunked_result(chunk):
    # generate() only creates the cache chunked prefill needs for attention models: it was a ValueError
    model = tiny_model("hlru")
    model.generation_config.pad_token_id = 0
    ids, mask, _ = _left_padded((3, 7), 7)
    kwargs = dict(max_new_tokens=4, do_sample=False, output_logits=True, return_dict_in_generate=True)
    for extra in (dict(), dict(num_beams=3, num_return_sequences=2)):
        ref = model.generate(ids, attention_mask=mask, **kwargs, **extra)
        out = model.generate(ids, attention_mask=mask, prefill_chunk_size=chunk, **kwargs, **extra)
        assert torch.equal(out.sequences, ref.sequences), extra
        torch.testing.assert_close(torch.stack(out.logits), torch.stack(ref.logits))
