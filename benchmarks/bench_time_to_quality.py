"""Time to quality on CPU: how long `train.py` takes to reach nanoGPT's Tiny Shakespeare validation loss, against a
plain nanoGPT-style PyTorch loop trained on the same data, batch and context, back to back on one machine.

The loop is nanoGPT's `shakespeare_char` CPU setting written out here: a GPT-2 block (learned positions, LayerNorm,
GELU MLP, no bias, no dropout), 4 layers, 4 heads, width 128, context 64, batch 12, AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on matrices), 100 warm-up steps then cosine decay to 1e-4, gradient clipping at 1.0, evaluation on
20 random batches every 250 steps. `train.py` runs as a user would run it on the same text
(`configs/reference/lm-attention-shakespeare.yaml`'s settings): for 2,000 steps as the loop, then with the levers
this benchmark measures (see `CANDIDATES`).

Each run is its own process; its clock starts before the interpreter does, so imports, tokenizer training and data
preparation count. The loop's clock stops after its last evaluation (20 batches), train.py's at the end of its final
evaluation, which comes after saving the folder and reads the whole validation split (about 3 s the loop's clock
does not hold); its sample, plot and card come after. Times to the target come from the evaluations during training,
so they are as coarse as each run's evaluation interval. The validation loss reported is that of the finished model
on the whole validation split (the same split, characters and blocks of 64 for both); the loop's is measured after
its clock stops. Peak resident memory comes from the operating system (`wait4`), resident memory at each evaluation
from the process itself.

    python benchmarks/bench_time_to_quality.py            # the three runs, table and chart into BENCHMARKS.md
    python benchmarks/bench_time_to_quality.py --steps 200 --no_write   # a quick look
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
TARGET_LOSS = 1.88  # nanoGPT's shakespeare_char CPU setting after 2,000 steps
CONTEXT, BATCH, WIDTH, LAYERS, HEADS = 64, 12, 128, 4, 4
LOOP_EVAL_INTERVAL, LOOP_EVAL_BATCHES = 250, 20

# train.py's settings for the Tiny Shakespeare run; the "levers" candidate adds what this benchmark found to pay.
TRAIN_PY_ARGS = [
    "--arch", "attention", "--task", "lm", "--tokenizer_type", "char", "--model_size", "small",
    "--validation_split_percentage", "10", "--block_size", str(CONTEXT),
    "--per_device_train_batch_size", str(BATCH), "--per_device_eval_batch_size", "64",
    "--lr_scheduler_type", "cosine_with_min_lr", "--lr_scheduler_kwargs", '{"min_lr_rate": 0.1}',
    "--weight_decay", "0.1", "--adam_beta2", "0.99", "--learning_rate", "1e-3", "--warmup_steps", "100",
    "--eval_steps", "250", "--logging_steps", "50", "--save_strategy", "no", "--seed", "1337",
    "--report_to", "none", "--disable_tqdm", "true",
]  # fmt: skip
SAMPLED_EVALUATIONS = ["--eval_samples_during_training", str(LOOP_EVAL_BATCHES * BATCH)]  # as many blocks as the loop
# A run set up to reach the target soon: a schedule as long as it needs, and frequent evaluations on a fixed sample.
QUICK_TO_TARGET = ["--max_steps", "700", "--learning_rate", "2e-3", "--eval_steps", "50", *SAMPLED_EVALUATIONS]
MUON = ["--max_steps", "600", "--learning_rate", "3e-3", "--hidden_optimizer", "muon", "--muon_learning_rate", "6e-3"]
# The runs share one torch.compile cache, empty at the start: the first compiled run pays the whole compilation.
CANDIDATES = {
    "nanoGPT-style loop": None,
    "train.py": [],
    "train.py, evaluations on a sample": SAMPLED_EVALUATIONS,
    "train.py, evaluations on a sample, compiled (cold cache)": [*SAMPLED_EVALUATIONS, "--torch_compile"],
    "train.py, 700 steps at 2e-3": QUICK_TO_TARGET,
    "train.py, 600 steps, Muon": [*QUICK_TO_TARGET, *MUON],
    "train.py, 700 steps at 2e-3, compiled (warm cache)": [*QUICK_TO_TARGET, "--torch_compile"],
    "train.py, 600 steps, Muon, compiled (warm cache)": [*QUICK_TO_TARGET, *MUON, "--torch_compile"],
}


# ---------------------------------------------------------------------------------------------------------------------
# The nanoGPT-style loop, run in its own process by `--run loop`.


def run_loop(steps: int, clock_start: float, out: Path) -> None:
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(1337)
    text = DATA.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    train, val = ids[: int(0.9 * len(ids))], ids[int(0.9 * len(ids)) :]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(WIDTH, bias=False), nn.LayerNorm(WIDTH, bias=False)
            self.qkv, self.attn_proj = nn.Linear(WIDTH, 3 * WIDTH, bias=False), nn.Linear(WIDTH, WIDTH, bias=False)
            self.fc, self.mlp_proj = nn.Linear(WIDTH, 4 * WIDTH, bias=False), nn.Linear(4 * WIDTH, WIDTH, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, HEADS, -1).transpose(1, 2) for z in self.qkv(self.ln_1(x)).split(WIDTH, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, WIDTH)
            x = x + self.attn_proj(y)
            return x + self.mlp_proj(F.gelu(self.fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self, vocab: int):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, WIDTH), nn.Embedding(CONTEXT, WIDTH)
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
            self.ln_f = nn.LayerNorm(WIDTH, bias=False)
            self.head = nn.Linear(WIDTH, vocab, bias=False)
            self.head.weight = self.wte.weight
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("proj.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def batch(split):
        starts = torch.randint(len(split) - CONTEXT, (BATCH,))
        x = torch.stack([split[s : s + CONTEXT] for s in starts])
        y = torch.stack([split[s + 1 : s + 1 + CONTEXT] for s in starts])
        return x, y

    model = GPT(len(chars))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99)
    )

    def rate(step):
        if step < 100:
            return 1e-3 * (step + 1) / 100
        ratio = (step - 100) / max(1, steps - 100)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * min(ratio, 1.0))) * (1e-3 - 1e-4)

    events = []
    for step in range(steps + 1):
        if step % LOOP_EVAL_INTERVAL == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                loss = sum(model(*batch(val)).item() for _ in range(LOOP_EVAL_BATCHES)) / LOOP_EVAL_BATCHES
            model.train()
            events.append(_event(clock_start, step, loss))
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        loss = model(*batch(train))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.time() - clock_start

    model.eval()
    blocks = val[: (len(val) - 1) // CONTEXT * CONTEXT + 1]
    with torch.no_grad():
        x, y = blocks[:-1].view(-1, CONTEXT), blocks[1:].view(-1, CONTEXT)
        full = sum(model(x[i : i + 64], y[i : i + 64]).item() * len(x[i : i + 64]) for i in range(0, len(x), 64))
    _write(out, events, seconds, full / len(x))


# ---------------------------------------------------------------------------------------------------------------------
# train.py, run in its own process by `--run train.py ARGS`, with a callback that clocks its evaluations.


def run_train_py(argv: list[str], clock_start: float, out: Path) -> None:
    from transformers import TrainerCallback

    sys.path.insert(0, str(ROOT))
    from hf_tinylm.arguments import parse_args
    from hf_tinylm.training import run

    events = []

    class Clock(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            events.append(_event(clock_start, state.global_step, metrics["eval_loss"]))

    metrics = run(*parse_args(argv), callbacks=[Clock()])
    # The last event is the final evaluation (the whole split), which ends the run the user waits for; the ones
    # before it are the evaluations during training.
    _write(out, events[:-1], events[-1][0], metrics["eval_loss"])


def _event(clock_start: float, step: int, loss: float) -> tuple:
    return round(time.time() - clock_start, 3), step, round(loss, 4), psutil.Process().memory_info().rss


def _write(out: Path, events: list, seconds: float, full_val_loss: float) -> None:
    out.write_text(json.dumps({"events": events, "seconds": seconds, "full_val_loss": full_val_loss}))


# ---------------------------------------------------------------------------------------------------------------------
# The comparison.


def measure(index: int, name: str, extra: list[str] | None, steps: int, threads: int, workdir: Path) -> dict:
    out = workdir / f"{index}.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "HF_DATASETS_CACHE": str(workdir / f"datasets_cache-{index}"),  # each run prepares its data itself
        "TORCHINDUCTOR_CACHE_DIR": str(workdir / "compile_cache"),
    }
    command = [sys.executable, __file__, "--clock_start", repr(time.time()), "--out", str(out)]
    if extra is None:
        command += ["--steps", str(steps), "--run", "loop"]
    else:
        output_dir = workdir / f"run-{index}"
        command += ["--run", "train.py", "--train_file", str(DATA), "--max_steps", str(steps)]
        command += ["--output_dir", str(output_dir), *TRAIN_PY_ARGS, *extra]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{name} failed: {' '.join(command)}")
    result = json.loads(out.read_text())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    reached = [seconds for seconds, _, loss, _ in result["events"] if loss <= TARGET_LOSS]
    result["seconds_to_target"] = reached[0] if reached else None
    print(f"{name}: {result['seconds']:.1f} s, validation loss {result['full_val_loss']:.3f}, "
          f"{TARGET_LOSS} reached at {result['seconds_to_target']} s", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no_write", action="store_true", help="print only; leave BENCHMARKS.md and the chart alone")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--clock_start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.run == "loop":
        return run_loop(args.steps, args.clock_start, args.out)
    if args.run == "train.py":
        return run_train_py(rest, args.clock_start, args.out)
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs ../shared/data beside the repository.")

    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        results = {
            name: measure(index, name, extra, args.steps, args.threads, Path(workdir))
            for index, (name, extra) in enumerate(CANDIDATES.items())
        }
    report(results, args, load_at_start)


def report(results: dict, args, load_at_start: float) -> None:
    import platform

    import torch

    loop = results["nanoGPT-style loop"]
    rows = []
    for name, result in results.items():
        reached = result["seconds_to_target"]
        versus = "" if reached is None else f"{reached / loop['seconds']:.2f}x"
        rows.append(
            f"| {name} | {max(event[1] for event in result['events']):,} | {result['seconds']:.1f} | {result['seconds'] / loop['seconds']:.2f}x "
            f"| {result['full_val_loss']:.3f} | {'not reached' if reached is None else f'{reached:.1f}'} "
            f"| {versus} | {result['peak_rss_mb']:.0f} "
            f"| {_growth_mb(result):+.0f} |"
        )
    body = "\n".join([
        "Command: `python benchmarks/bench_time_to_quality.py`",
        "",
        f"Setup: Tiny Shakespeare, characters, {LAYERS} layers, {HEADS} heads, width {WIDTH}, context {CONTEXT}, batch "
        f"{BATCH}, {args.steps} steps, no dropout; each run its own process on {args.threads} threads, back to back; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, load "
        f"average {load_at_start:.1f} at start and {os.getloadavg()[0]:.1f} at the end. The clock includes start-up "
        "(imports, tokenizer, data); validation loss is that of the finished model on the whole validation split.",
        "",
        f"| run | steps | whole run (s) | vs loop | validation loss | s to reach {TARGET_LOSS} | vs loop's whole run "
        "| peak RSS (MB) | RSS growth, second to last evaluation (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "![validation loss against wall time](time_to_quality.png)",
    ])  # fmt: skip
    print(body)
    if not args.no_write:
        from _common import write_section

        plot(results)
        write_section("## Time to quality (CPU)", body)


def _growth_mb(result: dict) -> float:
    rss = [event[3] for event in result["events"]]
    return (rss[-1] - rss[1 if len(rss) > 2 else 0]) / 2**20


def plot(results: dict) -> None:
    from matplotlib.figure import Figure  # renders with Agg; no pyplot, no display needed

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for name, result in results.items():
        seconds, _, losses, _ = zip(*result["events"])
        axes.plot(seconds, losses, marker=".", label=name)
    axes.axhline(TARGET_LOSS, color="grey", linestyle="--", linewidth=1, label=f"target ({TARGET_LOSS})")
    axes.set_xlabel("wall time since the process started (s)")
    axes.set_ylabel("validation loss (evaluations during training)")
    axes.set_ylim(1.5, 3.0)
    axes.set_title(f"Tiny Shakespeare, characters: {LAYERS} layers, width {WIDTH}, context {CONTEXT}, CPU", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(Path(__file__).with_name("time_to_quality.png"), dpi=120)


if __name__ == "__main__":
    main()
