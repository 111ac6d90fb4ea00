"""hf_tinylm: small self-attention and recurrent language models as first-class transformers models.

Importing the package registers both model families with the Auto classes, and marks them for `auto_map` so a saved
folder loads with `trust_remote_code=True` on machines where hf_tinylm is not installed.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
)

from .configuration_tiny_attention import TinyAttentionConfig
from .modeling_tiny_attention import (
    TinyAttentionForCausalLM,
    TinyAttentionForQuestionAnswering,
    TinyAttentionModel,
    TinyAttentionPreTrainedModel,
)

__version__ = "0.1.0"


def _register(config_class, base_class, causal_lm_class, qa_class) -> None:
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class()
    for auto_class, model_class in (
        (AutoModel, base_class),
        (AutoModelForCausalLM, causal_lm_class),
        (AutoModelForQuestionAnswering, qa_class),
    ):
        auto_class.register(config_class, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


_register(TinyAttentionConfig, TinyAttentionModel, TinyAttentionForCausalLM, TinyAttentionForQuestionAnswering)

__all__ = [
    "TinyAttentionConfig",
    "TinyAttentionPreTrainedModel",
    "TinyAttentionModel",
    "TinyAttentionForCausalLM",
    "TinyAttentionForQuestionAnswering",
]
