"""The red team's programs, one per way a code judge was fooled or a sandbox reached past its run.

Each program here is written to game the verdict or to leave something behind. Wrong answers must
fail with a reason that names what was attempted; nothing may persist after the judge (IPC objects,
message queues, keys, processes, mounts, cgroups), and a second run must see nothing of the first.
The tests use a problem of their own (no benchmark data needed).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tokenpo.evals.judges.passk import problem_job, split_names
from tokenpo.sandbox import PROTECTIONS, CodeJob, IsolationMissing, SandboxLimits, run_many, run_program

LIMITS = SandboxLimits(wall_seconds=8, cpu_seconds=4, memory_bytes=512 << 20, file_bytes=1 << 20, max_processes=8)
PROBLEM = {
    "task_id": "own/0",
    "prompt": 'def add(a, b):\n    """The sum of a and b."""\n',
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
SANDBOX_UID_LOW = 1 << 20


def judge(completion: str, limits: SandboxLimits = LIMITS):
    return run_program(problem_job(PROBLEM, completion), limits)


def _sysvipc_keys(kind: str) -> set[int]:
    path = Path(f"/proc/sysvipc/{kind}")
    if not path.exists():
        return set()
    return {int(line.split()[0]) for line in path.read_text().splitlines()[1:] if line.strip()}


def _sandbox_uid_processes() -> list[str]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) >= SANDBOX_UID_LOW:
            found.append(status.parent.name)
    return found


def _needs(*protections: str) -> None:
    achieved = run_program("pass\n", LIMITS).isolation.split(",")
    absent = [p for p in protections if p not in achieved]
    if absent:
        pytest.skip(f"this kernel or user does not allow: {', '.join(absent)} (achieved: {','.join(achieved)})")


def test_the_honest_solution_passes_with_every_protection():
    outcome = judge("    return a + b\n")
    assert outcome.passed, outcome
    assert outcome.calls == 2  # each candidate(...) in check() is one round trip to the program
    assert outcome.missing == "" or os.geteuid() != 0, f"missing as root: {outcome.missing}"


# ------------------------------------------------------------------ wrong answers that used to pass


def test_exiting_early_after_forging_the_end_mark_fails():
    # The old judge's end mark was in the program's source: read it, print it, exit 0 before the tests.
    completion = (
        "    return None\n"
        "import os, sys\n"
        "sys.stderr.write(open(sys.argv[0]).read())\n"
        "sys.stderr.write(repr(sys._getframe().f_code.co_consts))\n"
        "sys.stderr.flush()\n"
        "os._exit(0)\n"
    )
    outcome = judge(completion)
    assert not outcome.passed
    assert outcome.reason.startswith("exited with status 0 before the end of the program"), outcome.reason


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit"])
def test_exiting_with_status_0_during_the_tests_fails(exit_call):
    outcome = judge(f"    import os, sys\n    {exit_call}\n")
    assert (outcome.passed, outcome.returncode) == (False, 0)
    assert outcome.reason == "exited with status 0 before its tests ended (sys.exit or os._exit)", outcome.reason


def test_tests_that_catch_exceptions_cannot_swallow_a_program_that_is_gone_or_forges():
    # Tests that expect an exception (``except Exception``) must not turn an exit or a forged
    # answer into a pass.
    tests = "for x in range(3):\n    try:\n        add(x, x)\n    except Exception:\n        pass\n"
    gone = run_program(CodeJob("import os\ndef add(a, b):\n    os._exit(0)\n", tests, "", ("add",)), LIMITS)
    assert gone.reason == "exited with status 0 before its tests ended (sys.exit or os._exit)", gone.reason
    forging = "import os, struct\ndef add(a, b):\n    os.write(3, struct.pack('>I', 9) + b'not json!')\n    return 0\n"
    forged = run_program(CodeJob(forging, tests, "", ("add",)), LIMITS)
    assert not forged.passed and forged.reason.startswith("forged: the program's answer is not plain data"), forged


def test_an_object_equal_to_everything_never_reaches_the_comparison():
    completion = (
        "    class Yes:\n"
        "        def __eq__(self, other):\n"
        "            return True\n"
        "        __hash__ = object.__hash__\n"
        "    return Yes()\n"
    )
    outcome = judge(completion)
    assert not outcome.passed
    assert outcome.reason == "failed: AssertionError; the program answered with objects, not data (Yes)", outcome.reason
    # a subclass of int that claims equality crosses as the plain int it is
    rigged_int = "    class Yes(int):\n        def __eq__(self, other):\n            return True\n    return Yes(0)\n"
    assert judge(rigged_int).reason == "failed: AssertionError"


def test_the_tests_and_expected_values_are_not_in_the_programs_reach():
    # Parse the tests out of its own source (where a one-process judge appends them) and answer from them.
    completion = (
        "    import re\n"
        "    text = open(__import__('sys').argv[0]).read()\n"
        "    for args, expected in re.findall(r'candidate\\(([^)]*)\\) == (.+)', text):\n"
        "        if eval('(' + args + ',)') == (a, b):\n"
        "            return eval(expected)\n"
        "    print('tests found in the source:', ('def ' + 'check') in text)\n"
        "    return None\n"
    )
    outcome = judge(completion)
    assert not outcome.passed and outcome.reason == "failed: AssertionError", outcome.reason
    assert "tests found in the source: False" in outcome.stdout


def test_the_problems_file_and_host_processes_are_invisible(tmp_path):
    problems = tmp_path / "problems-with-canonical-solutions.jsonl"
    problems.write_text('{"task_id": "own/0", "canonical_solution": "    return a + b\\n"}\n')
    program = (
        "import os\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "seen = [open(f'/proc/{p}/cmdline', 'rb').read() for p in pids]\n"
        "print(len(pids), any(b'problems' in c or b'pytest' in c for c in seen))\n"
        f"open({str(problems)!r}).read()\n"
    )
    outcome = run_program(program, LIMITS)
    assert not outcome.passed and "FileNotFoundError" in outcome.reason, outcome.reason
    count, leaked = outcome.stdout.split()
    assert int(count) <= 2 and leaked == "False", outcome.stdout  # its PID 1 and itself, nothing of the host


def test_a_program_finds_nothing_of_other_samples_or_its_tests_in_its_memory():
    # Every program of a worker comes from the same warm launcher: its memory must hold no other
    # sample's text (the old launcher's heap did) and no test source. The scanner knows only the
    # secrets' public prefixes and reports every suffix it finds after them in its own memory.
    other_secret, test_secret = secrets.token_hex(8), secrets.token_hex(8)
    first = CodeJob(program=f"SECRET = 'sample-secret-{other_secret}'\n")
    scanner = (
        "import re\n"
        "pattern = re.compile(rb'(sample|test)-secret-([0-9a-f]{16})')\n"
        "control = 'sample-secret-' + 'ab' * 8  # built at run time: the scan must find it\n"
        "found = set()\n"
        "with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
        "    for line in maps:\n"
        "        start, end = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "        if line.split()[1][0] != 'r' or end - start > (256 << 20):\n"
        "            continue\n"
        "        try:\n"
        "            mem.seek(start)\n"
        "            chunk = mem.read(end - start)\n"
        "        except (OSError, ValueError, OverflowError):\n"
        "            continue\n"
        "        found.update(m.group(2).decode() for m in pattern.finditer(chunk))\n"
        "print('scanned', ' '.join(sorted(found)))\n"
        "def answer():\n"
        "    return 1\n"
    )
    second = CodeJob(program=scanner, tests=f"assert answer() == 1, 'test-secret-{test_secret}'\n", remote=("answer",))
    outcomes = run_many([first, second], LIMITS, workers=1)
    assert outcomes[1].passed, outcomes[1]
    assert outcomes[1].stdout.startswith("scanned"), outcomes[1].stdout  # the scan ran to its end
    found = outcomes[1].stdout.split()[1:]
    assert "ab" * 8 in found, found  # the scanner does find what is in its memory
    assert other_secret not in found and test_secret not in found, found


def test_the_program_cannot_rewrite_its_own_outcome():
    program = (
        "import os\n"
        "os.lseek(2, 0, os.SEEK_SET)\n"
        "os.write(2, b'sandbox-isolation: everything\\n')\n"
        "for what, attempt in (('read', lambda: os.read(2, 10)), ('reopen', lambda: open('/proc/self/fd/2', 'r+'))):\n"
        "    try:\n"
        "        attempt()\n"
        "        print(what, 'allowed')\n"
        "    except OSError as error:\n"
        "        print(what, 'refused', error.errno)\n"
        "raise SystemExit(3)\n"
    )
    honest = run_program("pass\n", LIMITS)
    outcome = run_program(program, LIMITS)
    assert not outcome.passed and outcome.isolation == honest.isolation
    assert "read allowed" not in outcome.stdout and "reopen allowed" not in outcome.stdout, outcome.stdout


# ------------------------------------------------------------------ nothing outlives a sandbox or reaches past it


def test_ipc_objects_and_message_queues_die_with_the_sandbox():
    _needs("ipc")
    key = 0x70C0 + secrets.randbelow(1 << 12)
    queue_name = f"/tokenpo-left-{secrets.token_hex(4)}".encode()
    plant = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"assert libc.shmget({key}, 64 << 20, 0o1000 | 0o666) >= 0, 'shmget'\n"
        f"assert libc.msgget({key}, 0o1000 | 0o666) >= 0, 'msgget'\n"
        f"assert libc.mq_open({queue_name!r}, os.O_CREAT | os.O_RDWR, 0o666, None) >= 0, 'mq_open'\n"
    )
    look = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.shmget({key}, 0, 0), libc.msgget({key}, 0), libc.mq_open({queue_name!r}, os.O_RDWR))\n"
    )
    planted = run_program(plant, LIMITS)
    assert planted.passed, planted  # allowed inside its own IPC namespace...
    later = run_program(look, LIMITS)
    assert later.passed and later.stdout.split() == ["-1", "-1", "-1"], later  # ...and gone with it
    assert key not in _sysvipc_keys("shm") | _sysvipc_keys("msg")


def test_keyrings_user_namespaces_mounts_and_non_ip_sockets_are_refused():
    _needs("seccomp")
    program = (
        "import ctypes, os, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def errno_of(result):\n"
        "    return ctypes.get_errno() if result == -1 else 'allowed'\n"
        "print('add_key', errno_of(libc.syscall(248, b'user', b'planted', b'v', 1, -4)))\n"
        "print('keyctl', errno_of(libc.syscall(250, 0, -4, 0)))\n"
        "print('unshare', errno_of(libc.unshare(0x10000000)))\n"
        "print('mount', errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))\n"
        "for family in ('AF_VSOCK', 'AF_NETLINK', 'AF_PACKET'):\n"
        "    try:\n"
        "        kind = socket.SOCK_DGRAM if family == 'AF_NETLINK' else socket.SOCK_STREAM\n"
        "        socket.socket(getattr(socket, family), kind)\n"
        "        print(family, 'allowed')\n"
        "    except OSError as error:\n"
        "        print(family, error.errno)\n"
        "print('fuse', os.path.exists('/dev/fuse'), sorted(os.listdir('/dev')))\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print('NoNewPrivs', status['NoNewPrivs'].strip(), 'Seccomp', status['Seccomp'].strip())\n"
    )
    outcome = run_program(program, LIMITS)
    assert outcome.passed, outcome
    lines = dict(line.split(" ", 1) for line in outcome.stdout.strip().splitlines())
    for call in ("add_key", "keyctl", "unshare", "mount", "AF_VSOCK", "AF_NETLINK", "AF_PACKET"):
        assert lines[call] == "1", (call, lines[call])  # EPERM
    assert lines["fuse"] == "False ['null', 'urandom', 'zero']"
    assert lines["NoNewPrivs"] == "1 Seccomp 2"


def test_the_filesystem_holds_only_the_runtime_and_the_programs_folder():
    _needs("root")
    judge_file = Path(__file__).resolve()
    host_files = ["/etc/passwd", "/usr/bin/env", "/usr/share/doc", "/usr/include", str(judge_file), sys.prefix]
    proc_files = ["/proc/cmdline", "/proc/meminfo", "/proc/loadavg", "/proc/stat", "/proc/sys", "/proc/version"]
    program = (
        "import os, sys, sysconfig\n"
        "print(sorted(os.listdir('/')))\n"
        f"print([p for p in {host_files + proc_files!r} if os.path.exists(p)])\n"
        "site = sysconfig.get_paths()['purelib']\n"
        "print(os.listdir(site) if os.path.isdir(site) else [], [p for p in sys.path if 'site' in p])\n"
        "print(sorted(os.listdir('/proc')))\n"
    )
    outcome = run_program(program, LIMITS)
    assert outcome.passed, outcome
    top, seen, site, proc = outcome.stdout.strip().splitlines()
    # The interpreter's own prefix may sit under /root or /opt (pyenv, a venv's base): allowed, but
    # nothing else of the host.
    assert set(eval(top)) <= {"dev", "lib", "lib32", "lib64", "proc", "sandbox", "tmp", "usr", "work", "root", "opt"}
    assert seen == "[]", seen  # no configuration, no other programs, no judge files, nothing of the host in /proc
    assert site == "[] []", site  # third-party packages neither importable nor readable
    assert set(eval(proc)) <= {"self", "thread-self", "1", "2", "3"}, proc


def test_the_memory_limit_holds_for_all_processes_together():
    _needs("cgroup")
    # Four processes of 200 MiB each: under the 512 MiB per-process address-space limit, over the
    # sandbox's 512 MiB total.
    program = (
        "import os, time\n"
        "children = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = b'x' * (200 << 20)\n"
        "        time.sleep(1.5)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "statuses = [os.waitpid(pid, 0)[1] for pid in children]\n"
        "assert statuses == [0, 0, 0, 0], statuses\n"
    )
    outcome = run_program(program, LIMITS)
    assert not outcome.passed, outcome
    assert "memory limit" in outcome.reason or "SIGKILL" in outcome.reason or "AssertionError" in outcome.reason


def test_uids_are_never_reused_and_nothing_is_left_behind():
    _needs("uid", "pid")
    mounts_before = Path("/proc/self/mountinfo").read_text()
    program = "import os, time\nprint(os.getuid())\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
    outcomes = [*run_many([program] * 3, LIMITS, workers=2), run_program(program, LIMITS)]
    uids = [int(o.stdout.split()[0]) for o in outcomes]
    assert len(set(uids)) == 4 and min(uids) >= SANDBOX_UID_LOW, uids
    assert _sandbox_uid_processes() == []
    assert Path("/proc/self/mountinfo").read_text() == mounts_before
    cgroups = subprocess.run(
        ["find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", "tokenpo-sandbox-*"], capture_output=True, text=True
    )
    assert cgroups.stdout == ""
    key_users = Path("/proc/key-users")
    if key_users.exists():
        assert all(
            int(line.split(":")[0]) < SANDBOX_UID_LOW for line in key_users.read_text().splitlines() if line.strip()
        )


# ------------------------------------------------------------------ which names the tests call in the program


def test_names_the_tests_call_in_the_program():
    prompt = (
        'import math\ndef poly(xs, x):\n    return sum(xs)\ndef find_zero(xs):\n    """Declared, not implemented."""\n'
    )
    tests = "def check(candidate):\n    assert math.fabs(poly([1], candidate([1]))) < 1\ncheck(find_zero)\n"
    # poly is the prompt's (trusted), find_zero the program's; math is imported by the prompt
    assert split_names(tests, prompt) == (("find_zero",), ())
    # MBPP: a builtin the program redefines is its function only where the tests have no other...
    assert split_names("assert sum(10, 15) == 6\n", "", "def sum(a, b):\n    return 6\n") == (("sum",), ())
    # ...never where the tests apply it to a result or compute an expected value with it
    rigged = "def len(x):\n    return 3\ndef f():\n    return []\n"
    assert split_names("assert len(f()) == 3\n", "", rigged) == (("f",), ())
    rigged_int = "def int(s):\n    return 7\ndef inc(x):\n    return 7\n"
    assert split_names("assert inc(1) == int('2')\n", "", rigged_int) == (("inc",), ())
    assert split_names("assert math.isclose(area(2), 4.0)\n") == (("area",), ("math",))
    # a module is not callable: a called stdlib-module name is the program's function
    assert split_names("assert secrets(3) == 4\n", "", "def secrets(n):\n    return n + 1\n") == (("secrets",), ())


def test_require_isolation_refuses_where_a_protection_is_missing(tmp_path):
    assert set(PROTECTIONS) >= {"net", "pid", "seccomp", "cgroup", "uid", "root"}
    with pytest.raises(ValueError, match="unknown protection 'bogus'"):
        run_many(["pass\n"], LIMITS, require=["bogus"])
    achieved = run_program("pass\n", LIMITS).isolation.split(",")
    assert run_many(["pass\n"], LIMITS, require=achieved)[0].passed
    # A protection the kernel refuses looks like one left out: the outcome names it, require refuses.
    present = next(p for p in ("seccomp", "net", "pid") if p in achieved)
    left_out = run_many(["pass\n"], LIMITS, without=[present])[0]
    assert left_out.passed and present in left_out.missing.split(",") and present not in left_out.isolation.split(",")
    with pytest.raises(IsolationMissing, match=f"not available here: {present}"):
        run_many(["pass\n"], LIMITS, require=[present], without=[present])


def test_cli_require_isolation(tmp_path):
    import json

    from tokenpo.harness.cli import main

    problems, samples = tmp_path / "problems.jsonl", tmp_path / "samples.jsonl"
    problems.write_text(json.dumps(PROBLEM) + "\n")
    samples.write_text(json.dumps({"task_id": "own/0", "completion": "    return a + b\n"}) + "\n")
    command = ["judge", "passk", "--problems", str(problems), "--samples", str(samples)]
    assert main([*command, "--out", str(tmp_path / "bad"), "--require-isolation", "net,bogus"]) == 2
    achieved = run_program("pass\n", LIMITS).isolation
    assert main([*command, "--out", str(tmp_path / "out"), "--require-isolation", achieved]) == 0
    config = json.loads((tmp_path / "out" / "results.json").read_text())["configs"]["passk"]
    assert config["sandbox_isolation"]["achieved"] == sorted(achieved.split(","))


def test_the_sandbox_page_documents_every_protection():
    page = (Path(__file__).resolve().parents[1] / "docs" / "sandbox.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in page.splitlines() if line.startswith("| `")}
    assert rows == set(PROTECTIONS)


UNPRIVILEGED_DRIVER = """
import os, sys, types
# only the judge, not the package (whose __init__ files import torch and lm-eval)
for name in ("tokenpo", "tokenpo.evals", "tokenpo.evals.judges"):
    path = name.replace(".", "/")
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(sys.argv[1], path)]
    sys.modules[name] = module
from tokenpo.sandbox import CodeJob, IsolationMissing, SandboxLimits, run_many, run_program
limits = SandboxLimits(wall_seconds=8, cpu_seconds=4, memory_bytes=512 << 20, file_bytes=1 << 20, max_processes=8)
outcome = run_program(CodeJob("def f(x):\\n    return x + 1\\n", "assert f(1) == 2\\n", "", ("f",)), limits)
print(outcome.passed, outcome.missing)
# the sandbox's PID 1 holds the launcher's memory and runs under the program's own uid here: not readable
peek = "try:\\n    open('/proc/1/mem', 'rb').read(1)\\n    print('read')\\nexcept OSError as e:\\n    print(e.errno)\\n"
print(run_program(peek, limits).stdout.strip())
try:
    run_many(["pass\\n"], limits, require=["uid"])
except IsolationMissing as error:
    print(error)
"""


def test_an_unprivileged_user_gets_every_protection_but_a_uid_and_a_cgroup():
    # Without root the sandbox builds its namespaces inside a user namespace: the tests still run
    # outside the program, the root is still minimal; only a uid of its own and a cgroup are missing,
    # the outcome says so, and require refuses.
    import shutil

    from tokenpo.sandbox import sandbox_python

    python, setpriv = sandbox_python(), shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or python is None:
        pytest.skip("needs root, util-linux's setpriv and a python any user can run, to become another user")
    repo = Path(__file__).resolve().parents[1]
    for folder in [repo, *repo.parents]:
        if not os.stat(folder).st_mode & 0o001:
            pytest.skip(f"{folder} is not searchable by other users here")
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", UNPRIVILEGED_DRIVER, str(repo)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines[0] == "True cgroup,uid", (done.stdout, done.stderr[-2000:])
    assert lines[1] in ("13", "1"), lines  # EACCES or EPERM: PID 1 is not dumpable
    assert lines[2].startswith("required sandbox protection(s) not available here: uid"), lines


def test_a_killed_judges_cgroups_are_removed_by_the_next_one():
    # A judge killed with SIGTERM or SIGKILL cannot remove its workers' cgroups; the next launcher removes
    # every empty one whose launcher is gone.
    _needs("cgroup")
    gone = subprocess.Popen(["true"])
    gone.wait()
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        parents = [Path("/sys/fs/cgroup" + own[""])]
    else:
        parents = [Path(f"/sys/fs/cgroup/{c}" + own[c].rstrip("/")) for c in ("memory", "pids") if c in own]
    orphans = [parent / f"tokenpo-sandbox-{gone.pid}" for parent in parents]
    for orphan in orphans:
        orphan.mkdir()
    assert run_program("print(1)\n", LIMITS).passed
    assert [orphan for orphan in orphans if orphan.exists()] == []
