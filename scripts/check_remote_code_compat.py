"""Check which transformers 5.x releases run the code that hf_tinylm saves into every model folder.

Not part of CI: it installs packages. It saves a folder of each model family for each task with this environment's
hf_tinylm, then, for each release named on the command line, creates a virtual environment with that transformers
and this environment's torch, and there, in a fresh process where hf_tinylm is not installed, loads each folder with
the Auto classes, generates with and without the cache, and runs each pipeline. Every output is compared with the
same program's output in this environment; the table goes to docs/compatibility.md.

    python scripts/check_remote_code_compat.py 5.22.2 5.23.0 5.24.0

Slow (a virtual environment and a torch install per release): run it in the background.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import torch
import transformers

from hf_tinylm import TinyAttentionConfig, TinyRNNConfig
from hf_tinylm.hub import MIN_TRANSFORMERS_VERSION
from hf_tinylm.task_formats import CONFIG_KEY, build_prompt, task_settings
from hf_tinylm.tokenization import train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "compatibility.md"
CONTEXT = "The tower stands in Paris. It was built in 1889 and is made of iron."
QUESTION = "Where is the tower?"
FAMILIES = {
    "attention": lambda **settings: TinyAttentionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=160, **settings
    ),
    "lstm": lambda **settings: TinyRNNConfig(cell="lstm", hidden_size=32, num_hidden_layers=2, **settings),
}
FOLDERS = {  # folder -> (task settings, Auto class)
    "translation": (task_settings("translation", src_lang="en", tgt_lang="de"), transformers.AutoModelForCausalLM),
    "summarization": (task_settings("summarization"), transformers.AutoModelForCausalLM),
    "question-answering": (task_settings("qa", mode="extractive"), transformers.AutoModelForQuestionAnswering),
    "text-generation": (task_settings("qa", mode="generative"), transformers.AutoModelForCausalLM),
}
CHECKS = ("load", "generate", "translation", "summarization", "question-answering", "text-generation")

# Runs in the environment under test, from a folder outside the repository, so hf_tinylm cannot be imported.
PROGRAM = """
import json, sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForQuestionAnswering, AutoTokenizer, pipeline

root, prompt = sys.argv[1], sys.argv[2]
results = {}

def check(name, run):
    try:
        results[name] = run()
    except Exception as error:  # a failure is a result too
        results[name] = "error: " + f"{type(error).__name__}: {error}".splitlines()[0][:200]

def load():
    return [
        type(AutoConfig.from_pretrained(f"{root}/translation", trust_remote_code=True)).__name__,
        type(AutoTokenizer.from_pretrained(f"{root}/translation", trust_remote_code=True)).__name__,
        type(AutoModelForCausalLM.from_pretrained(f"{root}/translation", trust_remote_code=True)).__name__,
        type(AutoModelForQuestionAnswering.from_pretrained(f"{root}/question-answering", trust_remote_code=True)).__name__,
    ]

def generate():
    folder = f"{root}/text-generation"
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    inputs = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)(prompt, add_special_tokens=False, return_tensors="pt")
    outputs = [model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False, use_cache=use_cache) for use_cache in (True, False)]
    return [output[0].tolist() for output in outputs]

def run_pipeline(task, *args, **kwargs):
    return lambda: pipeline(task, model=f"{root}/{task}", trust_remote_code=True, device="cpu")(*args, **kwargs)

check("load", load)
check("generate", generate)
check("translation", run_pipeline("translation", ["A man rides a red bike.", "The tower."], max_length=6, min_length=6))
check("summarization", run_pipeline("summarization", "The tower stands in Paris.", max_length=6, min_length=6))
check("question-answering", run_pipeline("question-answering", question="Where is the tower?", context=sys.argv[3], top_k=2, max_seq_len=48))
check("text-generation", run_pipeline("text-generation", prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False, return_full_text=False))
print(json.dumps(results))
"""


def save_folders(root: Path) -> None:
    """One folder per family and task: random tiny models (the check is about code, not quality). Their weights are
    scaled up so outputs depend on the whole input, and they generate characters only (no byte or special tokens),
    so that generated texts differ wherever the computation does."""
    tokenizer = train_tokenizer([CONTEXT, QUESTION, "A man rides a red bike."], "char", vocab_size=300)
    vocab = tokenizer.get_vocab()
    byte_and_special_tokens = [
        i for token, i in vocab.items() if token.startswith("<0x") or token in tokenizer.all_special_tokens
    ]
    for family, make_config in FAMILIES.items():
        for name, (settings, auto_class) in FOLDERS.items():
            config = make_config(
                vocab_size=len(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                tie_word_embeddings=False,
                task_specific_params={CONFIG_KEY: settings},
            )
            torch.manual_seed(0)
            model = auto_class.from_config(config)
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.mul_(6.0)
            if model.can_generate():
                model.generation_config.suppress_tokens = byte_and_special_tokens
            folder = root / family / name
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)


def run_checks(python: str, root: Path, workdir: Path) -> dict:
    prompt = build_prompt("qa", CONTEXT, question=QUESTION)
    results = {}
    for family in FAMILIES:
        completed = subprocess.run(
            [python, "-c", PROGRAM, str(root / family), prompt, CONTEXT],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "HF_HOME": str(workdir / "hf_home")},
            capture_output=True,
            text=True,
        )
        if completed.returncode:
            error = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            results[family] = {name: f"error: {error[:200]}" for name in CHECKS}
        else:
            results[family] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def make_environment(version: str, workdir: Path) -> str:
    """A virtual environment with transformers `version` and the torch installed here; returns its python."""
    environment = workdir / f"venv-{version}"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = str(environment / "bin" / "python")
    pins = workdir / "torch-pin.txt"
    pins.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", str(pins), f"transformers=={version}", "torch"], check=True
    )
    return python


def verdict(result, reference) -> str:
    if isinstance(result, str) and result.startswith("error: "):
        return result
    return "✅" if result == reference else "≠"


def write_report(rows: dict[str, dict]) -> None:
    passing = [
        version for version, results in rows.items() if all(v == "✅" for r in results.values() for v in r.values())
    ]
    errors = list(
        dict.fromkeys(
            v for r in rows.values() for checks in r.values() for v in checks.values() if v.startswith("error: ")
        )
    )
    lines = [
        "# Remote-code compatibility",
        "",
        "A saved hf_tinylm folder carries its modeling, configuration and pipeline code, so it runs with whatever",
        "transformers the user has. `scripts/check_remote_code_compat.py` checks a release: in a fresh environment with",
        "that transformers and no hf_tinylm, it loads a folder of each family for each task with the Auto classes",
        "(`load`), generates with and without the cache (`generate`), and runs each pipeline. ✅ means the output is",
        f"identical to transformers {transformers.__version__}'s; ≠ means it runs but computes something else; ❌ that it",
        f"fails, with the error noted below the table. Checked with torch {torch.__version__}.",
        "",
        f"**Oldest supported release: transformers {MIN_TRANSFORMERS_VERSION}** (declared in every model card).",
        f"Releases where every check passed: {', '.join(passing) or 'none'}.",
        "",
        "| transformers | family | " + " | ".join(CHECKS) + " |",
        "| --- | --- |" + " --- |" * len(CHECKS),
    ]
    for version, results in rows.items():
        for family, checks in results.items():
            cells = [f"❌ ({errors.index(v) + 1})" if v in errors else v for v in (checks[name] for name in CHECKS)]
            lines.append(f"| {version} | {family} | " + " | ".join(cells) + " |")
    if errors:
        lines.append("")
        lines.extend(f"{number}. `` {error.removeprefix('error: ')} ``" for number, error in enumerate(errors, 1))
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="+", help="transformers releases to check, e.g. 5.22.2 5.23.0 5.24.0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        save_folders(workdir / "folders")
        reference = run_checks(sys.executable, workdir / "folders", workdir)
        rows = {}
        for version in args.versions:
            print(f"transformers {version} ...", flush=True)
            results = run_checks(make_environment(version, workdir), workdir / "folders", workdir)
            rows[version] = {
                family: {name: verdict(checks[name], reference[family][name]) for name in CHECKS}
                for family, checks in results.items()
            }
            print(json.dumps(rows[version], ensure_ascii=False, indent=1), flush=True)
    write_report(rows)
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
