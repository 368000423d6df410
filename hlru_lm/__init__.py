"""hlru-lm: Hugging Face compatible BD-LRU / H-LRU language models.

Importing the package registers `model_type="hlru"` with AutoConfig, AutoModel and AutoModelForCausalLM.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_hlru import HLRUConfig
from .modeling_hlru import HLRUCache, HLRUForCausalLM, HLRUModel, HLRUPreTrainedModel

__version__ = "0.1.0"
__all__ = ["HLRUCache", "HLRUConfig", "HLRUForCausalLM", "HLRUModel", "HLRUPreTrainedModel"]

AutoConfig.register("hlru", HLRUConfig, exist_ok=True)
AutoModel.register(HLRUConfig, HLRUModel, exist_ok=True)
AutoModelForCausalLM.register(HLRUConfig, HLRUForCausalLM, exist_ok=True)
