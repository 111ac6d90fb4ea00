"""How each task is written as text for a decoder-only model: the one definition training and pipelines share.

A seq2seq example becomes `prompt + target + eos`; the loss is taken on the target (and eos) only. The prompt ends
with a separator token, so generation starts exactly where training taught the target to start. The settings used
to train a model are stored in its config (`task_specific_params["hf_tinylm"]`), so a pipeline built from a saved
folder formats inputs exactly as the model saw them. Extractive QA (a span head, no generation) reads the question
first and the context second, as a text pair (`build_qa_question`). Copied into every saved model folder: standard
library only.
"""

TASKS = ("lm", "translation", "summarization", "qa")

# Special tokens every hf_tinylm tokenizer carries, beside bos/eos/pad/unk.
SEPARATOR = "<|sep|>"
TASK_TOKENS = {
    "translation": "<|translate|>",
    "summarization": "<|summarize|>",
    "qa": "<|question|>",
}
CONTEXT_TOKEN = "<|context|>"
ADDITIONAL_SPECIAL_TOKENS = [SEPARATOR, CONTEXT_TOKEN, *TASK_TOKENS.values()]

CONFIG_KEY = "hf_tinylm"  # key under config.task_specific_params


def known_task(task: str) -> str:
    """`task`, if it is one hf_tinylm formats; otherwise an error that lists those."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.")
    return task


def build_prompt(
    task: str,
    source: str,
    *,
    question: str | None = None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
) -> str:
    """The text the model reads before it writes the target.

    translation:   "<|translate|>en>de: {source}<|sep|>"   (language tags only when known)
    summarization: "<|summarize|>{source}<|sep|>"
    qa (generative): "<|context|>{context}<|question|>{question}<|sep|>"  (`source` is the context)
    """
    known_task(task)
    if task == "lm":
        return source
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"The {task} input is empty; give a non-empty string.")
    if task == "translation":
        pair = f"{src_lang}>{tgt_lang}: " if src_lang and tgt_lang else ""
        return f"{TASK_TOKENS['translation']}{pair}{source}{SEPARATOR}"
    if task == "summarization":
        return f"{TASK_TOKENS['summarization']}{source}{SEPARATOR}"
    if not question or not question.strip():
        raise ValueError("Question answering needs a non-empty question.")
    return f"{CONTEXT_TOKEN}{source}{TASK_TOKENS['qa']}{question}{SEPARATOR}"


def build_truncated_prompt(tokenizer, task: str, source: str, max_length: int | None, **prompt_args) -> str:
    """`build_prompt`, with the source cut at a token boundary so the prompt is at most `max_length` tokens.

    Only the source is cut: the task token, language tags, question and separator always stay, so the model still
    sees what to do and where to start writing. `tokenizer` is any transformers tokenizer.
    """
    prompt = build_prompt(task, source, **prompt_args)

    def length(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if max_length is None or length(prompt) <= max_length:
        return prompt
    ends = [
        end for _, end in tokenizer(source, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    keep = len(ends) - (length(prompt) - max_length)
    # Tokens can merge across the source's edges, so the first cut may leave the prompt a token too long.
    while keep > 0:
        prompt = build_prompt(task, source[: ends[keep - 1]], **prompt_args)
        if length(prompt) <= max_length:
            return prompt
        keep -= 1
    raise ValueError(f"`max_length` {max_length} leaves no room for the {task} source next to the rest of the prompt.")


def build_qa_question(question: str) -> str:
    """The first text of an extractive-QA input, "<|question|>{question}<|context|>"; the context is the second.

    Question first, so the causal model has read it before every context token it scores as an answer start or end.
    As a text pair, a long context splits into overlapping windows that each repeat the question, and token offsets
    point into the context.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("Question answering needs a non-empty question.")
    return f"{TASK_TOKENS['qa']}{question.strip()}{CONTEXT_TOKEN}"


# Where extractive QA scores "no answer": the first token, "<|question|>", never part of the context (the role [CLS]
# plays for encoder models). Label windows that do not contain the answer start = end = this index.
QA_NO_ANSWER_INDEX = 0


def language_pairs(settings: dict) -> list[tuple[str, str]]:
    """The (source, target) language pairs a translation model's prompts were tagged with, from its task settings.

    A model trained on one pair stores `src_lang` and `tgt_lang`; one trained on several stores `language_pairs`, a
    list of [src, tgt]. Empty when the prompts carried no language tags.
    """
    if settings.get("language_pairs"):
        return [tuple(pair) for pair in settings["language_pairs"]]
    if settings.get("src_lang") and settings.get("tgt_lang"):
        return [(settings["src_lang"], settings["tgt_lang"])]
    return []


def task_settings(task: str, **settings) -> dict:
    """What to store in `config.task_specific_params[CONFIG_KEY]` so pipelines rebuild the same prompts."""
    return {"task": known_task(task), **{k: v for k, v in settings.items() if v is not None}}


def task_name(settings: dict, architectures=()) -> str:
    """The task a model was trained for, from its task settings: "lm", "translation", "summarization",
    "qa-generative" or "qa-extractive" (the keys of `hf_tinylm.tasks.TASKS`). The one place that tells the two kinds
    of question answering apart: by the recorded mode, else (settings written without one) by a span head among
    the config's `architectures`."""
    task = settings.get("task", "lm")
    if task != "qa":
        return known_task(task)
    extractive = any(name.endswith("ForQuestionAnswering") for name in architectures)
    return f"qa-{settings.get('mode') or ('extractive' if extractive else 'generative')}"


def settings_from_config(config) -> dict:
    """The task settings a model was trained with ({} for a plain language model)."""
    return dict((getattr(config, "task_specific_params", None) or {}).get(CONFIG_KEY, {}))


# The transformers pipelines (by task name) that can serve a model trained for each task. "feature-extraction" reads
# the base model of any of them.
SERVING_PIPELINES = {
    "lm": ("text-generation",),
    "translation": ("translation", "text-generation"),
    "summarization": ("summarization", "text-generation"),
    "qa-generative": ("text-generation",),
    "qa-extractive": ("question-answering",),
}
_TRAINED_FOR = {
    "lm": "plain language modelling",
    "translation": "translation",
    "summarization": "summarization",
    "qa-generative": "generative question answering (it writes its answers)",
    "qa-extractive": "extractive question answering (a span head)",
}


def check_pipeline_task(config, pipeline_task: str, architectures=None) -> dict:
    """The model's task settings, or a ValueError naming the task it was trained for and the pipeline to use, when
    `pipeline_task` (a transformers task name, "translation_en_to_de" included) cannot serve it. The same sentence
    with or without hf_tinylm installed: the configuration classes call this when `pipeline()` loads a folder.
    `architectures` defaults to the config's (a model not yet saved passes its own class name)."""
    settings = settings_from_config(config)
    trained = task_name(settings, architectures or getattr(config, "architectures", None) or ())
    served = SERVING_PIPELINES[trained]
    if pipeline_task.split("_", 1)[0] in (*served, "feature-extraction"):
        return settings
    what = _TRAINED_FOR[trained]
    pairs = language_pairs(settings)
    if pairs:
        what += " (" + ", ".join(f"{src}->{tgt}" for src, tgt in pairs) + ")"
    usage = f'pipeline("{served[0]}", model=..., trust_remote_code=True)'
    if trained == "qa-generative":
        usage += " with the prompt its model card shows"
    raise ValueError(
        f"The {pipeline_task!r} pipeline cannot use this model: it was trained for {what}. Use {usage} instead "
        f"(config.task_specific_params[{CONFIG_KEY!r}] = {settings})."
    )


class ChecksPipelineTask:
    """Mixed into the configuration classes: `pipeline(task, model=folder)` loads the config first and tells it the
    task, so a folder asked for a pipeline it was not trained for says so before transformers looks the task up
    (transformers v5 would only report a removed task, 4.x would build its own pipeline around the wrong model)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        pipeline_task = kwargs.get("_from_pipeline")
        loaded = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if pipeline_task:
            check_pipeline_task(loaded[0] if isinstance(loaded, tuple) else loaded, pipeline_task)
        return loaded
