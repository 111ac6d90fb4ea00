"""What hf_tinylm adds to `Trainer`'s loop: a resumed run that has nothing left to do stops before its first step,
and a CPU-time budget stops training and sets the learning rate (through `TinyLMTrainer`'s scheduler) from the
fraction of the budget spent.
"""

import math
import time

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


class TrainingAlreadyFinished(Exception):
    """Raised by `StopWhenAlreadyFinished` before a step that the run must not take."""


class StopWhenAlreadyFinished(TrainerCallback):
    """Resumed from a checkpoint of its last step (a run killed during its final save), Trainer would still take one
    more step before it checks `max_steps`; this stops it at the start, with the checkpoint's weights loaded."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise TrainingAlreadyFinished


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """Stops training after `seconds` of CPU time spent in optimizer steps, and says what fraction of the learning
    rate each step gets (`rate_scale`, which `TinyLMTrainer` hands to a `LambdaLR`).

    CPU time of the process (`time.process_time`, all threads), not wall-clock time: other programs on the machine
    then do not shrink the budget, so runs compared at equal budgets did equal work. In a distributed run each step
    counts the slowest process's time, so every process gets the same rate and stops at the same step. The time
    spent is saved with each checkpoint and picked up again on resume.

    A step's time is counted up to its optimizer update, before the scheduler steps: the rate of the next step then
    follows the budget spent by every step before it, so warmup and decay span the budget whatever the step speed.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.elapsed = 0.0
        self._started = None
        self._elapsed_at_step_begin = 0.0

    def state(self) -> dict:
        return {"args": {"seconds": self.seconds}, "attributes": {"elapsed": self.elapsed}}

    def on_train_begin(self, args, state, control, **kwargs):
        # On resume, Trainer has loaded the checkpoint's state, which holds what `state()` returned when it was saved.
        saved = state.stateful_callbacks.get(type(self).__name__) if state.global_step > 0 else None
        if saved:
            self.elapsed = float(saved["attributes"]["elapsed"])

    def rate_scale(self, args, step: int) -> float:
        """The learning rate of optimizer step `step` (from 0), as a fraction of --learning_rate, at the budget spent."""
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

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.process_time()
        self._elapsed_at_step_begin = self.elapsed

    def on_optimizer_step(self, args, state, control, **kwargs):
        step_seconds = time.process_time() - self._started
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            slowest = torch.tensor(step_seconds, device=args.device)
            torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
            step_seconds = slowest.item()
        self.elapsed += step_seconds

    def on_step_end(self, args, state, control, **kwargs):
        # Intervals given as fractions (--logging_steps 0.02, ...) are fractions of the budget: Trainer takes them
        # of --max_steps, which a budgeted run sets too high to matter.
        for strategy, fraction, flag in (
            (args.logging_strategy, args.logging_steps, "should_log"),
            (args.eval_strategy, args.eval_steps, "should_evaluate"),
            (args.save_strategy, args.save_steps, "should_save"),
        ):
            if _value(strategy) == "steps" and fraction and fraction < 1:
                interval = fraction * self.seconds
                if self._elapsed_at_step_begin // interval < self.elapsed // interval:
                    setattr(control, flag, True)
        if self.elapsed >= self.seconds:
            control.should_training_stop = True


def _value(option) -> str:
    """An enum option's string (TrainingArguments turns strategies into enums)."""
    return getattr(option, "value", option)
