"""Pieces both model families share. Copied into every saved model folder (`hf_tinylm.shipped`), so it imports only
torch, transformers, safetensors and the other shipped modules."""

import glob
import os
import tempfile

import torch
from safetensors import SafetensorError, safe_open
from transformers.utils import logging

logger = logging.get_logger(__name__)


def context_limit(config) -> int | None:
    """The most tokens the model reads at once: `max_position_embeddings`, unless a RoPE scaling type extends it.
    None for models without a limit (the recurrent family)."""
    rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    return getattr(config, "max_position_embeddings", None) if rope_type == "default" else None


def new_tokens_that_fit(config, prompt_length: int, max_new_tokens: int) -> int:
    """How many of `max_new_tokens` fit after a prompt of `prompt_length` tokens in the model's context (0 when the
    prompt fills it): the one place that adds prompt and generated tokens up, for `generate()`, the pipelines and
    train.py's sample alike."""
    limit = context_limit(config)
    return max_new_tokens if limit is None else max(0, min(max_new_tokens, limit - prompt_length))


def fit_generation_to_context(model, inputs, generation_config, kwargs: dict) -> dict:
    """`generate()` arguments that stop at the end of the model's context: asked for more new tokens than fit after
    the prompt, generate what fits (with a warning) rather than fail at the limit and lose what was generated. A
    prompt that leaves no room fails at once."""
    limit = context_limit(model.config)
    prompt = inputs if inputs is not None else kwargs.get("input_ids", kwargs.get("inputs_embeds"))
    if limit is None or prompt is None:
        return kwargs
    prompt_length = prompt.shape[1]
    config = generation_config or model.generation_config
    max_new_tokens = kwargs.get("max_new_tokens", config.max_new_tokens)
    if max_new_tokens is None:  # `max_length` counts the prompt, for a decoder-only model
        max_new_tokens = kwargs.get("max_length", config.max_length) - prompt_length
    room = new_tokens_that_fit(model.config, prompt_length, max(max_new_tokens, 1))
    if room == 0:
        raise ValueError(
            f"The prompt is {prompt_length} tokens long; this model reads at most {limit} tokens, prompt and "
            "generated text together, so nothing can be generated. Shorten the prompt."
        )
    if max_new_tokens <= room:
        return kwargs
    logger.warning(
        f"Generating at most {room} new tokens instead of {max_new_tokens}: the prompt takes {prompt_length} of the "
        f"model's {limit} positions (`max_position_embeddings`)."
    )
    kwargs = {key: value for key, value in kwargs.items() if key != "max_length"}
    kwargs["max_new_tokens"] = room
    if (kwargs.get("min_new_tokens") or config.min_new_tokens or 0) > room:
        kwargs["min_new_tokens"] = room
    return kwargs


def logits_positions(logits_to_keep: int | torch.Tensor) -> slice | torch.Tensor:
    """The positions that get logits: the last `logits_to_keep` (0 means all), or the given indices, as `generate()`
    asks for only the last one."""
    return slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep


def check_forward_inputs(
    config,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    past_length: int = 0,
    mask_covers_everything: bool = True,
    position_ids: torch.Tensor | None = None,
) -> None:
    """Fail early, naming the problem, on inputs that would otherwise crash deep inside a kernel or be silently wrong.

    Checks that there are tokens and that ids are integers inside the vocabulary, the positions against
    `max_position_embeddings` (when the config has one and does not say how to extend it), a 2D attention mask
    against the (batch, past + new tokens) shape and, when the mask covers every token the model has seen
    (`mask_covers_everything`), that no row of it is empty. The positions are the given `position_ids` (packed rows
    restart them at each document, so a row may be longer than the limit), else past + new tokens. One
    device-to-host copy per call. Skipped while `torch.compile` or the ONNX exporter traces, where data-dependent
    checks would break the graph.
    """
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    name = "input_ids" if input_ids is not None else "inputs_embeds"
    inputs = input_ids if input_ids is not None else inputs_embeds
    batch_size, seq_length = inputs.shape[:2]
    if batch_size == 0 or seq_length == 0:
        raise ValueError(
            f"`{name}` has shape {tuple(inputs.shape)}: no tokens. Pass at least one row of at least one token."
        )
    scalars = {}  # gathered on the device, copied to the host once
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, sequence), got {tuple(input_ids.shape)}.")
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise ValueError(
                f"`input_ids` must hold integer token ids, got dtype {input_ids.dtype}: pass what the tokenizer "
                "returns (`return_tensors='pt'`), or convert with `.long()`."
            )
        scalars["lowest id"], scalars["highest id"] = torch.aminmax(input_ids)
    limit = context_limit(config)
    if limit is not None and position_ids is not None and position_ids.numel() > 0:
        scalars["last position"] = position_ids.max()
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
        if mask_covers_everything:
            scalars["fewest tokens in a row"] = (attention_mask != 0).sum(dim=1).min()
    if not scalars:
        return
    values = dict(zip(scalars, torch.stack([scalar.long() for scalar in scalars.values()]).tolist()))
    if "last position" in values and values["last position"] >= limit:
        raise ValueError(
            f"`position_ids` reach position {values['last position']}, beyond `max_position_embeddings` "
            f"({limit} positions, 0 to {limit - 1}). Truncate the input (or each packed document), or set "
            "`rope_parameters` to a scaling `rope_type` (e.g. 'dynamic' or 'linear') to extend the context."
        )
    if input_ids is not None and (values["lowest id"] < 0 or values["highest id"] >= config.vocab_size):
        bad = input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)][0].item()
        raise ValueError(
            f"`input_ids` contains token id {bad}, outside the model's vocabulary of {config.vocab_size} "
            "tokens. Was the input encoded with a different tokenizer?"
        )
    if values.get("fewest tokens in a row") == 0:
        row = (attention_mask != 0).sum(dim=1).eq(0).nonzero()[0].item()
        raise ValueError(
            f"Row {row} of `attention_mask` is all zeros: that row has no tokens to attend to. Drop the row, or "
            "give it at least one real token."
        )


def _readable(path: str) -> bool:
    try:
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                weights.get_slice(name)
        return os.path.getsize(path) > 0
    except (SafetensorError, OSError):
        return False


# What `generate()` drafts tokens with, to keep those the model agrees with and roll back to the last one kept.
DRAFTING_ARGUMENTS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")


class CheckedGeneration:
    """`generate()`, with what would fail late or silently checked first, and the config left as it was found.

    - Asked for more new tokens than the context holds after the prompt, it generates what fits, with a warning,
      instead of failing at the limit and losing what it generated (`fit_generation_to_context`).
    - A meaningless `num_beams` or `num_return_sequences` fails at once, not as an arithmetic error inside.
    - Assisted generation, prompt-lookup decoding and early-exit self-speculation draft several tokens, then roll the
      generating model and the assistant back to the last draft token accepted; a recurrent state (`_is_stateful`)
      cannot be rolled back, whether its model generates or assists: refused up front. Early exit lowers
      `config.num_hidden_layers` while it drafts; the number is put back even when generation stops with an error.

    Both causal LMs inherit it before GenerationMixin: `class TinyXForCausalLM(TinyXPreTrainedModel,
    CheckedGeneration, GenerationMixin)`.
    """

    def generate(self, inputs=None, generation_config=None, **kwargs):
        settings = generation_config if generation_config is not None else self.generation_config
        for name in ("num_beams", "num_return_sequences"):
            value = kwargs.get(name, getattr(settings, name, 1))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive whole number, got {value!r}.")
        kwargs = fit_generation_to_context(self, inputs, generation_config, kwargs)
        requested = [
            name for name in DRAFTING_ARGUMENTS if kwargs.get(name, getattr(settings, name, None)) is not None
        ]
        if requested and self._is_stateful:
            raise ValueError(
                f"{type(self).__name__} is recurrent: its state cannot be rolled back to an earlier token, which "
                "assisted generation, prompt-lookup decoding and early exit need to drop the draft tokens they "
                f"reject. Generate without {', '.join(f'`{name}`' for name in requested)}."
            )
        assistant = kwargs.get("assistant_model")
        if assistant is not None and getattr(assistant, "_is_stateful", False):
            raise ValueError(
                f"The assistant model ({type(assistant).__name__}) is recurrent: its state cannot be rolled back to an "
                "earlier token, which assisted generation needs whenever the main model rejects a draft token. Use "
                "an assistant without a recurrent state (a small attention model with the same tokenizer), or "
                "generate without `assistant_model`."
            )
        num_hidden_layers = self.config.num_hidden_layers
        try:
            return super().generate(inputs, generation_config, **kwargs)
        finally:
            self.config.num_hidden_layers = num_hidden_layers


class HubReadyMixin:
    """Makes `save_pretrained` write a folder that uploads to the Hub as is and works where hf_tinylm is not installed.

    Besides the model code transformers copies for `auto_map`, the pipeline code is copied too, and the config lists
    the pipeline of the task the model was trained for (`custom_pipelines`), so `pipeline("translation",
    model=folder, trust_remote_code=True)` works, and without the task name too.

    Two hooks, which `hf_tinylm/__init__.py` sets on the package's own classes (this file never imports the package:
    a saved folder's copy of it runs without hf_tinylm, and the package imports this file):
    - `model_card_writer(folder)`: `save_pretrained` writes a model card (README.md) when the folder has none;
      train.py then replaces it with one that has the training data and evaluation results.
    - `checked_uploader(folder, repo_id, ...)`: `push_to_hub` (and `save_pretrained(..., push_to_hub=True)`) upload
      through hf_tinylm's one upload path, which checks the folder first and sends that card.
    The folder's copy of this code (what `trust_remote_code=True` loads where hf_tinylm is not imported) has no hooks,
    even where hf_tinylm is installed: it writes no card, and uploads with transformers' own `push_to_hub`.

    Both families inherit it first, and name the function that finds their pipeline (the modeling file imports
    pipelines_tinylm, which imports this file: a model piece importing the pipelines would close a cycle):
    `class TinyXPreTrainedModel(HubReadyMixin, PreTrainedModel): custom_pipelines_for = staticmethod(custom_pipelines)`.
    """

    model_card_writer = None
    checked_uploader = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' `from_pretrained`; a truncated or corrupt weights file is named in the error (safetensors'
        own message does not say which file it could not read)."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as error:
            folder = str(pretrained_model_name_or_path)
            unreadable = [path for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))) if not _readable(path)]
            raise OSError(
                f"{', '.join(unreadable) or f'The weights of {folder}'}: not a readable safetensors file ({error}). "
                "It is truncated or corrupt: download or save it again."
            ) from error

    def save_pretrained(self, save_directory, is_main_process: bool = True, push_to_hub: bool = False, **kwargs):
        hub_args = {}
        if push_to_hub:  # uploaded below, by `push_to_hub`, so the upload carries this folder's card
            hub_args = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "private") if k in kwargs}
            hub_args["token"] = kwargs.get("token")
        self.config.custom_pipelines = self.custom_pipelines_for(self)
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        card_missing = not os.path.exists(os.path.join(save_directory, "README.md"))
        if is_main_process and self.model_card_writer is not None and card_missing:
            self.model_card_writer(save_directory)
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
    ):
        """transformers' `push_to_hub`, through hf_tinylm's checked upload where the package set the hook: the model
        is saved into a temporary folder, which must pass the package's folder check (the tokenizer aside: as in
        transformers, it is pushed on its own), and is uploaded with the card `save_pretrained` writes (pipeline tag,
        usage with `trust_remote_code`, configuration) rather than transformers' generic one, the model's tags added
        to it. A card already on the Hub is kept, as transformers does (left as it is: transformers would add the
        tags to it). Without the hook, transformers' own upload and generic card. Returns the `CommitInfo`."""
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        upload_args = {
            "commit_message": commit_message,
            "commit_description": commit_description,
            "private": private,
            "token": token,
            "revision": revision,
            "create_pr": create_pr,
        }
        if self.checked_uploader is None:  # the folder's copy of this code: transformers' upload and generic card
            return super().push_to_hub(repo_id, max_shard_size=max_shard_size, tags=tags or None, **upload_args)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, max_shard_size=max_shard_size)
            return self.checked_uploader(
                folder,
                repo_id,
                tags=[*(self.model_tags or []), *tags],
                with_tokenizer=False,
                keep_hub_card=True,
                **upload_args,
            )
