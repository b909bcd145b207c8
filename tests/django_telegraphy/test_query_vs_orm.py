"""The gateway's filters (:mod:`telegraphy.query`) select what Django's ORM selects on the same rows in SQLite.

Hypothesis generates rows (JSON objects, keys sometimes missing) and filters
over them; each row is also stored in a table of typed columns (CharField,
IntegerField, FloatField, all nullable, and a JSONField for nested data), and
the ids ``compile_filter`` accepts must be the ids the ORM returns.

Where SQLite and the language knowingly differ, the generators stay on the
common ground, and docs/filters.md says why:

- SQLite's LIKE (Django's contains, startswith, endswith and the i- lookups)
  folds ASCII case only, and by default ignores case even for the
  case-sensitive lookups. The strings use an alphabet whose only cased
  letters are ASCII pairs plus a lone lowercase ``é``, and each condition is
  asked of the ORM with ``PRAGMA case_sensitive_like`` set for its lookup.
- Django's JSONField tells JSON ``null`` from a missing key; events do not.
  Nested values are never JSON ``null`` and nested keys are not compared
  with ``None``.
- ``.exclude()`` on a JSON key keeps no row where the key is missing (SQL's
  three-valued logic); the language keeps them, as Django does for a NULL
  column. The expected ids are therefore built per condition
  (``filter`` sets intersected, minus the intersection of the ``exclude``
  sets), and the whole ``.filter().exclude()`` query is compared as well
  when no excluded condition is on a JSON key.
- Django has no ``range`` for JSON keys (it compares the key's value with
  the bounds' JSON text on SQLite), so nested keys are not given ``range``.
- Typed columns coerce values (``priority__gt="3"``); the language does not,
  so values are generated with each field's type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telegraphy.query import compile_filter

with isolate_apps("telegraphy_testapp"):  # kept out of the app registry the other tests see

    class QueryRow(models.Model):
        """One event's data as a row: typed nullable columns and a JSON column."""

        status = models.CharField(max_length=20, null=True)
        title = models.CharField(max_length=20, null=True)
        priority = models.IntegerField(null=True)
        score = models.FloatField(null=True)
        customer = models.JSONField(null=True)

        class Meta:
            app_label = "testapp"


COLUMNS = ("status", "title", "priority", "score", "customer")
# ASCII letters in both cases; 'é' only in lower case (SQLite folds ASCII only);
# LIKE's wildcards and escape character, which must be taken literally.
ALPHABET = "aAbé%_\\ "
CASE_SENSITIVE_LIKE = {"contains", "startswith", "endswith"}
CASE_INSENSITIVE_LIKE = {"iexact", "icontains", "istartswith", "iendswith"}

texts = st.text(ALPHABET, max_size=3)
ints = st.integers(-3, 3)
floats = st.sampled_from([-1.5, 0.0, 0.5, 2.0]) | st.floats(-4, 4, allow_nan=False, allow_infinity=False) | ints


@st.composite
def some_keys(draw: st.DrawFn, strategies: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """An object with these keys, now and then one or two of them missing."""
    values = {key: draw(strategy) for key, strategy in strategies.items()}
    for key in draw(st.sets(st.sampled_from(sorted(values)), max_size=2)) if draw(st.booleans()) else ():
        del values[key]
    return values


customers = some_keys({"city": texts, "tier": ints, "vip": st.booleans(), "address": some_keys({"zip": texts})})
rows = some_keys(
    {
        "status": st.none() | texts,
        "title": st.none() | texts,
        "priority": st.none() | ints,
        "score": st.none() | floats,
        "customer": customers | customers | st.none(),
    }
)

# Literal atoms that mean the same to re, re2 and SQLite's REGEXP (Python's re).
REGEX_ATOMS = ["a", "A", "b", "é", "%", "_", "[ ]", r"\\", ".", "[ab]", "[^a]"]


@st.composite
def patterns(draw: st.DrawFn, seen: list[str]) -> str:
    """A small regex: optional anchors, a few atoms (often a value's characters), at most one quantifier."""
    atoms = draw(st.lists(st.sampled_from(REGEX_ATOMS), min_size=1, max_size=3))
    if seen and draw(st.booleans()):
        atoms = [f"[{c}]" if c != "\\" else r"\\" for c in draw(st.sampled_from(seen))] or atoms
    if draw(st.booleans()):
        where = draw(st.integers(0, len(atoms) - 1))
        atoms[where] += draw(st.sampled_from(["*", "+", "?"]))
    return draw(st.sampled_from(["", "^"])) + "".join(atoms) + draw(st.sampled_from(["", "$"]))


STRING_FIELDS = ["status", "title", "customer__city", "customer__address__zip"]
INT_FIELDS = ["priority", "customer__tier"]
FLOAT_FIELDS = ["score"]
BOOL_FIELDS = ["customer__vip"]


def swap_ascii_case(text: str) -> str:
    """Swap the case of ASCII letters only (SQLite folds no other)."""
    return "".join(c.swapcase() if c.isascii() else c for c in text)


def values_at(data: list[dict[str, Any]], field: str) -> list[Any]:
    """The values the rows hold at ``field`` (a ``__`` path), nulls and missing keys left out."""
    found = []
    for row in data:
        node: Any = row
        for part in field.split("__"):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append(node)
    return found


@st.composite
def conditions(draw: st.DrawFn, data: list[dict[str, Any]]) -> tuple[str, Any]:
    """One ``key__lookup: value`` condition with a value of the field's type, often one the rows hold."""
    field = draw(st.sampled_from(STRING_FIELDS + INT_FIELDS + FLOAT_FIELDS + BOOL_FIELDS))
    nested = "__" in field
    seen = values_at(data, field)
    if field in BOOL_FIELDS:
        lookup = draw(st.sampled_from(["exact", "isnull"]))
        return f"{field}__{lookup}", draw(st.booleans())
    if field in STRING_FIELDS:
        lookups = ["exact", "iexact", "icontains", "in", "gt", "gte", "lt", "lte", "range", "isnull",
                   "startswith", "istartswith", "endswith", "iendswith", "regex", "iregex"]  # fmt: skip
        if not nested:
            lookups.append("contains")  # on a JSON key Django's contains is JSON containment (not on SQLite)
        base: st.SearchStrategy[Any] = texts
    else:
        lookups = ["exact", "in", "gt", "gte", "lt", "lte", "range", "isnull"]
        base = ints if field in INT_FIELDS else floats
    if nested:  # Django has no range for JSON keys: it compares with JSON text on SQLite
        lookups.remove("range")
    scalar = st.sampled_from(seen) | base if seen else base
    if field in STRING_FIELDS and seen:  # pieces of values the rows hold, for contains, startswith, ...
        scalar = scalar | st.sampled_from(seen).flatmap(
            lambda s: st.tuples(st.integers(0, len(s)), st.integers(0, len(s))).map(lambda ij: s[min(ij) : max(ij)])
        )
        scalar = scalar | scalar.map(swap_ascii_case)
    lookup = draw(st.sampled_from(lookups))
    if lookup == "isnull":
        value: Any = draw(st.booleans())
    elif lookup in ("regex", "iregex"):
        value = draw(patterns(seen))
    elif lookup == "in":
        value = draw(st.lists(scalar if nested else st.none() | scalar, max_size=3))
    elif lookup == "range":
        value = draw(st.lists(scalar, min_size=2, max_size=2))
    elif lookup in ("exact", "iexact") and not nested:
        value = draw(st.none() | scalar)
    else:
        value = draw(scalar)
    return f"{field}__{lookup}", value


@pytest.fixture(scope="module")
def query_table(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Create QueryRow's table for this module and drop it afterwards."""
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            editor.create_model(QueryRow)
        try:
            yield
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(QueryRow)


@contextlib.contextmanager
def like_case(sensitive: bool) -> Iterator[None]:
    """Run ORM queries with SQLite's LIKE case-sensitive (or not, its default)."""
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA case_sensitive_like = {'ON' if sensitive else 'OFF'}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA case_sensitive_like = OFF")


def lookup_of(key: str) -> str:
    """The lookup part of a generated key."""
    return key.rsplit("__", 1)[1]


def orm_ids(**condition: Any) -> set[int]:
    """Ids of the rows the ORM's ``.filter(**condition)`` returns, LIKE's case set for the lookup."""
    with like_case(any(lookup_of(key) in CASE_SENSITIVE_LIKE for key in condition)):
        return set(QueryRow.objects.filter(**condition).values_list("id", flat=True))


def store(data: list[dict[str, Any]]) -> None:
    """Replace the table's rows with ``data`` (ids 1, 2, …)."""
    QueryRow.objects.all().delete()
    QueryRow.objects.bulk_create(QueryRow(id=i, **{c: row.get(c) for c in COLUMNS}) for i, row in enumerate(data, 1))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_filters_select_what_the_orm_selects(query_table: None, draws: st.DataObject):
    """compile_filter(filter, exclude) accepts exactly the rows Django's ORM selects on SQLite."""
    data = draws.draw(st.lists(rows, min_size=1, max_size=8), label="rows")
    wanted = dict(draws.draw(st.lists(conditions(data), max_size=3), label="filter"))
    unwanted = dict(draws.draw(st.lists(conditions(data), max_size=2), label="exclude"))
    store(data)
    predicate = compile_filter(wanted, unwanted)
    ours = {i for i, row in enumerate(data, 1) if predicate(row)}

    def selected(conditions: dict[str, Any]) -> list[set[int]]:
        """What the ORM selects for each condition alone (checked against the language on every row)."""
        found = []
        for key, value in conditions.items():
            single = compile_filter({key: value})
            ids = orm_ids(**{key: value})
            assert {i for i, row in enumerate(data, 1) if single(row)} == ids, key
            found.append(ids)
        return found

    # The filter and the exclude may hold the same key with different values: keep them apart.
    everything = set(range(1, len(data) + 1))
    expected = everything.intersection(*selected(wanted))
    if unwanted:
        expected -= everything.intersection(*selected(unwanted))
    assert ours == expected

    lookups = {lookup_of(key) for key in [*wanted, *unwanted]}
    one_like_case = not (lookups & CASE_SENSITIVE_LIKE and lookups & CASE_INSENSITIVE_LIKE)
    if one_like_case and not any(key.startswith("customer__") for key in unwanted):
        with like_case(bool(lookups & CASE_SENSITIVE_LIKE)):
            queryset = QueryRow.objects.filter(**wanted)
            if unwanted:
                queryset = queryset.exclude(**unwanted)
            assert ours == set(queryset.values_list("id", flat=True))


def test_orm_exclude_on_a_missing_json_key_differs(query_table: None):
    """Documented difference: Django's exclude drops rows missing the JSON key; the language keeps them."""
    stored = ({"customer": {"city": "a"}}, {"customer": {}}, {"status": "x"})
    store(list(stored))
    assert set(QueryRow.objects.exclude(customer__city="a").values_list("id", flat=True)) == {3}
    predicate = compile_filter(None, {"customer__city": "a"})
    assert [predicate(row) for row in stored] == [False, True, True]


def test_orm_contains_ignores_case_on_sqlite(query_table: None):
    """Documented difference: on SQLite Django's contains ignores ASCII case; the language's contains does not."""
    store([{"title": "Abc"}])
    assert QueryRow.objects.filter(title__contains="abc").count() == 1
    assert not compile_filter({"title__contains": "abc"})({"title": "Abc"})
    with like_case(True):
        assert QueryRow.objects.filter(title__contains="abc").count() == 0


def test_orm_folds_ascii_case_only_on_sqlite(query_table: None):
    """Documented difference: SQLite's LIKE folds ASCII only; the language folds Unicode case."""
    store([{"title": "ÉTÉ"}])
    assert QueryRow.objects.filter(title__iexact="été").count() == 0
    assert compile_filter({"title__iexact": "été"})({"title": "ÉTÉ"})
