"""Cut the test suite's small real-data fixtures (tests/fixtures/) from the shared data sets (../shared/data).

    python scripts/make_test_fixtures.py          # rewrite tests/fixtures/ from ../shared/data
    python scripts/make_test_fixtures.py --check  # exit 1 unless the committed fixtures are what this script writes

Every fixture keeps its data set's own layout and the path it has under ../shared/data, so the tests read the real
formats: the first lines (or characters, or rows) of each file, byte for byte, and SQuAD in its nested layout with
the first articles and their first paragraphs, serialized as the original is (`json.dumps`, no final newline).
A line-based file ends with a newline exactly when the original does. The slices are fixed below, so the output
is deterministic. Set TINYLM_SHARED_DATA to read the data from elsewhere. tests/fixtures/README.md says where each
file comes from and under which licence.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TINYLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = ROOT / "tests" / "fixtures"

SHAKESPEARE_CHARS = 20_000
MULTI30K_LINES = 200  # per split and language
MULTI30K_SPLITS = ("train", "val", "test2016")
SQUAD_ARTICLES, SQUAD_PARAGRAPHS = 3, 3
SCITLDR_ROWS = {"train": 24, "dev": 12, "test": 12}
DIALOGSUM_ROWS = 24
BABI_TASKS = ("qa1_single-supporting-fact", "qa2_two-supporting-facts", "qa3_three-supporting-facts")
BABI_QUESTIONS = 50  # whole stories, until this many questions


def first_lines(text: str, count: int) -> str:
    """The first `count` lines of `text` (split at LF only, as the files are written), ending as `text` ends."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    if len(lines) < count:
        raise ValueError(f"only {len(lines)} lines, {count} wanted")
    return "\n".join(lines[:count]) + ("\n" if text.endswith("\n") else "")


def babi_stories(text: str, questions: int) -> str:
    """The first whole stories of a bAbI file (a story restarts at line id 1) holding `questions` questions or more."""
    lines, asked = [], 0
    for line in text.split("\n"):
        if line.startswith("1 ") and asked >= questions:
            break
        lines.append(line)
        asked += "\t" in line
    if asked < questions:
        raise ValueError(f"only {asked} questions, {questions} wanted")
    return "\n".join(lines).rstrip("\n") + "\n"


def squad_slice(text: str, articles: int, paragraphs: int) -> str:
    squad = json.loads(text)
    if json.dumps(squad) != text:
        raise ValueError("the SQuAD file is not serialized as json.dumps writes it; the slice would change its layout")
    cut = {**squad, "data": [{**a, "paragraphs": a["paragraphs"][:paragraphs]} for a in squad["data"][:articles]]}
    return json.dumps(cut)


def fixtures(shared: Path) -> dict[str, str]:
    """Relative path -> content of every fixture file."""

    def read(path: str) -> str:
        return (shared / path).read_text(encoding="utf-8")

    files = {"tinyshakespeare/input.txt": read("tinyshakespeare/input.txt")[:SHAKESPEARE_CHARS]}
    for split in MULTI30K_SPLITS:
        for lang in ("en", "de"):
            path = f"multi30k/{split}.{lang}"
            files[path] = first_lines(read(path), MULTI30K_LINES)
    files["squad/dev-v1.1.json"] = squad_slice(read("squad/dev-v1.1.json"), SQUAD_ARTICLES, SQUAD_PARAGRAPHS)
    for split, rows in SCITLDR_ROWS.items():
        files[f"scitldr/{split}.jsonl"] = first_lines(read(f"scitldr/{split}.jsonl"), rows)
    files["dialogsum/dialogsum.dev.jsonl"] = first_lines(read("dialogsum/dialogsum.dev.jsonl"), DIALOGSUM_ROWS)
    for task in BABI_TASKS:
        for split in ("train", "test"):
            path = f"babi/en/{task}_{split}.txt"
            files[path] = babi_stories(read(path), BABI_QUESTIONS)
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed fixtures, write nothing")
    args = parser.parse_args(argv)
    if not SHARED_DATA.is_dir():
        parser.error(f"the shared data sets are not at {SHARED_DATA} (set TINYLM_SHARED_DATA)")
    wanted = fixtures(SHARED_DATA)
    if args.check:
        stale = [
            path
            for path, text in wanted.items()
            if not (FIXTURES / path).is_file() or (FIXTURES / path).read_bytes() != text.encode("utf-8")
        ]
        for path in stale:
            print(f"out of date: tests/fixtures/{path}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        target = FIXTURES / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
        print(f"tests/fixtures/{path}: {target.stat().st_size:,} bytes")
    print(f"total: {sum(len(text.encode('utf-8')) for text in wanted.values()):,} bytes in {len(wanted)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
