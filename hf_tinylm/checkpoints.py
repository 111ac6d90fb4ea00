"""What is on disk for a run: which checkpoints are complete (a run killed at any moment resumes from the newest whole
one), the checkpoint a run resumes from, the output folder left as it was by a run that fails before training, and
the final Hub-ready folder.

Trainer writes a checkpoint folder in place: the model and tokenizer, then the optimizer, scheduler and random
states, and last `trainer_state.json`; rotation then deletes older folders file by file. A kill in the middle leaves a
folder that looks like a checkpoint but cannot be resumed from (and that rotation never removes). A checkpoint is
complete when its trainer state reads back for its own step and every file written before it is present.
"""

import contextlib
import json
import logging
import re
import shutil
from pathlib import Path

from transformers import Trainer, TrainingArguments

from .model_building import TRAINED_TOKENIZER_FOLDER
from .shipped import SHIPPED_MODULES
from .tokenization import make_tokenizer_config_portable

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def missing_parts(folder, with_optimizer: bool = True) -> list[str]:
    """What the checkpoint `folder` lacks to be resumed from; empty when it is complete."""
    folder = Path(folder)
    missing = [name for name in ("config.json", "tokenizer_config.json") if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _WEIGHTS):
        missing.append("the model weights (model.safetensors)")
    if with_optimizer:
        missing += [name for name in ("optimizer.pt", "scheduler.pt") if not (folder / name).is_file()]
        if not any(folder.glob("rng_state*.pth")):
            missing.append("rng_state.pth")
    match = _CHECKPOINT_NAME.match(folder.name)
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        missing.append("a readable trainer_state.json")
    else:
        if match and state.get("global_step") != int(match.group(1)):
            missing.append(f"a trainer_state.json for step {match.group(1)} (it is for {state.get('global_step')})")
    return missing


def last_complete_checkpoint(output_dir, with_optimizer: bool = True, remove_incomplete: bool = False) -> str | None:
    """The newest complete `checkpoint-N` folder in `output_dir`, or None.

    Incomplete ones are reported with what they lack and, with `remove_incomplete` (the main process), deleted, so
    that checkpoint rotation counts only real checkpoints afterwards."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    folders = [path for path in output_dir.iterdir() if path.is_dir() and _CHECKPOINT_NAME.match(path.name)]
    newest = None
    for folder in sorted(folders, key=lambda path: int(_CHECKPOINT_NAME.match(path.name).group(1)), reverse=True):
        missing = missing_parts(folder, with_optimizer)
        if not missing:
            newest = newest or str(folder)
            continue
        action = "removing it" if remove_incomplete else "skipping it"
        logger.warning(f"{folder} is an incomplete checkpoint (no {', '.join(missing)}): {action}.")
        if remove_incomplete:
            shutil.rmtree(folder, ignore_errors=True)
    return newest


def checkpoint_to_resume(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from. "last" is the newest complete one (incomplete ones, left by a kill in the middle
    of a save, are removed); with none, the run starts from the beginning, as a run killed before its first save
    must. A run that does not resume, into a folder holding files, is warned that it writes over them."""
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
    output_dir = Path(training_args.output_dir)
    if checkpoint is not None:
        logger.info(f"Resuming from {checkpoint}")
    elif output_dir.is_dir() and any(output_dir.iterdir()):
        logger.warning(
            f"{output_dir} already holds files of an earlier run; this run writes over them, and its checkpoint "
            "rotation may delete the earlier checkpoints. Pass another --output_dir to keep them."
        )
    return checkpoint


@contextlib.contextmanager
def output_dir_untouched_on_failure(output_dir: Path, is_main_process: bool):
    """A run that fails before training leaves `output_dir` as it found it: whatever it added there by then (the
    trained tokenizer's staging folder, log folders, the folder itself) is removed again; nothing it wrote there by
    then replaced a file that was there."""
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


# What a finished run adds beside the model after saving it: an earlier run's copies describe another model.
_REPORTS = ("README.md", "loss_curve.png", "train_results.json", "eval_results.json", "all_results.json")
_STAGING = ".final-save-in-progress"


def save_final_folder(trainer: Trainer) -> None:
    """Save the trained model as a Hub-ready folder: only the code its own model needs (a folder reused from a run
    of the other family would keep that family's files), no pickle (Trainer's `training_args.bin`; the arguments go
    to `training_args.json`), and a tokenizer config every supported transformers release reads.

    The model is saved into a staging folder first and then moved in, `config.json` last, after the earlier run's
    config and reports are gone: a kill at any moment leaves either the earlier model whole, a folder without a
    config (which every loader refuses), or the new model whole, never one model's config beside another's weights.
    """
    folder = Path(trainer.args.output_dir)
    staging = folder / _STAGING
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    if not trainer.is_world_process_zero():
        return
    (staging / "training_args.bin").unlink(missing_ok=True)
    (staging / "training_args.json").write_text(trainer.args.to_json_string() + "\n", encoding="utf-8")
    make_tokenizer_config_portable(staging)
    (folder / "config.json").unlink(missing_ok=True)
    for name in (*SHIPPED_MODULES, *_REPORTS):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / TRAINED_TOKENIZER_FOLDER, ignore_errors=True)  # saved with the model now
    for path in sorted(staging.iterdir(), key=lambda path: path.name == "config.json"):
        path.replace(folder / path.name)
    staging.rmdir()
