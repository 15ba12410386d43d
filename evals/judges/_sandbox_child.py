"""The warm launcher: started once per worker, it forks one sandbox per program and runs the program there.

Runs as ``python -I <this file> FD`` (the interpreter the program gets) in a fresh session; FD is a
socket to the harness. Each job arrives as an 8-byte length with the program's stdout and stderr
files attached (SCM_RIGHTS), then ``{"program": str, "limits": {...}, "uid": int | None}`` as JSON;
the launcher answers one line ``{"status": wait status, "timed_out": bool}``. Standard library
only, nothing imported from the harness: this is the last trusted code before the untrusted program.
Starting it per worker instead of per program, and running the program in the sandboxed fork instead
of exec'ing a second interpreter, saves two interpreter starts per program.

Per job:

1. Fork. The fork starts its own session, takes the job's files as stdout/stderr (stdin is
   /dev/null) and closes every other descriptor (the launcher's socket included).
2. New namespaces where the kernel lets us: network (no interfaces but a downed loopback, so every
   connection fails), mount (private tmpfs on /tmp, /var/tmp and /dev/shm, so nothing the program
   writes there survives it; every other mount remounted read-only), PID (the program runs under
   PID 1 of its own namespace: when it dies, every process it started dies with it). As non-root a
   user namespace is created first.
3. Fork again. The child gets the resource limits (CPU seconds, address space, file size, process
   count, open files, no core dumps), a fresh working folder, and — when we are root — an
   unprivileged uid of its own (root ignores RLIMIT_NPROC, and the uid cannot write outside its
   folder) and a scrubbed environment; then it runs the program as this interpreter's main script.
   In a PID namespace the child is PID 1 and runs the program as its own child, so the program gets
   ordinary signal semantics.
4. The sandbox exits with the program's status (128 + signal when killed). The launcher waits up to
   the wall time, kills the sandbox's process group (before reaping it, so the group id cannot have
   been reused) and reports.

The first line on the program's stderr is ``sandbox-isolation: …`` naming what was achieved.
"""

import contextlib
import ctypes
import json
import os
import resource
import runpy
import select
import shutil
import signal
import socket
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
MS_NOSUID, MS_NODEV = 0x2, 0x4
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags):
    return libc.unshare(flags) == 0


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


MS_BIND, MS_REMOUNT, MS_RDONLY = 0x1000, 0x20, 0x1
KEEP_WRITABLE = ("/proc", "/sys", "/dev")


def _read_only_elsewhere():
    """Remount every other mount read-only in our namespace: the program can write only its tmpfs dirs."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    ok = True
    for point in sorted(set(points), key=len):
        if point in PRIVATE_DIRS or point.startswith(tuple(d + "/" for d in PRIVATE_DIRS)):
            continue
        if point.startswith(KEEP_WRITABLE):
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        if libc.mount(None, point.encode(), None, flags, None) != 0:
            # a bind-remount must keep the mount's other lock flags: retry with nosuid/nodev/noexec
            ok = (
                any(
                    libc.mount(None, point.encode(), None, flags | extra, None) == 0
                    for extra in (MS_NOSUID, MS_NOSUID | MS_NODEV, MS_NOSUID | MS_NODEV | 0x8)
                )
                and ok
            )
    return ok


def isolate(root):
    """Enter new namespaces; returns the names of those achieved."""
    achieved = []
    if not root:
        uid, gid = os.getuid(), os.getgid()
        if not _unshare(CLONE_NEWUSER):
            return achieved
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
        achieved.append("user")
    if _unshare(CLONE_NEWNET):
        achieved.append("net")
    if _unshare(CLONE_NEWNS):
        libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
        mounted = all(
            libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777") == 0
            for d in PRIVATE_DIRS
            if os.path.isdir(d)
        )
        if mounted and _read_only_elsewhere():
            achieved.append("mount")
    if _unshare(CLONE_NEWPID):
        achieved.append("pid")
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


def _receive(sock):
    """The next job and its two output files (stdout, stderr), or None when the harness closed the socket."""
    header, fds, _, _ = socket.recv_fds(sock, 8, 2)
    if not header:
        return None, fds
    size, data = int.from_bytes(header, "big"), b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None, fds
        data += chunk
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
    """The warm launcher's loop: fork one sandbox per job and report how it ended.

    Returns only in a sandboxed program process (with the program's path, for the caller to run); the
    launcher itself returns None when the harness closes the socket.
    """
    while True:
        job, fds = _receive(sock)
        if job is None:
            return None
        pid = os.fork()
        if pid == 0:
            return sandbox(job, fds, sock)
        for fd in fds:
            os.close(fd)
        status, timed_out = _wait(pid, float(job["limits"]["wall_seconds"]))
        sock.sendall(json.dumps({"status": status, "timed_out": timed_out}).encode() + b"\n")


def sandbox(job, fds, sock):
    """One program's sandbox, in a fresh fork of the launcher: isolate, limit, drop privileges.

    Returns the program's path in the process that must run it; every other process of the sandbox
    exits here with the program's status (128 + signal when killed).
    """
    os.setsid()  # its own session and process group: the launcher kills the group, not itself
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sock.close()
    devnull = os.open(os.devnull, os.O_RDONLY)
    for target, fd in ((0, devnull), (1, fds[0]), (2, fds[1])):
        os.dup2(fd, target)
    os.closerange(3, 1 << 20)  # nothing of the launcher's (its socket, the files) stays open
    try:
        return _sandbox(job)
    except BaseException as error:
        sys.stderr.write(f"sandbox-launcher: {type(error).__name__}: {error}\n")
        sys.stderr.flush()
        os._exit(126)


def _sandbox(job):
    root = os.geteuid() == 0
    achieved = isolate(root)
    workdir = os.path.join("/tmp", f"sandbox-{os.getpid()}")  # private tmpfs when "mount" was achieved
    os.mkdir(workdir, 0o700)
    program = os.path.join(workdir, "program.py")
    _write(program, job["program"])
    uid = job["uid"] if root else None
    if uid is not None:
        achieved.append("uid")
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(program, uid, uid)
    sys.stderr.write(f"sandbox-isolation: {','.join(achieved) or 'none'}\n")
    sys.stderr.flush()

    child = os.fork()
    if child == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if child == 0 and "pid" in achieved:
        # We are PID 1 of the new namespace, which ignores signals it has no handler for (SIGXCPU
        # would not stop a busy loop): run the program as our child and pass its status on.
        grandchild = os.fork()
        if grandchild != 0:
            _, status = os.waitpid(grandchild, 0)
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    if child == 0:
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc.prctl(PR_SET_DUMPABLE, 1)  # as after an exec: its /proc entries are its own
        limit(job["limits"])
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
        return program
    _, status = os.waitpid(child, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) > 128 and "pid" in achieved:
        os._exit(os.WEXITSTATUS(status))  # the namespace's PID 1 passed on "killed by signal N"
    if "mount" not in achieved:
        shutil.rmtree(workdir, ignore_errors=True)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def main():
    program = serve(socket.socket(fileno=int(sys.argv[1])))
    if program is None:
        return
    # The sandboxed program process: run the program as this interpreter's main script, so an uncaught
    # exception prints its traceback and exits 1, and sys.exit, atexit and threads behave as under
    # ``python -I program.py`` -- without starting a second interpreter per program.
    sys.argv[:] = [program]
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
