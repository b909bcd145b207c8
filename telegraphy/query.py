"""Server-side subscription filters: Django's lookup language evaluated on an event's ``data``.

A subscription may carry ``filter`` and ``exclude`` objects such as
``{"status": "open", "priority__gte": 3}``. Call :func:`compile_filter` once,
when the subscription is made; it validates everything and returns a
:data:`Predicate` made of closures, which the broker then calls once per
event with the event's ``data``::

    accepts = compile_filter({"status": "open", "priority__gte": 3}, {"customer__city__iexact": "paris"})
    accepts({"status": "open", "priority": 5, "customer": {"city": "Lyon"}})   # True

The language (docs/filters.md has the full reference):

- A key is a path into the JSON object, its parts joined by ``__``
  (``customer__address__city``); a part made of digits also indexes a list.
  If the last part is one of :data:`LOOKUPS` it is the lookup, otherwise the
  lookup is ``exact``. To reach a key that is itself named like a lookup,
  end the key with ``__exact``.
- ``filter`` matches when every condition holds; ``exclude`` removes what
  matches every one of its conditions (Django's ``.filter(**f).exclude(**e)``).
- A missing key, a path through something that is not an object, and JSON
  ``null`` are all NULL, as a NULL column is in SQL: ``exact`` with ``None``
  is ``isnull`` with ``True``; every other comparison with NULL is false.
- Values compare within their JSON type: numbers (int and float alike, never
  booleans) with numbers, strings with strings, booleans only with booleans.
  A mismatch is false, never an error (``"abc" > 3`` is false).
- Case-insensitive lookups use Unicode case folding (:meth:`str.casefold`).

Everything that can be wrong is refused at compile time with a
:class:`QueryError` naming the key and the lookup; a compiled predicate
never raises on any ``data``.

Regular expressions run on google-re2 (linear time) when it is installed.
Without it they run on :mod:`re` after a check that refuses backreferences,
lookaround, repeats inside repeats and any pattern whose estimated
backtracking work exceeds :data:`REGEX_BUDGET`; strings longer than
:data:`REGEX_INPUT_LIMIT` then never match.

Work is bounded on both sides. A filter is small (:data:`MAX_CONDITIONS`
conditions, keys of :data:`MAX_KEY_LENGTH` characters, values of
:data:`MAX_VALUE_ITEMS` nodes and strings of :data:`MAX_STRING_LENGTH`
characters); membership tests (``in``, ``contains`` with a list) use
hash sets, never a scan per wanted item. On the event side, one evaluation of
a filter visits at most :data:`MAX_WORK_ITEMS` list items and object members
of the event and reads at most :data:`MAX_WORK_CHARS` characters of its
strings (case folding, substring and regex search); an event that needs more
does not match that filter (``exclude`` included: such an event is not
delivered). Lookups whose cost is bounded by the filter's own value
(``exact``, ``in``, comparisons, ``startswith``…) are not counted.

The limits below are module constants, read at compile time; change them
before compiling (the gateway's configuration may).
"""

from __future__ import annotations

import importlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "LOOKUPS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_IN_ITEMS",
    "MAX_KEY_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_VALUE_DEPTH",
    "MAX_VALUE_ITEMS",
    "MAX_WORK_CHARS",
    "MAX_WORK_ITEMS",
    "REGEX_BUDGET",
    "REGEX_INPUT_LIMIT",
    "USE_RE2",
    "Predicate",
    "QueryError",
    "compile_filter",
    "regex_engine",
]

#: A compiled filter: called with an event's ``data``, says whether it matches.
Predicate = Callable[[Any], bool]

#: Most conditions in one subscription, ``filter`` and ``exclude`` together.
MAX_CONDITIONS = 32
#: Most key parts before the lookup (``a__b__c`` has 3).
MAX_DEPTH = 8
#: Most values in the list of an ``in`` lookup.
MAX_IN_ITEMS = 256
#: Most JSON nodes in one lookup value (lists and objects given to exact, contains, in).
MAX_VALUE_ITEMS = 1024
#: Deepest nesting of lists and objects in one lookup value.
MAX_VALUE_DEPTH = 32
#: Longest key (path and lookup), in characters.
MAX_KEY_LENGTH = 256
#: Longest string in a lookup value, in characters (regex patterns: MAX_REGEX_LENGTH).
MAX_STRING_LENGTH = 1024
#: Most list items and object members of the event one evaluation of a filter
#: visits (``contains`` over lists and objects); beyond it the event does not match.
MAX_WORK_ITEMS = 4096
#: Most characters of the event's strings one evaluation of a filter reads
#: (``contains``/``icontains`` substring search, regex search); strings of
#: up to 1,024 characters are not counted. Beyond it the event does not match.
MAX_WORK_CHARS = 262_144
#: Longest pattern of a ``regex``/``iregex`` lookup, in characters.
MAX_REGEX_LENGTH = 256
#: Without google-re2: strings longer than this never match a regex lookup.
REGEX_INPUT_LIMIT = 1000
#: Without google-re2: most estimated backtracking steps of one regex search
#: on a string of REGEX_INPUT_LIMIT characters (paths tried times choice
#: points; about 10 ms of CPU at worst on a current core). google-re2 needs
#: no such bound.
REGEX_BUDGET = 4_000_000

#: The lookups of the language (Django's names and meanings).
LOOKUPS = frozenset(
    {
        "exact", "iexact", "contains", "icontains", "in", "gt", "gte", "lt", "lte",
        "startswith", "istartswith", "endswith", "iendswith", "range", "isnull", "regex", "iregex",
    }
)  # fmt: skip
# Django lookups and transforms this language does not have: named as such
# rather than taken for keys. Common JSON key names (date, year, ...) are not
# in this list, so they stay keys.
_UNSUPPORTED = frozenset(
    {"has_key", "has_keys", "has_any_keys", "contained_by", "overlap", "search", "trigram_similar", "unaccent"}
)

try:  # google-re2: linear-time matching, no catastrophic backtracking.
    _re2: Any = importlib.import_module("re2")
except ImportError:  # pragma: no cover - depends on the installation
    _re2 = None

#: Whether regex lookups compile with google-re2 (True when it is installed).
USE_RE2 = _re2 is not None

try:  # The regex parser of the re module (private; only used to check patterns).
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python 3.10
    _sre_parse = importlib.import_module("sre_parse")


class QueryError(ValueError):
    """A filter is invalid; ``key`` and ``lookup`` say where (``None`` when the whole filter is).

    The message is safe to send to the peer; the gateway answers SUBSCRIBE
    with :attr:`uri` and it.
    """

    #: The WAMP error URI the broker answers with.
    uri = "wamp.error.invalid_argument"

    def __init__(self, problem: str, key: str | None = None, lookup: str | None = None) -> None:
        super().__init__(problem if key is None else f"{problem} in {key!r}")
        self.problem = problem
        self.key = key
        self.lookup = lookup


def regex_engine() -> str:
    """Return the engine regex lookups compile with now: ``"re2"`` or ``"re"``."""
    return "re2" if USE_RE2 and _re2 is not None else "re"


def compile_filter(filter: Mapping[str, Any] | None, exclude: Mapping[str, Any] | None = None) -> Predicate:
    """Compile a subscription's ``filter`` and ``exclude`` into one predicate on ``data``.

    Call it once per subscription; call the result once per event. ``None``
    or ``{}`` for both gives a predicate that accepts everything.

    Raises:
        QueryError: an unknown lookup, a value of the wrong shape, a limit
            exceeded; the message names the key and the lookup.
    """
    work = _Work()
    include = _conditions(filter, "filter", work)
    excluded = _conditions(exclude, "exclude", work)
    if len(include) + len(excluded) > MAX_CONDITIONS:
        raise QueryError(f"too many conditions (max {MAX_CONDITIONS})")
    accept = _all_of(include)
    reject = _all_of(excluded)
    predicate: Predicate
    if reject is None:
        predicate = accept if accept is not None else _always
    elif accept is None:
        predicate = lambda data: not reject(data)  # noqa: E731
    else:
        predicate = lambda data: accept(data) and not reject(data)  # noqa: E731
    if not work.used:
        return predicate  # every condition's cost is bounded by the filter itself
    items, chars = MAX_WORK_ITEMS, MAX_WORK_CHARS
    if accept is not None and reject is None:  # the common case, one call less

        def bounded_accept(data: Any) -> bool:
            work.items = items
            work.chars = chars
            try:
                return accept(data)
            except _OverBudget:
                return False  # fail closed: an event too costly to judge is not delivered

        return bounded_accept

    def bounded(data: Any) -> bool:
        work.items = items
        work.chars = chars
        try:
            return predicate(data)
        except _OverBudget:
            return False  # fail closed, exclude included: the event is not delivered

    return bounded


class _OverBudget(Exception):
    """One evaluation of a filter spent its work budget (caught by the compiled predicate)."""


#: Strings of the event up to this length are read without counting them.
_FREE_CHARS = 1024


class _Work:
    """What one evaluation of a filter may still spend on the event (reset on every call).

    Conditions whose cost grows with the event's size take from it and set
    ``used`` when compiled; a filter without them is not wrapped at all.
    Evaluation is synchronous, so one object per compiled filter suffices.
    """

    __slots__ = ("chars", "items", "used")

    def __init__(self) -> None:
        self.items = MAX_WORK_ITEMS
        self.chars = MAX_WORK_CHARS
        self.used = False

    def visit(self, count: int) -> None:
        """Count ``count`` list items or object members visited."""
        self.items -= count
        if self.items < 0:
            raise _OverBudget

    def read(self, text: str) -> None:
        """Count the characters of ``text`` about to be read in full (short strings are free)."""
        size = len(text)
        if size > _FREE_CHARS:
            self.chars -= size
            if self.chars < 0:
                raise _OverBudget


def _always(data: Any) -> bool:
    return True


def _all_of(checks: list[Predicate]) -> Predicate | None:
    """AND the checks, short-circuiting in the order given."""
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda data: a(data) and b(data)
    if len(checks) == 3:
        a, b, c = checks
        return lambda data: a(data) and b(data) and c(data)
    frozen = tuple(checks)

    def every(data: Any) -> bool:
        for check in frozen:
            if not check(data):
                return False
        return True

    return every


def _conditions(spec: Mapping[str, Any] | None, what: str, work: _Work) -> list[Predicate]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise QueryError(f"{what} must be an object, not {_type_name(spec)}")
    if len(spec) > MAX_CONDITIONS:
        raise QueryError(f"too many conditions (max {MAX_CONDITIONS})")
    return [_condition(key, value, work) for key, value in spec.items()]


# ---------------------------------------------------------------- keys


def _condition(key: Any, value: Any, work: _Work) -> Predicate:
    if not isinstance(key, str):
        raise QueryError("keys must be strings", str(key)[:MAX_KEY_LENGTH])
    if len(key) > MAX_KEY_LENGTH:
        raise QueryError(f"key too long (max {MAX_KEY_LENGTH} characters)", key[:MAX_KEY_LENGTH] + "…")
    parts = key.split("__")
    lookup = "exact"
    if len(parts) > 1:
        last = parts[-1]
        if last in LOOKUPS:
            lookup = parts.pop()
        elif last in _UNSUPPORTED:
            raise QueryError(f"unsupported lookup {last!r}", key, last)
        elif _one_typo_from_a_lookup(last):
            raise QueryError(f"unknown lookup {last!r}", key, last)
    if "" in parts:
        raise QueryError("empty key part", key, lookup)
    if len(parts) > MAX_DEPTH:
        raise QueryError(f"key too deep (max {MAX_DEPTH} parts)", key, lookup)
    _check_value(value, key, lookup)
    return _BUILDERS[lookup](_getter(tuple(parts)), value, key, lookup, work)


def _one_typo_from_a_lookup(part: str) -> bool:
    """Whether ``part`` is one edit (insert, delete, replace, swap) from a lookup's name.

    Such a last part (``gtx``, ``isnul``, ``icontain``) is taken for a
    mistyped lookup rather than a key; ``key__gtx__exact`` reaches a key
    named ``gtx``. Parts of one or two letters are always keys; for the
    two-letter lookups only a letter typed after them counts (``gtx``,
    ``int``), so ``pin``, ``min`` and ``lat`` stay keys.
    """
    if len(part) < 3:
        return False
    for name in LOOKUPS:
        if len(name) == 2:  # in, gt, lt: only a letter typed after them (gtx, int), not pin or lat
            if len(part) == 3 and part.startswith(name):
                return True
        elif abs(len(part) - len(name)) <= 1 and _within_one_edit(part, name):
            return True
    return False


def _within_one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) <= 1:
            return True
        first, second = diffs[0], diffs[-1]
        return len(diffs) == 2 and second == first + 1 and a[first] == b[second] and a[second] == b[first]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _getter(parts: tuple[str, ...]) -> Callable[[Any], Any]:
    """Return a function from ``data`` to the value at ``parts``, ``None`` when there is none."""
    steps = tuple((part, int(part) if part.isdigit() and part.isascii() else None) for part in parts)
    if len(steps) == 1:
        name, index = steps[0]

        def get_one(data: Any) -> Any:
            if type(data) is dict:
                return data.get(name)
            return _step(data, name, index)

        return get_one

    def get_path(data: Any) -> Any:
        node = data
        for name, index in steps:
            node = node.get(name) if type(node) is dict else _step(node, name, index)
            if node is None:
                return None
        return node

    return get_path


def _step(node: Any, name: str, index: int | None) -> Any:
    if isinstance(node, Mapping):
        return node.get(name)
    if index is not None and isinstance(node, list) and index < len(node):
        return node[index]
    return None


# ---------------------------------------------------------------- values


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _check_value(value: Any, key: str, lookup: str) -> None:
    """Refuse values that are not JSON, not finite, too large or too deep."""
    budget = [MAX_VALUE_ITEMS]

    def visit(node: Any, depth: int = 0) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise QueryError(f"value too large (max {MAX_VALUE_ITEMS} items)", key, lookup)
        if depth > MAX_VALUE_DEPTH:
            raise QueryError(f"value nested too deep (max {MAX_VALUE_DEPTH} levels)", key, lookup)
        if isinstance(node, str):
            if len(node) > MAX_STRING_LENGTH and lookup not in ("regex", "iregex"):
                raise QueryError(f"string too long (max {MAX_STRING_LENGTH} characters)", key, lookup)
            return
        if node is None or isinstance(node, (bool, int)):
            return
        if isinstance(node, float):
            if not math.isfinite(node):
                raise QueryError(f"lookup {lookup!r} needs finite numbers", key, lookup)
            return
        if isinstance(node, (list, tuple)):
            for item in node:
                visit(item, depth + 1)
            return
        if isinstance(node, Mapping):
            for k, item in node.items():
                if not isinstance(k, str):
                    raise QueryError("object keys in values must be strings", key, lookup)
                visit(item, depth + 1)
            return
        raise QueryError(f"unsupported value of type {type(node).__name__}", key, lookup)

    visit(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans equal only booleans; 1 == 1.0; lists and objects compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and bool(a == b)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return a is None and b is None


def _equality(wanted: Any, work: _Work) -> Callable[[Any], bool]:
    """Compile :func:`_json_equal` with a list or object ``wanted``: is the event's value equal to it?

    Native equality decides (C speed; it is never true where JSON equality is
    false). It is also true for ``true`` against ``1`` and ``false`` against
    ``0``, so when ``wanted`` holds booleans or the numbers 0 and 1, values
    found equal are walked once more to tell them apart, counting the items
    visited against ``work``.
    """
    wanted = _as_lists(wanted)
    if not _has_bool_or_unit(wanted):
        return lambda found: _native_equal(found, wanted)

    def equal_walked(found: Any) -> bool:
        return _native_equal(found, wanted) and _same_kinds(found, wanted, work)

    return equal_walked


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def _has_bool_or_unit(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_bool_or_unit(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bool_or_unit(v) for v in value.values())
    return isinstance(value, bool) or (_is_number(value) and value in (0, 1))


def _native_equal(found: Any, wanted: Any) -> bool:
    try:
        return bool(found == wanted)
    except RecursionError:  # pragma: no cover - deeper than any decoder builds
        return False


def _same_kinds(found: Any, wanted: Any, work: _Work) -> bool:
    """For values natively equal: whether booleans sit exactly where ``wanted`` has them."""
    if isinstance(wanted, list):
        work.visit(len(wanted))
        for a, b in zip(found, wanted):
            if not _same_kinds(a, b, work):
                return False
        return True
    if isinstance(wanted, dict):
        work.visit(len(wanted))
        for k, v in wanted.items():
            if not _same_kinds(found[k], v, work):
                return False
        return True
    return (found.__class__ is bool) is (wanted.__class__ is bool)


def _holder(wanted: Any, work: _Work) -> Callable[[Any], bool]:
    """Compile ``wanted`` into a test of PostgreSQL ``jsonb @>``: does a container hold it?

    Objects hold the wanted pairs, lists hold the wanted items (a wanted
    scalar: a list holding it as an item). Scalars wanted from a list are
    looked up in sets built once per list (one pass over it, not one per
    wanted item); every list item and object member visited is counted
    against ``work``.
    """
    if isinstance(wanted, Mapping):
        parts = tuple((k, _holder(v, work)) for k, v in wanted.items())

        def object_holds(container: Any) -> bool:
            if not isinstance(container, Mapping):
                return False
            work.visit(len(parts) + 1)
            for k, holds in parts:
                if k not in container or not holds(container[k]):
                    return False
            return True

        return object_holds
    if isinstance(wanted, (list, tuple)):
        return _list_holder(wanted, work)

    def scalar_holds(container: Any) -> bool:
        if isinstance(container, list):
            work.visit(len(container) + 1)
            return any(_json_equal(item, wanted) for item in container)
        return not isinstance(container, Mapping) and _json_equal(container, wanted)

    return scalar_holds


def _list_holder(wanted: list[Any] | tuple[Any, ...], work: _Work) -> Callable[[Any], bool]:
    strings = frozenset(w for w in wanted if isinstance(w, str))
    numbers = frozenset(w for w in wanted if _is_number(w))
    booleans = frozenset(w for w in wanted if isinstance(w, bool))
    null = any(w is None for w in wanted)
    nested = tuple(_holder(w, work) for w in wanted if isinstance(w, (list, tuple, Mapping)))
    scalars = bool(strings or numbers or booleans or null)

    def list_holds(container: Any) -> bool:
        if not isinstance(container, list):
            return False
        work.visit(len(container) + 1)
        if scalars and not _holds_scalars(container, strings, numbers, booleans, null, work):
            return False
        for holds in nested:
            work.visit(len(container))
            if not any(holds(item) for item in container):
                return False
        return True

    return list_holds


def _holds_scalars(
    container: list[Any], strings: frozenset[str], numbers: frozenset[Any], booleans: frozenset[bool], null: bool, work: _Work
) -> bool:
    """Whether every wanted scalar is an item of ``container`` or of a list directly in it (as ``jsonb @>`` nests)."""
    seen_strings: set[str] = set()
    seen_numbers: set[Any] = set()
    seen_booleans: set[bool] = set()
    seen_null = False
    sublists: list[list[Any]] = []
    for items in (container, None):
        if items is None:
            # Not all found among the items: a wanted scalar may also sit in a list item.
            for sub in sublists:
                work.visit(len(sub))
            items = [x for sub in sublists for x in sub if not isinstance(x, list)]
        for item in items:
            kind = item.__class__
            if kind is str:
                seen_strings.add(item)
            elif kind is bool:
                seen_booleans.add(item)
            elif kind is int or kind is float:
                seen_numbers.add(item)
            elif item is None:
                seen_null = True
            elif isinstance(item, str):
                seen_strings.add(str(item))
            elif _is_number(item):
                seen_numbers.add(item)
            elif isinstance(item, list) and items is container:
                sublists.append(item)
        if strings <= seen_strings and numbers <= seen_numbers and booleans <= seen_booleans and (seen_null or not null):
            return True
        if not sublists:
            return False
    return False


def _needs(kind: str, value: Any, key: str, lookup: str) -> QueryError:
    if value is None:
        return QueryError(f"lookup {lookup!r} needs {kind}, not null (use isnull)", key, lookup)
    return QueryError(f"lookup {lookup!r} needs {kind}", key, lookup)


# ---------------------------------------------------------------- lookups
# Each builder takes (get, value, key, lookup), validates value and returns
# the check. Checks never raise: every operation is guarded by a type test.

Getter = Callable[[Any], Any]


def _isnull(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if not isinstance(value, bool):
        raise _needs("true or false", value, key, lookup)
    if value:
        return lambda data: get(data) is None
    return lambda data: get(data) is not None


def _exact(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if value is None:  # Django: exact None is isnull True.
        return lambda data: get(data) is None
    if isinstance(value, bool):
        return lambda data: get(data) is value
    if isinstance(value, str):
        return lambda data: get(data) == value
    if _is_number(value):

        def equal_number(data: Any) -> bool:
            found = get(data)
            return found == value and found.__class__ is not bool and not isinstance(found, str)

        return equal_number
    work.used = True
    equal = _equality(value, work)
    return lambda data: equal(get(data))


def _iexact(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if isinstance(value, str):
        folded = value.casefold()

        def equal_folded(data: Any) -> bool:
            found = get(data)
            # Case folding never shortens a string: a longer one cannot be equal (and is not folded).
            return isinstance(found, str) and len(found) <= len(folded) and found.casefold() == folded

        return equal_folded
    if isinstance(value, (list, tuple, Mapping)):
        raise _needs("a string", value, key, lookup)
    return _exact(get, value, key, lookup, work)  # numbers, booleans and None: as exact


def _in(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if not isinstance(value, (list, tuple)):
        raise _needs("a list", value, key, lookup)
    if len(value) > MAX_IN_ITEMS:
        raise QueryError(f"lookup 'in' list too long (max {MAX_IN_ITEMS} items)", key, lookup)
    # Django drops None from the list: NULL is never IN anything.
    strings = frozenset(v for v in value if isinstance(v, str))
    numbers = frozenset(v for v in value if _is_number(v))
    booleans = frozenset(v for v in value if isinstance(v, bool))
    others = tuple(_equality(v, work) for v in value if isinstance(v, (list, tuple, Mapping)))
    if others:
        work.used = True

    def is_in(data: Any) -> bool:
        found = get(data)
        if isinstance(found, str):
            return found in strings
        if isinstance(found, bool):
            return found in booleans
        if isinstance(found, (int, float)):
            return found in numbers
        if found is None or not others:
            return False
        return any(equal(found) for equal in others)

    return is_in


def _comparison(compare: Callable[[Any, Any], bool]) -> Callable[[Getter, Any, str, str, _Work], Predicate]:
    def build(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
        if isinstance(value, str):

            def compare_strings(data: Any) -> bool:
                found = get(data)
                return isinstance(found, str) and compare(found, value)

            return compare_strings
        if _is_number(value):

            def compare_numbers(data: Any) -> bool:
                found = get(data)
                return isinstance(found, (int, float)) and found.__class__ is not bool and compare(found, value)

            return compare_numbers
        raise _needs("a number or a string", value, key, lookup)

    return build


def _range(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise QueryError("lookup 'range' needs a list of two values", key, lookup)
    low, high = value
    if isinstance(low, str) and isinstance(high, str):

        def between_strings(data: Any) -> bool:
            found = get(data)
            return isinstance(found, str) and low <= found <= high

        return between_strings
    if _is_number(low) and _is_number(high):

        def between_numbers(data: Any) -> bool:
            found = get(data)
            return isinstance(found, (int, float)) and found.__class__ is not bool and low <= found <= high

        return between_numbers
    raise QueryError("lookup 'range' needs two numbers or two strings", key, lookup)


def _contains(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
    if value is None:
        raise _needs("a value", value, key, lookup)
    work.used = True
    holds = _holder(value, work)
    free = _FREE_CHARS
    if isinstance(value, str):

        def contains_text(data: Any) -> bool:
            found = get(data)
            if isinstance(found, str):
                if len(found) > free:
                    work.read(found)
                return value in found
            return isinstance(found, list) and holds(found)

        return contains_text
    return lambda data: holds(get(data))


def _string_lookup(test: Callable[[str, str], bool], fold: bool) -> Callable[[Getter, Any, str, str, _Work], Predicate]:
    def build(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
        if not isinstance(value, str):
            raise _needs("a string", value, key, lookup)
        if fold:
            folded = value.casefold()
            size = len(folded)
            free = _FREE_CHARS
            # Case folding maps each character on its own to one or more:
            # the first (last) len(folded) characters decide a prefix (suffix).
            if test is str.startswith:

                def starts_folded(data: Any) -> bool:
                    found = get(data)
                    if not isinstance(found, str):
                        return False
                    if len(found) > free:
                        found = found[:size]
                    return found.casefold().startswith(folded)

                return starts_folded
            if test is str.endswith:

                def ends_folded(data: Any) -> bool:
                    found = get(data)
                    if not isinstance(found, str):
                        return False
                    if len(found) > free:
                        found = found[max(0, len(found) - size) :]
                    return found.casefold().endswith(folded)

                return ends_folded
            work.used = True

            def test_folded(data: Any) -> bool:
                found = get(data)
                if not isinstance(found, str):
                    return False
                if len(found) > free:
                    work.read(found)
                return test(found.casefold(), folded)

            return test_folded

        def test_plain(data: Any) -> bool:
            found = get(data)
            return isinstance(found, str) and test(found, value)

        return test_plain

    return build


def _regex(ignore_case: bool) -> Callable[[Getter, Any, str, str, _Work], Predicate]:
    def build(get: Getter, value: Any, key: str, lookup: str, work: _Work) -> Predicate:
        if not isinstance(value, str):
            raise _needs("a string", value, key, lookup)
        search = _compile_regex(value, ignore_case, key, lookup)
        if regex_engine() == "re2":
            work.used = True
            free = _FREE_CHARS

            def matches(data: Any) -> bool:
                found = get(data)
                if not isinstance(found, str):
                    return False
                if len(found) > free:
                    work.read(found)
                return search(found) is not None

            return matches
        limit = REGEX_INPUT_LIMIT

        def matches_bounded(data: Any) -> bool:
            found = get(data)
            return isinstance(found, str) and len(found) <= limit and search(found) is not None

        return matches_bounded

    return build


_BUILDERS: dict[str, Callable[[Getter, Any, str, str, _Work], Predicate]] = {
    "exact": _exact,
    "iexact": _iexact,
    "contains": _contains,
    "icontains": _string_lookup(operator.contains, fold=True),
    "in": _in,
    "gt": _comparison(operator.gt),
    "gte": _comparison(operator.ge),
    "lt": _comparison(operator.lt),
    "lte": _comparison(operator.le),
    "startswith": _string_lookup(str.startswith, fold=False),
    "istartswith": _string_lookup(str.startswith, fold=True),
    "endswith": _string_lookup(str.endswith, fold=False),
    "iendswith": _string_lookup(str.endswith, fold=True),
    "range": _range,
    "isnull": _isnull,
    "regex": _regex(ignore_case=False),
    "iregex": _regex(ignore_case=True),
}


# ---------------------------------------------------------------- regex safety


def _compile_regex(pattern: str, ignore_case: bool, key: str, lookup: str) -> Callable[[str], Any]:
    """Compile a regex lookup's pattern with the engine in use; return its ``search``."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise QueryError(f"regex too long (max {MAX_REGEX_LENGTH} characters)", key, lookup)
    if regex_engine() == "re2":
        options = _re2.Options()
        options.log_errors = False  # the refusal goes to the peer, not to stderr
        options.case_sensitive = not ignore_case
        try:
            compiled = _re2.compile(pattern, options)
        except _re2.error as exc:
            detail = exc.args[0] if exc.args else ""
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise QueryError(f"invalid regex ({detail})", key, lookup) from None
        search: Callable[[str], Any] = compiled.search
        return search
    try:
        tree = _sre_parse.parse(pattern)
        compiled_re = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except (re.error, RecursionError, OverflowError) as exc:
        raise QueryError(f"invalid regex ({exc})", key, lookup) from None
    choice_points = [0]
    cost = _backtracking_cost(tree, REGEX_INPUT_LIMIT, False, choice_points, key, lookup)
    if not _anchored(tree):
        cost *= REGEX_INPUT_LIMIT + 1  # search tries every start position
    # Each path costs about one step per choice point it passes.
    if cost * (choice_points[0] + 1) > REGEX_BUDGET:
        raise QueryError("regex too complex without google-re2", key, lookup)
    return compiled_re.search


_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _backtracking_cost(items: Any, length: int, repeated: bool, choice_points: list[int], key: str, lookup: str) -> int:
    """Estimate the paths a backtracking search explores from one start position.

    A sequence multiplies its items' choices; an alternation adds its
    branches'; a repeat offers one choice per count. Repeats and
    alternations inside a repeated group (``(a+)+``, ``(a|aa)*``: the
    exponential cases) are refused outright, as are backreferences and
    lookaround, which google-re2 lacks as well. Adds the repeats of
    variable count and the alternations met to ``choice_points[0]``.
    """
    cap = REGEX_BUDGET + 1
    cost = 1
    for op, arg in items:
        name = str(op)
        if name.startswith("GROUPREF"):
            raise QueryError("backreferences are not allowed in a regex", key, lookup)
        if name in ("ASSERT", "ASSERT_NOT"):
            raise QueryError("lookaround is not allowed in a regex", key, lookup)
        if name in _REPEATS:
            low, high, body = arg
            if repeated and high != low:
                raise QueryError("nested quantifiers are not allowed in a regex", key, lookup)
            high = min(high, length)
            choice_points[0] += high != low
            inner = _backtracking_cost(body, length, repeated or high > 1, choice_points, key, lookup)
            cost *= max(high - low + 1, 1) * inner
        elif name == "BRANCH":
            if repeated:
                raise QueryError("alternation inside a repeated group is not allowed in a regex", key, lookup)
            choice_points[0] += 1
            cost *= sum(_backtracking_cost(branch, length, repeated, choice_points, key, lookup) for branch in arg[1])
        elif name == "SUBPATTERN":
            cost *= _backtracking_cost(arg[-1], length, repeated, choice_points, key, lookup)
        elif name == "ATOMIC_GROUP":
            cost *= _backtracking_cost(arg, length, repeated, choice_points, key, lookup)
        cost = min(cost, cap)
    return cost


def _anchored(tree: Any) -> bool:
    """Whether the pattern can only match at the start (``^`` or ``\\A`` first, not MULTILINE)."""
    items = list(tree)
    if not items or str(items[0][0]) != "AT":
        return False
    where = str(items[0][1])
    return where == "AT_BEGINNING_STRING" or (where == "AT_BEGINNING" and not tree.state.flags & re.MULTILINE)
