"""How each field type appears in the event data."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.utils import timezone

from telegraphy.contrib.django_telegraphy.serialization import instance_data, json_value
from telegraphy_testapp.models import Article, Keyed, Tag


def test_pk_is_always_included():
    """pk is in the data even when fields leaves it out."""
    assert instance_data(Article(pk=9, title="t"), fields=("title",)) == {"pk": 9, "title": "t"}


def test_uuid_primary_key_is_a_string():
    """A UUID pk is serialized as its string form."""
    key = uuid.uuid4()
    assert instance_data(Keyed(pk=key, label="x"))["pk"] == str(key)


def test_plain_values_are_kept():
    """Strings, integers, floats and booleans are as they are."""
    data = instance_data(Article(pk=1, title="t", body="b", count=3, ratio=0.5, flag=True))
    assert (data["title"], data["body"], data["count"], data["ratio"], data["flag"]) == ("t", "b", 3, 0.5, True)


def test_aware_datetime_is_iso_utc_with_z():
    """An aware datetime becomes ISO 8601 in UTC ending with Z."""
    moment = datetime.datetime(2026, 11, 24, 7, 0, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=-3)))
    data = instance_data(Article(pk=1, published_at=moment), fields=("published_at",))
    assert data["published_at"] == "2026-11-24T10:00:00.123456Z"


def test_naive_datetime_is_taken_in_the_default_time_zone():
    """A naive datetime is read in TIME_ZONE (UTC-3 here) and converted to UTC."""
    assert json_value(datetime.datetime(2026, 1, 1, 12, 0)) == "2026-01-01T15:00:00.000000Z"


def test_date_time_and_duration_are_iso():
    """Dates and times are ISO 8601; durations are ISO 8601 durations."""
    article = Article(pk=1, day=datetime.date(2026, 2, 3), at=datetime.time(4, 5, 6), took=datetime.timedelta(hours=1, seconds=2))
    data = instance_data(article, fields=("day", "at", "took"))
    assert data["day"] == "2026-02-03"
    assert data["at"] == "04:05:06"
    assert data["took"] == "P0DT01H00M02S"


def test_decimal_is_a_string():
    """A Decimal keeps its exact digits as a string."""
    data = instance_data(Article(pk=1, price=decimal.Decimal("12.30")), fields=("price",))
    assert data["price"] == "12.30"


def test_uuid_is_a_string():
    """A UUID field is its string form."""
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert instance_data(Article(pk=1, uid=value), fields=("uid",))["uid"] == str(value)


def test_foreign_key_is_the_related_pk_under_the_column_name():
    """A foreign key appears as author_id with the related pk; the object is not loaded."""
    data = instance_data(Article(pk=1, author_id=42), fields=("author",))
    assert data == {"pk": 1, "author_id": 42}
    assert instance_data(Article(pk=1, author_id=None), fields=("author_id",)) == {"pk": 1, "author_id": None}


def test_many_to_many_is_skipped_by_default():
    """A many-to-many field is not in the data unless named."""
    assert "tags" not in instance_data(Article(pk=1, title="t"))


@pytest.mark.django_db
def test_many_to_many_listed_is_a_list_of_pks():
    """A many-to-many field named in fields is the list of related pks."""
    article = Article.objects.create(title="t")
    first, second = Tag.objects.create(name="a"), Tag.objects.create(name="b")
    article.tags.add(first, second)
    assert sorted(instance_data(article, fields=("title", "tags"))["tags"]) == [first.pk, second.pk]


def test_many_to_many_of_an_unsaved_instance_is_empty():
    """An instance without a pk has no related rows yet."""
    assert instance_data(Article(title="t"), fields=("tags",))["tags"] == []


def test_empty_file_is_none():
    """An empty FileField is None."""
    assert instance_data(Article(pk=1), fields=("attachment",))["attachment"] is None


def test_file_is_its_url_when_the_storage_has_one(tmp_path):
    """A stored file is the URL its storage gives."""
    storage = FileSystemStorage(location=tmp_path, base_url="/media/")
    article = Article(pk=1)
    article.attachment.storage = storage
    article.attachment.save("report.txt", ContentFile(b"data"), save=False)
    assert instance_data(article, fields=("attachment",))["attachment"] == "/media/files/report.txt"


def test_file_is_its_name_when_the_storage_has_no_url():
    """A storage without URLs gives the file's name."""

    class NoUrlStorage(Storage):
        def url(self, name):
            raise NotImplementedError

    article = Article(pk=1, attachment="files/report.txt")
    article.attachment.storage = NoUrlStorage()
    assert instance_data(article, fields=("attachment",))["attachment"] == "files/report.txt"


def test_json_field_is_as_stored():
    """A JSONField's value is passed through."""
    value = {"a": [1, 2, {"b": None}], "c": "d"}
    assert instance_data(Article(pk=1, extra=value), fields=("extra",))["extra"] == value


def test_binary_field_is_base64():
    """A BinaryField is base64 text."""
    assert instance_data(Article(pk=1, blob=b"\x00\xff"), fields=("blob",))["blob"] == "AP8="


@pytest.mark.django_db
def test_the_whole_article_is_json_serializable():
    """Every field of a saved instance serializes to JSON."""
    user = User.objects.create(username="ann")
    article = Article.objects.create(
        title="t",
        published_at=timezone.now(),
        day=datetime.date.today(),
        at=datetime.time(1, 2),
        took=datetime.timedelta(minutes=3),
        price=decimal.Decimal("1.5"),
        author=user,
        extra={"k": 1},
        blob=b"xyz",
    )
    article.refresh_from_db()
    data = instance_data(article)
    assert json.loads(json.dumps(data)) == data
    assert data["author_id"] == user.pk


def test_to_dict_values_are_made_json_ready():
    """Values in a to_dict() result follow the same rules (datetime, Decimal, UUID, nested)."""

    class Thing:
        pk = uuid.UUID(int=1)

        def to_dict(self):
            return {"when": datetime.date(2026, 1, 2), "amounts": (decimal.Decimal("1.10"),), "nested": {"id": uuid.UUID(int=2)}}

    data = instance_data(Thing())
    assert data == {
        "when": "2026-01-02",
        "amounts": ["1.10"],
        "nested": {"id": str(uuid.UUID(int=2))},
        "pk": str(uuid.UUID(int=1)),
    }


def test_to_dict_must_return_a_dict():
    """A to_dict() returning something else is a TypeError naming the model."""

    class Odd:
        pk = 1

        def to_dict(self):
            return [1]

    with pytest.raises(TypeError, match="Odd.to_dict"):
        instance_data(Odd())


def test_unknown_types_become_strings():
    """A value of an unknown type becomes str(value)."""

    class Custom:
        def __str__(self):
            return "custom!"

    assert json_value(Custom()) == "custom!"
