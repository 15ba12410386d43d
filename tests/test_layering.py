"""The layering of tokenpo (scripts/check_layering.py): each package imports only the packages below it,
and no two packages or modules import each other, directly or through others.

An import counts wherever it is written (top level, inside a function, under ``if``/``TYPE_CHECKING``,
relative): an import moved into a function to dodge a cycle still ties the two modules together.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_layering.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("check_layering", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


layering = _load_script()


@pytest.mark.parametrize("package", layering.packages(ROOT))
def test_each_package_imports_only_what_its_rule_allows(package):
    assert package in layering.RULES, f"tokenpo/{package}: a new package says where it sits (RULES)"
    assert layering.crossings(ROOT)[package] == []


def test_no_two_packages_import_each_other():
    assert layering.import_cycles(layering.package_graph(ROOT)) == []


def test_no_two_modules_import_each_other():
    graph = layering.module_graph(ROOT)
    assert layering.import_cycles({name: {tie.target for tie in ties} for name, ties in graph.items()}) == []


def test_a_cycle_through_a_function_level_or_relative_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (package / "b.py").write_text("from . import c\n\ndef g():\n    pass\n")
    (package / "c.py").write_text("import pkg.a as a\n")
    (package / "d.py").write_text("from pkg.a import f\nfrom pkg import b\n")
    known = layering.modules(tmp_path, "pkg")
    graph = {name: layering.imported_modules(name, path, known) for name, path in known.items()}
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a", "pkg.b"}
    assert layering.import_cycles(graph) == [{"pkg.a", "pkg.b", "pkg.c"}]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "tokenpo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_package_that_breaks_the_layering_is_reported_naming_the_file_and_import(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/files.py": "from ..leaderboards import board\n",  # relative, upwards
        "trainers/__init__.py": "",
        "trainers/loop.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tokenpo.cards\n",
        "cards/__init__.py": "def write():\n    from tokenpo.trainers import loop\n",  # in a function
        "leaderboards/__init__.py": "",
        "leaderboards/board.py": "from core import files\n",  # outside the namespace
        "plugins/__init__.py": "",  # a new package without a rule
    })  # fmt: skip
    found = layering.crossings(root)
    assert found["core"] == ["tokenpo/core/files.py:1: from ..leaderboards import board: core may not import "
                             "leaderboards (core may import: nothing outside itself)"]  # fmt: skip
    assert found["trainers"] == ["tokenpo/trainers/loop.py:3: import tokenpo.cards: trainers may not import cards "
                                 "(trainers may import: core)"]  # fmt: skip
    assert found["cards"] == ["tokenpo/cards/__init__.py:2: from tokenpo.trainers import loop: cards may not import "
                              "trainers (cards may import: core, leaderboards)"]  # fmt: skip
    assert found["leaderboards"] == ["tokenpo/leaderboards/board.py:1: imports core, outside the tokenpo namespace"]
    assert found["plugins"] == ["tokenpo/plugins: package 'plugins' has no layering rule "
                                "(add it to RULES in scripts/check_layering.py)"]  # fmt: skip
    (cycle,) = [line for line in layering.cycles(root) if line.startswith("package cycle")]
    assert cycle.splitlines() == [
        "package cycle cards <-> trainers:",
        "  cards -> trainers: tokenpo/cards/__init__.py:2: from tokenpo.trainers import loop",
        "  trainers -> cards: tokenpo/trainers/loop.py:3: import tokenpo.cards",
    ]
    # The command: standard library only (-S: no site-packages, so not this package either), exit 1.
    done = subprocess.run([sys.executable, "-S", str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "error: tokenpo/trainers/loop.py:3: import tokenpo.cards" in done.stderr
    assert "  trainers -> cards  (2 modules, 3 lines)" in done.stdout.splitlines()


def test_the_check_passes_on_tokenpo_and_prints_the_package_graph():
    done = subprocess.run([sys.executable, "-S", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "layering: ok"
    assert any(line.startswith("  trainers -> core  (") for line in lines)
    assert any(line.startswith("  cards -> core, leaderboards  (") for line in lines)


def test_a_folder_without_the_package_is_refused_not_passed(tmp_path, capsys):
    assert layering.main([str(tmp_path)]) == 2
    assert f"{tmp_path}: no tokenpo/ package folder to check" in capsys.readouterr().err


@pytest.mark.parametrize("package", ["tokenpo.trainers", "tokenpo.evals", "tokenpo.cards"])
def test_importing_a_package_loads_none_above_it(package):
    above = {"tokenpo.trainers": ("leaderboards", "cards", "harness"), "tokenpo.evals": ("leaderboards", "cards",
             "harness", "trainers"), "tokenpo.cards": ("harness", "trainers")}[package]  # fmt: skip
    code = (
        f"import sys, {package}\n"
        f"print('\\n'.join(m for m in sys.modules if m.split('.')[:2] in {[['tokenpo', a] for a in above]}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
