"""hlru-lm: Hugging Face compatible BD-LRU / H-LRU language models.

Importing the package registers `model_type="hlru"` with AutoConfig, AutoModel, AutoModelForCausalLM and
AutoModelForSequenceClassification.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from .configuration_hlru import HLRUConfig
from .modeling_hlru import (
    HLRUCache,
    HLRUForCausalLM,
    HLRUForSequenceClassification,
    HLRUModel,
    HLRUPreTrainedModel,
)

__version__ = "0.1.0"
# Default LoRA targets (peft.LoraConfig(target_modules=...)): the mixer's gate logits W_g, input W_v and output
# W_out, and the SwiGLU's three projections.
LORA_TARGET_MODULES = ("logit_proj", "v_proj", "out_proj", "gate_proj", "up_proj", "down_proj")
__all__ = [
    "HLRUCache",
    "HLRUConfig",
    "HLRUForCausalLM",
    "HLRUForSequenceClassification",
    "HLRUModel",
    "HLRUPreTrainedModel",
    "LORA_TARGET_MODULES",
]

AutoConfig.register("hlru", HLRUConfig, exist_ok=True)
AutoModel.register(HLRUConfig, HLRUModel, exist_ok=True)
AutoModelForCausalLM.register(HLRUConfig, HLRUForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(HLRUConfig, HLRUForSequenceClassification, exist_ok=True)

# save_pretrained copies configuration_hlru.py, modeling_hlru.py, ops.py and loss.py next to the weights and writes
# auto_map, so `from_pretrained(dir, trust_remote_code=True)` works where hlru-lm is not installed (torch path).
HLRUConfig.register_for_auto_class()
HLRUModel.register_for_auto_class("AutoModel")
HLRUForCausalLM.register_for_auto_class("AutoModelForCausalLM")
HLRUForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
