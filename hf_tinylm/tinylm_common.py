"""Pieces both model families share. Copied into every saved model folder, so it imports only torch/transformers."""

import os
import tempfile

import torch


def context_limit(config) -> int | None:
    """The most tokens the model reads at once: `max_position_embeddings`, unless a RoPE scaling type extends it.
    None for models without a limit (the recurrent family)."""
    rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    return getattr(config, "max_position_embeddings", None) if rope_type == "default" else None


def logits_positions(logits_to_keep: int | torch.Tensor) -> slice | torch.Tensor:
    """The positions that get logits: the last `logits_to_keep` (0 means all), or the given indices, as `generate()`
    asks for only the last one."""
    return slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep


def check_model_inputs(
    config,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    past_length: int = 0,
    position_ids: torch.Tensor | None = None,
) -> None:
    """Fail early, naming the problem, on inputs that would otherwise crash deep inside a kernel or be silently wrong.

    Checks token ids against the vocabulary, the positions against `max_position_embeddings` (when the config has
    one and does not say how to extend it), and a 2D attention mask against the (batch, past + new tokens) shape.
    The positions are the given `position_ids` (packed rows restart them at each document, so a row may be longer
    than the limit), else past + new tokens. Skipped while `torch.compile` or the ONNX exporter traces, where
    data-dependent checks would break the graph.
    """
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    inputs = input_ids if input_ids is not None else inputs_embeds
    batch_size, seq_length = inputs.shape[:2]
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, sequence), got {tuple(input_ids.shape)}.")
        # One pass and one device-to-host copy (a synchronisation on an accelerator) per call.
        low, high = torch.stack(torch.aminmax(input_ids)).tolist() if input_ids.numel() else (0, 0)
        if low < 0 or high >= config.vocab_size:
            bad = input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)][0].item()
            raise ValueError(
                f"`input_ids` contains token id {bad}, outside the model's vocabulary of {config.vocab_size} "
                "tokens. Was the input encoded with a different tokenizer?"
            )
    limit = context_limit(config)
    if limit is not None and position_ids is not None and position_ids.numel():
        last_position = int(position_ids.max())
        if last_position >= limit:
            raise ValueError(
                f"`position_ids` reach position {last_position}, beyond `max_position_embeddings` ({limit} "
                "positions, 0 to "
                f"{limit - 1}). Truncate the input (or each packed document), or set `rope_parameters` to a scaling "
                "`rope_type` (e.g. 'dynamic' or 'linear') to extend the context."
            )
    elif limit is not None and past_length + seq_length > limit:
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
    model=folder, trust_remote_code=True)` works, and without the task name too. Where hf_tinylm is installed, a
    model card (README.md) is written when the folder has none; train.py then replaces it with one that has the
    training data and evaluation results. `push_to_hub` (and `save_pretrained(..., push_to_hub=True)`) upload that
    card too, where transformers would write a generic one.

    Both families inherit it first: `class TinyXPreTrainedModel(HubReadyMixin, PreTrainedModel)`.
    """

    def save_pretrained(self, save_directory, is_main_process: bool = True, push_to_hub: bool = False, **kwargs):
        hub_args = {}
        if push_to_hub:  # uploaded below, by `push_to_hub`, so the upload carries this folder's card
            hub_args = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "private") if k in kwargs}
            hub_args["token"] = kwargs.get("token")
        # A relative import, so transformers copies pipelines_tinylm.py (and what it imports) beside this file.
        from .pipelines_tinylm import custom_pipelines

        self.config.custom_pipelines = custom_pipelines(self)
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if is_main_process and not os.path.exists(os.path.join(save_directory, "README.md")):
            try:
                from hf_tinylm.hub import write_model_card
            except ImportError:  # remote code on a machine without hf_tinylm: no card
                pass
            else:
                write_model_card(save_directory)
        if push_to_hub and is_main_process:
            repo_id = hub_args.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, **hub_args)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | str | None = None,
    ) -> str:
        """transformers' `push_to_hub`, except for the model card: a repository that has none gets the one
        `save_pretrained` writes (pipeline tag, usage with `trust_remote_code`, configuration) rather than
        transformers' generic one. A card already on the Hub is kept, as transformers does."""
        # Imported here, not with the module: a saved folder's code should load even if these helpers move.
        from huggingface_hub import ModelCard
        from transformers.utils.hub import create_and_tag_model_card, hf_api

        repo_id = hf_api().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        tags = [*(self.model_tags or []), *([tags] if isinstance(tags, str) else tags or [])]
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, max_shard_size=max_shard_size)
            local_card = os.path.join(folder, "README.md")
            if os.path.exists(local_card) and not hf_api().file_exists(repo_id, "README.md", token=token):
                card = ModelCard.load(local_card)
                card.data.tags = [*(card.data.tags or []), *(tag for tag in tags if tag not in (card.data.tags or []))]
            else:
                card = create_and_tag_model_card(repo_id, tags or None, token=token)
            card.save(local_card)
            return self._upload_modified_files(
                folder,
                repo_id,
                files_timestamps={},
                commit_message=commit_message,
                token=token,
                create_pr=create_pr,
                revision=revision,
                commit_description=commit_description,
            )
