"""The shared core: one user-error type, one atomic writer, one fingerprint, each with one home."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tokenpo.core import progress
from tokenpo.core.errors import EXIT_CODE, UserError
from tokenpo.core.files import write_atomic
from tokenpo.core.fingerprint import canonical_json, fingerprint
from tokenpo.harness.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "tokenpo"
# Exceptions that are not bad input: the sandbox's wire errors end a program's verdict, never a command.
NOT_USER_ERRORS = {
    *("WireError", "ProgramGone", "ProgramError", "CallbackError", "IsolationMissing"),
    *("_ConfigProblem", "_FieldError"),
    "RequestError",  # the judge's chat server answers it as an HTTP error; it never reaches the command line
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_every_error_class_of_the_package_is_a_user_error_or_named_as_internal():
    import importlib

    found = {}
    for path, tree in _modules():
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", getattr(base, "attr", "")).endswith(("Error", "Exception")) for base in node.bases
            ):
                found[node.name] = (module, node.name)
    assert {"HarnessError", "TrainingError", "DataError", "ResultsError", "EvalError", "CatalogError"} <= set(found)
    for name, (module, attribute) in found.items():
        if name in NOT_USER_ERRORS or name == "UserError":
            continue
        cls = getattr(importlib.import_module(module), attribute)
        assert issubclass(cls, UserError), f"{module}.{name} is bad input the CLI would print as a traceback"


def test_the_cli_catches_the_one_user_error_type(monkeypatch, capsys):
    import argparse

    from tokenpo.harness import cli

    class RaisedSomewhere(UserError):  # any package's subclass, unknown to the CLI
        pass

    def fail(args):
        raise RaisedSomewhere("somewhere.yaml:3: key: what is wrong")

    parser = argparse.ArgumentParser()
    parser.set_defaults(run=fail)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert main([]) == EXIT_CODE == 2
    assert capsys.readouterr().err == "error: somewhere.yaml:3: key: what is wrong\n"

    def bug(args):
        raise KeyError("a bug")

    parser.set_defaults(run=bug)
    with pytest.raises(KeyError):  # not bad input: the traceback stays
        main([])


def test_one_atomic_writer():
    """Writing a temporary file and renaming it over a target happens in tokenpo/core/files.py only.

    (Folders are published or moved aside by renaming them, which is not a file writer.)"""
    writers = []
    for path, tree in _modules():
        if path == PACKAGE / "core" / "files.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                owner = getattr(getattr(node.func, "value", None), "id", "")
                path_replace = name == "replace" and len(node.args) == 1 and owner != "dataclasses"
                if name in {"mkstemp", "NamedTemporaryFile"} or (name == "replace" and owner == "os") or path_replace:
                    writers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert writers == []


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "results.json"
    write_atomic(target, "old")
    assert write_atomic(target, b"\x00new") == target
    assert target.read_bytes() == b"\x00new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_atomic(target, "old")

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_fingerprint_ignores_key_order_and_streams_parts():
    import hashlib

    assert fingerprint({"b": 1, "a": Path("x")}) == fingerprint({"a": "x", "b": 1})
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    expected = hashlib.sha256(b'{"k":1}' + b"\n[1,2]" + b"\n[3]").hexdigest()
    assert fingerprint({"k": 1}, iter([[1, 2], [3]])) == expected
    assert fingerprint({"k": 1}, [[1, 2], [3]]) != fingerprint({"k": 1}, [[1], [2, 3]])


class Recorder(progress.Silent):
    def __init__(self):
        self.events = []

    def started(self, task):
        self.events.append(("start", task.description, task.total, task.done))

    def advanced(self, task):
        self.events.append(("advance", task.description, task.done, dict(task.status)))

    def ended(self, task):
        self.events.append(("end", task.description, task.done))

    def note(self, line):
        self.events.append(("note", line))


def test_libraries_report_and_the_caller_chooses_the_display(capsys):
    def library():
        with progress.task("outer", total=2, unit="stage") as outer:
            with progress.task("inner", total=3, unit="step", done=1) as inner:
                inner.advance(2, loss="0.5")
            progress.note("a finding")
            outer.advance()
            with progress.task("hidden", total=1, shown=False) as hidden:
                hidden.advance()

    library()  # no display chosen: nothing drawn, the note still reaches stderr
    assert capsys.readouterr() == ("", "a finding\n")
    recorder = Recorder()
    with progress.shown_by(recorder):
        library()
    library()  # the display is the block's only
    assert recorder.events == [
        ("start", "outer", 2, 0),
        ("start", "inner", 3, 1),
        ("advance", "inner", 3, {"loss": "0.5"}),
        ("end", "inner", 3),
        ("note", "a finding"),
        ("advance", "outer", 1, {}),
        ("end", "outer", 1),
    ]


def test_only_the_displays_draw_progress():
    """No library imports tqdm: it reports through tokenpo.core.progress, whose displays draw."""
    drawers = {PACKAGE / "core" / "progress.py", PACKAGE / "harness" / "pipeline" / "progress.py"}
    importing = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "tqdm" for name in names) and path not in drawers:
                importing.append(str(path.relative_to(PACKAGE)))
    assert importing == []


def test_no_long_module_without_a_reason():
    """A module over 400 lines says in its docstring why it is one module (a paragraph starting 'Why')."""
    long_without_reason = []
    root = PACKAGE.parent
    for path in sorted([*PACKAGE.rglob("*.py"), *(root / "bench").rglob("*.py"), *(root / "scripts").rglob("*.py")]):
        text = path.read_text()
        if text.count("\n") > 400 and "\nWhy " not in (ast.get_docstring(ast.parse(text)) or "").join("\n\n"):
            long_without_reason.append(f"{path.relative_to(PACKAGE.parent)} ({text.count(chr(10))} lines)")
    assert long_without_reason == []


def test_the_pipeline_display_counts_stages_and_shows_the_inner_work(capsys):
    from tokenpo.harness.pipeline.progress import SKIPPED, RunProgress

    with progress.shown_by(RunProgress()), progress.task("run tiny", total=2, unit="stage") as run:
        with progress.task("data", unit="stage") as stage:
            stage.advance(0, state=SKIPPED)
        run.advance()
        with progress.task("train dpo", unit="stage"), progress.task("training", total=4, unit="step") as steps:
            steps.advance(3)
        run.advance()
    lines = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    shown = [line.split(" |")[0] for line in lines]
    assert "run tiny [1/2] data · done earlier, skipped" in shown
    assert "run tiny [2/2] train dpo · 3/4 step" in shown
    assert shown[-1] == "run tiny [2/2] finished"
    # the stage number never goes back (a finished stage is not shown again before the run advances)
    numbers = [int(line.split("[")[1].split("/")[0]) for line in shown if line.startswith("run tiny [")]
    assert numbers == sorted(numbers)
