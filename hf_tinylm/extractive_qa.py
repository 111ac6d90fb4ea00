"""Extractive question answering in one place: how a question and its context become the windows a span head reads,
and how the head's start/end logits over those windows become answers.

Training labels, evaluation (the EM/F1 a model card reports) and the question-answering pipeline all use these
functions, so the scores on a card are those of the answers pipeline users get. Copied into every saved model
folder: standard library, torch and the other shipped modules only.
"""

import unicodedata

import torch

from .task_formats import QA_NO_ANSWER_INDEX, build_qa_question


def context_room(tokenizer, question: str, max_seq_length: int) -> int:
    """How many context tokens a window of `max_seq_length` tokens holds next to `question` (written by
    `build_qa_question`). A `doc_stride` must be smaller, or the windows of a long context could not advance."""
    return max_seq_length - len(tokenizer(build_qa_question(question), add_special_tokens=False)["input_ids"])


def question_windows(
    tokenizer, questions: list[str], contexts: list[str], max_seq_length: int, doc_stride: int, answer_spans=None
) -> dict[str, list]:
    """Each question with its context, cut into windows of at most `max_seq_length` tokens that overlap by
    `doc_stride` context tokens, each starting with the question (`build_qa_question`; no other special tokens).

    Per window: `input_ids`; `example`, the index of its question; `offsets`, per token the (start, end) characters in
    the context of a token that may start or end an answer, None elsewhere (the question, whitespace-only tokens).
    Offsets leave out the spaces a token carries (byte-level BPE's " word"), so an answer never begins or ends with
    a space. Given `answer_spans` ((start, end) characters of each question's
    answer), also the training labels `start_positions`/`end_positions`: the first and last tokens of the answer, or
    `QA_NO_ANSWER_INDEX` for both when the window does not hold the whole answer.
    """
    encoded = tokenizer(
        [build_qa_question(question) for question in questions],
        list(contexts),
        truncation="only_second",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        add_special_tokens=False,
    )
    windows = {"input_ids": encoded["input_ids"], "example": encoded["overflow_to_sample_mapping"], "offsets": []}
    if answer_spans is not None:
        windows.update(start_positions=[], end_positions=[])
    for index, example in enumerate(windows["example"]):
        in_context = [
            tuple(span) if sequence == 1 else None
            for span, sequence in zip(encoded["offset_mapping"][index], encoded.sequence_ids(index))
        ]
        windows["offsets"].append([span and _without_spaces(contexts[example], *span) for span in in_context])
        if answer_spans is not None:
            first, last = _answer_tokens(in_context, *answer_spans[example])
            windows["start_positions"].append(first)
            windows["end_positions"].append(last)
    return windows


def _without_spaces(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span [start, end) of `text` less the whitespace at its edges; None when that is all it holds."""
    word = text[start:end]
    if not word.strip():
        return None
    start += len(word) - len(word.lstrip())
    return start, start + len(word.strip())


def _answer_tokens(in_context: list, answer_start: int, answer_end: int) -> tuple[int, int]:
    """The first and last context tokens the answer's characters touch, or `QA_NO_ANSWER_INDEX` twice when the
    window's context does not hold all of them."""
    spans = [span for span in in_context if span is not None]
    if not (spans[0][0] <= answer_start and spans[-1][1] >= answer_end):
        return QA_NO_ANSWER_INDEX, QA_NO_ANSWER_INDEX
    inside = [i for i, span in enumerate(in_context) if span and span[0] < answer_end and span[1] > answer_start]
    return inside[0], inside[-1]


def best_answers(
    context: str,
    windows,
    max_answer_length: int,
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    align_to_words: bool = True,
) -> list[dict]:
    """The `top_k` best answers to one question over all the windows of its context, best first, each
    `{"score", "start", "end", "answer"}` with `answer == context[start:end]`.

    `windows` yields per window its start logits, its end logits (one per token; any padding after them is ignored)
    and its `offsets` (`question_windows`). Within a window, P(start) and P(end) are softmaxes over the tokens that may
    start or end an answer; a span scores P(start) * P(end), with start <= end < start + `max_answer_length` tokens.
    Each window offers spans best first until it has `top_k` distinct answers, and an answer found in several windows
    keeps its best score. `align_to_words` widens a span that starts or ends inside a word to the whole word (spans
    widened to the same words are one answer). With `handle_impossible_answer` the empty answer (start = end = 0)
    competes too, scored P(start) * P(end) at `QA_NO_ANSWER_INDEX`, its lowest over the windows.
    """
    best = {}  # (start, end) in characters -> best score over the windows
    null_score = None
    for start_logits, end_logits, offsets in windows:
        allowed = torch.tensor([offset is not None for offset in offsets])
        scored = allowed.clone()  # the tokens the softmaxes spread over
        if handle_impossible_answer:
            scored[QA_NO_ANSWER_INDEX] = True
        if not scored.any():
            continue
        start, end = (
            torch.as_tensor(logits)[: len(offsets)].float().masked_fill(~scored, float("-inf")).softmax(-1)
            for logits in (start_logits, end_logits)
        )
        if handle_impossible_answer:
            score = (start[QA_NO_ANSWER_INDEX] * end[QA_NO_ANSWER_INDEX]).item()
            null_score = score if null_score is None else min(null_score, score)
        # Row i holds the spans that start at token i and end at i, i + 1, ... i + width - 1: O(tokens x width).
        width = min(max_answer_length, len(offsets))
        firsts = torch.arange(len(offsets))[:, None]
        lasts = firsts + torch.arange(width)[None, :]
        spans = (lasts < len(offsets)) & allowed[:, None] & allowed[lasts.clamp(max=len(offsets) - 1)]
        candidates = spans.flatten().nonzero().squeeze(1)
        scores = (start[:, None] * end[lasts.clamp(max=len(offsets) - 1)]).flatten()[candidates]
        scores, order = scores.sort(descending=True, stable=True)  # ties: the earliest span first
        found = set()
        for index, score in zip(candidates[order].tolist(), scores.tolist()):
            if len(found) == top_k:
                break
            first, length = divmod(index, width)
            span = (offsets[first][0], offsets[first + length][1])
            if align_to_words:
                span = _widen_to_words(context, *span)
            found.add(span)
            best[span] = max(score, best.get(span, 0.0))
    answers = [
        {"score": score, "start": start, "end": end, "answer": context[start:end]}
        for (start, end), score in best.items()
    ]
    if null_score is not None:
        answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]


def _widen_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """The character span [start, end) widened so it neither starts nor ends inside a word: the v4 pipeline's
    `align_to_words`, done on characters so it is the same for every tokenizer. A word is a run of characters that
    are neither spaces nor punctuation, so accents, combining marks and emoji sequences stay whole."""
    while start > 0 and _in_word(text[start - 1]) and _in_word(text[start]):
        start -= 1
    while end < len(text) and _in_word(text[end - 1]) and _in_word(text[end]):
        end += 1
    return start, end


def _in_word(char: str) -> bool:
    return not char.isspace() and not unicodedata.category(char).startswith("P")
