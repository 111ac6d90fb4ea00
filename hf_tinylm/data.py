"""Datasets for every task: loading, reading the columns a task needs, and the tokenized features a model trains on.

The flow is raw rows (Hub dataset or local files) -> task examples with fixed column names -> features; which
readers and which features a task uses is its own (`hf_tinylm.tasks`). Task examples are what evaluation scores
against; features are what `Trainer` batches. Functions here take plain values, not train.py's arguments. Every step that touches all rows is
a batched `datasets.map`, so it is cached, shows a progress bar and runs on `preprocessing_num_workers` processes.
"""

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, load_dataset

from .extractive_qa import context_room, question_windows
from .task_formats import build_qa_question

logger = logging.getLogger(__name__)

# File extension -> `datasets` packaged builder.
LOADERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
# Column names of well-known summarization datasets (cnn_dailymail, xsum, samsum/dialogsum, scitldr, ...), in order.
SUMMARY_SOURCE_COLUMNS = ("article", "document", "dialogue", "text", "source", "abstract")
SUMMARY_TARGET_COLUMNS = ("highlights", "summary", "target", "tldr")
IGNORE_INDEX = -100  # label of positions without loss


def default_corpus() -> Dataset:
    """The CPython documentation topics shipped with every Python (`pydoc_data`, about 465k characters): a corpus
    that exists offline on any machine. One paragraph per row, in topic order, so concatenated rows give the text back
    and a held-out tail of rows is a fair validation set."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        paragraphs += re.findall(r".*?(?:\n\n+|$)", topics[name].strip() + "\n\n", flags=re.DOTALL)[:-1]
    return Dataset.from_dict({"text": paragraphs})


@dataclass(frozen=True)
class DataSource:
    """Where the rows come from: a Hub dataset (or a local dataset folder), local files, or the built-in corpus, and
    how a validation split is found. Field names are train.py's flags."""

    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_split_name: str = "train"
    validation_split_name: str = "validation"
    train_file: str | None = None
    validation_file: str | None = None
    validation_split_percentage: int = 5
    keep_linebreaks: bool = True


def load_raw_datasets(source: DataSource, task, cache_dir: str | None = None, map_options=None) -> DatasetDict:
    """The train (and validation, when there is one) split of the data `source` names, rows as stored. `task` (an
    `hf_tinylm.tasks.Task`) says whether plain text is data for it; `map_options` are `datasets.map` keywords."""
    map_options = map_options or {}
    if source.dataset_name:
        hub = load_dataset(source.dataset_name, source.dataset_config_name, cache_dir=cache_dir)
        if source.train_split_name not in hub:
            raise ValueError(
                f"Dataset {source.dataset_name!r} has no {source.train_split_name!r} split; its splits are "
                f"{list(hub)}. Pass --train_split_name."
            )
        raw = DatasetDict(train=hub[source.train_split_name])
        if source.validation_split_name in hub:
            raw["validation"] = hub[source.validation_split_name]
    elif source.train_file:
        files = {"train": source.train_file, "validation": source.validation_file}
        raw = DatasetDict(
            {
                split: load_file(path, task, keep_linebreaks=source.keep_linebreaks, cache_dir=cache_dir)
                for split, path in files.items()
                if path is not None
            }
        )
    elif task.reads_plain_text:
        raw = DatasetDict(train=default_corpus())
    else:
        raise ValueError(f"--task {task.format} needs data: pass --dataset_name or --train_file.")
    percentage = source.validation_split_percentage
    if "validation" not in raw and percentage > 0:
        rows = len(raw["train"])
        if math.ceil(rows * percentage / 100) >= rows:  # no training row would be left
            raise ValueError(
                f"The training data has {rows} row(s): too few to hold out {percentage}% "
                "for validation and keep a row to train on. Pass more data, a --validation_file, a smaller "
                "--validation_split_percentage, or --validation_split_percentage 0 to train without validation."
            )
        # The tail, not a random sample: neighbouring rows (lines of one play, paragraphs of one topic) stay together.
        split = raw["train"].train_test_split(test_size=percentage / 100, shuffle=False)
        raw = DatasetDict(train=split["train"], validation=split["test"])
    for split, dataset in raw.items():
        if "paragraphs" in dataset.column_names:  # SQuAD's nested layout (split by article above); per file
            raw[split] = dataset.map(
                _flatten_squad,
                batched=True,
                remove_columns=dataset.column_names,
                desc=f"Flattening SQuAD articles ({split})",
                **map_options,
            )
    return raw


def load_file(path: str, task, keep_linebreaks: bool = True, cache_dir: str | None = None) -> Dataset:
    """One local data file's rows: .txt (plain text, for a task that `reads_plain_text`), .json/.jsonl (a SQuAD-style
    file's 'data' list), .csv or .parquet; checked to exist, be non-empty and, for text formats, be UTF-8."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    if file.suffix not in LOADERS:
        raise ValueError(f"Cannot read {path}: use one of {', '.join(LOADERS)}.")
    if file.stat().st_size == 0:
        raise ValueError(f"Data file {path} is empty.")
    builder = LOADERS[file.suffix]
    if builder != "parquet":
        _check_utf8(file)
    kwargs = {}
    if builder == "text":
        if not task.reads_plain_text:
            raise ValueError(f"A .txt file holds plain text, for --task lm; --task {task.format} needs columns.")
        kwargs["keep_linebreaks"] = keep_linebreaks
    elif builder == "json" and _holds_data_list(file):
        kwargs["field"] = "data"
    try:
        return load_dataset(builder, data_files={"train": str(file)}, cache_dir=cache_dir, **kwargs)["train"]
    except ValueError as error:
        if "corresponds to no data" in str(error):  # `datasets`' words for a file without rows (e.g. a header)
            raise ValueError(f"Data file {path} has no rows.") from error
        raise
    except datasets.exceptions.DatasetGenerationError as error:  # says only "An error occurred while generating"
        raise ValueError(f"Cannot read data file {path}: {_what_is_malformed(file, error)}") from error


def _what_is_malformed(file: Path, error: Exception) -> str:
    """The line of a JSON Lines file that is not JSON, else what the file's reader said."""
    if file.suffix == ".jsonl":
        with file.open(encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                try:
                    if line.strip():
                        json.loads(line.rstrip("\n"))
                except json.JSONDecodeError as bad:
                    return (
                        f"line {line_number} is not valid JSON ({bad.msg}, column {bad.colno}); each line holds one "
                        "row."
                    )
    return f"{error.__cause__ or error}".strip()


def _check_utf8(file: Path) -> None:
    """Text formats are read as UTF-8; say where a file is not, rather than fail inside the reader (or, for some
    encodings, read garbage)."""
    with file.open("rb") as f:
        for line_number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"Data file {file} is not UTF-8: line {line_number} has byte 0x{line[error.start]:02x} at "
                    f"column {error.start + 1} ({error.reason}). Save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None


def _holds_data_list(file: Path) -> bool:
    """Whether a .json file is one object whose 'data' key holds the rows (SQuAD's and run_qa.py's layout)."""
    with file.open(encoding="utf-8") as f:
        head = f.read(4096)
    return re.match(r'\s*\{\s*("version"\s*:\s*"[^"]*"\s*,\s*)?"data"\s*:\s*\[', head) is not None


def _flatten_squad(articles):
    """SQuAD's nested articles -> one row per question with HF `squad` columns."""
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for title, paragraphs in zip(articles["title"], articles["paragraphs"]):
        for paragraph in paragraphs:
            for qa in paragraph["qas"]:
                rows["id"].append(qa["id"])
                rows["title"].append(title)
                rows["context"].append(paragraph["context"])
                rows["question"].append(qa["question"])
                rows["answers"].append(
                    {
                        "text": [answer["text"] for answer in qa["answers"]],
                        "answer_start": [answer["answer_start"] for answer in qa["answers"]],
                    }
                )
    return rows


def text_rows(dataset: Dataset, column: str | None = None) -> Dataset:
    """A language-modelling split as one "text" column: `column`, else "text", else the only string column. Rows
    without text (empty csv cells, null json values) are skipped with a warning rather than crash the tokenizer."""
    columns = dataset.column_names
    strings = [name for name in columns if dataset.features[name] == datasets.Value("string")]
    default = "text" if "text" in columns else (strings[0] if len(strings) == 1 else None)
    text = find_column(columns, column or default, "text", "--text_column")
    dataset = dataset.select_columns([text])
    empty = sum(value is None for value in dataset[text])
    if empty:
        logger.warning(f"Skipping {empty} of {len(dataset)} rows with no text in column {text!r}.")
        dataset = dataset.filter(lambda value: value is not None, input_columns=[text])
    return dataset if text == "text" else dataset.rename_column(text, "text")


def pair_rows(dataset: Dataset, source: tuple, target: tuple, map_options: dict, desc: str) -> Dataset:
    """A split as "source" (one string) and "references" (a list) columns, read from the column paths `source` and
    `target`: (column,) or, for WMT-style dicts of languages, ("translation", lang)."""
    return dataset.map(
        _pairs,
        batched=True,
        remove_columns=dataset.column_names,
        fn_kwargs={"source": source, "target": target},
        desc=desc,
        **map_options,
    )


def question_rows(
    dataset: Dataset,
    question_column: str,
    context_column: str,
    answer_column: str,
    map_options: dict,
    locate_answers: bool,
) -> Dataset:
    """A question-answering split as id, context, question, answers (list) and answer_starts (list of character
    offsets; -1 when unknown). `locate_answers` finds and checks each answer's place in its context (extractive QA
    can only learn answers it can point at)."""
    columns = dataset.column_names
    names = {
        "question": find_column(columns, question_column, "question", "--question_column"),
        "context": find_column(columns, context_column, "context", "--context_column"),
        "answers": find_column(columns, answer_column, "answers", "--answer_column"),
        "id": "id" if "id" in columns else None,
    }
    return dataset.map(
        _qa_rows,
        batched=True,
        with_indices=True,
        remove_columns=columns,
        fn_kwargs={"names": names, "locate": locate_answers},
        desc="Reading questions",
        **map_options,
    )


def find_column(columns, name, what, flag):
    """`name`, checked to be one of `columns`; the errors say which flag chooses another."""
    if name is None:
        raise ValueError(f"Cannot tell which column holds the {what}; columns are {columns}. Pass {flag}.")
    if name not in columns:
        raise ValueError(f"Column {name!r} ({what}) is not in the data; columns are {columns}. Pass {flag}.")
    return name


def translation_column(dataset: Dataset, column, lang, side):
    """(column,) for a column of sentences, or ("translation", lang) for a WMT-style dict of languages."""
    columns = dataset.column_names
    if column is not None:
        return (find_column(columns, column, f"{side} sentences", f"--{side}_column"),)
    if lang is None:
        raise ValueError(f"Translation needs --{side}_lang (or --{side}_column).")
    if "translation" in columns:
        languages = _translation_languages(dataset)
        if lang not in languages:
            raise ValueError(f"--{side}_lang {lang!r} is not in the 'translation' column; it has {languages}.")
        return ("translation", lang)
    return (find_column(columns, lang, f"{side} sentences ({lang})", f"--{side}_column"),)


def _translation_languages(dataset: Dataset) -> list[str]:
    feature = dataset.features["translation"]
    if isinstance(feature, datasets.Translation):  # Hub WMT-style datasets
        return list(feature.languages)
    if isinstance(feature, dict):  # json rows that all hold the same languages
        return list(feature)
    # Rows holding different languages: `datasets` types the column as Json; the rows say which there are.
    return sorted({lang for row in dataset["translation"] if isinstance(row, dict) for lang in row})


def _read(batch, path):
    values = batch[path[0]]
    if len(path) == 1:
        return values
    column, lang = path
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get(lang), str):
            raise ValueError(f"A row's {column!r} entry has no {lang!r} text: {value!r}.")
    return [value[lang] for value in values]


def _pairs(batch, source, target):
    """Sources as one string (lists of sentences joined), references as a list (one or several per example)."""
    sources = [" ".join(text) if isinstance(text, list) else text for text in _read(batch, source)]
    references = [refs if isinstance(refs, list) else [refs] for refs in _read(batch, target)]
    for text, refs in zip(sources, references):
        if not isinstance(text, str) or not text.strip() or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"Every example needs a non-empty source and a target string; got {text!r} -> {refs!r}.")
    return {"source": sources, "references": references}


def _qa_rows(batch, indices, names, locate):
    rows = {"id": [], "context": [], "question": [], "answers": [], "answer_starts": []}
    ids = batch[names["id"]] if names["id"] else [str(index) for index in indices]
    for qid, context, question, answers in zip(
        ids, batch[names["context"]], batch[names["question"]], batch[names["answers"]]
    ):
        if isinstance(answers, dict):
            texts, starts = list(answers["text"]), list(answers.get("answer_start") or [-1] * len(answers["text"]))
        else:
            texts = [answers] if isinstance(answers, str) else list(answers)
            starts = [-1] * len(texts)
        if not texts:
            raise ValueError(f"Question {qid!r} has no answer; every question needs at least one.")
        if locate:
            starts = [_locate(qid, context, text, start) for text, start in zip(texts, starts)]
        rows["id"].append(str(qid))
        rows["context"].append(context)
        rows["question"].append(question)
        rows["answers"].append(texts)
        rows["answer_starts"].append(starts)
    return rows


def _locate(qid, context, answer, start):
    """The answer's character offset in the context, checked; extractive QA can only learn answers it can point at."""
    if not answer.strip():
        raise ValueError(f"Question {qid!r} has an empty answer.")
    if start < 0:
        start = context.find(answer)
    if start < 0 or context[start : start + len(answer)] != answer:
        where = "" if start < 0 else f" at character {start}"
        raise ValueError(f"The answer {answer!r} of question {qid!r} is not in its context{where}.")
    return start


def training_texts(examples: Dataset, columns, batch_size: int = 1000):
    """Batches of every string in `columns` (a task's `text_columns`): what a tokenizer trained for it should know."""
    for batch in examples.select_columns(list(columns)).iter(batch_size):
        for name in columns:
            values = batch[name]
            yield [text for value in values for text in value] if isinstance(values[0], list) else values


def lm_features(examples: DatasetDict, tokenizer, block_size: int, limits: dict, map_options: dict) -> DatasetDict:
    """Texts tokenized, concatenated and cut into blocks of `block_size` tokens (run_clm.py's packing).

    Rows are joined as they are, so a text file is modelled exactly as written, line breaks included; the tokens of
    each 1000-row `map` batch that do not fill a last block are dropped. `limits[split]` then keeps the first N blocks
    (`--max_train_samples`/`--max_eval_samples` count blocks, as in run_clm.py).
    """
    tokenized = examples.map(
        _tokenize_texts,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"tokenizer": tokenizer},
        desc="Tokenizing texts",
        **map_options,
    )
    blocks = tokenized.map(
        _group_texts,
        batched=True,
        fn_kwargs={"block_size": block_size},
        desc=f"Packing into blocks of {block_size} tokens",
        **map_options,
    )
    for split, dataset in blocks.items():
        if len(dataset) == 0:
            raise ValueError(f"The {split} text is shorter than one block of {block_size} tokens; lower --block_size.")
        if limits.get(split) is not None:
            blocks[split] = dataset.select(range(min(limits[split], len(dataset))))
    return blocks


def _tokenize_texts(batch, tokenizer):
    return {"input_ids": tokenizer(batch["text"], add_special_tokens=False)["input_ids"]}


def _group_texts(batch, block_size):
    ids = [token for row in batch["input_ids"] for token in row]
    blocks = [ids[start : start + block_size] for start in range(0, len(ids) - block_size + 1, block_size)]
    return {"input_ids": blocks, "labels": [list(block) for block in blocks]}


def generation_features(
    examples: DatasetDict, tokenizer, prompt_ids, references_column: str, max_target_length: int, map_options: dict
) -> DatasetDict:
    """`prompt + target + eos` per example, with labels only on `target + eos`.

    `prompt_ids(batch, tokenizer)` gives the prompts' token ids (a `TextToText` task's, sources cut to fit); the
    target is the first of the example's `references_column`, cut to `max_target_length` tokens including eos.
    """
    return examples.map(
        _tokenize_generation,
        batched=True,
        remove_columns=examples["train"].column_names,
        fn_kwargs={
            "tokenizer": tokenizer,
            "prompt_ids": prompt_ids,
            "references_column": references_column,
            "max_target_length": max_target_length,
        },
        desc="Tokenizing prompts and targets",
        **map_options,
    )


def _tokenize_generation(batch, tokenizer, prompt_ids, references_column, max_target_length):
    targets = tokenizer([refs[0] for refs in batch[references_column]], add_special_tokens=False)["input_ids"]
    features = {"input_ids": [], "labels": []}
    for prompt, target in zip(prompt_ids(batch, tokenizer), targets):
        target = target[: max_target_length - 1] + [tokenizer.eos_token_id]
        features["input_ids"].append(prompt + target)
        features["labels"].append([IGNORE_INDEX] * len(prompt) + target)
    return features


def extractive_qa_features(
    examples: Dataset,
    tokenizer,
    max_seq_length: int,
    doc_stride: int,
    for_evaluation: bool,
    map_options: dict,
) -> Dataset:
    """Windows of each question and its context with the answer span's token positions (run_qa.py's
    prepare_train_features, for a model that reads the question first): `extractive_qa.question_windows`.

    A long context becomes several windows of `max_seq_length` tokens overlapping by `doc_stride`; a window without
    the answer points at `QA_NO_ANSWER_INDEX` (the question token), the "no answer here" position. For evaluation each
    window also keeps its example id and `offsets` (the characters of the tokens that may start or end an answer), for
    `evaluation.extractive_answers`.
    """
    return examples.map(
        _tokenize_qa_windows,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_seq_length": max_seq_length,
            "doc_stride": doc_stride,
            "for_evaluation": for_evaluation,
        },
        desc="Cutting contexts into windows",
        **map_options,
    )


def _tokenize_qa_windows(batch, tokenizer, max_seq_length, doc_stride, for_evaluation):
    for question in batch["question"]:
        room = context_room(tokenizer, question, max_seq_length)
        if room <= doc_stride:
            raise ValueError(
                f"The question {build_qa_question(question)!r} takes {max_seq_length - room} of the {max_seq_length} "
                f"tokens of a window, leaving no more than --doc_stride ({doc_stride}) for the context: raise "
                "--max_seq_length or lower --doc_stride."
            )
    answer_spans = [
        (starts[0], starts[0] + len(answers[0])) for starts, answers in zip(batch["answer_starts"], batch["answers"])
    ]
    windows = question_windows(
        tokenizer, batch["question"], batch["context"], max_seq_length, doc_stride, answer_spans
    )
    features = {key: windows[key] for key in ("input_ids", "start_positions", "end_positions")}
    if for_evaluation:
        features["example_id"] = [batch["id"][example] for example in windows["example"]]
        features["offsets"] = windows["offsets"]
    return features
