"""The bus: how several gateway processes tell each other about published events.

A bus carries opaque messages to every other node. :func:`open_bus` picks a
backend by URL: ``local://`` (one process; nothing to tell) or ``redis://…``
(Redis pub/sub). Delivery on a bus is at most once and may reorder across
publishers; the gateway restores per-topic order and fills gaps from the
store, so the bus only needs to be fast.
"""

from __future__ import annotations

from .base import Bus, BusError, open_bus

__all__ = ["Bus", "BusError", "open_bus"]
