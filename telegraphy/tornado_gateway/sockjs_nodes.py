"""SockJS sessions shared by several gateway nodes, so that no sticky sessions are needed.

A polling or streaming SockJS client makes each request on its own
(``xhr``, ``xhr_send``, ``eventsource``, …): behind a load balancer they
reach any node. A session lives on one node, its *owner*, which holds a
lease on the key ``sockjs:<prefix>:<session id>`` on the bus
(:class:`~telegraphy.bus.NodeBus`). A request reaching another node, the
*origin*, is forwarded to the owner:

- a send (``xhr_send``, ``jsonp_send``): the origin reads and checks the
  body, answering the protocol's errors itself, sends the decoded messages
  to the owner and answers the client once the owner has handed them to the
  session: ``204`` (``ok``), or ``404 Session not found.`` when the owner
  has no such session any more. sockjs-client sends one request at a time
  and waits for its answer, so messages keep their order whichever nodes
  the sends reach;
- a receiving request (polls and streams): the origin keeps the HTTP
  response and the owner attaches a *remote receiver* to the session. Every
  frame the session writes to it (``o``, ``a[…]``, ``h``, ``c[…]``, and
  ``c[2010,"Another connection still open"]`` for a second receiver) goes
  to the origin, which wraps it for the transport and writes it; when the
  session ends the response, the origin ends it too. A client going away is
  reported to the owner (``detach``), which then closes the session with
  ``c[1002,"Connection interrupted"]`` exactly as for a local request.

Peer binding (``--sockjs-bind-peer``) holds across nodes: the origin
forwards the client address with every ``attach`` and ``send``, and the
owner checks it against the address that opened the session, as for a
local request. A refused ``attach`` is answered ``refused`` (a granted one
``ack``); the origin waits for that answer before it writes anything, so a
refused request gets ``404 Session not found.`` whatever node it reached;
a refused send is answered as a send to a session the owner does not have.

The session core (:mod:`telegraphy.sockjs.session`) does not know a
receiver is remote: heartbeats, the streaming byte limit (counted in frame
bytes, without the transport's few bytes of wrapping), the 2010 rule and
close frames behave as on one node.

A new session is created by the node whose claim on its free lease
succeeds. Owners renew their leases every :data:`LEASE_RENEWAL` seconds
(each lasts :data:`LEASE_TTL`) and release them when sessions end.

Liveness: every :data:`KEEPALIVE` seconds, an origin tells each owner which
forwarded receivers it still serves; the owner answers with those it no
longer knows (a lost ``finish``), which the origin ends with
``c[1002,"Connection interrupted"]``. A node silent for
:data:`PEER_TIMEOUT` seconds is taken for gone: an origin ends the
responses it forwarded there the same way (the sessions died with their
node; clients open new ones) and answers sends ``503``; an owner detaches
that origin's receivers as if their connections had dropped.

Messages between nodes: each node's records for another node queue in one
outbox and leave in order, many per bus message (an *envelope*: the
sender's name and a newline, then records each prefixed by its length as 4
bytes, big-endian, up to :data:`ENVELOPE_SIZE` bytes), so that an event
fanned out to a thousand forwarded streams costs one bus message, not a
thousand. A record is a JSON header (``t`` the type, ``r`` the request
number, …), a newline and the payload (the JSON array of a send's
messages); frames, the bulk of the traffic, are ``F<request>``, a newline
and the frame. An outbox over :data:`OUTBOX_LIMIT` bytes (the other node
or the bus cannot keep up) drops its contents and ends every forwarded
receiver between the two nodes, so that nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tornado.ioloop

from telegraphy.sockjs.frames import close_frame
from telegraphy.sockjs.session import CLOSE_INTERRUPTED, SessionState

if TYPE_CHECKING:
    from telegraphy.bus import NodeBus
    from telegraphy.sockjs import Receiver, SockJSSession

    from .sockjs import SockJSService

__all__ = ["KEEPALIVE", "LEASE_RENEWAL", "LEASE_TTL", "PEER_TIMEOUT", "RemoteReceiver", "SockJSNodes"]

logger = logging.getLogger("telegraphy.gateway.sockjs")

#: Seconds a session lease lasts unless renewed.
LEASE_TTL = 15.0
#: Seconds between lease renewals by the owner.
LEASE_RENEWAL = 5.0
#: Seconds between keepalives of forwarded receivers (and the liveness checks).
KEEPALIVE = 1.0
#: Seconds of silence after which another node is taken for gone.
PEER_TIMEOUT = 4.0
#: Bytes queued for one other node before its forwarded receivers are ended.
OUTBOX_LIMIT = 16 * 1024 * 1024
#: Largest bus message of records, bytes (a bigger record travels alone).
ENVELOPE_SIZE = 256 * 1024

_LENGTH = struct.Struct(">I")

_INTERRUPTED = close_frame(*CLOSE_INTERRUPTED)


class NodeUnreachable(Exception):
    """The node holding a session did not answer in time (or the bus failed)."""


@dataclass
class _Forwarded:
    """Origin side: a receiving request whose session lives on ``owner``."""

    owner: str
    receiver: Receiver
    since: float
    #: Resolved by the owner's ``ack`` (True) or ``refused`` (False).
    accepted: asyncio.Future[bool]


@dataclass
class _Outbox:
    messages: list[bytes] = field(default_factory=list)
    size: int = 0
    draining: bool = False


class RemoteReceiver:
    """Owner side: a receiving request held by another node, as the session sees it."""

    __slots__ = ("nodes", "origin", "request", "response_limit", "session", "since")

    def __init__(self, nodes: SockJSNodes, origin: str, request: int, response_limit: float, session: SockJSSession, now: float) -> None:
        self.nodes = nodes
        self.origin = origin
        self.request = request
        self.response_limit = response_limit
        self.session = session
        self.since = now

    def write_frame(self, frame: bytes) -> int:
        self.nodes.post_frame(self.origin, self.request, frame)
        return len(frame)

    def finish(self) -> None:
        if self.nodes.remote.pop((self.origin, self.request), None) is not None:
            self.nodes.post(self.origin, {"t": "finish", "r": self.request})


class SockJSNodes:
    """This node's part in sharing SockJS sessions with the other nodes on ``bus``.

    Args:
        bus: an opened bus that reaches single nodes and keeps leases.
        services: the SockJS services, the same on every node.
        metrics: counts forwarded requests (``sockjs_forwarded``), when given.
    """

    def __init__(self, bus: NodeBus, services: Iterable[SockJSService], metrics: Any = None) -> None:
        self.bus = bus
        self.node = bus.node
        self.services = {service.prefix: service for service in services}
        self.metrics = metrics
        #: Owner side: remote receivers by (origin node, request number).
        self.remote: dict[tuple[str, int], RemoteReceiver] = {}
        self._forwarded: dict[int, _Forwarded] = {}
        self._sends: dict[int, asyncio.Future[bool]] = {}
        self._requests = itertools.count(1)
        self._outboxes: dict[str, _Outbox] = {}
        self._heard: dict[str, float] = {}
        self._owned: set[str] = set()
        self._next_renewal = 0.0
        self._renewing = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._envelope_head = self.node.encode("ascii") + b"\n"
        self._timer = tornado.ioloop.PeriodicCallback(self.tick, KEEPALIVE * 1000)
        bus.on_direct = self.on_message
        for service in self.services.values():
            service.nodes = self

    def start(self) -> None:
        self._timer.start()

    async def close(self) -> None:
        """Stop, send what is queued (briefly), and give up this node's leases."""
        self._timer.stop()
        deadline = time.monotonic() + 2.0
        while any(box.messages or box.draining for box in self._outboxes.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        try:
            await self.bus.release(sorted(self._owned | self._live_keys()))
        except Exception:
            logger.warning("could not release the SockJS session leases of this node", exc_info=True)

    @staticmethod
    def key(service: SockJSService, session_id: str) -> str:
        return f"sockjs:{service.prefix}:{session_id}"

    # Origin side -----------------------------------------------------------------

    async def locate(self, service: SockJSService, session_id: str, *, create: bool) -> str | None:
        """Return the node holding a session this node does not have.

        With ``create``, a session nobody holds becomes this node's (the
        caller creates it); without, None means there is no such session.

        Raises:
            NodeUnreachable: the bus failed.
        """
        key = self.key(service, session_id)
        try:
            if not create:
                return await self.bus.owner(key)
            owner = (await self.bus.claim([key], LEASE_TTL))[0]
        except Exception as exc:
            logger.warning("could not look up the node of sockjs session %r: %s", session_id, exc)
            raise NodeUnreachable(session_id) from None
        if owner == self.node:
            self._owned.add(key)
        return owner

    def attach(self, owner: str, service: SockJSService, session_id: str, receiver: Receiver, peer: str) -> int:
        """Forward a receiving request to ``owner``; return its number, for :meth:`detach`."""
        request = next(self._requests)
        accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._forwarded[request] = _Forwarded(owner, receiver, time.monotonic(), accepted)
        header = {"t": "attach", "v": service.prefix, "s": session_id, "r": request, "l": receiver.response_limit, "p": peer}
        self.post(owner, header)
        self._count()
        return request

    async def accepted(self, request: int) -> bool:
        """Wait for the owner to take (True) or refuse (False) the forwarded receiving request ``request``.

        An owner that does not answer within :data:`PEER_TIMEOUT` counts as
        taking it: the keepalives then end the response as for any silent node.
        """
        forwarded = self._forwarded.get(request)
        if forwarded is None:
            return True  # already finished or interrupted: the receiver says so
        try:
            return await asyncio.wait_for(asyncio.shield(forwarded.accepted), PEER_TIMEOUT)
        except asyncio.TimeoutError:
            return True

    def detach(self, request: int) -> None:
        """The client of a forwarded receiving request went away."""
        forwarded = self._forwarded.pop(request, None)
        if forwarded is not None:
            self.post(forwarded.owner, {"t": "detach", "r": request})

    async def send(self, owner: str, service: SockJSService, session_id: str, messages: list[str], peer: str) -> bool:
        """Hand messages from ``peer`` to the session on ``owner``; return False when it has no such session for ``peer``.

        Raises:
            NodeUnreachable: no answer within :data:`PEER_TIMEOUT`.
        """
        request = next(self._requests)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sends[request] = answer
        payload = json.dumps(messages, separators=(",", ":")).encode("utf-8")
        self.post(owner, {"t": "send", "v": service.prefix, "s": session_id, "r": request, "p": peer}, payload)
        self._count()
        try:
            return await asyncio.wait_for(answer, PEER_TIMEOUT)
        except asyncio.TimeoutError:
            raise NodeUnreachable(session_id) from None
        finally:
            self._sends.pop(request, None)

    def _count(self) -> None:
        if self.metrics is not None:
            self.metrics.sockjs_forwarded += 1

    # Messages from other nodes ---------------------------------------------------

    def on_message(self, data: bytes) -> None:
        """Handle an envelope of records another node sent to this one."""
        sender_bytes, _, body = data.partition(b"\n")
        sender = sender_bytes.decode("ascii", "replace")
        now = time.monotonic()
        self._heard[sender] = now
        view = memoryview(body)
        at, end = 0, len(body)
        while at + 4 <= end:
            (size,) = _LENGTH.unpack_from(view, at)
            record = body[at + 4 : at + 4 + size]
            at += 4 + size
            if record[:1] == b"F":
                head, _, frame = record.partition(b"\n")
                forwarded = self._forwarded.get(int(head[1:])) if head[1:].isdigit() else None
                if forwarded is not None:
                    forwarded.receiver.write_frame(frame)
                continue
            self._record(sender, record, now)
        if at != end:
            logger.warning("ignoring the truncated end of an envelope from node %s", sender)

    def _record(self, sender: str, record: bytes, now: float) -> None:
        head, _, payload = record.partition(b"\n")
        try:
            header = json.loads(head)
            kind = header["t"]
            handle = self._handlers[kind]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed sockjs message from node %s", sender)
            return
        try:
            handle(self, sender, header, payload, now)
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring a malformed %r sockjs message from node %s", kind, sender, exc_info=True)

    def _on_attach(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        request = header["r"]
        service = self.services.get(header["v"])
        if service is None:
            self.post(sender, {"t": "finish", "r": request})
            return
        peer = str(header.get("p", ""))
        session = service.registry.get(header["s"])
        if session is not None and not session.admits(peer):
            logger.info("refused a forwarded request for sockjs session %r from %s: opened from another address", header["s"][:64], peer)
            self.post(sender, {"t": "refused", "r": request})
            return
        if session is None:
            # The origin found this node named by the lease: the session is this node's to (re)create.
            session = service.registry.open(header["s"], now, peer=peer)
            self._owned.add(self.key(service, session.id))
        limit = header.get("l") or 0
        receiver = RemoteReceiver(self, sender, request, float(limit), session, now)
        self.remote[(sender, request)] = receiver
        self.post(sender, {"t": "ack", "r": request})
        session.attach(receiver, now)

    def _on_detach(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        self._drop_remote((sender, header["r"]), now)

    def _on_send(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        service = self.services.get(header["v"])
        session = None if service is None else service.registry.get(header["s"])
        if session is not None and not session.admits(str(header.get("p", ""))):
            logger.info("refused a forwarded send to sockjs session %r: from another address", header["s"][:64])
            session = None
        if session is not None:
            try:
                messages = json.loads(payload)
            except ValueError:
                messages = None
            if isinstance(messages, list) and all(isinstance(message, str) for message in messages):
                session.receive(messages, now)
            else:
                logger.warning("ignoring a malformed forwarded sockjs send from another node")
        self.post(sender, {"t": "sent", "r": header["r"], "ok": session is not None})

    def _on_keep(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        gone = []
        for request in header["r"]:
            receiver = self.remote.get((sender, request))
            if receiver is None:
                gone.append(request)
        self.post(sender, {"t": "kept", "r": gone})

    def _on_ack(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        forwarded = self._forwarded.get(header["r"])
        if forwarded is not None and not forwarded.accepted.done():
            forwarded.accepted.set_result(True)

    def _on_refused(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        forwarded = self._forwarded.pop(header["r"], None)
        if forwarded is not None and not forwarded.accepted.done():
            forwarded.accepted.set_result(False)

    def _on_finish(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        forwarded = self._forwarded.pop(header["r"], None)
        if forwarded is not None:
            if not forwarded.accepted.done():
                forwarded.accepted.set_result(True)
            forwarded.receiver.finish()

    def _on_sent(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        answer = self._sends.get(header["r"])
        if answer is not None and not answer.done():
            answer.set_result(header.get("ok") is True)

    def _on_kept(self, sender: str, header: dict[str, Any], payload: bytes, now: float) -> None:
        for request in header["r"]:
            forwarded = self._forwarded.get(request)
            if forwarded is not None and forwarded.owner == sender:
                self._interrupt(request)

    _handlers = {
        "attach": _on_attach,
        "detach": _on_detach,
        "send": _on_send,
        "keep": _on_keep,
        "ack": _on_ack,
        "refused": _on_refused,
        "finish": _on_finish,
        "sent": _on_sent,
        "kept": _on_kept,
    }

    def _drop_remote(self, key: tuple[str, int], now: float) -> None:
        """Forget a remote receiver whose client, or node, went away: its session hears it as a dropped connection."""
        receiver = self.remote.pop(key, None)
        if receiver is not None:
            receiver.session.detach(receiver, now)

    def _interrupt(self, request: int) -> None:
        """End a forwarded response whose session is out of reach, as the protocol ends an interrupted one."""
        forwarded = self._forwarded.pop(request, None)
        if forwarded is not None:
            if not forwarded.accepted.done():
                forwarded.accepted.set_result(True)  # the response goes on, with the close frame
            forwarded.receiver.write_frame(_INTERRUPTED)
            forwarded.receiver.finish()

    # Sending to other nodes ------------------------------------------------------

    def post(self, node: str, header: dict[str, Any], payload: bytes = b"") -> None:
        """Queue a record for ``node``; the outbox is sent in order, in envelopes."""
        self._queue(node, json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n" + payload)

    def post_frame(self, node: str, request: int, frame: bytes) -> None:
        """Queue a frame for the forwarded request ``request`` of ``node``."""
        self._queue(node, b"F%d\n" % request + frame)

    def _queue(self, node: str, record: bytes) -> None:
        box = self._outboxes.get(node)
        if box is None:
            box = self._outboxes[node] = _Outbox()
        box.messages.append(record)
        box.size += len(record)
        if box.size > OUTBOX_LIMIT:
            self._overflow(node, box)
            return
        if not box.draining:
            box.draining = True
            self._spawn(self._drain(node, box))

    def _envelopes(self, records: list[bytes]) -> list[bytes]:
        envelopes, parts, size = [], [self._envelope_head], 0
        for record in records:
            if size and size + len(record) > ENVELOPE_SIZE:
                envelopes.append(b"".join(parts))
                parts, size = [self._envelope_head], 0
            parts += (_LENGTH.pack(len(record)), record)
            size += len(record) + 4
        envelopes.append(b"".join(parts))
        return envelopes

    async def _drain(self, node: str, box: _Outbox) -> None:
        try:
            while box.messages:
                batch, box.messages, box.size = box.messages, [], 0
                try:
                    await self.bus.send(node, self._envelopes(batch))
                except Exception as exc:
                    # Lost like any bus message; the keepalives notice and end what depended on it.
                    logger.warning("could not send %d sockjs records to node %s: %s", len(batch), node, exc)
        finally:
            box.draining = False

    def _overflow(self, node: str, box: _Outbox) -> None:
        logger.warning("node %s is not keeping up with forwarded sockjs traffic: ending its forwarded receivers", node)
        box.messages, box.size = [], 0
        now = time.monotonic()
        for key in [key for key in self.remote if key[0] == node]:
            self._drop_remote(key, now)
        for request, forwarded in list(self._forwarded.items()):
            if forwarded.owner == node:
                self._interrupt(request)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("sockjs node task failed", exc_info=task.exception())

    # Timers ----------------------------------------------------------------------

    def tick(self) -> None:
        """Keepalives, liveness checks, and (now and then) lease renewal."""
        now = time.monotonic()
        silent_since = now - PEER_TIMEOUT
        by_owner: dict[str, list[int]] = {}
        silent: collections.Counter[str] = collections.Counter()
        for request, forwarded in list(self._forwarded.items()):
            if max(forwarded.since, self._heard.get(forwarded.owner, 0.0)) < silent_since:
                silent[forwarded.owner] += 1
                self._interrupt(request)
            else:
                by_owner.setdefault(forwarded.owner, []).append(request)
        for owner, count in silent.items():
            logger.warning("node %s holding sockjs sessions is silent: ended %d responses forwarded to it", owner, count)
        for owner, requests in by_owner.items():
            self.post(owner, {"t": "keep", "r": requests})
        silent.clear()
        for key, receiver in list(self.remote.items()):
            if max(receiver.since, self._heard.get(key[0], 0.0)) < silent_since:
                silent[key[0]] += 1
                self._drop_remote(key, now)
        for origin, count in silent.items():
            logger.warning("node %s serving sockjs receivers is silent: detached %d of them from their sessions", origin, count)
        for node in [node for node, heard in self._heard.items() if heard < now - 10 * PEER_TIMEOUT]:
            del self._heard[node]
        if now >= self._next_renewal and not self._renewing:
            self._next_renewal = now + LEASE_RENEWAL
            self._renewing = True
            self._spawn(self._renew())

    def _live_keys(self) -> set[str]:
        return {
            self.key(service, session.id)
            for service in self.services.values()
            for session in service.registry
            if not session.bound and session.state is not SessionState.CLOSED
        }

    async def _renew(self) -> None:
        try:
            live = self._live_keys()
            ended = self._owned - live
            if ended:
                await self.bus.release(sorted(ended))
            self._owned = live
            if live:
                keys = sorted(live)
                owners = await self.bus.claim(keys, LEASE_TTL)
                for key, owner in zip(keys, owners, strict=True):
                    if owner != self.node:
                        logger.warning("sockjs session %s is also held by node %s", key, owner)
        except Exception as exc:
            logger.warning("could not renew the sockjs session leases: %s", exc)
        finally:
            self._renewing = False
