"""HLRUConfig: the architecture of a BD-LRU / H-LRU causal language model, as data."""

import difflib
import functools
import math

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from transformers import PreTrainedConfig
from transformers.utils import logging

from .ops import BACKENDS, GATE_NORMS

MIXER_TYPES = ("bdlru", "hlru")
logger = logging.get_logger(__name__)


@strict(accept_kwargs=True)
class HLRUConfig(PreTrainedConfig):
    r"""
    Configuration of [`HLRUModel`] / [`HLRUForCausalLM`] (Dubinin, Orvieto & Effenberger, 2026).

    Each layer is `x += Mixer(RMSNorm(x)); x += SwiGLU(RMSNorm(x))`; the mixer is a BD-LRU (`num_blocks` dense blocks of
    size `block_size`) or an H-LRU (`num_blocks` channels of order `block_size`). The recurrent state of a layer holds
    `num_blocks * block_size` numbers whatever the sequence length.

    Args:
        vocab_size: vocabulary size.
        hidden_size: model width d.
        num_hidden_layers: number of blocks.
        intermediate_size: SwiGLU hidden width; None gives the paper's 8/3 d rounded up to a multiple of 256.
        mixer_type: "bdlru" (block-diagonal) or "hlru" (higher-order).
        block_size: m, the block size (BD-LRU) or recurrence order (H-LRU); m = 1 is the diagonal LRU.
        num_blocks: N, the number of blocks / channels; None gives hidden_size // block_size.
        gate_norm: row normalisation of the gates: "softmax", "sigmoid_l1", "relu_l1" or "none".
        scan_backend: backend of the scans ("auto", "torch", "naive", "triton"); see `hlru_lm.ops`.
        rms_norm_eps: epsilon of the RMSNorms.
        initializer_range: std of the N(0, std) weight init (biases start at zero).
        max_position_embeddings: the training context length; the model itself has no positional limit, tools such as
            lm-eval use this as their window.
        fuse_cross_entropy: True: in training mode, a forward with `labels` computes the loss from the last hidden
            states chunk by chunk (`hlru_lm.loss`) and never holds the whole batch's logits, which then come back as
            None (as with Liger-Kernel; tools that read the training logits, e.g. TRL's token accuracy, need False).
            False (default): logits as usual. A forward's `skip_logits=` argument decides per call.
        decode_cuda_graph: on CUDA, run each single-token step of `generate()` (eval mode, no grad) as one replayed
            CUDA graph of the whole model (embedding, every block, final norm, lm_head), captured once per batch size
            and dtype. Same outputs as the eager step; False runs every step eagerly (one launch per op).
    """

    model_type = "hlru"

    vocab_size: int = 32000
    hidden_size: int = 768
    num_hidden_layers: int = 12
    intermediate_size: int | None = None
    mixer_type: str = "bdlru"
    block_size: int = 4
    num_blocks: int | None = None
    gate_norm: str = "softmax"
    scan_backend: str = "auto"
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    max_position_embeddings: int = 2048
    use_cache: bool = True
    fuse_cross_entropy: bool = False
    decode_cuda_graph: bool = True
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        self._check_unknown_keywords(kwargs)
        if self.intermediate_size is None and isinstance(self.hidden_size, int):
            self.intermediate_size = -(-8 * self.hidden_size // 3 // 256) * 256
        if self.num_blocks is None and isinstance(self.hidden_size, int) and isinstance(self.block_size, int):
            self.num_blocks = max(self.hidden_size // max(self.block_size, 1), 1)
        self._check_fields()  # before the parent's checks, so bad values surface as ValueError naming the field
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # from_pretrained(..., gate_norm=...) and AutoConfig overrides are set after __init__ has validated the saved
        # values: check them too, before a model is built from them (a wrong type as ValueError, as in __init__)
        try:
            result = super().from_dict(config_dict, **kwargs)
        except StrictDataclassError as e:
            raise ValueError(f"HLRUConfig: {e}") from None
        config = result[0] if isinstance(result, tuple) else result
        config._check_fields()
        for key in kwargs:  # an override no field took: a misspelt one (gate_nrom=) would be dropped silently
            close = difflib.get_close_matches(key, list(cls.__dataclass_fields__), n=1, cutoff=0.8)
            if close and not hasattr(config, key):
                raise ValueError(f"unknown HLRUConfig keyword {key!r}; did you mean {close[0]!r}?")
        return result

    def _check_fields(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
            "block_size",
            "num_blocks",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mixer_type not in MIXER_TYPES:
            raise ValueError(f"mixer_type must be one of {MIXER_TYPES}, got {self.mixer_type!r}")
        if self.gate_norm not in GATE_NORMS:
            raise ValueError(f"gate_norm must be one of {GATE_NORMS}, got {self.gate_norm!r}")
        if self.scan_backend not in BACKENDS:
            raise ValueError(f"scan_backend must be one of {BACKENDS}, got {self.scan_backend!r}")
        if not isinstance(self.decode_cuda_graph, bool):
            raise ValueError(f"decode_cuda_graph must be True or False, got {self.decode_cuda_graph!r}")
        for name in ("rms_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

    def _check_unknown_keywords(self, kwargs: dict) -> None:
        """A keyword close to one of our fields is a typo (`gate_nrom=`): refused. Other keywords that no config field
        knows are kept (transformers passes its own through here) with a warning naming them."""
        ours = list(self.__dataclass_fields__)
        for key in kwargs:
            if key in _KNOWN_EXTRA_KEYWORDS or key.startswith("_"):
                continue
            close = difflib.get_close_matches(key, ours, n=1, cutoff=0.8)
            if close:
                raise ValueError(f"unknown HLRUConfig keyword {key!r}; did you mean {close[0]!r}?")
            logger.warning(f"HLRUConfig: unknown keyword {key!r} is kept as an attribute but used by nothing")

    @property
    def state_size(self) -> int:
        """Numbers of recurrent state per layer (N * m)."""
        return self.num_blocks * self.block_size


# keywords transformers itself passes to configs (saved files, from_pretrained, generation, heads)
_KNOWN_EXTRA_KEYWORDS = frozenset(vars(PreTrainedConfig())) | {
    "architectures",
    "attn_implementation",
    "auto_map",
    "decoder_start_token_id",
    "dtype",
    "model_type",
    "name_or_path",
    "num_labels",
    "output_attentions",
    "return_dict",
    "sep_token_id",
    "torch_dtype",
    "transformers_version",
}


def _value_errors(init):
    """The strict dataclass reports a field of the wrong type with its own exception class; users of HF configs
    catch ValueError, so re-raise it as one (naming the field)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs) -> None:
        try:
            init(self, *args, **kwargs)
        except StrictDataclassError as e:
            raise ValueError(f"HLRUConfig: {e}") from None

    return __init__


HLRUConfig.__init__ = _value_errors(HLRUConfig.__init__)
