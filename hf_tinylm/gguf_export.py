"""Export an attention model (or its Llama export) as one GGUF file for llama.cpp, Ollama and LM Studio.

    python -m hf_tinylm.convert --to gguf path/to/attention-or-llama-folder model.gguf [--outtype f16]

The file is what llama.cpp's own `convert_hf_to_gguf.py` would write for the Llama export, written with gguf-py
(`pip install gguf`), except for the tokenizer, which llama.cpp's converter refuses (it identifies pre-tokenizers
by hashing their output, and ours are unknown to it). Both of our tokenizers have an exact llama.cpp counterpart:

- "bpe" (byte-level BPE, GPT-2's pre-tokenizer without a prefix space) is llama.cpp's `gpt2` model with the
  `gpt-2` pre-tokenizer (GPT-2's split regex): the same tokens, in byte-level spelling, and the same merges.
- "char" (BPE without merges, unseen characters spelled as <0xNN> byte tokens) is llama.cpp's `llama` (SentencePiece
  BPE) model: it looks each character up and spells the ones it lacks as the BYTE-type <0xNN> tokens, as
  `byte_fallback` does. Its tokens are spelled SentencePiece's way (a space as "▁") and no space prefix is added.
  llama.cpp's `gpt2` model would not do: it has no byte fallback (it would need one token per byte, in its
  byte-level spelling, and a merge for each multi-byte character).

Neither adds bos or eos (as ours do not); the special tokens are CONTROL tokens, which llama.cpp, like transformers,
recognises in text. The tensors are in llama.cpp's layout: q/k rows permuted from transformers' rotate-half RoPE
to llama.cpp's interleaved pairs, and no `output.weight` when the head is tied to the embedding (llama.cpp then uses
`token_embd.weight`, as llama.cpp's converter leaves it). A task model also carries its task settings, the prompt
format, and, for translation and summarization, a chat template that wraps the user's message in that format.
"""

import json
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import snapshot_download
from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

from .configuration_tiny_attention import TinyAttentionConfig
from .llama_conversion import check_convertible, check_same_logits, tiny_attention_to_llama
from .modeling_tiny_attention import TinyAttentionForCausalLM
from .task_formats import build_prompt, settings_from_config

try:
    import gguf
except ImportError as error:  # an optional dependency: only this export needs it
    raise ImportError("Writing GGUF needs the `gguf` package (gguf-py): `pip install gguf`.") from error

OUTTYPES = {"f32": (np.float32, gguf.LlamaFileType.ALL_F32), "f16": (np.float16, gguf.LlamaFileType.MOSTLY_F16)}
SPM_SPACE = "\u2581"  # "▁", SentencePiece's spelling of a space
GGUF_METADATA_PREFIX = "hf_tinylm"


def permute_for_llama_cpp(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection (or bias) reordered from transformers' RoPE layout to llama.cpp's.

    transformers rotates the pairs (i, i + d/2) of each head, llama.cpp (the `llama` arch's "normal" RoPE) the
    adjacent pairs (2i, 2i + 1), with the same frequency for pair i; so row i of each head moves to 2i and row
    i + d/2 to 2i + 1. This is `LlamaModel.permute` of llama.cpp's `convert_hf_to_gguf.py`; `n_head` is the number of
    heads the projection has (the key/value heads for k).
    """
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _load_llama(source_dir: Path) -> LlamaForCausalLM:
    """The model of an attention or Llama folder, as a Llama (whose weights are split as llama.cpp's are)."""
    model_type = AutoConfig.from_pretrained(source_dir).model_type
    check_convertible(str(source_dir), "llama" if model_type == "llama" else TinyAttentionConfig.model_type)
    if model_type == "llama":
        return LlamaForCausalLM.from_pretrained(source_dir).eval()
    original = TinyAttentionForCausalLM.from_pretrained(source_dir).eval()
    llama = tiny_attention_to_llama(original).eval()
    check_same_logits(original, llama)
    return llama


def _check_expressible(config) -> None:
    """Refuse what the `llama` arch of llama.cpp would compute differently."""
    rope_type = (config.rope_parameters or {}).get("rope_type", "default")
    if rope_type != "default":
        raise ValueError(f"RoPE scaling ({rope_type!r}) is not exported to GGUF; only the default RoPE is.")
    if config.hidden_act != "silu":
        raise ValueError(f"llama.cpp's Llama uses SwiGLU (silu); this model's MLP uses {config.hidden_act!r}.")


def _tensors(model: LlamaForCausalLM, dtype) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names, in its layout; 1-D tensors (norms, biases) stay float32."""
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads a missing output.weight as the tied token_embd.weight
        if name.endswith("rotary_emb.inv_freq"):
            continue
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if ".self_attn.q_proj." in name:
            data = permute_for_llama_cpp(data, config.num_attention_heads)
        elif ".self_attn.k_proj." in name:
            data = permute_for_llama_cpp(data, config.num_key_value_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"llama.cpp has no place for the weight {name}.")
        tensors[gguf_name] = np.ascontiguousarray(data if data.ndim == 1 else data.astype(dtype))
    return tensors


def _vocabulary(tokenizer, vocab_size: int) -> tuple[str, list[str], list[int], list[str]]:
    """(llama.cpp tokenizer model, tokens, token types, merges) for a tokenizer of ours, checked to be one whose
    llama.cpp counterpart tokenizes exactly as it does."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre = spec["model"], spec.get("pre_tokenizer")
    if model["type"] != "BPE" or spec.get("normalizer") is not None:
        raise ValueError(
            "Only hf_tinylm's tokenizers (byte-level BPE, or characters with byte fallback) export to GGUF."
        )
    byte_level = (pre or {}).get("type") == "ByteLevel"
    if byte_level and (pre.get("add_prefix_space") or not pre.get("use_regex", True)):
        raise ValueError("Only a byte-level BPE pre-tokenizer with GPT-2's regex and no prefix space exports to GGUF.")
    if not byte_level and (pre is not None or model.get("merges") or not model.get("byte_fallback")):
        raise ValueError(
            "Only hf_tinylm's tokenizers (byte-level BPE, or characters with byte fallback) export to GGUF."
        )

    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ValueError(f"The tokenizer has ids up to {max(vocab.values())}, the model only {vocab_size} embeddings.")
    added = {token["content"]: token["special"] for token in spec.get("added_tokens", [])}
    tokens = [f"[PAD{index}]" for index in range(vocab_size)]  # llama.cpp's converter's filler for unused rows
    types = [gguf.TokenType.UNUSED] * vocab_size
    for token, index in vocab.items():
        if token in added:
            kind = gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED
        elif not byte_level and token.startswith("<0x") and len(token) == 6:
            kind = gguf.TokenType.BYTE
        else:
            kind = gguf.TokenType.NORMAL
            if not byte_level:
                if SPM_SPACE in token:
                    warnings.warn(
                        f"The vocabulary has {SPM_SPACE!r}, which llama.cpp's SentencePiece tokenizer reads as a "
                        "space: in llama.cpp that character tokenizes as the space token.",
                        stacklevel=3,
                    )
                token = token.replace(" ", SPM_SPACE)
        tokens[index], types[index] = token, kind
    if not byte_level:
        return "llama", tokens, types, []
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model.get("merges", [])]
    return "gpt2", tokens, types, merges


def _add_tokenizer(writer, tokenizer, config) -> None:
    tokenizer_model, tokens, types, merges = _vocabulary(tokenizer, config.vocab_size)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if tokenizer_model == "gpt2":
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_merges(merges)
    else:
        writer.add_tokenizer_pre("default")
        writer.add_token_scores([0.0] * len(tokens))  # no merges: scores only order merges
        writer.add_add_space_prefix(False)
    for name, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):  # fmt: skip
        token_id = getattr(tokenizer, f"{name}_token_id")
        if token_id is None and name in ("bos", "eos", "pad"):
            token_id = getattr(config, f"{name}_token_id")
            token_id = token_id[0] if isinstance(token_id, list) else token_id
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def _add_task(writer, config) -> None:
    """The task settings, the prompt format, and for a one-input task a chat template that applies it."""
    settings = settings_from_config(config)
    if not settings or settings["task"] == "lm":
        return
    task = settings["task"]
    languages = {key: settings.get(key) for key in ("src_lang", "tgt_lang")}
    writer.add_string(f"{GGUF_METADATA_PREFIX}.task_settings", json.dumps(settings, sort_keys=True))
    if task == "qa":
        writer.add_string(
            f"{GGUF_METADATA_PREFIX}.prompt_format", build_prompt(task, "{context}", question="{question}")
        )
        return
    writer.add_string(f"{GGUF_METADATA_PREFIX}.prompt_format", build_prompt(task, "{text}", **languages))
    before, after = build_prompt(task, "\0", **languages).split("\0")
    writer.add_chat_template(
        "{{ " + json.dumps(before) + " }}{{ messages[-1]['content'] }}{{ " + json.dumps(after) + " }}"
    )


def export_gguf(source, output_file, *, outtype: str = "f32") -> Path:
    """Write an attention folder (or Hub id), or a Llama export of one, as one GGUF file for llama.cpp.

    The file holds the llama architecture's settings, the weights in llama.cpp's layout (float32, or with `outtype`
    "f16" the matrices in float16), the tokenizer (see the module's docstring) and, for a task model, its task
    settings and prompt format. Recurrent and extractive-QA models, a folder without a tokenizer and settings
    llama.cpp's Llama cannot express are refused before anything is written. The file is written beside
    `output_file` and renamed into place at the end, so a failure leaves no half-written file; an existing
    `output_file` is refused. Returns `output_file`.
    """
    if outtype not in OUTTYPES:
        raise ValueError(f"Unknown outtype {outtype!r}; expected one of {', '.join(OUTTYPES)}.")
    output_file = Path(output_file)
    if output_file.exists():
        raise FileExistsError(f"{output_file} exists; remove it or choose a new name.")
    source_dir = Path(source) if Path(source).is_dir() else Path(snapshot_download(str(source)))
    model = _load_llama(source_dir)
    config = model.config
    _check_expressible(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source_dir)
    except (OSError, ValueError) as error:
        raise ValueError(f"{source} has no tokenizer; a GGUF file needs one.") from error
    dtype, file_type = OUTTYPES[outtype]

    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(source_dir.resolve().name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    _add_tokenizer(writer, tokenizer, config)
    _add_task(writer, config)
    for name, data in _tensors(model, dtype).items():
        writer.add_tensor(name, data)

    output_file.parent.mkdir(parents=True, exist_ok=True)
    staging = output_file.with_name(f".{output_file.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        writer.write_header_to_file(staging)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, output_file)
    except BaseException:
        writer.close()
        staging.unlink(missing_ok=True)
        raise
    return output_file
