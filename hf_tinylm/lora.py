"""Default LoRA targets, registered with PEFT when hf_tinylm is imported (and PEFT is installed).

PEFT fills in `target_modules` from its public model_type -> module names mapping when a `LoraConfig` names none.
The attention family has no `q_proj`/`v_proj` (Llama's default) because queries, keys and values come from one fused
`qkv_proj`, and gate and up from one `gate_up_proj`: its default is every projection of the blocks, not the head.

The recurrent family has no linear layer worth adapting by default: its weights live in torch's fused
`nn.RNN`/`nn.LSTM`/`nn.GRU`, which LoRA reaches only through `target_parameters`, and the head is tied to the input
embedding (a LoRA there stops being the same model once merged). PEFT's mapping holds module names only, so the
recurrent default cannot be registered there: pass `target_parameters=RNN_LORA_TARGET_PARAMETERS`.
"""

import importlib.util

LORA_TARGET_MODULES = {"tiny_attention": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}
# The input-to-hidden and hidden-to-hidden matrices of every layer (`model.layers.<i>.rnn`); the biases are 1D,
# which PEFT's parameter LoRA does not adapt.
RNN_LORA_TARGET_PARAMETERS = ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]

__all__ = ["LORA_TARGET_MODULES", "RNN_LORA_TARGET_PARAMETERS", "register_lora_targets"]


def register_lora_targets() -> bool:
    """Add `LORA_TARGET_MODULES` to PEFT's defaults (an entry already there is kept); False without PEFT."""
    if importlib.util.find_spec("peft") is None:
        return False
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    for model_type, modules in LORA_TARGET_MODULES.items():
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(model_type, list(modules))
    return True
