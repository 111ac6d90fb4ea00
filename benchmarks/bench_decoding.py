"""Decoding speed a user gets: the attention LM under a static cache and `torch.compile`, the recurrent LM's decode
step, and the translation pipeline fed a list in batches instead of one sentence at a time.

(a) Batch-1 greedy `generate()` of the attention LM: the default (dynamic cache, eager) against
    `cache_implementation="static"` with `torch.compile` on the model's forward, after the compile warm-up, which is
    reported; both must give the same tokens. (b) The recurrent LM's cached single-token forward (LSTM), eager
    against compiled. (c) Multi30k's 1,000 test2016 sentences through `pipeline("translation")` one call per sentence
    against one call with `batch_size=32`, greedy; the outputs must be identical. The model for (c) is a folder
    passed with `--translation_model`, or else a small en->de model trained here first (about two minutes).

    python benchmarks/bench_decoding.py                 # all three, table into BENCHMARKS.md
    python benchmarks/bench_decoding.py --only pipeline --sentences 200 --no_write
"""

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import alternating_median_seconds, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_tinylm import (  # noqa: E402
    TinyAttentionConfig,
    TinyAttentionForCausalLM,
    TinyRNNConfig,
    TinyRNNForCausalLM,
)

SECTION = "## Decoding and batched pipelines"


def compiled_generation(args) -> list[str]:
    """(a) at train.py's default size and at the 5.3M-parameter size of bench_attention.py."""
    lines = []
    for hidden_size, layers, vocab_size in ((128, 4, 2048), (args.hidden_size, args.layers, args.vocab_size)):
        lines += [*compiled_generation_at(args, hidden_size, layers, vocab_size), ""]
    return lines[:-1]


def compiled_generation_at(args, hidden_size: int, layers: int, vocab_size: int) -> list[str]:
    """(a): ms per generated token, default against static cache + compile, and the compile warm-up."""
    torch.manual_seed(0)
    config = TinyAttentionConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=args.heads,
        num_key_value_heads=args.heads, max_position_embeddings=1024,
    )  # fmt: skip
    eager = TinyAttentionForCausalLM(config).eval()
    prompt = torch.randint(0, vocab_size, (1, args.prompt_tokens))
    greedy = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}

    compiled = copy.deepcopy(eager)
    compiled.forward = torch.compile(compiled.forward, dynamic=False)
    started = time.perf_counter()
    with torch.no_grad():
        compiled_tokens = compiled.generate(prompt, cache_implementation="static", **greedy)
    warm_up = time.perf_counter() - started
    with torch.no_grad():
        if not torch.equal(compiled_tokens, eager.generate(prompt, **greedy)):
            raise AssertionError("static cache + compile generated other tokens than the default path")

    def run(model, **kwargs):
        return lambda: lambda: model.generate(prompt, **greedy, **kwargs)

    with torch.no_grad():
        seconds = alternating_median_seconds(
            {
                "dynamic": run(eager),
                "static": run(eager, cache_implementation="static"),
                "static+compile": run(compiled, cache_implementation="static"),
            },
            args.reps,
            "cpu",
        )
    ms = {name: s / args.new_tokens * 1e3 for name, s in seconds.items()}
    params = sum(p.numel() for p in eager.parameters()) / 1e6
    return [
        f"**(a) Attention LM, batch-1 greedy `generate()`** ({params:.2f}M parameters: {layers} layers, width "
        f"{hidden_size}, vocab {vocab_size}; prompt {args.prompt_tokens} + {args.new_tokens} tokens, same "
        f"tokens checked; median of {args.reps}). Compile warm-up (first call): {warm_up:.1f} s.",
        "",
        "| path | ms per token | speed-up over the default |",
        "| --- | ---: | ---: |",
        f"| dynamic cache, eager (default) | {ms['dynamic']:.2f} | 1.00x |",
        f"| static cache, eager | {ms['static']:.2f} | {ms['dynamic'] / ms['static']:.2f}x |",
        f"| static cache + `torch.compile` | {ms['static+compile']:.2f} | {ms['dynamic'] / ms['static+compile']:.2f}x |",
    ]  # fmt: skip


def recurrent_decode_step(args) -> list[str]:
    """(b): ms per cached single-token forward of the LSTM LM, eager against compiled."""
    torch.manual_seed(0)
    config = TinyRNNConfig(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.rnn_layers, cell="lstm"
    )
    model = TinyRNNForCausalLM(config).eval()
    prompt = torch.randint(0, args.vocab_size, (1, args.prompt_tokens))
    tokens = torch.randint(0, args.vocab_size, (args.new_tokens, 1, 1))

    def decoding(forward):
        def prepare():
            with torch.no_grad():
                cache = model(prompt, use_cache=True).cache

            def decode():
                with torch.no_grad():
                    for token in tokens:
                        forward(token, cache=cache, use_cache=True, logits_to_keep=1)

            return decode

        return prepare

    compiled = torch.compile(model.forward, dynamic=False)
    started = time.perf_counter()
    decoding(compiled)()()
    warm_up = time.perf_counter() - started
    with torch.no_grad():
        cache_a, cache_b = model(prompt, use_cache=True).cache, model(prompt, use_cache=True).cache
        for token in tokens[:4]:
            a = model(token, cache=cache_a, use_cache=True).logits
            b = compiled(token, cache=cache_b, use_cache=True).logits
            if not torch.allclose(a, b, atol=1e-5):
                raise AssertionError("the compiled recurrent step computes other logits")
    seconds = alternating_median_seconds({"eager": decoding(model), "compiled": decoding(compiled)}, args.reps, "cpu")
    ms = {name: s / args.new_tokens * 1e3 for name, s in seconds.items()}
    return [
        f"**(b) LSTM LM, cached single-token forward** ({args.rnn_layers} layers, width {args.hidden_size}, vocab "
        f"{args.vocab_size}; same logits checked). Compile warm-up: {warm_up:.1f} s.",
        "",
        "| path | ms per token | speed-up |",
        "| --- | ---: | ---: |",
        f"| eager | {ms['eager']:.2f} | 1.00x |",
        f"| `torch.compile` | {ms['compiled']:.2f} | {ms['eager'] / ms['compiled']:.2f}x |",
    ]


def batched_pipeline(args) -> list[str]:
    """(c): sentences per second of the translation pipeline, one call per sentence against batches."""
    from transformers import pipeline

    from scripts.prepare_reference_data import prepare_multi30k

    with tempfile.TemporaryDirectory() as workdir:
        files = prepare_multi30k(Path(workdir) / "data")
        lines = files["test2016"].read_text(encoding="utf-8").splitlines()
        sentences = [json.loads(line)["en"] for line in lines][: args.sentences]
        folder = args.translation_model or train_translation_model(files, Path(workdir) / "model", args)
        translator = pipeline("translation", model=str(folder), trust_remote_code=True, device="cpu")
    started = time.perf_counter()
    singles = [translator(sentence)[0]["translation_text"] for sentence in sentences]
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    batched = [record["translation_text"] for record in translator(sentences, batch_size=args.batch_size)]
    in_batches = time.perf_counter() - started
    same = sum(a == b for a, b in zip(singles, batched))
    if same != len(sentences):
        print(f"batched outputs differ for {len(sentences) - same} sentences")
    return [
        f'**(c) `pipeline("translation")` on Multi30k test2016** ({len(sentences)} sentences, greedy, model: '
        f"{'the folder given' if args.translation_model else 'attention en->de trained here for the benchmark'}). "
        f"Identical outputs: {same} of {len(sentences)}.",
        "",
        "| call | seconds | sentences/s | speed-up |",
        "| --- | ---: | ---: | ---: |",
        f"| one call per sentence | {one_by_one:.1f} | {len(sentences) / one_by_one:.1f} | 1.00x |",
        f"| one call, `batch_size={args.batch_size}` | {in_batches:.1f} | {len(sentences) / in_batches:.1f} "
        f"| {one_by_one / in_batches:.2f}x |",
    ]


def train_translation_model(files: dict, folder: Path, args) -> Path:
    from hf_tinylm import training

    training.main(
        [
            "--arch", "attention", "--task", "translation", "--source_lang", "en", "--target_lang", "de",
            "--train_file", str(files["train"]), "--validation_file", str(files["val"]), "--max_eval_samples", "50",
            "--vocab_size", "2000", "--max_source_length", "64", "--max_target_length", "64",
            "--per_device_train_batch_size", "32", "--learning_rate", "2e-3", "--max_steps", "100000",
            "--max_train_seconds", str(args.train_seconds), "--eval_strategy", "no", "--save_strategy", "no",
            "--report_to", "none", "--disable_tqdm", "true", "--output_dir", str(folder),
        ]
    )  # fmt: skip
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["compile", "rnn", "pipeline"], action="append")
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rnn_layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--translation_model", type=Path, help="a translation folder to time instead of training one")
    parser.add_argument("--train_seconds", type=float, default=120.0, help="CPU seconds to train the pipeline's model")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--no_write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = {"compile": compiled_generation, "rnn": recurrent_decode_step, "pipeline": batched_pipeline}
    load = os.getloadavg()[0]
    sections = [line for name in (args.only or parts) for line in [*parts[name](args), ""]]
    body = "\n".join(
        [
            "Command: `python benchmarks/bench_decoding.py`",
            "",
            f"Setup: CPU ({platform.machine()}, {os.cpu_count()} cores), {args.threads} thread(s), float32, torch "
            f"{torch.__version__}; load average {load:.1f} at start and {os.getloadavg()[0]:.1f} at the end.",
            "",
            *sections,
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
