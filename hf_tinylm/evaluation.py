"""Scores beyond the evaluation loss: token-weighted perplexity, metrics of generated text, extractive answers.

Generated predictions come from `model.generate` with the model's own generation config and the prompts training
used, which is what the pipelines do too, so the scores describe what users of the saved model get.
"""

import collections

import numpy as np
import torch
from torch.nn import functional as F

from .data import IGNORE_INDEX
from .extractive_qa import best_answers
from .metrics import load_metric


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each sequence's summed negative log-likelihood and number of predicted tokens, shape (batch, 2).

    Given to `Trainer` as `preprocess_logits_for_metrics`, so evaluation gathers two numbers per sequence instead of
    the logits, and perplexity can weight every token equally (the eval loss weights sequences).
    """
    targets = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
    return torch.stack([nll.sum(-1), (targets != IGNORE_INDEX).sum(-1).to(nll.dtype)], dim=-1)


def compute_perplexity(eval_prediction) -> dict:
    """`Trainer`'s `compute_metrics` for causal models, from `sequence_nll`'s output."""
    nll_sums, token_counts = np.asarray(eval_prediction.predictions).T
    result = load_metric("perplexity").compute(
        nll_sums=nll_sums.tolist(), token_counts=token_counts.astype(int).tolist()
    )
    return {"perplexity": result["perplexity"]}


@torch.no_grad()
def generate_predictions(model, tokenizer, examples, prompt_ids, batch_size: int) -> list[str]:
    """The model's output for each task example, generated with `model.generation_config` from the training prompts
    (`prompt_ids(batch, tokenizer)`, a `TextToText` task's)."""
    model.eval()
    predictions = []
    for batch in examples.iter(batch_size):
        inputs = tokenizer.pad(
            {"input_ids": prompt_ids(batch, tokenizer)}, padding_side="left", return_tensors="pt"
        ).to(model.device)
        outputs = model.generate(**inputs)
        predictions += tokenizer.batch_decode(outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [prediction.strip() for prediction in predictions]


def score_predictions(metrics, predictions: list[str], references: list[list[str]]) -> dict:
    """Predictions scored against their references by each of `metrics` (a task's: BLEU and chrF, ROUGE, or SQuAD
    EM/F1), the `evaluate` modules in hf_tinylm/metrics."""
    scores = {}
    for name in metrics:
        result = load_metric(name).compute(predictions=predictions, references=references)
        scores.update({key: value for key, value in result.items() if not isinstance(value, list)})
    return scores


@torch.no_grad()
def span_logits(model, tokenizer, windows, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of a span head for each extractive-QA window (padded on the right), as arrays of shape
    (windows, longest window); positions past a window's end get -inf."""
    model.eval()
    width = max(len(ids) for ids in windows["input_ids"])
    starts, ends = [], []
    for batch in windows.select_columns(["input_ids"]).iter(batch_size):
        inputs = tokenizer.pad(batch, padding_side="right", return_tensors="pt").to(model.device)
        output = model(**inputs)
        for logits, store in ((output.start_logits, starts), (output.end_logits, ends)):
            logits = logits.float().masked_fill(inputs["attention_mask"] == 0, float("-inf"))
            store.append(F.pad(logits, (0, width - logits.shape[1]), value=float("-inf")).cpu().numpy())
    return np.concatenate(starts), np.concatenate(ends)


def extractive_answers(examples, features, start_logits, end_logits, max_answer_length: int) -> list[str]:
    """The best answer to each example's question over all its windows, decoded exactly as the question-answering
    pipeline decodes with its defaults (`extractive_qa.best_answers`; SQuAD v1.1: every question has an answer).

    `features` are the example's windows (`data.extractive_qa_features(..., for_evaluation=True)`), in the order of
    the logits; logits may be padded past a window's length.
    """
    windows = collections.defaultdict(list)
    for index, (example_id, offsets) in enumerate(zip(features["example_id"], features["offsets"])):
        windows[example_id].append((start_logits[index], end_logits[index], offsets))
    return [
        best_answers(context, windows[example_id], max_answer_length)[0]["answer"]
        for example_id, context in zip(examples["id"], examples["context"])
    ]


@torch.no_grad()
def sample_text(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """A sampled continuation of `prompt` (temperature 0.8, top-k 50), to see what the model has learned."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    output = model.generate(
        **inputs, do_sample=True, temperature=0.8, top_k=50, num_beams=1, max_new_tokens=max_new_tokens
    )
    return tokenizer.decode(output[0], skip_special_tokens=True)
