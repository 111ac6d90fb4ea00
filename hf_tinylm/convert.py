"""Convert between transformers' `LlamaForCausalLM` and `TinyAttentionForCausalLM`, both ways, without loss.

The two architectures compute the same function (pre-norm RMSNorm blocks, RoPE, grouped-query attention, SwiGLU);
ours fuses q/k/v and gate/up into single projections, so a conversion is a config translation plus a state-dict copy
that concatenates or splits those weights. This lets users start from real Llama-shaped
checkpoints (e.g. SmolLM-class models) and lets our tests use Llama as the reference implementation.

    python -m hf_tinylm.convert --to tiny_attention path/or/repo-of-a-llama  out_dir
    python -m hf_tinylm.convert --to llama          path/to/tiny-attention out_dir
"""

import argparse

import torch
from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

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


def tiny_attention_config_from_llama(config: LlamaConfig) -> TinyAttentionConfig:
    if (config.pretraining_tp or 1) != 1:
        raise ValueError(f"Llama checkpoints with pretraining_tp={config.pretraining_tp} are not supported.")
    values = {name: getattr(config, name) for name in SHARED_FIELDS}
    if values["pad_token_id"] is not None and values["pad_token_id"] < 0:  # the original LLaMA configs' "no padding"
        values["pad_token_id"] = None
    return TinyAttentionConfig(**values, hidden_dropout=0.0)


def llama_config_from_tiny_attention(config: TinyAttentionConfig) -> LlamaConfig:
    if config.hidden_dropout:
        raise ValueError(
            f"Llama has no residual dropout; set `hidden_dropout=0` (is {config.hidden_dropout}) before converting."
        )
    return LlamaConfig(**{name: getattr(config, name) for name in SHARED_FIELDS})


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


def _load(target, state: dict, source_dtype: torch.dtype):
    missing, unexpected = target.load_state_dict(state, strict=False)
    # A tied head has no weight of its own in one of the two state dicts; tying restores it.
    missing = [key for key in missing if not (key == "lm_head.weight" and target.config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"Weights do not line up: missing {missing}, unexpected {unexpected}.")
    target.tie_weights()
    return target.to(dtype=source_dtype)


def llama_to_tiny_attention(model: LlamaForCausalLM) -> TinyAttentionForCausalLM:
    """A `TinyAttentionForCausalLM` that computes exactly what the given Llama model computes."""
    config = tiny_attention_config_from_llama(model.config)
    config._attn_implementation = model.config._attn_implementation
    return _load(TinyAttentionForCausalLM(config), _fused_state_dict(model.state_dict()), model.dtype)


def tiny_attention_to_llama(model: TinyAttentionForCausalLM) -> LlamaForCausalLM:
    """A transformers `LlamaForCausalLM` that computes exactly what the given model computes."""
    config = llama_config_from_tiny_attention(model.config)
    config._attn_implementation = model.config._attn_implementation
    return _load(LlamaForCausalLM(config), _split_state_dict(model), model.dtype)


def _check_convertible(source: str, model_type: str) -> None:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", choices=["tiny_attention", "llama"], required=True, help="target architecture")
    parser.add_argument("source", help="folder or Hub id of the model to convert")
    parser.add_argument("output_dir", help="where to save the converted model (and the tokenizer, if any)")
    args = parser.parse_args(argv)
    _check_convertible(args.source, "llama" if args.to == "tiny_attention" else TinyAttentionConfig.model_type)
    if args.to == "tiny_attention":
        converted = llama_to_tiny_attention(LlamaForCausalLM.from_pretrained(args.source))
    else:
        converted = tiny_attention_to_llama(TinyAttentionForCausalLM.from_pretrained(args.source))
    converted.save_pretrained(args.output_dir)
    try:
        AutoTokenizer.from_pretrained(args.source).save_pretrained(args.output_dir)
    except (OSError, ValueError):
        print(f"No tokenizer found in {args.source}; saved the weights and config only.")
    print(f"Saved {type(converted).__name__} to {args.output_dir}")


if __name__ == "__main__":
    main()
