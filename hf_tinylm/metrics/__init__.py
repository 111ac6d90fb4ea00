"""`evaluate` metric modules shipped with hf_tinylm, so computing a score never needs the Hub.

Each module is a self-contained `evaluate` script; `load_metric("bleu")` is `evaluate.load(<path of bleu.py>)`.
"""

import importlib.util
from pathlib import Path

METRICS = ("perplexity", "bleu", "chrf", "rouge", "squad")
# metric -> (module it imports, pip package): the optional `metrics` extra.
EXTRA_PACKAGES = {
    "bleu": ("sacrebleu", "sacrebleu"),
    "chrf": ("sacrebleu", "sacrebleu"),
    "rouge": ("rouge_score", "rouge-score"),
}


def check_installed(names) -> None:
    """Raise, naming what to install, unless the packages the given metrics compute with are there: a run should
    learn this before training, not when it evaluates."""
    missing = sorted(
        {
            EXTRA_PACKAGES[n][1]
            for n in names
            if n in EXTRA_PACKAGES and not importlib.util.find_spec(EXTRA_PACKAGES[n][0])
        }
    )
    if missing:
        raise ImportError(
            f"Scoring {', '.join(names)} needs {', '.join(missing)}: pip install 'hf_tinylm[metrics]' "
            f"(or {' '.join(missing)})."
        )


def load_metric(name: str):
    """The `evaluate.EvaluationModule` of `name`. `evaluate` is imported here, when a score is computed: importing
    it takes about a second (scipy, its evaluator suite), which every train.py start would otherwise pay."""
    import evaluate

    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; hf_tinylm ships {', '.join(METRICS)}.")
    return evaluate.load(str(Path(__file__).with_name(f"{name}.py")))
