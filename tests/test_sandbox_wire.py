"""The wire between the tests and a sandboxed program: what crosses, as what, and what never does.

No sandbox here: a thread runs ``serve_program`` on one end of a socket pair, with functions defined
below playing the program, and the tests call it through ``Remote`` on the other end.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import json
import socket
import sys
import threading
from collections import Counter, OrderedDict, defaultdict, deque, namedtuple
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest

from tokenpo.sandbox import wire
from tokenpo.sandbox.wire import Handle, ProgramError, Remote, WireError

Point = namedtuple("Point", "x y")
INDIA = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def connect():
    """``connect(namespace)``: a Remote whose program is ``namespace``, served by a thread until the test ends."""
    opened = []

    def start(namespace: dict, serve=wire.serve_program) -> Remote:
        tester, program = socket.socketpair()
        thread = threading.Thread(target=serve, args=(program.fileno(), namespace), daemon=True)
        thread.start()
        opened.append((tester, program, thread))
        return Remote(tester.fileno())

    yield start
    for tester, program, thread in opened:
        tester.close()  # the program's loop sees the channel close and returns
        thread.join(5)
        program.close()
        assert not thread.is_alive()


def forging(reply: dict):
    """A program that answers the first request with ``reply``, whatever it is (it writes its own frames)."""

    def serve(fd: int, namespace: dict) -> None:
        wire.receive(fd)
        wire.send(fd, reply)
        with contextlib.suppress(wire.ProgramGone):
            wire.receive(fd)

    return serve


def call(remote: Remote, name: str, *args, **kwargs):
    return remote.function(name)(*args, **kwargs)


# ------------------------------------------------------------------ values that cross as what they are


def _ordered() -> OrderedDict:
    ordered = OrderedDict(a=1, b=2, c=3)
    ordered.move_to_end("a")  # OrderedDict's order, not the dict's insertion order underneath
    return ordered


VALUES = {
    "range": range(2, 20, 3),
    "Counter": Counter("abracadabra"),
    "defaultdict": defaultdict(list, {"a": [1], "b": []}),
    "OrderedDict": _ordered(),
    "deque": deque([1, 2, 3], maxlen=5),
    "namedtuple": Point(1, [2]),
    "Fraction": Fraction(-7, 3),
    "Decimal": Decimal("1.10"),
    "date": date(2024, 2, 29),
    "datetime": datetime(2024, 2, 29, 23, 59, 1, 250),
    "aware datetime": datetime(2024, 2, 29, 23, 59, 1, 250, tzinfo=INDIA),
    "time": time(7, 8, 9, 10),
    "timedelta": timedelta(days=-2, seconds=5, microseconds=7),
    "big int": -(10**5000),
    "complex": complex(1.5, -2),
    "bytes": b"\x00\xff",
    "a builtin type": int,
    "nested": (1, [2.5, {"k": frozenset({4})}], {None, True}, {"ab": Counter(x=2)}),
}


def _program_echo() -> dict:
    return {"echo": lambda value: value, "describe": repr}


@pytest.mark.parametrize("name", list(VALUES))
def test_value_crosses_both_ways_as_itself(connect, name):
    value = VALUES[name]
    remote = connect(_program_echo())
    back = call(remote, "echo", value)
    assert type(back) is type(value) or name == "namedtuple"
    assert back == value and (back is not value or name == "a builtin type")
    if name != "big int":  # repr of 5000 digits is over Python's own int/str limit
        assert call(remote, "describe", value) == repr(value)  # the program got the same type and value


def test_the_details_each_type_keeps(connect):
    remote = connect(_program_echo())
    ordered = call(remote, "echo", _ordered())
    assert list(ordered) == ["b", "c", "a"]
    assert ordered != OrderedDict(a=1, b=2, c=3)  # OrderedDict equality is order-sensitive
    point = call(remote, "echo", Point(1, 2))
    assert (point.x, point.y, point._fields, type(point).__name__) == (1, 2, ("x", "y"), "Point")
    assert call(remote, "echo", Point(3, 4)).__class__ is type(point)  # one class per (name, fields)
    assert call(remote, "echo", deque([1, 2, 3], maxlen=2)).maxlen == 2
    assert call(remote, "echo", deque([1])).maxlen is None
    decimal = call(remote, "echo", Decimal("1.10"))
    assert str(decimal) == "1.10" and decimal.as_tuple() == Decimal("1.10").as_tuple()
    aware = call(remote, "echo", VALUES["aware datetime"])
    assert aware.utcoffset() == timedelta(hours=5, minutes=30) and aware == VALUES["aware datetime"]
    assert call(remote, "echo", defaultdict(list)).default_factory is list
    # a factory that is code of the tests (a lambda) does not cross; the contents do
    crossed = call(remote, "echo", defaultdict(lambda: 0, {"a": 1}))
    assert (crossed.default_factory, dict(crossed)) == (None, {"a": 1})
    assert call(remote, "echo", 2**13000) == 2**13000 and call(remote, "echo", True) is True
    assert call(remote, "echo", [float("inf"), -0.0]) == [float("inf"), -0.0]


def test_values_the_program_builds_cross_as_the_tests_own(connect):
    program = {
        "count": lambda text: Counter(text),
        "group": lambda words: _grouped(words),
        "point": lambda: namedtuple("Pair", ["left", "right"])(1, 2),
        "third": lambda: Fraction(1, 3),
    }
    remote = connect(program)
    counted = call(remote, "count", "banana")
    assert type(counted) is Counter and counted.most_common(1) == [("a", 3)]
    grouped = call(remote, "group", ["ab", "cd", "e"])
    assert grouped == {2: ["ab", "cd"], 1: ["e"]} and grouped.default_factory is list
    pair = call(remote, "point")
    assert pair == (1, 2) and pair.right == 2 and type(pair).__module__ == wire.__name__
    assert call(remote, "third") + Fraction(2, 3) == 1


def _grouped(words):
    groups = defaultdict(list)
    for word in words:
        groups[len(word)].append(word)
    return groups


# ------------------------------------------------------------------ the program's subclasses stay behind


class RiggedCounter(Counter):
    def __eq__(self, other):
        return True

    __hash__ = None

    def items(self):
        return [("a", 99)]

    def __iter__(self):
        return iter(["forged"])


class RiggedOrdered(OrderedDict):
    def __eq__(self, other):
        return True

    def items(self):
        return [("forged", 0)]

    def __iter__(self):
        return iter(["forged"])


class RiggedPoint(namedtuple("Point", "x y")):
    def __eq__(self, other):
        return True

    def __iter__(self):
        return iter([99, 99])

    def __getitem__(self, index):
        return 99


class RiggedStr(str):
    def __eq__(self, other):
        return True

    def __str__(self):
        return "forged"


class RiggedList(list):
    def __eq__(self, other):
        return True

    def __iter__(self):
        return iter([99])


class RiggedDeque(deque):
    def __eq__(self, other):
        return True

    def __iter__(self):
        return iter([99])


class RiggedDecimal(Decimal):
    def __eq__(self, other):
        return True

    def __str__(self):
        return "99"


class RiggedDate(date):
    def __eq__(self, other):
        return True

    def isoformat(self):
        return "1999-01-01"


class RiggedDefault(defaultdict):
    def __eq__(self, other):
        return True

    def items(self):
        return [("forged", 0)]


class RiggedFraction(Fraction):
    def __eq__(self, other):
        return True


RIGGED = {  # what the program returns: (its object, what the tests get, a value the object claims to equal)
    "Counter": (RiggedCounter(a=1), Counter(a=1), Counter(a=2)),
    "OrderedDict": (RiggedOrdered(a=1), OrderedDict(a=1), OrderedDict(b=1)),
    "namedtuple": (RiggedPoint(1, 2), (1, 2), (99, 99)),
    "str": (RiggedStr("real"), "real", "forged"),
    "list": (RiggedList([1, 2]), [1, 2], [99]),
    "deque": (RiggedDeque([1, 2]), deque([1, 2]), deque([99])),
    "Decimal": (RiggedDecimal("1.5"), Decimal("1.5"), Decimal("99")),
    "date": (RiggedDate(2020, 5, 17), date(2020, 5, 17), date(1999, 1, 1)),
    "defaultdict": (RiggedDefault(int, {"a": 1}), defaultdict(int, {"a": 1}), {"forged": 0}),
}


@pytest.mark.parametrize("name", list(RIGGED))
def test_a_programs_subclass_reaches_the_tests_as_the_plain_base_value(connect, name):
    rigged, plain, claimed = RIGGED[name]
    remote = connect({"answer": lambda: rigged})
    got = call(remote, "answer")
    assert type(got) is type(plain) or name == "namedtuple"
    assert not isinstance(got, type(rigged)) and got == plain and got != claimed
    if name == "namedtuple":
        assert (got.x, got.y, list(got)) == (1, 2, [1, 2])


def test_a_programs_fraction_subclass_stays_in_the_program(connect):
    remote = connect({"answer": lambda: RiggedFraction(1, 2)})
    got = call(remote, "answer")
    assert isinstance(got, Handle) and got != Fraction(1, 2)
    assert remote.objects == ["RiggedFraction"]


def test_objects_stay_behind_as_handles_that_go_back_as_themselves(connect):
    class Box:
        size = 3

    box = Box()
    remote = connect({"make": lambda: box, "is_it": lambda other: other is box})
    handle = call(remote, "make")
    assert isinstance(handle, Handle) and handle.size == 3 and call(remote, "is_it", handle) is True
    with pytest.raises(TypeError, match="cannot be sent"):
        call(remote, "is_it", object())


# ------------------------------------------------------------------ callbacks


def _keep(items, predicate):
    return [item for item in items if predicate(item)]


def _apply(function, value):
    try:
        return ("returned", function(value))
    except ValueError as error:
        return ("caught ValueError", str(error))
    except wire.CallbackError as error:
        return ("caught CallbackError", str(error))


CALLBACK_PROGRAM = {
    "sort_by": lambda items, key: sorted(items, key=key),
    "keep": _keep,
    "apply": _apply,
    "apply_raw": lambda function, value: function(value),
    "give_back": lambda function: function,
    "double": lambda number: 2 * number,
    "boxes": lambda key: sorted([_Box(3), _Box(1), _Box(2)], key=key)[0].size,
    "twice": lambda function, value: function(function(value)),
}


class _Box:
    def __init__(self, size):
        self.size = size


class OwnError(Exception):
    pass


def test_the_tests_functions_run_when_the_program_calls_them(connect):
    remote = connect(CALLBACK_PROGRAM)
    assert call(remote, "sort_by", ["bb", "a", "ccc"], key=lambda word: -len(word)) == ["ccc", "bb", "a"]
    assert call(remote, "sort_by", ["bb", "a", "ccc"], len) == ["a", "bb", "ccc"]
    assert call(remote, "sort_by", ["B", "a", "C"], str.lower) == ["a", "B", "C"]
    assert call(remote, "keep", range(10), lambda n: n % 3 == 0) == [0, 3, 6, 9]
    assert call(remote, "twice", lambda text: text + "!", "hi") == "hi!!"
    assert call(remote, "apply", int, "12") == ("returned", 12)  # a builtin type crosses as itself
    own = lambda value: value  # noqa: E731
    assert call(remote, "give_back", own) is own  # the tests' own function, back as itself


def test_a_callback_may_call_the_program_again_and_receive_its_objects(connect):
    remote = connect(CALLBACK_PROGRAM)
    double = remote.function("double")
    assert call(remote, "sort_by", [3, 1, 2], key=lambda n: -double(n)) == [3, 2, 1]
    assert call(remote, "boxes", lambda box: box.size) == 1  # each box a handle, its size a round trip
    assert call(remote, "apply_raw", double, 4) == 8  # the program's own function, called through the tests


def test_what_a_callback_raises_reaches_the_program_as_an_exception(connect):
    remote = connect(CALLBACK_PROGRAM)

    def refuse(value):
        raise ValueError(f"no {value}")

    def own_error(value):
        raise OwnError("mine")

    kind, text = call(remote, "apply", refuse, 5)
    assert (kind, text) == ("caught ValueError", "no 5 (raised in the tests)")
    assert call(remote, "apply", own_error, 5) == ("caught CallbackError", "OwnError: mine (raised in the tests)")
    with pytest.raises(KeyError) as raised:  # uncaught in the program: back in the tests as the program's
        call(remote, "apply_raw", {}.__getitem__, "missing")
    assert isinstance(raised.value, ProgramError) and "raised in the tests" in str(raised.value)


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "callback", "id": 12345, "args": [], "kwargs": {}},  # a function the tests never gave
        {"op": "callback", "id": "1", "args": [], "kwargs": {}},
        {"op": "callback", "id": 1, "args": [[1]]},
        {"op": "call", "name": "candidate", "args": [], "kwargs": {}},
    ],
)
def test_a_forged_callback_request_fails_the_tests(connect, request_):
    remote = connect({}, serve=forging(request_))
    with pytest.raises(WireError):
        call(remote, "anything", lambda: None)


# ------------------------------------------------------------------ exceptions


def _stop(value):
    raise StopIteration


def _refuse(value):
    raise ValueError(f"bad {value}")


def test_stop_iteration_from_the_program_fails_the_tests_instead_of_ending_their_loop(connect):
    remote = connect({"candidate": _stop})
    for tests in ("assert all(map(candidate, [1, 2]))", "assert all(candidate(x) for x in [1, 2])"):
        with pytest.raises(ProgramError) as raised:
            wire.run_tests(remote, "", tests, ["candidate"])
        assert not isinstance(raised.value, (StopIteration, StopAsyncIteration))
        assert "raised in the program" in str(raised.value)


def test_a_programs_value_error_is_caught_by_except_value_error(connect):
    remote = connect({"candidate": _refuse})
    tests = "try:\n    candidate(1)\n    assert False\nexcept ValueError as error:\n    assert 'bad 1' in str(error)\n"
    wire.run_tests(remote, "", tests, ["candidate"])
    with pytest.raises(ValueError) as raised:
        call(remote, "candidate", 2)
    assert isinstance(raised.value, ProgramError) and type(raised.value) is not ValueError
    assert str(raised.value) == "bad 2 (raised in the program)"


NEEDS_MORE_ARGUMENTS = {"UnicodeDecodeError", "UnicodeEncodeError", "UnicodeTranslateError", "ExceptionGroup"}


def test_every_name_the_program_may_give_becomes_a_program_error():
    for name, kind in vars(builtins).items():
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            continue
        error = wire._exception(name, "m")
        assert isinstance(error, ProgramError) and isinstance(error, Exception), name
        assert not isinstance(error, (StopIteration, StopAsyncIteration)), name
        control_flow = issubclass(kind, (StopIteration, StopAsyncIteration)) or not issubclass(kind, Exception)
        if control_flow or name in NEEDS_MORE_ARGUMENTS:
            assert type(error) is ProgramError and str(error) == f"{name}: m (raised in the program)", name
        else:
            assert isinstance(error, kind) and type(error).__name__ == kind.__name__, name  # IOError is OSError
    assert type(wire._exception("ValueError", "a")) is type(wire._exception("ValueError", "b"))  # cached


def test_a_forged_exception_name_is_still_a_program_error(connect):
    remote = connect({}, serve=forging({"raised": ["KeyboardInterrupt", "stop the tests"]}))
    with pytest.raises(ProgramError) as raised:
        call(remote, "candidate")
    assert not isinstance(raised.value, KeyboardInterrupt)


# ------------------------------------------------------------------ depth


def nested(levels: int, inner=0):
    value = inner
    for level in range(levels):  # every container type the wire nests, in turn
        value = [[value], (value,), {"k": value}, deque([value]), Point(value, None)][level % 5]
    return value


def levels_of(value) -> tuple[int, object]:
    """How many containers deep ``value``'s innermost item is, and that item (walked, not recursed)."""
    levels = 0
    while isinstance(value, (list, tuple, dict, deque)):
        value = value["k"] if isinstance(value, dict) else value[0]
        levels += 1
    return levels, value


def test_a_value_1000_levels_deep_crosses_and_1001_does_not(connect):
    limit = sys.getrecursionlimit()
    program = {
        "echo": lambda value: value,
        "make": lambda levels: nested(levels, "end"),
        "limit": sys.getrecursionlimit,
    }
    remote = connect(program)
    back = call(remote, "echo", nested(1000, "end"))
    assert levels_of(back) == (1000, "end") and back._fields == ("x", "y")  # level 1000 is a Point
    assert levels_of(call(remote, "make", 1000)) == (1000, "end")
    with pytest.raises(WireError, match="nested deeper than 1000 levels"):
        call(remote, "make", 1001)
    with pytest.raises(WireError, match="nested deeper than 1000 levels"):
        call(remote, "echo", nested(1001))  # the tests' own argument: refused before it is sent
    assert call(remote, "echo", [1]) == [1]  # the channel is still in step
    assert call(remote, "limit") == limit and sys.getrecursionlimit() == limit


def test_encode_and_decode_do_not_recurse():
    value, out = nested(1000, "end"), []
    message = json.dumps(wire.encode(value))
    assert message.count("[[") == 0  # a flat list of nodes, whatever the value's depth

    def cross():
        out.append(wire.decode(json.loads(json.dumps(wire.encode(value)))))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 30)  # a fresh thread has a few frames of its own
    try:
        thread = threading.Thread(target=cross)
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit(limit)
    assert levels_of(out[0]) == (1000, "end")


# ------------------------------------------------------------------ forged answers


def _forged_nested(levels: int) -> list:
    return [0] + [["list", position] for position in range(levels)]


FORGED = {
    "no nodes": [],
    "not a list": {"$": "tuple", "v": []},
    "a node left over": [1, 2],
    "a node naming itself": [["list", 0]],
    "a node claimed twice": [1, ["list", 0, 0]],
    "a node naming a later one": [["list", 1], 2],
    "an old tagged value": [{"$": "tuple", "v": []}],
    "an unknown tag": [["eval", "1"]],
    "a keyword as a type name": [["namedtuple", "class", ["a"]]],
    "a field starting with _": [["namedtuple", "P", ["_a"]]],
    "a field that is not an identifier": [["namedtuple", "P", ["a)"]]],
    "a factory that is code": [["defaultdict", "eval"]],
    "a type that is code": [["type", "exec"]],
    "a callback the tests never gave": [["callback", 1, "f"]],
    "a zero denominator": [["Fraction", 1, 0]],
    "a bad date": [["datetime", "yesterday"]],
    "a bad int": [["int", 5]],
    "a bad decimal": [["Decimal", "1.2.3"]],
    "an unhashable key": [["list"], 0, ["dict", 0, 1]],
    "a zero range step": [["range", 0, 5, 0]],
    "1001 levels": _forged_nested(1001),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_a_forged_answer_fails_the_tests(connect, name):
    remote = connect({}, serve=forging({"ok": FORGED[name]}))
    with pytest.raises(WireError) as raised:
        call(remote, "candidate")
    if name == "1001 levels":
        assert "nested deeper than 1000 levels" in str(raised.value)


def test_a_forged_answer_1000_levels_deep_is_accepted(connect):
    remote = connect({}, serve=forging({"ok": _forged_nested(1000)}))
    assert levels_of(call(remote, "candidate")) == (1000, 0)


# ------------------------------------------------------------------ text


def test_unencodable_text_from_the_program_is_made_safe(connect):
    def raise_surrogate():
        raise ValueError("\ud800 and more")

    remote = connect({"candidate": raise_surrogate})
    with pytest.raises(ValueError) as raised:
        call(remote, "candidate")
    message = str(raised.value)
    assert message.encode("utf-8") == b"\\ud800 and more (raised in the program)"
    described = wire.describe_error(ValueError("\udcff" * 5000))
    assert len(described) == 2000 and described.encode("utf-8").startswith(b"\\udcff")
    assert wire.safe_text("caf\u00e9 \ud83d", 100) == "caf\u00e9 \\ud83d"
    assert wire.safe_text("x" * 50, 10) == "x" * 10
    assert call(connect({"echo": lambda value: value}), "echo", "\ud800") == "\ud800"  # data crosses as it is
