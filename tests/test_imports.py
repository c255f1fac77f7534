"""The layering holds: read from the source (AST), not by importing anything.

* every package of ``nrstream`` imports only the packages its docstring allows (:data:`ALLOWED`),
  at any level: module level, ``try`` blocks and function bodies alike (``if TYPE_CHECKING:`` is
  skipped: it never runs);
* no import cycles among the modules of ``nrstream``, function-level imports included;
* no built-in plugin imports the pipeline (the lab, deploy, commands) at any level: a plugin is
  a component the pipeline calls, never the reverse;
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
PIPELINE = ("nrstream.lab", "nrstream.deploy", "nrstream.commands", "nrstream.cli")

#: the small base: modules at the top of the package that everything may use
BASE = {"errors", "log", "atomic", "stats", "seeds", "agent"}
_BELOW_LAB = {"base", "stream", "plugin", "data", "artifacts"}
#: which layers each layer may import (a layer is a package of nrstream, or the base)
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "stream": {"base", "stream"},
    "plugin": {"base", "stream", "plugin"},
    "data": {"base", "stream", "plugin", "data"},
    "envs": {"base", "stream", "plugin", "data", "envs"},
    "artifacts": {"base", "stream", "plugin", "data", "artifacts"},
    "lab": _BELOW_LAB | {"lab"},
    "deploy": _BELOW_LAB | {"deploy"},
    "commands": _BELOW_LAB | {"lab", "deploy", "envs", "commands"},
}


def layer(module: str) -> str | None:
    """The layer of a module of nrstream (``None``: the package itself, which may import anything lazily)."""
    parts = module.split(".")
    if parts[0] != "nrstream" or module == "nrstream":
        return None
    if parts[1] in BASE:
        return "base"
    if parts[1] == "testing":  # the public name of the conformance kit
        return "plugin"
    if parts[1] == "cli":
        return "commands"
    return parts[1]


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


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = _resolve(importer, is_package, node)
    targets = []
    for alias in node.names:
        submodule = f"{package}.{alias.name}"
        if submodule in known:
            targets.append(submodule)
        elif package == "nrstream" and alias.name in getattr(nrstream, "_LAZY", {}):
            targets.append(nrstream._LAZY[alias.name])  # a lazy public name imports its module
        else:
            targets.append(package)
    return targets


def imports_of(name: str, path: Path, known: dict[str, Path] | None = None) -> list[Import]:
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
            for target in _targets(name, is_package, child, KNOWN if known is None else known):
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


def core_graph(imports: list[Import] | None = None, known: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Importer -> imported among the core's modules, function-level imports included."""
    imports = ALL_IMPORTS if imports is None else imports
    known = KNOWN if known is None else known
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.importer.split(".")[0] == "nrstream" and imp.importer != "nrstream":
            if imp.imported in known and imp.imported.split(".")[0] == "nrstream" and imp.imported != imp.importer:
                if imp.imported != "nrstream":
                    graph.setdefault(imp.importer, set()).add(imp.imported)
    return graph


def test_the_walk_sees_the_package():
    """Guards the walk itself: it finds the modules and the imports we know are there."""
    assert {"nrstream", "nrstream.plugin.hookspecs", "nrstream.testing", "nrstream.commands"} <= set(KNOWN)
    assert "nrstream_plugins.architectures.recurrent" in KNOWN
    seen = {(i.importer, i.imported, i.module_level) for i in ALL_IMPORTS}
    assert ("nrstream.plugin.hookspecs", "nrstream.plugin.contracts", True) in seen
    # relative import inside a plugin package
    assert ("nrstream_plugins.architectures.recurrent", "nrstream_plugins.architectures._common", True) in seen
    # the contracts' tensor types are annotations only (TYPE_CHECKING): not a run-time edge
    assert ("nrstream.plugin.contracts", "nrstream.stream.stream", True) not in seen


def test_cycle_finder():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def cycle_report(imports: list[Import], known: dict[str, Path]) -> list[str]:
    """One line per import cycle (function-level imports included), naming its edges."""
    cycles = find_cycles(core_graph(imports, known))
    return [
        " -> ".join(cycle) + " (" + "; ".join(str(i) for i in imports if {i.importer, i.imported} <= set(cycle)) + ")"
        for cycle in cycles
    ]


def test_no_import_cycles_in_the_core():
    details = cycle_report(ALL_IMPORTS, KNOWN)
    assert not details, "import cycles: " + " | ".join(details)


def test_a_planted_function_level_cycle_is_found(tmp_path):
    """The walk sees imports inside functions: two modules that import each other lazily are a cycle."""
    top = tmp_path / "nrstream"
    (top / "lab").mkdir(parents=True)
    (top / "__init__.py").write_text("")
    (top / "lab" / "__init__.py").write_text("")
    (top / "lab" / "a.py").write_text("def f():\n    from nrstream.lab import b\n")
    (top / "lab" / "b.py").write_text("import json\n\ndef g():\n    from nrstream.lab.a import f\n")
    known = modules_under(top)
    imports = [imp for name, path in known.items() for imp in imports_of(name, path, known)]
    assert {(i.importer, i.imported, i.module_level) for i in imports} >= {
        ("nrstream.lab.a", "nrstream.lab.b", False),
        ("nrstream.lab.b", "nrstream.lab.a", False),
    }
    assert len(cycle_report(imports, known)) == 1


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        src, dst = layer(imp.importer), layer(imp.imported)
        if src is None or dst is None or imp.importer.split(".")[0] != "nrstream":
            continue
        if imp.imported.split(".")[0] != "nrstream":
            continue
        if dst not in ALLOWED[src]:
            bad.append(f"{imp} ({src} may import {', '.join(sorted(ALLOWED[src]))}; not {dst})")
    return bad


def test_every_package_imports_only_what_its_docstring_allows():
    bad = layer_violations(ALL_IMPORTS)
    assert not bad, "layering broken: " + " | ".join(bad)


def test_a_planted_layer_violation_is_found():
    planted = [Import("nrstream.stream.bank", "nrstream.lab.engine", 3, False)]
    assert len(layer_violations(planted)) == 1
    assert layer_violations([Import("nrstream.lab.engine", "nrstream.stream.bank", 3, True)]) == []


def test_every_package_names_its_layer_rule_in_its_docstring():
    for package in sorted({layer(m) for m in KNOWN if layer(m) not in (None, "base", "commands")}):
        doc = ast.get_docstring(ast.parse((CORE / package / "__init__.py").read_text())) or ""
        assert "May import" in doc, f"nrstream/{package}/__init__.py: its docstring must say what it may import"
        for other in ALLOWED[package] - {"base", package}:
            assert f"nrstream.{other}" in doc, f"nrstream/{package}: the docstring does not name {other}"


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
