"""Event classes found by autodiscover()."""

from telegraphy.contrib.django_telegraphy.events import OP_CREATE, BaseEventModel

from .models import Article, Comment, Keyed, Note


class ArticleEvent(BaseEventModel):
    model = Article


class NoteEvent(BaseEventModel):
    model = Note
    fields = ("text",)  # ignored: Note.to_dict() wins


class CommentEvent(BaseEventModel):
    model = Comment
    operations = (OP_CREATE,)
    name = "comments"
    verbose_name = "remark"


class KeyedEvent(BaseEventModel):
    model = Keyed


# The seed registered an event class by instantiating it; that still works.
comment_event = CommentEvent()
