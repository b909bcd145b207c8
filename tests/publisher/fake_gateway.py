"""A scriptable stand-in for the gateway's ``/publish``, for faults the real one cannot be made to show.

It answers each request with the next scripted ``(status, body)`` (then
202 with the events' ``meta.id``, as the gateway does), records every
request, can read a request and drop the connection without answering (a
lost response: ``drop_answers``), counts TCP connections, and can close a
keep-alive connection right after answering, the way an idle timeout or a
restarted gateway does.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class FakeGateway:
    """A threaded HTTP/1.1 server on ``127.0.0.1:0``; use :func:`fake_gateway`."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[tuple[int, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.close_after_answer = False
        #: How many of the next requests are read, recorded and left unanswered (the connection is closed).
        self.drop_answers = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    if outer.drop_answers:
                        outer.drop_answers -= 1
                        self.close_connection = True
                        return
                    status, answer = outer.script.pop(0) if outer.script else (202, None)
                if answer is None:
                    events = body if isinstance(body, list) else [body]
                    ids = [(e.get("meta") or {}).get("id") or uuid.uuid4().hex for e in events]
                    answer = {"published": len(events), "ids": ids}
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                if outer.close_after_answer:
                    # Close without "Connection: close": the client learns it on its next request.
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server signature
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self) -> list[Any]:
        """Return the JSON bodies received, in order."""
        with self.lock:
            return [request["body"] for request in self.requests]

    def tokens(self) -> list[str]:
        """Return the bearer tokens received, in order."""
        with self.lock:
            return [request["headers"]["Authorization"].removeprefix("Bearer ") for request in self.requests]


@contextmanager
def fake_gateway(port: int = 0) -> Iterator[FakeGateway]:
    """Run a :class:`FakeGateway` (on ``port``, a free one by default) for the duration of the block."""
    gateway = FakeGateway(port)
    thread = threading.Thread(target=gateway.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        gateway.server.shutdown()
        gateway.server.server_close()
        thread.join(5)
