"""The demo's pages: a live list of items with forms to change them, and a change tracker.

The forms work without JavaScript (POST, then redirect). The page's script
sends them with fetch() instead (header ``X-Requested-With: fetch``) and gets
JSON back; the list then changes through the Telegraphy event, on this page
and on every other open one.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .forms import MyModelForm
from .models import MyModel


def index(request: HttpRequest) -> HttpResponse:
    """The live list of items, with a form to create one and forms to update or delete each."""
    return render(request, "demo/index.html", {"items": MyModel.objects.all(), "form": MyModelForm()})


def tracker(request: HttpRequest) -> HttpResponse:
    """A log of the create, update and delete events received while the page is open."""
    return render(request, "demo/tracker.html")


@require_POST
def item_create(request: HttpRequest) -> HttpResponse:
    return _save(request, MyModelForm(request.POST))


@require_POST
def item_update(request: HttpRequest, pk: int) -> HttpResponse:
    return _save(request, MyModelForm(request.POST, instance=get_object_or_404(MyModel, pk=pk)))


@require_POST
def item_delete(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(MyModel, pk=pk)
    item.delete()
    return _answer(request, {"pk": pk, "deleted": True})


def _save(request: HttpRequest, form: MyModelForm) -> HttpResponse:
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"errors": form.errors}, status=400)
        return render(request, "demo/index.html", {"items": MyModel.objects.all(), "form": form}, status=400)
    item = form.save()
    return _answer(request, {"pk": item.pk})


def _answer(request: HttpRequest, payload: dict[str, object]) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(payload)
    return redirect("index")


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"
