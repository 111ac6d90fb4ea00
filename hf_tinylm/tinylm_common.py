"""Pieces both model families share. Copied into every saved model folder, so it imports only torch/transformers."""

import os

import torch


def check_model_inputs(
    config,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    past_length: int = 0,
) -> None:
    """Fail early, naming the problem, on inputs that would otherwise crash deep inside a kernel or be silently wrong.

    Checks token ids against the vocabulary, the total length against `max_position_embeddings` (when the config has
    one and does not say how to extend it), and a 2D attention mask against the (batch, past + new tokens) shape.
    Skipped while `torch.compile` traces, where data-dependent checks would break the graph.
    """
    if torch.compiler.is_compiling():
        return
    inputs = input_ids if input_ids is not None else inputs_embeds
    batch_size, seq_length = inputs.shape[:2]
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, sequence), got {tuple(input_ids.shape)}.")
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
            bad = input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)][0].item()
            raise ValueError(
                f"`input_ids` contains token id {bad}, outside the model's vocabulary of {config.vocab_size} "
                "tokens. Was the input encoded with a different tokenizer?"
            )
    limit = getattr(config, "max_position_embeddings", None)
    rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    if limit is not None and rope_type == "default" and past_length + seq_length > limit:
        raise ValueError(
            f"The sequence is {past_length + seq_length} tokens long ({past_length} cached + {seq_length} new), "
            f"more than `max_position_embeddings` ({limit}). Truncate the input, or set `rope_parameters` to a "
            "scaling `rope_type` (e.g. 'dynamic' or 'linear') to extend the context."
        )
    if attention_mask is not None and attention_mask.dim() == 2:
        expected = (batch_size, past_length + seq_length)
        if tuple(attention_mask.shape) != expected:
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)}, expected (batch, past + new tokens) = "
                f"{expected}."
            )


class HubReadyMixin:
    """Makes `save_pretrained` write a folder that uploads to the Hub as is and works where hf_tinylm is not installed.

    Besides the model code transformers copies for `auto_map`, the pipeline code is copied too, and the config lists
    the pipeline of the task the model was trained for (`custom_pipelines`), so `pipeline("translation",
    model=folder, trust_remote_code=True)` works, and without the task name too. Where hf_tinylm is installed, a model card (README.md) is written when the folder
    has none; train.py then replaces it with one that has the training data and evaluation results.

    Both families inherit it first: `class TinyXPreTrainedModel(HubReadyMixin, PreTrainedModel)`.
    """

    def save_pretrained(self, save_directory, is_main_process: bool = True, **kwargs):
        # A relative import, so transformers copies pipelines_tinylm.py (and what it imports) beside this file.
        from .pipelines_tinylm import custom_pipelines

        self.config.custom_pipelines = custom_pipelines(self)
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if is_main_process and not os.path.exists(os.path.join(save_directory, "README.md")):
            try:
                from hf_tinylm.hub import write_model_card
            except ImportError:  # remote code on a machine without hf_tinylm: no card
                return
            write_model_card(save_directory)
