"""Counters of the gateway and their Prometheus text exposition.

Hot paths bump plain integer attributes (``metrics.events_delivered += n``):
no locks (the gateway runs on one event loop thread), no per-increment dict
lookups. Only errors, which are rare, touch a dict. Gauges (how many
connections, sessions, … right now) are not stored here: the caller passes
them to :meth:`Metrics.render`, which reads everything at scrape time.

The output follows the Prometheus text format 0.0.4: a ``# HELP`` and a
``# TYPE`` line per metric, names prefixed ``telegraphy_``, counters ending
in ``_total``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = ["CONTENT_TYPE", "Metrics"]

#: The Content-Type of :meth:`Metrics.render`'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PREFIX = "telegraphy_"

# (attribute, help) of every plain counter, in exposition order.
_COUNTERS: tuple[tuple[str, str], ...] = (
    ("connections_opened", "Client connections (WebSocket and others) accepted."),
    ("connections_closed", "Client connections closed, for any reason."),
    ("messages_received", "WAMP messages received from clients."),
    ("protocol_errors", "Client messages refused as protocol violations."),
    ("slow_consumers", "Connections closed because they stopped reading (outgoing buffer full)."),
    ("events_published", "Events published, from the HTTP API and from WAMP clients."),
    ("events_delivered", "Events delivered to subscribers (one per subscriber)."),
    ("publish_requests", "HTTP requests to /publish."),
    ("publish_errors", "HTTP requests to /publish refused or failed."),
    ("duplicate_events", "Events not delivered because their id (meta.id) was published before, within the dedup window (a retried publish)."),
    ("requests_unauthorized", "SUBSCRIBE and PUBLISH refused with wamp.error.not_authorized (channels, private channels, roles)."),
    ("subscriptions_refused", "SUBSCRIBEs refused with telegraphy.error.limit_exceeded (--max-subscriptions)."),
    (
        "subscriptions_over_budget",
        "SUBSCRIBEs refused with telegraphy.error.limit_exceeded by the gateway-wide budget (--max-total-subscriptions, --max-filters-total).",
    ),
    ("publishes_throttled", "Client PUBLISHes refused or dropped by the publish rate limit (--publish-rate)."),
    ("sessions_flooding", "Sessions closed (ABORT telegraphy.error.flooding, close 1008) for flooding publishes."),
    ("connections_throttled", "WebSocket and SockJS connections refused with 429 by the per-IP rate (--connection-rate)."),
    ("revocations", "Revocations applied (POST /revoke, and those of other gateway processes on the bus)."),
    ("sockjs_forwarded", "SockJS requests forwarded to the gateway node holding their session (over the bus)."),
    ("bus_messages_rejected", "Bus messages dropped: unsigned, forged or stale (not signed with this gateway's secret)."),
)

# Help lines of the gauges the gateway reports; others get a generic line.
_GAUGE_HELP = {
    "connections": "Client connections open now.",
    "sessions": "WAMP sessions joined to the realm now.",
    "subscriptions": "Subscriptions held by the broker now.",
    "registrations": "Procedure registrations held by the dealer now.",
    "uptime_seconds": "Seconds since the gateway started.",
}

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class Metrics:
    """The gateway's counters; one instance per gateway process.

    Increment the attributes directly; call :meth:`publish_error` for a
    failed ``/publish`` request so the total and the per-code count agree.

    Attributes:
        connections_opened: client connections accepted.
        connections_closed: client connections closed.
        events_published: events accepted for fan-out (HTTP and WAMP).
        events_delivered: events sent to subscribers, one per subscriber.
        publish_requests: HTTP requests to ``/publish``.
        publish_errors: ``/publish`` requests answered with an error.
        publish_errors_by_code: the same, by error code
            (``"unauthorized"``, ``"invalid_event"``, …).
        duplicate_events: events dropped as a repeat of an id in the dedup window.
        messages_received: WAMP messages received from clients.
        protocol_errors: client messages refused as protocol violations.
        slow_consumers: connections closed because their outgoing buffer filled.
        requests_unauthorized: SUBSCRIBE/PUBLISH refused as not authorized.
        subscriptions_refused: SUBSCRIBEs over ``--max-subscriptions``.
        subscriptions_over_budget: SUBSCRIBEs over ``--max-total-subscriptions``
            or ``--max-filters-total``.
        publishes_throttled: client PUBLISHes over ``--publish-rate``.
        sessions_flooding: sessions closed for flooding publishes.
        connections_throttled: connections refused by ``--connection-rate``.
        revocations: revocations applied.
        sockjs_forwarded: SockJS requests forwarded to the node holding their session.
        bus_messages_rejected: bus messages dropped by signature verification.
    """

    def __init__(self) -> None:
        self.connections_opened = 0
        self.connections_closed = 0
        self.events_published = 0
        self.events_delivered = 0
        self.publish_requests = 0
        self.publish_errors = 0
        self.duplicate_events = 0
        self.publish_errors_by_code: dict[str, int] = {}
        self.messages_received = 0
        self.protocol_errors = 0
        self.slow_consumers = 0
        self.requests_unauthorized = 0
        self.subscriptions_refused = 0
        self.subscriptions_over_budget = 0
        self.publishes_throttled = 0
        self.sessions_flooding = 0
        self.connections_throttled = 0
        self.revocations = 0
        self.sockjs_forwarded = 0
        self.bus_messages_rejected = 0

    def publish_error(self, code: str) -> None:
        """Count one ``/publish`` request answered with error ``code``."""
        self.publish_errors += 1
        self.publish_errors_by_code[code] = self.publish_errors_by_code.get(code, 0) + 1

    def render(self, gauges: Mapping[str, float] | None = None) -> str:
        """Return every counter and the given gauges in Prometheus text format.

        Args:
            gauges: current values by short name (``"connections"``,
                ``"sessions"``, …); each becomes ``telegraphy_<name>``.
                Names are sanitized to ``[a-zA-Z0-9_]``.
        """
        lines: list[str] = []
        for attribute, help_text in _COUNTERS:
            name = f"{PREFIX}{attribute}_total"
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            lines.append(f"{name} {getattr(self, attribute)}")
        name = f"{PREFIX}publish_errors_by_code_total"
        lines.append(f"# HELP {name} HTTP requests to /publish refused or failed, by error code.")
        lines.append(f"# TYPE {name} counter")
        for code, count in sorted(self.publish_errors_by_code.items()):
            lines.append(f'{name}{{code="{_escape_label(code)}"}} {count}')
        for short, value in (gauges or {}).items():
            clean = _INVALID_NAME_CHARS.sub("_", short)
            name = f"{PREFIX}{clean}"
            help_text = _GAUGE_HELP.get(short, f"Current value of {clean}.")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {_format_value(value)}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        values = ", ".join(f"{attribute}={getattr(self, attribute)}" for attribute, _ in _COUNTERS)
        return f"Metrics({values})"


def _format_value(value: float) -> str:
    """Format a sample value: integers exactly, specials as Prometheus spells them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and newline (format 0.0.4)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
