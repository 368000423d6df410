"""The transformers API surface beyond the basics: loading options, forward arguments, generate() features, heads."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from .conftest import tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    path = tmp_path_factory.mktemp("hf_api") / "model"
    model.save_pretrained(path, max_shard_size="20KB")  # several shards and an index
    return model, path


@pytest.mark.parametrize(
    "override", [dict(gate_norm="bad"), dict(num_hidden_layers=0), dict(rms_norm_eps=float("nan"))]
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
