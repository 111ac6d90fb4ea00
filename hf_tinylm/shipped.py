"""The code a saved model folder carries, declared in one place rather than left to be read off the imports.

`save_pretrained` copies a model's configuration and modeling files and, recursively, the modules they import
relatively. These run where hf_tinylm is not installed, on every supported transformers, so they import only the
standard library, torch, transformers (and what transformers itself depends on) and each other, never the package:
tests/test_shipped_code.py checks that, and that a saved folder of each family holds exactly its modules below.

A module of its own, not `__init__.py`, so that modules `__init__` imports could read it without an import cycle.
"""

# The task pipelines and what they import: a Llama export (`hf_tinylm.convert`) carries these without the model code.
PIPELINE_MODULES = ("pipelines_tinylm.py", "task_formats.py", "tinylm_common.py", "extractive_qa.py")

# What a folder of each model family (`config.model_type`) holds: its own files, the code that differs between
# transformers releases, and the pipelines. Never the other family's files.
FOLDER_MODULES = {
    "tiny_attention": ("configuration_tiny_attention.py", "modeling_tiny_attention.py", "tinylm_compat.py")
    + PIPELINE_MODULES,
    "tiny_rnn": ("configuration_tiny_rnn.py", "modeling_tiny_rnn.py", "tinylm_compat.py") + PIPELINE_MODULES,
}

SHIPPED_MODULES = tuple(dict.fromkeys(name for names in FOLDER_MODULES.values() for name in names))
