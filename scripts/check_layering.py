"""The layering of tokenpo: which package may import which, with no cycle between packages or modules.

    python scripts/check_layering.py [ROOT]

prints the package graph (``trainers -> core``: a module of trainers imports one of core), with each
package's modules and lines, then every violation as ``FILE:LINE: IMPORT: why``, and exits 1 when there
is one. Standard library only (``ast``), so it runs without the package or its dependencies installed.

An import counts wherever it is written: at the top, inside a function, under ``if``/``TYPE_CHECKING``,
relative or absolute. An import moved into a function to dodge a cycle or a layer still ties the two
modules together, and whoever imports the function loads the other package after all.

The packages are the folders under ``tokenpo/``; the modules at its top (``__init__``, ``__main__``) form
the package ``tokenpo``. The arrows point down: ``core`` at the bottom imports no other package, the
``trainers``, ``evals`` and ``leaderboards`` build on it alone (``evals`` also runs code in the
``sandbox``), ``cards`` writes model cards from run folders and leaderboard rows, and ``harness``, the
command line and the pipeline, is the only package that wires the others together. A package without a
rule here is a violation: a new package says where it sits.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = "tokenpo"  # the modules at the top of the namespace: tokenpo/__init__.py and __main__.py

# Who may import whom, besides itself; None: any package.
RULES: dict[str, frozenset[str] | None] = {
    "core": frozenset(),
    "trainers": frozenset({"core"}),
    "evals": frozenset({"core", "sandbox"}),
    "leaderboards": frozenset({"core"}),
    "sandbox": frozenset({"core"}),
    "cards": frozenset({"core", "leaderboards"}),
    "harness": None,
    # tokenpo/__init__.py runs before any module of the namespace: it imports nothing; __main__ is the
    # command line's entry.
    TOP: frozenset({"harness"}),
}


@dataclass(frozen=True)
class Import:
    """One import statement's tie from module ``source`` to module ``target`` of the namespace."""

    source: str
    target: str
    path: Path
    line: int
    statement: str  # as written (its first line)

    def where(self, root: Path) -> str:
        return f"{_shown(self.path, root)}:{self.line}: {self.statement}"


def modules(root: Path, namespace: str = TOP) -> dict[str, Path]:
    """Every module of ``namespace`` under ``root``, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((root / namespace).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """The imports of module ``name`` (at ``path``) that tie it to another module of ``known``;
    ``from P import M`` imports ``P.M`` when that is a module, else ``P``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        statement = lines[node.lineno - 1].strip()
        for target in targets:
            while target and target not in known:  # a name inside a module → the module
                target = target.rpartition(".")[0]
            tie = Import(name, target, path, node.lineno, statement)
            if target and target != name and tie not in found:
                found.append(tie)
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports."""
    return {tie.target for tie in imports(name, path, known)}


def module_graph(root: Path, namespace: str = TOP) -> dict[str, list[Import]]:
    """Each module of ``namespace`` with its imports of the namespace's other modules."""
    known = modules(root, namespace)
    return {name: imports(name, path, known) for name, path in known.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of nodes that import each other, directly or through others (each with 2+ nodes)."""

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
        group = {name} | {other for other in reach[name] if name in reach.get(other, ())}
        if len(group) > 1 and group not in cycles:
            cycles.append(group)
    return cycles


def packages(root: Path, namespace: str = TOP) -> list[str]:
    """The packages of ``namespace``: its folders holding Python files, and the namespace itself for the
    modules at its top (its ``__init__``, ``__main__``)."""
    folders = sorted({path.relative_to(root / namespace).parts[0] for path in modules(root, namespace).values()
                      if len(path.relative_to(root / namespace).parts) > 1})  # fmt: skip
    return [*folders, namespace]


def package_of(root: Path, known: dict[str, Path], namespace: str = TOP) -> dict[str, str]:
    """Each module of ``known`` with its package (``tokenpo.trainers.loop`` → ``trainers``)."""
    found = {}
    for name, path in known.items():
        parts = path.relative_to(root / namespace).parts
        found[name] = parts[0] if len(parts) > 1 else namespace
    return found


def package_graph(root: Path, namespace: str = TOP) -> dict[str, set[str]]:
    """Each package with the other packages its modules import."""
    home = package_of(root, modules(root, namespace), namespace)
    edges: dict[str, set[str]] = {package: set() for package in packages(root, namespace)}
    for name, ties in module_graph(root, namespace).items():
        edges[home[name]] |= {home[t.target] for t in ties} - {home[name]}
    return edges


def crossings(root: Path = ROOT) -> dict[str, list[str]]:
    """Each package of ``tokenpo`` under ``root`` with its imports that its rule does not allow (and a
    line when it has no rule), one line each naming the file and the import."""
    known = modules(root)
    home = package_of(root, known)
    found: dict[str, list[str]] = {package: [] for package in packages(root)}
    for package in found:
        if package not in RULES:
            found[package].append(f"{_shown(root / TOP / package, root)}: package {package!r} has no layering "
                                  f"rule (add it to RULES in scripts/check_layering.py)")  # fmt: skip
    for name, path in known.items():
        package = home[name]
        allowed = RULES.get(package, frozenset())
        for tie in imports(name, path, known):
            target = home[tie.target]
            if target != package and allowed is not None and target not in allowed:
                may = ", ".join(sorted(allowed)) or "nothing outside itself"
                found[package].append(f"{tie.where(root)}: {package} may not import {target} "
                                      f"({package} may import: {may})")  # fmt: skip
        found[package] += _outside_namespace(path, set(found) - {TOP}, root)
    return found


def cycles(root: Path = ROOT) -> list[str]:
    """Every cycle between packages and between modules of ``tokenpo``, each naming the imports that close it."""
    graph = module_graph(root)
    home = package_of(root, modules(root))
    edges = package_graph(root)
    found = []
    for cycle in import_cycles(edges):
        arrows = []
        for source in sorted(cycle):
            for target in sorted(edges[source] & cycle):
                ties = [t for name, ties in graph.items() if home[name] == source
                        for t in ties if home[t.target] == target]  # fmt: skip
                more = f" (and {len(ties) - 1} more)" if len(ties) > 1 else ""
                arrows.append(f"  {source} -> {target}: {ties[0].where(root)}{more}")
        found.append(f"package cycle {' <-> '.join(sorted(cycle))}:\n" + "\n".join(arrows))
    for cycle in import_cycles({name: {t.target for t in ties} for name, ties in graph.items()}):
        ties = [t for name in sorted(cycle) for t in graph[name] if t.target in cycle]
        found.append(f"module cycle {' <-> '.join(sorted(cycle))}:\n" +
                     "\n".join(f"  {t.where(root)}" for t in ties))  # fmt: skip
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Every breach of the layering of ``tokenpo`` under ``root``: disallowed imports, then cycles."""
    return [line for lines in crossings(root).values() for line in lines] + cycles(root)


def _outside_namespace(path: Path, ours: set[str], root: Path) -> list[str]:
    """Absolute imports that name a package of ours without ``tokenpo.`` (``from core import x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        written = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            written = [node.module]
        for name in written:
            if name.split(".")[0] in ours:
                found.append(f"{_shown(path, root)}:{node.lineno}: imports {name}, outside the {TOP} namespace")
    return found


def describe(root: Path = ROOT) -> list[str]:
    """The package graph, one line per package: ``trainers -> core  (17 modules, 4321 lines)``."""
    known = modules(root)
    home = package_of(root, known)
    edges = package_graph(root)
    lines = []
    for package in packages(root):
        members = [path for name, path in known.items() if home[name] == package]
        count = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in members)
        targets = ", ".join(sorted(edges[package])) or "(nothing)"
        lines.append(f"{package} -> {targets}  ({len(members)} modules, {count} lines)")
    return lines


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve() if args else ROOT
    if not (root / TOP).is_dir():  # a wrong folder would otherwise pass with nothing checked
        print(f"error: {root}: no {TOP}/ package folder to check", file=sys.stderr)
        return 2
    print(f"package graph of {TOP} (a -> b: a module of a imports one of b):")
    for line in describe(root):
        print(f"  {line}")
    found = violations(root)
    for violation in found:
        print(f"error: {violation}", file=sys.stderr)
    print(f"{len(found)} layering violations" if found else "layering: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
