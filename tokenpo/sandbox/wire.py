"""What crosses between a sandboxed program and the tests that judge it: plain data, never objects.

Standard library only: the sandbox launcher imports this module before any program text exists, and
both sides of a job use it -- the untrusted program's process (:func:`serve_program`) and the trusted
tester (:class:`Remote`, :func:`run_tests`).

The tests run in the tester, a process the program can neither see nor signal (it is outside the
program's PID namespace, under another uid). Every name the tests call that the program defines
(``candidate``, an MBPP function) is a :class:`Remote`: a call sends its arguments to the program's
process and gets the result back *as data*. :func:`decode` only ever builds ``None``, ``bool``,
``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set`` and
``frozenset``, so the objects that tests compare are the tester's own: an object whose ``__eq__``
is always true, an ``int`` subclass or anything else the program builds cannot reach an ``assert``.
Results that are not plain data (an instance of a class the program defines) come back as
:class:`Handle` values, which compare equal only to themselves and can be passed back, called or
asked for attributes -- each again a round trip that returns data.

Messages are length-prefixed JSON (a 4-byte big-endian length, at most :data:`MAX_MESSAGE` bytes).
Tagged values: ``{"$": "tuple"|"set"|"frozenset"|"dict"|"bytes"|"complex"|"int"|"handle", "v": …}``
(a handle's value is ``[id, type name]``).
"""

from __future__ import annotations

import base64
import builtins
import json
import socket
import struct

MAX_MESSAGE = 64 << 20  # a result larger than this is an error, not a reason to exhaust the tester
MAX_DEPTH = 200
_SHORT_INT_DIGITS = 4000  # below Python's int/str conversion limit


class WireError(BaseException):
    """A message that is not valid plain data (too deep, too large, an unknown tag).

    A BaseException, like ProgramGone: a test's ``except Exception`` must not swallow a forged
    answer or a program that is gone, and go on to pass.
    """


class ProgramGone(BaseException):
    """The program's process closed the channel: it exited, crashed or was killed."""


# ------------------------------------------------------------------ framing


def send(sock: socket.socket, message: object) -> None:
    data = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        sock.sendall(struct.pack(">I", len(data)) + data)
    except OSError as error:  # the other end is gone (EPIPE, ECONNRESET)
        raise ProgramGone(str(error)) from None


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``; :class:`ProgramGone` if it closes first (also the launcher's reader)."""
    chunks, missing = [], size
    while missing:
        try:
            chunk = sock.recv(min(missing, 1 << 20))
        except OSError as error:
            raise ProgramGone(str(error)) from None
        if not chunk:
            raise ProgramGone("the channel closed")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> object:
    (size,) = struct.unpack(">I", read_exactly(sock, 4))
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes exceeds {MAX_MESSAGE}")
    try:
        return json.loads(read_exactly(sock, size))
    except (ValueError, RecursionError) as error:
        raise WireError(f"not JSON: {error}") from None


# ------------------------------------------------------------------ values


def encode(value: object, handles: dict[int, object] | None = None, depth: int = 0) -> object:
    """``value`` as JSON-ready plain data; objects that are not plain data become handles (when
    ``handles`` is given, the table they are kept in) or raise TypeError."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # an exact str, whatever subclass the program built
    if isinstance(value, int):
        number = int.__index__(value)
        if abs(number) < 10**_SHORT_INT_DIGITS:
            return number
        return {"$": "int", "v": format(number, "x")}
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, complex):
        return {"$": "complex", "v": [value.real, value.imag]}
    if isinstance(value, (bytes, bytearray)):
        return {"$": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Handle):
        return {"$": "handle", "v": [value.ident, value.kind]}
    nested = depth + 1
    if isinstance(value, list):
        return [encode(item, handles, nested) for item in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode(item, handles, nested) for item in tuple.__iter__(value)]}
    if isinstance(value, (set, frozenset)):
        tag = "frozenset" if isinstance(value, frozenset) else "set"
        return {"$": tag, "v": [encode(item, handles, nested) for item in value]}
    if isinstance(value, dict):
        return {
            "$": "dict",
            "v": [[encode(k, handles, nested), encode(v, handles, nested)] for k, v in dict.items(value)],
        }
    if handles is None:
        raise TypeError(f"a {type(value).__name__} cannot be sent to the program: only plain data crosses")
    handles[id(value)] = value
    return {"$": "handle", "v": [id(value), type(value).__name__[:100]]}


def decode(data: object, remote: Remote | None = None, handles: dict[int, object] | None = None, depth: int = 0):
    """Plain Python values from :func:`encode`'s output. Handles become :class:`Handle` values bound to
    ``remote`` (tester side) or the objects they name in ``handles`` (program side)."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    nested = depth + 1
    if type(data) is list:
        return [decode(item, remote, handles, nested) for item in data]
    if type(data) is not dict or set(data) != {"$", "v"}:
        raise WireError(f"not a tagged value: {str(data)[:80]}")
    tag, value = data["$"], data["v"]
    try:
        if tag == "int":
            return int(value, 16)
        if tag == "complex":
            return complex(float(value[0]), float(value[1]))
        if tag == "bytes":
            return base64.b64decode(value, validate=True)
        if tag == "tuple":
            return tuple(decode(item, remote, handles, nested) for item in value)
        if tag == "set":
            return {decode(item, remote, handles, nested) for item in value}
        if tag == "frozenset":
            return frozenset(decode(item, remote, handles, nested) for item in value)
        if tag == "dict":
            return {decode(k, remote, handles, nested): decode(v, remote, handles, nested) for k, v in value}
        if tag == "handle":
            if handles is not None:
                return handles[int(value[0])]
            handle = Handle(int(value[0]), remote, str(value[1])[:100])
            if remote is not None:
                remote.objects.append(handle.kind)
            return handle
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise WireError(f"bad {tag!r} value: {error}") from None
    raise WireError(f"unknown tag {tag!r}")


# ------------------------------------------------------------------ the tester's side


class ProgramError(Exception):
    """Raised in the tests when the program raised an exception that is not a built-in one."""


def _exception(kind: str, message: str) -> BaseException:
    """The built-in exception the program raised (so ``except ValueError`` in tests works), else ProgramError."""
    found = getattr(builtins, kind, None)
    if isinstance(found, type) and issubclass(found, Exception) and found.__module__ == "builtins":
        try:
            return found(f"{message} (raised in the program)")
        except TypeError:
            pass
    return ProgramError(f"{kind}: {message}")


class Remote:
    """The program's process seen from the tests: calls and attribute reads as round trips of data."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.calls = 0
        self.objects: list[str] = []  # type names of the non-data results the program answered with

    def request(self, message: dict):
        self.calls += 1
        send(self.sock, message)
        reply = receive(self.sock)
        if not isinstance(reply, dict) or not ({"ok"} == set(reply) or {"raised"} == set(reply)):
            raise WireError("the program's reply is not a result")
        if "raised" in reply:
            kind, message_text = (str(part)[:2000] for part in reply["raised"][:2])
            raise _exception(kind, message_text)
        return decode(reply["ok"], remote=self)

    def function(self, name: str) -> RemoteFunction:
        return RemoteFunction(self, name)


class RemoteFunction:
    """A name the program defines, callable from the tests; arguments and results travel as data."""

    def __init__(self, remote: Remote, name: str):
        self._remote, self.__name__ = remote, name

    def __call__(self, *args, **kwargs):
        return self._remote.request(
            {"op": "call", "name": self.__name__, "args": encode(list(args)), "kwargs": encode(kwargs)}
        )

    def __repr__(self) -> str:
        return f"<function {self.__name__} in the sandboxed program>"


class Handle:
    """An object that lives in the program's process (not plain data); equal only to itself."""

    def __init__(self, ident: int, remote: Remote | None, kind: str = "object"):
        self.ident, self._remote, self.kind = ident, remote, kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.ident == self.ident

    def __hash__(self) -> int:
        return hash(("handle", self.ident))

    def __getattr__(self, name: str):
        if name.startswith("__") or self._remote is None:
            raise AttributeError(name)
        return self._remote.request({"op": "getattr", "handle": self.ident, "name": name})

    def __call__(self, *args, **kwargs):
        if self._remote is None:
            raise TypeError("handle without a program")
        return self._remote.request(
            {"op": "call", "handle": self.ident, "args": encode(list(args)), "kwargs": encode(kwargs)}
        )

    def __repr__(self) -> str:
        return f"<{self.kind} object in the sandboxed program>"


def run_tests(remote: Remote, prelude: str, tests: str, remote_names: list[str]) -> None:
    """Run ``prelude`` (trusted: a HumanEval prompt, MBPP imports) and ``tests`` in a fresh namespace
    where each of ``remote_names`` calls the program. Returns when every test passed; raises otherwise."""
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(prelude, "<prelude>", "exec"), namespace)
    for name in remote_names:
        namespace[name] = remote.function(name)
    exec(compile(tests, "<tests>", "exec"), namespace)


# ------------------------------------------------------------------ the program's side


def serve_program(sock: socket.socket, namespace: dict) -> None:
    """Answer the tester's calls on ``namespace`` (the program's globals) until it closes the channel."""
    handles: dict[int, object] = {}
    while True:
        try:
            request = receive(sock)
        except ProgramGone:
            return
        try:
            if request.get("handle") is not None:
                target = handles[int(request["handle"])]
            else:
                target = (
                    namespace[request["name"]] if request["name"] in namespace else getattr(builtins, request["name"])
                )
            if request["op"] == "getattr":
                result = getattr(target, request["name"])
            else:
                args = decode(request["args"], handles=handles)
                kwargs = decode(request["kwargs"], handles=handles)
                result = target(*args, **kwargs)
            reply = {"ok": encode(result, handles)}
        except Exception as error:  # the program's exception: reported, and the tests decide
            reply = {"raised": [type(error).__name__, describe_error(error)]}
        try:
            send(sock, reply)
        except WireError as error:
            send(sock, {"raised": ["WireError", str(error)]})


def describe_error(error: BaseException) -> str:
    """An exception's message, at most 2,000 characters, even when its ``__str__`` fails."""
    try:
        text = str(error)
    except Exception:  # a program's exception whose __str__ fails
        text = "<unprintable>"
    return text[:2000]
