"""Every command the README and docs/quickstart.md show works as written after the quickstart.

The quickstart is run as documented (`harness run configs/quickstart.yaml`) in a folder laid out like
a clone (configs/, docs/, tests/ and ../shared/benchmarks beside it), on the tiny model so that it
takes a minute: every `harness run configs/quickstart.yaml ...` command gets the same tiny-model
overrides appended, so it meets the finished stages the quickstart left (as it does after a real
quickstart). Then each command shown in a ```bash block, or as inline code that starts with
`harness` or `python` and has arguments, runs in that folder with its placeholders (DIR, RUN,
ORG/NAME) filled in; so do the "next:" commands the quickstart printed, exactly as printed. Set-up
commands (pip, tox) are CI's own steps and are not repeated here. A command that needs the hub
must refuse in one line (no hub here).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BENCHMARKS, REPO
from report_demo import CHROMIUM

pytestmark = pytest.mark.slow

DOCUMENTS = ("README.md", "docs/quickstart.md")
# The quickstart on the tiny model: fast, and (min_margin 0) pairs from its random continuations too.
TINY = ["model=tiny-llama", "data.sentiment.min_margin=0.0", "training.learning_rate=1.0e-3"]
PLACEHOLDERS = {
    "DIR": "../shared/benchmarks",
    "RUN": "runs/quickstart/train/dpo-seed0",
    "ORG/NAME": "tokenpo-docs/quickstart-dpo",
    "CONFIG": "configs/quickstart.yaml",
}
NEEDS_HUB = ("harness push",)  # without --dry-run: uploads
SET_UP = ("python3 -m pip", "pip ", "python3 -m tox", "tox ")
NAMES = {"python -m tokenpo"}  # the command's other name, shown beside `harness`, not a command line


def documented_commands(text: str) -> list[str]:
    """Lines of ```bash blocks (comments dropped) and inline `harness …`/`python …` code with arguments."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(command)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        words = span.split()
        if words and words[0] in ("harness", "python", "python3") and len(words) >= 3 and span not in NAMES:
            commands.append(span)
    return list(dict.fromkeys(commands))


def filled(command: str) -> str:
    words = []
    for word in shlex.split(command):
        for placeholder, value in PLACEHOLDERS.items():
            if (
                word == placeholder
                or word.startswith(placeholder + "/")
                or word.endswith("=" + placeholder)
                or ("=" + placeholder + "/") in word
            ):
                word = word.replace(placeholder, value, 1)
                break
        words.append(word)
    if command.startswith("harness run configs/quickstart.yaml"):
        words[3:3] = TINY  # right after the configuration: flags such as --status may follow
    return shlex.join(words)


def run(command: str, folder: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def after_quickstart(tmp_path_factory):
    """A clone-like folder where the quickstart has finished, the environment to run commands in, and
    the quickstart's printed output."""
    root = tmp_path_factory.mktemp("newcomer")
    clone = root / "tokenpo-harness"
    clone.mkdir()
    for name in ("configs", "tests"):
        (clone / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "docs", clone / "docs")  # a command may rewrite a docs file (the screenshot)
    if BENCHMARKS.is_dir():
        (root / "shared").mkdir()
        (root / "shared" / "benchmarks").symlink_to(BENCHMARKS)
    cache = root / "cache"
    pulled = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "tokenpo-harness")) / "models"
    (cache / "models").mkdir(parents=True)
    if (pulled / "smollm2-135m-instruct").is_dir():  # a newcomer after the real quickstart has it pulled
        (cache / "models" / "smollm2-135m-instruct").symlink_to(pulled / "smollm2-135m-instruct")
    # The environment's own harness (tox puts its bin folder on the PATH; a bare interpreter run does not).
    harness = Path(sys.executable).parent / "harness"
    assert harness.is_file(), f"no harness command beside {sys.executable}: install the package there"
    env = {
        **os.environ,
        "HARNESS_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PATH": f"{harness.parent}{os.pathsep}{os.environ['PATH']}",
    }
    quickstart = run(filled("harness run configs/quickstart.yaml") + " --no-progress", clone, env)
    assert quickstart.returncode == 0, quickstart.stderr[-3000:]
    return clone, env, quickstart.stdout


def printed_next_commands(stdout: str) -> list[str]:
    lines = stdout[stdout.index("\nnext:") :].splitlines()[2:]
    return [line.strip() for line in lines if line.startswith("  ")]


def test_documents_show_the_commands_this_test_runs():
    """The extraction itself: the pipeline's commands and inline ones are found, set-up ones recognised."""
    commands = [c for doc in DOCUMENTS for c in documented_commands((REPO / doc).read_text())]
    assert "harness run configs/quickstart.yaml" in commands
    assert "harness models list" in commands
    assert any(c.startswith("harness leaderboard runs/quickstart") for c in commands)
    assert any(c.startswith(SET_UP) for c in commands)
    assert documented_commands("a `harness run` b `python -m x y` c") == ["python -m x y"]
    assert filled("harness push RUN --repo ORG/NAME") == (
        "harness push runs/quickstart/train/dpo-seed0 --repo tokenpo-docs/quickstart-dpo"
    )
    assert filled("harness train x data.path=DIR/a.gz").endswith("data.path=../shared/benchmarks/a.gz")
    assert filled("harness run configs/quickstart.yaml --status") == shlex.join(
        ["harness", "run", "configs/quickstart.yaml", *TINY, "--status"]
    )


def test_quickstart_prints_next_commands_that_work(after_quickstart):
    clone, env, stdout = after_quickstart
    commands = printed_next_commands(stdout)
    assert any(c.startswith("harness leaderboard runs/quickstart") for c in commands), stdout[-2000:]
    assert any(" --status" in c for c in commands)
    for command in commands:
        done = run(command, clone, env)
        if command.startswith(NEEDS_HUB) and "--dry-run" not in command:
            continue
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        if "--status" in command:
            assert "not started" not in done.stdout and done.stdout.count(" done ") >= 5, done.stdout
        if command.startswith("harness leaderboard"):
            assert done.stdout == (clone / "runs" / "quickstart" / "leaderboard.md").read_text()


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_documented_command_works_as_written(after_quickstart, document):
    clone, env, _ = after_quickstart
    failures = []
    for command in documented_commands((REPO / document).read_text()):
        if command.startswith(SET_UP):
            continue  # CI's own steps (.ci/run)
        if "report_demo.py --screenshot" in command and not CHROMIUM.exists():
            continue  # its own test skips with the reason (tests/test_leaderboards_report.py)
        if "DIR" in command.split() and not BENCHMARKS.is_dir():
            continue
        done = run(filled(command), clone, env)
        if command.startswith(NEEDS_HUB) and "--dry-run" not in command:
            refused = done.stderr.strip().splitlines()
            if done.returncode != 2 or len(refused) != 1 or not refused[0].startswith("error: "):
                failures.append(f"{command}: expected a one-line refusal without the hub, got {done.stderr[-500:]}")
        elif done.returncode != 0:
            failures.append(f"{command} (run as: {filled(command)}): exit {done.returncode}\n{done.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)


def test_a_python_without_the_packages_says_what_to_run(tmp_path):
    """`python -m tokenpo` from a clone with a Python that lacks the dependencies: one line, not a traceback."""
    code = (
        "import sys; sys.modules['pandas'] = None; sys.argv = ['tokenpo', '--help']; import runpy; "
        "runpy.run_module('tokenpo', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "pandas is not installed" in done.stderr and ".tox/quickstart/bin/harness" in done.stderr
