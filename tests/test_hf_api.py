"""The transformers API surface beyond the basics: loading options, forward arguments, generate() features, heads."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import hlru_lm.modeling_hlru as mh

from .conftest import tiny_config, tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    path = tmp_path_factory.mktemp("hf_api") / "model"
    model.save_pretrained(path, max_shard_size="20KB")  # several shards and an index
    return model, path


@pytest.mark.parametrize(
    "override",
    [
        dict(gate_norm="bad"),
        dict(num_hidden_layers=0),
        dict(rms_norm_eps=float("nan")),
        dict(use_cache="yes"),
        dict(gate_nrom="softmax"),  # a typo: AutoConfig dropped it silently
    ],
)
def test_config_overrides_at_load_are_validated(saved, override):
    # from_pretrained / AutoConfig set keyword overrides after the config's own checks ran
    _, path = saved
    (field,) = override
    field = field.replace("nrom", "norm")  # the typo's error names the field it resembles
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


def test_decode_steps_of_generate_carry_no_mask(monkeypatch):
    # generated tokens are real: masking them would cost a GPU sync per token; the prompt keeps its mask
    model = tiny_model()
    seen = []
    forward = type(model).forward
    monkeypatch.setattr(
        type(model), "forward", lambda self, *a, **k: seen.append(k.get("attention_mask")) or forward(self, *a, **k)
    )
    ids, mask, _ = _left_padded((2, 5), 5)
    model.generate(ids, attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert len(seen) == 3 and torch.equal(seen[0], mask) and seen[1] is None and seen[2] is None


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


def test_forward_arguments_follow_transformers():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 7))
    out = model(ids, labels=ids)
    as_tuple = model(ids, labels=ids, return_dict=False)  # (loss, logits, cache) as CausalLMOutputWithPast orders them
    assert len(as_tuple) == 3 and torch.equal(as_tuple[0], out.loss) and torch.equal(as_tuple[1], out.logits)
    assert torch.equal(model(ids, logits_to_keep=2).logits, model(ids).logits[:, -2:])
    assert torch.equal(model(ids, logits_to_keep=torch.tensor([0, 4])).logits, model(ids).logits[:, [0, 4]])
    # Trainer's gradient accumulation: the summed loss over num_items_in_batch, in both loss paths
    for skip_logits in (False, True):
        loss = model(ids, labels=ids, num_items_in_batch=torch.tensor(30), skip_logits=skip_logits).loss
        torch.testing.assert_close(loss, out.loss * 12 / 30)
    # ignored like transformers' Mamba2 (no attention to return); an all-ones mask and counting positions change nothing
    same = model(
        ids, output_attentions=True, attention_mask=torch.ones_like(ids), position_ids=torch.arange(3, 10)[None]
    )
    assert torch.equal(same.logits, out.logits)


def test_generate_scores_logits_and_beam_scores_equal_the_forward():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 5))
    out = model.generate(ids, max_new_tokens=4, do_sample=False, output_logits=True, return_dict_in_generate=True)
    full = model(out.sequences[:, :-1]).logits[:, -4:]
    torch.testing.assert_close(torch.stack(out.logits, 1), full)
    beams = model.generate(
        ids,
        max_new_tokens=4,
        num_beams=3,
        num_return_sequences=2,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    seqs = beams.sequences
    logp = torch.log_softmax(model(seqs[:, :-1]).logits.double(), -1)[:, -4:]
    summed = logp.gather(-1, seqs[:, -4:, None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(beams.sequences_scores.double(), summed, rtol=0, atol=1e-5)
    eos = [int(out.sequences[0, 6]), int(out.sequences[1, 7])]  # each row stops at its own token of the list
    stopped = model.generate(ids, max_new_tokens=4, do_sample=False, eos_token_id=eos, pad_token_id=0)
    assert stopped[0, 7:].tolist() == [0] and torch.equal(stopped[1], out.sequences[1, :8])


@pytest.mark.parametrize("tied", [False, True])
def test_resize_token_embeddings_then_generate_and_reload(tmp_path, tied):
    model = tiny_model(tie_word_embeddings=tied)
    model.resize_token_embeddings(120, mean_resizing=False)
    assert model.config.vocab_size == 120 and model.lm_head.weight.shape == (120, 32)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    ids = torch.randint(100, 120, (1, 4))  # new tokens
    assert model.generate(ids, max_new_tokens=2, do_sample=False).shape == (1, 6)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.vocab_size == 120 and torch.equal(loaded(ids).logits, model(ids).logits)


def test_sequence_classification_pools_the_last_real_token():
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config(num_labels=3)).eval()
    a, b = torch.randint(3, 96, (1, 4)), torch.randint(3, 96, (1, 6))
    alone = torch.cat([model(a).logits, model(b).logits])
    pad = torch.zeros(1, 2, dtype=torch.long)
    right = torch.cat([torch.cat([a, pad], 1), b])
    left = torch.cat([torch.cat([pad, a], 1), b])
    for ids in (right, left):
        torch.testing.assert_close(model(ids, attention_mask=ids.ne(0).long()).logits, alone)
    labels = torch.tensor([0, 2])
    loss = model(right, attention_mask=right.ne(0).long(), labels=labels).loss
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(alone, labels))
    model.config.problem_type = "multi_label_classification"
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    loss = model(left, attention_mask=left.ne(0).long(), labels=targets).loss
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(alone, targets))
