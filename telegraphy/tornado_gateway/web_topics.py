"""The topics of web-app events, kept in the store so they outlive a restart.

The router remembers every topic the HTTP API published on
(:class:`telegraphy.wamp.channels.WebTopics`): no WAMP client may publish
there. :class:`StoredWebTopics` loads that set from the store when the
gateway starts and writes it back whenever it grows, under the persistent
subscriptions of the owner :data:`OWNER` (a name no user or anonymous
session can have), so every node sharing the store knows it. Nodes running
meanwhile learn new topics from the events themselves: a web-app event
carries ``publisher_authrole: "web"`` in its details, over the bus and in
the history, and the router remembers its topic when it delivers it.

A save reads the stored set and merges it first, so two nodes adding topics
at the same time lose nothing but in the narrow window of a concurrent
read-and-write; any later save of either node writes the union again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telegraphy.store import Store
    from telegraphy.wamp.channels import WebTopics

__all__ = ["OWNER", "StoredWebTopics"]

logger = logging.getLogger("telegraphy.gateway")

#: The store owner whose subscriptions hold the web-app topics.
OWNER = "telegraphy:web-topics"


class StoredWebTopics:
    """Loads a :class:`WebTopics` set from a store and saves it as it grows.

    Call :meth:`load` once the store is open (it also hooks ``on_added``),
    and :meth:`close` before closing the store.
    """

    def __init__(self, topics: WebTopics, store: Store) -> None:
        self.topics = topics
        self.store = store
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Merge the stored topics into the set and save from now on.

        Raises:
            Exception: whatever the store raises (the gateway cannot start
                without knowing which topics are the web app's).
        """
        self.topics.load(await self.store.get_subscriptions(OWNER))
        self.topics.on_added = self._added

    def _added(self, topic: str) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._save())

    async def _save(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                self.topics.load(await self.store.get_subscriptions(OWNER))
                await self.store.set_subscriptions(OWNER, self.topics.entries())
            except Exception:
                logger.exception("could not save the topics of web-app events; retrying with the next new topic")
                return

    async def close(self) -> None:
        """Finish a save in progress."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
