"""The services the official SockJS protocol test suite expects: ``echo`` and ``close``.

The gateway mounts them only with ``--sockjs-test-endpoints``; they carry
no WAMP and touch nothing else.
"""

from __future__ import annotations

from .session import CLOSE_GO_AWAY, SockJSSession

__all__ = ["CloseHandler", "EchoHandler"]


class EchoHandler:
    """Sends every message back to the client."""

    __slots__ = ("session",)

    def __init__(self, session: SockJSSession) -> None:
        self.session = session

    def on_open(self, now: float) -> None:
        pass

    def on_messages(self, messages: list[str], now: float) -> None:
        self.session.send(messages)

    def on_close(self) -> None:
        pass


class CloseHandler(EchoHandler):
    """Closes every session as soon as it opens, with ``c[3000,"Go away!"]``."""

    __slots__ = ()

    def on_open(self, now: float) -> None:
        self.session.close(*CLOSE_GO_AWAY)
