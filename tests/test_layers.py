"""The package's import graph: each arrow points down the flow, and nothing imports in a circle.

Every ``import`` counts: at module level, inside functions and under
``TYPE_CHECKING``. ``from package import submodule`` is an edge to the submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "fasdistill").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported fasdistill module: line}."""
    modules = _modules()

    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fasdistill"):
                base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]  # fmt: skip
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("fasdistill")]
            else:
                continue
            for target in map(owner, targets):
                # A submodule importing its own package's parts is not an edge upwards.
                if target and target != name and not name.startswith(f"{target}."):
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_in_a_circle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("fasdistill.engine", "fasdistill.distill"),  # the loop is given its objective
        ("fasdistill.export", "fasdistill.swap"),  # export comes before the report
        ("fasdistill.models", "fasdistill.engine"),
        ("fasdistill.metrics", "fasdistill.engine"),
    ],
)
def test_arrows_point_down_the_flow(lower: str, upper: str) -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, edges in import_graph().items()
        if module == lower or module.startswith(f"{lower}.")
        for target, line in edges.items()
        if target == upper or target.startswith(f"{upper}.")
    ]
    assert wrong == []


def test_the_loop_refuses_a_distillation_recipe_without_its_objective(tmp_path: Path) -> None:
    from fasdistill.config import load_recipe
    from fasdistill.engine.trainer import train
    from fasdistill.errors import InputError

    config = load_recipe("distill_kd", [])
    with pytest.raises(InputError, match=r"distill_kd.*fasdistill\.distill\.fit"):
        train(config, tmp_path / "index.csv", tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
