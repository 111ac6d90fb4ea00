"""hf_tinylm: small self-attention and recurrent language models as first-class transformers models.

Importing the package registers both model families with the Auto classes, and marks them for `auto_map` so a saved
folder loads with `trust_remote_code=True` on machines where hf_tinylm is not installed. It also registers the
translation, summarization and question-answering pipelines, so `pipeline("translation", model=model,
tokenizer=tokenizer)` works in-process. Its models write hf_tinylm's model card when saved, and upload through its
checked upload (`hf_tinylm.hub.check_and_upload`). Where PEFT is installed, it registers the attention family's
default LoRA targets (`hf_tinylm.lora`), so `get_peft_model(model, LoraConfig(task_type="CAUSAL_LM"))` needs no
`target_modules`.
"""

import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
)
from transformers.pipelines import PIPELINE_REGISTRY, REMOVED_TASKS

from .configuration_tiny_attention import TinyAttentionConfig
from .configuration_tiny_rnn import TinyRNNConfig
from .hub import check_and_upload, write_model_card
from .lora import LORA_TARGET_MODULES, RNN_LORA_TARGET_PARAMETERS, register_lora_targets
from .modeling_tiny_attention import (
    TinyAttentionForCausalLM,
    TinyAttentionForQuestionAnswering,
    TinyAttentionModel,
    TinyAttentionPreTrainedModel,
)
from .modeling_tiny_rnn import (
    TinyRNNForCausalLM,
    TinyRNNForQuestionAnswering,
    TinyRNNModel,
    TinyRNNPreTrainedModel,
)
from .pipelines_tinylm import (
    PIPELINES,
    TinyLMQuestionAnsweringPipeline,
    TinyLMSummarizationPipeline,
    TinyLMTranslationPipeline,
)
from .tinylm_common import HubReadyMixin

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
_register(TinyRNNConfig, TinyRNNModel, TinyRNNForCausalLM, TinyRNNForQuestionAnswering)

# The package's models write its model card and upload through its checked upload: hooks set here, because the
# shipped code must not import the package (a folder's copy of it, loaded as remote code, has neither).
HubReadyMixin.model_card_writer = staticmethod(write_model_card)
HubReadyMixin.checked_uploader = staticmethod(check_and_upload)


def _register_pipelines() -> None:
    for task, pipeline_class, auto_class_name in PIPELINES.values():
        # transformers v5 removed these tasks, and `pipeline()` rejects a removed task before it reads the registry.
        REMOVED_TASKS.pop(task, None)
        PIPELINE_REGISTRY.register_pipeline(
            task, pipeline_class=pipeline_class, pt_model=getattr(transformers, auto_class_name), type="text"
        )


_register_pipelines()
register_lora_targets()

__all__ = [
    "TinyAttentionConfig",
    "TinyAttentionPreTrainedModel",
    "TinyAttentionModel",
    "TinyAttentionForCausalLM",
    "TinyAttentionForQuestionAnswering",
    "TinyRNNConfig",
    "TinyRNNPreTrainedModel",
    "TinyRNNModel",
    "TinyRNNForCausalLM",
    "TinyRNNForQuestionAnswering",
    "TinyLMTranslationPipeline",
    "TinyLMSummarizationPipeline",
    "TinyLMQuestionAnsweringPipeline",
    "LORA_TARGET_MODULES",
    "RNN_LORA_TARGET_PARAMETERS",
]
