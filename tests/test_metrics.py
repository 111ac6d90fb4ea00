"""The shipped `evaluate` modules agree with the reference implementations and with hand-computed scores."""

import math

import numpy as np
import pytest
import sacrebleu
import torch
from rouge_score import rouge_scorer
from transformers import EvalPrediction

from hf_tinylm.evaluation import compute_perplexity, sequence_nll
from hf_tinylm.metrics import load_metric

PREDICTIONS = ["the cat sat on the mat", "a dog runs in the park", "Zwei Männer stehen am Herd."]
REFERENCES = [
    ["the cat is on the mat", "there is a cat on the mat"],
    ["a dog is running in the park"],
    ["Zwei Männer kochen am Herd.", "Zwei Köche stehen in der Küche.", "Männer am Herd."],
]


def test_bleu_matches_sacrebleu_with_varying_reference_counts():
    result = load_metric("bleu").compute(predictions=PREDICTIONS, references=REFERENCES)
    streams = [[refs[i] if i < len(refs) else None for refs in REFERENCES] for i in range(3)]
    expected = sacrebleu.corpus_bleu(PREDICTIONS, streams)
    assert result["bleu"] == pytest.approx(expected.score)
    assert result["precisions"] == pytest.approx(expected.precisions)
    assert 0 < result["bleu"] < 100
    perfect = load_metric("bleu").compute(predictions=PREDICTIONS[:1], references=[PREDICTIONS[:1]])
    assert perfect["bleu"] == pytest.approx(100)


def test_chrf_matches_sacrebleu():
    result = load_metric("chrf").compute(predictions=PREDICTIONS[:2], references=[[r[0]] for r in REFERENCES[:2]])
    expected = sacrebleu.corpus_chrf(PREDICTIONS[:2], [[r[0] for r in REFERENCES[:2]]])
    assert result["chrf"] == pytest.approx(expected.score)
    plus = load_metric("chrf").compute(predictions=PREDICTIONS[:1], references=REFERENCES[:1], word_order=2)
    assert plus["chrf"] == pytest.approx(
        sacrebleu.CHRF(word_order=2)
        .corpus_score(PREDICTIONS[:1], [["the cat is on the mat"], ["there is a cat on the mat"]])
        .score
    )


def test_rouge_matches_rouge_score_and_hand_counts():
    result = load_metric("rouge").compute(predictions=PREDICTIONS[:2], references=REFERENCES[:2])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    for key in ("rouge1", "rougeL"):
        best = [
            max(scorer.score(ref, pred)[key].fmeasure for ref in refs)
            for pred, refs in zip(PREDICTIONS, REFERENCES[:2])
        ]
        assert result[key] == pytest.approx(100 * sum(best) / 2)
    # "the cat sat on the mat" vs "the cat is on the mat": 5 of 6 unigrams and 3 of 5 bigrams shared.
    single = load_metric("rouge").compute(predictions=PREDICTIONS[:1], references=[REFERENCES[0][:1]])
    assert single["rouge1"] == pytest.approx(100 * 5 / 6)
    assert single["rouge2"] == pytest.approx(60.0)


def test_squad_uses_the_official_normalisation():
    result = load_metric("squad").compute(
        predictions=["The Denver Broncos!", "a big dog", "cat"],
        references=[["Denver Broncos", "Broncos"], ["the big red dog"], ["dog"]],
    )
    # Articles and punctuation are dropped: exact match; "big dog" vs "big red dog": P=1, R=2/3, F1=0.8.
    assert result == pytest.approx({"exact_match": 100 / 3, "f1": (100 + 80 + 0) / 3})


def test_perplexity_weights_tokens_not_sequences():
    result = load_metric("perplexity").compute(nll_sums=[2.0, 4.0], token_counts=[1, 3])
    assert result == pytest.approx({"perplexity": math.exp(1.5), "loss": 1.5})
    with pytest.raises(ValueError, match="at least one"):
        load_metric("perplexity").compute(nll_sums=[0.0], token_counts=[0])


def test_trainer_perplexity_is_exp_of_the_mean_token_loss():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=generator)
    labels = torch.randint(0, 11, (3, 6), generator=generator)
    labels[0, :4] = -100  # a prompt without loss, and sequences with different numbers of target tokens
    labels[2, 5] = -100
    per_sequence = sequence_nll(logits, labels)
    mean_loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    metrics = compute_perplexity(EvalPrediction(predictions=per_sequence.numpy(), label_ids=labels.numpy()))
    assert per_sequence[:, 1].tolist() == [2, 5, 4]
    assert metrics["perplexity"] == pytest.approx(math.exp(mean_loss.item()), rel=1e-5)
    assert not np.isclose(metrics["perplexity"], math.exp(per_sequence[:, 0].div(per_sequence[:, 1]).mean().item()))


def test_unknown_metric():
    with pytest.raises(ValueError, match="ships"):
        load_metric("meteor")
