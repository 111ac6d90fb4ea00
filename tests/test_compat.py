"""Saved folders on other transformers releases: the oldest supported one against this environment's, through
scripts/check_remote_code_compat.py (the full table of releases is docs/compatibility.md), and the one sentence an
older release gets."""

import subprocess
import sys
from pathlib import Path

import pytest
import transformers

from hf_tinylm.tinylm_compat import MIN_TRANSFORMERS_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import check_remote_code_compat as compat  # noqa: E402

OLDEST_CHECKED = "4.57.6"  # the newest patch of the oldest supported minor release


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    compat.save_folders(root / "folders")
    return root


@pytest.fixture(scope="module")
def reference(folders):
    return compat.run_checks(sys.executable, folders / "folders", folders)


def test_the_reference_run_itself_passes_every_check(reference):
    assert set(reference) == {*compat.FAMILIES, compat.LLAMA_EXPORT}
    for family, checks in reference.items():
        assert checks["version"] == transformers.__version__
        failed = {name: result for name, result in checks.items() if str(result).startswith("error")}
        assert not failed, f"{family}: {failed}"
        assert checks["generate"] and isinstance(checks["generate"], list), "cached and uncached greedy differ"
        assert checks["left-padded batch"] != "≠ one by one"
    for family in compat.FAMILIES:  # the folder names its task, even where transformers dropped the pipeline
        assert reference[family]["wrong task"].startswith(
            "The 'summarization' pipeline cannot use this model: it was trained for translation (en->de)."
        ), reference[family]["wrong task"]
    # The native export computes what the attention model computes.
    export, attention = reference[compat.LLAMA_EXPORT], reference["attention"]
    assert compat.compare({"export": export}, {"export": attention})["export"] == {
        **dict.fromkeys(compat.CHECKS, "✅"),
        "load": "≠",  # LlamaConfig / LlamaForCausalLM, and no QA model
        "question-answering": "≠",  # n/a
        "wrong task": "≠",  # n/a: transformers' own LlamaConfig
    }


@pytest.mark.slow
def test_the_oldest_supported_release_computes_what_this_one_does(folders, reference):
    """Built once in .venv/compat-envs/ (about half a minute from the package index), then reused."""
    assert OLDEST_CHECKED.rsplit(".", 1)[0] == MIN_TRANSFORMERS_VERSION.rsplit(".", 1)[0]
    python = compat.make_environment(OLDEST_CHECKED)
    results = compat.run_checks(python, folders / "folders", folders)
    assert {checks["version"] for checks in results.values()} == {OLDEST_CHECKED}
    verdicts = compat.compare(results, reference)
    expected = {family: dict.fromkeys(compat.CHECKS, "✅") for family in compat.FAMILIES}
    expected[compat.LLAMA_EXPORT] = {
        **dict.fromkeys(compat.CHECKS, "✅"),
        "question-answering": "n/a",
        "wrong task": "n/a",
    }
    assert verdicts == expected, verdicts


def test_pyproject_states_the_same_minimum():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()  # tomllib needs Python 3.11
    assert f'saved-folders-min-transformers = "{MIN_TRANSFORMERS_VERSION}"' in pyproject


def test_an_older_release_fails_at_import_with_one_sentence_naming_the_minimum(folders, tmp_path):
    program = (
        "import transformers; transformers.__version__ = '4.56.2'\n"
        "from transformers import AutoConfig\n"
        f"AutoConfig.from_pretrained({str(folders / 'folders' / 'attention' / 'translation')!r}, "
        "trust_remote_code=True)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"ImportError: This hf_tinylm model needs transformers {MIN_TRANSFORMERS_VERSION} or newer, but this "
        f'environment has 4.56.2: upgrade it with `pip install -U "transformers>={MIN_TRANSFORMERS_VERSION}"`.'
    )


def test_the_compatibility_table_covers_every_minor_release_since_the_minimum():
    table = (Path(__file__).resolve().parents[1] / "docs" / "compatibility.md").read_text()
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    checked = {row for row in rows if row[0].isdigit()}
    minors = {version.rsplit(".", 1)[0] for version in checked}
    assert f"{MIN_TRANSFORMERS_VERSION.rsplit('.', 1)[0]}" in minors
    assert transformers.__version__ in checked
    newest_minor = int(transformers.__version__.split(".")[1])
    assert {f"5.{minor}" for minor in range(newest_minor + 1)} <= minors
