"""The GGUF export (`python -m hf_tinylm.convert --to gguf`, `export_gguf`), read back with gguf-py: the metadata,
tensors and vocabulary are the source's; a NumPy forward pass that computes what llama.cpp's `llama` arch computes
(interleaved RoPE on the permuted q/k, RMSNorm, grouped-query attention, SwiGLU), straight from the file, gives the
PyTorch model's logits; tokenizing the way llama.cpp does from the file's vocabulary and merges gives transformers'
token ids; and the refusals leave no file behind. scripts/check_gguf_llama_cpp.py runs the files in llama.cpp."""

import json

import gguf
import jinja2
import numpy as np
import pytest
import regex
import torch

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM, TinyRNNConfig, TinyRNNForCausalLM, convert
from hf_tinylm.gguf_export import export_gguf, permute_for_llama_cpp
from hf_tinylm.task_formats import CONFIG_KEY, build_prompt, task_settings
from hf_tinylm.tokenization import train_tokenizer
from tests.test_pipelines import CONTEXT, FAMILIES, QUESTION, SOURCE, make_model

CORPUS = [SOURCE, CONTEXT, QUESTION, "XYZ marks the spot, quick brown fox.  Twice:\n\tthe the  the 1889 don't"] * 4
TEXTS = [
    SOURCE,
    "  leading spaces, double  spaces and a trailing one ",
    "new\nlines\n\n\ttabs, digits 12345 and it's we'll",
    "unseen: naïve café, Ωμέγα, 日本語 and 🙂",
    build_prompt("translation", "Hello there.", src_lang="en", tgt_lang="de"),
    build_prompt("qa", CONTEXT, question=QUESTION) + "<|eos|><|pad|>",
    "<|sep",  # the start of a special token is plain text
]
TokenType = gguf.TokenType


@pytest.fixture(scope="module", params=["bpe", "char"])
def tokenizer(request):
    return train_tokenizer(CORPUS, request.param, vocab_size=420 if request.param == "bpe" else 320)


def save_model(folder, tokenizer, *, tie=True, scale=3.0, **settings):
    """A random attention LM with grouped-query attention, weights scaled up so that attention (and so RoPE)
    changes the logits well beyond the tolerance."""
    config = FAMILIES["attention"](  # hidden 32, 2 layers, 4 query and 2 key/value heads
        vocab_size=len(tokenizer) + 3,  # rows no token uses, as a model padded to a round size has
        rope_parameters={"rope_theta": 500.0},
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        task_specific_params={CONFIG_KEY: task_settings(**settings)} if settings else None,
    )
    torch.manual_seed(0)
    model = TinyAttentionForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scale)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def field(reader, key):
    return reader.fields[key].contents()


def tensors(reader) -> dict[str, np.ndarray]:
    return {tensor.name: np.asarray(tensor.data, dtype=np.float64) for tensor in reader.tensors}


# -- what llama.cpp computes, from the file alone -------------------------------------------------------------------


def rms_norm(x, weight, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def rope_interleaved(x, positions, base):
    """llama.cpp's "normal" RoPE (the llama arch): adjacent pairs (2i, 2i+1) rotate by position * base^(-2i/d)."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * base ** (-np.arange(half) * 2.0 / x.shape[-1])  # (seq, half)
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]  # broadcast over heads
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = even * cos - odd * sin, even * sin + odd * cos
    return out


def llama_cpp_logits(reader, ids, rope=rope_interleaved):
    """The logits llama.cpp's llama graph computes for `ids`, in float64, from the GGUF tensors and metadata."""
    w = tensors(reader)
    n_head, n_kv = field(reader, "llama.attention.head_count"), field(reader, "llama.attention.head_count_kv")
    eps, base = field(reader, "llama.attention.layer_norm_rms_epsilon"), field(reader, "llama.rope.freq_base")
    head_dim = field(reader, "llama.rope.dimension_count")
    seq, positions = len(ids), np.arange(len(ids), dtype=np.float64)
    x = w["token_embd.weight"][ids]
    mask = np.triu(np.full((seq, seq), -np.inf), 1)
    for layer in range(field(reader, "llama.block_count")):
        p = f"blk.{layer}."
        h = rms_norm(x, w[p + "attn_norm.weight"], eps)
        q = rope((h @ w[p + "attn_q.weight"].T).reshape(seq, n_head, head_dim), positions, base)
        k = rope((h @ w[p + "attn_k.weight"].T).reshape(seq, n_kv, head_dim), positions, base)
        v = (h @ w[p + "attn_v.weight"].T).reshape(seq, n_kv, head_dim)
        k, v = (np.repeat(t, n_head // n_kv, axis=1) for t in (k, v))  # query head j reads kv head j // group
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(head_dim) + mask
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", probs, v).reshape(seq, -1) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        gate = h @ w[p + "ffn_gate.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
    head = w.get("output.weight", w["token_embd.weight"])  # no output.weight: tied to the embedding
    return rms_norm(x, w["output_norm.weight"], eps) @ head.T


def rope_rotate_half(x, positions, base):
    """transformers' RoPE: pairs (i, i + d/2). On the permuted weights it is the wrong one (the negative control)."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * base ** (-np.arange(half) * 2.0 / x.shape[-1])
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, first * sin + second * cos], -1)


# -- how llama.cpp tokenizes and detokenizes, from the file alone ---------------------------------------------------

# llama.cpp's pre-tokenizer regex for `tokenizer.ggml.pre = "gpt-2"` (LLAMA_VOCAB_PRE_TYPE_GPT2); text no
# alternative matches stays a piece of its own.
GPT2_SPLIT = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)")


def regex_split(text) -> list[str]:
    """`GPT2_SPLIT`'s matches, and the text between them, in order (llama.cpp's `unicode_regex_split`)."""
    pieces, end = [], 0
    for match in GPT2_SPLIT.finditer(text):
        pieces += [text[end : match.start()], match.group()]
        end = match.end()
    return [piece for piece in [*pieces, text[end:]] if piece]


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the others for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {byte: chr(byte if byte in printable else next(extra)) for byte in range(256)}


def split_special(text, specials):
    """llama.cpp's special-token partition: each special token, longest first, splits the remaining raw text."""
    fragments = [text]
    for token in sorted(specials, key=len, reverse=True):
        new = []
        for fragment in fragments:
            if isinstance(fragment, tuple):
                new.append(fragment)
                continue
            parts = fragment.split(token)
            for index, part in enumerate(parts):
                if index:
                    new.append((token,))
                if part:
                    new.append(part)
        fragments = new
    return fragments


def bpe(pieces, ranks):
    """Merge the lowest-ranked adjacent pair, leftmost first, until no pair has a merge."""
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), float("inf")), index) for index, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        rank, index = min(pairs)
        if rank == float("inf"):
            break
        pieces = [*pieces[:index], pieces[index] + pieces[index + 1], *pieces[index + 2 :]]
    return pieces


def llama_cpp_tokenize(reader, text) -> list[int]:
    """llama.cpp's `llama_tokenize(text, add_special=False, parse_special=True)` for the file's vocabulary."""
    tokens, types = field(reader, "tokenizer.ggml.tokens"), field(reader, "tokenizer.ggml.token_type")
    ids = {token: index for index, token in enumerate(tokens)}
    specials = [token for token, kind in zip(tokens, types) if kind in (TokenType.CONTROL, TokenType.USER_DEFINED)]
    spm = field(reader, "tokenizer.ggml.model") == "llama"
    if not spm:
        ranks = {tuple(merge.split(" ")): rank for rank, merge in enumerate(field(reader, "tokenizer.ggml.merges"))}
        alphabet = byte_to_unicode()
    else:
        scores = field(reader, "tokenizer.ggml.scores")
        assert field(reader, "tokenizer.ggml.add_space_prefix") is False
    out = []
    for fragment in split_special(text, specials):
        if isinstance(fragment, tuple):
            out.append(ids[fragment[0]])
        elif not spm:
            for piece in regex_split(fragment):
                symbols = bpe([alphabet[byte] for byte in piece.encode()], ranks)
                out.extend(ids[symbol] for symbol in symbols)
        else:
            symbols = list(fragment.replace(" ", "\u2581"))
            while True:  # SentencePiece BPE: merge the best-scored adjacent pair that is a token
                candidates = [
                    (scores[ids[a + b]], -index)
                    for index, (a, b) in enumerate(zip(symbols, symbols[1:]))
                    if a + b in ids
                ]
                if not candidates:
                    break
                index = -max(candidates)[1]
                symbols[index : index + 2] = [symbols[index] + symbols[index + 1]]
            for symbol in symbols:  # byte fallback: a symbol that is no token is spelled as <0xNN> tokens
                out.extend([ids[symbol]] if symbol in ids else [ids[f"<0x{byte:02X}>"] for byte in symbol.encode()])
    return out


def llama_cpp_detokenize(reader, token_ids) -> str:
    """llama.cpp's detokenization, special tokens rendered."""
    tokens, types = field(reader, "tokenizer.ggml.tokens"), field(reader, "tokenizer.ggml.token_type")
    spm = field(reader, "tokenizer.ggml.model") == "llama"
    to_byte = {char: byte for byte, char in byte_to_unicode().items()}
    data = b""
    for index in token_ids:
        token, kind = tokens[index], types[index]
        if kind == TokenType.CONTROL:
            data += token.encode()
        elif spm:
            data += bytes([int(token[3:5], 16)]) if kind == TokenType.BYTE else token.replace("\u2581", " ").encode()
        else:
            data += bytes(to_byte[char] for char in token)
    return data.decode("utf-8", errors="replace")


# -- the tests -------------------------------------------------------------------------------------------------------


def test_metadata_tensors_and_vocabulary_are_the_sources(tokenizer, tmp_path):
    model = save_model(tmp_path / "lm", tokenizer)
    config = model.config
    reader = gguf.GGUFReader(export_gguf(tmp_path / "lm", tmp_path / "lm.gguf"))

    expected = {
        "general.architecture": "llama",
        "general.name": "lm",
        "general.file_type": gguf.LlamaFileType.ALL_F32,
        "llama.vocab_size": config.vocab_size,
        "llama.context_length": 128,
        "llama.embedding_length": 32,
        "llama.block_count": 2,
        "llama.feed_forward_length": 48,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.attention.key_length": 8,
        "llama.rope.dimension_count": 8,
        "llama.rope.freq_base": 500.0,
        "tokenizer.ggml.bos_token_id": tokenizer.bos_token_id,
        "tokenizer.ggml.eos_token_id": tokenizer.eos_token_id,
        "tokenizer.ggml.padding_token_id": tokenizer.pad_token_id,
        "tokenizer.ggml.unknown_token_id": tokenizer.unk_token_id,
        "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.add_eos_token": False,
    }
    assert {key: field(reader, key) for key in expected} == expected
    assert field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    assert "hf_tinylm.task_settings" not in reader.fields and "tokenizer.chat_template" not in reader.fields

    shapes = {tensor.name: tuple(tensor.data.shape) for tensor in reader.tensors}
    per_layer = {"attn_norm": (32,), "attn_q": (32, 32), "attn_k": (16, 32), "attn_v": (16, 32),
                 "attn_output": (32, 32), "ffn_norm": (32,), "ffn_gate": (48, 32), "ffn_up": (48, 32),
                 "ffn_down": (32, 48)}  # fmt: skip
    assert shapes == {
        "token_embd.weight": (config.vocab_size, 32),
        "output_norm.weight": (32,),  # and no output.weight: the head is tied
        **{f"blk.{layer}.{name}.weight": shape for layer in range(2) for name, shape in per_layer.items()},
    }
    assert {tensor.tensor_type for tensor in reader.tensors} == {gguf.GGMLQuantizationType.F32}
    weights, state = tensors(reader), model.state_dict()
    np.testing.assert_array_equal(weights["token_embd.weight"], state["model.embed_tokens.weight"].numpy())
    np.testing.assert_array_equal(
        weights["blk.1.ffn_down.weight"], state["model.layers.1.mlp.down_proj.weight"].numpy()
    )
    q = state["model.layers.0.self_attn.qkv_proj.weight"][:32].numpy()
    np.testing.assert_array_equal(weights["blk.0.attn_q.weight"], permute_for_llama_cpp(q, 4))
    # Row i of each head moves to 2i, row i + d/2 to 2i + 1.
    np.testing.assert_array_equal(weights["blk.0.attn_q.weight"][8 + 2 * 1 + 1], q[8 + 1 + 4])

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    tokens, types = field(reader, "tokenizer.ggml.tokens"), field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == config.vocab_size
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    assert tokens[len(vocab) :] == [f"[PAD{index}]" for index in range(len(vocab), config.vocab_size)]
    assert set(types[len(vocab) :]) == {TokenType.UNUSED}
    for token, index in vocab.items():
        if token in special:
            assert (tokens[index], types[index]) == (token, TokenType.CONTROL)
        elif field(reader, "tokenizer.ggml.model") == "gpt2":
            assert (tokens[index], types[index]) == (token, TokenType.NORMAL)
        elif token.startswith("<0x"):
            assert (tokens[index], types[index]) == (token, TokenType.BYTE)
        else:
            assert (tokens[index], types[index]) == (token.replace(" ", "\u2581"), TokenType.NORMAL)
    if spec["pre_tokenizer"]:  # bpe
        assert (field(reader, "tokenizer.ggml.model"), field(reader, "tokenizer.ggml.pre")) == ("gpt2", "gpt-2")
        merges = field(reader, "tokenizer.ggml.merges")
        assert merges == [" ".join(pair) for pair in spec["model"]["merges"]] and len(merges) > 50
    else:
        assert field(reader, "tokenizer.ggml.model") == "llama" and "tokenizer.ggml.merges" not in reader.fields
        assert sum(kind == TokenType.BYTE for kind in types) == 256 and "\u2581" in tokens


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_llama_cpp_computation_on_the_file_gives_the_model_logits(tokenizer, tmp_path, tie):
    model = save_model(tmp_path / "lm", tokenizer, tie=tie)
    reader = gguf.GGUFReader(export_gguf(tmp_path / "lm", tmp_path / "lm.gguf"))
    assert ("output.weight" in {tensor.name for tensor in reader.tensors}) is not tie

    ids = tokenizer(SOURCE + " " + QUESTION, add_special_tokens=False)["input_ids"][:20]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].double().numpy()
    got = llama_cpp_logits(reader, ids)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # The tolerance is far below what RoPE does here: transformers' RoPE on the permuted weights is way off.
    assert np.abs(llama_cpp_logits(reader, ids, rope=rope_rotate_half) - expected).max() > 0.1


def test_a_llama_export_folder_gives_the_same_file_and_f16_halves_the_matrices(tokenizer, tmp_path):
    model = save_model(tmp_path / "lm", tokenizer, tie=False)
    convert.export_llama(tmp_path / "lm", tmp_path / "lm-llama")
    convert.main(["--to", "gguf", str(tmp_path / "lm-llama"), str(tmp_path / "from-llama.gguf")])
    export_gguf(tmp_path / "lm", tmp_path / "from-attention.gguf")
    from_llama, from_attention = (gguf.GGUFReader(tmp_path / f"from-{name}.gguf") for name in ("llama", "attention"))
    for key in from_attention.fields:
        if key != "general.name":
            assert field(from_llama, key) == field(from_attention, key), key
    assert tensors(from_llama).keys() == tensors(from_attention).keys()
    for name, data in tensors(from_llama).items():
        np.testing.assert_array_equal(data, tensors(from_attention)[name])

    half = gguf.GGUFReader(export_gguf(tmp_path / "lm", tmp_path / "f16.gguf", outtype="f16"))
    assert field(half, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    kinds = {tensor.name: tensor.tensor_type.name for tensor in half.tensors}
    assert {kinds[name] for name in kinds if "norm" in name} == {"F32"}
    assert {kinds[name] for name in kinds if "norm" not in name} == {"F16"}
    ids = tokenizer(SOURCE, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].double().numpy()
    np.testing.assert_allclose(llama_cpp_logits(half, ids), expected, atol=0.05 * np.abs(expected).max(), rtol=0)


def test_tokenizing_as_llama_cpp_does_from_the_file_gives_the_tokenizers_ids(tokenizer, tmp_path):
    save_model(tmp_path / "lm", tokenizer)
    reader = gguf.GGUFReader(export_gguf(tmp_path / "lm", tmp_path / "lm.gguf"))
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert llama_cpp_tokenize(reader, text) == ids, text
        assert llama_cpp_detokenize(reader, ids) == tokenizer.decode(ids) == text


def test_a_task_model_carries_its_settings_prompt_format_and_chat_template(tmp_path):
    tokenizer = train_tokenizer(CORPUS, "char", vocab_size=320)
    save_model(tmp_path / "mt", tokenizer, task="translation", src_lang="en", tgt_lang="de")
    reader = gguf.GGUFReader(export_gguf(tmp_path / "mt", tmp_path / "mt.gguf"))
    settings = {"task": "translation", "src_lang": "en", "tgt_lang": "de"}
    assert json.loads(field(reader, "hf_tinylm.task_settings")) == settings
    assert field(reader, "hf_tinylm.prompt_format") == "<|translate|>en>de: {text}<|sep|>"
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": SOURCE}]
    rendered = jinja2.Template(field(reader, "tokenizer.chat_template")).render(messages=messages)
    assert rendered == build_prompt("translation", SOURCE, src_lang="en", tgt_lang="de")

    save_model(tmp_path / "qa", tokenizer, task="qa", mode="generative")
    reader = gguf.GGUFReader(export_gguf(tmp_path / "qa", tmp_path / "qa.gguf"))
    assert field(reader, "hf_tinylm.prompt_format") == build_prompt("qa", "{context}", question="{question}")
    assert "tokenizer.chat_template" not in reader.fields  # two inputs: no one-message template


def test_models_gguf_cannot_hold_are_refused_and_nothing_is_left_behind(tmp_path, monkeypatch):
    tokenizer = train_tokenizer(CORPUS, "char", vocab_size=320)
    TinyRNNForCausalLM(TinyRNNConfig(vocab_size=len(tokenizer), hidden_size=16)).save_pretrained(tmp_path / "rnn")
    make_model("attention", tokenizer, "qa", qa_head=True, mode="extractive").save_pretrained(tmp_path / "qa")
    save_model(tmp_path / "lm", tokenizer)
    TinyAttentionForCausalLM(TinyAttentionConfig(vocab_size=64, hidden_size=16)).save_pretrained(tmp_path / "bare")
    before = sorted(tmp_path.iterdir())

    with pytest.raises(ValueError, match="holds a 'tiny_rnn' model; only 'tiny_attention' models convert"):
        export_gguf(tmp_path / "rnn", tmp_path / "out.gguf")
    with pytest.raises(ValueError, match="holds a TinyAttentionForQuestionAnswering"):
        convert.main(["--to", "gguf", str(tmp_path / "qa"), str(tmp_path / "out.gguf")])
    with pytest.raises(ValueError, match="has no tokenizer"):
        export_gguf(tmp_path / "bare", tmp_path / "out.gguf")
    # A failure while writing removes the partial file.
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_gguf(tmp_path / "lm", tmp_path / "out.gguf")
    assert sorted(tmp_path.iterdir()) == before  # no OUT, no partial file beside it

    (tmp_path / "out.gguf").write_text("mine")
    with pytest.raises(FileExistsError, match="exists"):
        export_gguf(tmp_path / "lm", tmp_path / "out.gguf")
    assert (tmp_path / "out.gguf").read_text() == "mine"
