"""The Llama export (`python -m hf_tinylm.convert --to llama`, `export_llama`): a plain `LlamaForCausalLM` folder
that loads without remote code where hf_tinylm is not installed, computes and generates what the original computes,
and runs the original's task pipeline; its model card; and the refusals, which leave no folder behind."""

import json

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, pipeline

from hf_tinylm import TinyRNNConfig, TinyRNNForCausalLM, convert
from hf_tinylm.convert import export_llama, pipeline_files
from hf_tinylm.hub import check_folder, write_model_card
from hf_tinylm.pipelines_tinylm import custom_pipelines
from hf_tinylm.task_formats import CONFIG_KEY, build_prompt
from hf_tinylm.tokenization import train_tokenizer
from tests.helpers import run_without_hf_tinylm
from tests.test_pipelines import CONTEXT, QUESTION, SOURCE, make_model

EVAL_RESULTS = {"eval_bleu": 12.5, "eval_loss": 1.25, "eval_runtime": 3.2}
PIPELINE_FILES = {"pipelines_tinylm.py", "extractive_qa.py", "task_formats.py", "tinylm_common.py"}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([SOURCE, CONTEXT, QUESTION, "XYZ marks the spot, quick brown fox."], "char", vocab_size=320)


def save_trained_folder(folder, model, tokenizer):
    """The folder train.py writes: model, tokenizer, generation config, card and evaluation results."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(
        folder,
        eval_results=EVAL_RESULTS,
        training_args={"learning rate": 1e-3},
        dataset_name="toy pairs",
        license="apache-2.0",
        eval_split="validation",
        examples=[(f"pipe({SOURCE!r})", "Ein Mann fährt ein rotes Fahrrad.")],
    )
    return folder


def test_export_is_a_plain_llama_that_computes_and_translates_as_the_original(tokenizer, tmp_path):
    model = make_model("attention", tokenizer, "translation", src_lang="en", tgt_lang="de")
    source = save_trained_folder(tmp_path / "mt-attention", model, tokenizer)
    out = export_llama(source, tmp_path / "mt-llama")

    files = {path.name for path in out.iterdir()}
    assert {path.name for path in pipeline_files()} == PIPELINE_FILES  # the pipelines import no model code
    assert files == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "README.md",
        "eval_results.json",
        *PIPELINE_FILES,
    }
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("llama", ["LlamaForCausalLM"])
    assert "auto_map" not in config
    assert config["task_specific_params"] == {CONFIG_KEY: {"task": "translation", "src_lang": "en", "tgt_lang": "de"}}
    assert config["custom_pipelines"] == custom_pipelines(model) != {}
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["suppress_tokens"] == model.generation_config.suppress_tokens
    assert (out / "eval_results.json").read_text() == (source / "eval_results.json").read_text()

    check_folder(out)  # Hub-ready, card included
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "translation" and card.data.model_name == "mt-llama"
    assert "llama" in card.data.tags and "custom_code" not in card.data.tags
    assert "A Llama export of the hf_tinylm model mt-attention" in card.text
    assert "**The model needs no remote code:**" in card.text
    assert 'pipeline("translation", model="mt-llama", trust_remote_code=True)' in card.text
    assert build_prompt("translation", "{text}", src_lang="en", tgt_lang="de") in card.text
    assert "Ein Mann fährt ein rotes Fahrrad." in card.text and "| `learning rate` | 0.001 |" in card.text

    prompt = build_prompt("translation", SOURCE, src_lang="en", tgt_lang="de")
    got = run_without_hf_tinylm(
        f"""
        import json, sys
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

        out, source, prompt, text = {str(out)!r}, {str(source)!r}, {prompt!r}, {SOURCE!r}
        ids = AutoTokenizer.from_pretrained(out)(prompt, add_special_tokens=False, return_tensors="pt").input_ids

        def run(model):
            with torch.no_grad():
                logits = model(ids).logits
            tokens = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)[0].tolist()
            return logits, tokens

        export = AutoModelForCausalLM.from_pretrained(out)  # no trust_remote_code
        export_logits, export_tokens = run(export)
        translate = pipeline("translation", model=out, trust_remote_code=True, device="cpu")
        export_translation = translate(text, max_length=6, min_length=6)
        classes = [type(export).__name__, type(translate.model).__name__, type(translate).__module__]
        model_code = sorted(name for name in sys.modules if "tiny_attention" in name)

        original = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=True)
        original_logits, original_tokens = run(original)
        original_translation = pipeline("translation", model=source, trust_remote_code=True, device="cpu")(
            text, max_length=6, min_length=6
        )
        print(json.dumps({{
            "classes": classes, "model_code": model_code,
            "max_diff": (export_logits - original_logits).abs().max().item(),
            "tokens": [export_tokens, original_tokens],
            "translations": [export_translation, original_translation],
        }}))
        """,
        cwd=tmp_path,
    )
    assert got["classes"][:2] == ["LlamaForCausalLM", "LlamaForCausalLM"]
    assert got["classes"][2].startswith("transformers_modules.")  # the pipeline code copied into the export
    assert got["model_code"] == []  # loading and running the export imported no hf_tinylm model code
    assert got["max_diff"] < 1e-5
    export_tokens, original_tokens = got["tokens"]
    prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert export_tokens == original_tokens and len(export_tokens) == prompt_length + 8
    export_translation, original_translation = got["translations"]
    assert export_translation == original_translation and export_translation[0]["translation_text"]


def test_cli_exports_a_generative_qa_model_for_the_stock_text_generation_pipeline(tokenizer, tmp_path):
    model = make_model("attention", tokenizer, "qa", mode="generative")
    model.save_pretrained(tmp_path / "qa-attention")  # as our package saves it, with its default card
    tokenizer.save_pretrained(tmp_path / "qa-attention")
    convert.main(["--to", "llama", str(tmp_path / "qa-attention"), str(tmp_path / "out"), "--repo_id", "me/qa"])

    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"] == {} and not list(out.glob("*.py"))  # no code at all: none is needed
    check_folder(out)
    card = (out / "README.md").read_text()
    assert "# me/qa" in card and 'pipeline("text-generation", model="me/qa")' in card
    assert build_prompt("qa", "{context}", question="{question}") in card

    prompt = build_prompt("qa", CONTEXT, question=QUESTION)
    kwargs = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False, "return_full_text": False}
    export = AutoModelForCausalLM.from_pretrained(out)
    assert type(export).__name__ == "LlamaForCausalLM"
    expected = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")(prompt, **kwargs)
    assert pipeline("text-generation", model=str(out), device="cpu")(prompt, **kwargs) == expected


def test_models_llama_cannot_express_are_refused_and_nothing_is_left_behind(tokenizer, tmp_path, monkeypatch):
    TinyRNNForCausalLM(TinyRNNConfig(vocab_size=len(tokenizer), hidden_size=16)).save_pretrained(tmp_path / "rnn")
    make_model("attention", tokenizer, "qa", qa_head=True, mode="extractive").save_pretrained(tmp_path / "qa")
    save_trained_folder(tmp_path / "mt", make_model("attention", tokenizer, "translation"), tokenizer)
    before = sorted(tmp_path.iterdir())

    with pytest.raises(ValueError, match="holds a 'tiny_rnn' model; only 'tiny_attention' models convert"):
        export_llama(tmp_path / "rnn", tmp_path / "out")
    with pytest.raises(ValueError, match="holds a TinyAttentionForQuestionAnswering"):
        convert.main(["--to", "llama", str(tmp_path / "qa"), str(tmp_path / "out")])
    # A failure while writing removes the partial export.
    monkeypatch.setattr(convert, "write_llama_export_card", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_llama(tmp_path / "mt", tmp_path / "out")
    assert sorted(tmp_path.iterdir()) == before  # no OUT folder, no partial one beside it

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        export_llama(tmp_path / "mt", tmp_path / "out")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_hand_written_card_keeps_its_text_and_reports_the_evaluation_results(tokenizer, tmp_path):
    source = tmp_path / "mine"
    make_model("attention", tokenizer, "summarization").save_pretrained(source)
    tokenizer.save_pretrained(source)
    (source / "README.md").write_text("# My summarizer\n\nWritten by hand.\n\n## Caveats\n\nSmall.\n")
    (source / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    out = export_llama(source, tmp_path / "out")

    check_folder(out)  # the model-index reports eval_results.json, as validation demands
    card = ModelCard.load(out / "README.md")
    assert {result.metric_type for result in card.data.eval_results} == {"bleu", "loss"}
    assert "A Llama export of the hf_tinylm model My summarizer" in card.text
    assert "Written by hand." in card.text and "## Caveats\n\nSmall." in card.text
    assert 'pipeline("summarization", model="out", trust_remote_code=True)' in card.text
