"""LoRA through PEFT on both families: the default targets, training, merging, generation and adapter round trips.

Adapters are built with `init_lora_weights=False` where a check needs them to change the output from the start
(PEFT's default starts LoRA's B at zero, an adapter that changes nothing until trained).
"""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from hf_tinylm import LORA_TARGET_MODULES, RNN_LORA_TARGET_PARAMETERS, TinyAttentionForCausalLM
from tests.model_checks import random_ids, step_by_step_argmax
from tests.test_tiny_attention import tiny_config as attention_config
from tests.test_tiny_rnn import CELLS
from tests.test_tiny_rnn import tiny_model as rnn_model

FAMILIES = ("attention", "lstm")


def base_model(family: str, seed: int = 0):
    if family == "attention":
        torch.manual_seed(seed)
        return TinyAttentionForCausalLM(attention_config()).double().eval()
    return rnn_model(seed=seed, cell=family)


def lora_config(family: str, **overrides) -> LoraConfig:
    """The README's recipe: nothing to name for attention; the recurrent weights for the RNN."""
    targets = {} if family == "attention" else {"target_parameters": RNN_LORA_TARGET_PARAMETERS}
    return LoraConfig(task_type="CAUSAL_LM", r=4, **targets, **overrides)


def adapted(family: str, seed: int = 0, **overrides):
    return get_peft_model(base_model(family, seed), lora_config(family, **overrides)).eval()


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_attention_default_targets_are_the_fused_projections():
    model = adapted("attention")
    targeted = {name.rsplit(".", 1)[-1] for name in model.targeted_module_names}
    assert targeted == set(LORA_TARGET_MODULES["tiny_attention"])
    assert len(model.targeted_module_names) == 4 * model.config.num_hidden_layers


def test_rnn_recipe_targets_both_recurrent_matrices_of_every_layer():
    model = adapted("lstm")
    expected = {
        f"model.layers.{i}.{name}"
        for i in range(model.config.num_hidden_layers)
        for name in RNN_LORA_TARGET_PARAMETERS
    }
    assert set(model.targeted_parameter_names) == expected
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


@pytest.mark.parametrize("family", FAMILIES)
def test_untrained_adapter_changes_nothing_and_training_changes_the_output(family):
    reference = base_model(family)
    model = adapted(family)
    ids = random_ids(2, 10)
    # Equal up to rounding: the recurrent kernels add a zero update to the weights.
    torch.testing.assert_close(logits(model, ids), logits(reference, ids), rtol=0, atol=1e-12)

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    model.eval()
    assert (logits(model, ids) - logits(reference, ids)).abs().max() > 1e-3
    # Only the adapter trained: switched off, the model is the base model again.
    with model.disable_adapter():
        torch.testing.assert_close(logits(model, ids), logits(reference, ids), rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_merge_and_unload_gives_the_adapted_logits(family):
    model = adapted(family, init_lora_weights=False)
    ids = random_ids(2, 10)
    expected = logits(model, ids)
    assert (expected - logits(base_model(family), ids)).abs().max() > 1e-3
    merged = model.merge_and_unload()
    torch.testing.assert_close(logits(merged, ids), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ("attention", *CELLS))
def test_cached_generation_with_an_adapter_equals_full_sequence_forwards(family):
    """Every decoding step sees the adapter: the scores `generate()` returns are the full sequence's logits."""
    model = adapted(family, init_lora_weights=False)
    prompt = random_ids(2, 6)
    generated = model.generate(
        input_ids=prompt,
        max_new_tokens=8,
        do_sample=False,
        use_cache=True,
        output_logits=True,
        return_dict_in_generate=True,
    )
    step_logits = torch.stack(generated.logits, dim=1)
    full_logits = logits(model, generated.sequences)[:, prompt.shape[1] - 1 : -1]
    # generate() keeps the scores in float32.
    torch.testing.assert_close(step_logits, full_logits.float(), rtol=0, atol=1e-6)
    assert (
        full_logits - logits(base_model(family), generated.sequences)[:, prompt.shape[1] - 1 : -1]
    ).abs().max() > 1e-3
    assert torch.equal(generated.sequences, step_by_step_argmax(model, prompt, 8))


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_adapter_loads_onto_a_fresh_base_with_identical_logits(family, tmp_path):
    model = adapted(family, init_lora_weights=False)
    ids = random_ids(2, 10)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(base_model(family), tmp_path).eval()
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids), rtol=0, atol=0)
