"""Loading every supported format, task columns, tokenized features, and the errors bad data gets."""

import json

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, Features, Translation

from hf_tinylm import data
from hf_tinylm.arguments import DataArguments
from hf_tinylm.data import IGNORE_INDEX
from hf_tinylm.evaluation import extractive_answers
from hf_tinylm.extractive_qa import _widen_to_words
from hf_tinylm.task_formats import QA_NO_ANSWER_INDEX, SEPARATOR, build_prompt, build_truncated_prompt
from hf_tinylm.tokenization import train_tokenizer
from tests import training_data


def load(tmp_path, **kwargs) -> DatasetDict:
    data_args = DataArguments(**kwargs)
    task = data_args.to_task()
    raw = data.load_raw_datasets(data_args.to_source(), task, cache_dir=str(tmp_path / "cache"))
    return task.examples(raw, data_args.sample_limits(), {})


def features(examples, tokenizer, **kwargs):
    """The features train.py makes of `examples` with these arguments."""
    data_args = DataArguments(**kwargs)
    return data_args.to_task().features(examples, tokenizer, data_args.sample_limits(), {})


@pytest.fixture(scope="module")
def tokenizer():
    contexts = [p["context"] for a in training_data.squad_articles()["data"] for p in a["paragraphs"]]
    return train_tokenizer([*contexts, *(" ".join(pair) for pair in training_data.multi30k_pairs(200))], "bpe", 600)


def test_default_corpus_is_the_python_docs_paragraph_by_paragraph():
    from pydoc_data.topics import topics

    corpus = data.default_corpus()
    assert len(corpus) > 1000
    assert "".join(corpus["text"]) == "".join(topics[name].strip() + "\n\n" for name in sorted(topics))


def test_text_file_keeps_line_breaks_and_holds_out_the_tail(tmp_path):
    path = training_data.shakespeare_txt(tmp_path, chars=5000)
    examples = load(tmp_path, train_file=str(path), validation_split_percentage=10)
    assert "".join([*examples["train"]["text"], *examples["validation"]["text"]]) == path.read_text()
    assert len(examples["validation"]) == pytest.approx(len(path.read_text().splitlines()) / 10, abs=1)


def test_dataset_folder_with_named_splits(tmp_path):
    """--dataset_name takes anything `load_dataset` does; here a folder whose files name their splits."""
    folder = tmp_path / "multi30k"
    folder.mkdir()
    rows = [json.loads(line) for line in training_data.translation_jsonl(tmp_path).read_text().splitlines()]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:40]))
    (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[40:]))
    args = {"task": "translation", "dataset_name": str(folder), "source_lang": "en", "target_lang": "de"}
    examples = load(tmp_path, **args, validation_split_name="test")
    assert (len(examples["train"]), len(examples["validation"])) == (40, 8)
    examples = load(tmp_path, **args)  # no "validation" split: the tail of "train" is held out
    assert (len(examples["train"]), len(examples["validation"])) == (38, 2)
    with pytest.raises(ValueError, match=r"no 'dev' split; its splits are \['train', 'test'\]"):
        load(tmp_path, **args, train_split_name="dev")


def test_translation_from_language_columns_and_from_translation_dicts(tmp_path):
    pairs = training_data.multi30k_pairs(48)
    for path in (training_data.translation_csv(tmp_path), training_data.translation_jsonl(tmp_path)):
        examples = load(tmp_path, task="translation", train_file=str(path), source_lang="en", target_lang="de")
        assert examples["train"].column_names == ["source", "references"]
        assert examples["train"][0] == {"source": pairs[0][0], "references": [pairs[0][1]]}
        assert len(examples["train"]) + len(examples["validation"]) == 48


def test_translation_from_a_hub_style_translation_feature(tmp_path):
    """Hub WMT-style datasets (wmt16, opus_books, ...) type the column as `datasets.Translation`."""
    pairs = training_data.multi30k_pairs(8)
    features = Features({"translation": Translation(languages=["de", "en"])})
    rows = {"translation": [{"de": de, "en": en} for en, de in pairs]}
    raw = DatasetDict(train=Dataset.from_dict(rows, features=features))
    args = DataArguments(task="translation", source_lang="en", target_lang="de")
    examples = args.to_task().examples(raw, {}, {})
    assert examples["train"][0] == {"source": pairs[0][0], "references": [pairs[0][1]]}
    with pytest.raises(ValueError, match=r"--target_lang 'fr' is not in the 'translation' column; it has \['de', 'en'\]"):
        DataArguments(task="translation", source_lang="en", target_lang="fr").to_task().examples(raw, {}, {})


def test_translation_rows_holding_different_languages(tmp_path):
    """When rows' language sets differ, `datasets` types the column as Json: the rows say which languages exist."""
    pairs = training_data.multi30k_pairs(8)
    rows = [{"translation": {"en": en, "de": de}} for en, de in pairs]
    rows[0]["translation"]["fr"] = "Un homme."
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = dict(task="translation", train_file=str(path), source_lang="en", validation_split_percentage=0)
    examples = load(tmp_path, target_lang="de", **args)
    assert examples["train"]["source"] == [en for en, _ in pairs]
    assert examples["train"]["references"] == [[de] for _, de in pairs]
    with pytest.raises(ValueError, match="A row's 'translation' entry has no 'fr' text"):
        load(tmp_path, target_lang="fr", **args)  # present in one row only


def test_summarization_defaults_for_known_column_names(tmp_path):
    examples = load(tmp_path, task="summarization", train_file=str(training_data.summarization_jsonl(tmp_path)))
    row = training_data.scitldr_rows(1)[0]
    assert examples["train"][0] == {"source": " ".join(row["source"]), "references": row["target"]}  # SciTLDR
    examples = load(tmp_path, task="summarization", train_file=str(training_data.summarization_parquet(tmp_path)))
    assert examples["train"][0]["source"].startswith("#Person1#")  # DialogSum's dialogue/summary


def test_squad_nested_and_flat_files_give_the_same_questions(tmp_path):
    nested = load(
        tmp_path, task="qa", train_file=str(training_data.squad_json(tmp_path)), validation_split_percentage=0
    )
    flat = load(
        tmp_path, task="qa", train_file=str(training_data.squad_flat_jsonl(tmp_path)), validation_split_percentage=0
    )
    assert nested["train"].to_list() == flat["train"].to_list()
    first = nested["train"][0]
    assert first["context"][first["answer_starts"][0] :].startswith(first["answers"][0])
    # Each file in its own layout: a flat training file with a nested validation file, and the other way round.
    nested_path, flat_path = str(training_data.squad_json(tmp_path)), str(training_data.squad_flat_jsonl(tmp_path))
    for train_file, validation_file in ((flat_path, nested_path), (nested_path, flat_path)):
        mixed = load(tmp_path, task="qa", train_file=train_file, validation_file=validation_file)
        assert mixed["train"].to_list() == mixed["validation"].to_list() == flat["train"].to_list()


def test_squad_validation_split_is_by_article(tmp_path):
    examples = load(
        tmp_path, task="qa", train_file=str(training_data.squad_json(tmp_path)), validation_split_percentage=50
    )
    train_contexts, validation_contexts = set(examples["train"]["context"]), set(examples["validation"]["context"])
    assert train_contexts and validation_contexts and not train_contexts & validation_contexts


def test_generative_qa_accepts_answers_without_positions(tmp_path):
    path = training_data.babi_json(tmp_path)
    examples = load(tmp_path, task="qa", qa_mode="generative", train_file=str(path))
    assert examples["train"][0]["answers"] == [training_data.babi_rows(1)[0]["answers"]]
    assert examples["train"][0]["answer_starts"] == [-1]
    assert examples["train"][0]["id"] == "0"


def test_lm_blocks(tmp_path, tokenizer):
    text = training_data.shakespeare_txt(tmp_path, chars=3000).read_text()
    examples = DatasetDict(train=Dataset.from_dict({"text": text.splitlines(keepends=True)}))
    blocks = features(examples, tokenizer, block_size=32)["train"]
    assert all(len(ids) == 32 for ids in blocks["input_ids"])
    assert blocks["labels"] == blocks["input_ids"]
    assert text.startswith(tokenizer.decode(np.concatenate(blocks["input_ids"])))


def test_lm_rows_without_text_are_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "notes.csv"
    path.write_text("text,source\nFirst line.,a\n,b\nThird line.,c\n")
    with caplog.at_level("WARNING"):
        examples = load(tmp_path, train_file=str(path), validation_split_percentage=0)
    assert examples["train"]["text"] == ["First line.", "Third line."]
    assert "Skipping 1 of 3 rows with no text in column 'text'" in caplog.text


def test_lm_sample_limits_count_blocks_not_lines(tmp_path, tokenizer):
    """As run_clm.py: a few short lines would not fill one validation block, a few blocks always exist."""
    path = str(training_data.shakespeare_txt(tmp_path))
    args = dict(train_file=path, block_size=32, max_train_samples=5, max_eval_samples=3)
    blocks = features(load(tmp_path, **args), tokenizer, **args)
    assert (len(blocks["train"]), len(blocks["validation"])) == (5, 3)
    whole = features(load(tmp_path, train_file=path), tokenizer, train_file=path, block_size=32)
    assert blocks["train"][:5] == whole["train"][:5] and blocks["validation"][:3] == whole["validation"][:3]


def test_generation_features_train_on_the_target_only(tokenizer):
    examples = DatasetDict(train=Dataset.from_dict({"source": ["A man rides a bike."], "references": [["Ein Mann."]]}))
    feature = features(examples, tokenizer, task="translation", source_lang="en", target_lang="de")["train"][0]
    prompt_length = feature["labels"].index(next(label for label in feature["labels"] if label != IGNORE_INDEX))
    prompt = build_prompt("translation", "A man rides a bike.", src_lang="en", tgt_lang="de")
    assert tokenizer.decode(feature["input_ids"][:prompt_length]) == prompt
    assert feature["labels"][prompt_length:] == feature["input_ids"][prompt_length:]
    assert tokenizer.decode(feature["labels"][prompt_length:]) == "Ein Mann." + tokenizer.eos_token


def test_long_sources_are_cut_but_the_prompt_keeps_its_frame(tokenizer):
    source = " ".join(pair[0] for pair in training_data.multi30k_pairs(20))
    examples = DatasetDict(train=Dataset.from_dict({"context": [source], "question": ["Who?"], "answers": [["men"]]}))
    args = dict(task="qa", qa_mode="generative", max_source_length=40, max_target_length=8)
    feature = features(examples, tokenizer, **args)["train"][0]
    prompt = tokenizer.decode(
        [i for i, label in zip(feature["input_ids"], feature["labels"]) if label == IGNORE_INDEX]
    )
    assert len(tokenizer.encode(prompt)) <= 40
    assert prompt.endswith(f"<|question|>Who?{SEPARATOR}")
    assert prompt == build_truncated_prompt(tokenizer, "qa", source, 40, question="Who?")
    assert source.startswith(prompt.removeprefix("<|context|>").removesuffix(f"<|question|>Who?{SEPARATOR}"))
    with pytest.raises(ValueError, match="no room"):
        build_truncated_prompt(tokenizer, "qa", source, 4, question="Who?")


def test_extractive_windows_point_at_the_answer_and_map_back(tmp_path, tokenizer):
    examples = load(
        tmp_path, task="qa", train_file=str(training_data.squad_json(tmp_path)), validation_split_percentage=0
    )
    examples = examples["train"].select(range(12))
    windows = data.extractive_qa_features(examples, tokenizer, 64, 16, for_evaluation=True, map_options={})
    assert len(windows) > len(examples)  # long contexts were split into windows
    assert all(len(ids) <= 64 for ids in windows["input_ids"])
    with_answer = [i for i, start in enumerate(windows["start_positions"]) if start != QA_NO_ANSWER_INDEX]
    assert with_answer and len(with_answer) < len(windows)
    by_id = {row["id"]: row for row in examples}
    for i in with_answer:
        feature = windows[i]
        example = by_id[feature["example_id"]]
        start, end = (
            feature["offsets"][feature["start_positions"]],
            feature["offsets"][feature["end_positions"]],
        )
        assert example["context"][start[0] : end[1]] == example["answers"][0]  # offsets leave spaces out

    # Logits peaking on the labelled span give back the gold answers after post-processing, widened to whole words
    # as the question-answering pipeline widens them: one answer, "gold", is the start of the word "golden".
    width = max(len(ids) for ids in windows["input_ids"])
    start_logits, end_logits = np.full((len(windows), width), -100.0), np.full((len(windows), width), -100.0)
    for i in range(len(windows)):
        start_logits[i, : len(windows[i]["input_ids"])] = end_logits[i, : len(windows[i]["input_ids"])] = 0.0
        start_logits[i, windows[i]["start_positions"]] = end_logits[i, windows[i]["end_positions"]] = 10.0
    answers = extractive_answers(examples, windows, start_logits, end_logits, max_answer_length=30)
    answered = [i for i, row in enumerate(examples) if row["id"] in {windows[j]["example_id"] for j in with_answer}]
    widened = []
    for row in examples.select(answered):
        start = row["answer_starts"][0]
        widened.append(row["context"][slice(*_widen_to_words(row["context"], start, start + len(row["answers"][0])))])
    assert [answers[i] for i in answered] == widened
    assert sum(answer != row["answers"][0] for answer, row in zip(widened, examples.select(answered))) == 1


def test_question_too_long_for_a_window(tmp_path, tokenizer):
    examples = load(
        tmp_path, task="qa", train_file=str(training_data.squad_json(tmp_path)), validation_split_percentage=0
    )
    with pytest.raises(ValueError, match="raise --max_seq_length or lower --doc_stride"):
        features(examples, tokenizer, task="qa", max_seq_length=24, doc_stride=8)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path, train_file=str(tmp_path / "nope.txt"))


def test_empty_data(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load(tmp_path, train_file=str(tmp_path / "empty.txt"))
    (tmp_path / "header.csv").write_text("en,de\n")
    with pytest.raises(ValueError, match="no rows"):
        load(tmp_path, task="translation", train_file=str(tmp_path / "header.csv"), source_lang="en", target_lang="de")


def test_lm_text_shorter_than_a_block(tmp_path, tokenizer):
    examples = DatasetDict(train=Dataset.from_dict({"text": ["too short"]}))
    with pytest.raises(ValueError, match="lower --block_size"):
        features(examples, tokenizer, block_size=64)


def test_unknown_columns(tmp_path):
    path = training_data.translation_csv(tmp_path)
    with pytest.raises(ValueError, match=r"'fr'.*columns are \['en', 'de'\]"):
        load(tmp_path, task="translation", train_file=str(path), source_lang="en", target_lang="fr")
    with pytest.raises(ValueError, match="--source_lang 'xx' is not in the 'translation' column"):
        load(
            tmp_path,
            task="translation",
            train_file=str(training_data.translation_jsonl(tmp_path)),
            source_lang="xx",
            target_lang="de",
        )
    with pytest.raises(
        ValueError,
        match=r"Cannot tell which column holds the document; columns are \[.en., .de.\]. Pass --text_column",
    ):
        load(tmp_path, task="summarization", train_file=str(path))
    with pytest.raises(ValueError, match="'story'.*--context_column"):
        load(tmp_path, task="qa", train_file=str(training_data.babi_json(tmp_path)), context_column="story")


def test_text_files_are_for_language_modelling_only(tmp_path):
    path = training_data.shakespeare_txt(tmp_path, chars=500)
    with pytest.raises(ValueError, match="for --task lm"):
        load(tmp_path, task="summarization", train_file=str(path))


def test_answer_not_in_its_context(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"id": "ok", "context": "Paris is in France.", "question": "Where is Paris?", "answers": "France"},
        {"id": "q7", "context": "Paris is in France.", "question": "Where is Rome?", "answers": "Italy"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match="'Italy' of question 'q7' is not in its context"):
        load(tmp_path, task="qa", train_file=str(path), validation_split_percentage=0)
    wrong_start = {**rows[0], "answers": {"text": ["France"], "answer_start": [3]}}
    path.write_text(json.dumps(wrong_start) + "\n")
    with pytest.raises(ValueError, match="not in its context at character 3"):
        load(tmp_path, task="qa", train_file=str(path), validation_split_percentage=0)
    # Generative QA writes its answer, so it need not appear in the context.
    assert (
        len(
            load(tmp_path, task="qa", qa_mode="generative", train_file=str(path), validation_split_percentage=0)[
                "train"
            ]
        )
        == 1
    )


def test_a_data_file_that_is_not_utf8_is_named_with_the_place_of_the_problem(tmp_path):
    from hf_tinylm import training

    for name, content in (("latin.txt", b"first line\ncaf\xe9 au lait\n"), ("latin.jsonl", b'{"text": "\xe9t\xe9"}\n')):
        path = tmp_path / name
        path.write_bytes(content)
        line = 2 if name.endswith(".txt") else 1
        with pytest.raises(ValueError, match=f"^Data file {path} is not UTF-8: line {line} has byte 0xe9 at column"):
            training.main(["--train_file", str(path), "--output_dir", str(tmp_path / "out")])
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "pairs.jsonl",
            '{"source": "a b", "target": "c"}\n{"source": "d e", "target": "f"\n',
            "line 2 is not valid JSON",
        ),
        ("pairs.csv", 'source,target\n"a b",c\n"d e\n', "EOF inside string starting at row 2"),
    ],
)
def test_a_malformed_data_file_is_named_with_what_is_wrong(tmp_path, name, content, problem):
    from hf_tinylm import training

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^Cannot read data file {path}: .*{problem}"):
        training.main(["--task", "summarization", "--train_file", str(path), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("rows", "percentage"), [(1, 5), (3, 70)])
def test_too_few_rows_to_hold_out_validation_say_which_flag_to_change(tmp_path, rows, percentage):
    from hf_tinylm import training

    path = tmp_path / "few.txt"
    path.write_text("".join(f"line {i}\n" for i in range(rows)))
    with pytest.raises(ValueError, match=f"has {rows} row\\(s\\): too few to hold out {percentage}% for validation"):
        training.main(
            ["--train_file", str(path), "--validation_split_percentage", str(percentage),
             "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
