"""The training command behind `train.py`: arguments -> data -> tokenizer -> model -> `Trainer` -> scores -> folder.

It follows transformers' example scripts (run_clm.py, run_translation.py, run_summarization.py, run_qa.py): the same
argument names, one `HfArgumentParser` over model, data and training dataclasses, and `Trainer` (Accelerate
underneath), so the same command runs in one process, under `torchrun` or under `accelerate launch`.
"""

import contextlib
import importlib.util
import inspect
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import huggingface_hub
import torch
import transformers
import yaml
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.integrations import is_tensorboard_available
from transformers.trainer_callback import ExportableState
from transformers.trainer_pt_utils import LabelSmoother
from transformers.trainer_utils import IntervalStrategy, TrainOutput

from . import data, evaluation
from .checkpoints import last_complete_checkpoint, missing_parts
from .configuration_tiny_attention import TinyAttentionConfig
from .configuration_tiny_rnn import RECURRENT_CELLS, TinyRNNConfig
from .hub import push_to_hub, write_model_card
from .metrics import check_installed as check_metrics_installed
from .task_formats import CONFIG_KEY, settings_from_config, task_settings
from .tinylm_common import context_limit
from .tokenization import (
    TOKENIZER_TYPES,
    add_missing_special_tokens,
    make_tokenizer_config_portable,
    train_tokenizer,
    vocabulary_fingerprint,
)

logger = logging.getLogger(__name__)

ARCHITECTURES = {"attention": TinyAttentionConfig, "rnn": TinyRNNConfig}
# Starting points; --config_overrides changes any config field.
SIZE_PRESETS = {
    "attention": {
        "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        "small": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
        "base": {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 8},
    },
    "rnn": {
        "tiny": {"hidden_size": 64, "num_hidden_layers": 1},
        "small": {"hidden_size": 256, "num_hidden_layers": 2},
        "base": {"hidden_size": 512, "num_hidden_layers": 3},
    },
}


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
        super().__post_init__()


def parse_args(argv: list[str] | None = None):
    """(model, data, training) arguments from the command line, or from a single .json/.yaml file of them."""
    parser = HfArgumentParser(
        (ModelArguments, data.DataArguments, TinyLMTrainingArguments),
        description="Train an hf_tinylm model. Without arguments: a small attention LM on the CPython docs.",
    )
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        parsed, given = parser.parse_json_file(argv[0]), set(json.loads(Path(argv[0]).read_text()))
        typed_names = {name: f"`{name}` in {argv[0]}" for name in given}
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        parsed, given = parser.parse_yaml_file(argv[0]), set(yaml.safe_load(Path(argv[0]).read_text()))
        typed_names = {name: f"`{name}` in {argv[0]}" for name in given}
    else:
        parsed = parser.parse_args_into_dataclasses(args=argv)
        typed_names = {
            arg[2:].split("=", 1)[0].replace("-", "_"): arg.split("=", 1)[0] for arg in argv if arg.startswith("--")
        }
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


def _check_new_model_settings(model_args: ModelArguments, data_args: data.DataArguments) -> None:
    """Build the configuration a new model will get now, so that `--config_overrides` naming no field, values the
    model cannot be built with, or a context shorter than the sequences this run feeds it fail when the arguments are
    read rather than after the tokenizer and the data are made."""
    if model_args.model_name_or_path:
        return
    overrides = _parse_overrides(model_args.config_overrides, ARCHITECTURES[model_args.arch])
    if model_args.arch == "attention":
        longest = _longest_sequence(data_args)
        context = overrides.get("max_position_embeddings", longest)
        if context < longest:
            raise ValueError(
                f"--config_overrides max_position_embeddings={context} is shorter than the longest sequence this run "
                f"feeds the model ({longest} tokens: {_longest_sequence_flags(data_args)}); raise it, or lower those."
            )
    try:
        _new_model_config(model_args, data_args, vocab_size=model_args.vocab_size)
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


def _continue_the_saved_task(model_args: ModelArguments, data_args: data.DataArguments, given: set[str]) -> None:
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


def _fit_lengths_to(limit: int | None, data_args: data.DataArguments, model_name: str) -> None:
    """Shorten the sequence lengths to what a saved model reads (saying so), rather than fail at the first long batch.

    Blocks and QA windows just get shorter (more of them); generation tasks cut their sources shorter."""
    if limit is None or _longest_sequence(data_args) <= limit:
        return
    if data_args.task == "lm":
        data_args.block_size = limit
        fitted = f"--block_size {limit}"
    elif _is_extractive(data_args):
        data_args.max_seq_length = limit
        fitted = f"--max_seq_length {limit}"
    else:
        target = max(data_args.max_target_length, data_args.max_new_tokens or 0)
        if target >= limit:
            raise ValueError(
                f"{model_name} reads at most {limit} tokens, not enough for targets of {target} "
                "(--max_target_length / --max_new_tokens) after a prompt; lower them."
            )
        data_args.max_source_length = limit - target
        fitted = f"--max_source_length {limit - target} (prompts longer than that are cut)"
    logger.warning(f"{model_name} reads at most {limit} tokens, so this run uses {fitted}.")


def main(argv: list[str] | None = None) -> dict:
    return run(*parse_args(argv))


def run(
    model_args: ModelArguments, data_args: data.DataArguments, training_args: TinyLMTrainingArguments, callbacks=()
):
    """Train and evaluate, save the model folder, and return the final evaluation metrics.

    `callbacks` are extra `TrainerCallback`s for the run.
    """
    _setup_logging(training_args)
    training_args.output_dir = _fill_output_dir(training_args.output_dir, model_args, data_args)
    checkpoint = _resume_checkpoint(training_args)
    output_dir = Path(training_args.output_dir)
    if checkpoint is None and output_dir.is_dir() and any(output_dir.iterdir()):
        logger.warning(
            f"{output_dir} already holds files of an earlier run; this run writes over them, and its checkpoint "
            "rotation may delete the earlier checkpoints. Pass another --output_dir to keep them."
        )
    with _output_dir_untouched_on_failure(output_dir, training_args.should_save):
        trainer, tokenizer, examples, features, upload = _prepare_trainer(
            model_args, data_args, training_args, callbacks, checkpoint
        )
    model = trainer.model

    cpu_started = time.process_time()
    try:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
    except TrainingAlreadyFinished:  # resumed from the last step's checkpoint, whose weights Trainer has loaded
        train_result = TrainOutput(trainer.state.global_step, float("nan"), {})
    train_result.metrics["train_cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    model.config.use_cache = True  # Trainer turned the cache off for training; generation wants it
    _save_final_folder(trainer)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    metrics = _evaluate(trainer, tokenizer, examples, features, data_args) if "validation" in features else {}
    if trainer.is_world_process_zero():
        _report(trainer, tokenizer, model_args, data_args, metrics)
        if upload:
            repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
            commit = push_to_hub(
                training_args.output_dir,
                repo_id,
                token=training_args.hub_token,
                private=training_args.hub_private_repo,
                commit_message="hf_tinylm: model, tokenizer, card and results",
                ignore_patterns=["checkpoint-*/**"],
            )
            print(f"Uploaded to the Hub: {commit.commit_url}")
    return metrics


def _prepare_trainer(model_args, data_args, training_args, callbacks, checkpoint):
    """Everything before the first step: checks, data, tokenizer, model, features, and the Trainer."""
    set_seed(training_args.seed)
    check_metrics_installed(evaluation.GENERATION_METRICS.get(data_args.task, ()))
    _check_hub_access(training_args)
    # --push_to_hub uploads the finished folder once, with hf_tinylm's card (Trainer's own pushes would carry its
    # generic card, and every checkpoint).
    upload, training_args.push_to_hub = training_args.push_to_hub, False
    saved_config = None
    if model_args.model_name_or_path:
        saved_config = AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
        _fit_lengths_to(context_limit(saved_config), data_args, model_args.model_name_or_path)

    with training_args.main_process_first(desc="loading the data"):
        examples = data.task_examples(data.load_raw_datasets(data_args, model_args.cache_dir), data_args)
    if "validation" not in examples and training_args.early_stopping_patience is not None:
        raise ValueError("--early_stopping_patience needs validation data; set --validation_split_percentage.")
    tokenizer = _load_or_train_tokenizer(model_args, data_args, training_args, examples["train"], checkpoint)
    model = _build_model(model_args, data_args, tokenizer, saved_config)
    with training_args.main_process_first(desc="tokenizing the data"):
        features = _features(examples, tokenizer, data_args)

    if "validation" not in features:
        training_args.eval_strategy = IntervalStrategy.NO  # nothing to evaluate on
    extractive = _is_extractive(data_args)
    if data_args.task == "lm":
        collator = default_data_collator
    elif extractive:
        collator = RightPaddingCollator(tokenizer)
    else:
        # No `pad_to_multiple_of`: it would pad past the context length the model was sized for.
        collator = DataCollatorForSeq2Seq(tokenizer)
    callbacks = [*callbacks, StopWhenAlreadyFinished()]
    time_budget = TimeBudgetCallback(training_args.max_train_seconds) if training_args.max_train_seconds else None
    if time_budget is not None:
        callbacks.append(time_budget)
    if training_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=features["train"],
        eval_dataset=features.get("validation"),
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=None if extractive else evaluation.compute_perplexity,
        preprocess_logits_for_metrics=None if extractive else evaluation.sequence_nll,
        callbacks=callbacks,
        compute_loss_func=_label_smoothed_causal_loss(training_args.label_smoothing_factor, extractive),
    )
    if time_budget is not None:
        time_budget.trainer = trainer
    return trainer, tokenizer, examples, features, upload


@contextlib.contextmanager
def _output_dir_untouched_on_failure(output_dir: Path, is_main_process: bool):
    """A run that fails before training leaves `output_dir` as it found it: whatever it added there by then (the
    trained tokenizer, log folders, the folder itself) is removed again."""
    existed = output_dir.is_dir()
    before = set(output_dir.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if is_main_process and output_dir.is_dir():
            if not existed:
                shutil.rmtree(output_dir, ignore_errors=True)
            else:
                for path in set(output_dir.iterdir()) - before:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise


def _save_final_folder(trainer: Trainer) -> None:
    """Save the trained model as a Hub-ready folder: only the code its own model needs (a folder reused from a run
    of the other family would keep that family's files), no pickle (Trainer's `training_args.bin`; the arguments go
    to `training_args.json`), and a tokenizer config every supported transformers release reads."""
    folder = Path(trainer.args.output_dir)
    if trainer.is_world_process_zero() and folder.is_dir():
        package_modules = {path.name for path in Path(__file__).parent.glob("*.py")}
        for path in folder.glob("*.py"):
            if path.name in package_modules:
                path.unlink()
    trainer.save_model()
    if trainer.is_world_process_zero():
        (folder / "training_args.bin").unlink(missing_ok=True)
        (folder / "training_args.json").write_text(trainer.args.to_json_string() + "\n", encoding="utf-8")
        make_tokenizer_config_portable(folder)


def _check_hub_access(training_args: TrainingArguments) -> None:
    """With --push_to_hub, fail before any work unless the Hub is reachable with a token."""
    if not training_args.push_to_hub:
        return
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise ValueError("--push_to_hub, but HF_HUB_OFFLINE is set: the Hub cannot be reached.")
    token = training_args.hub_token or huggingface_hub.get_token()
    if not token:
        raise ValueError("--push_to_hub needs a Hub token: run `hf auth login`, or pass --hub_token.")
    try:
        huggingface_hub.HfApi().whoami(token=token)
    except Exception as error:  # network down, bad token: either way nothing could be uploaded
        raise ValueError(
            f"--push_to_hub: the Hub did not accept this token or could not be reached ({error})."
        ) from error


def _label_smoothed_causal_loss(epsilon: float, extractive: bool):
    """The loss for --label_smoothing_factor: shifted labels, as for transformers' own causal LMs (Trainer recognises
    those by class name only, so it would not shift ours and the model would learn to copy its input)."""
    if not epsilon:
        return None
    if extractive:
        raise ValueError("--label_smoothing_factor smooths next-token targets; extractive QA's span loss has none.")
    smoother = LabelSmoother(epsilon=epsilon)

    def loss(outputs, labels, num_items_in_batch=None):
        return smoother(outputs, labels, shift_labels=True, num_items_in_batch=num_items_in_batch)

    return loss


def _value(option) -> str:
    """An enum option's string (TrainingArguments turns strategies into enums)."""
    return getattr(option, "value", option)


class RightPaddingCollator(DataCollatorWithPadding):
    """Pads extractive-QA windows on the right whatever the tokenizer's `padding_side` (a reused tokenizer, or one a
    generation pipeline switched to the left): answer positions count from the window's first token."""

    def __call__(self, features):
        return self.tokenizer.pad(features, padding=True, padding_side="right", return_tensors=self.return_tensors)


class TrainingAlreadyFinished(Exception):
    """Raised by `StopWhenAlreadyFinished` before a step that the run must not take."""


class StopWhenAlreadyFinished(TrainerCallback):
    """Resumed from a checkpoint of its last step (a run killed during its final save), Trainer would still take one
    more step before it checks `max_steps`; this stops it at the start, with the checkpoint's weights loaded."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise TrainingAlreadyFinished


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """Stops training after `seconds` of CPU time spent in optimizer steps, with the learning rate scheduled over
    that time.

    CPU time of the process (`time.process_time`, all threads), not wall-clock time: other programs on the machine
    then do not shrink the budget, so runs compared at equal budgets did equal work. In a distributed run each step
    counts the slowest process's time, so every process sets the same rate and stops at the same step. The time
    spent is saved with each checkpoint and picked up again on resume.

    Each step sets the rate from the elapsed fraction of the budget, after the step-based scheduler has set its own,
    so warmup and decay span the budget whatever the step speed.
    """

    def __init__(self, seconds: float, trainer: Trainer | None = None):
        self.seconds = float(seconds)
        self.trainer = trainer
        self.elapsed = 0.0
        self._started = None

    def state(self) -> dict:
        return {"args": {"seconds": self.seconds}, "attributes": {"elapsed": self.elapsed}}

    def on_train_begin(self, args, state, control, **kwargs):
        # On resume, Trainer has loaded the checkpoint's state, which holds what `state()` returned when it was saved.
        saved = state.stateful_callbacks.get(type(self).__name__) if state.global_step > 0 else None
        if saved:
            self.elapsed = float(saved["attributes"]["elapsed"])

    def rate_scale(self, args, step: int) -> float:
        fraction = min(self.elapsed / self.seconds, 1.0)
        warmup = args.warmup_steps
        if 0 < warmup < 1 and fraction < warmup:
            return fraction / warmup
        if warmup >= 1 and step < warmup:
            return (step + 1) / warmup
        if 0 < warmup < 1:
            fraction = (fraction - warmup) / (1 - warmup)
        kind = _value(args.lr_scheduler_type)
        if kind == "linear":
            return 1.0 - fraction
        if kind in ("cosine", "cosine_with_min_lr"):
            floor = (args.lr_scheduler_kwargs or {}).get("min_lr_rate", 0.0) if kind == "cosine_with_min_lr" else 0.0
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * fraction))
        return 1.0

    def on_step_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        self._started = time.process_time()
        # The callback handler is given the optimizer and scheduler only when Trainer has them at construction.
        optimizer = optimizer or getattr(self.trainer, "optimizer", None)
        lr_scheduler = lr_scheduler or getattr(self.trainer, "lr_scheduler", None)
        if optimizer is None:
            raise RuntimeError("TimeBudgetCallback needs the optimizer: set its `trainer` attribute.")
        scale = self.rate_scale(args, state.global_step)
        for group in optimizer.param_groups:
            group["lr"] = group.get("initial_lr", args.learning_rate) * scale
        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # Accelerate wraps it
        if hasattr(scheduler, "_last_lr"):  # so Trainer logs the rate used, not the step schedule's
            scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]

    def on_step_end(self, args, state, control, **kwargs):
        before = self.elapsed
        if self._started is not None:
            step_seconds = time.process_time() - self._started
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                slowest = torch.tensor(step_seconds, device=args.device)
                torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
                step_seconds = slowest.item()
            self.elapsed += step_seconds
        # Intervals given as fractions (--logging_steps 0.02, ...) are fractions of the budget: Trainer takes them
        # of --max_steps, which a budgeted run sets too high to matter.
        for strategy, fraction, flag in (
            (args.logging_strategy, args.logging_steps, "should_log"),
            (args.eval_strategy, args.eval_steps, "should_evaluate"),
            (args.save_strategy, args.save_steps, "should_save"),
        ):
            if _value(strategy) == "steps" and fraction and fraction < 1:
                interval = fraction * self.seconds
                if before // interval < self.elapsed // interval:
                    setattr(control, flag, True)
        if self.elapsed >= self.seconds:
            control.should_training_stop = True


def _setup_logging(training_args: TrainingArguments) -> None:
    """This module reports its steps on the main process; transformers and datasets log at --log_level (warnings by
    default, so the progress bars and results stay readable)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(logging.INFO if training_args.should_log else log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_explicit_format()


def _fill_output_dir(template: str, model_args: ModelArguments, data_args: data.DataArguments) -> str:
    task = {"lm": [], "qa": ["qa", data_args.qa_mode]}.get(data_args.task, [data_args.task])
    name = "-".join([model_args.arch, *task, _data_name(data_args, readable=False)])
    return template.replace("{name}", name)


def _data_name(data_args: data.DataArguments, readable: bool) -> str:
    """The training data's name: for the model card (`readable`), or short, for the output folder."""
    if data_args.dataset_name:
        return data_args.dataset_name if readable else data_args.dataset_name.rsplit("/", 1)[-1]
    if data_args.train_file:
        return Path(data_args.train_file).name if readable else Path(data_args.train_file).stem
    return "the CPython documentation (pydoc_data.topics)" if readable else "pydoc"


def _resume_checkpoint(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from. "last" is the newest complete one (incomplete ones, left by a kill in the middle
    of a save, are removed); with none, the run starts from the beginning, as a run killed before its first save
    must."""
    checkpoint = training_args.resume_from_checkpoint
    with_optimizer = not training_args.save_only_model
    if checkpoint == "last":
        checkpoint = last_complete_checkpoint(
            training_args.output_dir, with_optimizer, remove_incomplete=training_args.should_save
        )
        if checkpoint is None:
            logger.warning(
                f"--resume_from_checkpoint last: no complete checkpoint in {training_args.output_dir}; training "
                "from the start."
            )
    elif checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise FileNotFoundError(f"Checkpoint folder {checkpoint} does not exist.")
        if missing := missing_parts(checkpoint, with_optimizer):
            raise ValueError(
                f"{checkpoint} is an incomplete checkpoint (no {', '.join(missing)}): pass an earlier one, or "
                "--resume_from_checkpoint last for the newest complete one."
            )
    if checkpoint is not None:
        logger.info(f"Resuming from {checkpoint}")
    return checkpoint


def _is_extractive(data_args: data.DataArguments) -> bool:
    return data_args.task == "qa" and data_args.qa_mode == "extractive"


def _load_or_train_tokenizer(model_args, data_args, training_args, train_examples, checkpoint):
    """The checkpoint's tokenizer when resuming; else the named or saved model's; else one trained on the data.

    A trained tokenizer is trained once, by the main process, and saved to the output folder for the others."""
    source = checkpoint or model_args.tokenizer_name or model_args.model_name_or_path
    if source is not None:
        return AutoTokenizer.from_pretrained(source, cache_dir=model_args.cache_dir)
    with training_args.main_process_first(desc="training the tokenizer"):
        if training_args.local_process_index == 0:
            logger.info(f"Training a {model_args.tokenizer_type} tokenizer on the training data")
            texts = data.training_texts(train_examples, data_args.task)
            tokenizer = train_tokenizer(texts, model_args.tokenizer_type, model_args.vocab_size)
            tokenizer.save_pretrained(training_args.output_dir)
        else:
            tokenizer = AutoTokenizer.from_pretrained(training_args.output_dir)
    return tokenizer


def _parse_overrides(overrides: str | None, config_class) -> dict:
    """'a=1,b=0.5,c=gelu' -> {"a": 1, "b": 0.5, "c": "gelu"}, each key checked against the config's fields."""
    if not overrides:
        return {}
    known = {
        name
        for cls in config_class.__mro__
        if "__init__" in vars(cls)
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    }
    values = {}
    for item in overrides.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in known:
            raise ValueError(
                f"--config_overrides: {item!r} is not 'field=value' for a {config_class.__name__} field "
                f"({', '.join(sorted(known))})."
            )
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def _build_model(model_args: ModelArguments, data_args: data.DataArguments, tokenizer, saved_config=None):
    """A new model sized for the tokenizer and the task's longest sequence, or the saved one, with its task settings.

    A saved model whose vocabulary is smaller than the tokenizer was trained with another tokenizer: refused. When
    a reused tokenizer lacks hf_tinylm's special tokens they are added, and a saved model's embeddings grow to match.
    """
    auto_class = AutoModelForQuestionAnswering if _is_extractive(data_args) else AutoModelForCausalLM
    if model_args.model_name_or_path:
        config = saved_config or AutoConfig.from_pretrained(
            model_args.model_name_or_path, cache_dir=model_args.cache_dir
        )
        _check_tokenizer_belongs_to(config, tokenizer, model_args)
        for key, value in _parse_overrides(model_args.config_overrides, type(config)).items():
            setattr(config, key, value)
        model = auto_class.from_pretrained(
            model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir
        )
        if add_missing_special_tokens(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
    else:
        add_missing_special_tokens(tokenizer)
        config = _new_model_config(
            model_args,
            data_args,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = auto_class.from_config(config)
    logger.info(f"{type(model).__name__}: {model.num_parameters():,} parameters")

    model.config.tokenizer_fingerprint = vocabulary_fingerprint(tokenizer)
    task_args = {"mode": data_args.qa_mode} if data_args.task == "qa" else {}
    if _is_extractive(data_args):  # how evaluation windowed and decoded: the pipeline's defaults too
        task_args.update(
            max_seq_length=data_args.max_seq_length,
            doc_stride=data_args.doc_stride,
            max_answer_length=data_args.max_answer_length,
        )
    if data_args.task == "translation":
        task_args.update(src_lang=data_args.source_lang, tgt_lang=data_args.target_lang)
    model.config.task_specific_params = {
        **(getattr(model.config, "task_specific_params", None) or {}),
        CONFIG_KEY: task_settings(data_args.task, **task_args),
    }
    if model.can_generate():
        generation = model.generation_config
        generation.pad_token_id, generation.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
        generation.eos_token_id = tokenizer.eos_token_id
        generation.use_cache = True
        if data_args.task != "lm":  # the settings evaluation generates with, and pipelines default to
            generation.max_new_tokens = data_args.max_new_tokens or data_args.max_target_length
            generation.num_beams = data_args.num_beams
            generation.do_sample = False
    return model


def _new_model_config(model_args: ModelArguments, data_args: data.DataArguments, **settings):
    """A new model's configuration: the size preset, the recurrent cell or the context the task needs, `settings`
    (vocabulary and special tokens), then `--config_overrides`."""
    config_class = ARCHITECTURES[model_args.arch]
    values = dict(SIZE_PRESETS[model_args.arch][model_args.model_size])
    if model_args.arch == "rnn":
        values["cell"] = model_args.cell
    else:
        values["max_position_embeddings"] = _longest_sequence(data_args)
    values.update(settings)
    values.update(_parse_overrides(model_args.config_overrides, config_class))
    return config_class(**values)


def _check_tokenizer_belongs_to(config, tokenizer, model_args: ModelArguments) -> None:
    """Refuse a tokenizer that is not the saved model's own: one of another size, or (through the fingerprint of the
    vocabulary the model was trained with, saved in its config) another one of the same size."""
    model_name = model_args.model_name_or_path
    tokenizer_name = model_args.tokenizer_name or model_name
    saved = getattr(config, "tokenizer_fingerprint", None)
    # hf_tinylm's models have exactly one embedding per token; a model from elsewhere may pad its embeddings.
    if len(tokenizer) > config.vocab_size or (saved and len(tokenizer) != config.vocab_size):
        raise ValueError(
            f"The tokenizer ({tokenizer_name}) has {len(tokenizer)} tokens but the model ({model_name}) has a "
            f"vocabulary of {config.vocab_size}: it was trained with another tokenizer. Pass the model's own "
            "tokenizer (leave out --tokenizer_name)."
        )
    if saved and saved != vocabulary_fingerprint(tokenizer):
        raise ValueError(
            f"The tokenizer ({tokenizer_name}) is not the one the model ({model_name}) was trained with: same size, "
            "different vocabulary. Pass the model's own tokenizer (leave out --tokenizer_name)."
        )


def _longest_sequence(data_args: data.DataArguments) -> int:
    """The most tokens one training or generation sequence holds, which the attention model must accept."""
    if data_args.task == "lm":
        return data_args.block_size
    if _is_extractive(data_args):
        return data_args.max_seq_length
    return data_args.max_source_length + max(data_args.max_target_length, data_args.max_new_tokens or 0)


def _longest_sequence_flags(data_args: data.DataArguments) -> str:
    """The arguments `_longest_sequence` adds up, for messages."""
    if data_args.task == "lm":
        return "--block_size"
    if _is_extractive(data_args):
        return "--max_seq_length"
    return "--max_source_length plus --max_target_length or --max_new_tokens"


def _features(examples, tokenizer, data_args: data.DataArguments):
    if data_args.task == "lm":
        return data.lm_features(examples, tokenizer, data_args)
    if not _is_extractive(data_args):
        return data.generation_features(examples, tokenizer, data_args)
    return datasets.DatasetDict(
        {
            split: data.extractive_qa_features(
                dataset,
                tokenizer,
                data_args.max_seq_length,
                data_args.doc_stride,
                for_evaluation=split != "train",
                num_proc=data_args.preprocessing_num_workers,
                overwrite_cache=data_args.overwrite_cache,
            )
            for split, dataset in examples.items()
        }
    )


def _evaluate(trainer: Trainer, tokenizer, examples, features, data_args: data.DataArguments) -> dict:
    """Loss and perplexity (span loss for extractive QA), then the task's metrics on predicted answers or texts."""
    validation = examples["validation"]
    if _is_extractive(data_args):
        output = trainer.predict(features["validation"], metric_key_prefix="eval")
        metrics = output.metrics
        answers = evaluation.extractive_answers(
            validation, features["validation"], *output.predictions, data_args.max_answer_length
        )
        if trainer.is_world_process_zero():  # what the scores below score, question id -> answer (as run_qa.py)
            predictions = json.dumps(dict(zip(validation["id"], answers)), indent=2, ensure_ascii=False)
            (Path(trainer.args.output_dir) / "eval_predictions.json").write_text(predictions + "\n", encoding="utf-8")
        metrics.update(
            {
                f"eval_{k}": v
                for k, v in evaluation.score_predictions("qa", answers, list(validation["answers"])).items()
            }
        )
    else:
        metrics = trainer.evaluate()
        if data_args.task != "lm" and trainer.is_world_process_zero():
            batch_size = trainer.args.per_device_eval_batch_size
            predictions = evaluation.generate_predictions(trainer.model, tokenizer, validation, data_args, batch_size)
            references = list(validation["answers" if data_args.task == "qa" else "references"])
            scores = evaluation.score_predictions(data_args.task, predictions, references)
            metrics.update({f"eval_{key}": value for key, value in scores.items()})
            source = validation[0]["question" if data_args.task == "qa" else "source"]
            print(f"\nExample: {source!r}\n  reference:  {references[0][0]!r}\n  prediction: {predictions[0]!r}")
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    return metrics


def plot_loss_curve(log_history: list[dict], path: Path) -> bool:
    """Training and validation loss against optimizer steps, as a PNG; False when matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        logger.warning("matplotlib is not installed: no loss curve (pip install 'hf_tinylm[plots]').")
        return False
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for key, label in (("loss", "training"), ("eval_loss", "validation")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if points:
            axes.plot(*zip(*points), marker="o" if key == "eval_loss" else None, label=label)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return True


def _report(trainer: Trainer, tokenizer, model_args, data_args, metrics: dict) -> None:
    """Loss curve, model card and, for a language model, a sample; then where everything is."""
    folder = Path(trainer.args.output_dir)
    if data_args.task == "lm":
        model = trainer.model
        prompt_length = len(tokenizer(data_args.sample_prompt, add_special_tokens=False)["input_ids"])
        max_new_tokens = data_args.max_new_tokens or 200
        limit = context_limit(model.config)
        if limit is not None:
            max_new_tokens = min(max_new_tokens, limit - prompt_length)
        if max_new_tokens > 0:
            sample = evaluation.sample_text(model, tokenizer, data_args.sample_prompt, max_new_tokens)
            print(f"\nSample (temperature 0.8, top-k 50):\n{sample}\n")
        else:
            logger.warning(f"No sample: --sample_prompt is {prompt_length} tokens, the model reads at most {limit}.")
    lines = [("model, tokenizer, generation config", folder)]
    if metrics:
        lines.append(("evaluation results", folder / "eval_results.json"))
    if plot_loss_curve(trainer.state.log_history, folder / "loss_curve.png"):
        lines.append(("loss curve", folder / "loss_curve.png"))
    write_model_card(
        folder,
        eval_results=metrics or None,
        training_args=_reported_hyperparameters(trainer, model_args, data_args),
        dataset_name=_data_name(data_args, readable=True),
        # Card metadata names Hub datasets only; a local dataset folder is described in the text.
        dataset_id=None if _is_local(data_args.dataset_name) else data_args.dataset_name,
        license=data_args.license,
        language=data_args.language or (["en"] if _uses_default_corpus(data_args) else None),
        task=data_args.task,
        # Card metadata names Hub models only; a local starting folder is described in the hyper-parameters.
        base_model=None if _is_local(model_args.model_name_or_path) else model_args.model_name_or_path,
        eval_split="validation" if metrics else None,
    )
    lines.append(("model card", folder / "README.md"))
    if "tensorboard" in trainer.args.report_to:
        lines.append(("TensorBoard logs", folder / "runs"))
    if "eval_perplexity" in metrics:
        print(f"Validation perplexity: {metrics['eval_perplexity']:.2f}")
    width = max(len(what) for what, _ in lines)
    print("\n".join(f"{what:<{width}}  {where}" for what, where in lines))


def _uses_default_corpus(data_args: data.DataArguments) -> bool:
    return data_args.dataset_name is None and data_args.train_file is None


def _is_local(name_or_path: str | None) -> bool:
    return name_or_path is None or Path(name_or_path).exists()


def _reported_hyperparameters(trainer: Trainer, model_args: ModelArguments, data_args: data.DataArguments) -> dict:
    """What the model card lists about how the model was trained."""
    args = trainer.args
    reported = {
        "tokenizer": model_args.tokenizer_name
        or model_args.model_name_or_path
        or f"{model_args.tokenizer_type}, trained on the training data",
        "optimizer steps": trainer.state.global_step,
        "batch size (all processes, with accumulation)": args.train_batch_size
        * args.gradient_accumulation_steps
        * args.world_size,
        "learning rate": args.learning_rate,
        "schedule": f"{args.lr_scheduler_type.value}, {args.get_warmup_steps(trainer.state.max_steps)} warmup steps",
        "weight decay": args.weight_decay,
        "seed": args.seed,
    }
    if args.max_train_seconds:
        warmup = f"{args.warmup_steps:.0%} of it" if args.warmup_steps < 1 else f"{args.warmup_steps:g} steps"
        reported["schedule"] = f"{args.lr_scheduler_type.value} over the time budget, warmup {warmup}"
        reported["time budget (CPU s of optimizer steps)"] = args.max_train_seconds
    if data_args.task == "lm":
        reported["block size"] = data_args.block_size
    elif _is_extractive(data_args):
        reported.update({"window (tokens)": data_args.max_seq_length, "window stride": data_args.doc_stride})
    else:
        reported.update(
            {"max source tokens": data_args.max_source_length, "max target tokens": data_args.max_target_length}
        )
    return reported
