"""Speed of TinyRNNForCausalLM: training against a bare torch LSTM, and decoding against the attention LM by context.

(a) Training tokens/s of TinyRNNForCausalLM(cell="lstm") next to the loop everyone writes by hand
    (`nn.Embedding` -> `nn.LSTM` -> tied `nn.Linear`, cross-entropy, AdamW) with the same shapes: what the
    transformers wrapping costs. (b) Per-token decoding latency with the cache after a prompt of 64 ... 4096 tokens,
    for the RNN LM and a TinyAttentionForCausalLM of similar size: the recurrent state costs the same at any length,
    the attention KV cache grows with it. Candidates take turns in this process (the order alternating from round to
    round), several repetitions, median.

    python benchmarks/bench_rnn.py                  # defaults sized for a shared 2-core CPU, about two minutes
    python benchmarks/bench_rnn.py --device cuda --batch_size 64 --seq_len 256 --contexts 64 256 1024 4096 16384
"""

import argparse
import copy
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from _common import alternating_median_seconds, training_step, write_section
from matplotlib.figure import Figure  # renders with Agg; no pyplot, no display needed
from torch import nn

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM, TinyRNNConfig, TinyRNNForCausalLM

CHART = Path(__file__).with_name("decode_latency.png")
SECTION = "## RNN"


class BareLSTMLanguageModel(nn.Module):
    """The hand-written baseline: embedding, a multi-layer nn.LSTM, an output layer tied to the embedding."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size, bias=False)
        self.decoder.weight = self.embedding.weight

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.lstm(self.embedding(ids))[0])
        # Shift the targets, not the logits: slicing the logits would copy them, a cost the comparison is not about.
        targets = nn.functional.pad(ids[:, 1:], (0, 1), value=-100)
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)


def decode(model, cache, tokens: torch.Tensor) -> None:
    for token in tokens:
        model(token, cache=cache, use_cache=True, logits_to_keep=1)


def fresh_decode_run(model, prefilled_cache, tokens: torch.Tensor) -> Callable[[], None]:
    """A decoding run with its own copy of the prefilled cache, copied now, before any clock starts."""
    return partial(decode, model, copy.deepcopy(prefilled_cache), tokens)


def per_token_decode_seconds(
    models: dict, context: int, steps: int, reps: int, vocab_size: int, device: str
) -> dict[str, float]:
    """Per model, the median time of one cached single-token forward after a `context`-token prompt.

    Each run decodes `steps` tokens from its own copy of the prefilled cache, made before the clock starts.
    """
    generator = torch.Generator().manual_seed(context)
    prompt = torch.randint(0, vocab_size, (1, context), generator=generator).to(device)
    tokens = torch.randint(0, vocab_size, (steps, 1, 1), generator=generator).to(device)
    with torch.no_grad():
        prefilled = {name: model(prompt, use_cache=True).cache for name, model in models.items()}
        prepare = {name: partial(fresh_decode_run, model, prefilled[name], tokens) for name, model in models.items()}
        seconds = alternating_median_seconds(prepare, reps, device)
    return {name: s / steps for name, s in seconds.items()}


def count_parameters(model: nn.Module, without_embedding: bool = False) -> int:
    total = sum(p.numel() for p in model.parameters())
    return total - model.get_input_embeddings().weight.numel() if without_embedding else total


def plot(contexts: list[int], latencies: dict[str, list[float]], title: str) -> None:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for label, values in latencies.items():
        axes.plot(contexts, [v * 1e3 for v in values], marker="o", label=label)
    axes.set_xscale("log", base=2)
    axes.set_xticks(contexts, [str(c) for c in contexts])
    axes.set_xlabel("context length (tokens already in the cache)")
    axes.set_ylabel("ms per generated token")
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(CHART, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--rnn_layers", type=int, default=3)
    parser.add_argument("--attention_layers", type=int, default=2, help="chosen to match the RNN's parameter count")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--decode_steps", type=int, default=32, help="tokens timed per repetition and context")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (0: torch's default). One keeps timings steady on a shared machine, where a multi-threaded "
        "op waits for whichever of its threads another job preempted.",
    )
    parser.add_argument("--no_write", action="store_true", help="print only; leave BENCHMARKS.md and the chart alone")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]  # other jobs on a shared machine slow both candidates; ratios hold up best
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    rnn = TinyRNNForCausalLM(
        TinyRNNConfig(
            vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.rnn_layers, cell="lstm"
        )
    ).to(args.device)
    bare = BareLSTMLanguageModel(args.vocab_size, args.hidden_size, args.rnn_layers).to(args.device)

    # (a) training throughput, same shapes, same optimizer
    batch = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), device=args.device)
    rnn.train()
    bare.train()
    ours_step = training_step(lambda: rnn(input_ids=batch, labels=batch).loss, rnn.parameters())
    bare_step = training_step(lambda: bare.loss(batch), bare.parameters())
    train = alternating_median_seconds(
        {"hf_tinylm": lambda: ours_step, "bare": lambda: bare_step}, args.reps, args.device
    )
    train_tps = {name: batch.numel() / seconds for name, seconds in train.items()}

    # (b) decoding latency by context length
    attention = TinyAttentionForCausalLM(
        TinyAttentionConfig(
            vocab_size=args.vocab_size,
            hidden_size=args.hidden_size,
            num_hidden_layers=args.attention_layers,
            num_attention_heads=args.heads,
            max_position_embeddings=max(args.contexts) + args.decode_steps,
        )
    ).to(args.device)
    decoders = {"TinyRNN (LSTM)": rnn.eval(), "TinyAttention": attention.eval()}
    latencies = {name: [] for name in decoders}
    for context in args.contexts:
        seconds = per_token_decode_seconds(
            decoders, context, args.decode_steps, args.reps, args.vocab_size, args.device
        )
        for name in decoders:
            latencies[name].append(seconds[name])

    rnn_params, attention_params = (count_parameters(m, without_embedding=True) for m in decoders.values())
    setup = (
        f"Setup: LSTM LM {args.rnn_layers} layers and attention LM {args.attention_layers} layers ({args.heads} heads), "
        f"both d={args.hidden_size}, vocab {args.vocab_size}, tied embeddings; {rnn_params / 1e6:.2f}M vs "
        f"{attention_params / 1e6:.2f}M parameters besides the embedding. {args.device}, float32, median of "
        f"{args.reps}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), load average {load_at_start:.1f} at start."
    )
    lines = [
        setup,
        "",
        f"Training (batch {args.batch_size}x{args.seq_len}, forward + backward + AdamW step):",
        "",
        "| measure | TinyRNNForCausalLM | bare Embedding+LSTM+Linear | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| training tokens/s | {train_tps['hf_tinylm']:,.0f} | {train_tps['bare']:,.0f} | "
        f"{train_tps['hf_tinylm'] / train_tps['bare']:.2f}x |",
        "",
        f"Decoding with the cache, batch 1, ms per token (median of {args.reps} runs of {args.decode_steps} tokens "
        "after the prompt):",
        "",
        "| context | " + " | ".join(decoders) + " | attention / RNN |",
        "| ---: | " + " | ".join("---:" for _ in decoders) + " | ---: |",
    ]
    for i, context in enumerate(args.contexts):
        rnn_ms, attention_ms = (latencies[name][i] * 1e3 for name in decoders)
        lines.append(f"| {context} | {rnn_ms:.2f} | {attention_ms:.2f} | {attention_ms / rnn_ms:.2f}x |")
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        plot(args.contexts, latencies, f"Per-token decode latency, {args.device}, d={args.hidden_size}")
        write_section(
            SECTION,
            f"Command: `python benchmarks/bench_rnn.py`\n\n{report}\n\n![decode latency]({CHART.name})\n",
        )


if __name__ == "__main__":
    main()
