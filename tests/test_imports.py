"""The package's import graph: no import cycle, and no upward import into the training code.

Read from the source with ``ast`` (nothing is imported): a module-level import is one that
runs when the module is imported (top-level statements, including those under ``if``/``try``,
but not under ``if TYPE_CHECKING:`` nor inside functions and classes). Imports inside
functions are how the package defers costly or optional code; they may go anywhere except,
for the lowest layers, up into training and evaluation.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mlfem"

#: Layers that read and run models but never train nor evaluate (not even lazily), and
#: the run helper that the trainers and the evaluation runner share.
LOWER = ("mlfem.models", "mlfem.fusion", "mlfem._run")
#: What they must not import.
UPPER = ("mlfem.training", "mlfem.evaluation")
#: Layers allowed to import training/evaluation at module level (everything else must
#: do so inside a function, if at all).
TOP = ("mlfem.training", "mlfem.evaluation", "mlfem.cli", "mlfem.demos", "mlfem.reporting")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import: the body, and nested if/try/with blocks (not functions,
    classes, nor ``if TYPE_CHECKING:``)."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)
        else:
            yield node


def _targets(module: str, node: ast.stmt) -> list[str]:
    """The mlfem modules an import statement loads (a package's own ``__init__`` included)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        # ``from package import submodule`` loads the submodule too.
        names = [source] + [f"{source}.{alias.name}" for alias in node.names]
    else:
        return []
    found = set()
    for name in names:
        if name.split(".")[0] != "mlfem":
            continue
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, except the packages the
        # importer sits in (already being imported: no new edge).
        parts = name.split(".")
        for end in range(2, len(parts) + 1):
            candidate = ".".join(parts[:end])
            if candidate in MODULES and not (module + ".").startswith(candidate + "."):
                found.add(candidate)
    found.discard(module)
    return sorted(found)


def _graph(module_level: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # removed since collection (a rename in the working tree)
            continue
        tree = ast.parse(source, filename=str(path))
        nodes = _module_level(tree.body) if module_level else ast.walk(tree)
        graph[module] = {t for node in nodes for t in _targets(module, node)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_graph_sees_the_imports_of_the_source() -> None:
    graph = _graph(module_level=True)
    assert "mlfem.models.checkpoint" in graph["mlfem.training.classifier"]
    assert "mlfem.models._loaded" in graph["mlfem.models.checkpoint"]
    # The net fusion is imported on first use only.
    assert "mlfem.fusion.net" not in graph["mlfem.fusion"]
    assert "mlfem.fusion.net" in _graph(module_level=False)["mlfem.fusion"]


def test_no_import_cycle_at_module_level() -> None:
    cycles = _cycles(_graph(module_level=True))
    assert not cycles, "import cycles among mlfem's modules: " + "; ".join(
        " -> ".join(c) for c in cycles
    )


def test_no_cycle_even_with_deferred_imports() -> None:
    # Imports inside functions (kept for start-up time) must not close a loop either.
    cycles = _cycles(_graph(module_level=False))
    assert not cycles, "import cycles (deferred imports included): " + "; ".join(
        " -> ".join(c) for c in cycles
    )


def test_models_fusion_and_the_run_helper_never_import_training_or_evaluation() -> None:
    upward = {
        module: sorted(t for t in targets if _in(t, UPPER))
        for module, targets in _graph(module_level=False).items()
        if _in(module, LOWER)
    }
    assert not {m: t for m, t in upward.items() if t}, upward


def test_only_top_layers_import_training_or_evaluation_at_module_level() -> None:
    upward = {
        module: sorted(t for t in targets if _in(t, UPPER))
        for module, targets in _graph(module_level=True).items()
        if not _in(module, TOP)
    }
    assert not {m: t for m, t in upward.items() if t}, upward


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("mlfem.training.checkpoint", "mlfem.models.checkpoint", "load_classifier"),
        ("mlfem.training.architectures", "mlfem.models.architectures", "rebuild_classifier"),
        ("mlfem.training.fusion_net", "mlfem.fusion.net", "NetFusion"),
    ],
)
def test_moved_modules_still_import_with_a_deprecation_warning(
    old: str, new: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    # A fresh import of the shim (it warns once per process, when it is first imported).
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        shim = importlib.import_module(old)
    moved = importlib.import_module(new)
    assert getattr(shim, name) is getattr(moved, name)
    # Names outside __all__ too (private helpers, constants), through the module's __getattr__.
    other = next(n for n in vars(moved) if n not in moved.__all__ and not n.startswith("__"))
    assert getattr(shim, other) is getattr(moved, other)


def test_the_training_package_exports_the_moved_names_without_warning() -> None:
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        training = importlib.import_module("mlfem.training")
        from mlfem.fusion.net import NetFusion, bundled_net_path
        from mlfem.models.checkpoint import load_classifier

    assert training.NetFusion is NetFusion
    assert training.load_classifier is load_classifier
    assert training.bundled_net_path is bundled_net_path
