"""The events of the demo: found by the Telegraphy app's autodiscovery."""

from telegraphy.contrib.django_telegraphy.events import BaseEventModel

from .models import MyModel


class MyModelEvent(BaseEventModel):
    """Create, update and delete events of MyModel, on the topic ``demo.MyModel``.

    Everyone sees them, anonymous visitors included. To narrow that down,
    see "Audiences and permissions" in docs/django.md, e.g.::

        audience = "authenticated"                   # signed-in users only
        permission = "demo.view_mymodel"             # holders of a permission
        projections = [({"groups": ["staff"]}, None), ("public", ["title", "count"])]
    """

    model = MyModel
    fields = ("title", "description", "count")
    audience = "public"
