"""How each task is written as text for a decoder-only model: the one definition training and pipelines share.

A seq2seq example becomes `prompt + target + eos`; the loss is taken on the target (and eos) only. The prompt ends
with a separator token, so generation starts exactly where training taught the target to start. The settings used
to train a model are stored in its config (`task_specific_params["hf_tinylm"]`), so a pipeline built from a saved
folder formats inputs exactly as the model saw them. Copied into every saved model folder: standard library only.
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


def check_task(task: str) -> str:
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
    check_task(task)
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


def task_settings(task: str, **settings) -> dict:
    """What to store in `config.task_specific_params[CONFIG_KEY]` so pipelines rebuild the same prompts."""
    return {"task": check_task(task), **{k: v for k, v in settings.items() if v is not None}}


def settings_from_config(config) -> dict:
    """The task settings a model was trained with ({} for a plain language model)."""
    return dict((getattr(config, "task_specific_params", None) or {}).get(CONFIG_KEY, {}))
