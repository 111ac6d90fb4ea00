"""The benchmark baselines compute what they claim to: a speed ratio means nothing against a different function."""

import sys
from pathlib import Path

import pytest
import torch

from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM
from hf_tinylm.llama_conversion import tiny_attention_to_llama

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_attention import BareDecoder, check_same_function  # noqa: E402


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_bare_decoder_matches_the_model_and_llama(kv_heads):
    torch.manual_seed(0)
    config = TinyAttentionConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
    )
    model = TinyAttentionForCausalLM(config).eval()
    bare = BareDecoder(model)
    batch = torch.randint(0, config.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(bare.logits(batch), model(batch).logits, atol=1e-5, rtol=1e-5)
    prompt = torch.randint(0, config.vocab_size, (1, 8))
    # Raises unless losses agree and all three generate the same tokens.
    check_same_function(model, tiny_attention_to_llama(model).eval(), bare, batch, prompt, new_tokens=12)


def test_bare_decoder_rejects_what_it_does_not_implement():
    config = TinyAttentionConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    config.hidden_dropout = 0.1
    with pytest.raises(ValueError, match="no dropout"):
        BareDecoder(TinyAttentionForCausalLM(config))


def test_bare_decoder_trains_its_own_copy():
    model = TinyAttentionForCausalLM(TinyAttentionConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1))
    before = model.lm_head.weight.detach().clone()
    bare = BareDecoder(model)
    bare.loss(torch.randint(0, 97, (2, 16))).backward()
    assert bare.model.lm_head.weight.grad is not None and model.lm_head.weight.grad is None
    assert torch.equal(model.lm_head.weight, before)
