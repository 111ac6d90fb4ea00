"""Training and decoding speed of TinyAttentionForCausalLM against transformers' LlamaForCausalLM and bare PyTorch.

All three get identical shapes and identical weights (Llama through `hf_tinylm.convert`) and run in this process on
the same inputs, taking turns, several repetitions; the median of each is reported and the ratios are what matter.
The third candidate, `BareDecoder`, is the same computation written as plain PyTorch functions over the same
tensors (no modules, no `Cache`, no masks, no `generate()`): the same kernels with no framework around them, so it
shows how much of each measurement any implementation built on those kernels could still win. Training throughput
is also expressed as achieved GFLOP/s next to a plain `torch.matmul` of similar size, the practical ceiling.

    python benchmarks/bench_attention.py            # defaults sized for 2 CPU cores (one thread), about two minutes
    python benchmarks/bench_attention.py --device cuda --dtype bfloat16 --batch_size 32 --seq_len 1024
"""

import argparse
import copy
import os

import torch
from _common import alternating_median_seconds, training_step, write_section
from torch.nn import functional as F
from transformers import LlamaForCausalLM

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM
from hf_tinylm.llama_conversion import tiny_attention_to_llama

SECTION = "## Attention LM vs LlamaForCausalLM"


class BareDecoder:
    """TinyAttentionForCausalLM's forward pass as plain functions over its parameters (for the framework-free floor).

    Holds its own copy of the model, so training it leaves the original alone; reads the weights by name on each call.
    """

    def __init__(self, model: TinyAttentionForCausalLM):
        config = model.config
        if config.attention_bias or config.mlp_bias or config.hidden_dropout or not config.tie_word_embeddings:
            raise ValueError("BareDecoder covers the default architecture: no biases, no dropout, tied embeddings.")
        self.model = copy.deepcopy(model)
        self.weights = {**dict(self.model.named_parameters()), "lm_head.weight": self.model.lm_head.weight}
        self.config = config
        self.inv_freq = model.model.rotary_emb.inv_freq

    def norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.config.rms_norm_eps)
        return self.weights[name] * x32.to(x.dtype)

    def logits(self, ids: torch.Tensor, cache: list | None = None, last_only: bool = False) -> torch.Tensor:
        """Next-token logits at every position (or the last); keys/values persist in `cache`, a list filled on first use."""
        c, w = self.config, self.weights
        batch, length = ids.shape
        heads, kv_heads, head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        start = cache[0][0].shape[2] if cache else 0
        freqs = torch.arange(start, start + length, device=ids.device, dtype=torch.float)[:, None] * self.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        x = F.embedding(ids, w["model.embed_tokens.weight"])
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            qkv = F.linear(self.norm(x, p + "input_layernorm.weight"), w[p + "self_attn.qkv_proj.weight"])
            q, k, v = qkv.view(batch, length, -1, head_dim).transpose(1, 2).split([heads, kv_heads, kv_heads], 1)
            q, k = (t * cos + torch.cat((-t[..., head_dim // 2 :], t[..., : head_dim // 2]), -1) * sin for t in (q, k))
            if cache is not None:
                if len(cache) <= i:
                    cache.append((k, v))
                else:
                    k, v = (torch.cat(pair, dim=2) for pair in zip(cache[i], (k, v)))
                    cache[i] = (k, v)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=length > 1, enable_gqa=heads != kv_heads)
            x = x + F.linear(attended.transpose(1, 2).reshape(batch, length, -1), w[p + "self_attn.o_proj.weight"])
            gate, up = F.linear(
                self.norm(x, p + "post_attention_layernorm.weight"), w[p + "mlp.gate_up_proj.weight"]
            ).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, w[p + "mlp.down_proj.weight"])
        x = x[:, -1:] if last_only else x
        return F.linear(self.norm(x, "model.norm.weight"), w["lm_head.weight"])

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        targets = F.pad(ids[:, 1:], (0, 1), value=-100)  # shift the targets, not the logits (no logits copy)
        return F.cross_entropy(self.logits(ids).flatten(0, 1).float(), targets.flatten(), ignore_index=-100)

    @torch.no_grad()
    def greedy(self, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """What `generate(prompt, max_new_tokens=new_tokens, do_sample=False)` returns, without `generate()`."""
        cache, tokens = [], [prompt]
        next_token = self.logits(prompt, cache, last_only=True).argmax(-1)
        for _ in range(new_tokens - 1):
            tokens.append(next_token)
            next_token = self.logits(next_token, cache, last_only=True).argmax(-1)
        return torch.cat([*tokens, next_token], dim=1)


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
    seconds = alternating_median_seconds({"mm": lambda: lambda: torch.matmul(a, b)}, reps, device)["mm"]
    return 2 * tokens * d * 4 * d / seconds / 1e9


def check_same_function(
    ours: TinyAttentionForCausalLM, llama: LlamaForCausalLM, bare: BareDecoder, batch, prompt, new_tokens: int
):
    """Before timing anything: the three candidates compute the same losses and generate the same tokens."""
    with torch.no_grad():
        losses = [
            ours(input_ids=batch, labels=batch).loss,
            llama(input_ids=batch, labels=batch).loss,
            bare.loss(batch),
        ]
        generated = [
            *(
                m.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
                for m in (ours, llama)
            ),
            bare.greedy(prompt, new_tokens),
        ]
    exact = ours.dtype == torch.float32  # in half precision, fused and separate matmuls round differently
    tolerance = 1e-4 if exact else 5e-2
    for name, loss, tokens in zip(("LlamaForCausalLM", "BareDecoder"), losses[1:], generated[1:]):
        if abs(loss.item() - losses[0].item()) > tolerance:
            raise AssertionError(f"{name} loss {loss.item()} differs from hf_tinylm's {losses[0].item()}")
        if exact and not torch.equal(tokens, generated[0]):
            raise AssertionError(f"{name} generated different tokens from hf_tinylm")


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
    bare = BareDecoder(ours)
    params = sum(p.numel() for p in ours.parameters())
    batch = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), device=args.device)
    prompt = torch.randint(0, args.vocab_size, (1, 64), device=args.device)
    check_same_function(ours.eval(), llama.eval(), bare, batch, prompt, args.new_tokens)

    for model in (ours, llama, bare.model):
        model.train()
    steps = {
        "hf_tinylm": training_step(lambda: ours(input_ids=batch, labels=batch).loss, ours.parameters()),
        "llama": training_step(lambda: llama(input_ids=batch, labels=batch).loss, llama.parameters()),
        "bare": training_step(lambda: bare.loss(batch), bare.model.parameters()),
    }
    train = alternating_median_seconds(
        {name: lambda step=step: step for name, step in steps.items()}, args.reps, args.device
    )
    train_tps = {name: batch.numel() / seconds for name, seconds in train.items()}

    for model in (ours, llama, bare.model):
        model.eval()

    def generate(model):
        return lambda: model.generate(
            prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False
        )

    decoders = {
        "hf_tinylm": generate(ours),
        "llama": generate(llama),
        "bare": lambda: bare.greedy(prompt, args.new_tokens),
    }
    with torch.no_grad():
        decode = alternating_median_seconds(
            {name: lambda run=run: run for name, run in decoders.items()}, args.reps, args.device
        )
    decode_tps = {name: args.new_tokens / seconds for name, seconds in decode.items()}

    achieved = train_tps["hf_tinylm"] * training_flops_per_token(config, args.seq_len) / 1e9
    ceiling = matmul_gflops(args.batch_size * args.seq_len, args.hidden_size, dtype, args.device, args.reps)

    rows = [("training tokens/s", train_tps), ("greedy decode tokens/s (batch 1)", decode_tps)]
    table = [
        f"Setup: {params / 1e6:.2f}M parameters ({args.layers} layers, d={args.hidden_size}, {args.heads} heads, "
        f"{args.kv_heads} kv heads, vocab {args.vocab_size}), {args.device}, {args.dtype}, "
        f"train batch {args.batch_size}x{args.seq_len}, decode 64-token prompt + {args.new_tokens} tokens; "
        f"median of {args.reps}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| measure | hf_tinylm | LlamaForCausalLM | bare PyTorch | hf_tinylm / Llama | bare / Llama |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {tps['hf_tinylm']:,.0f} | {tps['llama']:,.0f} | {tps['bare']:,.0f} | "
            f"{tps['hf_tinylm'] / tps['llama']:.2f}x | {tps['bare'] / tps['llama']:.2f}x |"
            for name, tps in rows
        ),
        "",
        f"Training compute achieved by hf_tinylm: {achieved:.1f} GFLOP/s, against {ceiling:.1f} GFLOP/s for a plain "
        f"`torch.matmul` ({args.batch_size * args.seq_len}x{args.hidden_size} @ {args.hidden_size}x"
        f"{4 * args.hidden_size}) in the same run: {achieved / ceiling:.0%} of it.",
    ]
    report = "\n".join(table)
    print(report)
    if not args.no_write:
        write_section(SECTION, f"Command: `python benchmarks/bench_attention.py`\n\n{report}\n")


if __name__ == "__main__":
    main()
