"""Extractive QA has one windowing and one decoder (`hf_tinylm.extractive_qa`): the answers training's evaluation
scores are the answers the question-answering pipeline gives, so a model card's EM/F1 describes what users get."""

import json

import pytest
from transformers import AutoConfig, AutoTokenizer, pipeline

from hf_tinylm import data, evaluation, training
from hf_tinylm.arguments import DataArguments
from hf_tinylm.extractive_qa import question_windows
from hf_tinylm.task_formats import QA_NO_ANSWER_INDEX, build_qa_question, settings_from_config
from hf_tinylm.tokenization import train_tokenizer
from tests import training_data

WINDOW = ["--max_seq_length", "96", "--doc_stride", "24", "--max_answer_length", "12"]


# The pipeline here is the folder's own copy of the code; test_pipelines checks that a folder's pipelines answer the
# same in a fresh process without hf_tinylm.
@pytest.mark.parametrize("arch", ["attention", "rnn"])
def test_evaluation_scores_the_answers_the_pipeline_gives(tmp_path, arch):
    squad = str(training_data.squad_json(tmp_path))
    folder = tmp_path / "model"
    with training_data.one_torch_thread():
        metrics = training.main(
            [
                "--arch", arch, "--model_size", "tiny", "--task", "qa", "--train_file", squad,
                "--validation_split_percentage", "50", *WINDOW, "--vocab_size", "400", "--max_steps", "8",
                "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "5", "--learning_rate", "3e-3",
                "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
                "--output_dir", str(folder), "--cache_dir", str(tmp_path / "cache"),
            ]
        )  # fmt: skip
    args = DataArguments(task="qa", train_file=squad, validation_split_percentage=50)
    task = args.to_task()
    raw = data.load_raw_datasets(args.to_source(), task, str(tmp_path / "cache"))
    validation = task.examples(raw, {}, {})["validation"]
    questions = [{"question": row["question"], "context": row["context"]} for row in validation]

    # The folder saved how evaluation windowed and decoded, and the pipeline defaults to it.
    settings = settings_from_config(AutoConfig.from_pretrained(folder))
    assert (settings["max_seq_length"], settings["doc_stride"], settings["max_answer_length"]) == (96, 24, 12)
    # Long contexts: every question is read in several windows.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    windows = question_windows(tokenizer, validation["question"], validation["context"], 96, 24)
    assert min(windows["example"].count(index) for index in range(len(validation))) >= 3

    predicted = json.loads((folder / "eval_predictions.json").read_text())
    assert list(predicted) == validation["id"]
    with training_data.one_torch_thread():
        qa = pipeline("question-answering", model=str(folder), trust_remote_code=True, device="cpu")
        answers = [answer["answer"] for answer in qa(questions)]
    assert type(qa).__module__.startswith("transformers_modules.")  # the folder's own copy of the code
    assert answers == list(predicted.values())
    assert len(set(answers)) > 1 and all(answer == answer.strip() != "" for answer in answers)
    # Some answers lie past the first window of their context, so windows were decoded together.
    first_window_ends = {}
    for example, offsets in zip(windows["example"], windows["offsets"]):
        first_window_ends.setdefault(example, max(offset[1] for offset in offsets if offset))
    assert any(
        row["context"].index(answer) >= first_window_ends[index]
        for index, (row, answer) in enumerate(zip(validation, answers))
        if row["context"].count(answer) == 1
    )

    scores = evaluation.score_predictions(["squad"], answers, list(validation["answers"]))
    results = json.loads((folder / "eval_results.json").read_text())
    assert (results["eval_exact_match"], results["eval_f1"]) == (scores["exact_match"], scores["f1"])
    assert results == pytest.approx(metrics)


def test_windows_overlap_by_doc_stride_offer_no_spaces_and_label_the_answer():
    paragraph = training_data.squad_articles(1, 1)["data"][0]["paragraphs"][0]
    context, qa = paragraph["context"], paragraph["qas"][0]
    answer = qa["answers"][0]
    tokenizer = train_tokenizer(
        [p["context"] for a in training_data.squad_articles()["data"] for p in a["paragraphs"]]
    )
    span = (answer["answer_start"], answer["answer_start"] + len(answer["text"]))
    windows = question_windows(tokenizer, [qa["question"]], [context], 40, 10, answer_spans=[span])

    question = tokenizer(build_qa_question(qa["question"]), add_special_tokens=False)["input_ids"]
    assert len(windows["input_ids"]) > 3 and windows["example"] == [0] * len(windows["input_ids"])
    parts = []
    for ids, offsets in zip(windows["input_ids"], windows["offsets"]):
        assert len(ids) <= 40 and ids[: len(question)] == question
        assert offsets[: len(question)] == [None] * len(question)
        assert all(
            offset is None or context[slice(*offset)] == context[slice(*offset)].strip() != "" for offset in offsets
        )
        parts.append(ids[len(question) :])
    # Each window repeats the last `doc_stride` context tokens of the one before; together they are the context.
    assert all(before[-10:] == after[:10] for before, after in zip(parts, parts[1:]))
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    assert [*parts[0], *(token for part in parts[1:] for token in part[10:])] == context_ids

    labelled = [i for i, start in enumerate(windows["start_positions"]) if start != QA_NO_ANSWER_INDEX]
    assert labelled and len(labelled) < len(windows["input_ids"])
    for i in labelled:
        offsets = windows["offsets"][i]
        first, last = offsets[windows["start_positions"][i]], offsets[windows["end_positions"][i]]
        assert context[first[0] : last[1]] == answer["text"]
    assert all(windows["end_positions"][i] == QA_NO_ANSWER_INDEX for i in set(range(len(parts))) - set(labelled))
