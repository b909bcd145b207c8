"""The event query language (:mod:`telegraphy.query`): lookups, keys, exclude, NULLs, limits and errors."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telegraphy import query
from telegraphy.query import LOOKUPS, QueryError, compile_filter

ORDER = {
    "pk": 7,
    "status": "open",
    "title": "Straße Café",
    "priority": 3,
    "score": 2.5,
    "paid": True,
    "note": None,
    "tags": ["red", "green", 3],
    "customer": {"city": "Paris", "address": {"zip": "75001", "lines": ["1 rue", "2e étage"]}, "tier": 2},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
    "created": "2026-11-24T10:00:00.000000Z",
}

NO_RE2 = pytest.mark.skipif(query._re2 is None, reason="google-re2 is not installed")
ENGINES = ["re", pytest.param("re2", marks=NO_RE2)]


def matches(filter: dict[str, Any] | None, data: Any = ORDER, exclude: dict[str, Any] | None = None) -> bool:
    """Compile and evaluate in one go."""
    return compile_filter(filter, exclude)(data)


def error(filter: dict[str, Any] | None, exclude: dict[str, Any] | None = None) -> QueryError:
    """Return the QueryError that compiling raises."""
    with pytest.raises(QueryError) as info:
        compile_filter(filter, exclude)
    return info.value


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with the checked re fallback and once with google-re2 (when installed)."""
    monkeypatch.setattr(query, "USE_RE2", request.param == "re2")
    assert query.regex_engine() == request.param
    return str(request.param)


# ---------------------------------------------------------------- the whole filter


def test_no_filter_accepts_everything():
    """None or {} for both filter and exclude accept any data, even non-objects."""
    for data in (ORDER, {}, None, 3, "x", []):
        assert compile_filter(None)(data) is True
        assert compile_filter({}, {})(data) is True


def test_filter_is_the_and_of_its_conditions():
    """Every condition must hold."""
    assert matches({"status": "open", "priority__gte": 3})
    assert not matches({"status": "open", "priority__gte": 4})
    assert not matches({"status": "closed", "priority__gte": 3})


def test_exclude_removes_what_matches_all_its_conditions():
    """exclude drops data matching every one of its conditions, like one Django .exclude(**kw)."""
    assert not matches(None, exclude={"status": "open"})
    assert matches(None, exclude={"status": "closed"})
    assert matches(None, exclude={"status": "open", "priority": 4})  # NOT (a AND b)
    assert not matches(None, exclude={"status": "open", "priority": 3})


def test_filter_and_exclude_together():
    """filter then exclude: the data must match the filter and not the exclusion."""
    assert matches({"status": "open"}, exclude={"customer__city": "Lyon"})
    assert not matches({"status": "open"}, exclude={"customer__city": "Paris"})
    assert not matches({"status": "closed"}, exclude={"customer__city": "Lyon"})


def test_exclude_keeps_data_where_the_key_is_missing():
    """A condition on a missing key is false, so exclude keeps that data (Django does for NULL columns)."""
    assert matches(None, {"status": "open"}, exclude={"priority__gt": 1})
    assert matches(None, {"status": "open"}, exclude={"customer__city": "Paris"})


def test_predicate_result_is_a_bool():
    """Predicates return True or False, never a truthy value."""
    for spec in ({"status": "open"}, {"tags__contains": "red"}, {"title__regex": "Caf"}, {"priority__in": [3]}):
        assert compile_filter(spec)(ORDER) is True
        assert compile_filter(None, spec)(ORDER) is False


def test_conditions_short_circuit_in_order():
    """A later condition is not evaluated when an earlier one is false (cheap conditions first pay off)."""
    calls = []

    class Spy(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            calls.append(key)
            return super().get(key, default)

    compile_filter({"a": 1, "b": 2, "c": 3, "d": 4})(Spy(a=0, b=2, c=3, d=4))
    assert calls == ["a"]


# ---------------------------------------------------------------- keys and nesting


def test_nested_keys_traverse_objects():
    """customer__address__zip reads data['customer']['address']['zip']."""
    assert matches({"customer__address__zip": "75001"})
    assert matches({"customer__address__zip__startswith": "75"})
    assert not matches({"customer__address__zip": "75002"})


def test_digit_parts_index_lists():
    """A part made of digits indexes a list: items__0__sku."""
    assert matches({"items__0__sku": "A1", "items__1__qty__lt": 2, "customer__address__lines__1__icontains": "ÉTAGE"})
    assert matches({"items__5__sku__isnull": True})


def test_digit_parts_are_keys_of_objects():
    """On an object, a digit part is a key ('0'), as in Django's JSONField."""
    assert matches({"m__0": "zero"}, {"m": {"0": "zero"}})


def test_paths_through_non_objects_are_null():
    """Walking into a string, a number or null gives NULL, never an error."""
    for key in ("status__x", "priority__x", "note__x", "tags__x", "customer__city__x__y"):
        assert matches({f"{key}__isnull": True}), key
        assert not matches({key: "x"}), key


def test_a_mapping_that_is_not_a_dict_is_traversed():
    """Any Mapping works as data, not only dict."""
    from types import MappingProxyType

    data = MappingProxyType({"customer": MappingProxyType({"city": "Paris"})})
    assert matches({"customer__city": "Paris"}, data)


def test_the_last_part_is_the_lookup_only_if_it_is_one():
    """customer__city is a key path with exact; customer__city__exact says the same."""
    assert matches({"customer__city": "Paris"})
    assert matches({"customer__city__exact": "Paris"})


def test_a_key_named_like_a_lookup_is_reached_with_exact():
    """{'in': 1} is reached with in__exact; a single-part key is always a key."""
    data = {"in": 1, "range": {"gt": 2}, "gtx": 5}
    assert matches({"in": 1}, data)
    assert matches({"in__exact": 1}, data)
    assert matches({"range__gt__exact": 2}, data)
    assert matches({"gtx__exact": 5}, {"a": 0, **data})


def test_unknown_last_parts_far_from_lookups_are_keys():
    """A last part that is no typo of a lookup is a key (date, city, name, info, min, pin, lat)."""
    data = {"m": {"date": "2026", "city": "X", "name": "n", "info": "i", "year": 1, "min": 0, "pin": 1, "lat": 2.5}}
    assert matches({"m__date": "2026", "m__city": "X", "m__name": "n", "m__info": "i", "m__year": 1}, data)
    assert matches({"m__min": 0, "m__pin": 1, "m__lat": 2.5}, data)


# ---------------------------------------------------------------- NULL and missing


def test_exact_none_is_isnull_true():
    """exact None (and iexact None) match null and missing keys, as isnull True does."""
    for lookup in ("", "__exact", "__iexact"):
        assert matches({f"note{lookup}": None})
        assert matches({f"missing{lookup}": None})
        assert matches({f"customer__nothing{lookup}": None})
        assert not matches({f"status{lookup}": None})


def test_isnull():
    """isnull True: null or missing; isnull False: present and not null (false and 0 are not null)."""
    assert matches({"note__isnull": True, "missing__isnull": True, "status__isnull": False})
    assert not matches({"note__isnull": False})
    assert not matches({"missing__isnull": False})
    assert matches({"a__isnull": False, "b__isnull": False, "c__isnull": False}, {"a": False, "b": 0, "c": ""})


@pytest.mark.parametrize(
    "lookup, value",
    [("exact", "x"), ("iexact", "x"), ("contains", "x"), ("icontains", "x"), ("in", ["x"]), ("gt", 0), ("gte", 0),
     ("lt", 0), ("lte", 0), ("startswith", ""), ("istartswith", ""), ("endswith", ""), ("iendswith", ""),
     ("range", [0, 1]), ("regex", ""), ("iregex", "")],
)  # fmt: skip
def test_comparisons_with_null_are_false(lookup: str, value: Any):
    """Every lookup but isnull (and exact None) is false on null and on a missing key."""
    assert not matches({f"note__{lookup}": value})
    assert not matches({f"missing__{lookup}": value})
    assert matches(None, exclude={f"note__{lookup}": value})


def test_in_never_matches_null():
    """None inside an 'in' list matches nothing (Django drops it)."""
    assert not matches({"note__in": [None]})
    assert not matches({"missing__in": [None, "x"]})
    assert matches({"status__in": [None, "open"]})


# ---------------------------------------------------------------- each lookup


def test_exact_strings_are_case_sensitive():
    """exact compares strings as they are."""
    assert matches({"status": "open"})
    assert not matches({"status": "Open"})


def test_exact_numbers_int_and_float_alike():
    """3 == 3.0 and 2.5 == 2.5; a numeric string is not a number."""
    assert matches({"priority": 3.0, "score": 2.5})
    assert not matches({"priority": "3"})
    assert not matches({"status": 0})


def test_booleans_are_not_numbers():
    """true equals only true: not 1, and 1 does not equal true."""
    assert matches({"paid": True})
    assert not matches({"paid": 1})
    assert not matches({"paid": False})
    assert not matches({"n": True}, {"n": 1})
    assert not matches({"n": 1}, {"n": True})
    assert not matches({"n__in": [1]}, {"n": True})
    assert not matches({"n__in": [True]}, {"n": 1})
    assert not matches({"n__gt": 0}, {"n": True})


def test_exact_lists_and_objects_compare_deeply():
    """exact with a list or an object is JSON equality."""
    assert matches({"tags": ["red", "green", 3]})
    assert not matches({"tags": ["red", "green"]})
    assert matches({"customer__address": {"zip": "75001", "lines": ["1 rue", "2e étage"]}})
    assert not matches({"t": [1]}, {"t": [True]})
    assert matches({"t": [1.0, {"a": None}]}, {"t": [1, {"a": None}]})


def test_iexact_folds_case():
    """iexact compares casefolded strings, Unicode included (ß ≡ ss)."""
    assert matches({"status__iexact": "OPEN"})
    assert matches({"title__iexact": "STRASSE CAFÉ"})
    assert not matches({"status__iexact": "ope"})


def test_iexact_on_numbers_is_exact():
    """iexact with a number or boolean compares as exact does."""
    assert matches({"priority__iexact": 3, "paid__iexact": True})
    assert not matches({"priority__iexact": "3"})


def test_contains_on_strings_is_a_substring_test():
    """contains: case-sensitive substring."""
    assert matches({"title__contains": "aße"})
    assert not matches({"title__contains": "ASSE"})
    assert not matches({"priority__contains": "3"})


def test_icontains_folds_case():
    """icontains: casefolded substring."""
    assert matches({"title__icontains": "STRASSE"})
    assert matches({"title__icontains": "café"})
    assert not matches({"title__icontains": "cafe"})


def test_contains_on_lists_tests_membership_or_subset():
    """contains on a list: a scalar is an element; a list is a subset (PostgreSQL jsonb @>)."""
    assert matches({"tags__contains": "red"})
    assert not matches({"tags__contains": "re"})  # elements compare whole
    assert matches({"tags__contains": 3})
    assert matches({"tags__contains": ["green", "red"]})
    assert not matches({"tags__contains": ["red", "blue"]})
    assert matches({"items__contains": [{"sku": "B2"}]})
    assert matches({"tags__contains": []})


def test_contains_on_objects_tests_sub_objects():
    """contains on an object: every given key is there with a containing value (jsonb @>)."""
    assert matches({"customer__contains": {"city": "Paris"}})
    assert matches({"customer__contains": {"address": {"zip": "75001"}}})
    assert not matches({"customer__contains": {"city": "Lyon"}})
    assert not matches({"customer__contains": "Paris"})


def test_in():
    """in: equality with any element, strings, numbers and JSON values."""
    assert matches({"status__in": ["closed", "open"], "priority__in": [1, 3.0], "paid__in": [True]})
    assert not matches({"status__in": ["closed"]})
    assert matches({"customer__address__lines__in": [["1 rue", "2e étage"]]})
    assert not matches({"status__in": []})
    assert matches(None, exclude={"status__in": []})


def test_in_accepts_tuples():
    """A tuple is a list for 'in' and 'range' (Python callers)."""
    assert matches({"status__in": ("open",), "priority__range": (1, 3)})


@pytest.mark.parametrize(
    "lookup, low, high, expected",
    [("gt", 2, 3, (True, False)), ("gte", 3, 4, (True, False)),
     ("lt", 4, 3, (True, False)), ("lte", 3, 2, (True, False))],
)
def test_number_comparisons(lookup: str, low: Any, high: Any, expected: tuple[bool, bool]):
    """gt/gte/lt/lte on numbers, int and float mixed."""
    assert (matches({f"priority__{lookup}": low}), matches({f"priority__{lookup}": high})) == expected
    assert matches({f"score__{lookup}": float(low) - 0.5 if lookup.startswith("g") else float(low) + 0.5})


def test_string_comparisons_are_code_point_order():
    """gt/lt on strings compare code points (ISO timestamps order as times)."""
    assert matches({"created__gte": "2026-11-24", "created__lt": "2026-11-25"})
    assert matches({"status__gt": "Open"})  # 'o' > 'O'
    assert not matches({"status__gt": "open"})


def test_type_mismatches_are_false_never_errors():
    """A string compared with a number (and any other mismatch) is false."""
    assert not matches({"status__gt": 3})
    assert not matches({"priority__gt": "a"})
    assert not matches({"tags__gt": 1})
    assert not matches({"customer__lt": "z"})
    assert not matches({"priority__startswith": "3"})
    assert not matches({"priority__regex": "3"})
    assert not matches({"priority__range": ["1", "5"]})
    assert not matches({"title__range": [1, 5]})
    assert matches(None, exclude={"status__gt": 3})


def test_range_is_inclusive():
    """range [low, high] includes both ends, numbers or strings."""
    assert matches({"priority__range": [3, 3], "score__range": [2.5, 10]})
    assert matches({"priority__range": [1.5, 3]})
    assert not matches({"priority__range": [4, 10]})
    assert matches({"status__range": ["a", "open"]})
    assert not matches({"priority__range": [5, 1]})


def test_startswith_endswith():
    """startswith/endswith are case-sensitive; the i- versions fold case."""
    assert matches({"status__startswith": "op", "status__endswith": "en"})
    assert not matches({"status__startswith": "OP"})
    assert matches({"status__istartswith": "OP", "status__iendswith": "EN"})
    assert matches({"title__iendswith": "CAFÉ", "title__istartswith": "strass"})
    assert not matches({"title__endswith": "CAFÉ"})


def test_like_wildcards_are_literal():
    """%, _ and backslash in values are plain characters (Django escapes them)."""
    data = {"s": "50%_off\\"}
    assert matches({"s__contains": "%_", "s__endswith": "\\", "s__istartswith": "50%"}, data)
    assert not matches({"s__contains": "5%"}, {"s": "5x"})
    assert not matches({"s__iexact": "5_"}, {"s": "5x"})


def test_regex(engine: str):
    """regex searches (not full-matches) case-sensitively; iregex ignores case."""
    assert matches({"title__regex": r"^Stra", "customer__city__regex": "ar"})
    assert not matches({"title__regex": r"^stra"})
    assert matches({"title__iregex": r"^STRASSE|^straße"})
    assert matches({"created__regex": r"^\d{4}-\d{2}-\d{2}T"})
    assert matches({"title__iregex": r"CAFÉ$"})


def test_regex_on_long_strings_without_re2(monkeypatch: pytest.MonkeyPatch):
    """With the re fallback, strings longer than REGEX_INPUT_LIMIT never match."""
    monkeypatch.setattr(query, "USE_RE2", False)
    monkeypatch.setattr(query, "REGEX_INPUT_LIMIT", 10)
    predicate = compile_filter({"s__regex": "a"})
    assert predicate({"s": "a" * 10})
    assert not predicate({"s": "a" * 11})


@NO_RE2
def test_regex_on_long_strings_with_re2(monkeypatch: pytest.MonkeyPatch):
    """With google-re2, strings of any length are searched."""
    monkeypatch.setattr(query, "USE_RE2", True)
    monkeypatch.setattr(query, "REGEX_INPUT_LIMIT", 10)
    assert compile_filter({"s__regex": "a$"})({"s": "b" * 100_000 + "a"})


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)*$", r"(a*)*b", r"(x+x+)+y", r"(\w+\s?)*$"])
def test_catastrophic_regexes_are_refused_or_fast(engine: str, pattern: str):
    """Classic catastrophic patterns are refused by the re fallback and run in linear time on re2."""
    if engine == "re":
        assert "not allowed" in str(error({"s__regex": pattern}))
        return
    predicate = compile_filter({"s__regex": pattern})
    start = time.perf_counter()
    assert predicate({"s": "a" * 50_000 + "!"}) in (True, False)
    assert time.perf_counter() - start < 1.0  # generous; backtracking would take ages


def test_re_fallback_refuses_polynomial_blowups(monkeypatch: pytest.MonkeyPatch):
    """Without re2, sequences of unbounded repeats past the budget are refused, simple ones pass."""
    monkeypatch.setattr(query, "USE_RE2", False)
    for pattern in (r".*a.*b.*c", r"\w*\s*\w*x", "a?" * 20 + "a" * 20):
        assert str(error({"s__regex": pattern})) == "regex too complex without google-re2 in 's__regex'"
    for pattern in (r"foo.*bar", r"^\d{4}-\d{2}", r"^(open|closed)$", r"[a-z]+@example\.com$", r"^.*a.*b"):
        compile_filter({"s__regex": pattern})


def test_re_fallback_worst_accepted_case_is_bounded(monkeypatch: pytest.MonkeyPatch):
    """Without re2, an accepted pattern on an adversarial string at the input limit stays well under a second."""
    monkeypatch.setattr(query, "USE_RE2", False)
    predicate = compile_filter({"s__regex": r"\w*?\d"})
    start = time.perf_counter()
    predicate({"s": "a" * query.REGEX_INPUT_LIMIT})
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "spec, message, key, lookup",
    [
        ({"priority__gtx": 1}, "unknown lookup 'gtx' in 'priority__gtx'", "priority__gtx", "gtx"),
        ({"stats__ltv": 1}, "unknown lookup 'ltv' in 'stats__ltv'", "stats__ltv", "ltv"),
        ({"stats__get": 1}, "unknown lookup 'get' in 'stats__get'", "stats__get", "get"),
        ({"status__isnul": True}, "unknown lookup 'isnul' in 'status__isnul'", "status__isnul", "isnul"),
        ({"title__icontain": "a"}, "unknown lookup 'icontain' in 'title__icontain'", "title__icontain", "icontain"),
        ({"title__startwith": "a"}, "unknown lookup 'startwith' in 'title__startwith'", "title__startwith",
         "startwith"),
        ({"tags__has_key": "a"}, "unsupported lookup 'has_key' in 'tags__has_key'", "tags__has_key", "has_key"),
        ({"status__in": "open"}, "lookup 'in' needs a list in 'status__in'", "status__in", "in"),
        ({"status__in": None}, "lookup 'in' needs a list, not null (use isnull) in 'status__in'", "status__in", "in"),
        ({"priority__gt": None}, "lookup 'gt' needs a number or a string, not null (use isnull) in 'priority__gt'",
         "priority__gt", "gt"),
        ({"priority__lte": [1]}, "lookup 'lte' needs a number or a string in 'priority__lte'", "priority__lte", "lte"),
        ({"priority__gte": True}, "lookup 'gte' needs a number or a string in 'priority__gte'", "priority__gte", "gte"),
        ({"status__isnull": "yes"}, "lookup 'isnull' needs true or false in 'status__isnull'", "status__isnull",
         "isnull"),
        ({"status__isnull": 1}, "lookup 'isnull' needs true or false in 'status__isnull'", "status__isnull", "isnull"),
        ({"title__startswith": 3}, "lookup 'startswith' needs a string in 'title__startswith'", "title__startswith",
         "startswith"),
        ({"title__icontains": None}, "lookup 'icontains' needs a string, not null (use isnull) in 'title__icontains'",
         "title__icontains", "icontains"),
        ({"title__iexact": ["a"]}, "lookup 'iexact' needs a string in 'title__iexact'", "title__iexact", "iexact"),
        ({"tags__contains": None}, "lookup 'contains' needs a value, not null (use isnull) in 'tags__contains'",
         "tags__contains", "contains"),
        ({"title__regex": 5}, "lookup 'regex' needs a string in 'title__regex'", "title__regex", "regex"),
        ({"priority__range": [1]}, "lookup 'range' needs a list of two values in 'priority__range'", "priority__range",
         "range"),
        ({"priority__range": 1}, "lookup 'range' needs a list of two values in 'priority__range'", "priority__range",
         "range"),
        ({"priority__range": [1, "z"]}, "lookup 'range' needs two numbers or two strings in 'priority__range'",
         "priority__range", "range"),
        ({"priority__range": [None, 3]}, "lookup 'range' needs two numbers or two strings in 'priority__range'",
         "priority__range", "range"),
        ({"title__regex": "a" * 257}, "regex too long (max 256 characters) in 'title__regex'", "title__regex", "regex"),
        ({"title__regex": "(a"}, "invalid regex (missing ), unterminated subpattern at position 0) in 'title__regex'",
         "title__regex", "regex"),
        ({"a____b": 1}, "empty key part in 'a____b'", "a____b", "exact"),
        ({"__gt": 1}, "empty key part in '__gt'", "__gt", "gt"),
        ({"": 1}, "empty key part in ''", "", "exact"),
        ({"a__": 1}, "empty key part in 'a__'", "a__", "exact"),
        ({"x": {1, 2}}, "unsupported value of type set in 'x'", "x", "exact"),
        ({"x": {"a": object()}}, "unsupported value of type object in 'x'", "x", "exact"),
        ({"x": {1: "a"}}, "object keys in values must be strings in 'x'", "x", "exact"),
        ({"x__gt": math.nan}, "lookup 'gt' needs finite numbers in 'x__gt'", "x__gt", "gt"),
        ({"x__in": [math.inf]}, "lookup 'in' needs finite numbers in 'x__in'", "x__in", "in"),
    ],
)  # fmt: skip
def test_error_messages(spec: dict[str, Any], message: str, key: str, lookup: str, monkeypatch: pytest.MonkeyPatch):
    """Each invalid filter is refused at compile time with a message naming the key and the lookup."""
    monkeypatch.setattr(query, "USE_RE2", False)  # the regex messages are those of re
    exc = error(spec)
    assert (str(exc), exc.key, exc.lookup) == (message, key, lookup)
    assert isinstance(exc, ValueError)
    assert exc.uri == "wamp.error.invalid_argument"
    assert error(None, spec).key == key  # exclude is validated the same way


@pytest.mark.parametrize(
    "pattern, problem",
    [(r"(a)\1", "backreferences are not allowed in a regex"),
     (r"(?P<x>a)(?P=x)", "backreferences are not allowed in a regex"),
     (r"(a)?(?(1)b|c)", "backreferences are not allowed in a regex"),
     (r"a(?=b)", "lookaround is not allowed in a regex"),
     (r"(?<!a)b", "lookaround is not allowed in a regex"), (r"(a+)+", "nested quantifiers are not allowed in a regex"),
     (r"(?:a*b?)*", "nested quantifiers are not allowed in a regex"),
     (r"(ab|cd)+", "alternation inside a repeated group is not allowed in a regex")],
)  # fmt: skip
def test_re_fallback_pattern_errors(pattern: str, problem: str, monkeypatch: pytest.MonkeyPatch):
    """Without re2, unsafe regex constructs are refused with a message saying which."""
    monkeypatch.setattr(query, "USE_RE2", False)
    exc = error({"title__iregex": pattern})
    assert (exc.problem, exc.key, exc.lookup) == (problem, "title__iregex", "iregex")


@NO_RE2
@pytest.mark.parametrize("pattern", [r"(a)\1", r"a(?=b)", r"(?<!a)b", "(a"])
def test_re2_pattern_errors(pattern: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]):
    """With re2, what it cannot compile is refused as an invalid regex, and nothing is logged to stderr."""
    monkeypatch.setattr(query, "USE_RE2", True)
    exc = error({"title__regex": pattern})
    assert str(exc).startswith("invalid regex (") and str(exc).endswith(") in 'title__regex'")
    assert exc.lookup == "regex"
    assert capfd.readouterr().err == ""


def test_whole_filter_errors():
    """A filter or exclude that is not an object, or a non-string key, is refused."""
    assert str(error(["status"])) == "filter must be an object, not list"  # type: ignore[arg-type]
    assert str(error(None, "x")) == "exclude must be an object, not string"  # type: ignore[arg-type]
    exc = error({1: "a"})  # type: ignore[dict-item]
    assert (str(exc), exc.key, exc.lookup) == ("keys must be strings in '1'", "1", None)


def test_too_many_conditions(monkeypatch: pytest.MonkeyPatch):
    """More than MAX_CONDITIONS conditions, filter and exclude together, are refused naming the limit."""
    monkeypatch.setattr(query, "MAX_CONDITIONS", 4)
    compile_filter({"a": 1, "b": 2}, {"c": 3, "d": 4})
    for spec, excl in (({f"k{i}": i for i in range(5)}, None), ({"a": 1, "b": 2, "c": 3}, {"d": 4, "e": 5})):
        exc = error(spec, excl)
        assert (str(exc), exc.key, exc.lookup) == ("too many conditions (max 4)", None, None)


def test_default_limits():
    """The documented defaults."""
    assert (query.MAX_CONDITIONS, query.MAX_DEPTH, query.MAX_IN_ITEMS) == (32, 8, 256)
    assert (query.MAX_VALUE_ITEMS, query.MAX_VALUE_DEPTH) == (1024, 32)
    assert (query.MAX_REGEX_LENGTH, query.REGEX_INPUT_LIMIT, query.REGEX_BUDGET) == (256, 1000, 4_000_000)
    assert (query.MAX_KEY_LENGTH, query.MAX_STRING_LENGTH) == (256, 1024)
    assert (query.MAX_WORK_ITEMS, query.MAX_WORK_CHARS) == (4096, 262_144)


def test_key_too_deep(monkeypatch: pytest.MonkeyPatch):
    """Keys with more than MAX_DEPTH parts (the lookup not counted) are refused naming the limit."""
    monkeypatch.setattr(query, "MAX_DEPTH", 3)
    compile_filter({"a__b__c__gt": 1})
    exc = error({"a__b__c__d__gt": 1})
    assert (str(exc), exc.key, exc.lookup) == ("key too deep (max 3 parts) in 'a__b__c__d__gt'", "a__b__c__d__gt", "gt")


def test_in_list_too_long(monkeypatch: pytest.MonkeyPatch):
    """An 'in' list longer than MAX_IN_ITEMS is refused naming the limit."""
    monkeypatch.setattr(query, "MAX_IN_ITEMS", 3)
    compile_filter({"s__in": [1, 2, 3]})
    assert str(error({"s__in": [1, 2, 3, 4]})) == "lookup 'in' list too long (max 3 items) in 's__in'"


def test_value_too_large(monkeypatch: pytest.MonkeyPatch):
    """A value with more than MAX_VALUE_ITEMS JSON nodes is refused naming the limit."""
    monkeypatch.setattr(query, "MAX_VALUE_ITEMS", 4)
    compile_filter({"s": [1, 2, 3]})
    exc = error({"s__contains": {"a": [1, 2, 3]}})
    assert (str(exc), exc.lookup) == ("value too large (max 4 items) in 's__contains'", "contains")


def test_value_too_deep(monkeypatch: pytest.MonkeyPatch):
    """A value nested deeper than MAX_VALUE_DEPTH is refused naming the limit (and never overflows the stack)."""
    monkeypatch.setattr(query, "MAX_VALUE_DEPTH", 2)
    compile_filter({"s": [[1]]})
    assert str(error({"s": [[[1]]]})) == "value nested too deep (max 2 levels) in 's'"
    monkeypatch.undo()
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert str(error({"s__contains": deep})) == "value nested too deep (max 32 levels) in 's__contains'"


def test_regex_length_limit(monkeypatch: pytest.MonkeyPatch):
    """MAX_REGEX_LENGTH is read at compile time."""
    monkeypatch.setattr(query, "MAX_REGEX_LENGTH", 3)
    compile_filter({"s__regex": "abc"})
    assert str(error({"s__iregex": "abcd"})) == "regex too long (max 3 characters) in 's__iregex'"


def test_every_lookup_is_implemented():
    """LOOKUPS is exactly the issue's list, and each one compiles."""
    assert LOOKUPS == {"exact", "iexact", "contains", "icontains", "in", "gt", "gte", "lt", "lte", "startswith",
                       "istartswith", "endswith", "iendswith", "range", "isnull", "regex", "iregex"}  # fmt: skip
    values = {"in": ["a"], "range": [1, 2], "isnull": True}
    for lookup in LOOKUPS:
        compile_filter({f"k__{lookup}": values.get(lookup, "a")})


# ---------------------------------------------------------------- never raises

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abc"), children, max_size=3),
    max_leaves=8,
)
keys = st.lists(st.sampled_from(["a", "b", "c", "0", "1"]), min_size=1, max_size=3).map("__".join)


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, Any]:
    """A key with a lookup and any JSON value; invalid combinations are filtered by the caller."""
    lookup = draw(st.sampled_from(sorted(LOOKUPS)))
    value = draw(json_values if lookup not in ("regex", "iregex") else st.sampled_from(["a", "^b", "c$", "[ab]+", "."]))
    return f"{draw(keys)}__{lookup}", value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(), max_size=4), st.lists(conditions(), max_size=2), st.lists(json_values, max_size=5))
def test_compiled_predicates_never_raise(include: list[tuple[str, Any]], excl: list[tuple[str, Any]], rows: list[Any]):
    """Whatever filter compiles, evaluating it on any JSON data returns a bool and never raises."""
    try:
        predicate = compile_filter(dict(include), dict(excl))
    except QueryError:
        return
    for row in rows + [{"a": row, "b": {"c": row}} for row in rows]:
        assert predicate(row) in (True, False)


@settings(max_examples=200, deadline=None)
@given(st.lists(conditions(), min_size=1, max_size=3), json_values)
def test_exclude_is_the_negation_of_filter(include: list[tuple[str, Any]], row: Any):
    """A non-empty exclude(**c) accepts exactly what filter(**c) refuses (two-valued logic, NULL included)."""
    try:
        accept = compile_filter(dict(include))
    except QueryError:
        return
    reject = compile_filter(None, dict(include))
    for data in (row, {"a": row}, {"a": {"b": row}}):
        assert accept(data) is not reject(data)


# ---------------------------------------------------------------- bounded work (issue 11, finding 7)


def test_contains_with_a_list_looks_items_up_in_sets(monkeypatch: pytest.MonkeyPatch):
    """contains with a list of scalars does one pass over the event's list, never one comparison per pair of items."""
    calls = [0]
    real = query._json_equal

    def counting(a: Any, b: Any) -> bool:
        calls[0] += 1
        return real(a, b)

    monkeypatch.setattr(query, "_json_equal", counting)
    wanted = list(range(0, 400, 2))
    accepts = compile_filter({"tags__contains": wanted})
    assert accepts({"tags": list(range(2000))})
    assert not accepts({"tags": list(range(1, 2000, 2))})
    assert calls[0] <= 2 * (len(wanted) + 2000)


def test_the_hostile_contains_of_the_issue_does_not_match_an_oversized_list():
    """A 1,000-item contains against a 10,000-item event list (over MAX_WORK_ITEMS) is no match, decided without comparing pairs."""
    accepts = compile_filter({"tags__contains": list(range(1000))})
    assert not accepts({"tags": list(range(10_000))})
    assert accepts({"tags": list(range(query.MAX_WORK_ITEMS - 1))})


def test_contains_keeps_its_meaning_for_nested_lists_and_types():
    """Set lookups keep JSON typing (1 is not true, 1 is 1.0) and find scalars in directly nested lists."""
    assert compile_filter({"a__contains": [1]})({"a": [1.0]})
    assert not compile_filter({"a__contains": [1]})({"a": [True]})
    assert not compile_filter({"a__contains": [True]})({"a": [1]})
    assert not compile_filter({"a__contains": ["1"]})({"a": [1]})
    assert compile_filter({"a__contains": [None, "x"]})({"a": [["x"], None]})
    assert not compile_filter({"a__contains": ["x"]})({"a": [[["x"]]]})
    assert compile_filter({"a__contains": [{"k": [2]}]})({"a": [{"k": [1, 2]}, 3]})


def test_work_over_the_budget_never_matches_filter_nor_exclude(monkeypatch: pytest.MonkeyPatch):
    """An event needing more than MAX_WORK_ITEMS visits fails closed: not accepted by a filter, not let through an exclude."""
    monkeypatch.setattr(query, "MAX_WORK_ITEMS", 50)
    small, large = {"tags": list(range(40))}, {"tags": list(range(60))}
    assert compile_filter({"tags__contains": [3]})(small)
    assert not compile_filter({"tags__contains": [3]})(large)
    assert not compile_filter(None, {"tags__contains": [-1]})(large)
    assert compile_filter(None, {"tags__contains": [-1]})(small)


def test_the_budget_is_per_evaluation(monkeypatch: pytest.MonkeyPatch):
    """The budget is shared by the conditions of one evaluation and starts afresh on the next event."""
    monkeypatch.setattr(query, "MAX_WORK_ITEMS", 50)
    accepts = compile_filter({"a__contains": [1], "b__contains": [1]})
    row = {"a": list(range(20)), "b": list(range(20))}
    assert all(accepts(row) for _ in range(5))
    assert not accepts({"a": list(range(30)), "b": list(range(30))})


def test_nested_wanted_structures_are_counted_per_pass(monkeypatch: pytest.MonkeyPatch):
    """Each wanted object scans the event's list once and is counted: many of them against a long list run out of budget."""
    monkeypatch.setattr(query, "MAX_WORK_ITEMS", 1000)
    wanted = [{"k": i} for i in range(20)]
    event = {"a": [{"k": i} for i in range(100)]}
    assert not compile_filter({"a__contains": wanted})(event)
    assert compile_filter({"a__contains": wanted[:3]})(event)


@pytest.mark.parametrize("lookup", ["contains", "icontains", "regex", "iregex"])
def test_long_event_strings_count_against_the_budget(lookup: str, monkeypatch: pytest.MonkeyPatch):
    """Substring and regex searches read the event's strings against MAX_WORK_CHARS; beyond it, no match."""
    monkeypatch.setattr(query, "MAX_WORK_CHARS", 5000)
    monkeypatch.setattr(query, "USE_RE2", True)
    if query._re2 is None:
        pytest.skip("google-re2 is not installed")
    accepts = compile_filter({"text__" + lookup: "needle"})
    assert accepts({"text": "x" * 4000 + "needle"})
    assert not accepts({"text": "x" * 6000 + "needle"})


def test_case_folded_prefix_and_suffix_read_only_what_they_compare():
    """istartswith/iendswith/iexact fold only as many characters as the value needs, with the same results."""
    text = "ß" + "x" * 1_000_000 + "ß"
    assert compile_filter({"t__istartswith": "SS"})({"t": text})
    assert compile_filter({"t__iendswith": "XSS"})({"t": text})
    assert not compile_filter({"t__iexact": "ss"})({"t": text})
    assert compile_filter({"t__iexact": "SS"})({"t": "ß"})


def test_filter_strings_and_keys_are_bounded(monkeypatch: pytest.MonkeyPatch):
    """Strings in values longer than MAX_STRING_LENGTH and keys longer than MAX_KEY_LENGTH are refused naming the limit."""
    monkeypatch.setattr(query, "MAX_STRING_LENGTH", 5)
    monkeypatch.setattr(query, "MAX_KEY_LENGTH", 10)
    compile_filter({"a__in": ["12345"]})
    exc = error({"a__in": ["123456"]})
    assert (exc.problem, exc.key, exc.lookup) == ("string too long (max 5 characters)", "a__in", "in")
    exc = error({"abcdefghijk": 1})
    assert exc.problem == "key too long (max 10 characters)"
    assert exc.key is not None and len(exc.key) <= 11


def test_exact_and_in_with_lists_keep_json_typing_and_are_counted(monkeypatch: pytest.MonkeyPatch):
    """exact/in with lists or objects tell true from 1 and false from 0, and count the items they walk against MAX_WORK_ITEMS."""
    assert compile_filter({"a": [1, 0]})({"a": [1.0, 0]})
    assert not compile_filter({"a": [1, 0]})({"a": [True, False]})
    assert not compile_filter({"a__in": [[True], ["x"]]})({"a": [1]})
    assert compile_filter({"a__in": [(True,), ["x"]]})({"a": [True]})
    assert compile_filter({"a": {"k": [2, "x"]}})({"a": {"k": [2.0, "x"]}})
    monkeypatch.setattr(query, "MAX_WORK_ITEMS", 100)
    assert compile_filter({"a": [[1]] * 40})({"a": [[1]] * 40})
    assert not compile_filter({"a": [[1]] * 60})({"a": [[1]] * 60})
