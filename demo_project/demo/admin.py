from django.contrib import admin

from .models import MyModel


@admin.register(MyModel)
class MyModelAdmin(admin.ModelAdmin):
    list_display = ("pk", "title", "count")
    list_editable = ("count",)
    search_fields = ("title", "description")
