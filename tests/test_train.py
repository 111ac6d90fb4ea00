"""train.py end to end in one process: every task on both architectures, from every file format, plus the options
that change how a run goes (config files, continuing, early stopping, resuming) and the errors bad input gets."""

import importlib.util
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from hf_tinylm import TinyAttentionConfig, TinyRNNConfig, checkpoints, data, evaluation, training
from hf_tinylm.task_formats import ADDITIONAL_SPECIAL_TOKENS, settings_from_config
from hf_tinylm.tasks import ExtractiveQA, LanguageModelling
from hf_tinylm.tokenization import train_tokenizer, vocabulary_fingerprint
from tests import training_data

# Small and quick: a 2-layer model, 3 optimizer steps, no evaluation or checkpoint during training.
QUICK = [
    "--model_size", "tiny", "--vocab_size", "400", "--max_steps", "3", "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "4", "--eval_strategy", "no", "--save_strategy", "no", "--max_eval_samples", "6",
    "--max_new_tokens", "4",
]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    with training_data.one_torch_thread():
        yield


def quick_arguments(tmp_path, *args: str) -> list[str]:
    """The command line of a quick run into tmp_path/model, with `args` added."""
    output_dir = tmp_path / "model"
    return [*QUICK, "--report_to", "none", "--output_dir", str(output_dir), "--cache_dir", str(tmp_path / "cache"), *args]


def train(tmp_path, *args: str, callbacks=()) -> tuple[dict, str]:
    metrics = training.run(*training.parse_args(quick_arguments(tmp_path, *args)), callbacks=callbacks)
    return metrics, tmp_path / "model"


class WeightsAtTrainBegin(TrainerCallback):
    """Records the model's weights as training begins, before the first optimizer step."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def assert_starts_from(saved_folder: Path, recorded: WeightsAtTrainBegin, new_weights: set[str]) -> None:
    """The run began with exactly the weights saved in `saved_folder`; only `new_weights` (a new head) were not."""
    saved = load_file(saved_folder / "model.safetensors")
    if AutoConfig.from_pretrained(saved_folder).tie_word_embeddings:  # the file holds a tied head once, as embeddings
        saved.setdefault("lm_head.weight", saved["model.embed_tokens.weight"])
    assert set(recorded.weights) - set(saved) == new_weights
    carried = set(recorded.weights) & set(saved)
    assert {name for name in saved if name.startswith("model.")} <= carried  # the whole body
    for name in carried:
        assert torch.equal(recorded.weights[name], saved[name]), f"{name} is not the saved weight"


class PerplexityByHand(TrainerCallback):
    """Recomputes each evaluation's perplexity from the model's own logits on the evaluation batches: exp of the
    mean negative log-likelihood over all target tokens (each token weighted alike, not each sequence)."""

    def __init__(self):
        self.checked = []  # (reported, by hand)

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, metrics=None, **kwargs):
        if "eval_perplexity" not in metrics:  # a span head's evaluation: its loss only
            return
        nll, tokens = 0.0, 0
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            for batch in eval_dataloader:
                logits = model.eval()(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
                log_probs = logits[:, :-1].double().log_softmax(-1)
                targets = batch["labels"][:, 1:]
                scored = targets != -100
                nll -= log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0][scored].sum().item()
                tokens += scored.sum().item()
        self.checked.append((metrics["eval_perplexity"], math.exp(nll / tokens)))


# task arguments, data file, metrics the final evaluation reports. Some cases also turn on bf16 with gradient
# accumulation, or beam search, so those paths run too.
CASES = {
    "lm-attention-txt": (
        ["--tokenizer_type", "char", "--block_size", "32"],
        training_data.shakespeare_txt,
        ["perplexity"],
    ),
    "lm-lstm-jsonl": (["--arch", "rnn", "--block_size", "32"], training_data.shakespeare_jsonl, ["perplexity"]),
    "translation-attention-csv": (
        [
            "--task",
            "translation",
            "--source_lang",
            "en",
            "--target_lang",
            "de",
            "--bf16",
            "--gradient_accumulation_steps",
            "2",
            # Full-length examples (13 + 7 tokens, the model's whole context): a batch must not be padded past them.
            "--max_source_length",
            "13",
            "--max_target_length",
            "7",
        ],
        training_data.translation_csv,
        ["perplexity", "bleu", "chrf"],
    ),
    "translation-gru-jsonl": (
        [
            "--task",
            "translation",
            "--source_lang",
            "en",
            "--target_lang",
            "de",
            "--arch",
            "rnn",
            "--cell",
            "gru",
            "--num_beams",
            "2",
        ],
        training_data.translation_jsonl,
        ["perplexity", "bleu", "chrf"],
    ),
    "summarization-attention-jsonl": (
        ["--task", "summarization", "--max_source_length", "96", "--num_beams", "2"],
        training_data.summarization_jsonl,
        ["perplexity", "rouge1", "rouge2", "rougeL", "rougeLsum"],
    ),
    "summarization-rnn-parquet": (
        ["--task", "summarization", "--arch", "rnn", "--cell", "rnn", "--max_source_length", "96"],
        training_data.summarization_parquet,
        ["perplexity", "rouge1", "rougeL"],
    ),
    "qa-extractive-attention-squad-json": (
        ["--task", "qa", "--max_seq_length", "64", "--doc_stride", "16", "--validation_split_percentage", "50"],
        training_data.squad_json,
        ["exact_match", "f1"],
    ),
    "qa-extractive-lstm-jsonl": (
        ["--task", "qa", "--arch", "rnn", "--max_seq_length", "128", "--doc_stride", "32"],
        training_data.squad_flat_jsonl,
        ["exact_match", "f1"],
    ),
    "qa-generative-attention-json": (
        ["--task", "qa", "--qa_mode", "generative"],
        training_data.babi_json,
        ["perplexity", "exact_match", "f1"],
    ),
    "qa-generative-gru-csv": (
        ["--task", "qa", "--qa_mode", "generative", "--arch", "rnn", "--cell", "gru"],
        training_data.babi_csv,
        ["perplexity", "exact_match", "f1"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_task_trains_evaluates_and_saves(tmp_path, case):
    args, make_file, metric_names = CASES[case]
    perplexity = PerplexityByHand()
    metrics, folder = train(tmp_path, "--train_file", str(make_file(tmp_path)), *args, callbacks=[perplexity])

    for name in ["loss", *metric_names]:
        assert math.isfinite(metrics[f"eval_{name}"]), name
    if "perplexity" in metric_names:
        ((reported, by_hand),) = perplexity.checked
        assert reported == metrics["eval_perplexity"] == pytest.approx(by_hand, rel=1e-2 if "--bf16" in args else 1e-5)
    assert json.loads((folder / "eval_results.json").read_text()) == pytest.approx(metrics)
    # The task's scores are those of the predictions saved beside them, scored against the validation references.
    _, data_args, _ = training.parse_args(quick_arguments(tmp_path, "--train_file", str(make_file(tmp_path)), *args))
    task = data_args.to_task()
    if task.metrics:
        raw = data.load_raw_datasets(data_args.to_source(), task, str(tmp_path / "cache"))
        validation = task.examples(raw, data_args.sample_limits(), {})["validation"]
        saved = json.loads((folder / "eval_predictions.json").read_text())
        predictions = [saved[qid] for qid in validation["id"]] if isinstance(saved, dict) else saved
        assert len(predictions) == len(validation)
        rescored = evaluation.score_predictions(task.metrics, predictions, list(validation[task.references_column]))
        scored = [name for name in metric_names if name != "perplexity"]
        assert {name: rescored[name] for name in scored} == pytest.approx({n: metrics[f"eval_{n}"] for n in scored})
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 3
    assert (folder / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    assert not (folder / "trained_tokenizer").exists()  # the tokenizer's staging folder: saved with the model now
    assert "hf_tinylm" in (folder / "README.md").read_text()

    config = AutoConfig.from_pretrained(folder)
    settings = settings_from_config(config)
    extractive = "extractive" in case
    assert settings["task"] == case.split("-")[0]
    assert settings.get("mode") == ("extractive" if extractive else "generative" if "qa" in case else None)
    assert config.use_cache
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = (AutoModelForQuestionAnswering if extractive else AutoModelForCausalLM).from_pretrained(folder)
    assert model.config.vocab_size == len(tokenizer)
    if not extractive:
        assert model.generation_config.use_cache
        assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    if case.startswith(("translation", "summarization", "qa-generative")):
        assert model.generation_config.max_new_tokens == 4
        assert model.generation_config.num_beams == (2 if "--num_beams" in args else 1)
    if case.startswith("translation"):
        assert (settings["src_lang"], settings["tgt_lang"]) == ("en", "de")
    if extractive:  # what the question-answering pipeline defaults to, as evaluation used
        assert settings["max_answer_length"] == 30


def test_no_argument_run_trains_on_the_python_docs(tmp_path, capsys):
    model_args, data_args, training_args = training.parse_args([])
    assert (model_args.arch, data_args.task, data_args.train_file, data_args.dataset_name) == (
        "attention",
        "lm",
        None,
        None,
    )
    assert training_args.output_dir == "outputs/tinylm-{name}"

    template = str(tmp_path / "tinylm-{name}")
    args = [
        *QUICK,
        "--output_dir",
        template,
        "--block_size",
        "32",
        "--max_eval_samples",
        "16",
        "--max_new_tokens",
        "8",
    ]
    metrics = training.main(args)

    folder = tmp_path / "tinylm-attention-pydoc"
    assert (folder / "model.safetensors").is_file()
    printed = capsys.readouterr().out
    assert f"Validation perplexity: {metrics['eval_perplexity']:.2f}" in printed
    assert "Sample (temperature 0.8, top-k 50):\nThe" in printed
    assert f"evaluation results                   {folder / 'eval_results.json'}" in printed
    assert list((folder / "runs").glob("*/events.out.tfevents.*")), "TensorBoard logs by default when installed"
    card = ModelCard.load(folder / "README.md")
    assert (card.data.language, card.data.datasets) == (["en"], None)  # the docs are English, and on no Hub page
    assert "Training data: the CPython documentation (pydoc_data.topics)." in card.text


def test_extractive_windows_are_padded_on_the_right_whatever_the_tokenizer_says():
    tokenizer = train_tokenizer(["the tower stands in Paris"], "char", vocab_size=300)
    tokenizer.padding_side = "left"  # as a generation pipeline leaves it, or a reused tokenizer may be saved
    features = [
        {"input_ids": [5, 6, 7, 8, 9], "attention_mask": [1] * 5, "start_positions": 3, "end_positions": 4},
        {"input_ids": [5, 6], "attention_mask": [1, 1], "start_positions": 1, "end_positions": 1},
    ]
    batch = ExtractiveQA().collator(tokenizer)(features)
    pad = tokenizer.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, pad, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    assert batch["start_positions"].tolist() == [3, 1]  # still the answer tokens: 8 and 6
    assert tokenizer.padding_side == "left"  # the tokenizer itself is left as it was


def test_reuses_a_tokenizer_and_adds_the_tokens_it_lacks(tmp_path):
    text = training_data.shakespeare_txt(tmp_path)
    gpt2_like = Tokenizer(models.BPE())  # byte-level BPE with only <|endoftext|>: no pad, no task tokens
    gpt2_like.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt2_like.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    gpt2_like.train_from_iterator([text.read_text()], trainer)
    end = "<|endoftext|>"
    PreTrainedTokenizerFast(tokenizer_object=gpt2_like, eos_token=end, bos_token=end, unk_token=end).save_pretrained(
        tmp_path / "tokenizer"
    )

    _, folder = train(
        tmp_path, "--train_file", str(text), "--tokenizer_name", str(tmp_path / "tokenizer"), "--block_size", "32"
    )

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == 300 + 1 + len(ADDITIONAL_SPECIAL_TOKENS)  # the pad token and the task tokens
    assert tokenizer.eos_token == end and tokenizer.pad_token == "<|pad|>"
    assert AutoConfig.from_pretrained(folder).vocab_size == len(tokenizer)


def test_arguments_from_json_and_yaml_files(tmp_path):
    arguments = {"task": "translation", "source_lang": "en", "target_lang": "de", "arch": "rnn", "learning_rate": 0.01}
    (tmp_path / "args.json").write_text(json.dumps(arguments))
    (tmp_path / "args.yaml").write_text(yaml.safe_dump(arguments))
    command_line = training.parse_args(["--task", "translation", "--source_lang", "en", "--target_lang", "de", "--arch", "rnn", "--learning_rate", "0.01"])  # fmt: skip
    for path in ("args.json", "args.yaml"):
        model_args, data_args, training_args = training.parse_args([str(tmp_path / path)])
        assert (model_args, data_args) == command_line[:2]
        assert training_args.learning_rate == 0.01


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        training.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for expected in (
        "model and tokenizer:",
        "data and task:",
        "--arch {attention,rnn}",
        "--qa_mode",
        "--early_stopping_patience",
    ):
        assert expected in text


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A trained LM folder, to continue from."""
    tmp_path = tmp_path_factory.mktemp("lm")
    text = str(training_data.shakespeare_txt(tmp_path))
    with training_data.one_torch_thread():
        _, folder = train(
            tmp_path, "--train_file", text, "--block_size", "128", "--max_eval_samples", "100",
            "--license", "cc-by-nc-sa-4.0", "--language", "en",
        )  # fmt: skip
    return folder


def test_card_metadata_from_the_command_line(language_model):
    card = ModelCard.load(language_model / "README.md")
    assert (card.data.license, card.data.language) == ("cc-by-nc-sa-4.0", ["en"])
    # A local file is named in the text, never as `datasets` metadata (which links to a Hub dataset page).
    assert card.data.datasets is None and "Training data: shakespeare.txt." in card.text
    assert "Non-commercial use only" in card.text


def test_continue_from_a_saved_model_with_a_new_head(tmp_path, language_model):
    start = WeightsAtTrainBegin()
    metrics, folder = train(
        tmp_path,
        "--model_name_or_path", str(language_model), "--task", "qa", "--train_file", str(training_data.squad_flat_jsonl(tmp_path)),
        "--max_seq_length", "128", "--doc_stride", "32", callbacks=[start],
    )  # fmt: skip
    assert "eval_f1" in metrics
    assert_starts_from(language_model, start, new_weights={"qa_outputs.weight", "qa_outputs.bias"})
    lm_embeddings = AutoModelForCausalLM.from_pretrained(language_model).get_input_embeddings().weight
    qa_model = AutoModelForQuestionAnswering.from_pretrained(folder)
    assert qa_model.get_input_embeddings().weight.shape == lm_embeddings.shape
    assert (
        AutoTokenizer.from_pretrained(folder).get_vocab() == AutoTokenizer.from_pretrained(language_model).get_vocab()
    )
    # A local starting folder is no Hub id: the card's metadata must not name it as `base_model`.
    assert ModelCard.load(folder / "README.md").data.base_model is None


def test_a_saved_task_model_continues_its_task_and_languages(tmp_path):
    pairs = str(training_data.translation_csv(tmp_path))
    _, first = train(tmp_path / "first", "--task", "translation", "--source_lang", "en", "--target_lang", "de",
                     "--train_file", pairs)  # fmt: skip
    start = WeightsAtTrainBegin()
    metrics, second = train(
        tmp_path / "second", "--model_name_or_path", str(first), "--train_file", pairs, callbacks=[start]
    )
    assert "eval_bleu" in metrics
    assert_starts_from(first, start, new_weights=set())
    saved = settings_from_config(AutoConfig.from_pretrained(first))
    assert settings_from_config(AutoConfig.from_pretrained(second)) == saved == {
        "task": "translation", "src_lang": "en", "tgt_lang": "de"
    }  # fmt: skip


def test_continuing_fits_the_lengths_to_what_the_saved_model_reads(tmp_path, language_model, caplog):
    args = ["--model_name_or_path", str(language_model), "--task", "translation", "--source_lang", "en",
            "--target_lang", "de", "--train_file", str(training_data.translation_csv(tmp_path))]  # fmt: skip
    with caplog.at_level("WARNING"):
        metrics, folder = train(tmp_path, *args)
    # The LM read 128-token blocks; the default 256-token prompts + 64-token targets would not fit.
    assert "reads at most 128 tokens, so this run uses --max_source_length 64" in caplog.text
    assert "eval_bleu" in metrics and AutoConfig.from_pretrained(folder).max_position_embeddings == 128
    with pytest.raises(ValueError, match="reads at most 128 tokens, not enough for targets of 200"):
        train(tmp_path, *args, "--max_target_length", "200")


def test_tokenizer_and_model_vocabulary_mismatch(tmp_path, language_model):
    text = training_data.shakespeare_txt(tmp_path)
    vocab_size = AutoConfig.from_pretrained(language_model).vocab_size
    bigger = train_tokenizer([text.read_text()], "bpe", vocab_size=vocab_size + 100)
    assert len(bigger) > vocab_size
    bigger.save_pretrained(tmp_path / "tokenizer")
    with pytest.raises(ValueError, match="trained with another tokenizer"):
        train(
            tmp_path,
            "--model_name_or_path", str(language_model), "--tokenizer_name", str(tmp_path / "tokenizer"),
            "--train_file", str(text),
        )  # fmt: skip


@pytest.mark.parametrize("other", ["smaller", "same size"])
def test_a_tokenizer_the_model_was_not_trained_with_is_refused_naming_both(tmp_path, language_model, other):
    text = training_data.shakespeare_txt(tmp_path)
    vocab_size = AutoConfig.from_pretrained(language_model).vocab_size
    assert AutoConfig.from_pretrained(language_model).tokenizer_fingerprint == vocabulary_fingerprint(
        AutoTokenizer.from_pretrained(language_model)
    )
    size = vocab_size - 50 if other == "smaller" else vocab_size
    tokenizer = train_tokenizer([text.read_text()[: len(text.read_text()) // 2]], "bpe", vocab_size=size)
    assert (len(tokenizer) < vocab_size) if other == "smaller" else len(tokenizer) == vocab_size
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    message = f"has {len(tokenizer)} tokens but the model" if other == "smaller" else "same size, different"
    with pytest.raises(ValueError, match=f"The tokenizer \\({tmp_path / 'tokenizer'}\\) .*{message}"):
        train(
            tmp_path,
            "--model_name_or_path", str(language_model), "--tokenizer_name", str(tmp_path / "tokenizer"),
            "--train_file", str(text),
        )  # fmt: skip
    assert not (tmp_path / "model").exists()


def test_missing_metric_packages_stop_the_run_before_training(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sacrebleu" else real_find_spec(name, *a)
    )
    with pytest.raises(ImportError, match=r"Scoring bleu, chrf needs sacrebleu: pip install 'hf_tinylm\[metrics\]'"):
        train(tmp_path, "--task", "translation", "--source_lang", "en", "--target_lang", "de",
              "--train_file", str(training_data.translation_csv(tmp_path)))  # fmt: skip
    assert not (tmp_path / "model").exists()


def test_label_smoothing_shifts_the_targets_of_causal_models():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    loss = training._label_smoothed_causal_loss(0.1, LanguageModelling())({"logits": logits}, labels)
    log_probs = logits[:, :-1].log_softmax(-1).flatten(0, 1)  # position t predicts token t + 1
    nll = -log_probs.gather(1, labels[:, 1:].reshape(-1, 1)).mean()
    assert loss.item() == pytest.approx((0.9 * nll - 0.1 * log_probs.mean(-1).mean()).item(), rel=1e-5)
    assert training._label_smoothed_causal_loss(0.0, LanguageModelling()) is None
    with pytest.raises(ValueError, match="extractive QA's span loss has none"):
        training._label_smoothed_causal_loss(0.1, ExtractiveQA())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric_for_best_model", "eval_bleu"], "measure loss, perplexity; generated-text scores"),
        (["--metric_for_best_model", "rouge1"], "measure loss, perplexity"),
        (["--do_eval"], "train.py always trains"),
        (["--sample_prompt", " "], "--sample_prompt must not be empty"),
        (["--cell", "gru"], "--cell chooses the recurrent cell of --arch rnn; this run is --arch attention"),
        (["--dataset_name", "wmt16", "--validation_file", "v.jsonl"], "with --dataset_name, name the split"),
        (["--eval_samples_during_training", "8", "--eval_strategy", "no"], "needs evaluations"),
        (["--eval_samples_during_training", "8", "--dataloader_persistent_workers", "true"], "persistent_workers"),
        (["--muon_learning_rate", "0.01"], "add --hidden_optimizer muon"),
        (["--hidden_optimizer", "muon", "--optim", "adafactor"], "pairs Muon with AdamW"),
        (["--hidden_optimizer", "muon", "--muon_learning_rate", "0"], "--muon_learning_rate must be"),
    ],
)
def test_arguments_that_cannot_work_are_refused_when_parsed(args, message):
    with pytest.raises(ValueError, match=message):
        training.parse_args(args)


def test_perplexity_as_the_best_model_metric_is_lower_is_better():
    _, _, training_args = training.parse_args(["--metric_for_best_model", "perplexity", "--load_best_model_at_end"])
    assert training_args.greater_is_better is False


def test_a_saved_models_qa_mode_yields_to_either_spelling_of_the_flag(tmp_path):
    config = TinyAttentionConfig(task_specific_params={"hf_tinylm": {"task": "qa", "mode": "generative"}})
    config.save_pretrained(tmp_path)
    for flag in ("--qa_mode", "--qa-mode"):
        _, data_args, _ = training.parse_args(["--model_name_or_path", str(tmp_path), flag, "extractive"])
        assert (data_args.task, data_args.qa_mode) == ("qa", "extractive")
    _, data_args, _ = training.parse_args(["--model_name_or_path", str(tmp_path)])
    assert (data_args.task, data_args.qa_mode) == ("qa", "generative")


def test_push_to_hub_uploads_the_finished_folder_once_with_its_card(tmp_path, monkeypatch):
    uploads = []

    def record(folder, repo_id, **kwargs):
        card = ModelCard.load(Path(folder) / "README.md")
        uploads.append((Path(folder), repo_id, kwargs["ignore_patterns"], card.data.tags, sorted(os.listdir(folder))))
        return SimpleNamespace(commit_url=f"https://hub.example/{repo_id}/commit/1")

    monkeypatch.setattr(training, "check_and_upload", record)
    monkeypatch.setattr(training, "_check_hub_access", lambda args: None)
    # Trainer itself never contacts the Hub (this machine has no network: it would fail if it tried).
    train(tmp_path, "--train_file", str(training_data.shakespeare_txt(tmp_path)), "--block_size", "32",
          "--push_to_hub", "--hub_model_id", "someone/tiny", "--save_strategy", "steps", "--save_steps", "2")  # fmt: skip
    ((folder, repo_id, ignored, tags, files),) = uploads
    assert (folder, repo_id, ignored) == (tmp_path / "model", "someone/tiny", ["checkpoint-*/**"])
    assert {"hf_tinylm", "custom_code"} <= set(tags)  # hf_tinylm's card, not Trainer's
    assert {"model.safetensors", "tokenizer.json", "eval_results.json", "checkpoint-2"} <= set(files)


def test_push_to_hub_without_the_hub_fails_before_any_work(tmp_path, monkeypatch):
    text = str(training_data.shakespeare_txt(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        train(tmp_path, "--train_file", text, "--push_to_hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ValueError, match="needs a Hub token"):
        train(tmp_path, "--train_file", text, "--push_to_hub")
    with pytest.raises(ValueError, match="--early_stopping_patience needs validation data"):
        train(tmp_path, "--train_file", text, "--early_stopping_patience", "1", "--eval_strategy", "steps", "--save_strategy", "steps",
              "--validation_split_percentage", "0")  # fmt: skip
    assert not (tmp_path / "model").exists()  # nothing written: no tokenizer, no half folder


def test_an_over_long_sample_prompt_and_a_used_output_dir_are_warned_about(tmp_path, caplog):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("from an earlier run")
    with caplog.at_level("WARNING"):
        train(tmp_path, "--train_file", str(training_data.shakespeare_txt(tmp_path)), "--tokenizer_type", "char",
              "--block_size", "32", "--sample_prompt", "To be, or not to be, that is the question: " * 2)  # fmt: skip
    assert "No sample: --sample_prompt is 86 tokens, the model reads at most 32." in caplog.text
    assert "already holds files of an earlier run; this run writes over them" in caplog.text
    assert (tmp_path / "model" / "README.md").is_file()  # the run still ends with its card


def test_bad_config_override(tmp_path):
    with pytest.raises(ValueError, match="'hiden_size=8' is not 'field=value' for a TinyAttentionConfig field"):
        train(
            tmp_path,
            "--train_file",
            str(training_data.shakespeare_txt(tmp_path)),
            "--config_overrides",
            "hiden_size=8",
        )


def test_early_stopping(tmp_path):
    # With a zero learning rate the eval loss never improves: patience 1 stops at the second evaluation.
    metrics, folder = train(
        tmp_path,
        "--train_file", str(training_data.shakespeare_txt(tmp_path)), "--block_size", "32", "--max_steps", "10",
        "--learning_rate", "0", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps",
        "--save_steps", "1", "--early_stopping_patience", "1",
    )  # fmt: skip
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert state["best_model_checkpoint"].endswith("checkpoint-1")


class Crash(TrainerCallback):
    """Dies at the end of a step, the way a killed process would: nothing after that step is saved."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


# With Muon the checkpoint holds two optimizers' states, and the schedule must reach both again after loading them.
@pytest.mark.parametrize("hidden_optimizer", ["adamw", "muon"])
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, hidden_optimizer):
    text = str(training_data.shakespeare_txt(tmp_path))
    resumable = [
        "--train_file", text, "--block_size", "32", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2",
        "--hidden_optimizer", hidden_optimizer,
    ]  # fmt: skip
    args = [*QUICK, *resumable, "--report_to", "none", "--cache_dir", str(tmp_path / "cache")]
    training.main([*args, "--output_dir", str(tmp_path / "uninterrupted")])
    interrupted = str(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        training.run(*training.parse_args([*args, "--output_dir", interrupted]), callbacks=[Crash(step=5)])
    assert sorted(p.name for p in (tmp_path / "interrupted").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    training.main([*args, "--output_dir", interrupted, "--resume_from_checkpoint", "last"])

    state = json.loads((tmp_path / "interrupted" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    expected = AutoModelForCausalLM.from_pretrained(tmp_path / "uninterrupted").state_dict()
    resumed = AutoModelForCausalLM.from_pretrained(interrupted).state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, msg=name)


class EvaluatedSamples(TrainerCallback):
    """Records, at each evaluation, the step and the validation samples (their token ids) it read."""

    def __init__(self):
        self.evaluations = []

    def on_evaluate(self, args, state, control, eval_dataloader=None, **kwargs):
        self.evaluations.append((state.global_step, [tuple(ids) for ids in eval_dataloader.dataset["input_ids"]]))


def test_evaluations_during_training_read_one_fixed_sample_and_the_final_one_the_whole_split(tmp_path):
    recorded = EvaluatedSamples()
    text = str(training_data.shakespeare_txt(tmp_path))
    args = ["--train_file", text, "--block_size", "32", "--max_steps", "4", "--eval_strategy", "steps"]
    metrics, _ = train(
        tmp_path, *args, "--eval_steps", "2", "--max_eval_samples", "12", "--eval_samples_during_training", "5",
        callbacks=[recorded],
    )  # fmt: skip
    (step_a, sample), (step_b, again), (step_c, everything) = recorded.evaluations
    assert (step_a, step_b, step_c) == (2, 4, 4)  # two during training, then the final evaluation
    assert len(sample) == 5 and again == sample and len(everything) == 12 and set(sample) < set(everything)
    assert sample != everything[:5]  # a random sample, not the first blocks
    # The final evaluation is that of the whole split, as without the option.
    plain, _ = train(tmp_path / "plain", *args, "--eval_steps", "2", "--max_eval_samples", "12")
    assert metrics["eval_loss"] == pytest.approx(plain["eval_loss"], abs=1e-6)


def test_a_resumed_run_keeps_the_time_budget_it_had_spent(tmp_path, monkeypatch):
    clock = iter(range(10_000))  # every reading of the CPU clock advances it by one second: each step takes 1 s
    monkeypatch.setattr(training.time, "process_time", lambda: float(next(clock)))
    text = str(training_data.shakespeare_txt(tmp_path))
    args = [
        *QUICK, "--train_file", text, "--block_size", "32", "--max_steps", "100", "--max_train_seconds", "6",
        "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none", "--output_dir", str(tmp_path / "run"),
    ]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        training.run(*training.parse_args(args), callbacks=[Crash(step=5)])
    saved = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["TimeBudgetCallback"]["attributes"]["elapsed"] == 4.0

    training.main([*args, "--resume_from_checkpoint", "last"])
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 6  # 4 steps before the crash + 2 after: the budget of 6 s, not 6 s more
    assert state["stateful_callbacks"]["TimeBudgetCallback"]["attributes"]["elapsed"] == 6.0


def test_a_time_budget_sets_each_steps_rate_from_the_budget_spent_before_it(tmp_path, monkeypatch):
    clock = iter(range(10_000))  # each step takes 1 s of "CPU time"
    monkeypatch.setattr(training.time, "process_time", lambda: float(next(clock)))
    text = str(training_data.shakespeare_txt(tmp_path))
    args = [
        *QUICK, "--train_file", text, "--block_size", "32", "--max_steps", "100", "--max_train_seconds", "5",
        "--learning_rate", "0.01", "--warmup_steps", "0.4", "--lr_scheduler_type", "cosine", "--logging_steps", "1",
        "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none",
    ]  # fmt: skip
    # Step k (from 0) starts with k of the 5 s spent: warmup over the first 2 s, then a cosine over the other 3.
    expected = [0.0, 0.005, 0.01, 0.005 * (1 + math.cos(math.pi / 3)), 0.005 * (1 + math.cos(2 * math.pi / 3))]

    def logged_rates(folder):
        state = json.loads((folder / "trainer_state.json").read_text())
        return [entry["learning_rate"] for entry in state["log_history"] if "loss" in entry]

    training.main([*args, "--output_dir", str(tmp_path / "uninterrupted")])
    assert logged_rates(tmp_path / "uninterrupted") == pytest.approx(expected, abs=1e-12)
    # Killed after step 3 and resumed from checkpoint-2: the rest of the budget, at the same rates.
    interrupted = ["--output_dir", str(tmp_path / "interrupted")]
    with pytest.raises(KeyboardInterrupt):
        training.run(*training.parse_args([*args, *interrupted]), callbacks=[Crash(step=3)])
    training.main([*args, *interrupted, "--resume_from_checkpoint", "last"])
    assert logged_rates(tmp_path / "interrupted") == pytest.approx(expected, abs=1e-12)


def test_a_time_budget_logs_evaluates_and_saves_at_fractions_of_the_budget(tmp_path, monkeypatch):
    clock = iter(range(10_000))  # each step takes 1 s of "CPU time"
    monkeypatch.setattr(training.time, "process_time", lambda: float(next(clock)))
    text = str(training_data.shakespeare_txt(tmp_path))
    train(tmp_path, "--train_file", text, "--block_size", "32", "--max_steps", "100000", "--max_train_seconds", "10",
          "--logging_steps", "0.2", "--eval_strategy", "steps", "--eval_steps", "0.5", "--save_strategy", "steps",
          "--save_steps", "0.5", "--save_total_limit", "5")  # fmt: skip
    state = json.loads((tmp_path / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 10
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [2, 4, 6, 8, 10]
    assert [e["step"] for e in state["log_history"] if "eval_loss" in e] == [5, 10]
    assert sorted(p.name for p in (tmp_path / "model").glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]


def test_resume_without_a_complete_checkpoint_starts_from_the_beginning(tmp_path, caplog):
    """A run killed before its first checkpoint (or during it) is resumed by running it from the start."""
    (tmp_path / "model" / "checkpoint-2").mkdir(parents=True)  # what a kill during the first save leaves
    train(tmp_path, "--train_file", str(training_data.shakespeare_txt(tmp_path)), "--resume_from_checkpoint", "last")
    assert "checkpoint-2 is an incomplete checkpoint" in caplog.text and "removing it" in caplog.text
    assert "no complete checkpoint in" in caplog.text and "training from the start" in caplog.text
    state = json.loads((tmp_path / "model" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and not (tmp_path / "model" / "checkpoint-2").exists()


def test_a_reused_folder_holds_only_its_own_models_code_and_no_pickle(tmp_path):
    text = str(training_data.shakespeare_txt(tmp_path))
    train(tmp_path, "--train_file", text, "--tokenizer_type", "char", "--block_size", "32")
    assert (tmp_path / "model" / "modeling_tiny_attention.py").is_file()
    _, folder = train(tmp_path, "--train_file", text, "--tokenizer_type", "char", "--block_size", "32", "--arch", "rnn")
    code = sorted(path.name for path in folder.glob("*.py"))
    assert code == [
        "configuration_tiny_rnn.py", "extractive_qa.py", "modeling_tiny_rnn.py", "pipelines_tinylm.py",
        "task_formats.py", "tinylm_common.py", "tinylm_compat.py",
    ]  # fmt: skip
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pkl"))
    assert json.loads((folder / "training_args.json").read_text())["output_dir"] == str(folder)
    assert AutoConfig.from_pretrained(folder, trust_remote_code=True).model_type == "tiny_rnn"


def test_a_final_save_killed_at_any_moment_never_pairs_one_models_config_with_anothers_files(tmp_path, monkeypatch):
    """A reused folder of a finished attention run gets an RNN's final save, cut short before each file it moves in:
    the folder then holds no config.json (which every loader refuses) until the new model is whole, never one
    model's config beside the other's weights, and the earlier run's card and code are gone."""
    text = str(training_data.shakespeare_txt(tmp_path))
    train(tmp_path, "--train_file", text, "--tokenizer_type", "char", "--block_size", "32")
    earlier = tmp_path / "earlier"
    (tmp_path / "model").rename(earlier)
    tokenizer = AutoTokenizer.from_pretrained(earlier)
    rnn = AutoModelForCausalLM.from_config(TinyRNNConfig(vocab_size=len(tokenizer), hidden_size=16)).eval()
    ids = torch.tensor([tokenizer("To be, or not")["input_ids"]])

    def logits(folder):
        with torch.no_grad():
            return AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)(ids).logits

    with torch.no_grad():
        expected = rnn(ids).logits
    moves, real_replace = [], Path.replace

    class Killed(BaseException):
        pass

    def counted_replace(self, target, limit):
        if len(moves) == limit:
            raise Killed
        moves.append(Path(target).name)
        return real_replace(self, target)

    for limit in range(40):
        folder = tmp_path / f"reused-{limit}"
        shutil.copytree(earlier, folder)
        trainer = Trainer(model=rnn, args=TrainingArguments(str(folder), report_to=[]), processing_class=tokenizer)
        moves.clear()
        monkeypatch.setattr(Path, "replace", lambda self, target, limit=limit: counted_replace(self, target, limit))
        try:
            checkpoints.save_final_folder(trainer)
            finished = True
        except Killed:
            finished = False
        monkeypatch.setattr(Path, "replace", real_replace)
        assert (folder / "config.json").exists() == finished, f"killed after moving {moves}"
        if finished:
            assert torch.equal(logits(folder), expected)
            assert moves[-1] == "config.json" and limit == len(moves)
            assert (folder / "README.md").read_text() != (earlier / "README.md").read_text()  # the RNN's own card
            assert not (folder / "modeling_tiny_attention.py").exists() and not list(folder.glob(".final*"))
            break
        shutil.rmtree(folder)
    else:
        raise AssertionError("the final save never finished")


def test_an_incomplete_checkpoint_named_explicitly_is_refused(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="checkpoint-2 is an incomplete checkpoint \\(no tokenizer_config.json, "):
        train(tmp_path, "--resume_from_checkpoint", str(tmp_path / "checkpoint-2"))


def test_an_argument_train_py_lacks_is_named_with_the_nearest_ones(tmp_path):
    """Not transformers' "Some specified arguments are not used by the HfArgumentParser", after parsing."""
    with pytest.raises(ValueError, match=re.escape(
        "train.py has no argument --outputdir (did you mean --output_dir?), --learning-rat (did you mean "
        "--learning_rate or --muon_learning_rate?), --bogus; `python train.py --help` lists them all."
    )):  # fmt: skip
        training.parse_args(["--outputdir", "x", "--learning-rat=0.1", "--max-steps", "3", "--bogus", "1"])
    config = tmp_path / "run.yaml"
    config.write_text("arch: attention\nlearnin_rate: 0.1\n")
    with pytest.raises(ValueError, match=re.escape("no argument `learnin_rate` (did you mean --learning_rate")):
        training.parse_args([str(config)])
    assert training.parse_args(["--max-steps", "3", "--no_remove_unused_columns"])[2].max_steps == 3
    # transformers 4's spelling of an argument 5 renamed gets 5's.
    with pytest.raises(ValueError, match=re.escape(
        "--group_by_length (a transformers 4 argument; in 5 use --train_sampling_strategy group_by_length)"
    )):  # fmt: skip
        training.parse_args(["--group_by_length"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max_steps", "-5"], "--max_steps must be a positive number of optimizer steps (or -1, the default"),
        (["--max-steps=0"], "--max-steps must be a positive number of optimizer steps"),
        (["--learning_rate", "nan"], "--learning_rate must be a finite number, got nan."),
        (["--weight_decay", "inf"], "--weight_decay must be a finite number, got inf."),
        (["--max_train_samples", "0"], "--max_train_samples must be more than 0, got 0."),
        (["--per-device-train-batch-size", "0"], "--per-device-train-batch-size must be more than 0, got 0."),
        (["--block_size", "-8"], "--block_size must be more than 0, got -8."),
        (["--learning_rate", "-0.1"], "--learning_rate must be at least 0, got -0.1."),
        (["--label_smoothing_factor", "1.5"], "--label_smoothing_factor must be in [0, 1), got 1.5."),
        (["--validation_split_percentage", "100"], "--validation_split_percentage must be in [0, 100), got 100."),
        (["--max_train_seconds", "0"], "--max_train_seconds must be more than 0, got 0.0."),
    ],
)
def test_meaningless_numbers_are_refused_naming_the_flag_as_typed(argv, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        training.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--config_overrides", "max_position_embeddings=64"],
            "--config_overrides max_position_embeddings=64 is shorter than the longest sequence this run feeds the "
            "model (128 tokens: --block_size); raise it, or lower those.",
        ),
        (
            ["--task", "translation", "--source_lang", "en", "--target_lang", "de", "--config_overrides",
             "max_position_embeddings=100"],
            "--config_overrides max_position_embeddings=100 is shorter than the longest sequence this run feeds the "
            "model (320 tokens: --max_source_length plus --max_target_length or --max_new_tokens)",
        ),  # fmt: skip
        (
            ["--model_size", "tiny", "--config_overrides", "num_attention_heads=3"],
            "--model_size tiny with --config_overrides num_attention_heads=3 describes no buildable model: "
            "`hidden_size` (64) must be divisible by `num_attention_heads` (3).",
        ),
        (["--config_overrides", "hiden_size=8"], "--config_overrides: 'hiden_size=8' is not 'field=value'"),
    ],
)
def test_config_overrides_that_contradict_the_run_are_refused_when_arguments_are_read(argv, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        training.parse_args(argv)


def test_meaningless_numbers_in_a_config_file_name_the_key_and_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("max_eval_samples: -3\n")
    with pytest.raises(ValueError, match=re.escape(f"`max_eval_samples` in {config} must be more than 0, got -3.")):
        training.parse_args([str(config)])


@pytest.mark.parametrize("existing", [False, True])
def test_a_run_that_fails_before_training_leaves_the_output_folder_as_it_was(tmp_path, monkeypatch, existing):
    output_dir = tmp_path / "model"
    if existing:  # an earlier run's folder, with a file of the name the new run's tokenizer gets
        output_dir.mkdir()
        (output_dir / "notes.txt").write_text("mine")
        (output_dir / "tokenizer.json").write_text("an earlier run's")
    built = []

    def failing_features(*args, **kwargs):  # after the tokenizer is trained and saved, and the model is built
        built.append(sorted(path.name for path in output_dir.iterdir()))
        raise RuntimeError("a data mistake found while making features")

    monkeypatch.setattr(LanguageModelling, "features", failing_features)
    with pytest.raises(RuntimeError, match="a data mistake"):
        train(tmp_path, "--tokenizer_type", "char", "--block_size", "32", "--max_train_samples", "50")
    assert "trained_tokenizer" in built[0]  # the run had written there
    if existing:
        assert sorted(path.name for path in output_dir.iterdir()) == ["notes.txt", "tokenizer.json"]
        assert (output_dir / "tokenizer.json").read_text() == "an earlier run's"  # not replaced, not lost
    else:
        assert not output_dir.exists()
