"""A seccomp filter for sandboxed programs: the system calls no test program needs and escapes use.

Standard library only (imported by the sandbox launcher). Refused with EPERM: new namespaces (``unshare``,
``setns``, ``clone`` with a namespace flag), every mount call, the kernel keyrings (``add_key``,
``request_key``, ``keyctl``: a key outlives the process), sockets other than IPv4, IPv6 and Unix ones
(``AF_VSOCK``, netlink, packet, …), reading or writing other processes (``ptrace``,
``process_vm_readv/writev``), ``bpf``, ``perf_event_open``, ``userfaultfd``, io_uring (which performs
I/O behind the filter), module and kexec loading, ``chroot``, file handles by number, and every way
of watching or locking a file (inotify, fanotify, ``flock``, ``fcntl`` locks, leases and
``F_NOTIFY``) and ``mincore``: sandboxes running side by side share the read-only runtime's inodes;
and ``sysinfo``, whose process count and free memory are the whole host's. ``clone3``
answers ENOSYS, whose flags a filter cannot inspect, so the C library falls back to ``clone``. A
call from another ABI (x32) is refused too. Installed after ``PR_SET_NO_NEW_PRIVS``, so it also
holds across ``exec`` and setuid binaries gain nothing.

Syscall numbers are those of x86_64; on other architectures :func:`install` returns False and the
sandbox reports ``seccomp`` missing.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import socket
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
LD_ABS_W, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
NR_OFFSET, ARCH_OFFSET, ARG0_LOW_OFFSET = 0, 4, 16  # struct seccomp_data, little-endian args

NAMESPACE_FLAGS = 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
"""CLONE_NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET and NEWTIME."""

REFUSED_X86_64 = {
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "chroot": 161, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "syslog": 103, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
    "inotify_init": 253, "inotify_add_watch": 254, "inotify_rm_watch": 255, "inotify_init1": 294,
    "fanotify_init": 300, "fanotify_mark": 301, "flock": 73, "mincore": 27, "sysinfo": 99,
}  # fmt: skip
FCNTL_X86_64, ARG1_LOW_OFFSET = 72, 24
REFUSED_FCNTL = {
    "F_GETLK": 5, "F_SETLK": 6, "F_SETLKW": 7, "F_OFD_GETLK": 36, "F_OFD_SETLK": 37, "F_OFD_SETLKW": 38,
    "F_SETLEASE": 1024, "F_GETLEASE": 1025, "F_NOTIFY": 1026,
}  # fmt: skip
"""fcntl commands refused: locks, leases and directory notification. Two sandboxes see the same
read-only runtime files (the same inodes): a lock taken or a change watched on one of them would be a
channel between programs running side by side."""
CLONE_X86_64, CLONE3_X86_64, SOCKET_X86_64, SOCKETPAIR_X86_64 = 56, 435, 41, 53
ALLOWED_SOCKET_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)


def _program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions, jumps resolved to relative offsets."""
    deny, allow, nosys = "deny", "allow", "nosys"
    code: list[tuple] = [
        (LD_ABS_W, None, None, ARCH_OFFSET),
        (JEQ, 1, 0, AUDIT_ARCH_X86_64),
        (RET, None, None, RET_KILL_PROCESS),
        (LD_ABS_W, None, None, NR_OFFSET),
        (JGE, deny, None, X32_SYSCALL_BIT),
    ]
    code += [(JEQ, deny, None, number) for number in sorted(REFUSED_X86_64.values())]
    code += [(JEQ, nosys, None, CLONE3_X86_64), (JEQ, "fcntl", None, FCNTL_X86_64)]
    code += [(JEQ, None, "sockets", CLONE_X86_64)]
    code += [(LD_ABS_W, None, None, ARG0_LOW_OFFSET), (JSET, deny, allow, NAMESPACE_FLAGS)]
    code += [("label", "fcntl"), (LD_ABS_W, None, None, ARG1_LOW_OFFSET)]
    code += [(JEQ, deny, None, command) for command in sorted(REFUSED_FCNTL.values())]
    code += [(RET, None, None, RET_ALLOW)]
    code += [("label", "sockets"), (JEQ, "family", None, SOCKET_X86_64), (JEQ, "family", allow, SOCKETPAIR_X86_64)]
    code += [("label", "family"), (LD_ABS_W, None, None, ARG0_LOW_OFFSET)]
    code += [(JEQ, allow, None, family) for family in ALLOWED_SOCKET_FAMILIES]
    code += [("label", deny), (RET, None, None, RET_ERRNO | errno.EPERM)]
    code += [("label", nosys), (RET, None, None, RET_ERRNO | errno.ENOSYS)]
    code += [("label", allow), (RET, None, None, RET_ALLOW)]

    labels, instructions = {}, []
    for item in code:
        if item[0] == "label":
            labels[item[1]] = len(instructions)
        else:
            instructions.append(item)

    def offset(target, here: int) -> int:
        if target is None:
            return 0
        destination = labels[target] if isinstance(target, str) else here + 1 + target
        return destination - here - 1

    return [(op, offset(jt, i), offset(jf, i), k) for i, (op, jt, jf, k) in enumerate(instructions)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def no_new_privileges(libc) -> bool:
    return libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0


def install(libc) -> bool:
    """Install the filter on the calling thread's process (after no-new-privileges); True on success."""
    if not supported():
        return False
    program = _program()
    raw = b"".join(struct.pack("<HBBI", op, jt, jf, k) for op, jt, jf, k in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
