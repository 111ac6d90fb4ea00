"""Which checkpoints of a run are complete, so that a run killed at any moment resumes from the newest whole one.

Trainer writes a checkpoint folder in place: the model and tokenizer, then the optimizer, scheduler and random
states, and last `trainer_state.json`; rotation then deletes older folders file by file. A kill in the middle leaves a
folder that looks like a checkpoint but cannot be resumed from (and that rotation never removes). A checkpoint is
complete when its trainer state reads back for its own step and every file written before it is present.
"""

import json
import logging
import re
import shutil
from pathlib import Path

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
