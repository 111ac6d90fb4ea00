"""The command line's arguments: the model, data and training dataclasses `HfArgumentParser` reads, and the checks
across them that fail a run before any work.
"""

import dataclasses
import difflib
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import AutoConfig, HfArgumentParser, TrainingArguments
from transformers.integrations import is_tensorboard_available

from .configuration_tiny_rnn import RECURRENT_CELLS
from .data import SUMMARY_SOURCE_COLUMNS, SUMMARY_TARGET_COLUMNS, DataSource
from .model_building import ARCHITECTURES, SIZE_PRESETS, new_model_config, parse_config_overrides
from .task_formats import TASKS, settings_from_config
from .tasks import TASKS as TASK_CLASSES
from .tasks import Task
from .tokenization import TOKENIZER_TYPES

logger = logging.getLogger(__name__)

QA_MODES = ("extractive", "generative")


def _describe_presets() -> str:
    return "; ".join(
        f"{arch} {size}: " + ", ".join(f"{key}={value}" for key, value in preset.items())
        for arch, presets in SIZE_PRESETS.items()
        for size, preset in presets.items()
    )


@dataclass
class ModelArguments:
    """The model to train: a new one (architecture, size, tokenizer) or a saved one to continue from."""

    _argument_group_name = "model and tokenizer"

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue training this saved model (folder or Hub id), with its tokenizer. Without it a new "
            "model is built from --arch and --model_size."
        },
    )
    arch: str = field(
        default="attention",
        metadata={"help": "New model's family: self-attention decoder or recurrent.", "choices": list(ARCHITECTURES)},
    )
    cell: str = field(
        default="lstm", metadata={"help": "--arch rnn: the recurrent cell.", "choices": list(RECURRENT_CELLS)}
    )
    model_size: str = field(
        default="small",
        metadata={"help": f"New model's size preset ({_describe_presets()}).", "choices": ["tiny", "small", "base"]},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Config values over the preset or the saved config, e.g. "
            "'hidden_size=96,num_hidden_layers=3,hidden_dropout=0.1'."
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Reuse this tokenizer (folder or Hub id) instead of training one."}
    )
    tokenizer_type: str = field(
        default="bpe",
        metadata={
            "help": "Tokenizer trained on the training data: byte-level BPE, or characters (with byte fallback for "
            "characters it has not seen; good for small corpora like Tiny Shakespeare).",
            "choices": list(TOKENIZER_TYPES),
        },
    )
    vocab_size: int = field(
        default=2048, metadata={"help": "Vocabulary size of the trained tokenizer (for 'char', an upper bound)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models and datasets are cached."})


@dataclass
class DataArguments:
    """What to train on, how each task turns it into model inputs, and how generation is evaluated."""

    _argument_group_name = "data and task"

    task: str = field(
        default="lm",
        metadata={"help": "What the model learns.", "choices": list(TASKS)},
    )
    qa_mode: str = field(
        default="extractive",
        metadata={
            "help": "qa only: 'extractive' trains a span head that points at the answer in the context; "
            "'generative' trains the language model to write the answer after the question.",
            "choices": list(QA_MODES),
        },
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id, e.g. 'wikitext'."})
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset config, e.g. 'wikitext-2-raw-v1'."}
    )
    train_split_name: str = field(default="train", metadata={"help": "--dataset_name: the split to train on."})
    validation_split_name: str = field(
        default="validation",
        metadata={
            "help": "--dataset_name: the split to evaluate on; when the dataset has none by that name, "
            "--validation_split_percentage of the training split is held out."
        },
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local training file: .txt (one row per line; lm only), .json/.jsonl, .csv or .parquet. A .json "
            "file holding one object with a 'data' list (SQuAD layout, nested paragraphs/qas or flat rows) is read "
            "from that list. Without --dataset_name or --train_file, lm trains on the CPython documentation that "
            "ships with Python."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file, same formats."})
    validation_split_percentage: int = field(
        default=5,
        metadata={"help": "Without a validation split, hold out this last percentage of the training rows (0: none)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (lm: the first N packed blocks)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use only the first N validation examples, also for generated predictions (lm: N packed blocks)."
        },
    )
    text_column: str | None = field(
        default=None,
        metadata={
            "help": "lm: the text column (default 'text', or the only string column). summarization: the document "
            f"column (default: the first of {', '.join(SUMMARY_SOURCE_COLUMNS)})."
        },
    )
    summary_column: str | None = field(
        default=None,
        metadata={
            "help": f"summarization: the summary column (default: the first of {', '.join(SUMMARY_TARGET_COLUMNS)})."
        },
    )
    source_lang: str | None = field(
        default=None, metadata={"help": "translation: source language code, e.g. 'en' (written into the prompt)."}
    )
    target_lang: str | None = field(default=None, metadata={"help": "translation: target language code, e.g. 'de'."})
    source_column: str | None = field(
        default=None,
        metadata={
            "help": "translation: column of source sentences (default: the 'translation' column's source_lang "
            "entry, or a column named like source_lang)."
        },
    )
    target_column: str | None = field(default=None, metadata={"help": "translation: column of target sentences."})
    question_column: str = field(default="question", metadata={"help": "qa: question column."})
    context_column: str = field(default="context", metadata={"help": "qa: context column."})
    answer_column: str = field(
        default="answers",
        metadata={
            "help": "qa: answers column: SQuAD-style {'text': [...], 'answer_start': [...]}, a list of strings or a "
            "string. Extractive QA finds answers without a start in the context."
        },
    )
    keep_linebreaks: bool = field(default=True, metadata={"help": "Keep line breaks when reading .txt files."})
    block_size: int = field(default=128, metadata={"help": "lm: length of the packed training blocks, in tokens."})
    max_source_length: int = field(
        default=256, metadata={"help": "translation/summarization/generative qa: longest prompt; the source is cut."}
    )
    max_target_length: int = field(
        default=64, metadata={"help": "translation/summarization/generative qa: longest target, eos included."}
    )
    max_seq_length: int = field(
        default=256, metadata={"help": "extractive qa: tokens per window (question + context)."}
    )
    doc_stride: int = field(default=64, metadata={"help": "extractive qa: overlap between windows of a long context."})
    max_answer_length: int = field(default=30, metadata={"help": "extractive qa: longest answer, in tokens."})
    num_beams: int = field(default=1, metadata={"help": "Beams for generated predictions (1: greedy)."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Longest generated prediction (default --max_target_length), or lm sample (default 200)."},
    )
    sample_prompt: str = field(default="The", metadata={"help": "lm: prompt of the sample printed after training."})
    license: str | None = field(
        default=None,
        metadata={
            "help": "Model card: the Hub licence id to publish under, usually the training data's terms "
            "('apache-2.0', 'cc-by-sa-4.0', 'other', ...; a '-nc' licence marks the model non-commercial)."
        },
    )
    language: list[str] | None = field(
        default=None,
        metadata={"help": "Model card: language code(s) of the training data, e.g. 'en' or 'en de'."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached preprocessed datasets."})

    def __post_init__(self):
        if self.dataset_name is None and self.train_file is None and self.validation_file is not None:
            raise ValueError("--validation_file needs --train_file.")
        if not self.sample_prompt.strip():
            raise ValueError("--sample_prompt must not be empty: the sample continues it.")

    def to_task(self) -> Task:
        """The `hf_tinylm.tasks` task these arguments choose, with the settings they give it."""
        task_class = TASK_CLASSES[f"qa-{self.qa_mode}" if self.task == "qa" else self.task]
        return task_class(**{name.name: getattr(self, name.name) for name in dataclasses.fields(task_class)})

    def to_source(self) -> DataSource:
        """Where these arguments say the data is."""
        return DataSource(**{name.name: getattr(self, name.name) for name in dataclasses.fields(DataSource)})

    def map_options(self) -> dict:
        """The `datasets.map` keywords of every preprocessing step."""
        return {"num_proc": self.preprocessing_num_workers, "load_from_cache_file": not self.overwrite_cache}

    def sample_limits(self) -> dict:
        """The most examples to use per split (--max_train_samples, --max_eval_samples)."""
        return {"train": self.max_train_samples, "validation": self.max_eval_samples}


# What `Trainer.evaluate` reports at the evaluations during training (the task scores need generation or span
# post-processing, done once at the end), so what --metric_for_best_model can name.
EVALUATED_DURING_TRAINING = ("loss", "perplexity")


@dataclass
class TinyLMTrainingArguments(TrainingArguments):
    """`TrainingArguments` with defaults for training a small model from scratch, plus early stopping.

    The library defaults suit fine-tuning large pretrained models (learning rate 5e-5, logs every 500 steps); a
    small model learning from nothing wants a larger learning rate with warmup and decay, and runs short enough
    that logs and evaluations should come as fractions of the run. Epochs and batch size are what the no-argument
    run (the CPython documentation, a few minutes on two CPU cores) needs.
    """

    output_dir: str | None = field(
        default="outputs/tinylm-{name}",
        metadata={
            "help": "Where the model, checkpoints and results go. {name} becomes <arch>-<data> for lm and "
            "<arch>-<task>-<data> for the other tasks, <data> being the dataset or file name ('pydoc' for the "
            "built-in corpus)."
        },
    )
    num_train_epochs: float = field(default=8.0, metadata={"help": "Passes over the training data."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per process for training."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate of AdamW."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule after warmup."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warmup steps (a number below 1 is a fraction)."})
    logging_steps: float = field(
        default=0.02, metadata={"help": "Log every N steps (below 1: a fraction of the run)."}
    )
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: 'no', 'steps' or 'epoch'."})
    eval_steps: float | None = field(default=0.1, metadata={"help": "Evaluate every N steps (below 1: a fraction)."})
    save_steps: float = field(default=0.1, metadata={"help": "Checkpoint every N steps (below 1: a fraction)."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints to keep (the best is always kept)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Let DDP look for parameters without gradients (hf_tinylm models have none)."}
    )
    report_to: None | str | list[str] = field(
        default=None, metadata={"help": "Loggers to report to (default: tensorboard when installed, else none)."}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Resume an interrupted run from this checkpoint folder, or 'last' for the newest in output_dir."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop after this many evaluations without improving --metric_for_best_model (default: eval "
            "loss), and end with the best checkpoint's weights."
        },
    )
    hidden_optimizer: str = field(
        default="adamw",
        metadata={
            "help": "Optimizer of the weight matrices inside the layers: 'adamw', as for the rest, or 'muon' "
            "(torch.optim.Muon, scaled to AdamW's update size so --learning_rate and the schedule apply as they are; "
            "embeddings, head, norms and biases stay with --optim's AdamW).",
            "choices": ["adamw", "muon"],
        },
    )
    muon_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate of Muon with --hidden_optimizer muon (default: --learning_rate)."},
    )
    eval_samples_during_training: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate during training on a fixed random sample of this many validation samples (for lm, "
            "blocks), chosen once with --seed, and on the whole validation split only at the end: frequent "
            "evaluations for curves, early stopping or the best checkpoint then cost little."
        },
    )

    max_train_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Stop training once the optimizer steps have taken this many seconds of CPU time of this process "
            "(all its threads; evaluations not counted), e.g. to compare models at equal compute on a shared machine. The learning rate then follows the elapsed fraction of this "
            "budget instead of the step count (warmup: --warmup_steps below 1 as a fraction of the budget; then "
            "--lr_scheduler_type linear, cosine or cosine_with_min_lr; else constant), so the run ends with the rate "
            "decayed; fractional --logging_steps, --eval_steps and --save_steps become fractions of the budget too. Set "
            "--max_steps or --num_train_epochs high enough not to stop first."
        },
    )

    def __post_init__(self):
        if not torch.accelerator.is_available():
            # Said explicitly, so processes started by torchrun or accelerate form one gloo group instead of each
            # training alone; and pinning memory only speeds up copies to an accelerator (it warns without one).
            self.use_cpu = True
            self.dataloader_pin_memory = False
        if self.report_to is None:
            self.report_to = "tensorboard" if is_tensorboard_available() else "none"
        if self.early_stopping_patience is not None:
            if self.eval_strategy == "no":
                raise ValueError("--early_stopping_patience needs evaluations: set --eval_strategy steps or epoch.")
            self.load_best_model_at_end = True
        metric = (self.metric_for_best_model or "").removeprefix("eval_")
        if metric and metric not in EVALUATED_DURING_TRAINING:
            raise ValueError(
                f"--metric_for_best_model {self.metric_for_best_model}: the evaluations during training measure "
                f"{', '.join(EVALUATED_DURING_TRAINING)}; generated-text scores (BLEU, ROUGE, EM/F1) come from the "
                "final evaluation only."
            )
        if metric and self.greater_is_better is None:
            # Both are lower-is-better; transformers assumes higher is better for anything not named *loss.
            self.greater_is_better = False
        if self.eval_samples_during_training is not None:
            if self.eval_strategy == "no":
                raise ValueError(
                    "--eval_samples_during_training needs evaluations: set --eval_strategy steps or epoch."
                )
            if self.dataloader_persistent_workers:
                # Trainer keeps one persistent evaluation loader, which the final evaluation would reuse: the sample.
                raise ValueError(
                    "--eval_samples_during_training cannot be combined with --dataloader_persistent_workers."
                )
        super().__post_init__()
        self._check_hidden_optimizer()

    def _check_hidden_optimizer(self) -> None:
        """Muon is paired with AdamW on one process or DDP; refuse what the pair cannot run (a YAML file bypasses
        the flag's choices)."""
        if self.hidden_optimizer not in ("adamw", "muon"):
            raise ValueError(f"--hidden_optimizer must be 'adamw' or 'muon', got {self.hidden_optimizer!r}.")
        if self.hidden_optimizer == "adamw":
            if self.muon_learning_rate is not None:
                raise ValueError("--muon_learning_rate sets Muon's rate: add --hidden_optimizer muon, or drop it.")
            return
        if not hasattr(torch.optim, "Muon"):
            raise ValueError(
                f"--hidden_optimizer muon needs torch.optim.Muon (torch 2.9 or newer); this is {torch.__version__}."
            )
        if not self.optim.value.startswith("adamw_torch"):
            raise ValueError(
                f"--hidden_optimizer muon pairs Muon with AdamW (--optim adamw_torch or adamw_torch_fused), not "
                f"--optim {self.optim.value}."
            )
        if self.deepspeed or self.fsdp:
            raise ValueError("--hidden_optimizer muon needs whole weight matrices: DeepSpeed and FSDP shard them.")
        if self.muon_learning_rate is None:
            self.muon_learning_rate = self.learning_rate


def parse_args(argv: list[str] | None = None):
    """(model, data, training) arguments from the command line, or from a single .json/.yaml file of them."""
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, TinyLMTrainingArguments),
        description="Train an hf_tinylm model. Without arguments: a small attention LM on the CPython docs.",
    )
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        text = Path(argv[0]).read_text(encoding="utf-8")
        values = json.loads(text) if argv[0].endswith(".json") else yaml.safe_load(text)
        _refuse_unknown(parser, {key: f"`{key}`" for key in values}, f" in {argv[0]}")
        parsed, given = parser.parse_dict(values), set(values)
        typed_names = {name: f"`{name}` in {argv[0]}" for name in given}
    else:
        typed_names = {_dest(flag): flag for flag in (arg.split("=", 1)[0] for arg in argv if arg.startswith("--"))}
        _refuse_unknown(parser, typed_names)
        parsed = parser.parse_args_into_dataclasses(args=argv)
        given = set(typed_names)
    model_args, data_args = parsed[:2]
    _check_numbers(parsed, typed_names)
    if "cell" in given and model_args.arch != "rnn":
        raise ValueError(f"--cell chooses the recurrent cell of --arch rnn; this run is --arch {model_args.arch}.")
    if "validation_file" in given and data_args.dataset_name:
        raise ValueError(
            "--validation_file goes with --train_file; with --dataset_name, name the split: --validation_split_name."
        )
    if {"do_eval", "do_predict"} & given and "do_train" not in given:
        # (Not checked on the arguments themselves: TrainingArguments sets do_eval whenever it evaluates.)
        raise ValueError(
            "--do_eval/--do_predict without --do_train: train.py always trains (then evaluates); to only score "
            "a saved model, use transformers' Trainer.evaluate or the pipelines."
        )
    _continue_the_saved_task(model_args, data_args, given)
    _check_new_model_settings(model_args, data_args)
    return parsed


def _dest(flag: str) -> str:
    """The name a flag is known by, however it is spelt: "--max-steps" and "--max_steps" are `max_steps`."""
    return flag[2:].replace("-", "_")


# Trainer arguments of transformers 4.x that 5.x renamed or removed: what a 4.x command line means now.
_FROM_TRANSFORMERS_4 = {
    "group_by_length": "--train_sampling_strategy group_by_length",
    "evaluation_strategy": "--eval_strategy",
    "no_cuda": "--use_cpu",
    "per_gpu_train_batch_size": "--per_device_train_batch_size",
    "push_to_hub_token": "--hub_token",
    "overwrite_output_dir": "nothing: an existing --output_dir is written over (with a warning); "
    "--resume_from_checkpoint last continues a run in it",
    "logging_dir": "the environment variable TENSORBOARD_LOGGING_DIR (default OUTPUT_DIR/runs/...)",
    "save_safetensors": "nothing: checkpoints are always safetensors",
}


def _refuse_unknown(parser: HfArgumentParser, names: dict[str, str], where: str = "") -> None:
    """An argument train.py does not have is named, with the nearest ones it has, before anything is parsed
    (transformers' parser would only list what it left over). `names`: each argument's `_dest` form -> as given."""
    known = {_dest(flag) for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    hints = []
    for key, name in names.items():
        if key in known:
            continue
        if key in _FROM_TRANSFORMERS_4:
            hints.append(f"{name} (a transformers 4 argument; in 5 use {_FROM_TRANSFORMERS_4[key]})")
            continue
        near = difflib.get_close_matches(key, known, n=3)
        hints.append(f"{name} (did you mean {' or '.join('--' + n for n in near)}?)" if near else name)
    if not hints:
        return
    raise ValueError(
        f"train.py has no argument {', '.join(hints)}{where}; `python train.py --help` lists them all."
    )


def _check_new_model_settings(model_args: ModelArguments, data_args: DataArguments) -> None:
    """Build the configuration a new model will get now, so that `--config_overrides` naming no field, values the
    model cannot be built with, or a context shorter than the sequences this run feeds it fail when the arguments are
    read rather than after the tokenizer and the data are made."""
    if model_args.model_name_or_path:
        return
    overrides = parse_config_overrides(model_args.config_overrides, ARCHITECTURES[model_args.arch])
    task = data_args.to_task()
    if model_args.arch == "attention":
        longest = task.longest_sequence()
        context = overrides.get("max_position_embeddings", longest)
        if context < longest:
            raise ValueError(
                f"--config_overrides max_position_embeddings={context} is shorter than the longest sequence this run "
                f"feeds the model ({longest} tokens: {task.longest_sequence_flags}); raise it, or lower those."
            )
    try:
        new_model_config(model_args, task, vocab_size=model_args.vocab_size)
    except ValueError as error:
        overridden = f" with --config_overrides {model_args.config_overrides}" if overrides else ""
        raise ValueError(f"--model_size {model_args.model_size}{overridden} describes no buildable model: {error}") from None


# What each numeric argument must be; `max_steps` is -1 (the default: no limit) or positive; any float must be finite.
_RANGES = {
    "positive": (lambda value: value > 0, "more than 0"),
    "non-negative": (lambda value: value >= 0, "at least 0"),
    "fraction": (lambda value: 0 <= value < 1, "in [0, 1)"),
    "percentage": (lambda value: 0 <= value < 100, "in [0, 100)"),
}
_NUMBER_RANGES = {
    **dict.fromkeys(
        (
            "vocab_size",
            "block_size",
            "max_source_length",
            "max_target_length",
            "max_seq_length",
            "max_answer_length",
            "num_beams",
            "max_train_samples",
            "max_eval_samples",
            "max_new_tokens",
            "preprocessing_num_workers",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "save_total_limit",
            "early_stopping_patience",
            "eval_samples_during_training",
            "muon_learning_rate",
            "num_train_epochs",
            "logging_steps",
            "eval_steps",
            "save_steps",
            "max_train_seconds",
            "adam_epsilon",
        ),
        "positive",
    ),
    **dict.fromkeys(
        ("learning_rate", "weight_decay", "warmup_steps", "max_grad_norm", "doc_stride", "dataloader_num_workers"),
        "non-negative",
    ),
    **dict.fromkeys(("label_smoothing_factor", "adam_beta1", "adam_beta2"), "fraction"),
    "validation_split_percentage": "percentage",
}


def _check_numbers(parsed, typed_names: dict[str, str]) -> None:
    """Refuse numbers that cannot mean anything (NaN, a negative step count, a zero batch size, ...) before any work,
    naming the argument as it was given; left unchecked they fail deep inside torch, or silently mean something else
    (`--max_steps -5` would train without a step limit)."""
    for arguments in parsed:
        for name, value in vars(arguments).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            flag = typed_names.get(name, f"--{name}")
            if not math.isfinite(value):
                raise ValueError(f"{flag} must be a finite number, got {value}.")
            if name == "max_steps" and value != -1 and value <= 0:
                raise ValueError(
                    f"{flag} must be a positive number of optimizer steps (or -1, the default, to train for "
                    f"--num_train_epochs), got {value}."
                )
            if name in _NUMBER_RANGES:
                accepts, wanted = _RANGES[_NUMBER_RANGES[name]]
                if not accepts(value):
                    raise ValueError(f"{flag} must be {wanted}, got {value}.")


def _continue_the_saved_task(model_args: ModelArguments, data_args: DataArguments, given: set[str]) -> None:
    """A saved model trained for a task goes on with that task (its languages, its QA mode) where the arguments do
    not say otherwise, as a new model defaults to language modelling."""
    if not model_args.model_name_or_path:
        return
    config = AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
    saved = settings_from_config(config)
    if "task" not in given and saved.get("task", "lm") != data_args.task:
        data_args.task = saved["task"]
        if "qa_mode" not in given and "mode" in saved:
            data_args.qa_mode = saved["mode"]
        logger.warning(
            f"{model_args.model_name_or_path} was trained for {saved}; continuing with that task (pass --task to "
            "choose another)."
        )
    if data_args.task == saved.get("task") == "translation":
        data_args.source_lang = data_args.source_lang or saved.get("src_lang")
        data_args.target_lang = data_args.target_lang or saved.get("tgt_lang")
