"""`evaluate` metric modules shipped with hf_tinylm, so computing a score never needs the Hub.

Each module is a self-contained `evaluate` script; `load_metric("bleu")` is `evaluate.load(<path of bleu.py>)`.
"""

from pathlib import Path

import evaluate

METRICS = ("perplexity", "bleu", "chrf", "rouge", "squad")


def load_metric(name: str) -> evaluate.EvaluationModule:
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; hf_tinylm ships {', '.join(METRICS)}.")
    return evaluate.load(str(Path(__file__).with_name(f"{name}.py")))
