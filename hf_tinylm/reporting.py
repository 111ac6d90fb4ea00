"""What a finished run shows and leaves behind besides the model: a sample, the loss curve, the model card and a
table of where everything is.
"""

import importlib.util
import logging
from pathlib import Path

from transformers import Trainer

from .arguments import DataArguments, ModelArguments
from .hub import write_model_card
from .tasks import Task

logger = logging.getLogger(__name__)


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


def report_run(trainer: Trainer, task: Task, tokenizer, model_args, data_args, metrics: dict) -> None:
    """The task's sample (a language model's), loss curve and model card; then where everything is."""
    folder = Path(trainer.args.output_dir)
    sample = task.sample(trainer.model, tokenizer)
    if sample is not None:
        print(f"\nSample (temperature 0.8, top-k 50):\n{sample}\n")
    lines = [("model, tokenizer, generation config", folder)]
    if metrics:
        lines.append(("evaluation results", folder / "eval_results.json"))
    if plot_loss_curve(trainer.state.log_history, folder / "loss_curve.png"):
        lines.append(("loss curve", folder / "loss_curve.png"))
    write_model_card(
        folder,
        eval_results=metrics or None,
        training_args=reported_hyperparameters(trainer.args, trainer.state, task, model_args),
        dataset_name=data_name(data_args, readable=True),
        # Card metadata names Hub datasets only; a local dataset folder is described in the text.
        dataset_id=None if _is_local(data_args.dataset_name) else data_args.dataset_name,
        license=data_args.license,
        language=data_args.language or (["en"] if _uses_default_corpus(data_args) else None),
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


def reported_hyperparameters(args, state, task: Task, model_args: ModelArguments) -> dict:
    """What the model card lists about how the model was trained, from the run's `TrainingArguments` and final
    `TrainerState` (also for a finished run's folder: scripts/finish_reference_model.py)."""
    reported = {
        "tokenizer": model_args.tokenizer_name
        or model_args.model_name_or_path
        or f"{model_args.tokenizer_type}, trained on the training data",
        "optimizer steps": state.global_step,
        "batch size (all processes, with accumulation)": args.train_batch_size
        * args.gradient_accumulation_steps
        * args.world_size,
        "learning rate": args.learning_rate,
        "schedule": f"{args.lr_scheduler_type.value}, {args.get_warmup_steps(state.max_steps)} warmup steps",
        "weight decay": args.weight_decay,
        "seed": args.seed,
    }
    if args.hidden_optimizer == "muon":
        reported["optimizer"] = (
            f"Muon for the layers' weight matrices (learning rate {args.muon_learning_rate}), {args.optim.value} for "
            "the rest"
        )
    if args.eval_samples_during_training is not None:
        reported["evaluations during training"] = (
            f"a fixed random sample of {args.eval_samples_during_training} validation samples"
        )
    if args.max_train_seconds:
        warmup = f"{args.warmup_steps:.0%} of it" if args.warmup_steps < 1 else f"{args.warmup_steps:g} steps"
        reported["schedule"] = f"{args.lr_scheduler_type.value} over the time budget, warmup {warmup}"
        reported["time budget (CPU s of optimizer steps)"] = args.max_train_seconds
    reported.update(task.hyperparameters())
    return reported


def data_name(data_args: DataArguments, readable: bool) -> str:
    """The training data's name: for the model card (`readable`), or short, for the output folder."""
    if data_args.dataset_name:
        return data_args.dataset_name if readable else data_args.dataset_name.rsplit("/", 1)[-1]
    if data_args.train_file:
        return Path(data_args.train_file).name if readable else Path(data_args.train_file).stem
    return "the CPython documentation (pydoc_data.topics)" if readable else "pydoc"


def _uses_default_corpus(data_args: DataArguments) -> bool:
    return data_args.dataset_name is None and data_args.train_file is None


def _is_local(name_or_path: str | None) -> bool:
    return name_or_path is None or Path(name_or_path).exists()
