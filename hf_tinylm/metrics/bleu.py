"""Corpus BLEU computed by sacrebleu, with its standard settings (13a tokenization, exponential smoothing)."""

import datasets
import evaluate
import sacrebleu

_DESCRIPTION = """
BLEU (Papineni et al., 2002) as computed by sacrebleu (Post, 2018), so scores are comparable with published ones.
Each prediction may have a different number of references.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of translated strings.
    references: list of lists of reference strings, one list per prediction.
    tokenize: sacrebleu tokenizer name (default "13a"); "zh", "ja-mecab", "char", ... for other scripts.
    lowercase: compute a case-insensitive score.
Returns:
    bleu: the corpus BLEU score, 0-100.
    precisions: the 1- to 4-gram precisions, 0-100.
    brevity_penalty, length_ratio, translation_length, reference_length: as sacrebleu reports them.
Examples:
    >>> bleu = evaluate.load("hf_tinylm/metrics/bleu.py")
    >>> bleu.compute(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]])["bleu"]
    100.00000000000004
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores. WMT.",
            inputs_description=_KWARGS_DESCRIPTION,
            homepage="https://github.com/mjpost/sacrebleu",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.List(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        score = sacrebleu.corpus_bleu(
            predictions, reference_streams(references), tokenize=tokenize, lowercase=lowercase
        )
        return {
            "bleu": score.score,
            "precisions": list(score.precisions),
            "brevity_penalty": score.bp,
            "length_ratio": score.ratio,
            "translation_length": score.sys_len,
            "reference_length": score.ref_len,
        }


def reference_streams(references):
    """sacrebleu wants one stream per reference position; predictions with fewer references get None there."""
    width = max(len(refs) for refs in references)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
