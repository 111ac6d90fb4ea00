"""Training and decoding speed of TinyAttentionForCausalLM against transformers' LlamaForCausalLM.

Both models get identical shapes and identical weights (through `hf_tinylm.convert`), run in this process on the
same inputs, alternating, several repetitions; the median of each is reported and the ratio is what matters.
Training throughput is also expressed as achieved GFLOP/s next to a plain `torch.matmul` of similar size, the
practical ceiling of this machine.

    python benchmarks/bench_attention.py            # defaults sized for 2 CPU cores (one thread), about two minutes
    python benchmarks/bench_attention.py --device cuda --dtype bfloat16 --batch_size 32 --seq_len 1024
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM
from hf_tinylm.convert import tiny_attention_to_llama

RESULTS = Path(__file__).with_name("BENCHMARKS.md")
SECTION = "## Attention LM vs LlamaForCausalLM"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def train_step_fn(model, optimizer, batch):
    def step():
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def decode_fn(model, prompt, new_tokens):
    def decode():
        model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    return decode


def median_times(fns: dict, reps: int, device: str, warmup: int = 2) -> dict:
    """Run the candidates interleaved (a, b, a, b, ...) so drifting machine load hits both alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def training_flops_per_token(config: TinyAttentionConfig, seq_len: int) -> float:
    """6 x (matmul parameters) + attention score/value products, forward and backward (PaLM appendix B)."""
    d, layers = config.hidden_size, config.num_hidden_layers
    q_dim, kv_dim = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    per_layer = d * q_dim * 2 + d * kv_dim * 2 + 3 * d * config.intermediate_size
    matmul_params = layers * per_layer + d * config.vocab_size
    return 6 * matmul_params + 12 * layers * q_dim * seq_len / 2  # causal: half the score matrix


def matmul_gflops(tokens: int, d: int, dtype, device: str, reps: int) -> float:
    a = torch.randn(tokens, d, dtype=dtype, device=device)
    b = torch.randn(d, 4 * d, dtype=dtype, device=device)
    seconds = median_times({"mm": lambda: torch.matmul(a, b)}, reps, device)["mm"]
    return 2 * tokens * d * 4 * d / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv_heads", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (0: torch's default). One keeps timings steady on a shared machine.",
    )
    parser.add_argument("--no_write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    torch.manual_seed(0)
    config = TinyAttentionConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.seq_len, 64 + args.new_tokens),
    )
    ours = TinyAttentionForCausalLM(config).to(args.device, dtype)
    llama: LlamaForCausalLM = tiny_attention_to_llama(ours).to(args.device, dtype)
    models = {"hf_tinylm": ours, "llama": llama}
    params = sum(p.numel() for p in ours.parameters())

    batch = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), device=args.device)
    for model in models.values():
        model.train()
    train = median_times(
        {name: train_step_fn(m, torch.optim.AdamW(m.parameters(), lr=1e-4), batch) for name, m in models.items()},
        args.reps,
        args.device,
    )
    train_tps = {name: batch.numel() / t for name, t in train.items()}

    prompt = torch.randint(0, args.vocab_size, (1, 64), device=args.device)
    for model in models.values():
        model.eval()
    with torch.no_grad():
        decode = median_times({n: decode_fn(m, prompt, args.new_tokens) for n, m in models.items()}, args.reps, args.device)
    decode_tps = {name: args.new_tokens / t for name, t in decode.items()}

    achieved = train_tps["hf_tinylm"] * training_flops_per_token(config, args.seq_len) / 1e9
    ceiling = matmul_gflops(args.batch_size * args.seq_len, args.hidden_size, dtype, args.device, args.reps)

    rows = [
        ("training tokens/s", train_tps["hf_tinylm"], train_tps["llama"]),
        ("greedy decode tokens/s (batch 1)", decode_tps["hf_tinylm"], decode_tps["llama"]),
    ]
    table = [
        f"Setup: {params / 1e6:.2f}M parameters ({args.layers} layers, d={args.hidden_size}, {args.heads} heads, "
        f"{args.kv_heads} kv heads, vocab {args.vocab_size}), {args.device}, {args.dtype}, "
        f"train batch {args.batch_size}x{args.seq_len}, decode 64-token prompt + {args.new_tokens} tokens; "
        f"median of {args.reps}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| measure | hf_tinylm | LlamaForCausalLM | ratio |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |" for name, a, b in rows),
        "",
        f"Training compute achieved: {achieved:.1f} GFLOP/s, against {ceiling:.1f} GFLOP/s for a plain "
        f"`torch.matmul` ({args.batch_size * args.seq_len}x{args.hidden_size} @ {args.hidden_size}x"
        f"{4 * args.hidden_size}) in the same run: {achieved / ceiling:.0%} of it.",
    ]
    report = "\n".join(table)
    print(report)
    if not args.no_write:
        write_section(SECTION, f"Command: `python benchmarks/bench_attention.py`\n\n{report}\n")


def write_section(title: str, body: str) -> None:
    """Replace (or append) one `## ` section of BENCHMARKS.md, leaving the others as they are."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\nRatios measured side by side in one process.\n"
    sections = text.split("\n## ")
    head, rest = sections[0], [f"## {s}" for s in sections[1:]]
    rest = [s for s in rest if not s.startswith(title)] + [f"{title}\n\n{body}"]
    RESULTS.write_text("\n".join([head.rstrip() + "\n", *(s.rstrip() + "\n" for s in rest)]))


if __name__ == "__main__":
    main()
