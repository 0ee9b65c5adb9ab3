"""The study's code stands apart: betavae.study sits on the sweep engine, never the other way, and its
modules import each other without a cycle (the runner and the report share betavae.study.design)."""

from __future__ import annotations

import ast
from pathlib import Path

import betavae

PACKAGE = Path(betavae.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every betavae module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("betavae"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("betavae"))
    return found


def modules_of(package: str) -> dict[str, set[str]]:
    folder = PACKAGE / package
    names = {f"betavae.{package}.{path.stem}": path
             for path in folder.glob("*.py") if path.stem != "__init__"}
    return {name: {target for target in imports_of(path) if target in names} for name, path in names.items()}


def test_the_sweep_engine_never_imports_the_study():
    for path in (PACKAGE / "studies").glob("*.py"):
        study = [name for name in imports_of(path) if name.split(".")[:2] == ["betavae", "study"]]
        assert not study, path.name


def test_the_study_modules_import_each_other_without_a_cycle():
    graph = modules_of("study")
    assert "betavae.study.design" in graph and "betavae.study.runner" in graph

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for target in graph[start]:
            if target == goal or (target not in seen and reaches(target, goal, seen | {target})):
                return True
        return False

    cycles = [name for name in graph if reaches(name, name, {name})]
    assert not cycles, f"import cycle through {cycles}"
    assert "betavae.study.design" in graph["betavae.study.runner"]
    assert "betavae.study.design" in graph["betavae.study.study_report"]
    assert not graph["betavae.study.design"] - {"betavae.study.stats"}  # the design imports no machinery
