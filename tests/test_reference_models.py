"""The reference-model recipes (configs/reference/*.yaml, run by benchmarks/reference_models.py) on tiny slices of
the real data files (the committed fixtures, tests/fixtures/, laid out as ../shared/data is), the data preparation
(scripts/prepare_reference_data.py) and the bAbI converter on real lines, and the committed reference model cards
(metadata parses, model-index = eval_results.json).
"""

import json
import sys
from pathlib import Path

import pytest
import yaml

from hf_tinylm.arguments import TinyLMTrainingArguments
from hf_tinylm.callbacks import TimeBudgetCallback
from hf_tinylm.hub import validate_model_card
from tests import training_data
from tests.helpers import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import reference_models as recipe  # noqa: E402  (benchmarks/reference_models.py; it imports the two below)

finishing, prepare = recipe.finishing, recipe.prepare_reference_data
BABI = FIXTURES / "babi" / "en"
BABI_QUESTIONS = 50  # per fixture file (whole stories; the full files hold 1,000 each)
# The fixture holds the first 3 SQuAD articles (the full dev set 48, of which the recipe trains on 40): 2 train.
SQUAD_TRAIN_ARTICLES = 2
# A few steps of the smallest model, on a few rows: the plumbing, not the quality.
TINY = [
    "--model_size", "tiny", "--max_steps", "2", "--max_train_samples", "24", "--max_eval_samples", "4",
    "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--eval_strategy", "no",
    "--max_new_tokens", "4", "--vocab_size", "300", "--logging_steps", "1",
]  # fmt: skip
CONFIGS = sorted(recipe.CONFIGS.glob("*.yaml"))


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """The preparation reads the fixtures and writes its converted data to a temporary folder; runs start from the
    repository root."""
    monkeypatch.setattr(prepare, "SHARED_DATA", FIXTURES)
    monkeypatch.setattr(prepare, "SQUAD_TRAIN_ARTICLES", SQUAD_TRAIN_ARTICLES)
    monkeypatch.setattr(prepare, "PREPARED", tmp_path / "data")
    monkeypatch.chdir(ROOT)
    with training_data.one_torch_thread():
        yield tmp_path


def _fixture_flags(name: str, tmp_path: Path) -> list[str]:
    """Flags that point a recipe at the prepared fixture slices and a temporary output folder."""
    config = yaml.safe_load(recipe.config_path(name).read_text())
    flags = ["--output_dir", str(tmp_path / name)]
    for key in ("train_file", "validation_file"):
        if key in config:
            path = Path(config[key])
            shared = path.is_relative_to("../shared/data")
            moved = FIXTURES / path.relative_to("../shared/data") if shared else tmp_path / "data" / path.name
            flags += [f"--{key}", str(moved)]
    return flags


def test_babi_converter_points_at_the_supporting_fact():
    rows = prepare.babi_examples(BABI / "qa1_single-supporting-fact_train.txt", "qa1")
    assert len(rows) == BABI_QUESTIONS
    first = rows[0]  # story: "Mary moved to the bathroom. John went to the hallway." -> "Where is Mary?"
    assert first["context"] == "Mary moved to the bathroom. John went to the hallway."
    assert (first["question"], first["answers"]["text"]) == ("Where is Mary?", ["bathroom"])
    start = first["answers"]["answer_start"][0]
    assert first["context"][start : start + len("bathroom")] == "bathroom" and start == len("Mary moved to the ")
    # The context holds statements only; the questions of the same story are not in it.
    assert all("?" not in row["context"] for row in rows)

    # qa2 "Where is the football?": the location is in the later supporting fact, not the first mention.
    rows = prepare.babi_examples(BABI / "qa2_two-supporting-facts_test.txt", "qa2")
    assert len(rows) == BABI_QUESTIONS
    for row in rows[:50]:
        start, answer = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start : start + len(answer)] == answer
    lines = (BABI / "qa2_two-supporting-facts_test.txt").read_text().splitlines()
    question_line = next(line for line in lines if "\t" in line)
    support = [int(i) for i in question_line.split("\t")[2].split()]
    fact = next(line for line in lines if line.startswith(f"{max(support)} ")).split(" ", 1)[1]
    start = rows[0]["answers"]["answer_start"][0]
    sentence_start = rows[0]["context"].rfind(". ", 0, start) + 2
    assert rows[0]["context"][sentence_start:].startswith(fact)


def test_babi_context_is_the_last_statements_and_renamed_copies_stay_consistent():
    stories = prepare.babi_stories(BABI / "qa1_single-supporting-fact_train.txt")  # support within the last 5
    rows = prepare.babi_rows(stories[:2], "qa1", "qa1", last_statements=5)
    for row in rows:
        assert row["context"].count(".") <= 5
        start, answer = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start : start + len(answer)] == answer
    whole = prepare.babi_rows(stories[:2], "qa1", "qa1", last_statements=None)
    assert [r["context"] for r in whole] != [r["context"] for r in rows]
    assert all(full["context"].endswith(cut["context"]) for full, cut in zip(whole, rows))
    with pytest.raises(ValueError, match="qa1: story 0, line 3: the answer 'bathroom' is not in the last 1 statements: keep more"):
        prepare.babi_rows(stories[:1], "qa1", "qa1", last_statements=1)

    copies = prepare.renamed_stories(stories[:3], copies=4, seed=0)
    assert len(copies) == 12 and copies[:3] != stories[:3]
    names = {word for kind in prepare.BABI_ENTITIES for word in kind}
    for original, copy in zip(stories[:3] * 4, copies):
        # The same story, word for word, except the people, places and objects, renamed one to one.
        words = [(a, b) for line_a, line_b in zip(original, copy) for a, b in zip(line_a.split(), line_b.split())]
        assert all(a == b or (a.strip(".?") in names and b.strip(".?") in names) for a, b in words)
        mapping = {a: b for a, b in words}
        assert len(set(mapping.values())) == len(mapping)
    for row in prepare.babi_rows(copies, "qa3", "renamed"):  # answers still point at their word
        start, answer = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start : start + len(answer)] == answer


def test_the_babi_shortcut_baseline_answers_the_last_place_mentioned(tmp_path):
    """The card's floor: the rule that ignores the question is right where the last place mentioned is the answer."""
    rows = [
        {"context": "Mary went to the kitchen. John moved to the garden.", "answers": {"text": ["garden"]}},
        {"context": "Mary went to the kitchen. John moved to the garden.", "answers": {"text": ["kitchen"]}},
        {"context": "Sandra took the milk there. Sandra went to the office.", "answers": {"text": ["office"]}},
        {"context": "Daniel went back to the hallway. Daniel got the apple.", "answers": {"text": ["hallway"]}},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert finishing.last_place_exact_match(path) == 75.0


def test_data_preparation_writes_what_train_py_reads(prepared):
    files = prepare.prepare_babi(prepared / "data", limit=5)
    splits = ("train", "validation", "test")
    assert set(files) == {f"{split}_{task}" for split in splits for task in prepare.BABI_TASKS}
    for task in prepare.BABI_TASKS:  # one model per task: each task's own files
        train, validation, test = (
            [json.loads(line) for line in files[f"{split}_{task}"].read_text().splitlines()]
            for split in splits
        )
        # Validation is the last training stories of the task, never renamed; train is the others and their copies.
        assert {row["id"].split("-")[1] for row in validation} == {"validation"}
        assert {row["context"] for row in validation}.isdisjoint(row["context"] for row in train)
        originals = [row for row in train if "-train-" in row["id"]]
        assert len(train) == len(originals) * (1 + prepare.BABI_RENAMED_COPIES) and originals
        assert {row["task"] for row in train + validation + test} == {task}
        assert {row["id"].split("-")[1] for row in test} == {"test"}
    squad = prepare.split_squad_by_article(prepared / "data", limit=1)
    held_out = json.loads(squad["heldout"].read_text())
    full = json.loads((FIXTURES / "squad" / "dev-v1.1.json").read_text())
    assert held_out["data"][0]["title"] == full["data"][prepare.SQUAD_TRAIN_ARTICLES]["title"]
    mt = prepare.prepare_multi30k(prepared / "data", limit=3)
    assert json.loads(mt["test2016"].read_text().splitlines()[0]) == {
        "en": "A man in an orange hat starring at something.",
        "de": "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    }
    tldr = prepare.prepare_scitldr(prepared / "data", limit=2)
    row = json.loads(tldr["test"].read_text().splitlines()[0])
    assert isinstance(row["source"], list) and len(row["target"]) >= 2
    assert set(tldr) == {"train", "dev", "test"}  # dev chooses, test only reports


def test_prepared_files_are_replaced_whole_so_a_run_reading_them_meanwhile_never_sees_half(tmp_path, monkeypatch):
    path = prepare._write_jsonl([{"row": 1}], tmp_path / "rows.jsonl")
    with path.open() as reader:  # a run that opened the file before another run prepares the data again
        prepare._write_jsonl([{"row": 2}, {"row": 3}], path)
        assert reader.read() == '{"row": 1}\n'  # still the old file, whole
    assert path.read_text() == '{"row": 2}\n{"row": 3}\n'
    monkeypatch.setattr(prepare.os, "replace", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        prepare._write_jsonl([{"row": 4}], path)
    assert path.read_text() == '{"row": 2}\n{"row": 3}\n'  # a failed write leaves the last whole file
    assert [file.name for file in tmp_path.iterdir()] == ["rows.jsonl"]  # and no partial one


def test_time_budget_schedules_the_rate_over_time():
    args = TinyLMTrainingArguments(
        output_dir="unused", warmup_steps=0.1, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1}, max_train_seconds=10,
    )  # fmt: skip
    budget = TimeBudgetCallback(10)
    scales = []
    for elapsed in (0.5, 1.0, 5.5, 10.0):
        budget.elapsed = elapsed
        scales.append(budget.rate_scale(args, step=100))
    assert scales[0] == pytest.approx(0.5) and scales[1] == pytest.approx(1.0)
    assert scales[2] == pytest.approx(0.55) and scales[3] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name",
    ["lm-lstm-shakespeare", "qa-attention-babi-qa2", "qa-lstm-squad", "sum-attention-scitldr", "mt-lstm-multi30k"],
)
def test_recipe_runs_train_and_finish(prepared, name):
    """Each recipe's train.py arguments on tiny slices of its data, then its evaluation, examples and card."""
    data = finishing.RECIPES[name].data
    prepare.prepare(data, limit=6)
    flags = [*_fixture_flags(name, prepared), *TINY]
    if "max_train_seconds" in yaml.safe_load(recipe.config_path(name).read_text()):
        flags += ["--max_train_seconds", "30"]
    if name == "lm-lstm-shakespeare":  # evaluations during training: the curve of the quality-vs-CPU-time chart
        flags += ["--eval_strategy", "steps", "--eval_steps", "1"]
    if data == "babi":  # another seed beside it, as `run NAME --seeds 2` trains it: mean ± std in the card
        seed_flags = [*flags, "--seed", "1338", "--output_dir", str(prepared / f"{name}-seed1338")]
        recipe.train(name, seed_flags, in_process=True)
        other = recipe.finish(name, seed_flags, copy_card=False)
    recipe.train(name, flags, in_process=True)
    results = recipe.finish(name, flags, copy_card=False)
    assert results and all(isinstance(value, float) for value in results.values())
    card = validate_model_card(prepared / name)
    text = card.text
    assert f"python benchmarks/reference_models.py run {name}" in text and "python train.py" in text
    assert "Real outputs of this model" in text and "```text" in text
    assert finishing.LICENCES[data][1][:40] in text
    curve = json.loads((prepared / name / "validation_curve.json").read_text())
    if name == "lm-lstm-shakespeare":  # stopped at --max_steps 2: the steps share the whole training CPU time
        state = json.loads((prepared / name / "trainer_state.json").read_text())
        losses = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
        total = json.loads((prepared / name / "train_results.json").read_text())["train_cpu_seconds"]
        assert [point["step"] for point in curve][:2] == [1, 2] and [p["eval_loss"] for p in curve] == losses
        assert [point["cpu_seconds"] for point in curve][:2] == [round(total / 2, 1), round(total, 1)]
    if data == "multi30k":
        assert "Non-commercial use only" in text and set(results) == {"eval_bleu", "eval_chrf"}
    if data == "scitldr":
        assert set(results) == {"eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum"}
    if finishing.RECIPES[name].decodings:  # chosen on validation, saved as what the pipeline generates with
        saved = json.loads((prepared / name / "generation_config.json").read_text())
        chosen = {**finishing.DECODING_DEFAULTS, **saved}
        assert any(
            all(chosen.get(key) == value for key, value in {**finishing.DECODING_DEFAULTS, **candidate}.items())
            for candidate in finishing.RECIPES[name].decodings
        )
        assert f"Decoding chosen on {finishing.RECIPES[name].selection_file} (" in text
    if data == "babi":
        assert set(results) == {"eval_loss", "eval_exact_match_qa2"}  # its own task's test questions
        assert "One model per task, this one qa2" in text and "Where is the" in text
        shortcut = finishing.last_place_exact_match(prepared / "data" / "babi_test_qa2.jsonl")
        assert f"scores {shortcut:.1f} exact match on this test set" in text
        seeds = json.loads((prepared / name / "seeds.json").read_text())
        assert seeds["seeds"] == [1337, 1338] and seeds["published_seed"] == 1337
        for metric, spread in seeds["metrics"].items():
            pair = [results[metric], other[metric]]
            assert spread["values"] == pair and spread["mean"] == pytest.approx(sum(pair) / 2)
            assert spread["std"] == pytest.approx(abs(pair[0] - pair[1]) / 2**0.5)
        mean = seeds["metrics"]["eval_exact_match_qa2"]["mean"]
        assert "Over 2 seeds (1337, 1338;" in text and f"exact_match_qa2 **{mean:.2f} ± " in text
    else:
        assert not (prepared / name / "seeds.json").exists()


def test_other_seeds_go_beside_the_published_run_and_the_report_shows_their_spread(tmp_path):
    assert recipe.other_seed_flags("qa-lstm-babi-qa1", 3) == [
        ["--seed", "1338", "--output_dir", "outputs/reference/qa-lstm-babi-qa1-seed1338"],
        ["--seed", "1339", "--output_dir", "outputs/reference/qa-lstm-babi-qa1-seed1339"],
    ]
    assert recipe.other_seed_flags("qa-lstm-babi-qa1", 1) == []
    import reference_report

    tasks = (("qa1", 90.0, 700), ("qa2", 50.0, 600), ("qa3", 40.0, 700))  # one model per task, one row per family
    for task, em, steps in tasks:
        card = tmp_path / f"qa-attention-babi-{task}"
        card.mkdir()
        (card / "eval_results.json").write_text(json.dumps({f"eval_exact_match_{task}": em, "eval_loss": em / 10}))
        (card / "reference_run.json").write_text(json.dumps({"optimizer_steps": steps}))
        (card / "README.md").write_text("| `time budget (CPU s of optimizer steps)` | 600.0 |\n")
    seeds = {"eval_exact_match_qa1": {"mean": 91.0, "std": 1.5}, "eval_loss": {"mean": 9.0, "std": 0.1}}
    (tmp_path / "qa-attention-babi-qa1" / "seeds.json").write_text(json.dumps({"metrics": seeds}))
    (tmp_path / "qa-lstm-babi-qa2").mkdir()  # a folder without results: neither a row nor a link
    page = reference_report.write_report(tmp_path).read_text()
    links = ", ".join(f"[{task}](qa-attention-babi-{task}/README.md)" for task, _, _ in tasks)
    assert f"| attention ({links}) | 91.00 ± 1.50 | 50.00 | 40.00 | – | 600 CPU s | 700 / 600 / 700 |" in page
    assert "qa-lstm-babi" not in page
    assert (tmp_path / "quality_by_task.png").stat().st_size > 0


def test_the_quality_chart_has_error_bars_only_where_seeds_give_a_spread_and_marks_the_squad_target():
    import reference_report

    chart = [
        ("squad", "attention", {"EM": (2.4, 0.4), "F1": (9.2, 0.2)}),  # 3 seeds
        ("squad", "lstm", {"EM": (1.9, None), "F1": (9.1, None)}),  # one seed: no spread to draw
    ]
    ax = reference_report._quality_figure(chart).axes[0]
    spreads = {}
    for bars in ax.containers:
        if not hasattr(bars, "errorbar"):  # the error bars' own container, reached through its bars below
            continue
        segments = bars.errorbar.lines[2][0].get_segments()
        spreads[bars.get_label()] = [
            round(segment[1][1] - segment[0][1], 6) if len(segment) else None for segment in segments
        ]  # a bar without a spread has an empty segment: nothing drawn
    assert spreads == {"attention": [0.8, 0.4], "lstm": [None, None]}
    targets = [line for line in ax.collections if line.get_label() == "target F1 (attention)"]
    assert len(targets) == 1 and targets[0].get_segments()[0][0][1] == 25


def test_the_report_charts_quality_against_cpu_time_from_the_cards_curves(tmp_path):
    import reference_report

    card = tmp_path / "qa-lstm-babi-qa1"  # bAbI's curve is not charted: no language model or translation
    card.mkdir()
    (card / "eval_results.json").write_text(json.dumps({"eval_exact_match_qa1": 50.0}))
    (card / "validation_curve.json").write_text(json.dumps([{"step": 1, "cpu_seconds": 1.0, "eval_loss": 1.0}]))
    page = reference_report.write_report(tmp_path).read_text()
    assert not (tmp_path / "quality_vs_cpu_time.png").exists() and "quality_vs_cpu_time" not in page
    card = tmp_path / "mt-lstm-multi30k"
    card.mkdir()
    (card / "eval_results.json").write_text(json.dumps({"eval_bleu": 7.0, "eval_chrf": 30.0}))
    curve = [{"step": 10, "cpu_seconds": 5.0, "eval_loss": 4.0}, {"step": 20, "cpu_seconds": 10.0, "eval_loss": 3.5}]
    (card / "validation_curve.json").write_text(json.dumps(curve))
    page = reference_report.write_report(tmp_path).read_text()
    assert (tmp_path / "quality_vs_cpu_time.png").stat().st_size > 0 and "(quality_vs_cpu_time.png)" in page


def test_the_finish_step_runs_on_one_thread_like_training(monkeypatch):
    """Two runs share the two cores: the finish step's evaluation and decoding (tens of minutes on SciTLDR) must not
    take a second thread from the run training beside it."""
    import torch

    threads, seen = torch.get_num_threads(), []
    monkeypatch.setattr(recipe, "finish", lambda name, flags: seen.append(torch.get_num_threads()))
    torch.set_num_threads(2)
    try:
        recipe.main(["finish", "sum-attention-scitldr"])
    finally:
        torch.set_num_threads(threads)
    assert seen == [1]


def test_every_recipe_has_one_config(monkeypatch, capsys):
    """The recipe table, what `list` shows and the config files are the same runs, one to one."""
    monkeypatch.chdir(ROOT)
    recipe.main(["list"])
    listed = [line.removesuffix(":") for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert listed == list(finishing.RECIPES)
    assert sorted(listed) == [path.stem for path in CONFIGS]
    assert all(run.data in finishing.LICENCES for run in finishing.RECIPES.values())


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_configs_parse_with_train_py_and_as_flags(path, monkeypatch):
    """Each config is train.py's arguments (its own parser reads it), writes into outputs/reference/NAME, and the flags
    `run NAME FLAGS` turns it into mean the same arguments."""
    monkeypatch.chdir(ROOT)
    from_file = finishing.parse_args(recipe.train_argv(path.stem))
    assert from_file[2].output_dir == f"outputs/reference/{path.stem}"
    flags = recipe.train_argv(path.stem, ["--seed", "1337"])
    assert flags[0] != str(path.relative_to(ROOT)) and finishing.parse_args(flags) == from_file


def test_both_families_of_a_task_get_the_same_cpu_budget():
    """Issue 14 compares the families at the same compute: every budgeted attention recipe's LSTM twin has its
    `max_train_seconds` (Shakespeare's attention run is nanoGPT's step count; the recurrent runs get its time)."""
    budget = {path.stem: yaml.safe_load(path.read_text()).get("max_train_seconds") for path in CONFIGS}
    twins = {name: name.replace("-attention-", "-lstm-") for name in budget if "-attention-" in name}
    budgeted = {name: twin for name, twin in twins.items() if budget[name]}
    assert "mt-attention-multi30k" in budgeted and len(budgeted) >= 4
    assert {name: budget[name] for name in budgeted} == {name: budget[twin] for name, twin in budgeted.items()}


COMMITTED_CARDS = sorted(path.parent for path in (ROOT / "model_cards").glob("*/README.md"))


def test_the_reference_model_cards_are_committed():
    assert COMMITTED_CARDS, "no reference model cards in model_cards/"


@pytest.mark.parametrize("folder", COMMITTED_CARDS, ids=[folder.name for folder in COMMITTED_CARDS])
def test_committed_reference_cards_are_valid(folder):
    card = validate_model_card(folder)  # metadata parses; model-index == eval_results.json
    assert (folder / "eval_results.json").is_file() and card.data.eval_results
    # The data are local copies of GitHub files (../shared/data/SOURCES.md): named in the text, not as Hub datasets.
    assert card.data.license and card.data.datasets is None
    assert all(r.dataset_name and r.dataset_type == "custom" for r in card.data.eval_results)
    assert "python benchmarks/reference_models.py run " + folder.name in card.text
