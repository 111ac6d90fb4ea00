"""The self-attention family: the shared model checks plus what is specific to attention."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from hf_tinylm import (
    TinyAttentionConfig,
    TinyAttentionForCausalLM,
    TinyAttentionForQuestionAnswering,
    TinyRNNConfig,
    TinyRNNForCausalLM,
    convert,
)
from hf_tinylm.llama_conversion import llama_to_tiny_attention, tiny_attention_to_llama
from tests.model_checks import VOCAB, CausalLMChecks, random_ids


def tiny_config(**overrides) -> TinyAttentionConfig:
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    settings.update(overrides)
    return TinyAttentionConfig(**settings)


class TestTinyAttentionModel(CausalLMChecks):
    def make_config(self, **overrides):
        return tiny_config(**overrides)


def test_registered_with_auto_classes():
    config = AutoConfig.for_model("tiny_attention", hidden_size=32, num_attention_heads=4)
    assert isinstance(config, TinyAttentionConfig)
    assert isinstance(AutoModelForCausalLM.from_config(tiny_config()), TinyAttentionForCausalLM)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(hidden_size=30, num_attention_heads=4), "divisible by `num_attention_heads`"),
        (dict(num_key_value_heads=3), "multiple of `num_key_value_heads`"),
        (dict(num_hidden_layers=0), "`num_hidden_layers` must be a positive integer"),
        (dict(vocab_size=-5), "`vocab_size` must be a positive integer"),
        (dict(hidden_dropout=1.0), "`hidden_dropout` must be in"),
        (dict(pad_token_id=VOCAB), "`pad_token_id`"),
    ],
)
def test_invalid_config_values_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_attention_is_scaled_by_the_head_dimension():
    model = TinyAttentionForCausalLM(tiny_config(hidden_size=64, num_attention_heads=4))
    assert model.model.layers[0].self_attn.scaling == pytest.approx(16**-0.5)


def test_eager_and_sdpa_agree_and_eager_returns_attention_probabilities():
    torch.manual_seed(0)
    sdpa = TinyAttentionForCausalLM(tiny_config(attn_implementation="sdpa")).eval()
    eager = TinyAttentionForCausalLM(tiny_config(attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    ids = random_ids(2, 10)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding exercises the masked path of both kernels
    with torch.no_grad():
        expected = sdpa(ids, attention_mask=mask).logits
        out = eager(ids, attention_mask=mask, output_attentions=True)
    real = mask.bool()  # pad positions attend to nothing; kernels may fill them differently
    torch.testing.assert_close(out.logits[real], expected[real], rtol=1e-5, atol=1e-5)
    probs = out.attentions[0]
    assert probs.shape == (2, 4, 10, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 10))
    assert torch.all(probs[0, :, :, :3][:, 3:] == 0), "padded keys must get no attention"
    assert torch.all(probs[1].triu(diagonal=1) == 0), "attention must be causal"
    assert torch.all(probs[0, :, 3:].triu(diagonal=4) == 0), "attention must be causal"


def test_sequence_longer_than_max_positions_raises_unless_rope_scaling_extends_it():
    model = TinyAttentionForCausalLM(tiny_config(max_position_embeddings=16)).eval()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(random_ids(1, 17))
    cached = model(random_ids(1, 10), use_cache=True).cache
    with pytest.raises(ValueError, match="10 cached"):
        model(random_ids(1, 7), cache=cached)
    extended = TinyAttentionForCausalLM(
        tiny_config(
            max_position_embeddings=16, rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
        )
    ).eval()
    assert extended(random_ids(1, 24)).logits.shape == (1, 24, VOCAB)


def _llama_config(config: TinyAttentionConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=None,
    )


@pytest.mark.parametrize("tied", [True, False])
def test_llama_conversion_both_ways_gives_the_same_logits(tied):
    torch.manual_seed(0)
    llama = LlamaForCausalLM(_llama_config(tiny_config(tie_word_embeddings=tied))).eval()
    ids = random_ids(2, 12)
    with torch.no_grad():
        expected = llama(ids).logits
        ours = llama_to_tiny_attention(llama).eval()
        assert isinstance(ours, TinyAttentionForCausalLM)
        torch.testing.assert_close(ours(ids).logits, expected, rtol=1e-5, atol=1e-5)
        back = tiny_attention_to_llama(ours).eval()
        assert isinstance(back, LlamaForCausalLM)
        torch.testing.assert_close(back(ids).logits, expected, rtol=1e-5, atol=1e-5)
    assert ours.config.tie_word_embeddings is tied


def test_original_llama_configs_without_a_pad_token_convert():
    config = _llama_config(tiny_config())
    config.pad_token_id = -1  # how the first LLaMA checkpoints said "no padding token"
    ours = llama_to_tiny_attention(LlamaForCausalLM(config))
    assert ours.config.pad_token_id is None


def test_conversion_refuses_what_llama_cannot_express():
    model = TinyAttentionForCausalLM(tiny_config(hidden_dropout=0.1))
    with pytest.raises(ValueError, match="hidden_dropout"):
        tiny_attention_to_llama(model)


def test_convert_command_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    LlamaForCausalLM(_llama_config(tiny_config())).save_pretrained(tmp_path / "llama")
    convert.main(["--to", "tiny_attention", str(tmp_path / "llama"), str(tmp_path / "ours")])
    convert.main(["--to", "llama", str(tmp_path / "ours"), str(tmp_path / "back")])
    ids = random_ids(1, 10)
    with torch.no_grad():
        logits = [AutoModelForCausalLM.from_pretrained(tmp_path / name)(ids).logits for name in ("llama", "ours", "back")]
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[2], logits[0], rtol=1e-5, atol=1e-5)

    # Weights that would not carry over are refused before anything is written (not loaded half at random).
    TinyRNNForCausalLM(TinyRNNConfig(vocab_size=VOCAB, hidden_size=16)).save_pretrained(tmp_path / "rnn")
    TinyAttentionForQuestionAnswering(tiny_config()).save_pretrained(tmp_path / "qa")
    with pytest.raises(ValueError, match="holds a 'tiny_rnn' model; only 'tiny_attention' models convert"):
        convert.main(["--to", "llama", str(tmp_path / "rnn"), str(tmp_path / "out")])
    with pytest.raises(ValueError, match="holds a TinyAttentionForQuestionAnswering"):
        convert.main(["--to", "llama", str(tmp_path / "qa"), str(tmp_path / "out")])
    with pytest.raises(ValueError, match="holds a 'tiny_attention' model; only 'llama' models convert"):
        convert.main(["--to", "tiny_attention", str(tmp_path / "ours"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_torch_compile_with_static_cache_generates_the_same_tokens():
    model = TinyAttentionForCausalLM(tiny_config()).eval()
    prompt = random_ids(1, 5)
    expected = model.generate(prompt, max_new_tokens=4, do_sample=False)
    model.forward = torch.compile(model.forward, dynamic=False, fullgraph=False)
    compiled = model.generate(prompt, max_new_tokens=4, do_sample=False, cache_implementation="static")
    assert torch.equal(compiled, expected)
