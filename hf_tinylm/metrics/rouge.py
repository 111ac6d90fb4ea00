"""ROUGE-1/2/L/Lsum F-measures from Google's rouge-score package, averaged over predictions."""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = """
ROUGE (Lin, 2004) with the reference implementation of Google Research's `rouge-score`. Each prediction is scored
against its best-matching reference; the F-measures are averaged over predictions and reported on a 0-100 scale.
rougeLsum treats newlines as sentence boundaries, so put each summary sentence on its own line.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of summary strings.
    references: list of lists of reference summaries, one list per prediction.
    use_stemmer: apply the Porter stemmer before matching (default True, as in most published summarization scores).
Returns:
    rouge1, rouge2, rougeL, rougeLsum: mean F-measures, 0-100.
Examples:
    >>> rouge = evaluate.load("hf_tinylm/metrics/rouge.py")
    >>> rouge.compute(predictions=["the cat sat"], references=[["the cat sat"]])["rouge1"]
    100.0
"""

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/google-research/google-research/tree/master/rouge",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.List(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, use_stemmer=True):
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
        totals = dict.fromkeys(ROUGE_TYPES, 0.0)
        for prediction, refs in zip(predictions, references):
            scores = scorer.score_multi(refs, prediction)
            for rouge_type in ROUGE_TYPES:
                totals[rouge_type] += scores[rouge_type].fmeasure
        return {rouge_type: 100 * total / max(len(predictions), 1) for rouge_type, total in totals.items()}
