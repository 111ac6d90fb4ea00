"""What a run trains: a new model built from a size preset and `--config_overrides`, or a saved one to continue, with
its tokenizer (reused, or trained on the data), sized for the longest sequence the task feeds it.

`model_args` below is train.py's `arguments.ModelArguments`, which imports this module for its choices (so this module
does not import it back).
"""

import inspect
import json
import logging
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from . import data
from .configuration_tiny_attention import TinyAttentionConfig
from .configuration_tiny_rnn import TinyRNNConfig
from .task_formats import CONFIG_KEY
from .tasks import Task
from .tokenization import add_missing_special_tokens, train_tokenizer, vocabulary_fingerprint

logger = logging.getLogger(__name__)

# Where the main process leaves a tokenizer it trained for the other processes to load, until the final save.
TRAINED_TOKENIZER_FOLDER = "trained_tokenizer"

ARCHITECTURES = {"attention": TinyAttentionConfig, "rnn": TinyRNNConfig}
# Starting points; --config_overrides changes any config field.
SIZE_PRESETS = {
    "attention": {
        "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        "small": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4},
        "base": {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 8},
    },
    "rnn": {
        "tiny": {"hidden_size": 64, "num_hidden_layers": 1},
        "small": {"hidden_size": 256, "num_hidden_layers": 2},
        "base": {"hidden_size": 512, "num_hidden_layers": 3},
    },
}


def fit_task_to_context(task: Task, limit: int | None, model_name: str) -> Task:
    """`task` with its sequence lengths shortened to what a saved model reads (saying so), rather than a run that
    fails at the first long batch: blocks and QA windows just get shorter (more of them), generation tasks cut their
    sources shorter."""
    if limit is None or task.longest_sequence() <= limit:
        return task
    fitted, what = task.fit_to_context(limit, model_name)
    logger.warning(f"{model_name} reads at most {limit} tokens, so this run uses {what}.")
    return fitted


def load_or_train_tokenizer(model_args, task: Task, training_args, train_examples, checkpoint):
    """The checkpoint's tokenizer when resuming; else the named or saved model's; else one trained on the data.

    A trained tokenizer is trained once, by the main process, and saved to the output folder for the others."""
    source = checkpoint or model_args.tokenizer_name or model_args.model_name_or_path
    if source is not None:
        return AutoTokenizer.from_pretrained(source, cache_dir=model_args.cache_dir)
    # Staged in a folder of its own, not over an earlier run's tokenizer files: a run that fails before training
    # then leaves those as they were (`checkpoints.output_dir_untouched_on_failure` removes the new folder).
    staged = Path(training_args.output_dir) / TRAINED_TOKENIZER_FOLDER
    with training_args.main_process_first(desc="training the tokenizer"):
        if training_args.local_process_index == 0:
            logger.info(f"Training a {model_args.tokenizer_type} tokenizer on the training data")
            texts = data.training_texts(train_examples, task.text_columns)
            tokenizer = train_tokenizer(texts, model_args.tokenizer_type, model_args.vocab_size)
            tokenizer.save_pretrained(staged)
        else:
            tokenizer = AutoTokenizer.from_pretrained(staged)
    return tokenizer


def build_model(model_args, task: Task, tokenizer, saved_config=None):
    """A new model sized for the tokenizer and the task's longest sequence, or the saved one, with its task settings.

    A saved model whose vocabulary is smaller than the tokenizer was trained with another tokenizer: refused. When
    a reused tokenizer lacks hf_tinylm's special tokens they are added, and a saved model's embeddings grow to match.
    """
    auto_class = task.auto_class
    if model_args.model_name_or_path:
        config = saved_config or AutoConfig.from_pretrained(
            model_args.model_name_or_path, cache_dir=model_args.cache_dir
        )
        _check_tokenizer_belongs_to(config, tokenizer, model_args)
        for key, value in parse_config_overrides(model_args.config_overrides, type(config)).items():
            setattr(config, key, value)
        model = auto_class.from_pretrained(
            model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir
        )
        if add_missing_special_tokens(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
    else:
        add_missing_special_tokens(tokenizer)
        config = new_model_config(
            model_args,
            task,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = auto_class.from_config(config)
    logger.info(f"{type(model).__name__}: {model.num_parameters():,} parameters")

    model.config.tokenizer_fingerprint = vocabulary_fingerprint(tokenizer)
    model.config.task_specific_params = {
        **(getattr(model.config, "task_specific_params", None) or {}),
        CONFIG_KEY: task.settings(),
    }
    if model.can_generate():
        generation = model.generation_config
        generation.pad_token_id, generation.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
        generation.eos_token_id = tokenizer.eos_token_id
        generation.use_cache = True
        task.configure_generation(generation)  # what evaluation generates with, and pipelines default to
    return model


def new_model_config(model_args, task: Task, **settings):
    """A new model's configuration: the size preset, the recurrent cell or the context the task needs, `settings`
    (vocabulary and special tokens), then `--config_overrides`."""
    config_class = ARCHITECTURES[model_args.arch]
    values = dict(SIZE_PRESETS[model_args.arch][model_args.model_size])
    if model_args.arch == "rnn":
        values["cell"] = model_args.cell
    else:
        values["max_position_embeddings"] = task.longest_sequence()
    values.update(settings)
    values.update(parse_config_overrides(model_args.config_overrides, config_class))
    return config_class(**values)


def parse_config_overrides(overrides: str | None, config_class) -> dict:
    """'a=1,b=0.5,c=gelu' -> {"a": 1, "b": 0.5, "c": "gelu"}, each key checked against the config's fields."""
    if not overrides:
        return {}
    known = {
        name
        for cls in config_class.__mro__
        if "__init__" in vars(cls)
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    }
    values = {}
    for item in overrides.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in known:
            raise ValueError(
                f"--config_overrides: {item!r} is not 'field=value' for a {config_class.__name__} field "
                f"({', '.join(sorted(known))})."
            )
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def _check_tokenizer_belongs_to(config, tokenizer, model_args) -> None:
    """Refuse a tokenizer that is not the saved model's own: one of another size, or (through the fingerprint of the
    vocabulary the model was trained with, saved in its config) another one of the same size."""
    model_name = model_args.model_name_or_path
    tokenizer_name = model_args.tokenizer_name or model_name
    saved = getattr(config, "tokenizer_fingerprint", None)
    # hf_tinylm's models have exactly one embedding per token; a model from elsewhere may pad its embeddings.
    if len(tokenizer) > config.vocab_size or (saved and len(tokenizer) != config.vocab_size):
        raise ValueError(
            f"The tokenizer ({tokenizer_name}) has {len(tokenizer)} tokens but the model ({model_name}) has a "
            f"vocabulary of {config.vocab_size}: it was trained with another tokenizer. Pass the model's own "
            "tokenizer (leave out --tokenizer_name)."
        )
    if saved and saved != vocabulary_fingerprint(tokenizer):
        raise ValueError(
            f"The tokenizer ({tokenizer_name}) is not the one the model ({model_name}) was trained with: same size, "
            "different vocabulary. Pass the model's own tokenizer (leave out --tokenizer_name)."
        )
