"""The translation, summarization and question-answering pipelines, for both model families: output contracts,
equality with a direct `generate()` / forward on the training format, batching and streaming, clear errors, and
the same outputs from a saved folder in a fresh process without hf_tinylm."""

import json
import re

import datasets
import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering, pipeline
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.pipelines.pt_utils import KeyDataset

from hf_tinylm import (
    TinyAttentionConfig,
    TinyLMQuestionAnsweringPipeline,
    TinyLMSummarizationPipeline,
    TinyLMTranslationPipeline,
    TinyRNNConfig,
)
from hf_tinylm.extractive_qa import _widen_to_words, context_room
from hf_tinylm.pipelines_tinylm import custom_pipelines
from hf_tinylm.task_formats import (
    CONFIG_KEY,
    QA_NO_ANSWER_INDEX,
    build_prompt,
    build_qa_question,
    build_truncated_prompt,
    task_settings,
)
from hf_tinylm.tokenization import train_tokenizer
from tests.helpers import run_without_hf_tinylm

FAMILIES = {
    "attention": lambda **settings: TinyAttentionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **settings,
    ),
    "rnn": lambda **settings: TinyRNNConfig(cell="lstm", hidden_size=32, num_hidden_layers=2, **settings),
}
SOURCE = "A man rides a red bike."
CONTEXT = "The tower stands in Paris. It was built in 1889 for the fair, and it is made of iron."
QUESTION = "Where is the tower?"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([SOURCE, CONTEXT, QUESTION, "XYZ marks the spot, quick brown fox."], "char", vocab_size=320)


def make_model(family, tokenizer, task, qa_head=False, dtype=torch.float32, **settings):
    """A random model of `family` that says it was trained for `task`, whose outputs depend on its whole input.

    At the usual initialization a tiny random model mostly echoes its last input token (for every prompt, the
    separator), so its weights are scaled up and its embeddings untied; and it generates only characters, never
    byte or special tokens, so its texts differ where its tokens do. Then a test comparing outputs can fail.
    """
    config = FAMILIES[family](
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        task_specific_params={CONFIG_KEY: task_settings(task, **settings)} if task else None,
    )
    torch.manual_seed(0)
    auto_class = AutoModelForQuestionAnswering if qa_head else AutoModelForCausalLM
    model = auto_class.from_config(config).to(dtype).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(6.0)
    if not qa_head:
        vocab = tokenizer.get_vocab()
        model.generation_config.suppress_tokens = [
            vocab[token] for token in vocab if token.startswith("<0x") or token in tokenizer.all_special_tokens
        ]
    return model


def direct_generation(model, tokenizer, prompt, new_tokens):
    """What the pipeline must return: greedy generation right after the training prompt."""
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    output = model.generate(**inputs, min_new_tokens=new_tokens, max_new_tokens=new_tokens, do_sample=False)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


# ---- translation and summarization ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "task, pipeline_class, key, prompt_args",
    [
        ("translation", TinyLMTranslationPipeline, "translation", {"src_lang": "en", "tgt_lang": "de"}),
        ("summarization", TinyLMSummarizationPipeline, "summary", {}),
    ],
)
def test_generation_pipeline_continues_the_training_prompt(family, tokenizer, task, pipeline_class, key, prompt_args):
    model = make_model(family, tokenizer, task, **prompt_args)
    pipe = pipeline(task, model=model, tokenizer=tokenizer, device="cpu")
    assert type(pipe) is pipeline_class

    expected = direct_generation(model, tokenizer, build_prompt(task, SOURCE, **prompt_args), new_tokens=6)
    # The classic `min_length`/`max_length` bound the generated text, not prompt + text.
    (record,) = pipe(SOURCE, min_length=6, max_length=6)
    assert record == {f"{key}_text": tokenizer.decode(expected, skip_special_tokens=True)}
    (record,) = pipe(SOURCE, min_length=6, max_length=6, return_tensors=True)
    assert list(record) == [f"{key}_token_ids"] and record[f"{key}_token_ids"].tolist() == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_pipeline_batches_lists_datasets_and_generators(family, tokenizer):
    # float64, so that a padded batch computes the same greedy choices as one input at a time
    model = make_model(family, tokenizer, "summarization", dtype=torch.float64)
    pipe = pipeline("summarization", model=model, tokenizer=tokenizer, device="cpu", max_length=5)
    texts = [SOURCE, CONTEXT, "A quick fox."]
    singles = [pipe(text)[0] for text in texts]
    assert len({record["summary_text"] for record in singles}) == 3  # the outputs depend on the input

    assert pipe(texts) == singles
    assert pipe(texts, batch_size=2) == singles  # left-padded batches
    assert pipe(tuple(texts)) == singles
    table = datasets.Dataset.from_dict({"text": texts})
    assert pipe(table["text"]) == singles
    assert [records[0] for records in pipe(KeyDataset(table, "text"), batch_size=2)] == singles
    stream = pipe(text for text in texts)
    assert not isinstance(stream, list)
    assert [records[0] for records in stream] == singles

    beams = pipe(SOURCE, num_beams=3, num_return_sequences=2)
    assert len(beams) == 2 and all(set(record) == {"summary_text"} for record in beams)


def test_translation_pair_comes_from_the_call_when_the_model_knows_several(tokenizer):
    model = make_model("attention", tokenizer, "translation", language_pairs=[["en", "de"], ["en", "fr"]])
    pipe = pipeline("translation", model=model, tokenizer=tokenizer, device="cpu", max_length=4, min_length=4)
    expected = direct_generation(
        model, tokenizer, build_prompt("translation", SOURCE, src_lang="en", tgt_lang="fr"), 4
    )
    assert pipe(SOURCE, tgt_lang="fr") == [{"translation_text": tokenizer.decode(expected, skip_special_tokens=True)}]
    assert pipe(SOURCE, src_lang="en", tgt_lang="fr") == pipe(SOURCE, tgt_lang="fr")
    with pytest.raises(ValueError, match="en->de, en->fr: choose one"):
        pipe(SOURCE)
    with pytest.raises(ValueError, match="not trained to translate de->en"):
        pipe(SOURCE, src_lang="de", tgt_lang="en")
    with pytest.raises(ValueError, match="not trained to translate any language->xx"):
        pipe(SOURCE, tgt_lang="xx")

    untagged = pipeline("translation", model=make_model("attention", tokenizer, "translation"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="trained without language tags"):
        untagged(SOURCE, tgt_lang="de")


def test_over_long_input_raises_or_is_truncated(tokenizer):
    model = make_model("attention", tokenizer, "summarization")  # reads at most 128 tokens
    pipe = pipeline("summarization", model=model, tokenizer=tokenizer, device="cpu")
    long_text = CONTEXT * 2
    with pytest.raises(ValueError, match=r"is 1\d\d tokens long .* at most 128 tokens.*truncation=True"):
        pipe(long_text)

    (record,) = pipe(long_text, truncation=True, max_length=10, min_length=10)
    prompt = build_truncated_prompt(tokenizer, "summarization", long_text, 128 - 10)
    assert record["summary_text"] == tokenizer.decode(
        direct_generation(model, tokenizer, prompt, 10), skip_special_tokens=True
    )
    with pytest.raises(ValueError, match="leaves no room for the prompt"):
        pipe(long_text, truncation=True, max_length=128)
    # No length asked for: the built-in 128-token default gives way (half the context), as it does untruncated.
    (record,) = pipe(long_text, truncation=True, min_length=64)
    prompt = build_truncated_prompt(tokenizer, "summarization", long_text, 128 - 64)
    assert record["summary_text"] == tokenizer.decode(
        direct_generation(model, tokenizer, prompt, 64), skip_special_tokens=True
    )


def test_generation_pipeline_takes_the_v4_text2text_arguments(tokenizer):
    pipe = pipeline("summarization", model=make_model("attention", tokenizer, "summarization"), tokenizer=tokenizer)
    (ids,) = pipe(SOURCE, max_length=6, return_tensors=True)
    assert (
        pipe(SOURCE, max_length=6, return_text=False)[0]["summary_token_ids"].tolist()
        == ids["summary_token_ids"].tolist()
    )
    assert (
        pipe(SOURCE, max_length=6, return_type="tensors")[0]["summary_token_ids"].tolist()
        == ids["summary_token_ids"].tolist()
    )
    text = pipe(SOURCE, max_length=6, return_text=True)[0]["summary_text"]
    assert text == tokenizer.decode(ids["summary_token_ids"], skip_special_tokens=True) and len(text) == 6
    # stop_sequence ends generation at the first occurrence (generation's `stop_strings`).
    stop = text[2]
    stopped = pipe(SOURCE, max_length=6, stop_sequence=stop)[0]["summary_text"]
    assert stopped == text[: text.index(stop) + 1]


def test_generation_pipeline_refuses_other_models_and_empty_inputs(tokenizer):
    with pytest.raises(ValueError, match="The 'translation' pipeline cannot use this model: it was trained for summarization"):
        pipeline("translation", model=make_model("rnn", tokenizer, "summarization"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="trained for plain language modelling.*Use pipeline\\(\"text-generation\""):
        pipeline("summarization", model=make_model("rnn", tokenizer, None), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no language-modelling head"):
        pipeline(
            "summarization", model=make_model("rnn", tokenizer, "summarization", qa_head=True), tokenizer=tokenizer
        )

    pipe = pipeline("summarization", model=make_model("rnn", tokenizer, "summarization"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="input is empty"):
        pipe("  ")
    with pytest.raises(TypeError, match="takes strings"):
        pipe([3])
    assert pipe([]) == [] and pipe(()) == []
    with pytest.raises(ValueError, match="`max_new_tokens` or its classic name"):
        pipe(SOURCE, max_length=3, max_new_tokens=3)


@pytest.mark.parametrize("family", FAMILIES)
def test_generative_question_answering_runs_in_the_stock_text_generation_pipeline(family, tokenizer):
    model = make_model(family, tokenizer, "qa", mode="generative")
    prompt = build_prompt("qa", CONTEXT, question=QUESTION)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    (record,) = generator(prompt, return_full_text=False, min_new_tokens=5, max_new_tokens=5, do_sample=False)
    expected = direct_generation(model, tokenizer, prompt, 5)
    assert record == {"generated_text": tokenizer.decode(expected, skip_special_tokens=True)}


# ---- question answering -----------------------------------------------------------------------------------------


def best_span_by_brute_force(model, tokenizer, question, context, max_answer_len):
    """The classic pipeline's rule, written out slowly: the context span (no whitespace at either edge, at most
    `max_answer_len` tokens) with the largest P(start) * P(end), the softmaxes taken over those tokens only."""
    encoded = tokenizer(build_qa_question(question), context, add_special_tokens=False, return_offsets_mapping=True)
    with torch.no_grad():
        output = model(input_ids=torch.tensor([encoded["input_ids"]]))
    candidates = [
        i
        for i, (sequence, (start, end)) in enumerate(zip(encoded.sequence_ids(), encoded["offset_mapping"]))
        if sequence == 1 and context[start:end].strip()
    ]
    start_probs = output.start_logits[0, candidates].softmax(-1)
    end_probs = output.end_logits[0, candidates].softmax(-1)
    best = max(
        (start_probs[i] * end_probs[j], candidates[i], candidates[j])
        for i in range(len(candidates))
        for j in range(len(candidates))
        if 0 <= candidates[j] - candidates[i] < max_answer_len
    )
    offsets = encoded["offset_mapping"]
    return best[0].item(), offsets[best[1]][0], offsets[best[2]][1]


@pytest.mark.parametrize("family", FAMILIES)
def test_question_answering_contract_and_scores(family, tokenizer):
    model = make_model(family, tokenizer, "qa", qa_head=True, mode="extractive")
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    assert type(qa) is TinyLMQuestionAnsweringPipeline

    # Token spans as the model scores them (`align_to_words=False`), to compare with the brute-force search.
    answer = qa(question=QUESTION, context=CONTEXT, max_answer_len=8, align_to_words=False)
    assert set(answer) == {"score", "start", "end", "answer"}
    assert isinstance(answer["start"], int) and isinstance(answer["end"], int) and 0 < answer["score"] <= 1
    assert answer["answer"] == CONTEXT[answer["start"] : answer["end"]] == answer["answer"].strip() != ""
    score, start, end = best_span_by_brute_force(model, tokenizer, QUESTION, CONTEXT, max_answer_len=8)
    assert (answer["start"], answer["end"]) == (start, end) and answer["score"] == pytest.approx(score)
    assert qa(QUESTION, CONTEXT, max_answer_len=8, align_to_words=False) == answer
    assert qa({"question": QUESTION, "context": CONTEXT}, max_answer_len=8, align_to_words=False) == answer

    answers = qa(question=QUESTION, context=CONTEXT, top_k=4, max_answer_len=3, align_to_words=False)
    assert len(answers) == 4 and len({(a["start"], a["end"]) for a in answers}) == 4
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    for a in answers:
        assert a["answer"] == CONTEXT[a["start"] : a["end"]] and 1 <= len(tokenizer.tokenize(a["answer"])) <= 3


def test_question_answering_defaults_to_the_trained_answer_length_and_strips_the_question(tokenizer):
    model = make_model("attention", tokenizer, "qa", qa_head=True, mode="extractive", max_answer_length=3)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    answers = qa(question=QUESTION, context=CONTEXT, top_k=10, align_to_words=False)
    assert max(len(tokenizer.tokenize(a["answer"])) for a in answers) == 3
    assert qa(question=QUESTION, context=CONTEXT, top_k=10, align_to_words=False, max_answer_len=5) != answers
    # Training strips the question; so does the pipeline, so padding it with spaces changes nothing.
    assert qa(question=f"  {QUESTION} ", context=CONTEXT) == qa(question=QUESTION, context=CONTEXT)


def test_question_answering_defaults_to_the_trained_windows(tokenizer):
    def windows(qa, question=QUESTION, context=CONTEXT, **kwargs):
        example = {"question": question, "context": context}
        return [window["input_ids"][0].tolist() for window in qa.preprocess(example, **kwargs)]

    model = make_model("attention", tokenizer, "qa", qa_head=True, mode="extractive", max_seq_length=48, doc_stride=12)
    trained = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    assert len(windows(trained)) > 3 and windows(trained) == windows(trained, max_seq_len=48, doc_stride=12)
    assert trained(question=QUESTION, context=CONTEXT, top_k=3) == trained(
        question=QUESTION, context=CONTEXT, top_k=3, max_seq_len=48, doc_stride=12
    )
    # A saved stride that leaves a long question's windows no room to advance gives way to the classic default.
    long_question = "Where, in which city, is the tower?"
    room = context_room(tokenizer, long_question, 48)
    assert 0 < room <= 12
    assert windows(trained, long_question) == windows(trained, long_question, max_seq_len=48, doc_stride=room // 2)
    # Without saved windows: the classic defaults, 384 tokens (at most the model's 128) and a stride of half the room.
    classic = pipeline("question-answering", model=make_model("attention", tokenizer, "qa", qa_head=True),
                       tokenizer=tokenizer, device="cpu")  # fmt: skip
    stride, context = min(128, context_room(tokenizer, QUESTION, 128) // 2), f"{CONTEXT} {CONTEXT}"
    assert len(windows(classic, context=context)) > 1
    assert windows(classic, context=context) == windows(classic, context=context, max_seq_len=128, doc_stride=stride)


def is_word_boundary(text, index):
    return index in (0, len(text)) or not (text[index - 1].isalnum() and text[index].isalnum())


@pytest.mark.parametrize("family", FAMILIES)
def test_question_answering_aligns_answers_to_whole_words(family, tokenizer):
    model = make_model(family, tokenizer, "qa", qa_head=True)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    # A character tokenizer and a random model: token spans cut words, as sub-word tokenizers also can.
    cut = qa(question=QUESTION, context=CONTEXT, top_k=20, max_answer_len=6, align_to_words=False)
    assert any(not (is_word_boundary(CONTEXT, a["start"]) and is_word_boundary(CONTEXT, a["end"])) for a in cut)

    aligned = qa(question=QUESTION, context=CONTEXT, top_k=20, max_answer_len=6)
    for a in aligned:
        assert is_word_boundary(CONTEXT, a["start"]) and is_word_boundary(CONTEXT, a["end"]), a
        assert a["answer"] == CONTEXT[a["start"] : a["end"]]
    # Each aligned answer is a cut one widened, with the best score among the cut spans that widen to it.
    widened = {}
    for a in cut:
        start, end = a["start"], a["end"]
        while not is_word_boundary(CONTEXT, start):
            start -= 1
        while not is_word_boundary(CONTEXT, end):
            end += 1
        widened[start, end] = max(a["score"], widened.get((start, end), 0.0))
    best = max(widened, key=widened.get)
    assert (aligned[0]["start"], aligned[0]["end"]) == best
    assert aligned[0]["score"] == pytest.approx(widened[best])


def test_question_answering_returns_top_k_distinct_answers_after_aligning(tokenizer):
    model = make_model("attention", tokenizer, "qa", qa_head=True)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    for top_k in (3, 8):
        answers = qa(question=QUESTION, context=CONTEXT, top_k=top_k)  # one window: words from many token spans
        assert len(answers) == top_k == len({(a["start"], a["end"]) for a in answers})


def test_align_to_words_keeps_accents_and_emoji_whole():
    text = "Cafe\u0301 Zoe\u0308, 1889 \U0001f44d\U0001f3fd and \U0001f1eb\U0001f1f7 too."
    cafe = text.index("Cafe")
    assert _widen_to_words(text, cafe, cafe + 4) == (cafe, cafe + 5)  # the combining accent stays
    thumb = text.index("\U0001f44d")
    assert _widen_to_words(text, thumb, thumb + 1) == (thumb, thumb + 2)  # with its skin tone
    flag = text.index("\U0001f1eb")
    assert _widen_to_words(text, flag + 1, flag + 2) == (flag, flag + 2)  # both regional indicators
    zoe = text.index("Zoe")
    assert _widen_to_words(text, zoe, zoe + 2) == (zoe, zoe + 4)  # up to, not into, the comma


def test_question_answering_input_mistakes_fail_at_once(tokenizer):
    qa = pipeline("question-answering", model=make_model("attention", tokenizer, "qa", qa_head=True),
                  tokenizer=tokenizer, device="cpu")  # fmt: skip
    with pytest.raises(TypeError, match="needs a question and a context"):
        qa("Where is the tower?")
    with pytest.raises(ValueError, match="needs both `question` and `context`"):
        qa(context=CONTEXT)
    with pytest.raises(ValueError, match="as strings, or as lists of the same length"):
        qa(question=3, context=CONTEXT)
    with pytest.raises(ValueError, match="`top_k` must be an integer of at least 1, got 2.0"):
        qa(question=QUESTION, context=CONTEXT, top_k=2.0)
    assert qa([]) == [] and qa(question=[], context=[]) == []
    example = {"question": QUESTION, "context": CONTEXT}
    assert qa(X=example) == qa(data=example) == qa(example)  # the v4 keywords


def test_question_answering_cuts_long_questions_to_max_question_len(tokenizer, caplog):
    model = make_model("attention", tokenizer, "qa", qa_head=True)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu", max_seq_len=64)
    long_question = "Where is the tower? " * 8  # alone, more than the 64-token window holds
    with pytest.raises(ValueError, match="question alone fills"):
        qa(question=long_question, context=CONTEXT)
    with caplog.at_level("WARNING"):
        answer = qa(question=long_question, context=CONTEXT, max_question_len=12)
    assert "cut to `max_question_len` (12)" in caplog.text
    shortened = long_question[:12]  # a character tokenizer: 12 tokens are 12 characters
    assert answer == qa(question=shortened, context=CONTEXT)
    assert qa(question=QUESTION, context=CONTEXT, max_question_len=100) == qa(question=QUESTION, context=CONTEXT)
    with pytest.raises(ValueError, match="`max_question_len` must be an integer of at least 1"):
        qa(question=QUESTION, context=CONTEXT, max_question_len=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_question_answering_batches_lists_datasets_and_generators(family, tokenizer):
    model = make_model(family, tokenizer, "qa", qa_head=True, dtype=torch.float64)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu", max_seq_len=40, doc_stride=8)
    examples = [
        {"question": QUESTION, "context": CONTEXT},  # several windows
        {"question": "When?", "context": "Built in 1889."},
        {"question": "Made of what?", "context": CONTEXT},
    ]
    singles = [qa(example) for example in examples]
    assert qa(examples) == singles
    assert qa(examples, batch_size=4) == singles  # windows of different lengths, padded together
    tokenizer.padding_side = "left"
    try:
        assert qa(examples, batch_size=4) == singles
    finally:
        tokenizer.padding_side = "right"
    assert qa(question=[e["question"] for e in examples], context=[e["context"] for e in examples]) == singles
    assert qa(question=[QUESTION, "Made of what?"], context=CONTEXT) == [singles[0], singles[2]]
    table = datasets.Dataset.from_dict({key: [e[key] for e in examples] for key in ("question", "context")})
    assert list(qa(table, batch_size=2)) == singles
    stream = qa(example for example in examples)
    assert not isinstance(stream, list) and list(stream) == singles


class TokenIdentity(nn.Module):
    """Stands in for a QA model's backbone: each position's features are the one-hot of its token, so the head's
    logits depend on the token alone and the test decides where the answer is."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, input_ids, **kwargs):
        return BaseModelOutputWithPast(last_hidden_state=nn.functional.one_hot(input_ids, self.vocab_size).float())


def rigged_qa_model(tokenizer, start_char, end_char, no_answer_logit):
    model = make_model("attention", tokenizer, "qa", qa_head=True)
    model.model = TokenIdentity(len(tokenizer))
    model.qa_outputs = nn.Linear(len(tokenizer), 2, bias=False)
    nn.init.zeros_(model.qa_outputs.weight)
    vocab = tokenizer.get_vocab()
    no_answer_token = tokenizer.convert_tokens_to_ids(
        tokenizer.tokenize(build_qa_question(QUESTION))[QA_NO_ANSWER_INDEX]
    )
    with torch.no_grad():
        model.qa_outputs.weight[0, vocab[start_char]] = 10.0
        model.qa_outputs.weight[1, vocab[end_char]] = 10.0
        model.qa_outputs.weight[:, no_answer_token] = no_answer_logit
    return model


def test_question_answering_finds_answers_in_any_window_at_their_character_offsets(tokenizer):
    # Answers "X...Z" start at an X and end at a Z. The context is many windows long; the two answers sit in
    # different windows, neither of them the first.
    filler = "the quick brown fox " * 6
    context = f"{filler}X marks Z {filler}and X then Z {filler}"
    model = rigged_qa_model(tokenizer, "X", "Z", no_answer_logit=15.0)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    windows = list(qa.preprocess({"question": QUESTION, "context": context}, max_seq_len=48, doc_stride=12))
    assert len(windows) > 6

    answers = qa(question=QUESTION, context=context, top_k=2, max_seq_len=48, doc_stride=12, max_answer_len=12)
    expected = [(m.start(), m.end()) for m in re.finditer(r"X[^XZ]*Z", context)]
    assert sorted((a["start"], a["end"]) for a in answers) == expected
    assert {a["answer"] for a in answers} == {"X marks Z", "X then Z"}
    assert all(a["score"] > 0.99 for a in answers)

    # Too short a span for either answer: what wins is not "X...Z".
    short = qa(question=QUESTION, context=context, max_seq_len=48, doc_stride=12, max_answer_len=5)
    assert not re.fullmatch(r"X[^XZ]*Z", short["answer"])
    # The question token outscores every span, so with `handle_impossible_answer` the empty answer wins.
    impossible = qa(question=QUESTION, context=context, max_seq_len=48, doc_stride=12, handle_impossible_answer=True)
    assert impossible["answer"] == "" and impossible["start"] == impossible["end"] == 0 and impossible["score"] > 0.9


def test_question_answering_refuses_other_models_and_bad_inputs(tokenizer, tmp_path):
    causal = make_model("attention", tokenizer, "qa", mode="generative")
    causal.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trained for generative question answering.*pipeline\\(\"text-generation\""):
        pipeline("question-answering", model=str(tmp_path), trust_remote_code=True, device="cpu")
    with pytest.raises(ValueError, match="The 'question-answering' pipeline cannot use this model: it was trained for summarization"):
        pipeline(
            "question-answering",
            model=make_model("rnn", tokenizer, "summarization", qa_head=True),
            tokenizer=tokenizer,
        )

    qa = pipeline(
        "question-answering", model=make_model("attention", tokenizer, "qa", qa_head=True), tokenizer=tokenizer
    )
    with pytest.raises(ValueError, match="non-empty context"):
        qa(question=QUESTION, context=" ")
    with pytest.raises(ValueError, match="non-empty question"):
        qa(question="", context=CONTEXT)
    with pytest.raises(ValueError, match="more than this model reads"):
        qa(question=QUESTION, context=CONTEXT, max_seq_len=200)
    question_length = len(tokenizer(build_qa_question(QUESTION), add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError, match="`doc_stride` \\(30\\) must be smaller than the 20 context tokens"):
        qa(question=QUESTION, context=CONTEXT, max_seq_len=question_length + 20, doc_stride=30)
    with pytest.raises(ValueError, match="question alone fills"):
        qa(question=QUESTION, context=CONTEXT, max_seq_len=question_length)
    with pytest.raises(ValueError, match="same length"):
        qa(question=[QUESTION, QUESTION], context=[CONTEXT])
    with pytest.raises(ValueError, match="`top_k` must be an integer of at least 1"):
        qa(question=QUESTION, context=CONTEXT, top_k=0)


# ---- saved folders, loaded where hf_tinylm is not installed ------------------------------------------------------


WRONG_PIPELINES = {  # folder -> a pipeline it was not trained for
    "translation": "summarization",
    "summarization": "translation_en_to_de",
    "question-answering": "text-generation",
    "text-generation": "question-answering",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_folders_run_every_pipeline_in_a_fresh_process_without_hf_tinylm(family, tokenizer, tmp_path):
    models = {
        "translation": make_model(family, tokenizer, "translation", src_lang="en", tgt_lang="de"),
        "summarization": make_model(family, tokenizer, "summarization"),
        "question-answering": make_model(family, tokenizer, "qa", qa_head=True, mode="extractive"),
        "text-generation": make_model(family, tokenizer, "qa", mode="generative"),
    }
    prompt = build_prompt("qa", CONTEXT, question=QUESTION)
    calls = {  # task -> (positional input, keyword arguments), run in both processes
        "translation": ([SOURCE, CONTEXT], {"max_length": 6, "min_length": 6}),
        "summarization": (CONTEXT, {"max_length": 6, "min_length": 6}),
        "question-answering": ({"question": QUESTION, "context": CONTEXT}, {"top_k": 2, "max_seq_len": 48}),
        "text-generation": (
            prompt,
            {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False, "return_full_text": False},
        ),
    }
    expected = {}
    for task, model in models.items():
        folder = tmp_path / task
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        files = {path.name for path in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
        assert ("generation_config.json" in files) == model.can_generate()
        shipped = {"pipelines_tinylm.py", "extractive_qa.py", "task_formats.py", "tinylm_common.py"}
        assert {*shipped, f"modeling_tiny_{family}.py"} <= files
        listed = json.loads((folder / "config.json").read_text())["custom_pipelines"]
        assert listed == custom_pipelines(model) == ({} if task == "text-generation" else {task: listed[task]})
        inputs, kwargs = calls[task]
        expected[task] = pipeline(task, model=model, tokenizer=tokenizer, device="cpu")(inputs, **kwargs)

    got = run_without_hf_tinylm(
        f"""
        import json
        import torch
        from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, pipeline

        root, calls = {str(tmp_path)!r}, {json.dumps(calls)!r}
        results, classes = {{}}, {{}}
        for task, (inputs, kwargs) in json.loads(calls).items():
            folder = f"{{root}}/{{task}}"
            pipe = pipeline(task, model=folder, trust_remote_code=True, device="cpu")
            results[task] = pipe(inputs, **kwargs)
            if task != "text-generation":  # the folder names its one pipeline: no task name needed
                assert pipeline(model=folder, trust_remote_code=True, device="cpu")(inputs, **kwargs) == results[task]
            classes[task] = [type(obj).__module__ for obj in (pipe, pipe.model, AutoConfig.from_pretrained(folder, trust_remote_code=True))]
            classes[task].append(type(AutoTokenizer.from_pretrained(folder, trust_remote_code=True)).__name__)

        # A pipeline the folder was not trained for: the folder says what it was trained for.
        refusals = {{}}
        for task, other in json.loads({json.dumps(WRONG_PIPELINES)!r}).items():
            try:
                pipeline(other, model=f"{{root}}/{{task}}", trust_remote_code=True, device="cpu")
                refusals[task] = "accepted"
            except ValueError as error:
                refusals[task] = str(error)

        # Remote code saves a complete folder too (no card: writing one needs hf_tinylm).
        model = AutoModelForQuestionAnswering.from_pretrained(f"{{root}}/question-answering", trust_remote_code=True)
        model.save_pretrained(f"{{root}}/resaved")
        resaved = json.load(open(f"{{root}}/resaved/config.json"))
        import os
        print(json.dumps({{"results": results, "classes": classes, "refusals": refusals, "resaved": sorted(os.listdir(f"{{root}}/resaved")),
                          "custom_pipelines": resaved["custom_pipelines"]}}))
        """,
        cwd=tmp_path,
    )
    for task, result in got["results"].items():
        if task == "question-answering":  # scores went through JSON
            assert [{**a, "score": pytest.approx(a["score"])} for a in expected[task]] == result
        else:
            assert result == expected[task]
    for task, (pipeline_module, model_module, config_module, tokenizer_class) in got["classes"].items():
        assert model_module.startswith("transformers_modules.") and config_module.startswith("transformers_modules.")
        assert pipeline_module.startswith("transformers_modules." if task != "text-generation" else "transformers.")
        assert tokenizer_class == "TokenizersBackend" or tokenizer_class.endswith("Fast")
    assert {*shipped, "model.safetensors"} <= set(got["resaved"])
    assert "README.md" not in got["resaved"]
    assert got["custom_pipelines"] == custom_pipelines(models["question-answering"])
    # v5 alone would say the task "has been removed", and 4.x would wrap the wrong model in its own pipeline.
    for task, trained in {
        "translation": "translation \\(en->de\\)",
        "summarization": "summarization",
        "question-answering": "extractive question answering",
        "text-generation": "generative question answering",
    }.items():
        use = "text-generation" if task == "text-generation" else task
        assert re.fullmatch(
            f"The '{WRONG_PIPELINES[task]}' pipeline cannot use this model: it was trained for {trained}.*"
            f'Use pipeline\\("{use}", model=..., trust_remote_code=True\\).*',
            got["refusals"][task],
        ), got["refusals"][task]

