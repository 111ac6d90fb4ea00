"""Hub-ready folders: model cards (metadata round trip, validation) and uploads, sent to a stand-in Hub server on
127.0.0.1 that speaks the parts of the Hub API `huggingface_hub` uses to create a repository and commit files."""

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants, get_session, set_client_factory
from huggingface_hub.errors import EntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import _http
from transformers.dynamic_module_utils import get_class_from_dynamic_module
from transformers.utils.hub import PushToHubMixin

from hf_tinylm import TinyAttentionConfig, TinyAttentionForQuestionAnswering, TinyRNNConfig, TinyRNNForCausalLM
from hf_tinylm.cli import main
from hf_tinylm.hub import (
    MIN_TRANSFORMERS_VERSION,
    check_and_upload,
    check_folder,
    measured_metrics,
    validate_model_card,
    write_model_card,
)
from hf_tinylm.task_formats import CONFIG_KEY, task_settings
from hf_tinylm.tinylm_common import HubReadyMixin
from hf_tinylm.tokenization import train_tokenizer

EVAL_RESULTS = {
    "eval_loss": 1.25,
    "eval_bleu": 12.5,
    "eval_runtime": 3.2,
    "eval_samples_per_second": 90.1,
    "epoch": 2.0,
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["A man rides a red bike.", "Ein Mann fährt ein rotes Fahrrad."], "char", vocab_size=300)


def save_translation_model(folder, tokenizer):
    config = TinyRNNConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        cell="gru",
        pad_token_id=tokenizer.pad_token_id,
        task_specific_params={CONFIG_KEY: task_settings("translation", src_lang="en", tgt_lang="de")},
    )
    torch.manual_seed(0)
    model = TinyRNNForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def test_model_card_metadata_round_trips_and_the_text_reports_the_model(tmp_path, tokenizer):
    model = save_translation_model(tmp_path, tokenizer)
    (tmp_path / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write_model_card(
        tmp_path,
        eval_results=EVAL_RESULTS,
        training_args={"learning_rate": 0.003, "max_steps": 2000},
        dataset_id="bentrevett/multi30k",
        license="other",
        language=["en", "de"],
        base_model="someone/tiny-rnn-lm",
        repo_id="someone/tiny-rnn-en-de",
        eval_split="validation",
        non_commercial=True,
    )

    card = validate_model_card(tmp_path)
    data = card.data
    assert (data.license, data.language, data.library_name, data.pipeline_tag) == (
        "other",
        ["en", "de"],
        "transformers",
        "translation",
    )
    assert data.datasets == ["bentrevett/multi30k"] and data.base_model == "someone/tiny-rnn-lm"
    assert {"hf_tinylm", "tiny_rnn", "custom_code"} <= set(data.tags)
    assert data.model_name == "someone/tiny-rnn-en-de"
    assert [
        (r.task_type, r.dataset_type, r.dataset_split, r.metric_type, r.metric_value) for r in data.eval_results
    ] == [
        ("translation", "bentrevett/multi30k", "validation", "loss", 1.25),
        ("translation", "bentrevett/multi30k", "validation", "bleu", 12.5),
    ]
    assert json.loads((tmp_path / "eval_results.json").read_text()) == EVAL_RESULTS

    text = card.text
    assert f"**{model.num_parameters():,} parameters**" in text
    assert "| `cell` | gru |" in text and "| `learning_rate` | 0.003 |" in text and "| bleu | 12.5 |" in text
    assert "![Training and evaluation loss](loss_curve.png)" in text
    assert f"transformers>={MIN_TRANSFORMERS_VERSION}" in text and "Non-commercial use only" in text
    assert (
        'pipe = pipeline("translation", model="someone/tiny-rnn-en-de", trust_remote_code=True)\n'
        'pipe("A man is riding a bicycle down the street.")' in text
    )
    assert ModelCard.load(tmp_path / "README.md").content == card.content


def test_a_dataset_without_a_hub_id_is_named_in_the_text_only(tmp_path, tokenizer):
    save_translation_model(tmp_path, tokenizer)
    card = write_model_card(tmp_path, eval_results=EVAL_RESULTS, dataset_name="multi30k (task 1, en-de), local copy")
    assert card.data.datasets is None
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {
        ("custom", "multi30k (task 1, en-de), local copy")
    }
    assert "Training data: multi30k (task 1, en-de), local copy." in card.text
    validate_model_card(tmp_path)


def test_save_pretrained_writes_a_card_that_validates(tmp_path, tokenizer):
    config = TinyAttentionConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_attention_heads=2,
        num_hidden_layers=1,
        task_specific_params={CONFIG_KEY: task_settings("qa", mode="extractive")},
    )
    TinyAttentionForQuestionAnswering(config).save_pretrained(tmp_path)
    card = validate_model_card(tmp_path)
    assert card.data.pipeline_tag == "question-answering" and card.data.eval_results is None
    assert 'pipe(question="Where is the tower?", context="The tower stands in Paris.")' in card.text


def test_validation_names_what_is_wrong(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="no model card"):
        validate_model_card(tmp_path)
    save_translation_model(tmp_path, tokenizer)
    write_model_card(tmp_path, eval_results=EVAL_RESULTS)
    (tmp_path / "eval_results.json").write_text(json.dumps({**EVAL_RESULTS, "eval_bleu": 13.0}))
    with pytest.raises(
        ValueError, match=r"model-index reports .*'bleu': 12.5.* eval_results.json holds .*'bleu': 13.0"
    ):
        validate_model_card(tmp_path)
    (tmp_path / "README.md").write_text("---\nmodel-index: 3\n---\n# card\n")
    with pytest.raises(ValueError, match="model_index"):
        validate_model_card(tmp_path)


def test_measured_metrics_leave_out_the_run_bookkeeping():
    assert measured_metrics(EVAL_RESULTS) == {"loss": 1.25, "bleu": 12.5}


class StandInHub(BaseHTTPRequestHandler):
    """Answers create-repo, README validation, pre-upload (every file "regular", sent inline) and commit; records
    the files and the summary each commit carried."""

    def log_message(self, *args):
        pass

    def _reply(self, body, status=200):
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        path = self.path.split("?")[0]
        endpoint = f"http://{self.headers['Host']}"
        if path == "/api/repos/create":
            request = json.loads(body)
            self.server.repos.append(request)
            return self._reply({"url": f"{endpoint}/{request['organization']}/{request['name']}"})
        if path == "/api/validate-yaml":
            return self._reply({"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = json.loads(body)["files"]
            return self._reply(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if "/commit/" in path:
            lines = [json.loads(line) for line in body.splitlines()]
            self.server.summaries.append(lines[0]["value"]["summary"])
            self.server.commits.append(
                {
                    line["value"]["path"]: base64.b64decode(line["value"]["content"])
                    for line in lines
                    if line["key"] == "file"
                }
            )
            repo = path.removeprefix("/api/models/").split("/commit/")[0]
            return self._reply({"commitUrl": f"{endpoint}/{repo}/commit/{'1' * 40}", "commitOid": "1" * 40})
        self._reply({"error": f"the stand-in Hub does not serve {path}"}, status=404)


@contextmanager
def reachable_when_offline(host: str, port: int):
    """huggingface_hub refuses every request under HF_HUB_OFFLINE=1, one to 127.0.0.1 too: the request hook of its
    shared HTTP client raises OfflineModeIsEnabled before anything is sent. While this is active, the hook lets requests
    to host:port through as if online (and still does the rest of its work); every other request is refused as
    before."""
    previous = _http._GLOBAL_CLIENT_FACTORY

    def client_factory():
        client = previous()
        hooks = client.event_hooks["request"]

        def hook(request):
            if (request.url.host, request.url.port) == (host, port):
                with mock.patch.object(constants, "HF_HUB_OFFLINE", False):
                    return [run(request) for run in hooks]
            return [run(request) for run in hooks]

        client.event_hooks = {**client.event_hooks, "request": [hook]}
        return client

    set_client_factory(client_factory)  # closes the shared client; the next request makes one with the hook
    try:
        yield
    finally:
        set_client_factory(previous)


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    server.repos, server.commits, server.summaries = [], [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.endpoint = f"http://127.0.0.1:{server.server_port}"
    with reachable_when_offline("127.0.0.1", server.server_port):
        yield server
    server.shutdown()
    server.server_close()


def test_offline_mode_lets_only_the_stand_in_hub_through(hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    response = get_session().post(f"{hub.endpoint}/api/validate-yaml", json={"content": "", "repoType": "model"})
    assert response.status_code == 200 and response.json() == {"errors": [], "warnings": []}
    with pytest.raises(OfflineModeIsEnabled):
        get_session().get("https://huggingface.co/api/whoami-v2")
    with pytest.raises(OfflineModeIsEnabled):
        get_session().get(f"http://127.0.0.1:{hub.server_port + 1}/api/whoami-v2")


def folder_contents(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_check_and_upload_uploads_exactly_the_files_of_the_folder(tmp_path, tokenizer, hub):
    save_translation_model(tmp_path, tokenizer)
    write_model_card(tmp_path, eval_results=EVAL_RESULTS, repo_id="someone/tiny")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "events.txt").write_text("logs")

    commit = check_and_upload(tmp_path, "someone/tiny", token="hf_test", private=True, endpoint=hub.endpoint)
    assert commit.commit_url == f"{hub.endpoint}/someone/tiny/commit/{'1' * 40}"
    assert [(repo["organization"], repo["name"], repo["visibility"]) for repo in hub.repos] == [
        ("someone", "tiny", "private")
    ]
    (sent,) = hub.commits
    assert sent == folder_contents(tmp_path)
    assert {"pipelines_tinylm.py", "task_formats.py", "tinylm_common.py", "modeling_tiny_rnn.py", "README.md"} <= set(
        sent
    )


def test_the_model_s_own_push_to_hub_is_the_checked_upload(tmp_path, tokenizer, hub, monkeypatch):
    """`model.push_to_hub` / `save_pretrained(push_to_hub=True)`, as transformers users call them, go through
    `check_and_upload`: same files as a saved folder, and our card (transformers' would be a generic one) unless the
    repository already has a card."""
    remote_card = {"exists": False}
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(HfApi, "file_exists", lambda self, repo_id, filename, **kwargs: remote_card["exists"])
    model = save_translation_model(tmp_path / "saved", tokenizer)
    model.push_to_hub("someone/tiny", commit_message="first", tags=["demo"], token="hf_test")
    model.save_pretrained(tmp_path / "again", push_to_hub=True, repo_id="someone/tiny2", token="hf_test")
    assert [(repo["organization"], repo["name"]) for repo in hub.repos] == [("someone", "tiny"), ("someone", "tiny2")]
    assert hub.summaries == ["first", "Upload hf_tinylm model"]
    saved = folder_contents(tmp_path / "saved")
    for files in hub.commits:
        assert set(files) == set(saved) - {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}  # model only
        card = ModelCard(files["README.md"].decode())
        assert card.data.pipeline_tag == "translation" and {"hf_tinylm", "custom_code"} <= set(card.data.tags)
        assert 'pipeline("translation", model=' in card.text
    assert "demo" in ModelCard(hub.commits[0]["README.md"].decode()).data.tags
    assert "demo" not in ModelCard(hub.commits[1]["README.md"].decode()).data.tags

    # A card already on the Hub is kept (transformers' rule): the upload carries no card to replace it.
    remote_card["exists"] = True
    model.push_to_hub("someone/tiny", token="hf_test")
    assert set(hub.commits[-1]) == set(hub.commits[0]) - {"README.md"}

    # The folder is checked first: one that fails the check is not uploaded.
    monkeypatch.setattr(HubReadyMixin, "model_card_writer", None)
    with pytest.raises(ValueError, match="is not ready for the Hub: .*has no model card"):
        model.push_to_hub("someone/tiny", token="hf_test")
    assert len(hub.commits) == 3


def test_the_folder_s_copy_of_the_code_writes_no_card_and_uploads_with_transformers(tmp_path, tokenizer, monkeypatch):
    """The one behaviour change of the card and upload hooks: the folder's copy of the code (what trust_remote_code
    loads where hf_tinylm is not imported) has no hooks, even where hf_tinylm is installed."""
    save_translation_model(tmp_path / "saved", tokenizer)
    remote_class = get_class_from_dynamic_module("modeling_tiny_rnn.TinyRNNForCausalLM", tmp_path / "saved")
    assert remote_class.__module__.startswith("transformers_modules.")
    remote = remote_class.from_pretrained(tmp_path / "saved")
    assert (remote.model_card_writer, remote.checked_uploader) == (None, None)
    remote.save_pretrained(tmp_path / "resaved")
    assert not (tmp_path / "resaved" / "README.md").exists() and (tmp_path / "resaved" / "config.json").is_file()

    uploads = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(ModelCard, "load", classmethod(lambda cls, *args, **kwargs: raise_(EntryNotFoundError("none"))))
    monkeypatch.setattr(
        PushToHubMixin,
        "_upload_modified_files",
        lambda self, folder, repo_id, **kwargs: uploads.append((repo_id, folder_contents(Path(folder)), kwargs)),
    )
    remote.push_to_hub("someone/tiny", commit_message="first", tags=["demo"])
    ((repo_id, files, kwargs),) = uploads
    assert (repo_id, kwargs["commit_message"]) == ("someone/tiny", "first")
    card = ModelCard(files["README.md"].decode())  # transformers' generic card
    assert card.data.tags == ["demo"] and "hf_tinylm" not in card.text
    assert set(files) == set(folder_contents(tmp_path / "resaved")) | {"README.md"}


def raise_(error):
    raise error


def test_cli_uploads_a_complete_folder_and_refuses_an_incomplete_one(tmp_path, tokenizer, hub, capsys):
    save_translation_model(tmp_path, tokenizer)
    main(["upload", str(tmp_path), "someone/tiny", "--endpoint", hub.endpoint, "--token", "hf_test"])
    assert capsys.readouterr().out.strip() == f"{hub.endpoint}/someone/tiny/commit/{'1' * 40}"
    assert hub.commits == [folder_contents(tmp_path)]

    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "pipelines_tinylm.py").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["upload", str(tmp_path), "someone/tiny", "--endpoint", hub.endpoint, "--token", "hf_test"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "pipelines_tinylm.py, which config.json refers to, is missing" in error and "no tokenizer" in error
    assert len(hub.commits) == 1


def test_a_plain_language_model_folder_needs_no_custom_pipeline(tmp_path, tokenizer):
    """transformers' own text-generation pipeline serves it; listing ours would only block task inference."""
    model = TinyRNNForCausalLM(TinyRNNConfig(vocab_size=len(tokenizer), hidden_size=16))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["custom_pipelines"] == {}
    assert (tmp_path / "pipelines_tinylm.py").is_file()  # still carried, for a later fine-tune on a task
    check_folder(tmp_path)


def test_check_folder_lists_every_problem(tmp_path):
    trained_for_translation = {"hf_tinylm": {"task": "translation"}}
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "tiny_rnn", "task_specific_params": trained_for_translation})
    )
    with pytest.raises(ValueError) as error:
        check_folder(tmp_path)
    for problem in ("no `auto_map`", "no `custom_pipelines`", "no safetensors", "no tokenizer", "no model card"):
        assert problem in str(error.value)
