"""The layering holds: read from the source (AST), not by importing anything.

* no import cycles among the modules of ``nrstream`` (imports that run when a module is
  imported: module level, ``try`` blocks included, ``if TYPE_CHECKING:`` excluded);
* no built-in plugin imports the pipeline (engine, evaluation, report, experiment) at any
  level, functions included: a plugin is a component the pipeline calls, never the reverse;
* the core never imports a built-in plugin (it finds them through entry points).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import nrstream

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "nrstream"
PLUGINS = ROOT / "plugins" / "nrstream_plugins"
PIPELINE = ("nrstream.engine", "nrstream.evaluation", "nrstream.report", "nrstream.experiment")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a submodule when ``from package import submodule``)
    line: int
    module_level: bool  # runs when the importer is imported

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(top: Path) -> dict[str, Path]:
    return {module_name(p, top): p for p in sorted(top.rglob("*.py"))}


KNOWN = {**modules_under(CORE), **modules_under(PLUGINS)}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = _resolve(importer, is_package, node)
    targets = []
    for alias in node.names:
        submodule = f"{package}.{alias.name}"
        if submodule in KNOWN:
            targets.append(submodule)
        elif package == "nrstream" and alias.name in getattr(nrstream, "_LAZY", {}):
            targets.append(nrstream._LAZY[alias.name])  # a lazy public name imports its module
        else:
            targets.append(package)
    return targets


def imports_of(name: str, path: Path) -> list[Import]:
    """Every import statement of one module, marked module-level or not."""
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                # the body is for type checkers only (never run): skip it
                for stmt in child.orelse:
                    visit_statement(stmt, module_level)
                continue
            visit_statement(child, module_level)

    def visit_statement(child: ast.AST, module_level: bool) -> None:
        if isinstance(child, ast.Import | ast.ImportFrom):
            for target in _targets(name, is_package, child):
                found.append(Import(name, target, child.lineno, module_level))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            visit(child, False)
        else:
            visit(child, module_level)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return found


ALL_IMPORTS = [imp for name, path in KNOWN.items() for imp in imports_of(name, path)]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import), Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if imp.module_level and imp.importer.startswith("nrstream") and not imp.importer.startswith("nrstream_"):
            if imp.imported in KNOWN and imp.imported.split(".")[0] == "nrstream" and imp.imported != imp.importer:
                graph.setdefault(imp.importer, set()).add(imp.imported)
    return graph


def test_the_walk_sees_the_package():
    """Guards the walk itself: it finds the modules and the imports we know are there."""
    assert {"nrstream", "nrstream.hookspecs", "nrstream.testing", "nrstream.commands"} <= set(KNOWN)
    assert "nrstream_plugins.architectures.recurrent" in KNOWN
    seen = {(i.importer, i.imported, i.module_level) for i in ALL_IMPORTS}
    assert ("nrstream.hookspecs", "nrstream.contracts", True) in seen
    # relative import inside a plugin package
    assert ("nrstream_plugins.architectures.recurrent", "nrstream_plugins.architectures._common", True) in seen
    # the contracts' tensor types are annotations only (TYPE_CHECKING): not a run-time edge
    assert ("nrstream.contracts", "nrstream.stream", True) not in seen


def test_cycle_finder():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_core():
    graph = core_graph()
    cycles = find_cycles(graph)
    details = []
    for cycle in cycles:
        edges = [str(i) for i in ALL_IMPORTS if i.module_level and i.importer in cycle and i.imported in cycle]
        details.append(" -> ".join(cycle) + " (" + "; ".join(edges) + ")")
    assert not cycles, "module-level import cycles: " + " | ".join(details)


@pytest.mark.parametrize("pipeline", PIPELINE)
def test_no_builtin_plugin_imports_the_pipeline(pipeline):
    offenders = [
        str(i)
        for i in ALL_IMPORTS
        if i.importer.startswith("nrstream_plugins")
        and (i.imported == pipeline or i.imported.startswith(pipeline + "."))
    ]
    assert not offenders, f"built-in plugins import the pipeline module {pipeline}: {offenders}"


def test_the_core_imports_no_builtin_plugin():
    offenders = [
        str(i)
        for i in ALL_IMPORTS
        if i.importer.split(".")[0] == "nrstream" and i.imported.split(".")[0] == "nrstream_plugins"
    ]
    assert not offenders, f"the core imports built-in plugins (it must find them through entry points): {offenders}"
