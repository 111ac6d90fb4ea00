"""Corpus chrF (character n-gram F-score) computed by sacrebleu; chrF++ with `word_order=2`."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """
chrF (Popović, 2015) as computed by sacrebleu: character n-gram F-beta score, robust for morphologically rich target
languages and small models whose words are often nearly right. Each prediction may have a different number of
references.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of strings.
    references: list of lists of reference strings, one list per prediction.
    char_order: character n-gram order (default 6).
    word_order: word n-gram order (default 0; 2 gives chrF++).
    beta: weight of recall relative to precision (default 2).
Returns:
    chrf: the corpus chrF score, 0-100.
Examples:
    >>> chrf = evaluate.load("hf_tinylm/metrics/chrf.py")
    >>> chrf.compute(predictions=["the cat sat"], references=[["the cat sat"]])
    {'chrf': 100.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popović, 2015. chrF: character n-gram F-score for automatic MT evaluation. WMT.",
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/mjpost/sacrebleu",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.List(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2):
        metric = sacrebleu.metrics.CHRF(char_order=char_order, word_order=word_order, beta=beta)
        return {"chrf": metric.corpus_score(predictions, reference_streams(references)).score}


def reference_streams(references):
    """sacrebleu wants one stream per reference position; predictions with fewer references get None there."""
    width = max(len(refs) for refs in references)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
