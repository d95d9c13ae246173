"""The layout: the library never imports the command layer, no import cycles at run time (lazy
imports included, annotation-only ones not), nothing edits sys.path (the package is installed)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("analysis", "models", "processors")


def _runtime_nodes(tree: ast.AST):
    """Every node, except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                todo.extend(child.orelse)
            else:
                todo.append(child)


def _imports() -> dict[str, set[str]]:
    """Every module of the packages -> the package modules it imports at run time (anywhere in
    its body, lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            deps: set[str] = set()
            for node in _runtime_nodes(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    deps.add(node.module)
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
            graph[name] = deps
    return graph


def test_the_library_never_imports_a_command() -> None:
    graph = _imports()
    assert len(graph) > 40
    library = [m for m in graph if not m.startswith("analysis.commands") and m != "analysis.cli"]
    offenders = {m: sorted(d for d in graph[m] if d.startswith("analysis.commands")) for m in library}
    assert not {m: d for m, d in offenders.items() if d}


def test_no_import_cycles() -> None:
    graph = _imports()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if b in graph and a in reachable(b)})
    assert not cycles


def _edits_sys_path(node: ast.AST) -> bool:
    """``sys.path.insert(...)``, ``.append(...)``, ``.extend(...)``."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("insert", "append", "extend") and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "path" and getattr(node.func.value.value, "id", None) == "sys")  # fmt: skip


def test_nothing_edits_sys_path() -> None:
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("data", "results", "build") or rel.parts[0].startswith("."):
            continue
        if any(_edits_sys_path(node) for node in ast.walk(ast.parse(path.read_text()))):
            offenders.append(str(rel))
    assert not offenders
