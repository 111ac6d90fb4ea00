"""SQuAD v1.1 exact match and F1, with the official evaluation script's answer normalisation."""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = """
The SQuAD v1.1 metrics (Rajpurkar et al., 2016): answers are lower-cased and stripped of punctuation, articles
(a, an, the) and extra whitespace; exact match and token-level F1 take the best score over the references and are
averaged over questions on a 0-100 scale. Works for extractive and generated answers alike.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answer strings.
    references: list of lists of acceptable answers, one list per prediction.
Returns:
    exact_match: percentage of predictions equal to some reference after normalisation.
    f1: mean over questions of the best token-overlap F1 against the references.
Examples:
    >>> squad = evaluate.load("hf_tinylm/metrics/squad.py")
    >>> squad.compute(predictions=["the Denver Broncos"], references=[["Denver Broncos", "Broncos"]])
    {'exact_match': 100.0, 'f1': 100.0}
"""


PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    """Lower case, remove punctuation, articles and extra whitespace (the official SQuAD v1.1 normalisation)."""
    text = "".join(char for char in text.lower() if char not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction, reference):
    prediction_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(reference).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(reference_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction, reference):
    return float(normalize_answer(prediction) == normalize_answer(reference))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar et al., 2016. SQuAD: 100,000+ Questions for Machine Comprehension of Text. EMNLP.",
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://rajpurkar.github.io/SQuAD-explorer/",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.List(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("SQuAD scores need at least one prediction.")
        exact_match = sum(max(exact_match_score(p, r) for r in refs) for p, refs in zip(predictions, references))
        f1 = sum(max(f1_score(p, r) for r in refs) for p, refs in zip(predictions, references))
        return {"exact_match": 100 * exact_match / len(predictions), "f1": 100 * f1 / len(predictions)}
