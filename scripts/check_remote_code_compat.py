"""Check which transformers releases run the code that hf_tinylm saves into every model folder (hf_tinylm/shipped.py).

It saves a folder of each model family for each task with this environment's hf_tinylm, then, for each release,
takes a virtual environment with that transformers (and this environment's torch, shared rather than reinstalled),
and there, in a fresh process where hf_tinylm cannot be imported, loads each folder with the Auto classes, compares
logits, generates (greedy with and without the cache, beam search, a left-padded batch) and runs each pipeline.
Every output is compared with the same program's output in this environment; the table goes to
docs/compatibility.md.

    python scripts/check_remote_code_compat.py 4.57.6 5.0.0 5.24.0
    python scripts/check_remote_code_compat.py --all      # the newest patch of every minor release since 4.57

Environments are kept in .venv/compat-envs/ and reused. `--all` takes about as many minutes as releases: run it in
the background. The test suite runs the oldest supported release and this environment's (tests/test_compat.py).
"""

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path

import torch
import transformers
from packaging.version import Version

from hf_tinylm import TinyAttentionConfig, TinyRNNConfig
from hf_tinylm.convert import export_llama
from hf_tinylm.task_formats import CONFIG_KEY, build_prompt, task_settings
from hf_tinylm.tinylm_compat import MIN_TRANSFORMERS_VERSION
from hf_tinylm.tokenization import make_tokenizer_config_portable, train_tokenizer

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "compatibility.md"
ENVIRONMENTS = Path(sys.prefix) / "compat-envs"
# Exact versions for releases whose own pins need older Hub libraries than this environment's (CI checks 4.57.6).
PINS = {"4.57.6": ["huggingface_hub==0.36.2", "tokenizers==0.22.2"]}
LOGITS_TOLERANCE = 1e-5
CONTEXT = "The tower stands in Paris. It was built in 1889 and is made of iron."
QUESTION = "Where is the tower?"
FAMILIES = {
    "attention": lambda **settings: TinyAttentionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=160, **settings
    ),
    "lstm": lambda **settings: TinyRNNConfig(cell="lstm", hidden_size=32, num_hidden_layers=2, **settings),
}
# The attention folders exported as native LlamaForCausalLM folders (hf_tinylm.convert.export_llama): loaded without
# trust_remote_code, their pipelines still shipped code. Extractive QA has no Llama form.
LLAMA_EXPORT = "llama export"
FOLDERS = {  # folder -> (task settings, Auto class)
    "translation": (task_settings("translation", src_lang="en", tgt_lang="de"), transformers.AutoModelForCausalLM),
    "summarization": (task_settings("summarization"), transformers.AutoModelForCausalLM),
    "question-answering": (task_settings("qa", mode="extractive"), transformers.AutoModelForQuestionAnswering),
    "text-generation": (task_settings("qa", mode="generative"), transformers.AutoModelForCausalLM),
}
CHECKS = (
    "load",
    "logits",
    "generate",
    "static cache",
    "beam search",
    "left-padded batch",
    "translation",
    "summarization",
    "question-answering",
    "text-generation",
    "wrong task",
)

# Runs in the environment under test, from a folder outside the repository, with hf_tinylm blocked.
PROGRAM = """
import importlib.abc, json, os, sys, warnings
warnings.simplefilter("ignore")

class NoHfTinylm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hf_tinylm":
            raise ModuleNotFoundError("hf_tinylm is blocked: the check simulates a machine without it")

sys.meta_path.insert(0, NoHfTinylm())
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForQuestionAnswering, AutoTokenizer, pipeline

root, prompt, context, native = sys.argv[1:5]
remote_code = native != "native"  # a native export must load without trusting any code
results = {"version": transformers.__version__}

def check(name, run):
    try:
        results[name] = run()
    except Exception as error:  # a failure is a result too
        results[name] = "error: " + f"{type(error).__name__}: {error}".splitlines()[0][:200]

def lm(folder="text-generation"):
    model = AutoModelForCausalLM.from_pretrained(f"{root}/{folder}", trust_remote_code=remote_code)
    return model, AutoTokenizer.from_pretrained(f"{root}/{folder}", trust_remote_code=remote_code)

def load():
    names = [
        type(AutoConfig.from_pretrained(f"{root}/translation", trust_remote_code=remote_code)).__name__,
        # 5.x's TokenizersBackend is the class 4.x calls PreTrainedTokenizerFast (5.x keeps that name as an alias)
        type(AutoTokenizer.from_pretrained(f"{root}/translation", trust_remote_code=remote_code)).__name__.replace(
            "TokenizersBackend", "PreTrainedTokenizerFast"),
        type(AutoModelForCausalLM.from_pretrained(f"{root}/translation", trust_remote_code=remote_code)).__name__,
    ]
    if remote_code:
        names.append(type(AutoModelForQuestionAnswering.from_pretrained(f"{root}/question-answering", trust_remote_code=True)).__name__)
    return names

def logits():
    model, tokenizer = lm()
    with torch.no_grad():
        return model(**tokenizer(prompt, add_special_tokens=False, return_tensors="pt")).logits[0, -4:].tolist()

def greedy(model, inputs, **kwargs):
    return model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False, **kwargs).tolist()

def generate():
    model, tokenizer = lm()
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    cached, uncached = greedy(model, inputs, use_cache=True), greedy(model, inputs, use_cache=False)
    return cached if cached == uncached else {"cached": cached, "uncached": uncached}

def static_cache():
    model, tokenizer = lm()
    return greedy(model, tokenizer(prompt, add_special_tokens=False, return_tensors="pt"), cache_implementation="static")

def beam_search():
    model, tokenizer = lm()
    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    return greedy(model, inputs, num_beams=3, num_return_sequences=2)

def left_padded_batch():
    model, tokenizer = lm()
    tokenizer.padding_side = "left"
    prompts = [prompt, prompt[len(prompt) // 2:]]
    batch = greedy(model, tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt"))
    singles = [greedy(model, tokenizer(p, add_special_tokens=False, return_tensors="pt"))[0] for p in prompts]
    unpadded = [[t for t in row if t != tokenizer.pad_token_id] for row in batch]
    return batch if unpadded == [[t for t in row if t != tokenizer.pad_token_id] for row in singles] else "≠ one by one"

def run_pipeline(task, *args, **kwargs):
    if not os.path.isdir(f"{root}/{task}"):
        return lambda: "n/a"
    return lambda: pipeline(task, model=f"{root}/{task}", trust_remote_code=True, device="cpu")(*args, **kwargs)

def wrong_task():  # the refusal's sentence, which names the task the folder was trained for
    if not remote_code:
        return "n/a"  # a Llama export's config is transformers' own
    try:
        pipeline("summarization", model=f"{root}/translation", trust_remote_code=True, device="cpu")
        return "accepted"
    except ValueError as error:
        return str(error)

check("load", load)
check("logits", logits)
check("generate", generate)
check("static cache", static_cache)
check("beam search", beam_search)
check("left-padded batch", left_padded_batch)
check("translation", run_pipeline("translation", ["A man rides a red bike.", "The tower."], max_length=6, min_length=6))
check("summarization", run_pipeline("summarization", "The tower stands in Paris.", max_length=6, min_length=6))
check("question-answering", run_pipeline("question-answering", question="Where is the tower?", context=context, top_k=2, max_seq_len=48))
check("text-generation", run_pipeline("text-generation", prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False, return_full_text=False))
check("wrong task", wrong_task)
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
            make_tokenizer_config_portable(folder)
            if family == "attention" and auto_class is transformers.AutoModelForCausalLM:
                export_llama(folder, root / LLAMA_EXPORT / name)


def run_checks(python: str, root: Path, workdir: Path) -> dict:
    """{family: {check: result}} from running PROGRAM with `python`."""
    prompt = build_prompt("qa", CONTEXT, question=QUESTION)
    results = {}
    for family in (*FAMILIES, LLAMA_EXPORT):
        native = "native" if family == LLAMA_EXPORT else "remote code"
        completed = subprocess.run(
            [python, "-c", PROGRAM, str(root / family), prompt, CONTEXT, native],
            cwd=workdir,
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                "HF_HUB_OFFLINE": "1",
                "HF_HOME": str(workdir / "hf_home"),
            },
            capture_output=True,
            text=True,
        )
        if completed.returncode:
            error = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            results[family] = {name: f"error: {error[:200]}" for name in CHECKS}
        else:
            results[family] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def latest_releases(oldest: str = MIN_TRANSFORMERS_VERSION) -> list[str]:
    """The newest patch of every transformers minor release from `oldest` on, as the package index lists them."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "transformers"], capture_output=True, text=True, check=True
    ).stdout
    available = [Version(v.strip()) for v in listing.split("Available versions:")[1].splitlines()[0].split(",")]
    newest = {}
    for release in sorted(v for v in available if not v.is_prerelease and v >= Version(oldest)):
        newest[(release.major, release.minor)] = release
    return [str(release) for release in newest.values()]


def make_environment(version: str) -> str:
    """A virtual environment with transformers `version` that sees this environment's other packages (torch
    included) behind its own; kept in ENVIRONMENTS and reused. Returns its python."""
    environment = ENVIRONMENTS / version
    python = environment / "bin" / "python"
    stamp = environment / ".installed"
    if stamp.exists():
        return str(python)
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    own_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A .pth line puts this environment's packages after the new environment's own: torch is shared, not reinstalled.
    Path(own_packages, "zz_hf_tinylm_shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pins = [f"transformers=={version}", *PINS.get(version, [])]
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins], check=True)
    stamp.write_text(" ".join(pins))
    return str(python)


def _close(result, reference) -> bool:
    """Equal, with floats within LOGITS_TOLERANCE (logits computed by different releases' code)."""
    if isinstance(result, float) and isinstance(reference, float):
        return abs(result - reference) <= LOGITS_TOLERANCE
    if isinstance(result, list) and isinstance(reference, list):
        return len(result) == len(reference) and all(_close(a, b) for a, b in zip(result, reference))
    if isinstance(result, dict) and isinstance(reference, dict):
        return result.keys() == reference.keys() and all(_close(result[k], reference[k]) for k in result)
    return result == reference


def verdict(result, reference) -> str:
    if isinstance(result, str) and result.startswith("error: "):
        return result
    if result == reference == "n/a":
        return "n/a"
    return "✅" if _close(result, reference) else "≠"


def compare(results: dict, reference: dict) -> dict:
    return {
        family: {name: verdict(checks[name], reference[family][name]) for name in CHECKS}
        for family, checks in results.items()
    }


def write_report(rows: dict[str, dict], not_installable: list[str]) -> None:
    passing = [
        version
        for version, results in rows.items()
        if all(v in ("✅", "n/a") for r in results.values() for v in r.values())
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
        f"(`load`), compares the logits of a forward pass (within {LOGITS_TOLERANCE:g}), generates greedily with and",
        "without the cache (`generate`: both must agree), with a static cache (the recurrent model keeps its",
        "fixed-size state instead), with beam search and as a left-padded batch (which must equal the prompts run one",
        "by one), and runs each pipeline. `wrong task` asks the translation folder for the summarization pipeline:",
        "the refusal must be the same sentence, naming the task the folder was trained for (n/a for a Llama export,",
        "whose config is transformers' own). The `llama export` rows are the attention folders exported as native",
        "`LlamaForCausalLM` folders (`python -m hf_tinylm.convert --to llama`), loaded without `trust_remote_code`",
        "(their pipelines are still shipped code; extractive QA has no Llama form: n/a). ✅ means the output equals",
        f"transformers {transformers.__version__}'s; ≠ means it runs but computes something else; ❌ that it fails,",
        f"with the error noted below the table. Checked with torch {torch.__version__}; regenerate with `--all`.",
        "",
        f"**Oldest supported release: transformers {MIN_TRANSFORMERS_VERSION}** (declared in every model card and in",
        "`pyproject.toml`). On an older release a folder fails at load with one sentence naming that minimum.",
        f"Releases where every check passed: {', '.join(passing) or 'none'}.",
        *(
            [f"Not checked, because pip could not install them here: {', '.join(not_installable)}."]
            if not_installable
            else []
        ),
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
    parser.add_argument("versions", nargs="*", help="transformers releases to check, e.g. 4.57.6 5.0.0 5.24.0")
    parser.add_argument("--all", action="store_true", help="every minor release's newest patch since the minimum")
    args = parser.parse_args()
    versions = latest_releases() if args.all else args.versions
    if not versions:
        parser.error("name releases to check, or pass --all")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        save_folders(workdir / "folders")
        reference = run_checks(sys.executable, workdir / "folders", workdir)
        rows, not_installable = {}, []
        for version in versions:
            print(f"transformers {version} ...", flush=True)
            try:
                python = make_environment(version)
            except subprocess.CalledProcessError as error:  # e.g. a dependency the package index lacks
                print(f"transformers {version} could not be installed ({error}); not checked", flush=True)
                not_installable.append(version)
                continue
            rows[version] = compare(run_checks(python, workdir / "folders", workdir), reference)
            print(json.dumps(rows[version], ensure_ascii=False, indent=1), flush=True)
    write_report(rows, not_installable)
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
