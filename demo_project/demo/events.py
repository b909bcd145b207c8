"""The events of the demo: found by the Telegraphy app's autodiscovery."""

from telegraphy.contrib.django_telegraphy.events import BaseEventModel

from .models import MyModel


class MyModelEvent(BaseEventModel):
    """Create, update and delete events of MyModel, on the topic ``demo.MyModel``."""

    model = MyModel
    fields = ("title", "description", "count")
