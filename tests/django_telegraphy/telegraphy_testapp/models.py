"""One model per serialization rule the tests check."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50)


class Article(models.Model):
    """Every field type the event serializer has a rule for."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    count = models.IntegerField(default=0)
    ratio = models.FloatField(default=0.0)
    flag = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    day = models.DateField(null=True, blank=True)
    at = models.TimeField(null=True, blank=True)
    took = models.DurationField(null=True, blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    uid = models.UUIDField(default=uuid.uuid4)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    tags = models.ManyToManyField(Tag, blank=True)
    attachment = models.FileField(upload_to="files", blank=True)
    extra = models.JSONField(default=dict, blank=True)
    blob = models.BinaryField(null=True, blank=True)

    class Meta:
        verbose_name = "news article"


class Note(models.Model):
    """A model whose own to_dict() gives the event data."""

    text = models.CharField(max_length=100)
    secret = models.CharField(max_length=100, blank=True)

    def to_dict(self):
        return {"text": self.text.upper(), "length": len(self.text)}


class Comment(models.Model):
    """A model with create events only."""

    text = models.CharField(max_length=100)


class Quiet(models.Model):
    """A model without an event class."""

    text = models.CharField(max_length=100)


class Keyed(models.Model):
    """A model with a UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=20)


class ProxyComment(Comment):
    class Meta:
        proxy = True


class Order(models.Model):
    """A model whose events tests give audiences and projections (its event classes live in the tests)."""

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="open")
    total = models.DecimalField(max_digits=8, decimal_places=2, default=0)
