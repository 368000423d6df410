"""Bad model inputs and config values get a clear error naming the problem (no ZeroDivisionError, no silently
ignored mask or keyword)."""

import pytest
import torch

import hlru_lm
from hlru_lm.ops import bdlru_scan, hlru_scan

from .conftest import tiny_config, tiny_model


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m(torch.zeros(2, 0, dtype=torch.long)),
        lambda m: m.generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2),
        lambda m: m.generate(torch.zeros(2, 0, dtype=torch.long), max_new_tokens=2),
        lambda m: m(torch.zeros(1, 0, dtype=torch.long), past_key_values=m(torch.ones(1, 3, dtype=torch.long))[1]),
        lambda m: m(inputs_embeds=torch.zeros(1, 0, 32)),
    ],
    ids=["forward", "generate", "generate_batch", "continue_cache", "inputs_embeds"],
)
def test_empty_sequences_are_refused(call):
    with pytest.raises(ValueError, match="at least one token"):
        call(tiny_model())


def test_empty_scans_are_refused():
    with pytest.raises(ValueError, match="empty axis"):
        bdlru_scan(torch.zeros(1, 0, 2, 2, 3), torch.zeros(1, 0, 2, 2))
    with pytest.raises(ValueError, match="empty axis"):
        hlru_scan(torch.zeros(1, 0, 2, 3), torch.zeros(1, 0, 2))


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(1, 5), r"does not match the input: expected \(2, 5\)"),  # would broadcast to every row
        (torch.ones(2, 4), r"does not match the input"),
        (torch.ones(2, 1, 5, 5), "must be a 2-D"),
    ],
    ids=["one_row_for_two", "wrong_length", "4d"],
)
def test_bad_masks_are_refused(mask, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(torch.ones(2, 5, dtype=torch.long), attention_mask=mask)


def test_padding_between_real_tokens_is_refused():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="padding between real tokens"):  # middle padding, no cache
        model(ids, attention_mask=torch.tensor([[1, 1, 0, 0, 1, 1, 1, 1], [1] * 8]))
    cache = model(ids[:, :4], use_cache=True)[1]
    chunk_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])  # a left-padded chunk after a cache of real tokens
    for mask in (chunk_mask, torch.cat([torch.ones(2, 4, dtype=torch.long), chunk_mask], 1)):
        with pytest.raises(ValueError, match="padding between real tokens"):
            model(ids[:, 4:], attention_mask=mask, past_key_values=cache)
    assert cache.get_seq_length() == 4  # nothing absorbed
    # left padding of the whole sequence, continued: allowed (the state stays zero over the padding)
    left = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    full = model(ids, attention_mask=left).logits
    cache = model(ids[:, :4], attention_mask=left[:, :4], use_cache=True)[1]
    rest = model(ids[:, 4:], attention_mask=left, past_key_values=cache).logits
    assert torch.allclose(rest, full[:, 4:], atol=1e-5)


def test_caches_of_other_models_or_batches_are_refused():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 5), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="3 layers but the model has 2"):
        model(ids, past_key_values=tiny_model(num_hidden_layers=3)(ids, use_cache=True)[1])
    with pytest.raises(ValueError, match="another model or for another batch"):
        model(ids, past_key_values=model(ids[:1], use_cache=True)[1])
    with pytest.raises(ValueError, match="another model or for another batch"):
        model(ids, past_key_values=tiny_model(block_size=2, num_blocks=6)(ids, use_cache=True)[1])


def test_a_cache_cannot_drop_absorbed_tokens():
    cache = tiny_model()(torch.randint(3, 96, (1, 5)), use_cache=True)[1]
    state = cache.layers[0].state.clone()
    cache.crop(0)  # nothing to drop: fine
    with pytest.raises(ValueError, match="cannot drop tokens"):
        cache.crop(2)
    assert cache.get_seq_length() == 5 and torch.equal(cache.layers[0].state, state)


def test_unbatched_input_is_named():
    with pytest.raises(ValueError, match=r"shape \(batch, length\), got shape \(5,\).*unsqueeze"):
        tiny_model()(torch.ones(5, dtype=torch.long))


def test_right_padding_never_reaches_the_cache():
    model = tiny_model()
    ids = torch.randint(3, 96, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with pytest.raises(ValueError, match="right padding"):
        model(ids, attention_mask=mask, use_cache=True)
    out = model(ids, attention_mask=mask)  # default use_cache: exact outputs, no (wrong) cache returned
    assert out.cache is None if hasattr(out, "cache") else out.past_key_values is None
    alone = model(ids[:1, :3]).logits
    assert torch.allclose(out.logits[:1, :3], alone, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gate_nrom="softmax"), "did you mean 'gate_norm'"),
        (dict(hidden_size="big"), "hidden_size"),
        (dict(block_size=2.0), "block_size"),
        (dict(initializer_range=float("inf")), "initializer_range must be a finite number"),
        (dict(rms_norm_eps=float("inf")), "rms_norm_eps must be a finite number"),
        (dict(rms_norm_eps=float("nan")), "rms_norm_eps must be a finite number"),
    ],
)
def test_bad_config_values_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_unknown_config_keyword_is_named(caplog):
    from transformers.utils import logging

    logging.enable_propagation()
    try:
        config = tiny_config(my_custom_flag=1)
    finally:
        logging.disable_propagation()
    assert config.my_custom_flag == 1
    assert "my_custom_flag" in caplog.text
    assert isinstance(hlru_lm.HLRUConfig(num_labels=3), hlru_lm.HLRUConfig)  # transformers' own keywords pass
