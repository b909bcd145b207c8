from django.db import models


class MyModel(models.Model):
    """An item of the demo list: every change is an event on the topic ``demo.MyModel``."""

    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    count = models.IntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        verbose_name = "item"

    def __str__(self) -> str:
        return self.title
