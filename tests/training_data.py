"""Small data files in each format train.py reads, written from the committed real-data fixtures (tests/fixtures/,
slices of the shared data sets), for the data and training tests."""

import contextlib
import csv
import json
from pathlib import Path

import torch
from datasets import Dataset

from tests.helpers import FIXTURES


@contextlib.contextmanager
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine it costs a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _first(items, count: int, fixture: str):
    """The first `count` items, which the fixture must hold (scripts/make_test_fixtures.py sets how many it has)."""
    items = items[:count]
    if len(items) < count:
        raise ValueError(f"tests/fixtures/{fixture} holds only {len(items)} of the {count} wanted")
    return items


def shakespeare(chars: int) -> str:
    return _first((FIXTURES / "tinyshakespeare" / "input.txt").read_text(), chars, "tinyshakespeare/input.txt")


def shakespeare_txt(folder: Path, chars: int = 20_000) -> Path:
    path = folder / "shakespeare.txt"
    path.write_text(shakespeare(chars))
    return path


def shakespeare_jsonl(folder: Path, chars: int = 20_000) -> Path:
    """One line per row, line breaks kept, in a `text` column."""
    path = folder / "shakespeare.jsonl"
    lines = shakespeare(chars).splitlines(keepends=True)
    path.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines))
    return path


def multi30k_pairs(count: int) -> list[tuple[str, str]]:
    english = _first((FIXTURES / "multi30k" / "train.en").read_text().splitlines(), count, "multi30k/train.en")
    german = _first((FIXTURES / "multi30k" / "train.de").read_text().splitlines(), count, "multi30k/train.de")
    return list(zip(english, german))


def translation_csv(folder: Path, count: int = 48) -> Path:
    """Two columns named by language, as in WMT-style pair files."""
    path = folder / "multi30k.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["en", "de"])
        writer.writerows(multi30k_pairs(count))
    return path


def translation_jsonl(folder: Path, count: int = 48) -> Path:
    """One `translation` dict of languages per row, as in the Hub's wmt datasets."""
    path = folder / "multi30k.jsonl"
    with path.open("w") as f:
        for en, de in multi30k_pairs(count):
            f.write(json.dumps({"translation": {"en": en, "de": de}}) + "\n")
    return path


def scitldr_rows(count: int) -> list[dict]:
    """SciTLDR rows: `source` is a list of abstract sentences, `target` a list of TLDRs."""
    lines = (FIXTURES / "scitldr" / "train.jsonl").read_text().splitlines()
    return [json.loads(line) for line in _first(lines, count, "scitldr/train.jsonl")]


def summarization_jsonl(folder: Path, count: int = 24) -> Path:
    path = folder / "scitldr.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in scitldr_rows(count)))
    return path


def summarization_parquet(folder: Path, count: int = 24) -> Path:
    """DialogSum's columns (dialogue, summary)."""
    path = folder / "dialogsum.parquet"
    lines = (FIXTURES / "dialogsum" / "dialogsum.dev.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in _first(lines, count, "dialogsum/dialogsum.dev.jsonl")]
    Dataset.from_list([{"dialogue": row["dialogue"], "summary": row["summary"]} for row in rows]).to_parquet(path)
    return path


def squad_articles(articles: int = 2, paragraphs: int = 3) -> dict:
    squad = json.loads((FIXTURES / "squad" / "dev-v1.1.json").read_text())
    return {
        "version": squad["version"],
        "data": [
            {**article, "paragraphs": _first(article["paragraphs"], paragraphs, "squad/dev-v1.1.json")}
            for article in _first(squad["data"], articles, "squad/dev-v1.1.json")
        ],
    }


def squad_json(folder: Path, articles: int = 2, paragraphs: int = 3) -> Path:
    """SQuAD's own nested layout: {"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}."""
    path = folder / "squad.json"
    path.write_text(json.dumps(squad_articles(articles, paragraphs)))
    return path


def squad_flat_jsonl(folder: Path, articles: int = 2, paragraphs: int = 3) -> Path:
    """One question per row with HF `squad` columns."""
    path = folder / "squad.jsonl"
    with path.open("w") as f:
        for article in squad_articles(articles, paragraphs)["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = {
                        "text": [a["text"] for a in qa["answers"]],
                        "answer_start": [a["answer_start"] for a in qa["answers"]],
                    }
                    row = {"id": qa["id"], "context": paragraph["context"], "question": qa["question"]}
                    f.write(json.dumps({**row, "answers": answers}) + "\n")
    return path


def babi_rows(count: int) -> list[dict]:
    """bAbI task 1 questions with their story so far as the context and the one-word answer as a string."""
    rows, story = [], []
    for line in (FIXTURES / "babi" / "en" / "qa1_single-supporting-fact_train.txt").read_text().splitlines():
        number, text = line.split(" ", 1)
        if number == "1":
            story = []
        if "\t" in text:
            question, answer, _ = text.split("\t")
            rows.append({"context": " ".join(story), "question": question.strip(), "answers": answer})
            if len(rows) == count:
                return rows
        else:
            story.append(text)
    return _first(rows, count, "babi/en/qa1_single-supporting-fact_train.txt")


def babi_json(folder: Path, count: int = 48) -> Path:
    """A .json file holding a list of records."""
    path = folder / "babi.json"
    path.write_text(json.dumps(babi_rows(count)))
    return path


def babi_csv(folder: Path, count: int = 48) -> Path:
    path = folder / "babi.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["context", "question", "answers"])
        writer.writeheader()
        writer.writerows(babi_rows(count))
    return path
