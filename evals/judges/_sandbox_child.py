"""The launcher the sandbox starts for each program: isolate, limit, drop privileges, exec.

Runs as ``python -I <this file>`` in a fresh session, with the job as JSON on stdin:
``{"program": str, "limits": {...}, "uid": int | None, "python": path}``. Standard library only, nothing imported from
the harness: this is the last trusted code before the untrusted program.

1. New namespaces where the kernel lets us: network (no interfaces but a downed loopback, so every
   connection fails), mount (private tmpfs on /tmp, /var/tmp and /dev/shm, so nothing the program
   writes there survives it), PID (the program is PID 1 of its own namespace: when it dies, every
   process it started dies with it). As non-root a user namespace is created first.
2. Fork. The child gets the resource limits (CPU seconds, address space, file size, process count,
   open files, no core dumps), a fresh working folder, and — when we are root — an unprivileged
   uid of its own (root ignores RLIMIT_NPROC, and the uid cannot write outside its folder), then
   execs Python on the program with a scrubbed environment. In a PID namespace the child is PID 1
   and runs the program as its own child, so the program gets ordinary signal semantics.
   Every other mount is remounted read-only in the mount namespace.
3. The launcher waits and exits with the child's status (128 + signal when killed).

The first line on stderr is ``sandbox-isolation: …`` naming what was achieved.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
MS_NOSUID, MS_NODEV = 0x2, 0x4
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


def main():
    job = json.loads(sys.stdin.read())
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
    if child == 0 and "pid" in achieved:
        # We are PID 1 of the new namespace, which ignores signals it has no handler for (SIGXCPU
        # would not stop a busy loop): run the program as our child and pass its status on.
        grandchild = os.fork()
        if grandchild != 0:
            _, status = os.waitpid(grandchild, 0)
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    if child == 0:
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            limit(job["limits"])
            os.chdir(workdir)
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": workdir,
                "TMPDIR": workdir,
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": "0",
            }
            os.execve(job["python"], [job["python"], "-I", "program.py"], env)
        except BaseException as error:
            sys.stderr.write(f"sandbox-launcher: {type(error).__name__}: {error}\n")
        finally:
            os._exit(126)
    _, status = os.waitpid(child, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) > 128 and "pid" in achieved:
        os._exit(os.WEXITSTATUS(status))  # the namespace's PID 1 passed on "killed by signal N"
    if not job.get("keep_workdir") and "mount" not in achieved:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
