"""Turn a model instance into the JSON-ready ``data`` of a Telegraphy event.

Rules, field by field:

- ``pk`` is always included (as ``"pk"``), whatever ``fields`` and ``exclude`` say;
- ``DateTimeField``: ISO 8601 in UTC with ``Z`` (a naive value is taken to be
  in the default time zone); ``DateField`` and ``TimeField``: ISO 8601;
  ``DurationField``: an ISO 8601 duration, as Django's JSON encoder writes it;
- ``DecimalField`` and ``UUIDField``: strings;
- ``ForeignKey`` and ``OneToOneField``: the related primary key under the
  column name (``author_id``), the related object is never loaded;
- ``ManyToManyField``: skipped unless named in ``fields``, then a list of
  primary keys (one query);
- ``FileField`` and ``ImageField``: the file's URL if its storage gives one,
  else its name, ``None`` when empty;
- ``BinaryField``: base64 text; ``JSONField``: as stored.

A model's own ``to_dict()`` method replaces the field rules; its result is
made JSON-ready with the same value rules, and ``pk`` is added if missing.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from django.utils.duration import duration_iso_string

from telegraphy.event import utc_timestamp

__all__ = ["ALL_FIELDS", "instance_data", "json_value", "selected_fields"]

#: ``fields = ALL_FIELDS`` (or ``None``) selects every concrete field.
ALL_FIELDS = "__all__"


def instance_data(
    instance: models.Model,
    fields: Collection[str] | str | None = None,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """Return the event data of ``instance``.

    Args:
        instance: the model instance.
        fields: the field names to include; ``None`` or ``"__all__"`` for
            every concrete field (many-to-many fields only when named).
        exclude: field names to leave out.
    """
    to_dict = getattr(instance, "to_dict", None)
    if callable(to_dict):
        data = json_value(to_dict())
        if not isinstance(data, dict):
            raise TypeError(f"{type(instance).__name__}.to_dict() must return a dict, got {type(data).__name__}")
        data.setdefault("pk", json_value(instance.pk))
        return data

    data: dict[str, Any] = {"pk": json_value(instance.pk)}
    for field in selected_fields(type(instance), fields, exclude):
        if field.many_to_many:
            if instance.pk is None:
                data[field.name] = []  # no rows can point at an unsaved instance
            else:
                manager = getattr(instance, field.name)
                data[field.name] = [json_value(pk) for pk in manager.values_list("pk", flat=True)]
        elif isinstance(field, models.FileField):
            data[field.attname] = _file_value(getattr(instance, field.attname))
        else:
            # value_from_object reads the column: for a foreign key, the id.
            data[field.attname] = json_value(field.value_from_object(instance))
    return data


def selected_fields(
    model: type[models.Model],
    fields: Collection[str] | str | None = None,
    exclude: Collection[str] = (),
) -> list[models.Field[Any, Any]]:
    """Return the fields of ``model`` that ``fields`` and ``exclude`` select, in model order.

    A foreign key may be named by its field name (``author``) or its column
    name (``author_id``). Unknown names are ignored here; the system checks
    report them.
    """
    opts = model._meta
    wanted = None if fields is None or fields == ALL_FIELDS else set(fields)
    excluded = set(exclude)
    chosen = []
    for field in [*opts.concrete_fields, *opts.many_to_many]:
        names = {field.name, field.attname}
        if names & excluded:
            continue
        if wanted is None:
            if field.many_to_many:
                continue
        elif not names & wanted:
            continue
        chosen.append(field)
    return chosen


def json_value(value: Any) -> Any:
    """Return ``value`` as something :func:`json.dumps` accepts, by the rules above.

    Dicts, lists, tuples and sets are converted item by item; a value of an
    unknown type becomes ``str(value)``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.datetime):
        if timezone.is_naive(value):
            # Django stores naive datetimes in the default time zone (TIME_ZONE).
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return utc_timestamp(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, FieldFile):
        return _file_value(value)
    if isinstance(value, models.Model):
        return json_value(value.pk)
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(item) for item in value]
    return str(value)


def _file_value(value: FieldFile | None) -> str | None:
    if not value:
        return None
    try:
        return str(value.url)
    except (NotImplementedError, ValueError, AttributeError):
        # Storages without public URLs raise NotImplementedError.
        return str(value.name)
