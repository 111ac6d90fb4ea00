"""Datasets for every task: loading, the columns each task reads, and the tokenized features a model trains on.

The flow is raw rows (Hub dataset or local files) -> task examples with fixed column names -> features. Task
examples are what evaluation scores against; features are what `Trainer` batches. Every step that touches all rows is
a batched `datasets.map`, so it is cached, shows a progress bar and runs on `preprocessing_num_workers` processes.
"""

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, load_dataset

from .extractive_qa import context_room, question_windows
from .task_formats import TASKS, build_prompt, build_qa_question, build_truncated_prompt

logger = logging.getLogger(__name__)

QA_MODES = ("extractive", "generative")
# File extension -> `datasets` packaged builder.
LOADERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
# Column names of well-known summarization datasets (cnn_dailymail, xsum, samsum/dialogsum, scitldr, ...), in order.
SUMMARY_SOURCE_COLUMNS = ("article", "document", "dialogue", "text", "source", "abstract")
SUMMARY_TARGET_COLUMNS = ("highlights", "summary", "target", "tldr")
IGNORE_INDEX = -100  # label of positions without loss


@dataclass
class DataArguments:
    """What to train on, how each task turns it into model inputs, and how generation is evaluated."""

    _argument_group_name = "data and task"

    task: str = field(
        default="lm",
        metadata={"help": "What the model learns.", "choices": list(TASKS)},
    )
    qa_mode: str = field(
        default="extractive",
        metadata={
            "help": "qa only: 'extractive' trains a span head that points at the answer in the context; "
            "'generative' trains the language model to write the answer after the question.",
            "choices": list(QA_MODES),
        },
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id, e.g. 'wikitext'."})
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset config, e.g. 'wikitext-2-raw-v1'."}
    )
    train_split_name: str = field(default="train", metadata={"help": "--dataset_name: the split to train on."})
    validation_split_name: str = field(
        default="validation",
        metadata={
            "help": "--dataset_name: the split to evaluate on; when the dataset has none by that name, "
            "--validation_split_percentage of the training split is held out."
        },
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local training file: .txt (one row per line; lm only), .json/.jsonl, .csv or .parquet. A .json "
            "file holding one object with a 'data' list (SQuAD layout, nested paragraphs/qas or flat rows) is read "
            "from that list. Without --dataset_name or --train_file, lm trains on the CPython documentation that "
            "ships with Python."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file, same formats."})
    validation_split_percentage: int = field(
        default=5,
        metadata={"help": "Without a validation split, hold out this last percentage of the training rows (0: none)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (lm: the first N packed blocks)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use only the first N validation examples, also for generated predictions (lm: N packed blocks)."
        },
    )
    text_column: str | None = field(
        default=None,
        metadata={
            "help": "lm: the text column (default 'text', or the only string column). summarization: the document "
            f"column (default: the first of {', '.join(SUMMARY_SOURCE_COLUMNS)})."
        },
    )
    summary_column: str | None = field(
        default=None,
        metadata={
            "help": f"summarization: the summary column (default: the first of {', '.join(SUMMARY_TARGET_COLUMNS)})."
        },
    )
    source_lang: str | None = field(
        default=None, metadata={"help": "translation: source language code, e.g. 'en' (written into the prompt)."}
    )
    target_lang: str | None = field(default=None, metadata={"help": "translation: target language code, e.g. 'de'."})
    source_column: str | None = field(
        default=None,
        metadata={
            "help": "translation: column of source sentences (default: the 'translation' column's source_lang "
            "entry, or a column named like source_lang)."
        },
    )
    target_column: str | None = field(default=None, metadata={"help": "translation: column of target sentences."})
    question_column: str = field(default="question", metadata={"help": "qa: question column."})
    context_column: str = field(default="context", metadata={"help": "qa: context column."})
    answer_column: str = field(
        default="answers",
        metadata={
            "help": "qa: answers column: SQuAD-style {'text': [...], 'answer_start': [...]}, a list of strings or a "
            "string. Extractive QA finds answers without a start in the context."
        },
    )
    keep_linebreaks: bool = field(default=True, metadata={"help": "Keep line breaks when reading .txt files."})
    block_size: int = field(default=128, metadata={"help": "lm: length of the packed training blocks, in tokens."})
    max_source_length: int = field(
        default=256, metadata={"help": "translation/summarization/generative qa: longest prompt; the source is cut."}
    )
    max_target_length: int = field(
        default=64, metadata={"help": "translation/summarization/generative qa: longest target, eos included."}
    )
    max_seq_length: int = field(
        default=256, metadata={"help": "extractive qa: tokens per window (question + context)."}
    )
    doc_stride: int = field(default=64, metadata={"help": "extractive qa: overlap between windows of a long context."})
    max_answer_length: int = field(default=30, metadata={"help": "extractive qa: longest answer, in tokens."})
    num_beams: int = field(default=1, metadata={"help": "Beams for generated predictions (1: greedy)."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Longest generated prediction (default --max_target_length), or lm sample (default 200)."},
    )
    sample_prompt: str = field(default="The", metadata={"help": "lm: prompt of the sample printed after training."})
    license: str | None = field(
        default=None,
        metadata={
            "help": "Model card: the Hub licence id to publish under, usually the training data's terms "
            "('apache-2.0', 'cc-by-sa-4.0', 'other', ...; a '-nc' licence marks the model non-commercial)."
        },
    )
    language: list[str] | None = field(
        default=None,
        metadata={"help": "Model card: language code(s) of the training data, e.g. 'en' or 'en de'."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the cached preprocessed datasets."})

    def __post_init__(self):
        if self.dataset_name is None and self.train_file is None and self.validation_file is not None:
            raise ValueError("--validation_file needs --train_file.")
        if not self.sample_prompt.strip():
            raise ValueError("--sample_prompt must not be empty: the sample continues it.")


def default_corpus() -> Dataset:
    """The CPython documentation topics shipped with every Python (`pydoc_data`, about 465k characters): a corpus
    that exists offline on any machine. One paragraph per row, in topic order, so concatenated rows give the text back
    and a held-out tail of rows is a fair validation set."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        paragraphs += re.findall(r".*?(?:\n\n+|$)", topics[name].strip() + "\n\n", flags=re.DOTALL)[:-1]
    return Dataset.from_dict({"text": paragraphs})


def load_raw_datasets(data_args: DataArguments, cache_dir: str | None = None) -> DatasetDict:
    """The train (and validation, when there is one) split of the data the arguments name, rows as stored."""
    if data_args.dataset_name:
        hub = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=cache_dir)
        if data_args.train_split_name not in hub:
            raise ValueError(
                f"Dataset {data_args.dataset_name!r} has no {data_args.train_split_name!r} split; its splits are "
                f"{list(hub)}. Pass --train_split_name."
            )
        raw = DatasetDict(train=hub[data_args.train_split_name])
        if data_args.validation_split_name in hub:
            raw["validation"] = hub[data_args.validation_split_name]
    elif data_args.train_file:
        files = {"train": data_args.train_file, "validation": data_args.validation_file}
        raw = DatasetDict(
            {split: _load_file(path, data_args, cache_dir) for split, path in files.items() if path is not None}
        )
    elif data_args.task == "lm":
        raw = DatasetDict(train=default_corpus())
    else:
        raise ValueError(f"--task {data_args.task} needs data: pass --dataset_name or --train_file.")
    if "validation" not in raw and data_args.validation_split_percentage > 0:
        rows = len(raw["train"])
        if math.ceil(rows * data_args.validation_split_percentage / 100) >= rows:  # no training row would be left
            raise ValueError(
                f"The training data has {rows} row(s): too few to hold out {data_args.validation_split_percentage}% "
                "for validation and keep a row to train on. Pass more data, a --validation_file, a smaller "
                "--validation_split_percentage, or --validation_split_percentage 0 to train without validation."
            )
        # The tail, not a random sample: neighbouring rows (lines of one play, paragraphs of one topic) stay together.
        split = raw["train"].train_test_split(test_size=data_args.validation_split_percentage / 100, shuffle=False)
        raw = DatasetDict(train=split["train"], validation=split["test"])
    for split, dataset in raw.items():
        if "paragraphs" in dataset.column_names:  # SQuAD's nested layout (split by article above); per file
            raw[split] = dataset.map(
                _flatten_squad,
                batched=True,
                remove_columns=dataset.column_names,
                num_proc=data_args.preprocessing_num_workers,
                load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Flattening SQuAD articles ({split})",
            )
    return raw


def _load_file(path: str, data_args: DataArguments, cache_dir: str | None) -> Dataset:
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
        if data_args.task != "lm":
            raise ValueError(f"A .txt file holds plain text, for --task lm; --task {data_args.task} needs columns.")
        kwargs["keep_linebreaks"] = data_args.keep_linebreaks
    elif builder == "json" and _holds_data_list(file):
        kwargs["field"] = "data"
    try:
        return load_dataset(builder, data_files={"train": str(file)}, cache_dir=cache_dir, **kwargs)["train"]
    except ValueError as error:
        if "corresponds to no data" in str(error):  # `datasets`' words for a file without rows (e.g. a header)
            raise ValueError(f"Data file {path} has no rows.") from error
        raise


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


def task_examples(raw: DatasetDict, data_args: DataArguments) -> DatasetDict:
    """Each split in the task's own columns, whatever the source called them.

    lm: text. translation, summarization: source, references (list; the first is the training target).
    qa: id, context, question, answers (list), answer_starts (list of character offsets; -1 when unknown).
    """
    examples = DatasetDict()
    for split, dataset in raw.items():
        limit = _sample_limit(data_args, split) if data_args.task != "lm" else None  # lm: blocks, in `lm_features`
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        if len(dataset) == 0:
            raise ValueError(f"The {split} split has no rows.")
        examples[split] = _to_task_columns(dataset, data_args)
    return examples


def _sample_limit(data_args: DataArguments, split: str) -> int | None:
    return data_args.max_train_samples if split == "train" else data_args.max_eval_samples


def _to_task_columns(dataset: Dataset, data_args: DataArguments) -> Dataset:
    columns = dataset.column_names
    task = data_args.task
    map_kwargs = {
        "batched": True,
        "remove_columns": columns,
        "num_proc": data_args.preprocessing_num_workers,
        "load_from_cache_file": not data_args.overwrite_cache,
    }
    if task == "lm":
        strings = [name for name in columns if dataset.features[name] == datasets.Value("string")]
        default = "text" if "text" in columns else (strings[0] if len(strings) == 1 else None)
        text = _column(columns, data_args.text_column or default, "text", "--text_column")
        dataset = dataset.select_columns([text])
        empty = sum(value is None for value in dataset[text])
        if empty:  # empty csv cells, null json values: nothing to model, said rather than crashing the tokenizer
            logger.warning(f"Skipping {empty} of {len(dataset)} rows with no text in column {text!r}.")
            dataset = dataset.filter(lambda value: value is not None, input_columns=[text])
        return dataset if text == "text" else dataset.rename_column(text, "text")
    if task == "translation":
        source = _translation_column(dataset, data_args.source_column, data_args.source_lang, "source")
        target = _translation_column(dataset, data_args.target_column, data_args.target_lang, "target")
        return dataset.map(_pairs, fn_kwargs={"source": source, "target": target}, desc="Reading pairs", **map_kwargs)
    if task == "summarization":
        source = _column(
            columns, data_args.text_column or _first(columns, SUMMARY_SOURCE_COLUMNS), "document", "--text_column"
        )
        target = _column(
            columns, data_args.summary_column or _first(columns, SUMMARY_TARGET_COLUMNS), "summary", "--summary_column"
        )
        return dataset.map(
            _pairs, fn_kwargs={"source": (source,), "target": (target,)}, desc="Reading documents", **map_kwargs
        )
    names = {
        "question": _column(columns, data_args.question_column, "question", "--question_column"),
        "context": _column(columns, data_args.context_column, "context", "--context_column"),
        "answers": _column(columns, data_args.answer_column, "answers", "--answer_column"),
        "id": "id" if "id" in columns else None,
    }
    return dataset.map(
        _qa_rows,
        with_indices=True,
        fn_kwargs={"names": names, "locate": data_args.qa_mode == "extractive"},
        desc="Reading questions",
        **map_kwargs,
    )


def _first(columns, candidates):
    return next((name for name in candidates if name in columns), None)


def _column(columns, name, what, flag):
    if name is None:
        raise ValueError(f"Cannot tell which column holds the {what}; columns are {columns}. Pass {flag}.")
    if name not in columns:
        raise ValueError(f"Column {name!r} ({what}) is not in the data; columns are {columns}. Pass {flag}.")
    return name


def _translation_column(dataset: Dataset, column, lang, side):
    """(column,) for a column of sentences, or ("translation", lang) for a WMT-style dict of languages."""
    columns = dataset.column_names
    if column is not None:
        return (_column(columns, column, f"{side} sentences", f"--{side}_column"),)
    if lang is None:
        raise ValueError(f"Translation needs --{side}_lang (or --{side}_column).")
    if "translation" in columns:
        languages = _translation_languages(dataset)
        if lang not in languages:
            raise ValueError(f"--{side}_lang {lang!r} is not in the 'translation' column; it has {languages}.")
        return ("translation", lang)
    return (_column(columns, lang, f"{side} sentences ({lang})", f"--{side}_column"),)


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


def training_texts(examples: Dataset, task: str, batch_size: int = 1000):
    """Batches of every string a tokenizer trained for `task` should know: texts, sources, targets, questions."""
    columns = {"lm": ["text"], "qa": ["context", "question", "answers"]}.get(task, ["source", "references"])
    for batch in examples.select_columns(columns).iter(batch_size):
        for name in columns:
            values = batch[name]
            yield [text for value in values for text in value] if isinstance(values[0], list) else values


def lm_features(examples: DatasetDict, tokenizer, data_args: DataArguments) -> DatasetDict:
    """Texts tokenized, concatenated and cut into blocks of `block_size` tokens (run_clm.py's packing).

    Rows are joined as they are, so a text file is modelled exactly as written, line breaks included; the tokens of
    each 1000-row `map` batch that do not fill a last block are dropped. `--max_train_samples`/`--max_eval_samples`
    then keep the first N blocks.
    """
    tokenized = examples.map(
        _tokenize_texts,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"tokenizer": tokenizer},
        num_proc=data_args.preprocessing_num_workers,
        load_from_cache_file=not data_args.overwrite_cache,
        desc="Tokenizing texts",
    )
    blocks = tokenized.map(
        _group_texts,
        batched=True,
        fn_kwargs={"block_size": data_args.block_size},
        num_proc=data_args.preprocessing_num_workers,
        load_from_cache_file=not data_args.overwrite_cache,
        desc=f"Packing into blocks of {data_args.block_size} tokens",
    )
    for split, dataset in blocks.items():
        if len(dataset) == 0:
            raise ValueError(
                f"The {split} text is shorter than one block of {data_args.block_size} tokens; lower --block_size."
            )
        limit = _sample_limit(data_args, split)  # counted in blocks, as run_clm.py does
        if limit is not None:
            blocks[split] = dataset.select(range(min(limit, len(dataset))))
    return blocks


def _tokenize_texts(batch, tokenizer):
    return {"input_ids": tokenizer(batch["text"], add_special_tokens=False)["input_ids"]}


def _group_texts(batch, block_size):
    ids = [token for row in batch["input_ids"] for token in row]
    blocks = [ids[start : start + block_size] for start in range(0, len(ids) - block_size + 1, block_size)]
    return {"input_ids": blocks, "labels": [list(block) for block in blocks]}


def generation_features(examples: DatasetDict, tokenizer, data_args: DataArguments) -> DatasetDict:
    """`prompt + target + eos` per example, with labels only on `target + eos`.

    The prompt is `task_formats.build_prompt`'s, the source cut to fit `max_source_length`; the target is the first
    reference, cut to `max_target_length` tokens including eos.
    """
    return examples.map(
        _tokenize_generation,
        batched=True,
        remove_columns=examples["train"].column_names,
        fn_kwargs={"tokenizer": tokenizer, "data_args": data_args},
        num_proc=data_args.preprocessing_num_workers,
        load_from_cache_file=not data_args.overwrite_cache,
        desc="Tokenizing prompts and targets",
    )


def prompt_ids(batch, tokenizer, data_args: DataArguments) -> list[list[int]]:
    """Token ids of the prompts of a batch of task examples, each at most `max_source_length` tokens."""
    if data_args.task == "qa":
        sources, kwargs = batch["context"], [{"question": question} for question in batch["question"]]
    else:
        sources = batch["source"]
        kwargs = [{"src_lang": data_args.source_lang, "tgt_lang": data_args.target_lang}] * len(sources)
    prompts = [build_prompt(data_args.task, source, **kw) for source, kw in zip(sources, kwargs)]
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    for index, (source, kw) in enumerate(zip(sources, kwargs)):
        if len(ids[index]) > data_args.max_source_length:
            prompt = build_truncated_prompt(tokenizer, data_args.task, source, data_args.max_source_length, **kw)
            ids[index] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return ids


def _tokenize_generation(batch, tokenizer, data_args):
    references = batch["answers"] if data_args.task == "qa" else batch["references"]
    targets = tokenizer([refs[0] for refs in references], add_special_tokens=False)["input_ids"]
    features = {"input_ids": [], "labels": []}
    for prompt, target in zip(prompt_ids(batch, tokenizer, data_args), targets):
        target = target[: data_args.max_target_length - 1] + [tokenizer.eos_token_id]
        features["input_ids"].append(prompt + target)
        features["labels"].append([IGNORE_INDEX] * len(prompt) + target)
    return features


def extractive_qa_features(
    examples: Dataset,
    tokenizer,
    max_seq_length: int,
    doc_stride: int,
    for_evaluation: bool,
    *,
    num_proc: int | None = None,
    overwrite_cache: bool = False,
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
        num_proc=num_proc,
        load_from_cache_file=not overwrite_cache,
        desc="Cutting contexts into windows",
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
