"""What differs between the transformers releases a saved model folder runs on, in one place.

A folder on the Hub is loaded with whatever transformers the user's environment pins, from 4.57 to the newest 5.x.
The modeling and configuration files import the few names whose spelling changed between those releases from here,
so they read as if written for one release. Only public API is used; a release older than the oldest supported one
fails here, at import, with one sentence naming the minimum version.
"""

import dataclasses
import functools
import inspect
import warnings

import transformers
from packaging.version import Version

MIN_TRANSFORMERS_VERSION = "4.57.0"

if Version(transformers.__version__) < Version(MIN_TRANSFORMERS_VERSION):
    raise ImportError(
        f"This hf_tinylm model needs transformers {MIN_TRANSFORMERS_VERSION} or newer, but this environment has "
        f'{transformers.__version__}: upgrade it with `pip install -U "transformers>={MIN_TRANSFORMERS_VERSION}"`.'
    )

import torch  # noqa: E402 - after the version check, so an old release fails with the sentence above
from transformers.masking_utils import create_causal_mask  # noqa: E402
from transformers.modeling_outputs import BaseModelOutputWithPast  # noqa: E402

try:
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x spells it PretrainedConfig
    from transformers import PretrainedConfig as PreTrainedConfig

try:
    from transformers import initialization as init  # 5.x: skips weights that from_pretrained already loaded
except ImportError:
    from torch.nn import init

# What the cache is called in model arguments and outputs: `cache` from transformers 5.24, `past_key_values` before.
CACHE_NAME = (
    "cache" if "cache" in {field.name for field in dataclasses.fields(BaseModelOutputWithPast)} else "past_key_values"
)
# How this release's RoPE functions read a config: `rope_parameters` (5.x) or `rope_theta` + `rope_scaling` (4.x).
READS_ROPE_PARAMETERS = Version(transformers.__version__) >= Version("5.0.0")
_MASK_PARAMETERS = inspect.signature(create_causal_mask).parameters

__all__ = [
    "CACHE_NAME",
    "MIN_TRANSFORMERS_VERSION",
    "PreTrainedConfig",
    "accepts_cache_argument",
    "cache_of",
    "causal_mask",
    "init",
    "output_with_cache",
    "rope_config",
]


def accepts_cache_argument(forward):
    """Lets a `forward(..., cache=...)` be called as this release's `generate()` calls it: releases before 5.24 pass
    the cache as `past_key_values`. From 5.24, where transformers itself renamed it, that name is deprecated."""

    @functools.wraps(forward)  # generate() reads the signature (`position_ids`, `logits_to_keep`)
    def wrapper(self, *args, **kwargs):
        if "past_key_values" in kwargs:
            if kwargs.get("cache") is not None:
                raise ValueError("Pass the cache once, as `cache` (or its older name `past_key_values`), not both.")
            if CACHE_NAME == "cache":
                warnings.warn(
                    "`past_key_values` is deprecated and will be removed in transformers 5.40.0: pass `cache` instead.",
                    FutureWarning,
                    stacklevel=2,
                )
            kwargs["cache"] = kwargs.pop("past_key_values")
        return forward(self, *args, **kwargs)

    return wrapper


def output_with_cache(output_class, cache, **fields):
    """`output_class(**fields)` holding `cache` under this release's field name, where `generate()` looks for it."""
    return output_class(**fields, **{CACHE_NAME: cache})


def cache_of(outputs):
    """The cache a model output holds (None when it holds none), whatever this release calls the field."""
    return getattr(outputs, CACHE_NAME, None)


def causal_mask(config, inputs_embeds, attention_mask, cache, position_ids, past_length: int):
    """transformers' `create_causal_mask` (the right mask for the configured attention kernel), with the arguments
    this release names: `input_embeds`/`inputs_embeds`, `past_key_values`/`cache`, and `cache_position` where asked."""
    arguments = {"config": config, "attention_mask": attention_mask, "position_ids": position_ids}
    arguments["inputs_embeds" if "inputs_embeds" in _MASK_PARAMETERS else "input_embeds"] = inputs_embeds
    arguments["cache" if "cache" in _MASK_PARAMETERS else "past_key_values"] = cache
    if "cache_position" in _MASK_PARAMETERS:
        # `past_length` may be a tensor: some releases' static caches count their filled positions on the device.
        arguments["cache_position"] = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length
    return create_causal_mask(**arguments)


def rope_config(config):
    """The config as this release's RoPE functions read it: 4.x reads `rope_theta` and `rope_scaling`, which a
    config saved by 5.x keeps in `rope_parameters`."""
    if not READS_ROPE_PARAMETERS:
        parameters = config.rope_parameters
        config.rope_theta = parameters["rope_theta"]
        if parameters.get("rope_type", "default") != "default":
            config.rope_scaling = {**parameters, "type": parameters["rope_type"]}
    return config
