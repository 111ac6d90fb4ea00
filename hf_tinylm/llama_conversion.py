"""The Llama <-> TinyAttention conversion itself: config translation and state-dict copies that fuse or split q/k/v
and gate/up, and the checks that a conversion is possible and exact. `convert` (folders, the command line) and
`gguf_export` both build on it.
"""

import copy

import torch
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

from .configuration_tiny_attention import TinyAttentionConfig
from .modeling_tiny_attention import TinyAttentionForCausalLM

# Fields with the same name and meaning in both configs.
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "rope_parameters",
    "attention_bias",
    "mlp_bias",
    "attention_dropout",
)


def _shared_values(config) -> dict:
    """The SHARED_FIELDS of `config`, and its task settings (`task_specific_params`, which the pipelines read) when
    it has them."""
    values = {name: getattr(config, name) for name in SHARED_FIELDS}
    if getattr(config, "task_specific_params", None):
        values["task_specific_params"] = copy.deepcopy(config.task_specific_params)
    return values


def tiny_attention_config_from_llama(config: LlamaConfig) -> TinyAttentionConfig:
    if (config.pretraining_tp or 1) != 1:
        raise ValueError(f"Llama checkpoints with pretraining_tp={config.pretraining_tp} are not supported.")
    values = _shared_values(config)
    if values["pad_token_id"] is not None and values["pad_token_id"] < 0:  # the original LLaMA configs' "no padding"
        values["pad_token_id"] = None
    return TinyAttentionConfig(**values, hidden_dropout=0.0)


def llama_config_from_tiny_attention(config: TinyAttentionConfig) -> LlamaConfig:
    if config.hidden_dropout:
        raise ValueError(
            f"Llama has no residual dropout; set `hidden_dropout=0` (is {config.hidden_dropout}) before converting."
        )
    return LlamaConfig(**_shared_values(config))


FUSED = {"self_attn.qkv_proj": ("q_proj", "k_proj", "v_proj"), "mlp.gate_up_proj": ("gate_proj", "up_proj")}


def _fused_state_dict(llama_state: dict) -> dict:
    """Llama's separate q/k/v and gate/up weights, concatenated into our fused projections."""
    state = dict(llama_state)
    for fused, parts in FUSED.items():
        module, fused_name = fused.rsplit(".", 1)
        for key in [k for k in state if f".{module}.{parts[0]}." in k]:
            sources = [state.pop(key.replace(f".{parts[0]}.", f".{part}.")) for part in parts]
            state[key.replace(f".{parts[0]}.", f".{fused_name}.")] = torch.cat(sources)
    return state


def _split_state_dict(model: TinyAttentionForCausalLM) -> dict:
    """Our fused projections, split back into Llama's separate q/k/v and gate/up weights."""
    state = dict(model.state_dict())
    sizes = {
        "self_attn.qkv_proj": model.model.layers[0].self_attn.qkv_sizes,
        "mlp.gate_up_proj": (model.config.intermediate_size,) * 2,
    }
    for fused, parts in FUSED.items():
        module, fused_name = fused.rsplit(".", 1)
        for key in [k for k in state if f".{fused}." in k]:
            for part, tensor in zip(parts, state.pop(key).split(sizes[fused])):
                state[key.replace(f".{fused_name}.", f".{part}.")] = tensor
    return state


def _load(target, state: dict, source):
    """`target` with the weights in `state` (taken from `source`), in `source`'s dtype, generating as it does."""
    missing, unexpected = target.load_state_dict(state, strict=False)
    # A tied head has no weight of its own in one of the two state dicts; tying restores it.
    missing = [key for key in missing if not (key == "lm_head.weight" and target.config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"Weights do not line up: missing {missing}, unexpected {unexpected}.")
    target.tie_weights()
    target.generation_config = copy.deepcopy(source.generation_config)
    return target.to(dtype=source.dtype)


def llama_to_tiny_attention(model: LlamaForCausalLM) -> TinyAttentionForCausalLM:
    """A `TinyAttentionForCausalLM` that computes exactly what the given Llama model computes."""
    config = tiny_attention_config_from_llama(model.config)
    config._attn_implementation = model.config._attn_implementation
    return _load(TinyAttentionForCausalLM(config), _fused_state_dict(model.state_dict()), model)


def tiny_attention_to_llama(model: TinyAttentionForCausalLM) -> LlamaForCausalLM:
    """A transformers `LlamaForCausalLM` that computes exactly what the given model computes."""
    config = llama_config_from_tiny_attention(model.config)
    config._attn_implementation = model.config._attn_implementation
    return _load(LlamaForCausalLM(config), _split_state_dict(model), model)


def check_convertible(source: str, model_type: str) -> None:
    """Refuse, before loading weights, a checkpoint whose weights would not carry over (from_pretrained would only
    warn and initialise the rest at random)."""
    config = AutoConfig.from_pretrained(source)
    if config.model_type != model_type:
        raise ValueError(f"{source} holds a {config.model_type!r} model; only {model_type!r} models convert this way.")
    heads = [name for name in config.architectures or [] if not name.endswith("ForCausalLM")]
    if heads:
        raise ValueError(
            f"{source} holds a {heads[0]}, whose task head Llama/TinyAttention causal LMs have no place for; only "
            "causal language models convert."
        )


def check_same_logits(original, converted) -> None:
    """Raise unless `converted` computes the logits `original` computes (on a fixed random input), within the
    tolerance of their dtype."""
    config = original.config
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(config.vocab_size, (1, min(16, config.max_position_embeddings)), generator=generator)
    with torch.no_grad():
        expected = original(ids.to(original.device)).logits
        got = converted(ids.to(converted.device)).logits.to(expected.device)
    try:
        torch.testing.assert_close(got, expected)
    except AssertionError as error:
        raise RuntimeError(f"The converted model does not compute what the original computes: {error}") from None
