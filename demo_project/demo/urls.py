from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("tracker/", views.tracker, name="tracker"),
    path("items/create/", views.item_create, name="item-create"),
    path("items/<int:pk>/update/", views.item_update, name="item-update"),
    path("items/<int:pk>/delete/", views.item_delete, name="item-delete"),
]
