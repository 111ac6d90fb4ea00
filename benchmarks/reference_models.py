"""Reference models of GitHub issue 6: both model families on real data, one command per model card.

    python benchmarks/reference_models.py list                          # the runs and their train.py commands
    python benchmarks/reference_models.py run NAME [NAME ...] [FLAGS]   # prepare the data, train, finish
    python benchmarks/reference_models.py run NAME --seeds 3            # and two more seeds: mean ± std
    python benchmarks/reference_models.py finish NAME [FLAGS]           # (re)do evaluation, examples and card
    python benchmarks/reference_models.py decode-speed NAME [NAME ...]  # greedy decoding tokens/s of trained runs
    python benchmarks/reference_models.py report                        # model_cards/README.md and its chart

A run is three steps: `python scripts/prepare_reference_data.py DATA` converts its data into
`outputs/reference/data/`, `python train.py configs/reference/NAME.yaml` trains into `outputs/reference/NAME`
(git-ignored), and the finish step (scripts/finish_reference_model.py) evaluates where train.py does not, runs the
task pipeline on a few real inputs and writes the card into `model_cards/NAME/`. FLAGS are train.py flags that
replace the config's values, e.g. `run NAME --max_train_seconds 20` for a quick run (give `finish` the same ones).

Runs pin torch to one thread (OMP_NUM_THREADS=1 for train.py; the finish step's evaluation and decoding too) so two
runs of a pair share two cores evenly; budgets are seconds of optimizer steps (`--max_train_seconds`, CPU seconds),
so both families of a task get the same compute time.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "reference"
sys.path.insert(0, str(ROOT / "scripts"))  # the prepare and finish steps

import finish_reference_model as finishing  # noqa: E402
import prepare_reference_data  # noqa: E402


def config_path(name: str) -> Path:
    return CONFIGS / f"{name}.yaml"


def train_argv(name: str, flags: list[str] = ()) -> list[str]:
    """train.py's arguments for a run: its config file, or, with `flags`, the config's arguments as flags followed by
    `flags` (the last value of a flag wins). Paths are relative to the repository root, where runs start."""
    import yaml

    path = config_path(name).relative_to(ROOT)
    if not flags:
        return [str(path)]
    argv = []
    for key, value in yaml.safe_load(config_path(name).read_text()).items():
        if isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        argv += [f"--{key}", str(value)]
    return [*argv, *flags]


def run_command(name: str, flags: list[str] = ()) -> str:
    """The command a card names, and the train.py command it runs."""
    run = f"python benchmarks/reference_models.py run {shlex.join([name, *flags])}"
    return f"{run}\n# which runs:\npython train.py {shlex.join(train_argv(name, flags))}"


def train(name: str, flags: list[str] = (), in_process: bool = False) -> None:
    """train.py for a run in a subprocess (one torch thread), or in this process (tests)."""
    argv = train_argv(name, flags)
    print(f"+ python train.py {shlex.join(argv)}", flush=True)
    if in_process:
        from hf_tinylm.training import main as train_main

        train_main(argv)
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, env=env, check=True)


def other_seed_flags(name: str, seeds: int) -> list[list[str]]:
    """train.py flags of the runs beside the published one, for `run NAME --seeds N`: the recipe's seed plus 1, 2, ...
    into `OUTPUT_DIR-seedS`, where the finish step of the published run finds them (`finishing.seed_folders`)."""
    import yaml

    config = yaml.safe_load(config_path(name).read_text())
    return [
        ["--seed", str(seed), "--output_dir", f"{config['output_dir']}-seed{seed}"]
        for seed in range(config["seed"] + 1, config["seed"] + seeds)
    ]


def finish(name: str, flags: list[str] = (), copy_card: bool = True) -> dict:
    """The finish step of a run trained with `flags` (scripts/finish_reference_model.py); returns the card's results."""
    return finishing.finish(name, train_argv(name, flags), run_command(name, flags), copy_card=copy_card)


def measure_decode_speed(name: str, new_tokens: int = 32, repeats: int = 5) -> float | None:
    """Greedy decoding tokens/s of a trained generation model, batch 1, on its first evaluation input (median of
    `repeats` after one warm-up); written into reference_run.json of the output folder and of model_cards/NAME."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = finishing.RECIPES[name].data
    if data in ("babi", "squad"):
        return None
    _, data_args, training_args = finishing.parse_args(train_argv(name))
    folder = Path(training_args.output_dir)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if data == "shakespeare":
        ids = tokenizer("ROMEO:", add_special_tokens=False)["input_ids"]
    else:
        test_file = finishing.RECIPES[name].test_file
        row = json.loads(Path(data_args.validation_file).with_name(test_file).read_text().splitlines()[0])
        source = row["en"] if data == "multi30k" else " ".join(row["source"])
        ids = finishing.run_task(model.config, data_args).prompt_ids({"source": [source]}, tokenizer)[0]
    inputs = torch.tensor([ids])
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            started = time.perf_counter()
            model.generate(
                inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, num_beams=1, no_repeat_ngram_size=0,
            )  # fmt: skip  (plain greedy, whatever decoding the folder's generation config chose)
            times.append(time.perf_counter() - started)
    speed = new_tokens / statistics.median(times[1:])
    for target in (folder / "reference_run.json", finishing.CARDS / name / "reference_run.json"):
        if target.is_file():
            record = json.loads(target.read_text())
            record.update(decode_tokens_per_s=speed, decode_prompt_tokens=len(ids), decode_new_tokens=new_tokens)
            target.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: {speed:.0f} tokens/s (prompt {len(ids)} tokens, {new_tokens} new, batch 1)")
    return speed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the runs and their train.py commands")
    names = {"nargs": "+", "choices": list(finishing.RECIPES), "metavar": "NAME"}
    run = sub.add_parser("run", help="prepare the data, train, evaluate and write the card")
    run.add_argument("names", **names)
    run.add_argument("--seeds", type=int, default=1, help="runs with seeds SEED, SEED+1, ...: mean ± std in the card")
    sub.add_parser("finish", help="evaluate, show examples and write the card").add_argument("names", **names)
    sub.add_parser("decode-speed", help="greedy decoding tokens/s of trained runs").add_argument("names", **names)
    sub.add_parser("report", help="write model_cards/README.md and its chart from model_cards/*/")
    args, flags = parser.parse_known_args(argv)
    if flags and args.command not in ("run", "finish"):
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    os.chdir(ROOT)  # the configs' paths are relative to the repository root
    if args.command in ("run", "finish", "decode-speed"):
        import torch

        torch.set_num_threads(1)  # a second thread here would take the core of the run beside it
    if args.command == "list":
        for name in finishing.RECIPES:
            print(f"{name}:\n  python train.py {shlex.join(train_argv(name))}")
    elif args.command == "report":
        from reference_report import write_report  # benchmarks/reference_report.py

        write_report(finishing.CARDS)
    elif args.command == "decode-speed":
        for name in args.names:
            measure_decode_speed(name)
    else:
        for name in args.names:
            if args.command == "run":
                prepare_reference_data.prepare(finishing.RECIPES[name].data)
                for seed_flags in [*other_seed_flags(name, args.seeds), []]:  # the published seed last: its card
                    started = time.time()
                    train(name, [*flags, *seed_flags])
                    print(f"{name}: trained in {time.time() - started:.0f} s", flush=True)
                    if seed_flags:
                        finish(name, [*flags, *seed_flags], copy_card=False)
            finish(name, flags)


if __name__ == "__main__":
    main()
