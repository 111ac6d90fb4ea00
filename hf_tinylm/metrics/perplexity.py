"""Perplexity from a model's own losses: exp of the mean negative log-likelihood per predicted token."""

import math

import datasets
import evaluate

_DESCRIPTION = """
Perplexity is exp(total negative log-likelihood / number of predicted tokens). Give each sequence's summed NLL (in
nats) and its number of predicted tokens: weighting by tokens, not by sequences or batches, is what makes the result
the perplexity of the whole evaluation text, also when sequences have different lengths.
"""

_KWARGS_DESCRIPTION = """
Args:
    nll_sums: summed negative log-likelihood (natural log) of each sequence's predicted tokens.
    token_counts: number of predicted tokens in each sequence.
Returns:
    perplexity: exp(sum(nll_sums) / sum(token_counts)).
    loss: sum(nll_sums) / sum(token_counts), the mean NLL per token.
Examples:
    >>> perplexity = evaluate.load("hf_tinylm/metrics/perplexity.py")
    >>> perplexity.compute(nll_sums=[2.0, 4.0], token_counts=[1, 2])
    {'perplexity': 7.38905609893065, 'loss': 2.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"nll_sums": datasets.Value("float64"), "token_counts": datasets.Value("int64")}
            ),
        )

    def _compute(self, nll_sums, token_counts):
        total_tokens = sum(token_counts)
        if total_tokens == 0:
            raise ValueError("Perplexity needs at least one predicted token.")
        loss = sum(nll_sums) / total_tokens
        return {"perplexity": math.exp(loss), "loss": loss}
