"""The training command behind `train.py`: arguments -> data -> tokenizer -> model -> `Trainer` -> scores -> folder.

It follows transformers' example scripts (run_clm.py, run_translation.py, run_summarization.py, run_qa.py): the same
argument names, one `HfArgumentParser` over model, data and training dataclasses, and `Trainer` (Accelerate
underneath), so the same command runs in one process, under `torchrun` or under `accelerate launch`.
"""

import logging
import sys
import time
from pathlib import Path

import datasets
import huggingface_hub
import transformers
from torch.optim.lr_scheduler import LambdaLR
from transformers import (
    AutoConfig,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_pt_utils import LabelSmoother
from transformers.trainer_utils import IntervalStrategy, TrainOutput

from . import data
from .arguments import DataArguments, ModelArguments, TinyLMTrainingArguments, parse_args
from .callbacks import StopWhenAlreadyFinished, TimeBudgetCallback, TrainingAlreadyFinished
from .checkpoints import checkpoint_to_resume, output_dir_untouched_on_failure, save_final_folder
from .hub import check_and_upload
from .metrics import check_installed as check_metrics_installed
from .model_building import build_model, fit_task_to_context, load_or_train_tokenizer
from .optimization import MuonForHiddenMatrices, hidden_matrices
from .reporting import data_name, report_run
from .tasks import Task
from .tinylm_common import context_limit


def main(argv: list[str] | None = None) -> dict:
    return run(*parse_args(argv))


def run(model_args: ModelArguments, data_args: DataArguments, training_args: TinyLMTrainingArguments, callbacks=()):
    """Train and evaluate, save the model folder, and return the final evaluation metrics.

    `callbacks` are extra `TrainerCallback`s for the run.
    """
    _setup_logging(training_args)
    task = data_args.to_task()
    training_args.output_dir = _fill_output_dir(training_args.output_dir, model_args, data_args, task)
    checkpoint = checkpoint_to_resume(training_args)
    with output_dir_untouched_on_failure(Path(training_args.output_dir), training_args.should_save):
        trainer, task, tokenizer, examples, features, upload = _prepare_trainer(
            model_args, data_args, task, training_args, callbacks, checkpoint
        )
    train_metrics = _train(trainer, checkpoint)
    _save(trainer, train_metrics)
    metrics = {}
    if "validation" in examples:
        trainer.eval_dataset = features["validation"]  # the whole split, whatever was evaluated during training
        metrics = _evaluate(trainer, task, tokenizer, examples)
    if trainer.is_world_process_zero():
        report_run(trainer, task, tokenizer, model_args, data_args, metrics)
        if upload:
            _upload(training_args)
    return metrics


def _train(trainer: Trainer, checkpoint: str | None) -> dict:
    """Train (from `checkpoint` when resuming) and return the training metrics, with the CPU seconds it took."""
    model = trainer.model
    cpu_started = time.process_time()
    try:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
    except TrainingAlreadyFinished:  # resumed from the last step's checkpoint, whose weights Trainer has loaded
        train_result = TrainOutput(trainer.state.global_step, float("nan"), {})
    train_result.metrics["train_cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    model.config.use_cache = True  # Trainer turned the cache off for training; generation wants it
    return train_result.metrics


def _save(trainer: Trainer, train_metrics: dict) -> None:
    """The final folder first, then the training metrics and state next to it."""
    save_final_folder(trainer)
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    trainer.save_state()


def _upload(training_args: TinyLMTrainingArguments) -> None:
    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    commit = check_and_upload(
        training_args.output_dir,
        repo_id,
        token=training_args.hub_token,
        private=training_args.hub_private_repo,
        commit_message="hf_tinylm: model, tokenizer, card and results",
        ignore_patterns=["checkpoint-*/**"],
    )
    print(f"Uploaded to the Hub: {commit.commit_url}")


def _prepare_trainer(model_args, data_args, task: Task, training_args, callbacks, checkpoint):
    """Everything before the first step: checks, data, tokenizer, model, features, and the Trainer; also the task,
    with its lengths fitted to a saved model's context, and the features."""
    set_seed(training_args.seed)
    check_metrics_installed(task.metrics)
    _check_hub_access(training_args)
    # --push_to_hub uploads the finished folder once, with hf_tinylm's card (Trainer's own pushes would carry its
    # generic card, and every checkpoint).
    upload, training_args.push_to_hub = training_args.push_to_hub, False
    saved_config = None
    if model_args.model_name_or_path:
        saved_config = AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir)
        task = fit_task_to_context(task, context_limit(saved_config), model_args.model_name_or_path)

    limits, map_options = data_args.sample_limits(), data_args.map_options()
    with training_args.main_process_first(desc="loading the data"):
        raw = data.load_raw_datasets(data_args.to_source(), task, model_args.cache_dir, map_options)
        examples = task.examples(raw, limits, map_options)
    if "validation" not in examples and training_args.early_stopping_patience is not None:
        raise ValueError("--early_stopping_patience needs validation data; set --validation_split_percentage.")
    tokenizer = load_or_train_tokenizer(model_args, task, training_args, examples["train"], checkpoint)
    model = build_model(model_args, task, tokenizer, saved_config)
    with training_args.main_process_first(desc="tokenizing the data"):
        features = task.features(examples, tokenizer, limits, map_options)

    if "validation" not in features:
        training_args.eval_strategy = IntervalStrategy.NO  # nothing to evaluate on
    callbacks = [*callbacks, StopWhenAlreadyFinished()]
    if training_args.max_train_seconds:
        callbacks.append(TimeBudgetCallback(training_args.max_train_seconds))
    if training_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))
    trainer = TinyLMTrainer(
        model=model,
        args=training_args,
        train_dataset=features["train"],
        eval_dataset=_evaluated_during_training(features.get("validation"), training_args),
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer),
        callbacks=callbacks,
        compute_loss_func=_label_smoothed_causal_loss(training_args.label_smoothing_factor, task),
        **task.trainer_metrics(),
    )
    return trainer, task, tokenizer, examples, features, upload


def _evaluated_during_training(validation, training_args):
    """The validation features the evaluations during training read: all, or --eval_samples_during_training of them
    picked once with the run's seed (the same every evaluation, so the curve compares like with like)."""
    sample_size = training_args.eval_samples_during_training
    if validation is None or sample_size is None or sample_size >= len(validation):
        return validation
    return validation.shuffle(seed=training_args.seed).select(range(sample_size))


class TinyLMTrainer(Trainer):
    """`Trainer` whose learning-rate schedule, when the run has a `TimeBudgetCallback`, follows the fraction of the
    time budget spent instead of the step count: a `LambdaLR` over the callback's `rate_scale`, so that Trainer logs,
    checkpoints and restores the rate each step used like any other schedule's."""

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is not None or self._time_budget() is None:
            return super().create_scheduler(num_training_steps, optimizer)
        # The callback is looked up at every step: Trainer replaces it when restoring callback states on resume.
        self.lr_scheduler = LambdaLR(
            optimizer or self.optimizer, lambda step: self._time_budget().rate_scale(self.args, step)
        )
        return self.lr_scheduler

    def create_optimizer(self, model=None):
        """With --hidden_optimizer muon: Muon for the layers' weight matrices, and `--optim`'s optimizer (AdamW by
        default), with Trainer's weight-decay groups, for the other parameters."""
        if self.optimizer is not None or self.args.hidden_optimizer != "muon":
            return super().create_optimizer(model)
        model = model or self.model
        hidden, decay = set(hidden_matrices(model)), set(self.get_decay_parameter_names(model))
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        others = [(name, p) for name, p in trained if name not in hidden]
        groups = [
            {"params": [p for name, p in others if name in decay], "weight_decay": self.args.weight_decay},
            {"params": [p for name, p in others if name not in decay], "weight_decay": 0.0},
        ]
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = MuonForHiddenMatrices(
            [p for name, p in trained if name in hidden],
            optimizer_cls(groups, **kwargs),
            lr=self.args.muon_learning_rate,
            weight_decay=self.args.weight_decay,
        )
        return self.optimizer

    def _time_budget(self) -> TimeBudgetCallback | None:
        return next((cb for cb in self.callback_handler.callbacks if isinstance(cb, TimeBudgetCallback)), None)


def _evaluate(trainer: Trainer, task: Task, tokenizer, examples) -> dict:
    """The task's final evaluation, logged and saved as `eval_results.json`."""
    metrics = task.evaluate(trainer, tokenizer, examples)
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    return metrics


def _label_smoothed_causal_loss(epsilon: float, task: Task):
    """The loss for --label_smoothing_factor: shifted labels, as for transformers' own causal LMs (Trainer recognises
    those by class name only, so it would not shift ours and the model would learn to copy its input)."""
    if not epsilon:
        return None
    if not task.predicts_next_token:
        raise ValueError("--label_smoothing_factor smooths next-token targets; extractive QA's span loss has none.")
    smoother = LabelSmoother(epsilon=epsilon)

    def loss(outputs, labels, num_items_in_batch=None):
        return smoother(outputs, labels, shift_labels=True, num_items_in_batch=num_items_in_batch)

    return loss


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


def _setup_logging(training_args: TrainingArguments) -> None:
    """hf_tinylm reports its steps on the main process; transformers and datasets log at --log_level (warnings by
    default, so the progress bars and results stay readable)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logging.getLogger(__package__).setLevel(logging.INFO if training_args.should_log else log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_explicit_format()


def _fill_output_dir(template: str, model_args: ModelArguments, data_args: DataArguments, task: Task) -> str:
    parts = [model_args.arch, *([task.name] if task.named_in_folders else []), data_name(data_args, readable=False)]
    name = "-".join(parts)
    return template.replace("{name}", name)
