"""The trained tokenizers: lossless on any Unicode text, plain transformers files, the special tokens tasks need."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_tinylm.task_formats import ADDITIONAL_SPECIAL_TOKENS, SEPARATOR, build_prompt
from hf_tinylm.tokenization import SPECIAL_TOKENS, add_missing_special_tokens, train_tokenizer
from tests.helpers import run_without_hf_tinylm

CORPUS = ["First Citizen:\nBefore we proceed any further, hear me speak.\n", "All:\nSpeak, speak.\n"] * 20

TRICKY = [
    "",
    " ",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\rreturns\n\n",
    "NUL \x00 and other controls \x01\x1b\x7f",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧 (zero-width joiners)",
    "CJK 中文字符 日本語のテキスト 한국어",
    "combining marks: e\u0301 a\u0308\u0323 Z\u0351\u036b\u0343",
    "right-to-left: עברית العربية",
    "zero width \u200b\u200c\ufeff and non-breaking\u00a0space",
    "a byte token spelled out: <0x41> and <unk>",
    "\U0010fffd private use, \ud7ff, \ue000",
    f"task tokens in text: {SEPARATOR}{ADDITIONAL_SPECIAL_TOKENS[1]}",
]


@pytest.fixture(scope="module", params=["bpe", "char"])
def tokenizer(request):
    return train_tokenizer(CORPUS, request.param, vocab_size=400)


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_on_any_unicode(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_unseen_characters_are_bytes_not_unknown(tokenizer):
    ids = tokenizer.encode("中😀\x00")
    assert tokenizer.unk_token_id not in ids


def test_special_tokens_are_single_tokens_and_never_added_silently(tokenizer):
    for name, token in SPECIAL_TOKENS.items():
        assert getattr(tokenizer, name) == token
    ids = {tokenizer.convert_tokens_to_ids(token) for token in [*SPECIAL_TOKENS.values(), *ADDITIONAL_SPECIAL_TOKENS]}
    assert len(ids) == len(SPECIAL_TOKENS) + len(ADDITIONAL_SPECIAL_TOKENS)
    assert tokenizer.encode(SEPARATOR) == [tokenizer.convert_tokens_to_ids(SEPARATOR)]
    # A prompt is tokenized exactly as written: no bos/eos around it.
    prompt = build_prompt("summarization", "speak")
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode(prompt))[0] == "<|summarize|>"
    assert tokenizer.decode(tokenizer.encode(prompt)) == prompt


def test_vocabulary_size_is_respected():
    assert len(train_tokenizer(CORPUS, "bpe", vocab_size=300)) == 300
    char = train_tokenizer(CORPUS, "char", vocab_size=400)
    assert len(char) == len(set("".join(CORPUS))) + 256 + len(SPECIAL_TOKENS) + len(ADDITIONAL_SPECIAL_TOKENS)
    capped = train_tokenizer(CORPUS, "char", vocab_size=270)  # room for 1 character beside specials and bytes
    assert len(capped) == 270
    assert capped.decode(capped.encode(CORPUS[0])) == CORPUS[0]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least"):
        train_tokenizer(CORPUS, "bpe", vocab_size=100)
    with pytest.raises(ValueError, match="Unknown tokenizer type"):
        train_tokenizer(CORPUS, "wordpiece")


def test_saved_tokenizer_loads_with_plain_transformers(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    text = TRICKY[5] + TRICKY[7]
    result = run_without_hf_tinylm(
        f"""
        import json
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained({str(tmp_path)!r})
        ids = tokenizer.encode({text!r})
        print(json.dumps({{"ids": ids, "text": tokenizer.decode(ids), "pad": tokenizer.pad_token,
                          "extra": tokenizer.extra_special_tokens, "fast": tokenizer.is_fast}}))
        """,
        cwd=tmp_path,
    )
    assert result["ids"] == tokenizer.encode(text)
    assert result["text"] == text
    assert result["pad"] == SPECIAL_TOKENS["pad_token"]
    assert result["extra"] == ADDITIONAL_SPECIAL_TOKENS
    assert result["fast"]


def test_reused_tokenizer_gets_missing_tokens(tmp_path):
    bare = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1}, unk_token="<unk>"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="<unk>", eos_token="<unk>").save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)

    added = add_missing_special_tokens(tokenizer)

    assert added == 2 + len(ADDITIONAL_SPECIAL_TOKENS)  # pad, bos and the task tokens; unk and eos were there
    assert tokenizer.unk_token == tokenizer.eos_token == "<unk>"
    assert tokenizer.pad_token == SPECIAL_TOKENS["pad_token"]
    assert tokenizer.encode(SEPARATOR) == [tokenizer.convert_tokens_to_ids(SEPARATOR)]
    assert add_missing_special_tokens(tokenizer) == 0
