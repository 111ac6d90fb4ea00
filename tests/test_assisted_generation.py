"""Assisted generation, prompt lookup and early exit: exact on the attention family, refused up front by the RNN."""

import pytest
import torch

from hf_tinylm import TinyAttentionForCausalLM
from tests.model_checks import random_ids
from tests.test_tiny_attention import tiny_config as attention_config
from tests.test_tiny_rnn import tiny_model as rnn_model


def attention_model(seed: int = 0, num_hidden_layers: int = 3) -> TinyAttentionForCausalLM:
    torch.manual_seed(seed)
    return TinyAttentionForCausalLM(attention_config(num_hidden_layers=num_hidden_layers)).double().eval()


def greedy(model, prompt, **kwargs):
    return model.generate(prompt, max_new_tokens=10, do_sample=False, **kwargs)


@pytest.mark.parametrize(
    "drafting",
    [
        dict(assistant_early_exit=1),
        dict(prompt_lookup_num_tokens=3),
        dict(assistant_model="attention"),
    ],
    ids=["early_exit", "prompt_lookup", "attention_assistant"],
)
def test_drafting_gives_the_greedy_tokens_and_leaves_the_model_intact(drafting):
    model = attention_model()
    if drafting.get("assistant_model") == "attention":
        drafting = dict(assistant_model=attention_model(seed=1, num_hidden_layers=1))
    prompt = random_ids(1, 6)
    probe = random_ids(2, 9, seed=1)
    with torch.no_grad():
        logits_before = model(probe).logits
    expected = greedy(model, prompt)

    assert torch.equal(greedy(model, prompt, **drafting), expected)
    assert model.config.num_hidden_layers == len(model.model.layers) == 3
    with torch.no_grad():
        torch.testing.assert_close(model(probe).logits, logits_before, rtol=0, atol=0)
    assert torch.equal(greedy(model, prompt), expected)


def test_early_exit_drafts_with_the_first_layers_only():
    model = attention_model()
    ids = random_ids(1, 6)
    with torch.no_grad():
        full = model(ids).logits
        model.config.num_hidden_layers = 1
        early = model(ids).logits
        model.config.num_hidden_layers = 3
    assert (full - early).abs().max() > 1e-3


def test_config_is_restored_when_drafting_fails(monkeypatch):
    """transformers lowers `num_hidden_layers` while drafting and would leave it lowered after an error there."""
    model = attention_model()
    first_layer_forward = model.model.layers[0].forward

    def fail_while_drafting(*args, **kwargs):
        if model.config.num_hidden_layers == 1:
            raise RuntimeError("drafting failed")
        return first_layer_forward(*args, **kwargs)

    monkeypatch.setattr(model.model.layers[0], "forward", fail_while_drafting)
    with pytest.raises(RuntimeError, match="drafting failed"):
        greedy(model, random_ids(1, 6), assistant_early_exit=1)
    assert model.config.num_hidden_layers == 3


@pytest.mark.parametrize(
    "drafting, named",
    [
        (dict(prompt_lookup_num_tokens=3), "`prompt_lookup_num_tokens`"),
        (dict(assistant_early_exit=1), "`assistant_early_exit`"),
        (dict(assistant_model="attention"), "`assistant_model`"),
    ],
)
def test_a_recurrent_model_refuses_drafting_before_generating(drafting, named):
    model = rnn_model()
    if drafting.get("assistant_model") == "attention":
        drafting = dict(assistant_model=attention_model())
    state_before = {name: param.clone() for name, param in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"recurrent: its state cannot be rolled back.*Generate without {named}"):
        greedy(model, random_ids(1, 6), **drafting)
    assert all(torch.equal(param, state_before[name]) for name, param in model.state_dict().items())


def test_a_recurrent_assistant_is_refused_before_generating(monkeypatch):
    model, assistant = attention_model(), rnn_model()

    def no_forward(*args, **kwargs):
        raise AssertionError("the assistant ran before the refusal")

    monkeypatch.setattr(assistant, "forward", no_forward)
    monkeypatch.setattr(model, "forward", no_forward)
    with pytest.raises(
        ValueError, match=r"assistant model \(TinyRNNForCausalLM\) is recurrent.*without `assistant_model`"
    ):
        greedy(model, random_ids(1, 6), assistant_model=assistant)
