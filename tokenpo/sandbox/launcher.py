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

Why one module of ~580 lines: the launcher runs by file path in an isolated interpreter, before any
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
import traceback
import types

if __package__:  # imported by the harness (for PROTECTIONS)
    from . import seccomp, wire
else:  # the launcher: -I leaves the script's folder off the path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
)
RPC_FD, START_FD = 3, 4
EXIT_GRACE_SECONDS = 1.0  # after the verdict: time for the program to end by itself before it is killed

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

    def join(self):
        for path in self.dirs:
            _write(f"{path}/cgroup.procs", "0")

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


def runtime_paths():
    """What the interpreter needs: its prefixes, /usr and the library folders (symlinks kept as symlinks)."""
    paths = {"/usr", sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in ("/lib", "/lib64", "/lib32", "/bin", "/sbin") if os.path.lexists(p))
    kept = []
    for path in sorted(paths, key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def minimal_root(uid):
    """Build the sandbox's root on a capped tmpfs and pivot into it (in its own mount and PID namespace)."""
    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
    new = "/tmp"  # any existing folder: the tmpfs mounted on it becomes the root
    _mount(b"tmpfs", new, b"tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS.encode())
    for path in runtime_paths():
        target = new + path
        if os.path.islink(path):
            os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target, exist_ok=True)
        _bind(path, target)
    if os.path.isfile("/etc/ld.so.cache"):
        os.makedirs(new + "/etc", exist_ok=True)
        open(new + "/etc/ld.so.cache", "w").close()
        _bind("/etc/ld.so.cache", new + "/etc/ld.so.cache")
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
    # allows a new proc mount only where a fully visible one exists already.
    _mount(b"proc", new + "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(new)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    if libc.umount2(b".", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "detaching the host's root")
    os.chdir("/")


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
    cap(resource.RLIMIT_NPROC, int(limits["max_processes"]))
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)


# ------------------------------------------------------------------ the launcher


def _receive_header(sock):
    """The next job's header and its three files, or (None, fds) when the harness closed the socket."""
    size, fds, _, _ = socket.recv_fds(sock, 4, 3)
    if not size:
        return None, fds
    data = wire.read_exactly(sock, int.from_bytes(size, "big"))
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


def serve(sock):
    """The launcher's loop: one job process per job, and one report line per job."""
    cgroup = WorkerCgroup(enabled=os.geteuid() == 0)
    try:
        while True:
            header, fds = _receive_header(sock)
            if header is None:
                return
            limits = header["limits"]
            has_cgroup = cgroup.limit(int(limits["memory_bytes"]), int(limits["max_processes"]) + 3)
            report_read, report_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(report_read)
                try:
                    job(sock, header, fds, report_write, cgroup if has_cgroup else None)
                finally:
                    os._exit(0)
            os.close(report_write)
            for fd in fds:
                os.close(fd)
            status, timed_out = _wait(pid, float(limits["wall_seconds"]))
            cgroup.kill_all()
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
        cgroup.remove()


# ------------------------------------------------------------------ the job process (trusted tester)


def job(sock, header, fds, report_write, cgroup):
    os.setsid()  # the launcher kills this group at the wall time: tester, sandbox and its PID 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    out, err, body_fd = fds
    tester_end, program_end = socket.socketpair()
    start_read, start_write = os.pipe()
    sandbox_pid = os.fork()
    if sandbox_pid == 0:
        try:
            tester_end.close()
            sandbox(header, out, err, program_end, start_read, cgroup)
        finally:
            os._exit(126)
    for fd in (out, err, start_read):
        os.close(fd)
    program_end.close()
    sock.close()
    with os.fdopen(body_fd, "rb") as handle:
        body = json.loads(handle.read())
    report = judge(header, body, tester_end, start_write, sandbox_pid, cgroup, report_write)
    os.write(report_write, json.dumps(report).encode() + b"\n")


def _sandbox_exit(sandbox_pid):
    with contextlib.suppress(ChildProcessError):
        return os.waitpid(sandbox_pid, 0)[1]
    return None


def judge(header, body, channel, start_write, sandbox_pid, cgroup, report_write):
    """Start the program in the sandbox, run the tests against it, and say how it went (plain data).

    The isolation goes to the launcher as soon as it is known (a line of its own), so an outcome
    of a program that runs out of wall time still says what it ran under.
    """
    report = {"isolation": [], "hardening": [], "calls": 0}
    events_before = cgroup.memory_events() if cgroup else 0
    remote = wire.Remote(channel)
    stage = "start"
    try:
        report["isolation"] = list(wire.receive(channel)["isolation"])
        with os.fdopen(start_write, "wb") as pipe:
            pipe.write(body["program"].encode("utf-8", "surrogatepass"))
        report["hardening"] = list(wire.receive(channel)["hardening"])
        os.write(report_write, json.dumps({k: report[k] for k in ("isolation", "hardening")}).encode() + b"\n")
        stage = "load"
        loaded = wire.receive(channel)
        if "load_error" in loaded:
            kind, text = (str(part)[:2000] for part in loaded["load_error"][:2])
            report.update(outcome="raised", kind=kind, message=text)
        elif body["tests"] or body["remote"]:
            stage = "tests"
            resource.setrlimit(resource.RLIMIT_AS, (max(int(header["limits"]["memory_bytes"]), 1 << 30),) * 2)
            wire.run_tests(remote, body["prelude"], body["tests"], body["remote"])
            report["outcome"] = "passed"
        else:
            report["outcome"] = "passed"
    except wire.ProgramGone:
        report["outcome"] = "gone"
    except AssertionError as error:
        report.update(outcome="failed", kind="AssertionError", message=str(error)[:2000])
    except wire.WireError as error:
        report.update(outcome="forged", message=str(error)[:2000])
    except BaseException as error:  # the program's exception re-raised in the tests, or the tests' own
        report.update(outcome="raised", kind=type(error).__name__, message=str(error)[:2000])
    report["calls"], report["stage"], report["objects"] = remote.calls, stage, sorted(set(remote.objects))[:5]
    channel.close()  # the program's answering loop ends: it exits by itself unless it is busy elsewhere
    if report.get("outcome") != "gone":
        pidfd = os.pidfd_open(sandbox_pid)
        if not select.select([pidfd], [], [], EXIT_GRACE_SECONDS)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sandbox_pid, signal.SIGKILL)
        os.close(pidfd)
    report["status"] = _sandbox_exit(sandbox_pid)
    report["memory_limit_hit"] = bool(cgroup and cgroup.memory_events() > events_before)
    return report


# ------------------------------------------------------------------ the sandbox


def sandbox(header, out, err, channel, start_read, cgroup):
    """Isolate, fork the namespace's PID 1, and pass the program's status on (128 + signal when killed)."""
    root = os.geteuid() == 0
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The program writes its output through descriptors opened write-only: it can append, not read back.
    stdout = os.open(f"/proc/self/fd/{out}", os.O_WRONLY | os.O_APPEND)
    stderr = os.open(f"/proc/self/fd/{err}", os.O_WRONLY | os.O_APPEND)
    devnull = os.open(os.devnull, os.O_RDONLY)
    keep = {0: devnull, 1: stdout, 2: stderr, RPC_FD: channel.fileno(), START_FD: start_read}
    staged = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for target, fd in keep.items()}  # above every target
    for target, fd in staged.items():
        os.dup2(fd, target)
    os.closerange(START_FD + 1, 1 << 20)
    achieved, without = [], set(header.get("without", ()))
    if cgroup is not None and "cgroup" not in without:
        with contextlib.suppress(OSError):
            cgroup.join()
            achieved.append("cgroup")
    achieved += unshare_namespaces(root, without)
    child = os.fork()
    if child == 0:
        namespace_init(header, achieved, root)
    _, status = os.waitpid(child, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def namespace_init(header, achieved, root):
    """PID 1 of the sandbox's namespace: build the root, report the isolation, run the program as a child."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    uid = header["uid"] if root else None
    channel = socket.socket(fileno=RPC_FD)
    try:
        if "mount" in achieved and "pid" in achieved and "root" not in header.get("without", ()):
            minimal_root(uid)
            achieved += ["root", "proc", "dev"]
    except OSError as error:
        sys.stderr.write(f"sandbox: no minimal root ({error})\n")
    wire.send(channel, {"isolation": achieved})
    with os.fdopen(START_FD, "rb") as pipe:
        program = pipe.read().decode("utf-8", "surrogatepass")
    workdir = "/work" if "root" in achieved else _fallback_workdir()
    path = os.path.join(workdir, "program.py")
    _write(path, program)
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(path, uid, uid)
    child = os.fork()
    if child == 0:
        run_program(channel, program, path, workdir, header, uid)
    channel.close()
    _, status = os.waitpid(child, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _fallback_workdir():
    path = os.path.join("/tmp", f"sandbox-{os.getpid()}-{os.urandom(4).hex()}")
    os.mkdir(path, 0o700)
    return path


def run_program(channel, program, path, workdir, header, uid):
    """The program process: drop everything, run the program as ``__main__``, then answer the tests."""
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
    wire.send(channel, {"hardening": hardening})
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv[:] = [path]
    try:
        exec(compile(program, path, "exec"), module.__dict__)
    except SystemExit as exit_:
        _exit_as_python_would(exit_.code)
    except BaseException as error:
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)  # from the program's frame on
        sys.stdout.flush()
        sys.stderr.flush()
        with contextlib.suppress(Exception):
            wire.send(channel, {"load_error": [type(error).__name__, wire.describe_error(error)]})
        os._exit(1)
    try:
        wire.send(channel, {"ready": True})
        wire.serve_program(channel, module.__dict__)
    except SystemExit as exit_:  # the program ended itself during a test: the tests did not pass
        _exit_as_python_would(exit_.code)
    _exit_as_python_would(0)


def _exit_as_python_would(code):
    """End the process as ``python program.py`` ends on ``SystemExit(code)``."""
    if code is None or isinstance(code, int):
        status = code or 0
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status & 0xFF)


def main():
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
