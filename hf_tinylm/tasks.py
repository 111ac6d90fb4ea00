"""The tasks hf_tinylm trains models for, one class each: the place to read to learn what a task is.

A task object holds the task's settings, named as train.py's flags, and answers every task-specific question the
rest of the package asks: which columns it reads, how rows become features and how those are batched, the longest
sequence it feeds the model, which head learns it, how it is scored, which pipeline serves it and how a model card
describes it. Training, data preparation, evaluation and the card ask the task instead of branching on its name, so
adding a task is one class here (plus its prompt in `task_formats` and, if it has one, its pipeline) and its tests.

How a task is written as text (prompts, special tokens) is `task_formats`, and its pipeline lives in
`pipelines_tinylm`: those ship inside saved folders. This module does not; it may import the rest of the package.
"""

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from transformers import (
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    default_data_collator,
)

from . import data, evaluation
from .pipelines_tinylm import PIPELINES
from .task_formats import (
    build_prompt,
    build_truncated_prompt,
    language_pairs,
    settings_from_config,
    task_name,
    task_settings,
)
from .tinylm_common import context_limit, new_tokens_that_fit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """What every task answers. Subclasses set the class attributes and the methods marked as theirs."""

    name: ClassVar[str]  # the registry key, as output folders and `task_formats.task_name` spell it
    format: ClassVar[str]  # the `task_formats` task: how examples are written as text, what the config records
    text_columns: ClassVar[tuple[str, ...]]  # the columns holding every string a tokenizer for the task should know
    metrics: ClassVar[tuple[str, ...]] = ()  # `hf_tinylm.metrics` modules scoring the final evaluation
    predicts_next_token: ClassVar[bool] = True  # a causal LM head; else a span head (extractive QA)
    reads_plain_text: ClassVar[bool] = False  # whether .txt files (and the built-in corpus) are data for it
    longest_sequence_flags: ClassVar[str]  # the flags `longest_sequence` adds up, for messages
    references_column: ClassVar[str] = "references"  # the task column of reference answers (the first is trained on)
    input_column_shown: ClassVar[str] = "source"  # the task column printed as an evaluated example's input
    saved_names: ClassVar[dict[str, str]] = {}  # task setting -> field, where the config records a field by another name
    named_in_folders: ClassVar[bool] = True  # whether default output folder names say the task
    card_summary: ClassVar[str]
    example_call: ClassVar[str]

    @property
    def pipeline(self) -> str | None:
        """The pipeline task that serves a model of this task; None where transformers' text-generation does."""
        return PIPELINES[self.name][0] if self.name in PIPELINES else None

    @property
    def auto_class(self):
        return AutoModelForCausalLM if self.predicts_next_token else AutoModelForQuestionAnswering

    def examples(self, raw, limits: dict, map_options: dict):
        """Each split of `raw` (a `DatasetDict`) in the task's own columns, at most `limits[split]` rows."""
        examples = type(raw)()
        for split, dataset in raw.items():
            if limits.get(split) is not None:
                dataset = dataset.select(range(min(limits[split], len(dataset))))
            if len(dataset) == 0:
                raise ValueError(f"The {split} split has no rows.")
            examples[split] = self.to_columns(dataset, map_options)
        return examples

    def to_columns(self, dataset, map_options: dict):
        """One split in the task's columns, whatever the source called them. The task's own."""
        raise NotImplementedError

    def features(self, examples, tokenizer, limits: dict, map_options: dict):
        """The tokenized features `Trainer` batches, per split. The task's own."""
        raise NotImplementedError

    def collator(self, tokenizer):
        return default_data_collator

    def longest_sequence(self) -> int:
        """The most tokens one training or generation sequence holds, which the model's context must take."""
        raise NotImplementedError

    def fit_to_context(self, limit: int, model_name: str) -> tuple["Task", str]:
        """This task with its lengths shortened for `model_name`, which reads at most `limit` tokens, and what
        changed, as flags."""
        raise NotImplementedError

    def settings(self) -> dict:
        """What the model's config records (`task_specific_params["hf_tinylm"]`), so pipelines rebuild the inputs."""
        return task_settings(self.format)

    def configure_generation(self, generation_config) -> None:
        """Defaults the model generates with after training: evaluation and the pipelines use them."""

    def trainer_metrics(self) -> dict:
        """`Trainer` arguments for the evaluations during training: perplexity of the causal LM's tokens."""
        return {
            "compute_metrics": evaluation.compute_perplexity,
            "preprocess_logits_for_metrics": evaluation.sequence_nll,
        }

    def predict(self, model, tokenizer, examples, batch_size: int) -> list[str]:
        """What the model answers for each task example, as users of the saved model get it: the texts its pipeline
        generates, or the answers its pipeline extracts. The task's own, where it has `metrics`."""
        raise NotImplementedError

    def score(self, predictions: list[str], examples) -> dict:
        """The task's `metrics` of `predictions` against the examples' references."""
        return evaluation.score_predictions(self.metrics, predictions, list(examples[self.references_column]))

    def evaluate(self, trainer, tokenizer, examples) -> dict:
        """The final evaluation: `Trainer`'s (loss, and perplexity for a causal LM), then the task's metrics of the
        answers `predict` gives for the validation examples (on the main process)."""
        metrics = trainer.evaluate()
        if self.metrics and trainer.is_world_process_zero():
            validation = examples["validation"]
            predictions = self.predict(trainer.model, tokenizer, validation, trainer.args.per_device_eval_batch_size)
            metrics.update({f"eval_{key}": value for key, value in self.score(predictions, validation).items()})
            # What the scores score (as run_qa.py writes them): question id -> answer, else in example order.
            saved = dict(zip(validation["id"], predictions)) if "id" in validation.column_names else predictions
            path = Path(trainer.args.output_dir) / "eval_predictions.json"
            path.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            reference = validation[0][self.references_column][0]
            shown = validation[0][self.input_column_shown]
            print(f"\nExample: {shown!r}\n  reference:  {reference!r}\n  prediction: {predictions[0]!r}")
        return metrics

    def hyperparameters(self) -> dict:
        """What the model card reports of the task's settings."""
        return {}

    def describe(self, settings: dict) -> tuple[str, str]:
        """The card's one-line summary and the pipeline call it shows, for a model trained with `settings`."""
        return self.card_summary, self.example_call

    def prompt_pattern(self, settings: dict) -> str | None:
        """The prompt the model answers, with placeholders: what to send where no task pipeline writes it."""
        return None

    def sample(self, model, tokenizer) -> str | None:
        """A sample of what the model writes, shown after training (a language model's; None for the others)."""
        return None


@dataclass(frozen=True)
class LanguageModelling(Task):
    """Next-token prediction on packed blocks of text (run_clm.py)."""

    name: ClassVar[str] = "lm"
    format: ClassVar[str] = "lm"
    text_columns: ClassVar[tuple[str, ...]] = ("text",)
    reads_plain_text: ClassVar[bool] = True
    named_in_folders: ClassVar[bool] = False
    longest_sequence_flags: ClassVar[str] = "--block_size"
    card_summary: ClassVar[str] = "Continues text."
    example_call: ClassVar[str] = 'pipe("Once upon a time", max_new_tokens=50)'

    text_column: str | None = None
    block_size: int = 128
    sample_prompt: str = "The"
    max_new_tokens: int | None = None  # of the sample (default 200)

    def examples(self, raw, limits: dict, map_options: dict):
        return super().examples(raw, {}, map_options)  # limits count blocks, applied in `features`

    def to_columns(self, dataset, map_options):
        return data.text_rows(dataset, self.text_column)

    def features(self, examples, tokenizer, limits, map_options):
        return data.lm_features(examples, tokenizer, self.block_size, limits, map_options)

    def longest_sequence(self) -> int:
        return self.block_size

    def fit_to_context(self, limit, model_name):
        return dataclasses.replace(self, block_size=limit), f"--block_size {limit}"

    def hyperparameters(self) -> dict:
        return {"block size": self.block_size}

    def sample(self, model, tokenizer) -> str | None:
        prompt_length = len(tokenizer(self.sample_prompt, add_special_tokens=False)["input_ids"])
        max_new_tokens = new_tokens_that_fit(model.config, prompt_length, self.max_new_tokens or 200)
        if max_new_tokens == 0:
            limit = context_limit(model.config)
            logger.warning(f"No sample: --sample_prompt is {prompt_length} tokens, the model reads at most {limit}.")
            return None
        return evaluation.sample_text(model, tokenizer, self.sample_prompt, max_new_tokens)


@dataclass(frozen=True)
class TextToText(Task):
    """A target written after a prompt: `prompt + target + eos`, with the loss on the target only; evaluated on the
    texts `generate()` writes after the prompt, as the pipelines write them."""

    text_columns: ClassVar[tuple[str, ...]] = ("source", "references")
    longest_sequence_flags: ClassVar[str] = "--max_source_length plus --max_target_length or --max_new_tokens"

    max_source_length: int = 256
    max_target_length: int = 64
    max_new_tokens: int | None = None
    num_beams: int = 1

    def prompt_inputs(self, batch) -> tuple[list[str], list[dict]]:
        """The sources of a batch of task examples and the other `build_prompt` arguments of each. The task's own."""
        raise NotImplementedError

    def prompt_ids(self, batch, tokenizer) -> list[list[int]]:
        """Token ids of the prompts of a batch of task examples, each at most `max_source_length` tokens: only the
        source is cut, so the task token, language tags, question and separator always stay."""
        sources, prompt_args = self.prompt_inputs(batch)
        prompts = [build_prompt(self.format, source, **args) for source, args in zip(sources, prompt_args)]
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        for index, (source, args) in enumerate(zip(sources, prompt_args)):
            if len(ids[index]) > self.max_source_length:
                prompt = build_truncated_prompt(tokenizer, self.format, source, self.max_source_length, **args)
                ids[index] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return ids

    def features(self, examples, tokenizer, limits, map_options):
        return data.generation_features(
            examples, tokenizer, self.prompt_ids, self.references_column, self.max_target_length, map_options
        )

    def collator(self, tokenizer):
        # No `pad_to_multiple_of`: it would pad past the context length the model was sized for.
        return DataCollatorForSeq2Seq(tokenizer)

    def longest_sequence(self) -> int:
        return self.max_source_length + self._longest_target()

    def _longest_target(self) -> int:
        return max(self.max_target_length, self.max_new_tokens or 0)

    def fit_to_context(self, limit, model_name):
        target = self._longest_target()
        if target >= limit:
            raise ValueError(
                f"{model_name} reads at most {limit} tokens, not enough for targets of {target} "
                "(--max_target_length / --max_new_tokens) after a prompt; lower them."
            )
        fitted = dataclasses.replace(self, max_source_length=limit - target)
        return fitted, f"--max_source_length {limit - target} (prompts longer than that are cut)"

    def configure_generation(self, generation_config) -> None:
        generation_config.max_new_tokens = self.max_new_tokens or self.max_target_length
        generation_config.num_beams = self.num_beams
        generation_config.do_sample = False

    def predict(self, model, tokenizer, examples, batch_size: int) -> list[str]:
        return evaluation.generate_predictions(model, tokenizer, examples, self.prompt_ids, batch_size)

    def hyperparameters(self) -> dict:
        return {"max source tokens": self.max_source_length, "max target tokens": self.max_target_length}


@dataclass(frozen=True)
class Translation(TextToText):
    """Source sentence -> target sentence, prompts tagged with the language pair when it is known."""

    name: ClassVar[str] = "translation"
    format: ClassVar[str] = "translation"
    metrics: ClassVar[tuple[str, ...]] = ("bleu", "chrf")

    saved_names: ClassVar[dict[str, str]] = {"src_lang": "source_lang", "tgt_lang": "target_lang"}

    source_lang: str | None = None
    target_lang: str | None = None
    source_column: str | None = None
    target_column: str | None = None

    def to_columns(self, dataset, map_options):
        source = data.translation_column(dataset, self.source_column, self.source_lang, "source")
        target = data.translation_column(dataset, self.target_column, self.target_lang, "target")
        return data.pair_rows(dataset, source, target, map_options, desc="Reading pairs")

    def prompt_inputs(self, batch):
        return batch["source"], [{"src_lang": self.source_lang, "tgt_lang": self.target_lang}] * len(batch["source"])

    def settings(self) -> dict:
        return task_settings(self.format, src_lang=self.source_lang, tgt_lang=self.target_lang)

    def describe(self, settings):
        pairs = language_pairs(settings)
        languages = " and ".join(f"{src}→{tgt}" for src, tgt in pairs)
        pair_args = f', src_lang="{pairs[0][0]}", tgt_lang="{pairs[0][1]}"' if len(pairs) > 1 else ""
        return f"Translates {languages or 'text'}.", f'pipe("A man is riding a bicycle down the street."{pair_args})'

    def prompt_pattern(self, settings):
        pairs = language_pairs(settings)
        languages = {}
        if pairs:
            languages = dict(zip(("src_lang", "tgt_lang"), pairs[0] if len(pairs) == 1 else ("{src_lang}", "{tgt_lang}")))
        return build_prompt(self.format, "{text}", **languages)


@dataclass(frozen=True)
class Summarization(TextToText):
    """Document -> summary."""

    name: ClassVar[str] = "summarization"
    format: ClassVar[str] = "summarization"
    metrics: ClassVar[tuple[str, ...]] = ("rouge",)
    card_summary: ClassVar[str] = "Summarizes text."
    example_call: ClassVar[str] = 'pipe("Your long text ...", max_length=60)'

    text_column: str | None = None
    summary_column: str | None = None

    def to_columns(self, dataset, map_options):
        columns = dataset.column_names
        default_source = next((name for name in data.SUMMARY_SOURCE_COLUMNS if name in columns), None)
        default_target = next((name for name in data.SUMMARY_TARGET_COLUMNS if name in columns), None)
        source = data.find_column(columns, self.text_column or default_source, "document", "--text_column")
        target = data.find_column(columns, self.summary_column or default_target, "summary", "--summary_column")
        return data.pair_rows(dataset, (source,), (target,), map_options, desc="Reading documents")

    def prompt_inputs(self, batch):
        return batch["source"], [{}] * len(batch["source"])

    def prompt_pattern(self, settings):
        return build_prompt(self.format, "{text}")


@dataclass(frozen=True)
class QuestionAnswering:
    """What both kinds of question answering share: the rows' parts (and where the data keeps them), SQuAD's
    metrics against the answers, and the "qa" prompt format."""

    format: ClassVar[str] = "qa"
    text_columns: ClassVar[tuple[str, ...]] = ("context", "question", "answers")
    metrics: ClassVar[tuple[str, ...]] = ("squad",)
    references_column: ClassVar[str] = "answers"
    input_column_shown: ClassVar[str] = "question"

    question_column: str = "question"
    context_column: str = "context"
    answer_column: str = "answers"

    def question_rows(self, dataset, map_options, locate_answers: bool):
        return data.question_rows(
            dataset, self.question_column, self.context_column, self.answer_column, map_options, locate_answers
        )


@dataclass(frozen=True)
class GenerativeQA(QuestionAnswering, TextToText):
    """Context and question -> the answer, written by the language model after the question."""

    name: ClassVar[str] = "qa-generative"
    card_summary: ClassVar[str] = "Answers a question about a context by writing the answer."

    def to_columns(self, dataset, map_options):
        return self.question_rows(dataset, map_options, locate_answers=False)

    def prompt_inputs(self, batch):
        return batch["context"], [{"question": question} for question in batch["question"]]

    def settings(self) -> dict:
        return task_settings(self.format, mode="generative")

    def describe(self, settings):
        prompt = build_prompt(self.format, "The tower stands in Paris.", question="Where is the tower?")
        return self.card_summary, f'pipe("{prompt}", max_new_tokens=20, return_full_text=False)'

    def prompt_pattern(self, settings):
        return build_prompt(self.format, "{context}", question="{question}")


@dataclass(frozen=True)
class ExtractiveQA(QuestionAnswering, Task):
    """Context and question -> the answer's span in the context, from a start/end head (run_qa.py)."""

    name: ClassVar[str] = "qa-extractive"
    predicts_next_token: ClassVar[bool] = False
    longest_sequence_flags: ClassVar[str] = "--max_seq_length"
    card_summary: ClassVar[str] = "Answers a question by pointing at the answer in a context."
    example_call: ClassVar[str] = 'pipe(question="Where is the tower?", context="The tower stands in Paris.")'

    max_seq_length: int = 256
    doc_stride: int = 64
    max_answer_length: int = 30

    def to_columns(self, dataset, map_options):
        return self.question_rows(dataset, map_options, locate_answers=True)

    def features(self, examples, tokenizer, limits, map_options):
        return type(examples)(
            {
                split: data.extractive_qa_features(
                    # Loss features only: `predict` windows the examples itself, with the offsets it decodes from.
                    dataset, tokenizer, self.max_seq_length, self.doc_stride, False, map_options
                )
                for split, dataset in examples.items()
            }
        )

    def collator(self, tokenizer):
        return RightPaddingCollator(tokenizer)

    def longest_sequence(self) -> int:
        return self.max_seq_length

    def fit_to_context(self, limit, model_name):
        return dataclasses.replace(self, max_seq_length=limit), f"--max_seq_length {limit}"

    def settings(self) -> dict:
        # How evaluation windowed and decoded: the pipeline's defaults too.
        return task_settings(
            self.format,
            mode="extractive",
            max_seq_length=self.max_seq_length,
            doc_stride=self.doc_stride,
            max_answer_length=self.max_answer_length,
        )

    def trainer_metrics(self) -> dict:
        return {}  # the span loss only; answers are scored once, at the end

    def predict(self, model, tokenizer, examples, batch_size: int) -> list[str]:
        windows = data.extractive_qa_features(examples, tokenizer, self.max_seq_length, self.doc_stride, True, {})
        start_logits, end_logits = evaluation.span_logits(model, tokenizer, windows, batch_size)
        return evaluation.extractive_answers(examples, windows, start_logits, end_logits, self.max_answer_length)

    def hyperparameters(self) -> dict:
        return {"window (tokens)": self.max_seq_length, "window stride": self.doc_stride}


class RightPaddingCollator(DataCollatorWithPadding):
    """Pads extractive-QA windows on the right whatever the tokenizer's `padding_side` (a reused tokenizer, or one a
    generation pipeline switched to the left): answer positions count from the window's first token."""

    def __call__(self, features):
        return self.tokenizer.pad(features, padding=True, padding_side="right", return_tensors=self.return_tensors)


TASKS: dict[str, type[Task]] = {
    task.name: task for task in (LanguageModelling, Translation, Summarization, GenerativeQA, ExtractiveQA)
}


def task_of(config) -> Task:
    """The task a saved model was trained for, with the settings its config records (the rest at their defaults; a
    plain language model when the config records none)."""
    settings = settings_from_config(config)
    task_class = TASKS[task_name(settings, getattr(config, "architectures", None) or ())]
    fields = {field.name for field in dataclasses.fields(task_class)}
    recorded = {task_class.saved_names.get(key, key): value for key, value in settings.items()}
    return task_class(**{name: value for name, value in recorded.items() if name in fields})
