"""Model cards and uploads for saved hf_tinylm folders.

`write_model_card` fills `model_card_template.md` (a Jinja template for `huggingface_hub.ModelCard`) from the
folder's config and weights and from what training knows: data, hyper-parameters and measured evaluation results,
which also become the card's `model-index` metadata. `write_llama_export_card` writes the card of a Llama export
(`hf_tinylm.convert.export_llama`) from the source folder's card. `validate_model_card` and `check_folder` say what
would be wrong on the Hub before `check_and_upload` uploads the folder as is.
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from safetensors import safe_open
from transformers import AutoConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .task_formats import CONFIG_KEY, settings_from_config, task_name
from .tasks import TASKS, task_of
from .tinylm_compat import MIN_TRANSFORMERS_VERSION  # the oldest release saved folders run on

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")
LLAMA_EXPORT_TEMPLATE_PATH = Path(__file__).with_name("llama_export_card_template.md")

# Entries of `Trainer.evaluate()` results that describe the run, not the model.
_BOOKKEEPING_SUFFIXES = ("runtime", "_per_second", "epoch", "samples")
_CONFIG_ROWS = (
    "cell",
    "num_hidden_layers",
    "hidden_size",
    "embedding_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "vocab_size",
    "tie_word_embeddings",
)
# Source-card tags a Llama export does not keep: it is a `llama` model that needs no remote code (`custom_code`).
_EXPORT_DROPPED_TAGS = ("hf_tinylm", "llama", "tiny_attention", "custom_code")


def measured_metrics(eval_results: dict) -> dict[str, float]:
    """The metrics in `Trainer.evaluate()` results ("eval_bleu" -> "bleu"), without run bookkeeping (runtime, ...)."""
    return {
        name.removeprefix("eval_"): value
        for name, value in eval_results.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not name.endswith(_BOOKKEEPING_SUFFIXES)
    }


def count_parameters(folder) -> int:
    """Parameters stored in the folder's safetensors files (a tied weight is stored, and counted, once)."""
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                count = 1
                for size in weights.get_slice(name).get_shape():
                    count *= size
                total += count
    return total


def _describe(config) -> dict:
    """What the card says the model is and does, and the pipeline call that shows it."""
    task = task_of(config)
    if config.model_type == "tiny_rnn":
        architecture = f"A {config.num_hidden_layers}-layer {config.cell.upper()} recurrent network"
    else:
        architecture = (
            f"A {config.num_hidden_layers}-block decoder-only transformer (pre-norm, RoPE, SwiGLU: Llama's shape)"
        )
    architecture += " language model" if task.predicts_next_token else " with an extractive question-answering head"
    summary, example_call = task.describe(settings_from_config(config))
    return {
        "architecture": architecture,
        "pipeline_tag": task.pipeline or "text-generation",
        "summary": summary,
        "example_call": example_call,
    }


def write_model_card(
    folder,
    *,
    eval_results: dict | None = None,
    training_args: dict | None = None,
    dataset_name: str | None = None,
    dataset_id: str | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    base_model: str | None = None,
    repo_id: str | None = None,
    eval_split: str | None = None,
    non_commercial: bool | None = None,
    training_command: str | None = None,
    examples: list[tuple[str, str]] | None = None,
    notes: list[str] | None = None,
) -> ModelCard:
    """Write `README.md` (and `eval_results.json`) into a saved model folder; returns the card.

    Args:
        eval_results: what `Trainer.evaluate()` returned; its metrics go into a table and the `model-index`.
        training_args: the hyper-parameters worth reporting (name -> value), shown as a table.
        dataset_name: the training data as the card's text names it (defaults to `dataset_id`).
        dataset_id: the training data's Hub dataset id, if it has one: the `datasets` metadata that links the card
            to the dataset's page. Local files have none, and descriptive names do not belong there.
        license: a Hub licence id ("apache-2.0", "cc-by-nc-sa-4.0", "other", ...): the training data's terms.
        language: language code(s) of the training data.
        base_model: the Hub id of the model this one was fine-tuned from.
        repo_id: the Hub id the card's examples load; defaults to the folder's name.
        eval_split: the name of the split `eval_results` were measured on.
        non_commercial: say the model is for non-commercial use only; defaults to True for "-nc" licences.
        training_command: the command that trains this model again, shown verbatim.
        examples: (call, output) pairs of real pipeline calls on this model, shown as they ran.
        notes: paragraphs about the data (licence, provenance) and the evaluation, shown under "Training data".
    """
    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    settings = settings_from_config(config)
    description = _describe(config)
    metrics = measured_metrics(eval_results or {})
    model_id = repo_id or folder.resolve().name
    dataset_name = dataset_name or dataset_id
    card_data = ModelCardData(
        license=license,
        language=language,
        library_name="transformers",
        pipeline_tag=description["pipeline_tag"],
        tags=["hf_tinylm", config.model_type, "custom_code"],
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model,
        model_name=model_id if metrics else None,
        eval_results=_eval_results(metrics, description["pipeline_tag"], dataset_id, dataset_name, eval_split),
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_id=model_id,
        num_parameters=count_parameters(folder),
        config_rows=_config_rows(config),
        min_transformers_version=MIN_TRANSFORMERS_VERSION,
        dataset_name=dataset_name,
        task_settings=settings,
        training_args=training_args,
        loss_curve=(folder / "loss_curve.png").is_file(),
        metrics=metrics,
        eval_split=eval_split,
        intended_use=f"For experiments and teaching: {description['summary'][0].lower()}{description['summary'][1:]}",
        non_commercial=non_commercial if non_commercial is not None else "-nc" in (license or ""),
        training_command=training_command,
        examples=examples or [],
        notes=notes or [],
        **description,
    )
    card.save(folder / "README.md")
    if eval_results is not None:
        (folder / "eval_results.json").write_text(json.dumps(eval_results, indent=4, sort_keys=True) + "\n")
    return card


def _eval_results(metrics: dict, task_type: str, dataset_id=None, dataset_name=None, split=None) -> list | None:
    """The card metadata's `model-index` entries for `metrics` (None when there are none)."""
    return [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_id or "custom",
            dataset_name=dataset_name or "custom",
            dataset_split=split,
            metric_type=name,
            metric_value=value,
        )
        for name, value in metrics.items()
    ] or None


def _config_rows(config) -> list[tuple[str, object]]:
    return [(name, getattr(config, name)) for name in _CONFIG_ROWS if getattr(config, name, None) is not None]


def _card_sections(text: str) -> tuple[str, str, dict[str, str]]:
    """A card's body as (title, introduction, {section heading: section text}): split at its "## " headings,
    outside code blocks; the title is the text of its first "# " heading, the introduction what stands before the
    first section (the title's line left out)."""
    title, intro, sections, current, in_code = "", [], {}, None, False
    for line in text.splitlines():
        in_code ^= line.lstrip().startswith("```")
        if not in_code and line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
        elif not title and line.startswith("# "):
            title = line[2:].strip()
        else:
            intro.append(line)
    return title, "\n".join(intro).strip(), {name: "\n".join(lines).strip() for name, lines in sections.items()}


def write_llama_export_card(source_folder, folder, *, repo_id: str | None = None) -> ModelCard:
    """Write `README.md` into `folder`, a Llama export of the hf_tinylm model in `source_folder`; returns the card.

    The export computes what the source computes, so the source's card (as `write_model_card` wrote it, or by hand)
    still holds: its metadata, introduction and sections stay, except that the metadata names the Llama export and
    the "Model" and "How to use" sections are rewritten to say the model is a native `LlamaForCausalLM` (no remote
    code) and how to use its pipeline. Real outputs shown after the source's usage example are kept. A source
    without a card gets the export sections alone. `repo_id`: the Hub id the examples load (default: folder name).
    """
    folder, source_folder = Path(folder), Path(source_folder)
    config = AutoConfig.from_pretrained(folder)
    description = _describe(config)
    model_id = repo_id or folder.resolve().name
    source_card = source_folder / "README.md"
    source = ModelCard.load(source_card) if source_card.is_file() else ModelCard("")
    title, intro, sections = _card_sections(source.text)
    usage = sections.pop("How to use", "")
    sections.pop("Model", None)
    card_data = source.data
    card_data.library_name = "transformers"
    card_data.pipeline_tag = description["pipeline_tag"]
    # Not `custom_code`: the model needs none (only the task pipeline, where there is one, is code in the repo).
    card_data.tags = ["hf_tinylm", "llama", *(tag for tag in card_data.tags or [] if tag not in _EXPORT_DROPPED_TAGS)]
    results_path = folder / "eval_results.json"
    if not card_data.eval_results and results_path.is_file():  # a card that did not report them: now it does
        card_data.eval_results = _eval_results(
            measured_metrics(json.loads(results_path.read_text())), card_data.pipeline_tag
        )
    if card_data.eval_results:
        card_data.model_name = model_id
    card = ModelCard.from_template(
        card_data,
        template_path=str(LLAMA_EXPORT_TEMPLATE_PATH),
        model_id=model_id,
        source_id=title or source_folder.resolve().name,
        summary=intro or description["summary"],
        num_parameters=count_parameters(folder),
        config_rows=_config_rows(config),
        min_transformers_version=MIN_TRANSFORMERS_VERSION,
        pipeline_files=sorted(path.name for path in folder.glob("*.py")),
        prompt=task_of(config).prompt_pattern(settings_from_config(config)),
        examples=usage.split("```", 2)[-1].strip() if usage.count("```") >= 2 else "",  # after the usage code
        sections=sections,
        **{key: description[key] for key in ("pipeline_tag", "example_call")},
    )
    card.save(folder / "README.md")
    return card


def validate_model_card(folder) -> ModelCard:
    """Load the folder's card and check it: its metadata parses, names the library and pipeline, and its
    `model-index` holds exactly the metrics of `eval_results.json` (none when that file is absent)."""
    folder = Path(folder)
    path = folder / "README.md"
    if not path.is_file():
        raise ValueError(f"{folder} has no model card (README.md); write one with `hf_tinylm.hub.write_model_card`.")
    card = ModelCard.load(path)  # raises ValueError when the metadata does not parse
    problems = [f"the metadata has no `{key}`" for key in ("library_name", "pipeline_tag") if not card.data.get(key)]
    results_path = folder / "eval_results.json"
    expected = measured_metrics(json.loads(results_path.read_text())) if results_path.is_file() else {}
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results or []}
    if reported != expected:
        problems.append(f"the model-index reports {reported}, but eval_results.json holds {expected}")
    if problems:
        raise ValueError(f"The model card in {folder} is not valid: " + "; ".join(problems) + ".")
    return card


def check_folder(folder, *, with_tokenizer: bool = True) -> None:
    """Raise, listing every problem, unless the folder holds what a Hub repository of an hf_tinylm model needs:
    weights, tokenizer (unless `with_tokenizer` is False), a config whose `auto_map` (for our model families; a Llama
    export needs none) and, for a model trained for a pipeline task, `custom_pipelines` point at code that is there,
    and a valid model card."""
    folder = Path(folder)
    problems = []
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if not config:
        problems.append("no config.json")
    task = task_name((config.get("task_specific_params") or {}).get(CONFIG_KEY, {}), config.get("architectures") or [])
    # A model type transformers knows (a Llama export) loads without code of its own.
    needed = [] if config.get("model_type") in CONFIG_MAPPING_NAMES else ["auto_map"]
    needed += ["custom_pipelines"] if TASKS[task]().pipeline else []
    for key in needed:
        if config and not config.get(key):
            problems.append(f"config.json has no `{key}` (save the model with hf_tinylm's `save_pretrained`)")
    references = [
        *config.get("auto_map", {}).values(),
        *(p["impl"] for p in config.get("custom_pipelines", {}).values()),
    ]
    for module in sorted({reference.split(".")[0] for reference in references}):
        if not (folder / f"{module}.py").is_file():
            problems.append(f"{module}.py, which config.json refers to, is missing")
    if not any(folder.glob("*.safetensors")):
        problems.append("no safetensors weights")
    if with_tokenizer and not (folder / "tokenizer_config.json").is_file():
        problems.append("no tokenizer (save it into the folder with `tokenizer.save_pretrained`)")
    try:
        validate_model_card(folder)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ValueError(f"{folder} is not ready for the Hub: " + "; ".join(problems))


def check_and_upload(
    folder,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    create_pr: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    ignore_patterns: list[str] | None = None,
    with_tokenizer: bool = True,
    tags: list[str] | None = None,
    keep_hub_card: bool = False,
):
    """Upload a saved model folder, as is (less `ignore_patterns`), to the Hub repository `repo_id` (created if
    needed; a bare name goes to the token's namespace); returns the `CommitInfo`. The folder is checked first
    (`check_folder`), so a broken repository is never published. The one upload path: `hf-tinylm upload`, train.py
    --push_to_hub and the models' own `push_to_hub` all come here.

    Args:
        with_tokenizer: require a tokenizer in the folder; a model's `push_to_hub` uploads the model alone.
        tags: added to the tags of the folder's model card (README.md is rewritten).
        keep_hub_card: leave a model card already in the repository as it is, rather than replace it with the
            folder's (transformers' rule for `push_to_hub`).
    """
    check_folder(folder, with_tokenizer=with_tokenizer)
    if tags:
        card = ModelCard.load(Path(folder) / "README.md")
        card.data.tags = [*(card.data.tags or []), *(tag for tag in tags if tag not in (card.data.tags or []))]
        card.save(Path(folder) / "README.md")
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    if keep_hub_card and api.file_exists(repo_id, "README.md", revision=revision):
        ignore_patterns = [*(ignore_patterns or []), "README.md"]
    return api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        commit_message=commit_message or "Upload hf_tinylm model",
        commit_description=commit_description,
        create_pr=create_pr,
        revision=revision,
        ignore_patterns=ignore_patterns,
    )
