"""Persistence of the gateway: ordered event streams, resumable sessions.

:class:`Persistence` connects the sans-I/O router to a
:class:`telegraphy.store.Store`:

- it is the router's ``sequencer``: every publication is appended to its
  topic's stream (which gives it an ``(epoch, offset)``) and only then
  delivered, in the order it was accepted;
- it answers HELLOs that ask to resume (``on_resume``): it loads the old
  session from the store, reads what each subscribed topic missed since the
  client's offsets, and completes the resume;
- it saves each session's subscriptions (``on_session_change``) so they
  outlive the connection, for ``--session-ttl`` seconds. An anonymous
  session is saved only once it holds a subscription (nothing else of it is
  worth resuming), for ``--anonymous-session-ttl`` seconds, and at most
  ``--max-anonymous-sessions`` of them per process; beyond that a new one
  is simply not resumable.

Per-topic state (the next stream position to deliver) is kept only for
topics this process has subscribers for: it is dropped when a topic's last
subscriber leaves, and never made for events nobody here receives.

Everything runs in one task, one job after another. A resume reads history
at a point where no publication of this process can slip between the read and
the restored subscription, so a client gets each missed event exactly once,
then the live ones.

With several gateway processes, each appends what it accepts to the shared
store and tells the others over the bus. Every process delivers each topic's
events in offset order: an event that arrives ahead of its predecessors (the
bus may reorder or drop) waits while the missing ones are read from the
store; one that was already delivered is dropped.

An event with an id (the publisher's ``meta.id``) is stored and delivered at
most once: the store checks the id against its dedup window in the same
atomic step as the append (:meth:`telegraphy.store.Store.append_once`), so a
publish retried on this or another gateway process is dropped (and counted,
``on_duplicate``), never stored or delivered again. This process also keeps
the ids it handled in its own bounded window (``dedup``): while the store
fails, that window alone decides, for the publishes this process takes.

If the store fails, events are still delivered live (without a position) and
the failure is logged: live delivery never waits for a broken store. Events
are encoded for the store one by one: one that cannot be encoded (the router
refuses such payloads at PUBLISH, so this is a bug) is delivered without a
position and logged, and never keeps the rest of its batch from being stored.
A stored record that cannot be read back (damaged, or from an older version
that stored what is refused now) is skipped, logged once per read, and the
records after it are still delivered or replayed.

Revocations (``POST /revoke``) travel on the same bus as
``{"n": node, "r": {"user", "logout", "grants"}}``, handed to
``on_revocation``; after a logout :meth:`Persistence.forget_user` deletes
the user's session records, so none of their sessions can be resumed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telegraphy.store.base import DedupWindow
from telegraphy.wamp import ServerSession, SessionState
from telegraphy.wamp.audience import InvalidAudience, Visibility
from telegraphy.wamp.broker import AuthLists
from telegraphy.wamp.errors import ApplicationError
from telegraphy.wamp.serializer import unportable
from telegraphy.wamp.router import Publication, Router
from telegraphy.wamp.session import Missed, Resumption

if TYPE_CHECKING:
    from telegraphy.bus import Bus
    from telegraphy.store import Store

__all__ = ["Persistence"]

logger = logging.getLogger("telegraphy.gateway")

#: Most missed events replayed per topic on resume; more → ``recovered: false``.
MAX_REPLAY = 1000
#: Per-topic states kept before every one is checked for a subscriber.
_SWEEP_MIN = 1024
_FOREVER = float("inf")


class _Remote:
    """Events another gateway process stored and announced on the bus."""

    __slots__ = ("items",)

    def __init__(self, items: list[list[Any]]) -> None:
        self.items = items


class _Forget:
    """Delete the session records of a user who logged out."""

    __slots__ = ("authid", "done")

    def __init__(self, authid: str, done: asyncio.Future[int]) -> None:
        self.authid = authid
        self.done = done


class _Resume:
    __slots__ = ("offsets", "session", "token")

    def __init__(self, session: ServerSession, token: str, offsets: dict[str, tuple[str, int]]) -> None:
        self.session = session
        self.token = token
        self.offsets = offsets


class Persistence:
    """Sequencer, resume handler and session saver for one router.

    Args:
        router: the router to hook into (its hooks are set here).
        store: an opened store.
        bus: an opened bus to the other gateway processes, if any.
        session_ttl: seconds a session record outlives its connection.
        anonymous_session_ttl: the same for anonymous sessions.
        max_anonymous_sessions: most anonymous session records this process
            keeps in the store at once; ``0``: no limit.
        dedup: this process's window of event ids, used while the store fails.
    """

    def __init__(
        self,
        router: Router,
        store: Store,
        *,
        bus: Bus | None = None,
        session_ttl: float = 3600.0,
        anonymous_session_ttl: float = 300.0,
        max_anonymous_sessions: int = 10_000,
        dedup: DedupWindow | None = None,
    ) -> None:
        self.router = router
        self.store = store
        self.bus = bus
        self.node = secrets.token_hex(8)
        self.dedup = dedup if dedup is not None else DedupWindow()
        self.session_ttl = session_ttl
        self.anonymous_session_ttl = anonymous_session_ttl
        self.max_anonymous_sessions = max_anonymous_sessions
        #: Anonymous sessions stored by this process: token → when the record
        #: expires (infinity while the session is connected).
        self._anonymous: dict[str, float] = {}
        self._anonymous_pruned = 0.0
        #: Anonymous sessions that could not be stored (over max_anonymous_sessions).
        self.anonymous_not_stored = 0
        #: Topics that may have lost their last subscriber here; their
        #: per-topic state is dropped unless a subscription still matches.
        self._released: set[str] = set()
        self._sweep_at = _SWEEP_MIN
        self._jobs: collections.deque[Publication | _Resume | _Remote | _Forget] = collections.deque()
        #: Per topic: (epoch, the next offset to deliver).
        self._next: dict[str, tuple[str, int]] = {}
        self._saves: dict[str, dict[str, Any] | None] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._wakeup = asyncio.Event()
        self._accepted = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.store_errors = 0
        #: Events dropped as repeats of an id in the store's dedup window.
        self.duplicates = 0
        #: Called with the number of events just dropped as duplicates.
        self.on_duplicate: Callable[[int], None] | None = None
        #: Called with the revocation another gateway process announced on the bus.
        self.on_revocation: Callable[[dict[str, Any]], None] | None = None
        router.sequencer = self._publication
        router.on_resume = self._resume
        router.on_session_change = self._session_changed
        self._task = asyncio.ensure_future(self._run())

    # Router hooks (synchronous) -------------------------------------------------

    def _publication(self, publication: Publication) -> None:
        self._jobs.append(publication)
        self._accepted += 1
        self._wakeup.set()

    def bus_message(self, data: bytes) -> None:
        """Take a message from the bus (events stored by another gateway process)."""
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("ignoring a malformed bus message")
            return
        if not isinstance(message, dict) or message.get("n") == self.node:
            return
        if isinstance(message.get("r"), dict):
            if self.on_revocation is not None:
                try:
                    self.on_revocation(message["r"])
                except Exception:
                    logger.exception("could not apply a revocation from the bus")
            return
        if not isinstance(message.get("v"), list):
            return
        self._jobs.append(_Remote(message["v"]))
        self._wakeup.set()

    def _resume(self, session: ServerSession, token: str, offsets: dict[str, tuple[str, int]]) -> None:
        self._jobs.append(_Resume(session, token, offsets))
        self._accepted += 1
        self._wakeup.set()

    def _session_changed(self, session: ServerSession) -> None:
        token = session.resume_token
        if token is None:
            return
        old = self._records.get(token)
        old_topics = {s["topic"] for s in old["subscriptions"]} if old is not None else set()
        anonymous = session.identity is not None and session.identity.anonymous
        if session.state is SessionState.ESTABLISHED:
            realm = session.realm
            assert realm is not None and session.identity is not None
            subscriptions = []
            for subscription_id in session.subscriptions:
                sub = realm.broker.get(subscription_id)
                if sub is not None:
                    subscriptions.append({"topic": sub.topic, "match": sub.match, "options": sub.options})
            self._released.update(old_topics.difference(s["topic"] for s in subscriptions))
            if anonymous and not subscriptions:
                # Nothing to resume: an anonymous session is stored only once it subscribes.
                self._records.pop(token, None)
                if self._anonymous.pop(token, None) is not None:
                    self._saves[token] = None
                self._wakeup.set()
                return
            previous = (old or {}).get("positions", {})
            record = {
                "authid": session.identity.authid,
                "authrole": session.identity.authrole,
                "realm": realm.name,
                "subscriptions": subscriptions,
                "session": session.id,
                # Where each exact topic's stream stood when it was subscribed:
                # a resume without an offset for it replays from there.
                "positions": {s["topic"]: previous[s["topic"]] for s in subscriptions if s["topic"] in previous},
            }
            self._records[token] = record
            if not anonymous or self._admit_anonymous(token):
                self._saves[token] = record
        elif session.state is SessionState.CLOSED:
            # The peer said GOODBYE: it will not resume.
            self._released.update(old_topics)
            self._records.pop(token, None)
            self._anonymous.pop(token, None)
            self._saves[token] = None
        else:
            # Connection lost or gateway shutting down: keep it for a resume.
            self._released.update(old_topics)
            record = self._records.pop(token, None)
            if record is not None and (not anonymous or token in self._anonymous):
                if anonymous:
                    self._anonymous[token] = time.time() + self.anonymous_session_ttl
                self._saves[token] = record
        self._wakeup.set()

    def _admit_anonymous(self, token: str) -> bool:
        """Whether the record of anonymous session ``token`` may be stored (within max_anonymous_sessions)."""
        stored = self._anonymous
        if token in stored:
            stored[token] = _FOREVER  # connected (again, after a resume): it does not expire meanwhile
            return True
        limit = self.max_anonymous_sessions
        if limit and len(stored) >= limit:
            now = time.time()
            if now >= self._anonymous_pruned + 1.0:  # at most once a second, however many sessions ask
                self._anonymous_pruned = now
                for expired in [t for t, until in stored.items() if until <= now]:
                    del stored[expired]
            if len(stored) >= limit:
                if not self.anonymous_not_stored:
                    logger.warning("%d anonymous sessions are stored: new ones are not resumable (--max-anonymous-sessions)", limit)
                self.anonymous_not_stored += 1
                return False
        stored[token] = _FOREVER
        return True

    def _release_topics(self) -> None:
        """Drop the per-topic state of topics no subscription of this process matches any more."""
        positions = self._next
        if len(positions) > self._sweep_at:
            # A safety net for state made on paths that do not report a release.
            self._released.update(positions)
        released, self._released = self._released, set()
        for topic in released:
            if topic in positions and not self._subscribed(topic):
                del positions[topic]
        self._sweep_at = max(_SWEEP_MIN, 2 * len(positions))

    def _subscribed(self, topic: str) -> bool:
        """Whether any subscription of this process matches ``topic``."""
        return any(realm.broker.matching(topic) for realm in self.router.realms.values())

    async def announce_revocation(self, revocation: dict[str, Any]) -> None:
        """Tell the other gateway processes about a revocation (no-op without a bus).

        Raises:
            Exception: whatever the bus raises when it cannot publish.
        """
        if self.bus is not None:
            await self.bus.publish(json.dumps({"n": self.node, "r": revocation}, separators=(",", ":")).encode("utf-8"))

    async def forget_user(self, authid: str) -> int:
        """Delete every stored session record of ``authid``; return how many there were.

        Runs in the worker, after the saves queued so far, so a record about
        to be written is deleted too.

        Raises:
            Exception: whatever the store raises.
        """
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Forget(authid, done))
        self._wakeup.set()
        return await done

    # Waiting -------------------------------------------------------------------

    def accepted(self) -> asyncio.Future[None]:
        """Return a future done when everything accepted so far is stored and delivered."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._done >= self._accepted:
            future.set_result(None)
        else:
            self._waiters.append((self._accepted, future))
        return future

    async def close(self) -> None:
        """Finish the queued work, save the sessions, stop."""
        while self._jobs or self._saves:
            self._wakeup.set()
            await asyncio.sleep(0.01)
        self._task.cancel()

    # The worker ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._save_sessions()
                while self._jobs:
                    await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving: one failure must not stop delivery
                logger.exception("persistence worker failed; continuing")
            waiters, self._waiters = self._waiters, []
            for target, future in waiters:
                if target <= self._done:
                    if not future.done():
                        future.set_result(None)
                else:
                    self._waiters.append((target, future))

    async def _step(self) -> None:
        jobs = self._jobs
        job = jobs[0]
        if isinstance(job, _Forget):
            jobs.popleft()
            try:
                forgotten = await self._forget(job.authid)
            except Exception as exc:
                self.store_errors += 1
                if not job.done.done():
                    job.done.set_exception(exc)
            else:
                if not job.done.done():
                    job.done.set_result(forgotten)
            return
        if isinstance(job, _Resume):
            jobs.popleft()
            try:
                await self._complete_resume(job)
            finally:
                self._done += 1
            return
        if isinstance(job, _Remote):
            jobs.popleft()
            for item in job.items:
                try:
                    realm, topic, epoch, offset, data = item
                    publication = _publication(self.router, realm, topic, data.encode("utf-8"))
                except Exception as exc:
                    logger.warning("ignoring an event from the bus that cannot be read (%s)", type(exc).__name__)
                    continue
                if publication is not None:
                    await self._gate(publication, epoch, offset)
            return
        batch: list[Publication] = []
        encoded: list[bytes] = []
        while jobs and isinstance(jobs[0], Publication):
            publication = jobs.popleft()
            assert isinstance(publication, Publication)
            try:
                data = _encode(publication)
            except (TypeError, ValueError, RecursionError) as exc:
                # Only this event goes without a position: the others of the batch are stored.
                logger.error("could not encode an event on %r for the store (%s); delivering it without a position", publication.topic, type(exc).__name__)
                self._deliver(publication, None)
                self._done += 1
                continue
            batch.append(publication)
            encoded.append(data)
        if not batch:
            return
        now = time.time()
        try:
            answers = await self.store.append_once([(p.topic, data, p.event_id) for p, data in zip(batch, encoded)], now)
        except Exception:
            self.store_errors += 1
            logger.exception("could not store %d events; delivering them without positions", len(batch))
            live = [p for p in batch if p.event_id is None or self.dedup.add(p.event_id, now)]
            self._count_duplicates(len(batch) - len(live))
            for publication in live:
                self._deliver(publication, None)
            self._done += len(batch)
            return
        stored = [(p, position, data) for p, position, data in zip(batch, answers, encoded) if position is not None]
        for publication, _, _ in stored:
            if publication.event_id is not None:
                self.dedup.add(publication.event_id, now)
        self._count_duplicates(len(batch) - len(stored))
        for publication, position, _ in stored:
            await self._gate(publication, position.epoch, position.offset)
        self._done += len(batch)
        if self.bus is not None and stored:
            items = [
                [p.realm.name, p.topic, position.epoch, position.offset, data.decode("utf-8")]
                for p, position, data in stored
            ]
            try:
                await self.bus.publish(json.dumps({"n": self.node, "v": items}, separators=(",", ":")).encode("utf-8"))
            except Exception:
                logger.exception("could not announce %d events on the bus", len(batch))

    def _count_duplicates(self, count: int) -> None:
        """Count events dropped as retried publishes (stored and delivered already)."""
        if count:
            self.duplicates += count
            if self.on_duplicate is not None:
                self.on_duplicate(count)

    def _deliver(self, publication: Publication, position: tuple[str, int] | None) -> None:
        try:
            self.router.deliver(publication, position)
        except ApplicationError as exc:
            # A payload some subscriber's serialization cannot carry (refused at
            # PUBLISH nowadays; a record stored before, or by an older node).
            logger.warning("could not deliver an event on %r: %s", publication.topic, exc.message)
        except Exception:
            logger.exception("could not deliver an event on %r", publication.topic)

    async def _gate(self, publication: Publication, epoch: str, offset: int) -> None:
        """Deliver ``publication`` at (epoch, offset) in stream order, exactly once."""
        topic = publication.topic
        expected = self._next.get(topic)
        if expected is not None and expected[0] == epoch:
            if offset < expected[1]:
                return  # delivered already (a late or repeated bus message)
            if offset > expected[1]:
                await self._fill(publication.realm.name, topic, epoch, expected[1] - 1, offset - 1)
        self._deliver(publication, (epoch, offset))
        if expected is not None or self._subscribed(topic):  # no state for topics nobody here receives
            self._next[topic] = (epoch, offset + 1)

    async def _fill(self, realm: str, topic: str, epoch: str, after: int, upto: int) -> None:
        """Deliver the events of ``topic`` with offsets in (after, upto], read from the store."""
        from telegraphy.store import Position

        try:
            history = await self.store.read(topic, Position(epoch, after), upto - after)
        except Exception:
            self.store_errors += 1
            logger.exception("could not read the events %d..%d of %r to fill a gap", after + 1, upto, topic)
            return
        if not history.recovered:
            logger.warning("events %d..%d of %r are lost: %s", after + 1, upto, topic, history.reason)
            return
        bad = _BadRecords(topic)
        for stored in history.events:
            if stored.offset > upto:
                break
            try:
                publication = _publication(self.router, realm, topic, stored.data)
            except Exception as exc:
                bad.add(stored.offset, exc)
                publication = None
            if publication is not None:
                self._deliver(publication, (epoch, stored.offset))
            self._next[topic] = (epoch, stored.offset + 1)
        bad.log()

    async def _catch_up(self, realm: str, topic: str) -> int | None:
        """Deliver whatever the store has for ``topic`` beyond what this process delivered; return the stream's offset."""
        position = await self.store.position(topic)
        expected = self._next.get(topic)
        if expected is not None and expected[0] == position.epoch and expected[1] <= position.offset:
            await self._fill(realm, topic, position.epoch, expected[1] - 1, position.offset)
        elif expected is None or expected[0] != position.epoch:
            self._next[topic] = (position.epoch, position.offset + 1)
        return position.offset

    async def _forget(self, authid: str) -> int:
        for token, record in list(self._saves.items()):
            if record is not None and record.get("authid") == authid:
                self._saves[token] = None
        for token, record in list(self._records.items()):
            if record.get("authid") == authid:
                del self._records[token]
        await self._save_sessions()
        tokens = [entry["token"] for entry in await self.store.list_sessions(time.time()) if entry.get("authid") == authid]
        for token in tokens:
            await self.store.delete_session(token)
        return len(tokens)

    async def _save_sessions(self) -> None:
        saves, self._saves = self._saves, {}
        now = time.time()
        for token, record in saves.items():
            try:
                if record is None:
                    await self.store.delete_session(token)
                    continue
                positions = record["positions"]
                for subscription in record["subscriptions"]:
                    topic = subscription["topic"]
                    if subscription["match"] == "exact" and topic not in positions:
                        # Run before any publication accepted after the
                        # SUBSCRIBE is stored: this is the position at subscribe time.
                        position = await self.store.position(topic)
                        positions[topic] = [position.epoch, position.offset]
                        # The first event this process sees on the topic may come
                        # after others it must deliver first (another process
                        # stored them, the bus has not brought them yet): what
                        # follows this position is gated from here on.
                        self._next.setdefault(topic, (position.epoch, position.offset + 1))
                ttl = self.anonymous_session_ttl if record.get("authrole") == "anonymous" else self.session_ttl
                await self.store.save_session(token, record, ttl, now)
            except Exception:
                self.store_errors += 1
                logger.exception("could not save a session")
        if self._released or len(self._next) > self._sweep_at:
            self._release_topics()

    async def _complete_resume(self, job: _Resume) -> None:
        session = job.session
        if session.state is not SessionState.RESUMING:
            return
        from telegraphy.store import Position

        await self._save_sessions()
        try:
            record = await self.store.load_session(job.token, time.time())
        except Exception:
            self.store_errors += 1
            logger.exception("could not load a session to resume")
            record = None
        identity = session.identity
        realm = session.realm
        if (
            record is None
            or identity is None
            or realm is None
            or record.get("authid") != identity.authid
            or record.get("realm") != realm.name
        ):
            session.complete_resume(None)
            return
        subscriptions = [(s["topic"], s["match"], s.get("options") or {}) for s in record.get("subscriptions", [])]
        former = record.get("session")
        restored = Resumption(job.token, subscriptions, session_id=former if type(former) is int else None)
        read: set[str] = set()
        for topic, match, _ in subscriptions:
            if match != "exact":
                restored.errors[topic] = "pattern subscriptions have no stream position"
                restored.recovered[topic] = False
                continue
            if topic in read:
                # Several subscriptions on one topic (filters): its missed events are
                # read once; the broker gives each matching subscription its EVENT.
                continue
            read.add(topic)
            since = job.offsets.get(topic) or record.get("positions", {}).get(topic)
            if since is None:
                restored.recovered[topic] = False
                restored.errors[topic] = "no position known for the topic"
                continue
            try:
                # Everything stored so far reaches this process's subscribers
                # first; the replay then stops at the same point, so an event
                # can't come both replayed and live.
                upto = await self._catch_up(realm.name, topic)
                history = await self.store.read(topic, Position(since[0], since[1]), MAX_REPLAY + 1)
            except Exception:
                self.store_errors += 1
                logger.exception("could not read history of %r", topic)
                restored.recovered[topic] = False
                restored.errors[topic] = "history unavailable"
                continue
            if not history.recovered:
                restored.recovered[topic] = False
                restored.errors[topic] = history.reason or "history unavailable"
                continue
            if len(history.events) > MAX_REPLAY:
                restored.recovered[topic] = False
                restored.errors[topic] = f"more than {MAX_REPLAY} missed events"
                continue
            restored.recovered[topic] = True
            epoch = history.position.epoch
            bad = _BadRecords(topic)
            for stored in history.events:
                if upto is not None and stored.offset > upto:
                    break
                try:
                    restored.missed.append(_decode(topic, epoch, stored.offset, stored.data))
                except Exception as exc:
                    bad.add(stored.offset, exc)
            bad.log()
        # Still RESUMING? The connection may have gone while we read.
        session.complete_resume(restored)
        self._session_changed(session)


class _BadRecords:
    """Stored records of one topic that could not be read, logged once per read."""

    __slots__ = ("count", "first", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.count = 0
        self.first: tuple[int, str] | None = None

    def add(self, offset: int, exc: Exception) -> None:
        self.count += 1
        if self.first is None:
            self.first = (offset, type(exc).__name__)

    def log(self) -> None:
        if self.first is not None:
            logger.warning(
                "skipped %d stored event(s) of %r that cannot be read (first at offset %d: %s)",
                self.count, self.topic, *self.first,
            )


def _encode(publication: Publication) -> bytes:
    """The stored form of an event: what a replay needs to rebuild its EVENT."""
    record = {"p": publication.id, "d": publication.details, "a": publication.args, "k": publication.kwargs}
    if publication.event:
        record["e"] = 1
    # Who may get it travels with it (replay, other processes): the session-id lists,
    # and the publisher's own id when it excluded itself (WAMP §8.4.1).
    if publication.exclude is not None:
        record["x"] = sorted(publication.exclude)
    if publication.eligible is not None:
        record["l"] = sorted(publication.eligible)
    if publication.authlists is not None:
        record["w"] = publication.authlists.to_wire()
    if publication.exclude_me and publication.publisher is not None and publication.publisher.id is not None:
        record["s"] = publication.publisher.id
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _publication(router: Router, realm_name: str, topic: str, data: bytes) -> Publication | None:
    """Rebuild a publication from its stored form (for events of other processes)."""
    realm = router.realms.get(realm_name)
    if realm is None:
        return None
    record = _load(data)
    args = record.get("a")
    try:
        visibility = Visibility.of_event(args[0]) if args else None
    except InvalidAudience:
        return None
    exclude, eligible, authlists = _listed(record, None)
    return Publication(
        realm, topic, record["p"], args, record.get("k"), record.get("d", {}),
        exclude=exclude, eligible=eligible, event=bool(record.get("e")), visibility=visibility, authlists=authlists,
    )


#: What a malformed stored list becomes: nobody is eligible (fail closed).
_NOBODY: tuple[frozenset[int] | None, frozenset[int] | None, AuthLists | None] = (None, frozenset(), None)


def _listed(
    record: dict[str, Any], publisher: int | None
) -> tuple[frozenset[int] | None, frozenset[int] | None, AuthLists | None]:
    """The stored black- and whitelists of an event: session ids (``publisher`` added to ``exclude``), authids, authroles.

    Session ids are global (WAMP §7.1.3: random in [1, 2^53], drawn by each
    process from the system's random source), so the lists mean the same
    sessions on every process. A malformed list lets nobody have the event
    (fail closed).
    """
    lists: list[frozenset[int] | None] = []
    for key in ("x", "l"):
        value = record.get(key)
        if value is None:
            lists.append(None)
        elif isinstance(value, list) and all(type(v) is int for v in value):
            lists.append(frozenset(value))
        else:
            return _NOBODY
    exclude, eligible = lists
    if publisher is not None:
        exclude = (exclude or frozenset()) | {publisher}
    authlists = None
    wire = record.get("w")
    if wire is not None:
        try:
            authlists = AuthLists.parse(wire) if isinstance(wire, dict) else None
        except ApplicationError:
            return _NOBODY
        if authlists is None:
            return _NOBODY
    return exclude, eligible, authlists


def _decode(topic: str, epoch: str, offset: int, data: bytes) -> Missed:
    """A stored event as a resume replays it; the publisher's own session stays excluded if it asked to be."""
    record = _load(data)
    details = {**record.get("d", {}), "epoch": epoch, "offset": offset}
    args = record.get("a")
    if record.get("e") and args and isinstance(args[0], dict) and isinstance(args[0].get("meta"), dict):
        args[0]["meta"]["epoch"] = epoch
        args[0]["meta"]["offset"] = offset
    publisher = record.get("s")
    exclude, eligible, authlists = _listed(record, publisher if type(publisher) is int else None)
    return Missed(topic, record["p"], details, args, record.get("k"), exclude, eligible, authlists)


def _load(data: bytes) -> dict[str, Any]:
    """Parse a stored record and check it is one every peer can receive.

    Raises:
        ValueError: not a record, or a payload some serializer cannot carry
            (NaN, …; see :func:`telegraphy.wamp.serializer.unportable`).
    """
    record = json.loads(data)
    if not isinstance(record, dict) or type(record.get("p")) is not int:
        raise ValueError("not an event record")
    args, kwargs, details = record.get("a"), record.get("k"), record.get("d", {})
    if (args is not None and type(args) is not list) or (kwargs is not None and type(kwargs) is not dict) or type(details) is not dict:
        raise ValueError("not an event record")
    problem = unportable(details, "details") or unportable(args, "args") or unportable(kwargs, "kwargs")
    if problem is not None:
        raise ValueError(problem)
    return record
