"""No import cycles between the modules of tokenpo: every module can be read after the ones it imports.

An import counts wherever it is written (top level, inside a function, under ``if``): an import
moved into a function to dodge a cycle still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(root: Path, package: str = "tokenpo") -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports (``from P import M`` imports ``P.M`` if it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            targets += [f"{base}.{alias.name}" for alias in node.names]
    imported = set()
    for target in targets:
        while target and target not in known:  # a name inside a module → the module
            target = target.rpartition(".")[0]
        if target and target != name:
            imported.add(target)
    return imported


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other, directly or through others (each with 2+ modules)."""

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {name: reachable(name) for name in graph}
    cycles: list[set[str]] = []
    for name in sorted(graph):
        group = {name} | {other for other in reach[name] if name in reach[other]}
        if len(group) > 1 and group not in cycles:
            cycles.append(group)
    return cycles


def tokenpo_cycles() -> list[set[str]]:
    known = modules(ROOT)
    return import_cycles({name: imported_modules(name, path, known) for name, path in known.items()})


def test_the_leaderboards_room_has_no_import_cycle():
    assert [cycle for cycle in tokenpo_cycles() if any(m.startswith("tokenpo.leaderboards") for m in cycle)] == []


def test_tokenpo_has_no_import_cycle():
    assert tokenpo_cycles() == []


def test_a_cycle_through_a_function_level_or_relative_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (package / "b.py").write_text("from . import c\n\ndef g():\n    pass\n")
    (package / "c.py").write_text("import pkg.a as a\n")
    (package / "d.py").write_text("from pkg.a import f\nfrom pkg import b\n")
    known = modules(tmp_path, "pkg")
    graph = {name: imported_modules(name, path, known) for name, path in known.items()}
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a", "pkg.b"}
    assert import_cycles(graph) == [{"pkg.a", "pkg.b", "pkg.c"}]
