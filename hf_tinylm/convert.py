"""Convert between transformers' `LlamaForCausalLM` and `TinyAttentionForCausalLM`, both ways, without loss.

The two architectures compute the same function (pre-norm RMSNorm blocks, RoPE, grouped-query attention, SwiGLU);
ours fuses q/k/v and gate/up into single projections, so a conversion is a config translation plus a state-dict copy
that concatenates or splits those weights. This lets users start from real Llama-shaped
checkpoints (e.g. SmolLM-class models) and lets our tests use Llama as the reference implementation.

`--to llama` writes a complete, Hub-ready export (`export_llama`): a plain `LlamaForCausalLM` folder that loads
without remote code, with the tokenizer, generation config, task settings, the task pipelines' code and a model card.
`--to gguf` writes one GGUF file for llama.cpp, Ollama and LM Studio (`export_gguf`, in `gguf_export.py`; needs
`pip install gguf`).

    python -m hf_tinylm.convert --to tiny_attention path/or/repo-of-a-llama  out_dir
    python -m hf_tinylm.convert --to llama          path/to/tiny-attention out_dir [--repo_id user/name]
    python -m hf_tinylm.convert --to gguf           path/to/tiny-attention-or-llama model.gguf [--outtype f16]
"""

import argparse
import os
import shutil
import uuid
from pathlib import Path

from huggingface_hub import snapshot_download
from transformers import AutoTokenizer, LlamaForCausalLM

from . import pipelines_tinylm
from .configuration_tiny_attention import TinyAttentionConfig
from .hub import validate_model_card, write_llama_export_card
from .llama_conversion import (
    check_convertible,
    check_same_logits,
    llama_to_tiny_attention,
    tiny_attention_to_llama,
)
from .modeling_tiny_attention import TinyAttentionForCausalLM
from .shipped import PIPELINE_MODULES
from .tokenization import make_tokenizer_config_portable


def _save_tokenizer(source, output_dir) -> bool:
    """Save the source's tokenizer into `output_dir`; False when the source has none."""
    try:
        AutoTokenizer.from_pretrained(source).save_pretrained(output_dir)
    except (OSError, ValueError):
        return False
    make_tokenizer_config_portable(output_dir)
    return True


# Files of a trained folder (train.py) that the model card refers to, copied into the export as they are.
CARRIED_FILES = ("eval_results.json", "loss_curve.png")


def pipeline_files() -> list[Path]:
    """The code the task pipelines run (`shipped.PIPELINE_MODULES`). None of it is model code."""
    return [Path(__file__).with_name(name) for name in PIPELINE_MODULES]


def export_llama(source, output_dir, *, repo_id: str | None = None) -> Path:
    """Export a `TinyAttentionForCausalLM` folder (or Hub id) as a Hub-ready `LlamaForCausalLM` folder.

    The folder holds the converted weights and a `LlamaConfig` (with the task settings, and no `auto_map`: the model
    loads without remote code), the tokenizer, the generation config, the pipeline code and `custom_pipelines`
    entry of the task the model was trained for (as `save_pretrained` of our models writes them), the files the
    model card refers to, and a model card: the source's, with the model and usage sections rewritten for the
    export. Extractive-QA and recurrent models, which Llama cannot express, are refused before anything is written.
    The export is written beside `output_dir` and renamed into place at the end, so a failure leaves no half-written
    folder; an existing `output_dir` must be empty. `repo_id` is the Hub id the card's examples load (default: the
    folder's name). Returns `output_dir`.
    """
    output_dir = Path(output_dir)
    source_dir = Path(source) if Path(source).is_dir() else Path(snapshot_download(str(source)))
    check_convertible(str(source_dir), TinyAttentionConfig.model_type)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise FileExistsError(f"{output_dir} exists and is not empty; remove it or choose a new folder.")
    original = TinyAttentionForCausalLM.from_pretrained(source_dir).eval()
    llama = tiny_attention_to_llama(original).eval()
    check_same_logits(original, llama)
    llama.config.custom_pipelines = pipelines_tinylm.custom_pipelines(original)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.with_name(f".{output_dir.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        llama.save_pretrained(staging)
        if not _save_tokenizer(source_dir, staging):
            print(f"No tokenizer found in {source}; the export has none, and its pipelines need one.")
        if llama.config.custom_pipelines:
            for path in pipeline_files():
                shutil.copyfile(path, staging / path.name)
        for name in CARRIED_FILES:
            if (source_dir / name).is_file():
                shutil.copyfile(source_dir / name, staging / name)
        write_llama_export_card(source_dir, staging, repo_id=repo_id or output_dir.resolve().name)
        validate_model_card(staging)
        if output_dir.exists():  # empty, as checked above
            output_dir.rmdir()
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def export_gguf(source, output_file, *, outtype: str = "f32") -> Path:
    """`hf_tinylm.gguf_export.export_gguf` (imported when called: it needs the optional `gguf` package)."""
    from .gguf_export import export_gguf

    return export_gguf(source, output_file, outtype=outtype)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", choices=["tiny_attention", "llama", "gguf"], required=True, help="target architecture")
    parser.add_argument("source", help="folder or Hub id of the model to convert")
    parser.add_argument(
        "output_dir", help="where to save the converted model (and the tokenizer, if any); --to gguf: the .gguf file"
    )
    parser.add_argument(
        "--repo_id", help="--to llama: the Hub id the model card's examples load (default: the folder name)"
    )
    parser.add_argument(
        "--outtype", choices=["f32", "f16"], default="f32", help="--to gguf: the matrices' type (norms stay f32)"
    )
    args = parser.parse_args(argv)
    if args.to == "gguf":
        export_gguf(args.source, args.output_dir, outtype=args.outtype)
        print(f"Exported {args.source} as GGUF (llama.cpp's llama architecture) to {args.output_dir}")
        return
    if args.to == "llama":
        export_llama(args.source, args.output_dir, repo_id=args.repo_id)
        print(f"Exported {args.source} as LlamaForCausalLM to {args.output_dir}")
        return
    check_convertible(args.source, "llama")
    llama_to_tiny_attention(LlamaForCausalLM.from_pretrained(args.source)).save_pretrained(args.output_dir)
    if not _save_tokenizer(args.source, args.output_dir):
        print(f"No tokenizer found in {args.source}; saved the weights and config only.")
    print(f"Saved TinyAttentionForCausalLM to {args.output_dir}")


if __name__ == "__main__":
    main()
