"""generate(): cached == uncached, left padding, sampling, beams, continuation, streaming, pipeline, constant memory."""

import copy
import threading

import pytest
import torch
from transformers import TextIteratorStreamer, pipeline

from hlru_lm.modeling_hlru import _CACHE_FIELD
from tests.conftest import tiny_model

MIXERS = ["bdlru", "hlru"]


def _cache(out):
    return getattr(out, _CACHE_FIELD)  # generate() output names the cache like the model outputs


def _gen(model, ids, **kw):
    kw.setdefault("do_sample", False)
    kw.setdefault("pad_token_id", 0)
    return model.generate(ids, return_dict_in_generate=True, output_scores=True, **kw)


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_greedy_cached_equals_uncached(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (2, 11))
    a = _gen(model, ids, max_new_tokens=12)
    b = _gen(model, ids, max_new_tokens=12, use_cache=False)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(a.scores), torch.stack(b.scores), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_left_padding_does_not_change_the_result(mixer_type):
    model = tiny_model(mixer_type)
    short, long = torch.randint(3, 96, (1, 5)), torch.randint(3, 96, (1, 9))
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.cat([torch.cat([torch.zeros(1, 4), torch.ones(1, 5)], 1), torch.ones(1, 9)]).long()
    for use_cache in (True, False):
        both = _gen(model, batch, attention_mask=mask, max_new_tokens=8, use_cache=use_cache)
        for row, single in enumerate((short, long)):
            alone = _gen(model, single, max_new_tokens=8)
            assert torch.equal(both.sequences[row, 9:], alone.sequences[0, single.shape[1] :])
            torch.testing.assert_close(
                torch.stack([s[row] for s in both.scores]),
                torch.stack([s[0] for s in alone.scores]),
                rtol=1e-4,
                atol=1e-5,
            )


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_sampling_cached_equals_uncached(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (3, 6))
    outs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outs.append(
            model.generate(ids, do_sample=True, top_k=20, max_new_tokens=10, use_cache=use_cache, pad_token_id=0)
        )
    assert torch.equal(*outs)


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_beam_search_num_return_sequences_and_a_given_cache(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (2, 7))
    kw = dict(num_beams=3, num_return_sequences=2, max_new_tokens=6, do_sample=False, pad_token_id=0)
    a = model.generate(ids, **kw)
    b = model.generate(ids, use_cache=False, **kw)
    assert a.shape == (4, 13) and torch.equal(a, b)
    # generate() expands its inputs for beams but not a cache it is given: an unexpanded one is refused by name,
    # one expanded with batch_repeat_interleave continues exactly
    with torch.no_grad():
        cache = model(ids[:, :-1], use_cache=True)[1]
    with pytest.raises(ValueError, match="batch_repeat_interleave"):
        model.generate(ids, **{_CACHE_FIELD: copy.deepcopy(cache)}, **kw)
    cache.batch_repeat_interleave(3)
    assert torch.equal(model.generate(ids, **{_CACHE_FIELD: cache}, **kw), a)


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_continue_from_returned_cache(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (2, 8))
    full = _gen(model, ids, max_new_tokens=10)
    first = _gen(model, ids, max_new_tokens=4)
    cache = _cache(first)
    assert cache.get_seq_length() == 11  # the last generated token has not been fed yet
    cont = _gen(model, first.sequences, max_new_tokens=6, **{_CACHE_FIELD: cache})
    assert torch.equal(cont.sequences, full.sequences)
    # the same continuation with the prompt given as embeddings (generate returns only the new tokens then)
    first = _gen(model, ids, max_new_tokens=4)
    embeds = model.get_input_embeddings()(first.sequences)
    cont = model.generate(
        inputs_embeds=embeds, max_new_tokens=6, do_sample=False, pad_token_id=0, **{_CACHE_FIELD: _cache(first)}
    )
    assert torch.equal(cont, full.sequences[:, 12:])


def test_prepare_inputs_feeds_only_the_tokens_the_cache_has_not_absorbed():
    # without generate()'s next_sequence_length (custom decoding loops): the cache's token count decides
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 7))
    cache = model(ids[:, :5], use_cache=True)[1]
    assert torch.equal(model.prepare_inputs_for_generation(ids, cache=cache)["input_ids"], ids[:, 5:])
    assert torch.equal(model.prepare_inputs_for_generation(ids, past_key_values=cache)["input_ids"], ids[:, 5:])
    assert torch.equal(model.prepare_inputs_for_generation(ids)["input_ids"], ids)


@pytest.mark.parametrize("mixer_type", MIXERS)
def test_cache_memory_is_constant_in_length(mixer_type):
    model = tiny_model(mixer_type)
    ids = torch.randint(3, 96, (2, 8))
    sizes = {n: _cache(_gen(model, ids, max_new_tokens=n, min_new_tokens=n)).nbytes() for n in (2, 40)}
    cfg = model.config
    assert sizes[2] == sizes[40] == cfg.num_hidden_layers * 2 * cfg.num_blocks * cfg.block_size * 4


def test_text_iterator_streamer(tokenizer):
    model = tiny_model()
    enc = tokenizer(["the quick brown"], return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=60)
    kwargs = dict(**enc, max_new_tokens=12, min_new_tokens=12, do_sample=False, streamer=streamer)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=model.generate(**kwargs)))
    worker.start()
    pieces = list(streamer)
    worker.join()
    new_text = tokenizer.decode(result["out"][0, enc.input_ids.shape[1] :], skip_special_tokens=True)
    assert len(pieces) >= 2 and "".join(pieces).strip() == new_text.strip()


def test_text_generation_pipeline(tokenizer):
    pipe = pipeline("text-generation", model=tiny_model(), tokenizer=tokenizer)
    out = pipe("the quick", max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"].startswith("the quick")
