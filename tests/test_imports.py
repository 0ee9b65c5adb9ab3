"""betavae's modules import one another without cycles, lazy imports included.

A cycle hidden inside a function (``config.validate`` importing ``evaluation``, which imports
``config``) works until someone moves an import to the top, and then fails with a half-built
module; it also means neither module can be read, tested or moved without the other. The
graph is built from the source with :mod:`ast`, importing nothing, so the check is fast and
sees imports at any depth.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that module ``name`` imports, anywhere in its body.

    ``from p import n`` counts as importing ``p.n`` where that is a module, else ``p``; the
    parent package a submodule's import runs implicitly is not counted.
    """
    is_package = path.name == "__init__.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding ``name``
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                imported.add(submodule if submodule in modules else base)
    return {target for target in imported if target in modules and target != name}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module → the modules it imports, for every module of ``package`` under ``root``."""
    modules = module_names(root, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowest[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                lowest[node] = min(lowest[node], lowest[target])
            elif target in on_stack:
                lowest[node] = min(lowest[node], index[target])
        if lowest[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    """A component as its modules and the imports that tie them: ``a → b, c; b → a``."""
    members = set(component)
    return "; ".join(f"{name} → {', '.join(sorted(graph[name] & members))}" for name in component)


def test_betavae_modules_import_without_cycles():
    graph = import_graph(SOURCE, "betavae")
    assert len(graph) > 50  # the walk found the package
    found = cycles(graph)
    assert not found, "import cycles among betavae's modules:\n" + "\n".join(
        describe(graph, component) for component in found
    )


def test_checker_finds_a_lazy_cycle_through_a_package(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "leaf.py").write_text("import os\n")
    (package / "a.py").write_text("from pkg import leaf\nfrom pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import a\n    return a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.leaf", "pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    (package / "sub" / "b.py").write_text("from pkg import leaf\n")
    assert cycles(import_graph(tmp_path, "pkg")) == []
