"""Convert the shared data sets into the files the reference models' configs read (configs/reference/*.yaml).

    python scripts/prepare_reference_data.py [babi|squad|multi30k|scitldr|all]   # default: all

Reads `../shared/data` (see its SOURCES.md), or TINYLM_SHARED_DATA when set, and writes `outputs/reference/data/`.
Tiny Shakespeare needs no conversion: its configs read `../shared/data/tinyshakespeare/input.txt` as it is.
`python benchmarks/reference_models.py run NAME` runs this for the data set NAME trains on.
"""

import argparse
import functools
import json
import os
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TINYLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
PREPARED = ROOT / "outputs" / "reference" / "data"
BABI_TASKS = {
    "qa1": "qa1_single-supporting-fact",
    "qa2": "qa2_two-supporting-facts",
    "qa3": "qa3_three-supporting-facts",
}
SQUAD_TRAIN_ARTICLES = 40  # of the 48 dev articles; the last 8 are held out


def _write(text: str, path: Path) -> Path:
    """Write whole or not at all: a run reading the file while another run prepares the same data set (two at a
    time, scripts/reference_models_all.sh) reads the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_jsonl(rows, path: Path) -> Path:
    return _write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), path)


# The story a bAbI question is asked about: its last statements before the question. Every supporting fact of the
# training questions lies within the last 31 (qa3's farthest; qa1 5, qa2 26), so the training data loses nothing;
# the whole story would be up to 1,120 words (qa3), more than the models' context.
BABI_LAST_STATEMENTS = 32
BABI_VALIDATION_SHARE = 0.1  # the last 10% of each task's training stories: the validation split (test: report only)
# Copies of each training story with its people, places and objects consistently renamed among themselves (the
# tasks' whole closed vocabulary of each kind): the same stories told about other names, so that a small model learns
# the reasoning rather than the names. Validation and test stay as they are.
BABI_RENAMED_COPIES = 20
BABI_ENTITIES = (
    ("Mary", "John", "Daniel", "Sandra"),
    ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen"),
    ("football", "apple", "milk"),
)


def babi_stories(path) -> list[list[str]]:
    """A bAbI file as stories, each the list of its lines without their IDs. A bAbI line is `ID text`, a question
    line `ID question<TAB>answer<TAB>supporting ids`; a story restarts at ID 1, and supporting ids count lines."""
    stories = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            line_id, _, text = line.partition(" ")
            if int(line_id) == 1:
                stories.append([])
            stories[-1].append(text)
    return stories


def babi_rows(stories, task: str, prefix: str, last_statements: int | None = BABI_LAST_STATEMENTS) -> list[dict]:
    """bAbI questions as QA rows: the context is the story's last `last_statements` statements before the question
    (statements only, none of its earlier questions), the answer points at its word in the last supporting fact that
    contains it (the fact a reader would underline), else at its last mention."""
    rows = []
    for number, story in enumerate(stories):
        statements = {}  # line id -> text
        for line_id, text in enumerate(story, 1):
            if "\t" not in text:
                statements[line_id] = text.strip()
                continue
            question, answer, support = (part.strip() for part in text.split("\t")[:3])
            ids = sorted(statements)[-last_statements:] if last_statements else sorted(statements)
            context, starts = "", {}
            for index in ids:
                starts[index] = len(context)
                context += statements[index] + " "
            context = context.rstrip()
            answer_start = next(
                (
                    starts[fact] + match.start()
                    for fact in reversed([int(i) for i in support.split()])
                    if fact in starts and (match := re.search(rf"\b{re.escape(answer)}\b", statements[fact]))
                ),
                None,
            )
            if answer_start is None:  # not in a supporting fact within the context: its last mention
                matches = list(re.finditer(rf"\b{re.escape(answer)}\b", context))
                if not matches:
                    raise ValueError(
                        f"{prefix}: story {number}, line {line_id}: the answer {answer!r} is not in the last "
                        f"{last_statements} statements: keep more."
                    )
                answer_start = matches[-1].start()
            rows.append(
                {
                    "id": f"{prefix}-{number}-{line_id}",
                    "task": task,
                    "context": context,
                    "question": question,
                    "answers": {"text": [answer], "answer_start": [answer_start]},
                }
            )
    return rows


def babi_examples(path, task: str = "", last_statements: int | None = BABI_LAST_STATEMENTS) -> list[dict]:
    """The QA rows of one bAbI file (`babi_rows`)."""
    return babi_rows(babi_stories(path), task, task or Path(path).stem, last_statements)


def renamed_stories(stories, copies: int, seed: int) -> list[list[str]]:
    """`copies` renamings of each story: its people, places and objects permuted within each kind, consistently
    through the story, its questions and answers (a new permutation for each copy, seeded)."""
    rng = random.Random(seed)
    renamed = []
    for _ in range(copies):
        mapping = {}
        for kind in BABI_ENTITIES:
            mapping.update(zip(kind, rng.sample(kind, len(kind))))
        pattern = re.compile(rf"\b({'|'.join(mapping)})\b")
        rename = functools.partial(pattern.sub, lambda match, mapping=mapping: mapping[match.group(1)])
        renamed += [[rename(line) for line in story] for story in stories]
    return renamed


def prepare_babi(out: Path | None = None, limit: int | None = None) -> dict[str, Path]:
    """qa1-qa3 as jsonl files per task (one model per task): `babi_{split}_{task}.jsonl` for train (with its
    renamed copies, shuffled), validation (the last stories of the task's training file, as they are) and test.
    `limit` keeps that many stories per task and split (tests)."""
    out = Path(out or PREPARED)
    files = {}
    for number, (task, stem) in enumerate(BABI_TASKS.items()):
        train = babi_stories(SHARED_DATA / "babi" / "en" / f"{stem}_train.txt")
        test = babi_stories(SHARED_DATA / "babi" / "en" / f"{stem}_test.txt")[:limit]
        validation = train[len(train) - max(1, round(len(train) * BABI_VALIDATION_SHARE)) :]
        train = train[: len(train) - len(validation)][:limit]
        copies = renamed_stories(train, BABI_RENAMED_COPIES, seed=number)
        parts = {
            "train": babi_rows(train, task, f"{task}-train") + babi_rows(copies, task, f"{task}-renamed"),
            "validation": babi_rows(validation[:limit], task, f"{task}-validation"),
            "test": babi_rows(test, task, f"{task}-test"),
        }
        random.Random(number).shuffle(parts["train"])
        for split, rows in parts.items():
            files[f"{split}_{task}"] = _write_jsonl(rows, out / f"babi_{split}_{task}.jsonl")
    return files


def split_squad_by_article(out: Path | None = None, train_articles: int | None = None, limit: int | None = None):
    """SQuAD v1.1 dev split by article: the first `train_articles` (default SQUAD_TRAIN_ARTICLES) to train on, the
    rest held out (SQuAD layout)."""
    out = Path(out or PREPARED)
    train_articles = SQUAD_TRAIN_ARTICLES if train_articles is None else train_articles
    squad = json.loads((SHARED_DATA / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    articles = squad["data"]
    parts = {"train": articles[:train_articles], "heldout": articles[train_articles:]}
    files = {}
    for name, chosen in parts.items():
        if limit is not None:  # tiny slices for tests: the first paragraphs of the first article
            chosen = [{**chosen[0], "paragraphs": chosen[0]["paragraphs"][:limit]}]
        path = out / f"squad_{name}.json"
        _write(json.dumps({"version": squad["version"], "data": chosen}, ensure_ascii=False), path)
        files[name] = path
    return files


def prepare_multi30k(out: Path | None = None, limit: int | None = None) -> dict[str, Path]:
    """Multi30k en-de rows {"en", "de"} per split (train, val, test2016), stripped of the stray spaces of the raw
    files (no other change)."""
    out = Path(out or PREPARED)
    files = {}
    for split in ("train", "val", "test2016"):
        texts = {
            lang: (SHARED_DATA / "multi30k" / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
            for lang in ("en", "de")
        }
        rows = [{"en": en.strip(), "de": de.strip()} for en, de in zip(texts["en"], texts["de"])][:limit]
        files[split] = _write_jsonl(rows, out / f"multi30k_{split}.jsonl")
    return files


def prepare_scitldr(out: Path | None = None, limit: int | None = None) -> dict[str, Path]:
    """SciTLDR-A train, dev (validation: the loss during training, the decoding) and test (only reported on), with
    the columns train.py reads (source: sentences, target: all summaries)."""
    out = Path(out or PREPARED)
    files = {}
    for split in ("train", "dev", "test"):
        rows = []
        for line in (SHARED_DATA / "scitldr" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({"paper_id": row["paper_id"], "source": row["source"], "target": row["target"]})
        files[split] = _write_jsonl(rows[:limit], out / f"scitldr_{split}.jsonl")
    return files


PREPARERS = {
    "babi": prepare_babi,
    "squad": split_squad_by_article,
    "multi30k": prepare_multi30k,
    "scitldr": prepare_scitldr,
}


def prepare(data: str, limit: int | None = None) -> None:
    """Write the converted files of one data set (a key of PREPARERS; others need no conversion) into PREPARED;
    `limit` keeps the first rows of each file (tests)."""
    if data in PREPARERS:
        PREPARERS[data](limit=limit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default="all", choices=[*PREPARERS, "all"])
    args = parser.parse_args(argv)
    for data in PREPARERS if args.data == "all" else [args.data]:
        prepare(data)
    print(f"Prepared data in {PREPARED}")


if __name__ == "__main__":
    main()
