"""Timing and reporting helpers the benchmark scripts share."""

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("BENCHMARKS.md")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def alternating_median_seconds(prepare: dict[str, Callable[[], Callable[[], object]]], reps: int, device: str) -> dict:
    """Median seconds of each candidate over `reps` rounds, after one warm-up round.

    Every round runs each candidate once, in an order that reverses from round to round, so load from other jobs on a
    shared machine does not keep falling on the same one. `prepare[name]()` builds the run before the clock starts.
    """
    names = list(prepare)
    times = {name: [] for name in names}
    for round_idx in range(reps + 1):
        for name in names if round_idx % 2 == 0 else reversed(names):
            seconds = timed(prepare[name](), device)
            if round_idx > 0:
                times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def training_step(compute_loss: Callable[[], torch.Tensor], parameters) -> Callable[[], None]:
    """One forward + backward + AdamW step, the unit every training comparison times."""
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)

    def step():
        compute_loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def write_section(title: str, body: str) -> None:
    """Replace one `## ` section of BENCHMARKS.md in place (or append it), leaving the others as they are."""
    text = (
        RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\nRatios measured side by side in one process.\n"
    )
    head, *sections = text.split("\n## ")
    sections = [f"## {s}" for s in sections]
    new = f"{title}\n\n{body}"
    if any(s.startswith(title) for s in sections):
        sections = [new if s.startswith(title) else s for s in sections]
    else:
        sections.append(new)
    RESULTS.write_text("\n".join([head.rstrip() + "\n", *(s.rstrip() + "\n" for s in sections)]))
