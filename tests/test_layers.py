"""Imports run one way: errors/frame <- options/models <- annotators <- pipelines <- methods <- training,
config/api <- cli; and every module imports on its own, in a fresh interpreter, whatever was imported before."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import camouflage_video

PACKAGE = Path(camouflage_video.__file__).parent
# Lower number, lower layer: a module may import only modules of its own layer or below.
LAYERS = {
    "camouflage_video.models": 1, "camouflage_video.options": 1,
    "camouflage_video.annotators": 2,
    "camouflage_video.pipelines": 3,
    "camouflage_video.methods": 4,
    "camouflage_video.training": 5,
    "camouflage_video.config": 6, "camouflage_video.api": 6, "camouflage_video.serve": 6,
    "camouflage_video.cli": 7,
}


def layer(module: str) -> int | None:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "camouflage_video.")
                  if not m.name.endswith("__main__"))


def _runtime_nodes(tree: ast.AST):  # noqa: ANN202 - a generator of nodes
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only; never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(module: str) -> set[str]:
    """Every camouflage_video module ``module`` imports when it runs, at the top or inside a function."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("camouflage_video"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("camouflage_video"))
    return names


def test_no_layer_imports_a_higher_one():
    upward = [
        f"{module} imports {target}"
        for module in modules() if layer(module) is not None
        for target in imported(module)
        if layer(target) is not None and layer(target) > layer(module)
    ]
    assert not upward


def test_there_is_no_import_cycle():
    graph = {m: {t for t in imported(m) if t in set(modules()) and t != m} for m in modules()}
    for module in graph:  # a package's own imports of its submodules are not a cycle through it
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles


@pytest.mark.parametrize("first", ["camouflage_video.models", "camouflage_video.pipelines.camouflage_light",
                                   "camouflage_video.methods", "camouflage_video.training.light"])
def test_every_module_imports_after_any_other_in_a_fresh_interpreter(first):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({first!r})\n"
        f"for name in {modules()!r}:\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_light_components_resolve_without_importing_the_light_pipeline():
    code = (
        "import sys\n"
        "from camouflage_video import models\n"
        "print(models.resolve('ip-adapter').repo_id)\n"
        "assert 'camouflage_video.pipelines.camouflage_light' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "h94/IP-Adapter"
