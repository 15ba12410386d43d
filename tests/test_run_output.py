"""What ``harness run`` shows on the terminal: its own line and notes only (the libraries' output goes
to the run's log), an ETA only with a basis, and result folders named without the machine's paths."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from tokenpo.core import progress
from tokenpo.harness.pipeline.progress import SKIPPED, RunProgress
from tokenpo.harness.pipeline.quiet import LOG, library_output_to

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
TIMESTAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _segments(text: str) -> list[str]:
    """What a terminal would have shown, line by line and redraw by redraw."""
    return [part.strip() for part in re.split(r"[\r\n]", text) if part.strip()]


def _eta(display: RunProgress) -> str | None:
    display._draw()
    last = _segments(display.file.getvalue())[-1]
    found = re.search(r"· eta (\S+)$", last)
    return found.group(1) if found else None


def _stage(clock: Clock, description: str, kind: str, seconds: float, steps: int = 0) -> None:
    with progress.task(description, unit="stage", kind=kind):
        if steps:
            with progress.task("training", total=steps, unit="step") as counted:
                for _ in range(steps):
                    clock.now += seconds / steps
                    counted.advance()
        else:
            clock.now += seconds


# ---------------------------------------------------------------- the ETA


def test_no_eta_until_every_stage_to_come_has_one_of_its_kind_timed():
    clock = Clock()
    display = RunProgress(io.StringIO(), clock=clock, tick=3600)
    kinds = ("data", "train", "train", "eval", "eval", "")
    with progress.shown_by(display), progress.task("run t", total=6, unit="stage", kinds=kinds) as run:
        assert _eta(display) is None
        _stage(clock, "data", "data", 30)
        run.advance()
        with (
            progress.task("train dpo", unit="stage", kind="train"),
            progress.task("training", total=10, unit="step") as steps,
        ):
            clock.now += 50
            steps.advance(5)  # half way: the trainings could be estimated, the evaluations cannot
            assert _eta(display) is None
            clock.now += 50
            steps.advance(5)
        run.advance()
        with progress.task("train sparsepo", unit="stage", kind="train"):
            clock.now += 40
            assert _eta(display) is None  # the evaluations to come have no basis yet
        run.advance()
        _stage(clock, "evaluate base", "eval", 200)
        run.advance()
        # one training (100 s) and one evaluation (200 s) timed; the last evaluation is to come, the
        # "" stage (done earlier) takes nothing
        assert _eta(display) == "03:20"
        with progress.task("evaluate dpo", unit="stage", kind="eval"):
            clock.now += 150
            assert _eta(display) == "00:50"
            clock.now += 100
            assert _eta(display) == "00:00"  # past its kind's mean: it may end any moment
        run.advance()
        with progress.task("leaderboard and report", unit="stage", kind="report"):
            clock.now += 20
            assert _eta(display) == "00:00"  # the plan counts no report (kind "")
        run.advance()
    assert _segments(display.file.getvalue())[-1] == "run t [6/6] finished |████████████████| 10:40"


def test_a_stage_boundary_after_fast_or_skipped_stages_gives_no_huge_eta():
    """The old display extrapolated the rate of its bar: skipped stages (instant) then one slow step
    made hours of a run of minutes. Here skipped stages are neither work done nor work left."""
    clock = Clock()
    display = RunProgress(io.StringIO(), clock=clock, tick=3600)
    kinds = ("", "", "", "eval", "eval", "eval")
    with progress.shown_by(display), progress.task("run t", total=6, unit="stage", kinds=kinds) as run:
        for name in ("data", "train dpo", "train sparsepo"):
            with progress.task(name, unit="stage", kind="train") as stage:
                stage.advance(0, state=SKIPPED)
            run.advance()
        assert display.times.took == {}  # an instant skip is no measurement
        _stage(clock, "evaluate base", "eval", 120, steps=40)
        run.advance()
        etas = []
        with (
            progress.task("evaluate dpo", unit="stage", kind="eval"),
            progress.task("requests", total=400, unit="req") as requests,
        ):
            for _ in range(4):
                etas.append(_eta(display))
                clock.now += 10
                requests.advance()  # a slow first request says nothing about the stages to come
        run.advance()
        assert etas == ["04:00", "03:50", "03:40", "03:30"]


def test_on_the_quickstarts_stage_times_the_eta_follows_the_time_left():
    """The seconds each stage of a quickstart took on 2 CPU cores (its stage.json files). tqdm's
    extrapolation said 1:18:44 left at 04:23, when 17 minutes were; here: nothing until an evaluation
    has been timed, then never more than four minutes off."""
    took = [
        ("data", 32.4),
        ("benchmark-data", 0.5),
        ("train", 33.2),
        ("train", 33.1),
        ("train", 164.4),
        ("eval", 230.4),
        ("eval", 296.5),
        ("eval", 403.2),
        ("eval", 92.5),
        ("report", 0.5),
    ]
    kinds = tuple("" if kind == "report" else kind for kind, _ in took)
    clock = Clock()
    display = RunProgress(io.StringIO(), clock=clock, tick=3600)
    total, errors, blind = sum(seconds for _, seconds in took), [], 0.0
    with progress.shown_by(display), progress.task("run q", total=len(took), unit="stage", kinds=kinds) as run:
        for kind, seconds in took:
            with progress.task(kind, unit="stage", kind=kind):
                started = clock.now
                while clock.now < started + seconds:
                    left = display.seconds_left()
                    if left is None:
                        blind = clock.now - 1000.0
                    else:
                        errors.append(left - (total - (clock.now - 1000.0)))
                    clock.now = min(clock.now + 5, started + seconds)
            run.advance()
    assert blind == pytest.approx(sum(seconds for _, seconds in took[:6]) - 5, abs=5)  # until eval/base ended
    assert max(abs(error) for error in errors) < 240


def test_a_stage_longer_than_its_kind_so_far_makes_the_eta_grow_not_stall():
    clock = Clock()
    display = RunProgress(io.StringIO(), clock=clock, tick=3600)
    kinds = ("eval", "eval", "eval", "")
    with progress.shown_by(display), progress.task("run t", total=4, unit="stage", kinds=kinds) as run:
        _stage(clock, "evaluate base", "eval", 100)
        run.advance()
        etas = []
        with progress.task("evaluate dpo", unit="stage", kind="eval"):
            for _ in range(4):
                etas.append(_eta(display))
                clock.now += 50
        run.advance()
        assert _eta(display) == "02:30"  # the two evaluations took 100 s and 200 s: 150 s for the last
    # 50 s in: 50 s of this one and 100 s for the last; past 100 s, the last is estimated at the mean
    assert etas == ["03:20", "02:30", "01:40", "02:05"]


def test_the_time_moves_while_nothing_is_reported():
    clock = Clock()
    display = RunProgress(io.StringIO(), clock=clock, tick=0.01)
    with (
        progress.shown_by(display),
        progress.task("run t", total=1, unit="stage", kinds=("eval",)),
        progress.task("evaluate base", unit="stage", kind="eval"),
    ):
        clock.now += 75
        deadline = time.monotonic() + 5
        while "01:15" not in display.file.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any(line.endswith("| 01:15") for line in _segments(display.file.getvalue()))
    drawn = display.file.getvalue()
    time.sleep(0.1)
    assert display.file.getvalue() == drawn  # the run ended: no more redraws


# ---------------------------------------------------------------- the libraries' output


def test_library_output_goes_to_the_log_and_the_harness_keeps_the_terminal(tmp_path, capsys):
    import datasets
    from tqdm import tqdm

    console = logging.StreamHandler(sys.stderr)  # as transformers and datasets attach theirs
    library = logging.getLogger("some_library")
    library.addHandler(console)
    library.propagate = False
    root_handlers = logging.getLogger().handlers[:]
    log = tmp_path / "out" / LOG
    try:
        with (
            progress.shown_by(RunProgress(tick=3600)),
            progress.task("run t", total=1, unit="stage"),
            library_output_to(log),
        ):
            logging.getLogger("lm_eval.tasks._index").warning("Task 'gsm8k' overrides existing task")
            library.warning("a library's own warning")
            warnings.warn("a library's warning", UserWarning, stacklevel=1)
            for _ in tqdm(range(3), desc="Generating test split"):
                pass
            print("a library's print")
            child = "import sys; sys.stderr.write('a child process says\\n')"
            subprocess.run([sys.executable, "-c", child], check=True)
            progress.note("data: 1 of 24 prompts gave no pair")
            made_inside = logging.StreamHandler()  # a library imported during the run
            logging.getLogger("imported_later").addHandler(made_inside)
            assert datasets.are_progress_bars_disabled()
        # everything is as it was: the handlers, the warnings, the bars; one made inside writes to stderr again
        assert logging.getLogger().handlers == root_handlers
        assert library.handlers == [console] and not library.propagate
        assert not datasets.are_progress_bars_disabled()
        assert getattr(warnings.showwarning, "__module__", None) != "logging"
        assert made_inside.stream is sys.stderr
    finally:
        library.removeHandler(console)
        library.propagate = True
        logging.getLogger("imported_later").handlers.clear()
    terminal = capsys.readouterr()
    shown = [line for line in _segments(terminal.err) if not line.startswith("run t [")]
    assert shown == [f"library messages and warnings: {log}", "data: 1 of 24 prompts gave no pair"]
    assert terminal.out == ""
    written = log.read_text()
    assert re.search(
        rf"^{TIMESTAMP} WARNING lm_eval.tasks._index: Task 'gsm8k' overrides existing task$", written, re.M
    )
    assert re.search(rf"^{TIMESTAMP} WARNING some_library: a library's own warning$", written, re.M)
    assert re.search(rf"^{TIMESTAMP} WARNING py.warnings: .*UserWarning: a library's warning", written, re.M)
    assert "Generating test split: 100%" in written and "a library's print\n" in written
    assert "a child process says\n" in written
    assert "data: 1 of 24" not in written


def _tiny_run(folder: Path, benchmarks: Path) -> Path:
    suite = folder / "suite.yaml"  # gsm8k's generation settings make lm-eval warn that the task is overridden
    suite.write_text(
        yaml.safe_dump(
            {
                "limit": 1,
                "tasks": [
                    {
                        "task": "gsm8k",
                        "generation_kwargs": {"until": ["Question:"], "do_sample": False, "max_gen_toks": 8},
                    },
                ],
            }
        )
    )
    config = {
        "name": "tiny",
        "output_dir": str(folder / "out"),
        "model": "tiny-llama",
        "data": {
            "sentiment": {
                "train_prompts": 24,
                "eval_prompts": 4,
                "completions_per_prompt": 3,
                "max_new_tokens": 8,
                "min_margin": 0.0,
            }
        },
        "methods": [{"name": "dpo", "method": {"name": "dpo", "beta": 0.1}}],
        "training": {
            "learning_rate": 1.0e-3,
            "per_device_batch_size": 2,
            "max_steps": 2,
            "max_length": 32,
            "max_prompt_length": 16,
        },
        "eval": {
            "sentiment": {"samples_per_prompt": 1, "max_new_tokens": 6},
            "suite": str(suite),
            "data_dir": str(benchmarks),
        },
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _machine_path_in(name: str) -> bool:
    """A folder name made from an absolute path as lm-eval names a model's folder: ``__root__.cache__…``."""
    return any(name.startswith(f"__{top}__") for top in os.listdir("/"))


def test_a_run_shows_only_its_own_line_and_notes_and_logs_the_libraries(benchmarks_dir, tmp_path):
    config = _tiny_run(tmp_path, benchmarks_dir)
    # run outside a git clone: lm-eval's `git describe` then says "fatal: not a git repository" on stderr
    done = subprocess.run(
        [sys.executable, "-m", "tokenpo", "run", str(config)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "out"
    shown = _segments(done.stderr)
    line = re.compile(r"run tiny \[\d/6\]( .*)? \|[█▏▎▍▌▋▊▉ ]{16}\| \d\d:\d\d( · eta \d\d:\d\d)?")
    assert [drawn for drawn in shown if drawn.startswith("run tiny [") and not line.fullmatch(drawn)] == []
    notes = [drawn for drawn in shown if not drawn.startswith("run tiny [")]
    # the log's place, and the harness's own note (the tiny model's continuations often tie)
    assert notes[0] == f"library messages and warnings: {output / LOG}"
    assert [note.split(":")[0] for note in notes[1:]] == ["data"], notes
    assert shown[-1].startswith("run tiny [6/6] finished |████████████████|")
    assert "## Leaderboard" in done.stdout and "overrides existing task" not in done.stdout
    log = (output / LOG).read_text()
    assert "fatal: not a git repository" in log
    assert re.search(rf"^{TIMESTAMP} WARNING lm_eval\S*: Task 'gsm8k' from \S+ overrides existing task", log, re.M)
    # the result folders: lm-eval's layout names the model by its folder, not by its path
    folders = sorted(p.relative_to(output) for p in output.rglob("*") if p.is_dir())
    assert [str(p) for p in folders if _machine_path_in(p.name)] == []
    assert {p.name for p in (output / "eval" / "base" / "benchmarks").iterdir() if p.is_dir()} == {
        ".cache",
        "samples",
        "tiny-llama",
    }
    assert {p.name for p in (output / "eval" / "dpo-seed0" / "benchmarks").iterdir() if p.is_dir()} == {
        ".cache",
        "samples",
        "final",
    }

    again = subprocess.run(
        [sys.executable, "-m", "tokenpo", "run", str(config), "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _segments(again.stderr) == [f"library messages and warnings: {output / LOG}"]  # all done earlier
    assert (output / LOG).read_text().startswith(log)  # appended
