"""Translation, summarization and extractive question-answering pipelines for hf_tinylm models.

transformers v5 removed these three tasks; these classes bring them back with the classic arguments and outputs.
Translation and summarization generate with a causal LM after the prompt `task_formats` defines, the one training
used; question answering reads start/end logits from a `...ForQuestionAnswering` head, window by window, and decodes
them as training's evaluation does (`extractive_qa`).

Every saved hf_tinylm folder carries this file, and a model trained for one of these tasks lists its pipeline in its
config (`custom_pipelines(model)`), so `pipeline("translation", model=folder, trust_remote_code=True)`, or just
`pipeline(model=folder, trust_remote_code=True)`, works where hf_tinylm is not installed. Hence the imports: torch,
transformers and the copied `task_formats`, `extractive_qa` and `tinylm_common` only.
"""

import collections.abc

import torch
from transformers import Pipeline
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .extractive_qa import best_answers, context_room, question_windows
from .task_formats import (
    build_prompt,
    build_truncated_prompt,
    check_pipeline_task,
    language_pairs,
    settings_from_config,
    task_name,
)
from .tinylm_common import context_limit, new_tokens_that_fit

logger = logging.get_logger(__name__)


class TextOnly:
    """What every hf_tinylm pipeline loads beside the model: a tokenizer, no processors or feature extractors."""

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False

    def _architectures(self) -> list[str]:
        """What the model is, as its config records it once saved, else its class."""
        return self.model.config.architectures or [type(self.model).__name__]


class TinyLMGenerationPipeline(TextOnly, Pipeline):
    """Writes each input as the model's training prompt, generates after it (greedy unless generate kwargs say
    otherwise), and returns the decoded continuation as `[{f"{output_key}_text": ...}]`.

    `max_length`/`min_length` bound the generated text, as they did in the classic encoder-decoder pipelines (for
    a decoder-only model `generate()` would count the prompt too); they become `max_new_tokens`/`min_new_tokens`.
    Any other keyword goes to `generate()`. `truncation=True` cuts an over-long source so the prompt and
    `max_new_tokens` fit the model's context; without it an over-long input raises.

    A list, dataset or generator is generated `batch_size` inputs at a time (the `Pipeline` argument, in the call or
    at construction; default 1): prompts are padded on the left, so greedy outputs equal one call per input, many
    times faster (benchmarks/BENCHMARKS.md).
    """

    task_format: str  # the pipeline task, and the `task_formats` task the model must be trained for
    output_key: str
    default_max_new_tokens: int  # when neither the call nor the model's generation config says
    prompt_parameters: tuple[str, ...] = ()  # call arguments that go to `build_prompt`, through `_prompt_args`

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.model.can_generate():
            raise ValueError(
                f"The {self.task_format} pipeline generates text, but {type(self.model).__name__} has no language-"
                "modelling head; load the model with AutoModelForCausalLM."
            )
        self.settings = check_pipeline_task(self.model.config, self.task_format, self._architectures())
        # A decoder-only model continues after the last prompt token, so batches are padded on the left.
        self.tokenizer.padding_side = "left"

    def __call__(self, inputs, **kwargs):
        """Generate for a string, a list of strings (one record each), a dataset or a generator (streamed)."""
        if isinstance(inputs, collections.abc.Sequence) and not isinstance(inputs, (str, list)):
            inputs = list(inputs)  # tuples, `datasets` columns
        if isinstance(inputs, list) and not inputs:
            return []
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(records) == 1 for records in result):
            return [records[0] for records in result]
        return result

    def _sanitize_parameters(
        self,
        return_tensors=None,
        return_text=None,
        return_type=None,
        clean_up_tokenization_spaces=None,
        truncation=None,
        min_length=None,
        max_length=None,
        stop_sequence=None,
        **generate_kwargs,
    ):
        # The v4 text2text spellings: `return_type` ("text" / "tensors", or v4's ReturnType), `return_text`, and a
        # `stop_sequence`, which generation's `stop_strings` now handles.
        if return_type is not None:
            return_tensors = str(getattr(return_type, "name", return_type)).lower() == "tensors"
        elif return_text is not None and return_tensors is None:
            return_tensors = not return_text
        if stop_sequence is not None:
            generate_kwargs["stop_strings"] = (
                [stop_sequence] if isinstance(stop_sequence, str) else list(stop_sequence)
            )
        if "stop_strings" in generate_kwargs:
            generate_kwargs.setdefault("tokenizer", self.tokenizer)
        for length, new_tokens in ((min_length, "min_new_tokens"), (max_length, "max_new_tokens")):
            if length is not None:
                if new_tokens in generate_kwargs:
                    raise ValueError(f"Pass `{new_tokens}` or its classic name, not both.")
                generate_kwargs[new_tokens] = length
        preprocess_params = {key: generate_kwargs.pop(key) for key in self.prompt_parameters if key in generate_kwargs}
        # The generation budget, which truncation leaves room for.
        preprocess_params.update(
            {key: generate_kwargs[key] for key in ("max_new_tokens", "generation_config") if key in generate_kwargs}
        )
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        postprocess_params = {}
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def _prompt_args(self, **prompt_parameters) -> dict:
        """The keyword arguments of `build_prompt` for this call."""
        return {}

    def _max_new_tokens(self, max_new_tokens=None, generation_config=None) -> tuple[int, bool]:
        """How many tokens to generate, and whether the user (call or generation config) chose that number."""
        if max_new_tokens is None:
            max_new_tokens = (generation_config or self.model.generation_config).max_new_tokens
        return (self.default_max_new_tokens, False) if max_new_tokens is None else (max_new_tokens, True)

    def preprocess(self, inputs, truncation=False, max_new_tokens=None, generation_config=None, **prompt_parameters):
        if not isinstance(inputs, str):
            raise TypeError(f"The {self.task_format} pipeline takes strings, got {type(inputs).__name__}.")
        prompt_args = self._prompt_args(**prompt_parameters)
        limit = context_limit(self.model.config)
        if truncation and limit is not None:
            max_new_tokens, requested = self._max_new_tokens(max_new_tokens, generation_config)
            if not requested:  # the built-in default gives way, as it does to an untruncated prompt
                max_new_tokens = min(max_new_tokens, limit // 2)
            if max_new_tokens >= limit:
                raise ValueError(
                    f"`max_new_tokens` ({max_new_tokens}) leaves no room for the prompt in this model's "
                    f"{limit}-token context."
                )
            prompt = build_truncated_prompt(
                self.tokenizer, self.task_format, inputs, limit - max_new_tokens, **prompt_args
            )
        else:
            prompt = build_prompt(self.task_format, inputs, **prompt_args)
        model_inputs = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        length = model_inputs["input_ids"].shape[1]
        if new_tokens_that_fit(self.model.config, length, 1) == 0:
            raise ValueError(
                f"The input is {length} tokens long with its prompt; this model reads at most {limit} tokens, prompt "
                "and generated text together. Shorten it, or pass `truncation=True` to cut the source."
            )
        return model_inputs

    def _forward(self, model_inputs, **generate_kwargs):
        input_ids = model_inputs["input_ids"]
        prompt_length = input_ids.shape[1]
        max_new_tokens, requested = self._max_new_tokens(
            generate_kwargs.get("max_new_tokens"), generate_kwargs.get("generation_config")
        )
        # Here too, not only in our `generate()`: the pipeline also serves Llama exports, whose `generate()` would
        # run past the context. The built-in default gives way silently.
        fitting = new_tokens_that_fit(self.model.config, prompt_length, max_new_tokens)
        if requested and fitting < max_new_tokens:
            logger.warning(
                f"Generating at most {fitting} tokens instead of {max_new_tokens}: the prompt takes {prompt_length} "
                f"of the model's {context_limit(self.model.config)} positions."
            )
        generate_kwargs["max_new_tokens"] = fitting
        generation_config = generate_kwargs.get("generation_config", self.model.generation_config)
        if generation_config.pad_token_id is None:
            generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        if generation_config.eos_token_id is None:
            generate_kwargs.setdefault("eos_token_id", self.tokenizer.eos_token_id)
        output_ids = self.model.generate(
            input_ids=input_ids, attention_mask=model_inputs["attention_mask"], **generate_kwargs
        )
        new_tokens = output_ids[:, prompt_length:]
        # (batch, sequences per input, tokens), so the batch splits into one item per input.
        return {"output_ids": new_tokens.reshape(input_ids.shape[0], -1, new_tokens.shape[-1])}

    def postprocess(self, model_outputs, return_tensors=False, clean_up_tokenization_spaces=None):
        records = []
        for token_ids in model_outputs["output_ids"][0]:
            if return_tensors:
                records.append({f"{self.output_key}_token_ids": token_ids})
            else:
                text = self.tokenizer.decode(
                    token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
                records.append({f"{self.output_key}_text": text})
        return records


class TinyLMTranslationPipeline(TinyLMGenerationPipeline):
    """`pipeline("translation", model=...)` for hf_tinylm causal LMs trained to translate: `[{"translation_text"}]`.

    When the model was trained on several language pairs, `src_lang` and `tgt_lang` choose one (either alone is
    enough when it identifies a single pair).
    """

    task_format = "translation"
    output_key = "translation"
    default_max_new_tokens = 128
    prompt_parameters = ("src_lang", "tgt_lang")

    def _prompt_args(self, src_lang=None, tgt_lang=None) -> dict:
        pairs = language_pairs(self.settings)
        if not pairs and src_lang is None and tgt_lang is None:
            return {}
        matches = [pair for pair in pairs if src_lang in (None, pair[0]) and tgt_lang in (None, pair[1])]
        known = ", ".join(f"{src}->{tgt}" for src, tgt in pairs) or "none (it was trained without language tags)"
        if not matches:
            asked = f"{src_lang or 'any language'}->{tgt_lang or 'any language'}"
            raise ValueError(f"This model was not trained to translate {asked}; its pairs: {known}.")
        if len(matches) > 1:
            raise ValueError(f"This model translates {known}: choose one with `src_lang` and `tgt_lang`.")
        return dict(zip(("src_lang", "tgt_lang"), matches[0]))


class TinyLMSummarizationPipeline(TinyLMGenerationPipeline):
    """`pipeline("summarization", model=...)` for hf_tinylm causal LMs trained to summarize: `[{"summary_text"}]`."""

    task_format = "summarization"
    output_key = "summary"
    default_max_new_tokens = 128


class TinyLMQuestionAnsweringPipeline(TextOnly, ChunkPipeline):
    """`pipeline("question-answering", model=...)` for hf_tinylm `...ForQuestionAnswering` models.

    Returns `{"score", "start", "end", "answer"}` with `answer == context[start:end]` (a list of `top_k` such dicts
    when `top_k > 1`). A context longer than `max_seq_len` tokens (with the question) is read in windows that
    overlap by `doc_stride` tokens, each repeating the question; answers from all windows compete, scored as
    P(start) * P(end) within their window (`extractive_qa.best_answers`, which training's evaluation uses too).
    `max_answer_len` bounds an answer in tokens. These three default to the training evaluation's `--max_seq_length`,
    `--doc_stride` and `--max_answer_length`, saved in the config, so the pipeline gives the answers the model card's
    EM/F1 scored. Without saved values (and for a saved `doc_stride` that leaves a long question's windows no room
    to advance) the classic defaults hold: 384 tokens (at most the model's context), a stride of half the context
    tokens a window holds (at most 128), and 15. With
    `handle_impossible_answer=True` the empty answer (start = end = 0) competes too. `align_to_words` (default True)
    widens an answer that starts or ends inside a word to the whole word, which a sub-word or character tokenizer
    otherwise leaves cut; turn it off for languages written without spaces. `max_question_len` cuts longer questions
    to that many tokens (with a warning). Needs a fast tokenizer, whose offsets map tokens back to characters.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = check_pipeline_task(self.model.config, "question-answering", self._architectures())
        architectures = self.model.config.architectures or []
        if not type(self.model).__name__.endswith("ForQuestionAnswering") or (
            architectures and not any(name.endswith("ForQuestionAnswering") for name in architectures)
        ):
            raise ValueError(
                "The question-answering pipeline reads answer spans from a `...ForQuestionAnswering` head, but this "
                f"checkpoint holds {architectures or type(self.model).__name__}. A causal LM trained for 'qa' "
                "answers through pipeline('text-generation') with the task_formats prompt."
            )
        if not self.tokenizer.is_fast:
            raise ValueError("The question-answering pipeline needs a fast tokenizer, for its character offsets.")

    def __call__(self, *args, **kwargs):
        """Answer `question=` and `context=` (strings; lists of equal length; or several questions about one
        context), a `{"question", "context"}` dict, a list of them, a dataset with those columns, or a generator of
        them (streamed). `pipe(question, context)` works too, and v4's `X=` / `data=` keywords."""
        if len(args) == 2:
            kwargs["question"], kwargs["context"] = args
            args = ()
        for alias in ("X", "data"):
            if alias in kwargs and not args:
                args = (kwargs.pop(alias),)
        if args:
            (inputs,) = args
            if isinstance(inputs, str):
                raise TypeError(
                    "A question-answering input needs a question and a context: pass question=..., context=... or a "
                    f'{{"question": ..., "context": ...}} dict, not the string {inputs[:60]!r}.'
                )
            if isinstance(inputs, tuple):
                inputs = list(inputs)
            elif not isinstance(inputs, (collections.abc.Mapping, list)) and isinstance(
                inputs, collections.abc.Iterable
            ):
                inputs = (example for example in inputs)  # a `datasets.Dataset` or any iterable: stream its rows
            return [] if isinstance(inputs, list) and not inputs else super().__call__(inputs, **kwargs)
        question, context = kwargs.pop("question", None), kwargs.pop("context", None)
        if question is None or context is None:
            raise ValueError("Question answering needs both `question` and `context`.")
        if isinstance(question, str) and isinstance(context, str):
            return super().__call__({"question": question, "context": context}, **kwargs)
        questions = [question] if isinstance(question, str) else question
        contexts = [context] * len(questions) if isinstance(context, str) and isinstance(questions, list) else context
        if not isinstance(questions, list) or not isinstance(contexts, list) or len(questions) != len(contexts):
            raise ValueError("Pass `question` and `context` as strings, or as lists of the same length.")
        if not questions:
            return []
        return super().__call__([{"question": q, "context": c} for q, c in zip(questions, contexts)], **kwargs)

    def _sanitize_parameters(
        self,
        top_k=None,
        doc_stride=None,
        max_answer_len=None,
        max_seq_len=None,
        max_question_len=None,
        handle_impossible_answer=None,
        align_to_words=None,
    ):
        at_least_one = {"top_k": top_k, "max_answer_len": max_answer_len, "max_question_len": max_question_len}
        for name, value in at_least_one.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"`{name}` must be an integer of at least 1, got {value!r}.")
        return (
            _given(doc_stride=doc_stride, max_seq_len=max_seq_len, max_question_len=max_question_len),
            {},
            _given(
                top_k=top_k,
                max_answer_len=max_answer_len,
                handle_impossible_answer=handle_impossible_answer,
                align_to_words=align_to_words,
            ),
        )

    def _shorten_question(self, question: str, max_question_len: int) -> str:
        encoded = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= max_question_len:
            return question
        shortened = question[: encoded["offset_mapping"][max_question_len - 1][1]]
        logger.warning(
            f"The question is {len(encoded['input_ids'])} tokens long; cut to `max_question_len` "
            f"({max_question_len}): {shortened!r}."
        )
        return shortened

    def preprocess(self, example, doc_stride=None, max_seq_len=None, max_question_len=None):
        if not isinstance(example, collections.abc.Mapping) or "question" not in example or "context" not in example:
            raise TypeError(f"Each question-answering input needs a question and a context, got {example!r}.")
        context = example["context"]
        if not isinstance(context, str) or not context.strip():
            raise ValueError("Question answering needs a non-empty context.")
        question = example["question"]
        if max_question_len is not None and isinstance(question, str):
            question = self._shorten_question(question, max_question_len)
        limit = context_limit(self.model.config)
        max_seq_len = max_seq_len or self.settings.get("max_seq_length") or min(384, limit or 384)
        if limit is not None and max_seq_len > limit:
            raise ValueError(f"`max_seq_len` ({max_seq_len}) is more than this model reads ({limit} tokens).")
        room = context_room(self.tokenizer, question, max_seq_len)
        if room < 1:
            raise ValueError(f"The question alone fills `max_seq_len` ({max_seq_len} tokens); shorten it.")
        if doc_stride is None:
            saved = self.settings.get("doc_stride")
            doc_stride = saved if saved is not None and saved < room else min(128, room // 2)
        if not 0 <= doc_stride < room:
            raise ValueError(
                f"`doc_stride` ({doc_stride}) must be smaller than the {room} context tokens a window holds next to "
                "this question."
            )
        windows = question_windows(self.tokenizer, [question], [context], max_seq_len, doc_stride)
        for index, (input_ids, offsets) in enumerate(zip(windows["input_ids"], windows["offsets"])):
            yield {
                "input_ids": torch.tensor([input_ids]),
                "attention_mask": torch.ones(1, len(input_ids), dtype=torch.long),
                "offsets": offsets,
                "context": context,
                "is_last": index == len(windows["offsets"]) - 1,
            }

    def _forward(self, inputs):
        attention_mask = inputs["attention_mask"]
        output = self.model(
            input_ids=inputs["input_ids"],
            attention_mask=attention_mask,
            position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0),  # the same positions however it is padded
            use_cache=False,
        )
        return {
            "start_logits": output.start_logits,
            "end_logits": output.end_logits,
            **{key: inputs[key] for key in ("attention_mask", "offsets", "context", "is_last")},
        }

    def postprocess(self, windows, top_k=1, max_answer_len=None, handle_impossible_answer=False, align_to_words=True):
        # Default: the longest answer the model was evaluated with in training (transformers' 15 before that existed).
        max_answer_len = max_answer_len or self.settings.get("max_answer_length", 15)
        real_tokens = [window["attention_mask"][0].bool() for window in windows]  # not padding: as in `offsets`
        answers = best_answers(
            windows[0]["context"],
            [
                (window["start_logits"][0][real], window["end_logits"][0][real], window["offsets"])
                for window, real in zip(windows, real_tokens)
            ],
            max_answer_len,
            top_k=top_k,
            handle_impossible_answer=handle_impossible_answer,
            align_to_words=align_to_words,
        )
        return answers[0] if top_k == 1 else answers


def _given(**params) -> dict:
    """The parameters a caller set (not None), as `_sanitize_parameters` passes them on."""
    return {name: value for name, value in params.items() if value is not None}


# The pipeline of each task that has one, by `task_formats.task_name`: (pipeline task, class, the Auto class that loads
# its model). A plain language model is served by transformers' own text-generation pipeline, and so is generative
# QA, a causal LM that writes its answer.
PIPELINES = {
    "translation": ("translation", TinyLMTranslationPipeline, "AutoModelForCausalLM"),
    "summarization": ("summarization", TinyLMSummarizationPipeline, "AutoModelForCausalLM"),
    "qa-extractive": ("question-answering", TinyLMQuestionAnsweringPipeline, "AutoModelForQuestionAnswering"),
}


def custom_pipelines(model) -> dict:
    """The `config.custom_pipelines` entry for `model`: the one pipeline of the task it was trained for, found in the
    copy of this file saved beside the model. One entry, so `pipeline(model=folder, trust_remote_code=True)` infers
    the task; `pipeline(task, model=folder, trust_remote_code=True)` works as well."""
    task = task_name(settings_from_config(model.config), [type(model).__name__])
    if task not in PIPELINES:
        return {}
    pipeline_task, pipeline_class, auto_class = PIPELINES[task]
    return {pipeline_task: {"impl": f"{__name__.rsplit('.', 1)[-1]}.{pipeline_class.__name__}", "pt": [auto_class]}}
