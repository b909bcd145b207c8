"""The bus: how several gateway processes tell each other about published events.

A bus carries opaque messages to every other node. :func:`open_bus` picks a
backend by URL: ``local://`` (one process; nothing to tell) or ``redis://…``
(Redis pub/sub). Delivery on a bus is at most once and may reorder across
publishers; the gateway restores per-topic order and fills gaps from the
store, so the bus only needs to be fast. Every message on a shared bus is
signed with a key derived from the gateway secret and verified on receipt
(:class:`BusSigner`): forged ones are dropped.

A :class:`NodeBus` (Redis) also carries messages to one named node and
keeps leases naming a node: SockJS sessions use them to be served by
whichever node a request reaches (:mod:`telegraphy.tornado_gateway.sockjs_nodes`).
"""

from __future__ import annotations

from .base import Bus, BusError, BusSigner, InvalidBusMessage, NodeBus, bus_key, node_bus, open_bus

__all__ = ["Bus", "BusError", "BusSigner", "InvalidBusMessage", "NodeBus", "bus_key", "node_bus", "open_bus"]
