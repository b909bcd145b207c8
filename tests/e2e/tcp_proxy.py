"""A tiny threaded TCP proxy on 127.0.0.1 standing in for a load balancer in front of gateway nodes.

::

    proxy = TcpProxy(node_a.port)       # ws://127.0.0.1:{proxy.port}/ws reaches node A
    proxy.set_target(node_b.port)       # new connections go to node B
    proxy.set_targets([a.port, b.port]) # each new connection to the next node in turn (no affinity)
    proxy.drop_all(block=True)          # close every connection, refuse new ones...
    proxy.unblock()                     # ...until now
    proxy.close()                       # idempotent; also happens by itself after ``lifetime`` seconds

Bytes are copied as they come, both ways, by two threads per connection.
Dropping a connection shuts down both of its sockets: the client sees the
TCP connection end (no WebSocket close frame), the upstream node sees its
client go away. While blocked, or when the target refuses, a new connection
is accepted and closed at once.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["TcpProxy"]

#: Seconds a proxy lives at most (tests close it long before).
DEFAULT_LIFETIME = 120.0
#: Seconds to wait for the upstream node to accept a connection.
UPSTREAM_CONNECT_TIMEOUT = 2.0
#: Seconds ``close()`` waits for each of the proxy's threads.
JOIN_TIMEOUT = 5.0


class _Link:
    """A client socket and its upstream socket; closed once both copying threads are done."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self._running = 2
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """End both directions now (wakes the copying threads; the sockets stay open until they exit)."""
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already shut down or reset

    def copier_done(self) -> None:
        self.shutdown()
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            for sock in self.sockets:
                sock.close()


class TcpProxy:
    """Forward connections to ``127.0.0.1:<target port>``; switch targets, drop and refuse connections.

    Attributes:
        port: the port the proxy listens on.
        accepted: how many connections it forwarded (not counting refused ones).
    """

    def __init__(self, target_port: int, lifetime: float = DEFAULT_LIFETIME) -> None:
        self._lock = threading.Lock()
        self._targets = [target_port]
        self._turn = 0
        self._blocked = False
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # to notice close() and the deadline
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._acceptor.start()

    # -- control ---------------------------------------------------------------------------------

    def set_target(self, port: int) -> None:
        """Send new connections to ``127.0.0.1:port`` (open ones keep their node)."""
        self.set_targets([port])

    def set_targets(self, ports: list[int]) -> None:
        """Send each new connection to the next of ``127.0.0.1:<ports>`` in turn, as a round-robin balancer does."""
        if not ports:
            raise ValueError("at least one target port")
        with self._lock:
            self._targets = list(ports)

    def drop_all(self, block: bool = False) -> None:
        """Shut down every open connection; with ``block``, refuse new ones until :meth:`unblock`."""
        with self._lock:
            self._blocked = self._blocked or block
            links = list(self._links)
        for link in links:
            link.shutdown()

    def unblock(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._blocked = False

    def close(self) -> None:
        """Stop listening, drop every connection, and wait for the proxy's threads."""
        self._closed.set()
        if threading.current_thread() is not self._acceptor:
            self._acceptor.join(JOIN_TIMEOUT)
        self.drop_all(block=True)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)

    # -- threads ---------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        try:
            while not self._closed.is_set() and time.monotonic() < self._deadline:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                self._forward(client)
        finally:
            self._listener.close()
            self._closed.set()
            self.drop_all(block=True)

    def _forward(self, client: socket.socket) -> None:
        with self._lock:
            blocked, target = self._blocked, self._targets[self._turn % len(self._targets)]
            self._turn += 1
        if blocked or self._closed.is_set():
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", target), timeout=UPSTREAM_CONNECT_TIMEOUT)
        except OSError:
            client.close()  # the node is down: the client sees the connection fail
            return
        upstream.settimeout(None)
        client.settimeout(None)
        link = _Link(client, upstream)
        with self._lock:
            if self._blocked:  # drop_all(block=True) ran meanwhile
                client.close()
                upstream.close()
                return
            self._links.add(link)
            self.accepted += 1
            for source, sink, direction in ((client, upstream, "up"), (upstream, client, "down")):
                thread = threading.Thread(
                    target=self._copy, args=(link, source, sink), name=f"tcp-proxy-{self.port}-{direction}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _copy(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass  # reset, or shut down by drop_all()
        finally:
            with self._lock:
                self._links.discard(link)
            link.copier_done()
