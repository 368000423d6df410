"""BD-LRU / H-LRU causal language model (Dubinin, Orvieto & Effenberger, 2026), in one file.

Block: x += Mixer(RMSNorm(x)); x += SwiGLU(RMSNorm(x)). Mixer: z = x W_g + b_g, v = x W_v, y = vec(h) W_out, with h the
BD-LRU or H-LRU recurrence of `hlru_lm.ops`. Generation keeps only each layer's (B, N, m) float32 state in `HLRUCache`.
On CUDA, single-token decode steps replay a captured CUDA graph of the whole model (`_DecodeGraph`).
"""

import threading
import weakref

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_layers import GenericForSequenceClassification, GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_hlru import HLRUConfig
from .loss import linear_cross_entropy
from .ops import bdlru_scan, bdlru_step, hlru_scan, hlru_step, state_dtype


class HLRUStateLayer:
    """One layer's recurrent state (B, N, m) in float32 and the number of tokens it has absorbed."""

    is_compileable = False
    is_sliding = False

    def __init__(self) -> None:
        self.state: torch.Tensor | None = None
        self.seen_tokens = 0

    def get_seq_length(self) -> int:
        return self.seen_tokens

    def get_max_length(self) -> int:
        return -1  # no sequence axis: the state has a fixed size

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen_tokens + query_length, 0

    def reset(self) -> None:
        self.state, self.seen_tokens = None, 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.state is not None:
            self.state = self.state.index_select(0, beam_idx.to(self.state.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.state is not None:
            self.state = self.state.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.state is not None:
            self.state = self.state[indices]


class HLRUCache(Cache):
    """Recurrent cache: per layer a fixed-size (B, N, m) float32 state, so memory does not grow with length."""

    is_compileable = False

    def __init__(self, config: HLRUConfig) -> None:
        super().__init__(layers=[HLRUStateLayer() for _ in range(config.num_hidden_layers)])

    @property
    def is_linear(self) -> list[bool]:
        return [True] * len(self.layers)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].get_seq_length() if layer_idx < len(self.layers) else 0

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.layers[layer_idx].get_mask_sizes(query_length)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove:
            raise ValueError("HLRUCache holds a recurrent state and cannot drop tokens it has already absorbed")

    def nbytes(self) -> int:
        """Bytes held by the states (constant in the generated length)."""
        return sum(layer.state.nbytes for layer in self.layers if layer.state is not None)


# transformers >= 5.24 names the cache field `cache`, earlier 5.x `past_key_values`; generate() reads that field.
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class HLRURMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype and not torch.compiler.is_compiling():
            # eager: torch's fused rms_norm, one kernel instead of eight (a decode step runs 25 norms); it rounds
            # x * rstd * weight once. Compiled: the formula below, which inductor fuses with its neighbours.
            return nn.functional.rms_norm(x, self.weight.shape, self.weight, self.eps)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # float64 stays float64
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class HLRUSwiGLU(nn.Module):
    def __init__(self, config: HLRUConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class HLRUMixer(nn.Module):
    """BD-LRU (N blocks of size m, logits (N, m, m+1)) or H-LRU (N channels of order m, logits (N, m+1))."""

    def __init__(self, config: HLRUConfig) -> None:
        super().__init__()
        n, m, d = config.num_blocks, config.block_size, config.hidden_size
        self.num_blocks, self.block_size = n, m
        self.is_block_diagonal = config.mixer_type == "bdlru"
        self.gate_norm, self.backend = config.gate_norm, config.scan_backend
        gate_dim, v_dim = (n * m * (m + 1), n * m) if self.is_block_diagonal else (n * (m + 1), n)
        # W_g, b_g: the gate logits z (named apart from the SwiGLU's gate_proj, so LoRA targets can tell them apart)
        self.logit_proj = nn.Linear(d, gate_dim, bias=True)
        self.v_proj = nn.Linear(d, v_dim, bias=False)  # W_v
        self.out_proj = nn.Linear(n * m, d, bias=False)  # W_out reads all N*m states

    def forward(
        self,
        x: torch.Tensor,
        state: torch.Tensor | None,
        pad_mask: torch.Tensor | None,
        pos_in_doc: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pos_in_doc: (B, T) steps since the current packed document started, or None (see hlru_lm.ops)."""
        bsz, seqlen, _ = x.shape
        n, m = self.num_blocks, self.block_size
        z, v = self.logit_proj(x), self.v_proj(x)
        if pad_mask is not None:  # a zero input at padded positions keeps a zero state at zero
            v = v * pad_mask.unsqueeze(-1).to(v.dtype)
        if self.is_block_diagonal:
            z, v = z.view(bsz, seqlen, n, m, m + 1), v.view(bsz, seqlen, n, m)
            if seqlen == 1 and state is not None and pos_in_doc is None:
                h, state = bdlru_step(z[:, 0], v[:, 0], state, self.gate_norm, self.backend)
                h = h.unsqueeze(1)
            else:
                h, state = bdlru_scan(z, v, state, self.gate_norm, self.backend, pos_in_doc)
        else:
            z, v = z.view(bsz, seqlen, n, m + 1), v.view(bsz, seqlen, n)
            if seqlen == 1 and state is not None and pos_in_doc is None:
                h, state = hlru_step(z[:, 0], v[:, 0], state, self.gate_norm, self.backend)
                h = h.unsqueeze(1)
            else:
                h, state = hlru_scan(z, v, state, self.gate_norm, self.backend, pos_in_doc)
        h = h.reshape(bsz, seqlen, n * m)
        if not torch.is_autocast_enabled(h.device.type):  # under autocast out_proj takes h as it is (bf16)
            h = h.to(x.dtype)
        return self.out_proj(h), state


class HLRUBlock(GradientCheckpointingLayer):
    def __init__(self, config: HLRUConfig) -> None:
        super().__init__()
        self.mixer_norm = HLRURMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mixer = HLRUMixer(config)
        self.mlp_norm = HLRURMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = HLRUSwiGLU(config)

    def forward(
        self,
        x: torch.Tensor,
        state: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
        pos_in_doc: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block on x (B, T, d) from `state` (B, N, m) or None: (new x, new float32 state). A pure function of
        its inputs (the cache is read and written by the caller), so gradient checkpointing recomputes it exactly."""
        h, state = self.mixer(self.mixer_norm(x), state, pad_mask, pos_in_doc)
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), state


class HLRUPreTrainedModel(PreTrainedModel):
    config_class = HLRUConfig
    config: HLRUConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["HLRUBlock"]
    _is_stateful = True
    _can_compile_fullgraph = False

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the model builds its own HLRUCache

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        # every head in auto_map, whichever was saved: the folder loads with any Auto class and trust_remote_code
        self.config.auto_map = {
            "AutoConfig": "configuration_hlru.HLRUConfig",
            "AutoModel": "modeling_hlru.HLRUModel",
            "AutoModelForCausalLM": "modeling_hlru.HLRUForCausalLM",
            "AutoModelForSequenceClassification": "modeling_hlru.HLRUForSequenceClassification",
        }
        super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # checkpoints written before the mixer's W_g was renamed from gate_proj (a name it shared with the SwiGLU)
        kwargs.setdefault("key_mapping", {r"\.mixer\.gate_proj\.": ".mixer.logit_proj."})
        return super().from_pretrained(*args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers' init helpers skip parameters that were loaded from a checkpoint
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, HLRURMSNorm):
            init.ones_(module.weight)


class HLRUModel(HLRUPreTrainedModel):
    def __init__(self, config: HLRUConfig) -> None:
        super().__init__(config)
        # no padding_idx: tokenizers without a pad token pad with EOS, whose embedding must still learn (padded
        # positions never reach the state, their v is zeroed)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([HLRUBlock(config) for _ in range(config.num_hidden_layers)])
        self.norm = HLRURMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        past_key_values: HLRUCache | None = None,
        cache: HLRUCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        """`cache` (transformers >= 5.24) and `past_key_values` (earlier) are two names for the same HLRUCache.

        `position_ids` that restart (HF's padding-free packing: each document counts from 0) reset the recurrent
        state at every document start; positions that just count on are ignored (the model has no positional
        embedding)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        cache = cache if cache is not None else past_key_values
        if cache is not None and not isinstance(cache, HLRUCache):
            raise ValueError(f"the cache must be an HLRUCache, got {type(cache).__name__}")
        asked_for_cache = bool(use_cache) or cache is not None
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if use_cache and cache is None:
            cache = HLRUCache(self.config)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        given = ("input_ids", input_ids) if inputs_embeds is None else ("inputs_embeds", inputs_embeds)
        if x.dim() != 3:
            axes = "(batch, length, hidden)" if inputs_embeds is not None else "(batch, length)"
            raise ValueError(
                f"expected {given[0]} of shape {axes}, got shape {tuple(given[1].shape)} (add the batch axis, e.g. "
                f"{given[0]}.unsqueeze(0))"
            )
        if x.shape[1] == 0:
            raise ValueError(
                f"{given[0]} of shape {tuple(given[1].shape)} has no tokens: the model needs at least one (give "
                "generate() a prompt of at least one token, e.g. the BOS token)"
            )
        seqlen = x.shape[1]
        if cache is not None:
            _check_cache(cache, self.config, x.shape[0])
        past = cache.get_seq_length() if cache is not None else 0
        pad_mask, right_padded = _pad_mask(attention_mask, x.shape[0], seqlen, past)
        if right_padded and use_cache:
            # right padding: the outputs of real tokens are exact, but the final state would absorb the padding
            if asked_for_cache:
                raise ValueError(
                    "attention_mask has padding after a real token (right padding): the cached state would absorb "
                    "the padding. Pad on the left (tokenizer.padding_side = 'left') to build or continue a cache"
                )
            use_cache, cache = False, None
        pos_in_doc = _doc_positions(position_ids, x.shape[0], seqlen, past)
        hidden_states = (x,) if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            x, state = layer(x, layer_cache.state if layer_cache is not None else None, pad_mask, pos_in_doc)
            if layer_cache is not None:
                layer_cache.state = state
            if output_hidden_states:
                hidden_states += (x,)
        x = self.norm(x)
        if output_hidden_states:  # the last entry is the normed output, as in transformers' models
            hidden_states = hidden_states[:-1] + (x,)
        if cache is not None:
            for layer_cache in cache.layers:
                layer_cache.seen_tokens += seqlen
        out = BaseModelOutputWithPast(
            last_hidden_state=x, hidden_states=hidden_states, **{_CACHE_FIELD: cache if use_cache else None}
        )
        return out if return_dict is not False else out.to_tuple()


def _check_cache(cache: HLRUCache, config: HLRUConfig, bsz: int) -> None:
    """Refuse a cache built by another model (layer count, state shape) or for another batch size."""
    if len(cache.layers) != config.num_hidden_layers:
        raise ValueError(
            f"the cache has {len(cache.layers)} layers but the model has {config.num_hidden_layers}: it was built by "
            "another model"
        )
    shape = (bsz, config.num_blocks, config.block_size)
    for i, layer in enumerate(cache.layers):
        if layer.state is not None and tuple(layer.state.shape) != shape:
            raise ValueError(
                f"the cache's layer {i} holds a state of shape {tuple(layer.state.shape)}, but this model and batch "
                f"need (batch, num_blocks, block_size) = {shape}: it was built by another model or for another batch"
                " (generate() with num_beams or num_return_sequences does not expand a cache it is given, as for"
                " transformers' own caches: call cache.batch_repeat_interleave(n) first)"
            )


def _pad_mask(
    attention_mask: torch.Tensor | None, bsz: int, seqlen: int, past: int
) -> tuple[torch.Tensor | None, bool]:
    """(the (B, T) 0/1 mask of the new tokens or None when nothing is masked, whether some row is right-padded).

    Left padding only matters while prefilling (a zero input at padded positions keeps a zero state at zero); right
    padding leaves the real tokens' outputs exact but not the final state. Padding between real tokens (also a
    left-padded chunk after a cache of real tokens) is refused: the gates would still move the state there.
    A single token is masked like a chunk (generate()'s decode steps find ones: it extends the mask with ones; a
    chunked prefill of one token per chunk finds the padding). Masks that cannot be meant for this input are refused
    rather than applied wrongly."""
    if attention_mask is None:
        return None, False
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be a 2-D (batch, length) 0/1 padding mask, got shape {tuple(attention_mask.shape)}"
            " (a recurrent model has no attention: 4-D / custom attention masks cannot be honoured)"
        )
    if attention_mask.shape[0] != bsz or attention_mask.shape[1] not in (seqlen, past + seqlen):
        raise ValueError(
            f"attention_mask of shape {tuple(attention_mask.shape)} does not match the input: expected ({bsz}, "
            f"{seqlen})" + (f" or ({bsz}, {past + seqlen}) (cache + new tokens)" if past else "")
        )
    pad_mask = attention_mask[:, -seqlen:]
    if bool(pad_mask.all()):
        return None, False
    real = attention_mask.ne(0)
    if real.shape[1] == seqlen and past:  # the mask of the new tokens only: the cached ones were real
        real = torch.cat([real.new_ones(bsz, past), real], dim=1)
    after_real = (real.int().cumsum(1) > 0) & ~real  # padding after the row's first real token
    before_real = real.int().flip(1).cumsum(1).flip(1) > 0  # up to the row's last real token
    if bool((after_real & before_real).any()):
        raise ValueError(
            "attention_mask has padding between real tokens (or a left-padded chunk after a cache of real tokens): "
            "a recurrent state cannot skip it. Pad on the left of the whole sequence, before any real token"
        )
    return pad_mask, bool(after_real.any())


def _doc_positions(position_ids: torch.Tensor | None, bsz: int, seqlen: int, past: int = 0) -> torch.Tensor | None:
    """position_ids as steps since each packed document's start when they restart somewhere, else None (no cost).
    After `past` cached tokens, a 0 at the first position starts a document too: the cached state does not enter it."""
    if position_ids is None:
        return None
    if position_ids.dim() != 2 or position_ids.shape[1] != seqlen or position_ids.shape[0] not in (1, bsz):
        raise ValueError(f"position_ids must have shape ({bsz}, {seqlen}), got {tuple(position_ids.shape)}")
    position_ids = position_ids.expand(bsz, seqlen)
    restarts = position_ids[:, 1:] != position_ids[:, :-1] + 1
    if past:
        restarts = torch.cat([position_ids[:, :1] == 0, restarts], 1)
    if restarts.numel() == 0 or not bool(restarts.any()):
        return None
    if bool((position_ids < 0).any()):
        raise ValueError("position_ids must be >= 0")
    return position_ids


def _graphs_supported(device: torch.device) -> bool:
    """Whether decode steps on `device` are captured as CUDA graphs (tests widen this to run the runner on CPU)."""
    return device.type == "cuda"


class _DecodeGraph:
    """One decode step of the whole model (HLRUForCausalLM._decode_step) for one (batch size, dtype, device),
    captured as a CUDA graph over static buffers: the input ids (B, 1), one state (B, N, m) per layer, the logits.

    The cache that decodes through the graph holds the state buffers themselves (its owner), so a step copies only
    the new ids in. Another cache that takes the graph first gives the owner its own copies of the states, so two
    caches never share memory. Off CUDA (tests only) the step runs eagerly over the same buffers."""

    def __init__(
        self, model: "HLRUForCausalLM", bsz: int, state_shape: tuple[int, int], sdtype: torch.dtype, compiled: bool
    ) -> None:
        device = model.lm_head.weight.device
        self.step_fn = _compiled_decode_step() if compiled else type(model)._decode_step
        with torch.inference_mode(False):  # normal tensors: updated in place whether or not inference mode is on
            self.ids = torch.zeros(bsz, 1, dtype=torch.long, device=device)
            self.states = [
                torch.zeros(bsz, *state_shape, dtype=sdtype, device=device)
                for _ in range(model.config.num_hidden_layers)
            ]
        self.owner: weakref.ref | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None
        if device.type == "cuda":
            self._capture(model, device)

    def _run(self, model: "HLRUForCausalLM") -> torch.Tensor:
        logits, new_states = self.step_fn(model, self.ids, self.states)
        for buffer, new in zip(self.states, new_states, strict=True):
            buffer.copy_(new)
        return logits

    def _capture(self, model: "HLRUForCausalLM", device: torch.device) -> None:
        with torch.cuda.device(device):
            # warm-up on a side stream (Triton compiles, cuBLAS picks its kernels), then capture; the warm-up steps
            # only touch this graph's own buffers, which every cache's states are copied into before a replay
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._run(model)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.logits = self._run(model)
            self.graph = graph

    def owns(self, cache: HLRUCache) -> bool:
        return (
            self.owner is not None
            and self.owner() is cache
            and all(layer.state is buffer for layer, buffer in zip(cache.layers, self.states, strict=True))
        )

    def adopt(self, cache: HLRUCache) -> None:
        """Make `cache` the owner: its states are copied into the buffers, which it then holds."""
        previous = self.owner() if self.owner is not None else None
        if previous is not None and previous is not cache:
            for layer in previous.layers:  # the previous owner keeps its states, in memory of its own
                if layer.state is not None and any(_same_memory(layer.state, b) for b in self.states):
                    layer.state = layer.state.clone()
        for layer, buffer in zip(cache.layers, self.states, strict=True):
            if layer.state is not buffer:
                buffer.copy_(layer.state)
                layer.state = buffer
        self.owner = weakref.ref(cache)

    def step(self, model: "HLRUForCausalLM", input_ids: torch.Tensor, cache: HLRUCache) -> torch.Tensor:
        if not self.owns(cache):
            self.adopt(cache)
        self.ids.copy_(input_ids)
        if self.graph is not None:
            self.graph.replay()
        else:
            self.logits = self._run(model)
        return self.logits.clone()  # the buffer is overwritten by the next step; callers may keep the logits


_COMPILED_DECODE_STEP = None


def _compiled_decode_step():
    """HLRUForCausalLM._decode_step through torch.compile (one per process; recompiles per model and batch size)."""
    global _COMPILED_DECODE_STEP
    if _COMPILED_DECODE_STEP is None:
        _COMPILED_DECODE_STEP = torch.compile(HLRUForCausalLM._decode_step, fullgraph=True, dynamic=False)
    return _COMPILED_DECODE_STEP


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class _DecodeGraphs(dict):
    """The model's captured decode steps, keyed by (batch size, dtype, device): not parameters, never saved, not
    copied (a deepcopy or pickle of the model starts without graphs)."""

    fingerprint: tuple | None = None  # checked every step: the embedding's and LM head's tensors
    allowed: bool = False  # whether the model can be captured (_graphable), decided with the fingerprint
    layout: tuple | None = None  # checked at each generate(): every module's type and hooks, every tensor

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def __deepcopy__(self, memo) -> "_DecodeGraphs":
        return _DecodeGraphs()

    def __reduce__(self):
        return _DecodeGraphs, ()


# at most this many captured decode steps per model (batch sizes x dtypes); the oldest is dropped beyond it
_MAX_DECODE_GRAPHS = 8


class HLRUForCausalLM(HLRUPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    # Experimental, off: torch.compile the decode step before capturing its CUDA graph (fuses the norms and the
    # SwiGLU: fewer kernels per step). Outputs then equal the eager step's to rounding, not bit for bit, and the first
    # step of each batch size compiles. Set on a model: model.decode_compile = True.
    decode_compile: bool = False

    def __init__(self, config: HLRUConfig) -> None:
        super().__init__(config)
        self.model = HLRUModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self._decode_graphs = _DecodeGraphs()
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: HLRUCache | None = None,
        cache: HLRUCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        position_ids: torch.LongTensor | None = None,
        skip_logits: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """Next-token logits; with `labels`, the shifted cross-entropy loss (-100 is ignored). `skip_logits=True`
        computes the loss chunk by chunk from the hidden states without the (B, T, vocab) logits, which are then None
        (default: in training mode with labels when `config.fuse_cross_entropy`; scripts/train.py always does).
        Restarting `position_ids` mark packed documents (see HLRUModel.forward). Single-token decode steps on CUDA
        replay a captured CUDA graph (`config.decode_cuda_graph`; see _graph_decode)."""
        if self.config.decode_cuda_graph and input_ids is not None and input_ids.shape[-1:] == (1,):
            result = self._graph_decode(
                input_ids,
                inputs_embeds,
                attention_mask,
                labels,
                cache if cache is not None else past_key_values,
                use_cache,
                output_hidden_states,
                logits_to_keep,
                position_ids,
            )
            if result is not None:
                return result if return_dict is not False else result.to_tuple()
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            past_key_values=past_key_values,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            position_ids=position_ids,
        )
        hidden = out.last_hidden_state
        if skip_logits is None:
            skip_logits = self.training and labels is not None and self.config.fuse_cross_entropy
        if skip_logits and labels is None:
            raise ValueError("skip_logits=True computes the loss instead of the logits: it needs labels")
        # an adapted head (LoRA on lm_head) or shift_labels from sequence parallelism take the plain loss
        if skip_logits and type(self.lm_head) is nn.Linear and "shift_labels" not in kwargs:
            loss = linear_cross_entropy(hidden, self.lm_head.weight, labels, kwargs.get("num_items_in_batch"))
            logits = None
        else:
            keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
            logits = self.lm_head(hidden[:, keep])
            loss = None
            if labels is not None:
                loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        result = CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=out.hidden_states, **{_CACHE_FIELD: getattr(out, _CACHE_FIELD)}
        )
        return result if return_dict is not False else result.to_tuple()

    def _decode_step(
        self, input_ids: torch.LongTensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One decode step of the whole model: input_ids (B, 1) and every layer's state (B, N, m) -> (logits
        (B, 1, vocab), the new states). The same ops as forward() with a cache; the CUDA graph captures this."""
        x = self.model.embed_tokens(input_ids)
        new_states = []
        for layer, state in zip(self.model.layers, states, strict=True):
            x, state = layer(x, state)
            new_states.append(state)
        return self.lm_head(self.model.norm(x)), new_states

    def _graph_decode(
        self,
        input_ids,
        inputs_embeds,
        attention_mask,
        labels,
        cache,
        use_cache,
        output_hidden_states,
        logits_to_keep,
        position_ids,
    ) -> CausalLMOutputWithPast | None:
        """The decode step from a captured CUDA graph, or None where it does not apply (then forward runs eagerly):
        it needs a CUDA device, eval mode without grad, autocast or compiling, one new token per row given as
        input_ids, an HLRUCache that already holds a float32 state for every layer, and no loss / hidden states."""
        device = input_ids.device
        if (
            not _graphs_supported(device)
            or inputs_embeds is not None
            or labels is not None
            or not isinstance(cache, HLRUCache)
            or self.training
            or torch.is_grad_enabled()
            or use_cache is False
            or not isinstance(logits_to_keep, int)
            or (output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states)
            or torch.compiler.is_compiling()
            or torch.is_autocast_enabled(device.type)
            or (device.type == "cuda" and torch.cuda.is_current_stream_capturing())
        ):
            return None
        embed = self.model.embed_tokens.weight
        bsz = input_ids.shape[0]
        sdtype = state_dtype(embed.dtype)
        shape = (bsz, self.config.num_blocks, self.config.block_size)
        for layer in cache.layers:
            state = layer.state
            if state is None or state.dtype != sdtype or state.device != device or state.shape != shape:
                return None
        # validate as the eager path would (cheap for one token); a padded token (one-token prefill chunks) runs eagerly
        if _pad_mask(attention_mask, bsz, 1, cache.get_seq_length())[0] is not None:
            return None
        if _doc_positions(position_ids, bsz, 1, cache.get_seq_length()) is not None:
            return None  # a document starts at this token: the eager step resets the state
        graphs = self._decode_graphs
        with graphs.lock:  # threads decoding with one model share its graphs' buffers (on one stream)
            fingerprint = (embed.data_ptr(), embed.dtype, embed.device, self.lm_head.weight.data_ptr())
            if graphs.fingerprint != fingerprint:  # weights moved, cast or replaced: the graphs read stale memory
                graphs.clear()
                graphs.fingerprint, graphs.allowed = fingerprint, self._graphable()
            if not graphs.allowed:
                return None
            compiled = bool(self.decode_compile)
            key = (bsz, embed.dtype, device) + (("compiled",) if compiled else ())
            graph = graphs.get(key)
            if graph is None:
                if len(graphs) >= _MAX_DECODE_GRAPHS:
                    graphs.pop(next(iter(graphs)))
                try:
                    graph = _DecodeGraph(self, bsz, shape[1:], sdtype, compiled)
                except Exception as e:
                    switch = "model.decode_compile = False" if compiled else "model.config.decode_cuda_graph = False"
                    raise RuntimeError(
                        f"capturing the CUDA graph of the decode step failed ({type(e).__name__}: {e}); set "
                        f"{switch} to decode without it"
                    ) from e
                graphs[key] = graph
            logits = graph.step(self, input_ids, cache)
        for layer_cache in cache.layers:
            layer_cache.seen_tokens += 1
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return CausalLMOutputWithPast(logits=logits, **{_CACHE_FIELD: cache if use_cache else None})

    def _graphable(self) -> bool:
        """Whether a captured step can stand for forward(): every parameter on one device, no hooks (accelerate's
        offloading, user hooks) and only this file's and torch.nn's modules (adapters such as PEFT's switch in
        Python, which a graph would not see)."""
        devices = {p.device for p in self.parameters()} | {b.device for b in self.buffers()}
        if len(devices) != 1:
            return False
        for module in self.modules():
            if module._forward_hooks or module._forward_pre_hooks or "_hf_hook" in module.__dict__:
                return False
            if not (type(module).__module__ == __name__ or type(module).__module__.startswith("torch.nn.")):
                return False
        return True

    def _drop_decode_graphs(self) -> None:
        graphs = getattr(self, "_decode_graphs", None)
        if graphs is not None:
            graphs.clear()
            graphs.fingerprint = graphs.layout = None

    def _check_decode_graphs(self) -> None:
        """At each generate(): drop the graphs if any module, hook or parameter / buffer tensor changed since they
        were built (the per-step check looks only at the embedding and the LM head)."""
        if not _graphs_supported(self.lm_head.weight.device):
            return
        layout = []
        for module in self.modules():
            layout.append((type(module), len(module._forward_hooks), len(module._forward_pre_hooks)))
            layout.append("_hf_hook" in module.__dict__)
            for t in (*module._parameters.values(), *module._buffers.values()):
                if t is not None:
                    layout.append((t.data_ptr(), t.dtype, t.device))
        layout = tuple(layout)
        with self._decode_graphs.lock:
            if layout != self._decode_graphs.layout:
                self._drop_decode_graphs()
                self._decode_graphs.layout = layout

    def train(self, mode: bool = True):
        if mode:  # training frees the graphs; eval() keeps them (in-place weight updates are seen by a replay)
            self._drop_decode_graphs()
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half(), ...: the graphs would read the old tensors
        self._drop_decode_graphs()
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self._drop_decode_graphs()
        return super().load_state_dict(*args, **kwargs)

    def generate(self, *args, **kwargs):
        """GenerationMixin.generate, refusing assisted and prompt-lookup decoding up front: they roll back rejected
        draft tokens, which a recurrent state that has absorbed them cannot do."""
        ids = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
        if isinstance(ids, torch.Tensor) and ids.shape[-1:] == (0,) and kwargs.get("inputs_embeds") is None:
            # refused here: transformers' own padding check fails first on an empty batch of several rows
            raise ValueError(
                f"input_ids of shape {tuple(ids.shape)} has no tokens: the model needs at least one (give generate() a "
                "prompt of at least one token, e.g. the BOS token)"
            )
        positional = args[1] if len(args) > 1 else None  # generate(inputs, generation_config, ...)
        config = kwargs.get("generation_config") or positional or self.generation_config
        for key in ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit"):
            if kwargs.get(key) is not None or getattr(config, key, None) is not None:
                raise ValueError(
                    f"{key}: assisted / prompt-lookup (speculative) decoding is not supported by recurrent models: "
                    "rejected draft tokens cannot be removed from the state. Use plain generate()"
                )
        # chunked prefill feeds the chunks through a cache that generate() only creates for attention models
        chunked = kwargs.get("prefill_chunk_size", getattr(config, "prefill_chunk_size", None)) is not None
        use_cache = kwargs.get("use_cache", getattr(config, "use_cache", True))
        if chunked and use_cache is not False and kwargs.get("cache", kwargs.get("past_key_values")) is None:
            kwargs[_CACHE_FIELD] = HLRUCache(self.config)
        if self.config.decode_cuda_graph:
            self._check_decode_graphs()
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: HLRUCache | None = None,
        cache: HLRUCache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        next_sequence_length: int | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        # Feed only the tokens the cache has not absorbed yet (works whether generate() names it cache or
        # past_key_values, and whether or not it computed next_sequence_length).
        cache = cache if cache is not None else past_key_values
        seen = cache.get_seq_length() if cache is not None else 0
        if inputs_embeds is not None and (seen == 0 or input_ids.shape[1] == 0):
            # the prompt as embeddings; continuing a cache, only the positions it has not absorbed
            rest = inputs_embeds[:, seen:] if 0 < seen < inputs_embeds.shape[1] else inputs_embeds
            model_inputs = {"input_ids": None, "inputs_embeds": rest}
        else:
            if next_sequence_length is not None:
                input_ids = input_ids[:, -next_sequence_length:]
            elif 0 < seen < input_ids.shape[1]:
                input_ids = input_ids[:, seen:]
            model_inputs = {"input_ids": input_ids.contiguous()}
        if next_sequence_length == 1 and not is_first_iteration and seen:
            # a decode step (both transformers versions call it so) feeds a generated token, real: checking its mask
            # would cost a GPU sync per token. Prefill chunks keep their mask (they may hold padding)
            attention_mask = None
        model_inputs.update(cache=cache, attention_mask=attention_mask, use_cache=use_cache)
        for key, value in kwargs.items():
            if key not in model_inputs and key not in ("labels", "position_ids", "token_type_ids"):
                model_inputs[key] = value
        return model_inputs


class HLRUForSequenceClassification(GenericForSequenceClassification, HLRUPreTrainedModel):
    """HLRUModel + a linear head on the last non-pad token (transformers' generic head, as Llama's)."""

    def __init__(self, config: HLRUConfig) -> None:
        # the generic head builds its body through AutoModel, which refuses remote code it was not told to trust
        # (loading with trust_remote_code where hlru_lm is not installed); build it directly
        HLRUPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.model = HLRUModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()
