"""Train the tokenizers hf_tinylm models use, and make reused ones fit the task formats.

Both kinds are plain `tokenizers` pipelines wrapped as a fast tokenizer, so a saved folder loads with
`AutoTokenizer.from_pretrained(folder)` and nothing from hf_tinylm. Neither adds special tokens on its own: training
code appends eos where an example ends, and a prompt is tokenized exactly as `task_formats.build_prompt` wrote it.
Both carry `CHAT_TEMPLATE`, so conversational data (lists of `{"role", "content"}` messages) formats with
`apply_chat_template`, and TRL's `SFTTrainer(..., args=SFTConfig(assistant_only_loss=True))` can mask all but the
assistant's words. Both are lossless: `decode(encode(text)) == text` for any Unicode string, because no normalizer
rewrites the input and every character is either in the vocabulary or spelled as its UTF-8 bytes.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .task_formats import ADDITIONAL_SPECIAL_TOKENS

TOKENIZER_TYPES = ("bpe", "char")
SPECIAL_TOKENS = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>", "unk_token": "<|unk|>"}
_ALL_SPECIAL = [*SPECIAL_TOKENS.values(), *ADDITIONAL_SPECIAL_TOKENS]
_BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]

# Each turn is "<|bos|>{role}\n{content}<|eos|>", written with the tokenizer's own bos/eos so a reused tokenizer
# (`tokenizer.chat_template = CHAT_TEMPLATE`) works too. The assistant's content and its end-of-turn eos lie inside
# `{% generation %}`: `return_assistant_tokens_mask` marks exactly those tokens, so the model learns to stop, and
# `generate()` stops at the eos. `add_generation_prompt` opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ bos_token + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ bos_token + 'assistant\n' }}{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str | list[str]], tokenizer_type: str = "bpe", vocab_size: int = 2048
) -> PreTrainedTokenizerFast:
    """Train a tokenizer of at most `vocab_size` tokens (special tokens included) on `texts` (strings, or batches of
    strings as `datasets` yields them).

    "bpe" is byte-level BPE (GPT-2 style): the 256 byte symbols are the base alphabet, so nothing is ever unknown.
    "char" has one token per character seen in training (the most frequent ones, if `vocab_size` is smaller) plus
    the 256 byte tokens, which spell out any other character: small corpora such as Tiny Shakespeare get a tiny
    vocabulary that still round-trips text it never saw.
    """
    if tokenizer_type not in TOKENIZER_TYPES:
        raise ValueError(f"Unknown tokenizer type {tokenizer_type!r}; expected one of {', '.join(TOKENIZER_TYPES)}.")
    minimum = len(_ALL_SPECIAL) + 256
    if vocab_size < minimum:
        raise ValueError(
            f"`vocab_size` must be at least {minimum} (the special tokens plus the 256 bytes), got {vocab_size}."
        )
    if tokenizer_type == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        # Offsets without the leading space a byte-level token carries, so answer spans start at the word.
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=_ALL_SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
    else:
        counts = Counter()
        for batch in texts:
            for text in [batch] if isinstance(batch, str) else batch:
                counts.update(text)
        chars = sorted(char for char, _ in counts.most_common(vocab_size - minimum))
        vocab = {token: index for index, token in enumerate([*_ALL_SPECIAL, *_BYTE_TOKENS, *chars])}
        # BPE without merges is a character model; `byte_fallback` spells unseen characters as <0xNN> tokens.
        tokenizer = Tokenizer(
            models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token=SPECIAL_TOKENS["unk_token"])
        )
        tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        tokenizer.add_special_tokens(_ALL_SPECIAL)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
        extra_special_tokens=list(ADDITIONAL_SPECIAL_TOKENS),
        **SPECIAL_TOKENS,
    )


def make_tokenizer_config_portable(folder) -> None:
    """Rewrite a saved `tokenizer_config.json` in the form every supported transformers release reads (4.57 to 5.x).

    transformers 5 writes its class as `TokenizersBackend`, which 4.x does not have, and the task tokens as an
    `extra_special_tokens` list, which 4.x reads as a dict of named tokens. `PreTrainedTokenizerFast` (5.x's alias
    of the same class) and `additional_special_tokens` load as the same tokenizer on every release, with the model
    inputs named.
    """
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    # 4.x's default adds `token_type_ids`, which these models (and generate()) refuse.
    config.setdefault("model_input_names", ["input_ids", "attention_mask"])
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def vocabulary_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary (every token and its id), saved in the model's config so that a
    different tokenizer of the same size is recognised when the model is trained further."""
    vocabulary = json.dumps(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]), ensure_ascii=False)
    return hashlib.sha256(vocabulary.encode("utf-8")).hexdigest()[:16]


def add_missing_special_tokens(tokenizer) -> int:
    """Give a reused tokenizer (e.g. GPT-2's) the pad token and task-format tokens it lacks; returns how many were added.

    A model trained before with this tokenizer then needs `resize_token_embeddings(len(tokenizer))`.
    """
    special = {}
    for name, token in SPECIAL_TOKENS.items():
        if getattr(tokenizer, name) is None:
            special[name] = token
    vocab = tokenizer.get_vocab()
    missing = [token for token in ADDITIONAL_SPECIAL_TOKENS if token not in vocab]
    if missing:
        special["extra_special_tokens"] = missing
    return tokenizer.add_special_tokens(special, replace_extra_special_tokens=False) if special else 0
