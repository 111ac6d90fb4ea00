"""The hf_tinylm self-attention decoder: pre-norm blocks, RoPE, grouped-query attention, SwiGLU, tied embeddings.

The computation is exactly transformers' Llama (with q/k/v and gate/up each computed by one fused projection), so
checkpoints convert both ways without loss (`hf_tinylm.convert`) and Llama is the reference our tests agree with.
Attention kernels come from transformers' attention interface (`eager`, `sdpa`, and flash/flex where installed); the
KV cache is transformers' `Cache`.
"""

from collections.abc import Callable

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GenericForQuestionAnswering, GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.generic import can_return_tuple

from .configuration_tiny_attention import TinyAttentionConfig

# Every module a saved folder ships is imported here by name: before 5.x, transformers copies only the modules the
# loaded file itself imports, and then requires all of theirs. (The pipeline code is used by `save_pretrained`.)
from .extractive_qa import best_answers  # noqa: F401
from .pipelines_tinylm import custom_pipelines
from .task_formats import CONFIG_KEY  # noqa: F401
from .tinylm_common import CheckedGeneration, HubReadyMixin, check_forward_inputs, logits_positions
from .tinylm_compat import accepts_cache_argument, cache_of, causal_mask, output_with_cache, rope_config


class TinyAttentionRMSNorm(nn.Module):
    """Root-mean-square layer norm, computed in float32 for stability under bf16/fp16."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        hidden_states = hidden_states * torch.rsqrt(
            hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon
        )
        return self.weight * hidden_states.to(input_dtype)


class TinyAttentionRotaryEmbedding(nn.Module):
    """Rotary position embedding; scaled variants (linear, dynamic, yarn, ...) come from transformers' RoPE utils."""

    def __init__(self, config: TinyAttentionConfig):
        super().__init__()
        self.config = rope_config(config)
        self.max_seq_len_cached = self.original_max_seq_len = config.max_position_embeddings
        self.rope_type = config.rope_parameters["rope_type"]
        self.rope_init_fn = (  # the name `dynamic_rope_update` calls on transformers 4.x
            self.compute_default_rope_parameters
            if self.rope_type == "default"
            else ROPE_INIT_FUNCTIONS[self.rope_type]
        )
        inv_freq, self.attention_scaling = self.rope_init_fn(self.config)
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(
        config: TinyAttentionConfig, device=None, **kwargs
    ) -> tuple[torch.Tensor, float]:
        dim = config.head_dim
        base = config.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float, device=device) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """Rotate queries and keys (batch, heads, seq, head_dim) by their positions."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QK^T * scaling + mask) V written out, so the attention probabilities can be returned."""
    groups = module.num_key_value_groups
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


class TinyAttentionAttention(nn.Module):
    """Causal multi-head self-attention with optional grouped key/value heads, scaled by 1/sqrt(head_dim)."""

    def __init__(self, config: TinyAttentionConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        q_size = config.num_attention_heads * self.head_dim
        kv_size = config.num_key_value_heads * self.head_dim
        self.qkv_sizes = (q_size, kv_size, kv_size)
        # Queries, keys and values from one matmul (fewer kernel launches per decoding step than three).
        self.qkv_proj = nn.Linear(config.hidden_size, q_size + 2 * kv_size, bias=config.attention_bias)
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=config.attention_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query, key, value = (
            states.view(hidden_shape).transpose(1, 2)
            for states in self.qkv_proj(hidden_states).split(self.qkv_sizes, -1)
        )
        query, key = apply_rotary_pos_emb(query, key, *position_embeddings)

        if cache is not None:
            # `cache_position` is what a static cache writes at on transformers 4.x, whose generate() passes it.
            key, value = cache.update(key, value, self.layer_idx, {"cache_position": kwargs.get("cache_position")})

        attention_interface: Callable = eager_attention_forward
        if self.config._attn_implementation != "eager":
            attention_interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        return self.o_proj(attn_output.reshape(*input_shape, -1).contiguous()), attn_weights


class TinyAttentionMLP(nn.Module):
    """SwiGLU feed-forward: down(act(gate(x)) * up(x)), with gate and up computed by one fused matmul."""

    def __init__(self, config: TinyAttentionConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(self.act_fn(gate) * up)


class TinyAttentionDecoderLayer(GradientCheckpointingLayer):
    """x + attn(norm(x)), then x + mlp(norm(x)); dropout on each residual branch when configured."""

    def __init__(self, config: TinyAttentionConfig, layer_idx: int):
        super().__init__()
        self.self_attn = TinyAttentionAttention(config, layer_idx)
        self.mlp = TinyAttentionMLP(config)
        self.input_layernorm = TinyAttentionRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = TinyAttentionRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the new hidden states and the attention probabilities (None unless the kernel computes them)."""
        attn_output, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + self.dropout(attn_output)
        return hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states))), attn_weights


class TinyAttentionPreTrainedModel(HubReadyMixin, PreTrainedModel):
    config: TinyAttentionConfig
    config_class = TinyAttentionConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyAttentionDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    custom_pipelines_for = staticmethod(custom_pipelines)  # what `save_pretrained` lists in the config


class TinyAttentionModel(TinyAttentionPreTrainedModel):
    """Token embedding, decoder blocks and final norm; returns hidden states and the KV cache."""

    def __init__(self, config: TinyAttentionConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(TinyAttentionDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = TinyAttentionRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = TinyAttentionRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    @accepts_cache_argument
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""`hidden_states` (with `output_hidden_states`) are the embeddings and each block's input, then the final
        normed output; `attentions` (with `output_attentions`) need a kernel that computes them, such as `eager`."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        past_length = cache.get_seq_length() if cache is not None else 0
        check_forward_inputs(
            self.config, input_ids, inputs_embeds, attention_mask, past_length, position_ids=position_ids
        )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length
            position_ids = position_ids.unsqueeze(0)
        # Built before this call's own (empty) cache exists: without a mask and a cache passed in, transformers then
        # reads packed documents from `position_ids` (padding-free training) and keeps attention within each.
        mask = causal_mask(self.config, inputs_embeds, attention_mask, cache, position_ids, past_length)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        all_hidden_states, all_attentions = [], []
        # The first `config.num_hidden_layers` blocks, as in Llama: early-exit self-speculation
        # (`generate(..., assistant_early_exit=n)`) drafts tokens by lowering that number for a while.
        for layer in self.layers[: self.config.num_hidden_layers]:
            all_hidden_states.append(hidden_states)
            hidden_states, attn_weights = layer(
                hidden_states,
                position_embeddings=position_embeddings,
                attention_mask=mask,
                cache=cache,
                **kwargs,
            )
            all_attentions.append(attn_weights)
        hidden_states = self.norm(hidden_states)
        return output_with_cache(
            BaseModelOutputWithPast,
            cache,
            last_hidden_state=hidden_states,
            hidden_states=(*all_hidden_states, hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )


class TinyAttentionForCausalLM(TinyAttentionPreTrainedModel, CheckedGeneration, GenerationMixin):
    """The decoder with a language-modelling head (tied to the input embedding unless the config says otherwise)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TinyAttentionConfig):
        super().__init__(config)
        self.model = TinyAttentionModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @accepts_cache_argument
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""`labels` are the input ids (shifted inside the loss); -100 marks positions without loss.
        `logits_to_keep` computes logits for only the last N positions (or the given indices), as generation needs."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state[:, logits_positions(logits_to_keep)])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return output_with_cache(
            CausalLMOutputWithPast,
            cache_of(outputs),
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class TinyAttentionForQuestionAnswering(GenericForQuestionAnswering, TinyAttentionPreTrainedModel):
    """Extractive QA: start/end span logits over the tokens, trained with transformers' QA loss."""

    def __init__(self, config: TinyAttentionConfig):
        # Built directly (not via AutoModel) so the class also loads as remote code without hf_tinylm installed.
        TinyAttentionPreTrainedModel.__init__(self, config)
        self.model = TinyAttentionModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()


__all__ = [
    "TinyAttentionPreTrainedModel",
    "TinyAttentionModel",
    "TinyAttentionForCausalLM",
    "TinyAttentionForQuestionAnswering",
]
