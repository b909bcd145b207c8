from django.http import HttpResponse
from django.template import engines
from django.urls import path

from .models import Comment


def page(request):
    template = engines["django"].from_string("{% load telegraphy_tags %}<html>{% telegraphy_scripts %}</html>")
    return HttpResponse(template.render({}, request))


def comment(request):
    Comment.objects.create(text=request.GET.get("text", "hi"))
    return HttpResponse("ok")


urlpatterns = [path("page/", page), path("comment/", comment)]
