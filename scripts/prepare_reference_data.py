"""Convert the shared data sets into the files the reference models' configs read (configs/reference/*.yaml).

    python scripts/prepare_reference_data.py [babi|squad|multi30k|scitldr|all]   # default: all

Reads `../shared/data` (see its SOURCES.md), or TINYLM_SHARED_DATA when set, and writes `outputs/reference/data/`.
Tiny Shakespeare needs no conversion: its configs read `../shared/data/tinyshakespeare/input.txt` as it is.
`python benchmarks/reference_models.py run NAME` runs this for the data set NAME trains on.
"""

import argparse
import json
import os
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


def babi_examples(path, task: str = "") -> list[dict]:
    """bAbI questions as extractive QA rows: the story so far (statements only) is the context, and the answer points
    at its word in the last supporting fact that contains it (the fact a reader would underline).

    A bAbI line is `ID text`, a question line `ID question<TAB>answer<TAB>supporting ids`; a story restarts at ID 1.
    """
    rows, story = [], {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        line_id, _, text = line.partition(" ")
        line_id = int(line_id)
        if line_id == 1:
            story = {}
        if "\t" not in text:
            story[line_id] = text.strip()
            continue
        question, answer, support = (part.strip() for part in text.split("\t")[:3])
        ids = sorted(story)
        context, starts, offset = "", {}, 0
        for index in ids:
            starts[index] = offset
            context += story[index] + " "
            offset = len(context)
        context = context.rstrip()
        answer_start = -1
        for fact in reversed([int(i) for i in support.split()]):
            match = re.search(rf"\b{re.escape(answer)}\b", story.get(fact, ""))
            if match:
                answer_start = starts[fact] + match.start()
                break
        if answer_start < 0:  # not in a supporting fact: its last mention in the story
            matches = list(re.finditer(rf"\b{re.escape(answer)}\b", context))
            if not matches:
                raise ValueError(f"{path}:{number}: the answer {answer!r} is not in the story.")
            answer_start = matches[-1].start()
        rows.append(
            {
                "id": f"{task or Path(path).stem}-{number}",
                "task": task,
                "context": context,
                "question": question,
                "answers": {"text": [answer], "answer_start": [answer_start]},
            }
        )
    return rows


def _write_jsonl(rows, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def prepare_babi(out: Path | None = None, limit: int | None = None) -> dict[str, Path]:
    """qa1-qa3 train (together) and test (together and per task) as jsonl files."""
    out = Path(out or PREPARED)
    files = {}
    for split in ("train", "test"):
        rows = []
        for task, stem in BABI_TASKS.items():
            task_rows = babi_examples(SHARED_DATA / "babi" / "en" / f"{stem}_{split}.txt", task)[:limit]
            rows += task_rows
            if split == "test":
                files[f"test_{task}"] = _write_jsonl(task_rows, out / f"babi_test_{task}.jsonl")
        files[split] = _write_jsonl(rows, out / f"babi_{split}.jsonl")
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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": squad["version"], "data": chosen}, ensure_ascii=False))
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
    """SciTLDR-A train and test with the columns train.py reads (source: sentences, target: all summaries)."""
    out = Path(out or PREPARED)
    files = {}
    for split in ("train", "test"):
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
