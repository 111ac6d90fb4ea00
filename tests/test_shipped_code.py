"""The code saved model folders carry (`hf_tinylm.shipped`): it imports only what a machine without hf_tinylm has,
a saved folder of each family holds exactly its declared modules, and the package's modules import each other
without a cycle. Imports are read with `ast`, at module level and inside functions alike."""

import ast
import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from transformers.dynamic_module_utils import get_relative_import_files

import hf_tinylm
from hf_tinylm import (
    TinyAttentionConfig,
    TinyAttentionForCausalLM,
    TinyAttentionForQuestionAnswering,
    TinyRNNConfig,
    TinyRNNForCausalLM,
    TinyRNNForQuestionAnswering,
)
from hf_tinylm.shipped import FOLDER_MODULES, PIPELINE_MODULES, SHIPPED_MODULES

PACKAGE = Path(hf_tinylm.__file__).parent
# Besides the standard library and each other, shipped modules import torch, transformers, and only those other
# packages that transformers itself requires (so every machine that runs a folder has them).
TRANSFORMERS_REQUIREMENTS = ("safetensors", "huggingface_hub", "packaging")
ALLOWED_PACKAGES = {"torch", "transformers", *TRANSFORMERS_REQUIREMENTS}


def imported_names(source: str) -> list[tuple[int, int, str]]:
    """(line, relative level, module) for every import in `source`; `from . import a, b` names `a` and `b`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, 0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found += [(node.lineno, node.level, name) for name in names]
    return found


def boundary_violations(source: str) -> list[str]:
    """The imports of a shipped module's `source` that a saved folder could not satisfy without hf_tinylm."""
    problems = []
    for line, level, module in imported_names(source):
        if level == 0:
            allowed = module.split(".")[0] in sys.stdlib_module_names | ALLOWED_PACKAGES
        else:
            allowed = level == 1 and f"{module}.py" in SHIPPED_MODULES
        if not allowed:
            problems.append(f"line {line}: {'.' * level}{module}")
    return problems


def test_shipped_modules_import_only_the_standard_library_torch_transformers_and_each_other():
    violations = {name: boundary_violations((PACKAGE / name).read_text()) for name in SHIPPED_MODULES}
    assert violations == dict.fromkeys(SHIPPED_MODULES, [])


def test_the_boundary_check_catches_each_kind_of_forbidden_import():
    source = textwrap.dedent(
        """
        import os, numpy
        from .task_formats import CONFIG_KEY
        from .training import run
        from ..other import thing
        from . import tinylm_common, hub

        def later():
            from hf_tinylm.hub import write_model_card
        """
    )
    assert boundary_violations(source) == [
        "line 2: numpy",
        "line 4: .training",
        "line 5: ..other",
        "line 6: .hub",
        "line 9: hf_tinylm.hub",
    ]


def test_the_packages_allowed_besides_torch_are_requirements_of_transformers():
    required = {
        canonicalize_name(Requirement(line).name)
        for line in importlib.metadata.requires("transformers")
        if "extra ==" not in line
    }
    assert {canonicalize_name(name) for name in TRANSFORMERS_REQUIREMENTS} <= required


def test_the_pipeline_modules_are_what_the_pipelines_import_and_no_model_code():
    derived = {Path(path).name for path in get_relative_import_files(str(PACKAGE / "pipelines_tinylm.py"))}
    assert {"pipelines_tinylm.py", *derived} == set(PIPELINE_MODULES)
    assert not [name for name in PIPELINE_MODULES if name.startswith(("modeling_", "configuration_"))]


TINY = {
    TinyAttentionConfig: dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32),
    TinyRNNConfig: dict(hidden_size=16, num_hidden_layers=1),
}


@pytest.mark.parametrize(
    "model_class",
    [TinyAttentionForCausalLM, TinyAttentionForQuestionAnswering, TinyRNNForCausalLM, TinyRNNForQuestionAnswering],
)
def test_a_saved_folder_holds_exactly_its_family_s_declared_modules(model_class, tmp_path):
    config_class = model_class.config_class
    torch.manual_seed(0)
    model = model_class(config_class(vocab_size=40, **TINY[config_class]))
    model.save_pretrained(tmp_path)
    declared = FOLDER_MODULES[config_class.model_type]
    files = {path.name for path in tmp_path.iterdir()}
    weights_and_card = {"config.json", "model.safetensors", "README.md"}
    generation = {"generation_config.json"} if model.can_generate() else set()
    assert files == {*declared, *weights_and_card, *generation}


def package_import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: package modules it imports}, over every .py file under `root` (the package `package`): absolute and
    relative imports, module level and inside functions. `from . import name` points at the submodule `name` where
    there is one, else at the package's `__init__`."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def is_package(name):
        return modules.get(name, Path()).name == "__init__.py"

    graph = {}
    for name, path in modules.items():
        here = name if is_package(name) else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph` as [a, b, ..., a], or None."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_s_modules_import_each_other_without_a_cycle():
    graph = package_import_graph(PACKAGE, "hf_tinylm")
    assert {"hf_tinylm.hub", "hf_tinylm.pipelines_tinylm", "hf_tinylm.tinylm_common"} <= set(graph)
    assert "hf_tinylm.hub" in graph["hf_tinylm"] and "hf_tinylm.tasks" in graph["hf_tinylm.hub"]
    assert "hf_tinylm.pipelines_tinylm" in graph["hf_tinylm.tasks"]
    # `--to gguf` imports the optional GGUF exporter when called; both build on the Llama conversion.
    assert "hf_tinylm.gguf_export" in graph["hf_tinylm.convert"]
    assert "hf_tinylm.llama_conversion" in graph["hf_tinylm.gguf_export"] & graph["hf_tinylm.convert"]
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_cycle_check_finds_a_cycle_closed_by_an_import_inside_a_function(tmp_path):
    """The shape of the cycle hub -> pipelines_tinylm -> tinylm_common -> hub that this check replaced."""
    (tmp_path / "__init__.py").write_text("from .hub import card\n")
    (tmp_path / "hub.py").write_text("from .pipelines import task\n")
    (tmp_path / "pipelines.py").write_text("from . import common\n")
    (tmp_path / "common.py").write_text("def save():\n    from pkg.hub import card\n")
    graph = package_import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.hub"},
        "pkg.hub": {"pkg.pipelines"},
        "pkg.pipelines": {"pkg.common"},
        "pkg.common": {"pkg.hub"},
    }
    assert find_cycle(graph) == ["pkg.hub", "pkg.pipelines", "pkg.common", "pkg.hub"]
