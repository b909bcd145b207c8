"""``manage.py createdemo``: the demo's superuser (admin / admin) and a few items.

Refuses to run unless DEBUG is on: a well-known password has no place
anywhere else. Safe to run again: the user's password is reset to ``admin``
and items are added only to an empty list.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.models import MyModel

USERNAME = "admin"
PASSWORD = "admin"  # noqa: S105 - the demo's documented development password

SAMPLE_ITEMS = [
    ("Telegraph", "Messages over a wire", 3),
    ("Semaphore", "Flags on a tower", 1),
    ("Carrier pigeon", "Slow but reliable", 7),
]


class Command(BaseCommand):
    help = "Create the demo superuser admin/admin (only with DEBUG on) and sample items."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-items", action="store_true", help="do not add sample items")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("refusing to create the admin/admin user: DEBUG is off (DJANGO_DEBUG=0)")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        self.stdout.write(f"{'Created' if created else 'Reset'} superuser {USERNAME} / {PASSWORD}")
        if not options["no_items"] and not MyModel.objects.exists():
            for title, description, count in SAMPLE_ITEMS:
                MyModel.objects.create(title=title, description=description, count=count)
            self.stdout.write(f"Added {len(SAMPLE_ITEMS)} sample items")
