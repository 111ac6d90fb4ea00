"""model_cards/README.md: the reference models of both families side by side, from the files in model_cards/*/.

Run through `python benchmarks/reference_models.py report`. Reads each card folder's eval_results.json,
reference_run.json (training time, steps, tokens), validation_curve.json and README.md (parameter count); writes the
comparison tables, the charts `model_cards/quality_by_task.png` and `quality_vs_cpu_time.png`, and the analysis in
reference_analysis.md.
"""

import json
import re
from pathlib import Path

# task key -> (title, card names by family, [(metric key, label, higher is better)]); a family's tuple of names is one
# model per task (bAbI), shown as one row.
TASKS = {
    "lm": (
        "Language modelling, Tiny Shakespeare (characters; validation = last 10%)",
        {"attention": "lm-attention-shakespeare", "lstm": "lm-lstm-shakespeare", "gru": "lm-gru-shakespeare"},
        [("eval_loss", "val loss (nats/char)", False), ("eval_perplexity", "val perplexity", False)],
    ),
    "babi": (
        "QA, bAbI qa1-qa3 (test, 1,000 questions each; one model per task)",
        {family: tuple(f"qa-{family}-babi-qa{n}" for n in (1, 2, 3)) for family in ("attention", "lstm")},
        [
            ("eval_exact_match_qa1", "EM qa1", True),
            ("eval_exact_match_qa2", "EM qa2", True),
            ("eval_exact_match_qa3", "EM qa3", True),
        ],
    ),
    "squad": (
        "Extractive QA, SQuAD v1.1 (dev split by article; 8 held-out articles)",
        {"attention": "qa-attention-squad", "lstm": "qa-lstm-squad"},
        [("eval_exact_match", "EM", True), ("eval_f1", "F1", True)],
    ),
    "scitldr": (
        "Summarization, SciTLDR-A (test, all references)",
        {"attention": "sum-attention-scitldr", "lstm": "sum-lstm-scitldr"},
        [("eval_rouge1", "ROUGE-1", True), ("eval_rouge2", "ROUGE-2", True), ("eval_rougeL", "ROUGE-L", True)],
    ),
    "multi30k": (
        "Translation, Multi30k en→de (test2016, detokenized sacreBLEU)",
        {"attention": "mt-attention-multi30k", "lstm": "mt-lstm-multi30k"},
        [("eval_bleu", "BLEU", True), ("eval_chrf", "chrF", True)],
    ),
}

ANALYSIS_PATH = Path(__file__).with_name("reference_analysis.md")


def _load_one(cards: Path, name: str) -> dict | None:
    folder = cards / name
    if not (folder / "eval_results.json").is_file():
        return None
    results = json.loads((folder / "eval_results.json").read_text())
    run = json.loads((folder / "reference_run.json").read_text()) if (folder / "reference_run.json").is_file() else {}
    card = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    match = re.search(r"\*\*([\d,]+) parameters\*\*", card)
    cpu = re.search(r"\| `training CPU time \(s\)` \| ([\d.]+) \|", card)
    budget = re.search(r"\| `time budget \(CPU s of optimizer steps\)` \| ([\d.]+) \|", card)
    seeds = json.loads((folder / "seeds.json").read_text()) if (folder / "seeds.json").is_file() else {}
    curve = folder / "validation_curve.json"
    cpu_s = float(cpu.group(1)) if cpu else None
    budget_s = float(budget.group(1)) if budget else None
    step_cpu = budget_s or cpu_s  # the budget is CPU time of optimizer steps
    return {
        "curve": json.loads(curve.read_text()) if curve.is_file() else [],
        **results,
        **run,
        "seeds": seeds.get("metrics", {}),
        "parameters": int(match.group(1).replace(",", "")) if match else None,
        "cpu_s": cpu_s,
        "budget_s": budget_s,
        "tokens_per_cpu_s": run["train_tokens"] / step_cpu if run.get("train_tokens") and step_cpu else None,
    }


def _load(cards: Path, names: str | tuple[str, ...]) -> dict | None:
    """A card's results; for one model per task, the cards' results together, and their steps, throughput and
    parameters as "qa1 / qa2 / qa3" values (of the cards there are, in order) where they differ."""
    if isinstance(names, str):
        return _load_one(cards, names)
    loaded = [result for name in names if (result := _load_one(cards, name)) is not None]
    if not loaded:
        return None
    merged = {"curve": [], "seeds": {}}
    for result in loaded:  # each card's own metrics (its task's), not those every card has (the validation loss)
        own = [key for key in result if key.startswith("eval_") and not all(key in other for other in loaded)]
        merged.update({key: result[key] for key in own})
        merged["seeds"].update({key: value for key, value in result["seeds"].items() if key in own})
    for key in ("parameters", "budget_s", "cpu_s", "optimizer_steps", "train_tokens_per_s", "tokens_per_cpu_s"):
        values = [result.get(key) for result in loaded]
        merged[key] = values[0] if len(set(values)) == 1 else " / ".join(_fmt(value, 0) for value in values)
    return merged


def _fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, str):  # already formatted: the per-task values of one model per task
        return value
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _mean_and_std(result: dict, metric: str) -> tuple[float | None, float | None]:
    """The mean and standard deviation over seeds where the card has them (seeds.json), else the one run's value."""
    spread = result["seeds"].get(metric)
    return (spread["mean"], spread["std"]) if spread else (result.get(metric), None)


def _with_spread(result: dict, metric: str) -> str:
    mean, std = _mean_and_std(result, metric)
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


def write_report(cards: Path) -> Path:
    rows, chart, loaded_by_task = [], [], {}
    for key, (title, names, metrics) in TASKS.items():
        loaded = {family: _load(cards, name) for family, name in names.items()}
        loaded = {family: result for family, result in loaded.items() if result is not None}
        if not loaded:
            continue
        loaded_by_task[key] = loaded
        rows.append(f"### {title}\n")
        header = ["family", *[label for _, label, _ in metrics], "parameters", "budget", "steps", "train tokens/s", "tokens/CPU s"]
        if key not in ("babi", "squad"):
            header.append("decode tokens/s")
        rows.append("| " + " | ".join(header) + " |")
        rows.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
        for family, result in loaded.items():
            budget = f"{_fmt(result.get('budget_s') or result.get('cpu_s'), 0)} CPU s"
            if key == "lm" and family == "attention":
                budget = f"2,000 steps ({_fmt(result.get('cpu_s'), 0)} CPU s)"
            if isinstance(names[family], str):
                cells = [f"[{family}]({names[family]}/README.md)"]
            else:  # one model per task
                shown = [name for name in names[family] if (cards / name / "eval_results.json").is_file()]
                links = ", ".join(f"[{name.rsplit('-', 1)[1]}]({name}/README.md)" for name in shown)
                cells = [f"{family} ({links})"]
            cells += [_with_spread(result, metric) for metric, _, _ in metrics]
            cells += [_fmt(result.get("parameters")), budget, _fmt(result.get("optimizer_steps"))]
            cells += [_fmt(result.get("train_tokens_per_s"), 0), _fmt(result.get("tokens_per_cpu_s"), 0)]
            if key not in ("babi", "squad"):
                cells.append(_fmt(result.get("decode_tokens_per_s"), 0))
            rows.append("| " + " | ".join(cells) + " |")
            chart.append((key, family, {label: _mean_and_std(result, metric) for metric, label, _ in metrics}))
        rows.append("")
    _plot(chart, cards / "quality_by_task.png")
    curves = {
        key: runs
        for key in CURVE_TASKS
        if (runs := {family: result for family, result in loaded_by_task.get(key, {}).items() if result["curve"]})
    }
    charted = _plot_curves(curves, cards / "quality_vs_cpu_time.png")
    curves_text = (
        "Quality against training compute: the validation loss of each evaluation during training against the CPU\n"
        "seconds of optimizer steps spent by then (a step's share of its run's total; the legend gives the run's\n"
        "headline number).\n\n![quality vs CPU time](quality_vs_cpu_time.png)\n\n"
        if charted
        else ""
    )
    analysis = ANALYSIS_PATH.read_text() if ANALYSIS_PATH.is_file() else ""
    text = f"""# Reference models: recurrent vs self-attention

Both hf_tinylm families trained from scratch on real data, on CPU, each pair at an equal budget (GitHub issue 6).
A value shown as "mean ± std" is over the seeds its card names, same recipe and budget (`run NAME --seeds 3`; the
published weights are the recipe's own seed's; error bars in the chart); a plain value is one seed's.
Every number below was measured by `python benchmarks/reference_models.py` (one command per model, given in each
card; `scripts/reference_models_all.sh` runs them all and rewrites this page). Budgets are **CPU seconds of
optimizer steps** (`train.py --max_train_seconds`, one torch thread per run), so runs sharing the machine do not
change how much each model trains; the learning-rate schedule (warmup, cosine) is spread over that budget.
"train tokens/s" is real (unpadded) tokens per wall-clock second of training on one thread of a shared 2-core
machine (other runs were using the machine too); "tokens/CPU s" divides by the CPU seconds of optimizer steps
instead (the budget; for the 2,000-step attention LM its whole training CPU time, evaluations included), which
sharing does not inflate. Compare the families within a table, not with other machines.

To reproduce one model, `python benchmarks/reference_models.py run NAME` runs its three steps:
`python scripts/prepare_reference_data.py DATA` (prepare), `python train.py configs/reference/NAME.yaml` (train),
`python benchmarks/reference_models.py finish NAME` (finish: the evaluations train.py does not do, the card).

![quality by task](quality_by_task.png)

{curves_text}## Results

{chr(10).join(rows)}
## Decoding speed and latency against context length

"decode tokens/s" above: greedy decoding of 32 new tokens at batch 1 on one thread, after the task prompt (LM:
"ROMEO:"; translation: the first test2016 sentence; summarization: the first test abstract, up to 256 tokens),
median of 5, measured by `python benchmarks/reference_models.py decode-speed NAME` when no other reference run
was training (other sessions' jobs may still have shared the machine).

Measured side by side in one process by `benchmarks/bench_rnn.py` (see [BENCHMARKS.md](../benchmarks/BENCHMARKS.md)):
LSTM and attention language models of about the same size, batch 1, ms per generated token with the cache.
The recurrent state is constant-size, so the RNN's cost per token stays flat while attention's grows with the
context (1.27x slower at 64 tokens of context, 2.47x at 4,096).

![decode latency](../benchmarks/decode_latency.png)

{analysis}"""
    path = cards / "README.md"
    path.write_text(text)
    return path


# The tasks whose validation loss is charted against CPU time: the headline metric the legend names, and its digits.
CURVE_TASKS = {"lm": ("eval_loss", "val loss", 2), "multi30k": ("eval_bleu", "test BLEU", 1)}
FAMILY_COLOURS = {"attention": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}


def _plot_curves(curves: dict, path: Path) -> bool:
    """Draws the chart when there is a curve to draw; says whether it did."""
    from matplotlib.figure import Figure

    if not curves:
        return False
    figure = Figure(figsize=(5 * len(curves), 3.6))
    axes = figure.subplots(1, len(curves), squeeze=False)[0]
    for ax, (key, runs) in zip(axes, curves.items()):
        metric, label, digits = CURVE_TASKS[key]
        for family, result in runs.items():
            points = result["curve"]
            mean, std = _mean_and_std(result, metric)
            headline = f"{label} {mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")
            ax.plot([p["cpu_seconds"] for p in points], [p["eval_loss"] for p in points], marker="o", markersize=3,
                    color=FAMILY_COLOURS.get(family), label=f"{family} ({headline})")  # fmt: skip
        ax.set_title(TASKS[key][0].split("(")[0].strip(), fontsize=9)
        ax.set_xlabel("CPU seconds of optimizer steps", fontsize=8)
        ax.set_ylabel("validation loss (nats per " + ("character)" if key == "lm" else "target token)"), fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


# The targets (GitHub issue 14) per task: {index of the metric in the panel: value}, and their legend entry.
TARGETS = {
    "babi": ({0: 99, 1: 90, 2: 80}, "target (attention)"),
    "squad": ({1: 25}, "target F1 (attention)"),
    "multi30k": ({0: 35}, "target, 1 CPU hour (35 BLEU)"),
}


def _plot(chart, path: Path) -> None:
    if chart:
        _quality_figure(chart).savefig(path, dpi=110)


def _quality_figure(chart):
    """One panel per task, a bar per family and metric; error bars only where several seeds give a spread, and the
    issue's targets as dashed lines."""
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(key for key, _, _ in chart))
    figure = Figure(figsize=(4 * len(tasks), 3.6))
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        entries = [(family, values) for key, family, values in chart if key == task]
        labels = [label for label in entries[0][1] if label != "val perplexity"]
        width = 0.8 / len(entries)
        for index, (family, values) in enumerate(entries):
            xs = [i + index * width for i in range(len(labels))]
            ys = [values[label][0] or 0 for label in labels]
            errors = [float("nan") if values[label][1] is None else values[label][1] for label in labels]
            bars = ax.bar(xs, ys, width, yerr=errors, capsize=3, label=family, color=FAMILY_COLOURS.get(family))
            ax.bar_label(bars, fmt="%.2f" if task == "lm" else "%.1f", fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, fontsize=8)
        ax.set_title(TASKS[task][0].split(",")[0] + ": " + TASKS[task][0].split(",")[1].split("(")[0].strip(),
                     fontsize=9)  # fmt: skip
        if task == "lm":
            ax.axhline(1.88, color="grey", linestyle="--", linewidth=1, label="nanoGPT (1.88)")
            ax.set_ylim(1.4, 1.95)
        targets, target_label = TARGETS.get(task, ({}, None))
        for number, (i, target) in enumerate(targets.items()):  # a dashed line over the metric's bars
            ax.hlines(target, i - width / 2, i + 0.8 - width / 2, color="grey", linestyle="--", linewidth=1,
                      label=target_label if number == 0 else None)  # fmt: skip
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score (LM: loss, lower is better; others: higher is better)", fontsize=8)
    figure.tight_layout()
    return figure
