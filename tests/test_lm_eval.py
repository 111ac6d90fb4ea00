"""lm-eval's Python API on a saved attention model and a local task (tests/lm_eval_tasks): the accuracy it reports
is the one the model's own log-likelihoods give."""

import json
from pathlib import Path

import lm_eval
import torch
from lm_eval.tasks import TaskManager

from hf_tinylm import TinyAttentionForCausalLM
from hf_tinylm.tokenization import train_tokenizer
from tests.test_tiny_attention import tiny_config as attention_config

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tests" / "lm_eval_tasks"


def continuation_log_likelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), summed over the continuation's tokens, as lm-eval defines it."""
    context_ids = tokenizer(context)["input_ids"]
    whole = tokenizer(context + continuation)["input_ids"]
    with torch.no_grad():
        log_probs = model(torch.tensor([whole])).logits[0].log_softmax(-1)
    return sum(log_probs[i - 1, whole[i]].item() for i in range(len(context_ids), len(whole)))


def test_simple_evaluate_on_a_saved_folder_reports_the_models_own_accuracy(tmp_path, monkeypatch):
    docs = [json.loads(line) for line in (TASKS / "tiny_choice.jsonl").read_text().splitlines()]
    tokenizer = train_tokenizer([d["question"] + " " + " ".join(d["choices"]) for d in docs], "char", vocab_size=300)
    torch.manual_seed(0)
    config = attention_config(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model = TinyAttentionForCausalLM(config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    monkeypatch.chdir(REPO)  # the task's data_files path is relative to the repository root
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(folder), "trust_remote_code": True, "dtype": "float32", "device": "cpu"},
        tasks=["tinylm_tiny_choice"],
        task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
        batch_size=2,
        log_samples=True,
    )

    scores = [
        [continuation_log_likelihood(model, tokenizer, doc["question"], " " + choice) for choice in doc["choices"]]
        for doc in docs
    ]
    best = [max(range(len(row)), key=row.__getitem__) for row in scores]
    expected_accuracy = sum(choice == doc["answer"] for choice, doc in zip(best, docs)) / len(docs)
    assert results["results"]["tinylm_tiny_choice"]["acc,none"] == expected_accuracy
    samples = sorted(results["samples"]["tinylm_tiny_choice"], key=lambda sample: sample["doc_id"])
    reported = [[response[0][0] for response in sample["resps"]] for sample in samples]
    torch.testing.assert_close(torch.tensor(reported), torch.tensor(scores), rtol=0, atol=1e-4)
