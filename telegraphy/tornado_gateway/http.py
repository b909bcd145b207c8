"""HTTP handlers of the gateway: ``POST /publish``, ``GET /health``, ``GET /metrics``, management.

The handlers are thin: parsing and checking the publish body is done by
:func:`parse_publish_body`, tokens by :mod:`telegraphy.tokens`, events by
:mod:`telegraphy.event`, and the fan-out by the gateway object every handler
receives as its ``gateway`` init argument (see :mod:`.app`).

Every error response, including Tornado's own (405, 500, …), has one JSON
shape, ``{"error": "<code>", "detail": "<what and where>"}``; a 500 carries
no detail, and its traceback goes to the log, never to the peer. Requests
refused before a handler exists (malformed HTTP, oversized heads and
bodies) get the same shape from :mod:`.server`.

``GET /health`` says only ``{"status": "ok"}``. ``GET /metrics`` requires
``--metrics-token`` as a bearer token when set, and otherwise answers only
local clients that came through no proxy (403 ``forbidden`` for others).

Publish error codes: ``unauthorized`` (401), ``invalid_json``,
``invalid_event``, ``empty_batch``, ``batch_too_large`` (400),
``body_too_large`` (413), ``unsupported_media_type`` (415),
``method_not_allowed`` (405), ``internal_error`` (500).

Management (``GET /sessions``, ``/subscriptions?user=``, ``/subscribers?topic=``
and its alias ``/subscriptors``): a manage token is required (``unauthorized``,
401; it lives at most five minutes, and may be reused within that time:
these reads change nothing); a missing query parameter is ``missing_parameter`` (400); a store that
cannot be read is ``store_unavailable`` (503). The data comes from
:mod:`.management`.

Revocation (``POST /revoke``, a manage token minted for this one request:
its ``body_sha256`` is the hash of the body and it is accepted once, see
:mod:`telegraphy.tokens`; JSON body ``{"user": "<id>",
"logout": bool, "grants": {"groups": [...], "perms": [...], "superuser":
bool} | null}``): answered ``200 {"sessions": n}``, ``n`` the user's live
sessions on this gateway process. Errors: ``unauthorized`` (401),
``invalid_json``, ``invalid_revocation`` (400, with ``field``),
``body_too_large`` (413), ``bus_unavailable`` / ``store_unavailable`` (503:
applied on this process, but not forwarded or not forgotten; retrying is
safe).
"""

from __future__ import annotations

import functools
import hmac
import inspect
import json
import logging
import math
import re
import time
from typing import TYPE_CHECKING, Any

import tornado.web

from telegraphy.event import InvalidEvent, json_type, validate_event
from telegraphy.tokens import TokenError, verify_manage_token, verify_publish_token
from telegraphy.wamp.serializer import unportable
from telegraphy.tornado_gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from telegraphy.tornado_gateway.server import LINGER_BYTES, TrustedProxies, is_local_request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegraphy.tornado_gateway.gateway import Gateway

__all__ = [
    "ApiError",
    "HealthHandler",
    "JsonHandler",
    "MetricsHandler",
    "NotFoundHandler",
    "PublishHandler",
    "RevokeHandler",
    "SessionsHandler",
    "SubscribersHandler",
    "SubscriptionsHandler",
    "parse_publish_body",
]

logger = logging.getLogger("telegraphy.gateway.http")

JSON_CONTENT_TYPE = "application/json"

#: A too-large body is still read (and thrown away) up to this many times
#: the limit (and at least the server's :data:`~.server.LINGER_BYTES`, what
#: it reads of any refused body), so the client, which is usually busy
#: sending, gets a clean 413 and keeps its connection; beyond that the 413 is
#: sent at once and the connection closed.
DRAIN_FACTOR = 4

# The code of each status when Tornado, not us, raised the error.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
}


class ApiError(tornado.web.HTTPError):
    """An error answered to the peer as ``{"error": code, "detail": detail}``.

    Args:
        status: the HTTP status.
        code: the stable, machine-readable error code.
        detail: what is wrong and where, safe to show to the peer.
        headers: extra response headers (``WWW-Authenticate``, ``Allow``).
        extra: extra members of the JSON body (``field``, ``index``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        # No log_message: Tornado then does not log it as a warning; the
        # access log already has the status.
        super().__init__(status)
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.detail}"


def parse_publish_body(body: bytes, max_batch: int) -> list[dict[str, Any]]:
    """Parse and validate a ``/publish`` body: one event or an array of events.

    Every event is checked before any is returned, so a caller that
    publishes the result publishes all of them or none.

    Args:
        body: the raw request body (UTF-8 JSON).
        max_batch: the most events allowed in one body.

    Raises:
        ApiError: ``invalid_json``, ``invalid_event``, ``empty_batch`` or
            ``batch_too_large`` (all 400).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not utf-8: invalid byte at offset {exc.start}") from None
    if not text.strip():
        raise ApiError(400, "invalid_json", "body is empty: send an event object or an array of events")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int64)
        if _SURROGATE_ESCAPE.search(text):
            # A lone surrogate ("\ud800") parses, but cannot be encoded as
            # UTF-8 for subscribers: find out now, before publishing.
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"{exc.msg.lower()} at line {exc.lineno} column {exc.colno}") from None
    except _Undeliverable as exc:
        raise ApiError(400, "invalid_event", str(exc), extra={"field": None, "index": None}) from None
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_event", "a string holds a lone utf-16 surrogate", extra={"field": None, "index": None}) from None
    except ValueError as exc:  # from _refuse_constant
        raise ApiError(400, "invalid_json", str(exc)) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "json nesting is too deep") from None

    if isinstance(document, dict):
        batch, single = [document], True
    elif isinstance(document, list):
        batch, single = document, False
    else:
        raise ApiError(
            400,
            "invalid_event",
            f"body must be an event object or an array of events, got {json_type(document)}",
            extra={"field": "event", "index": None},
        )
    if not batch:
        raise ApiError(400, "empty_batch", "the batch is empty: send at least one event")
    if len(batch) > max_batch:
        raise ApiError(400, "batch_too_large", f"the batch has {len(batch)} events, the limit is {max_batch}")
    try:
        for index, event in enumerate(batch):
            validate_event(event, None if single else index)
    except InvalidEvent as exc:
        raise ApiError(400, "invalid_event", str(exc), extra={"field": exc.field, "index": exc.index}) from None
    for index, event in enumerate(batch):
        # What every subscriber's serializer carries (nesting depth included), as for client PUBLISHes.
        problem = unportable(event, "event", level=2)  # it travels as args[0]
        if problem is not None:
            raise ApiError(400, "invalid_event", f"cannot be delivered to every client: {problem}", extra={"field": None, "index": None if single else index})
    return batch


class _Undeliverable(ValueError):
    """Valid JSON that a subscriber could not receive (JSON or msgpack)."""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Undeliverable(f"number {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    # msgpack (wamp.2.msgpack) carries integers of at most 64 bits; the
    # length check spares int() a 4,000-digit number.
    if len(text) > 21 or not _INT_MIN <= (value := int(text)) <= _INT_MAX:
        raise _Undeliverable(f"integer {text[:40]} is out of range: integers must fit in 64 bits")
    return value


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not, and
    # neither do browsers' JSON.parse.
    raise ValueError(f"{name} is not valid json")



class JsonHandler(tornado.web.RequestHandler):
    """Base handler: JSON bodies, and JSON error bodies for every error."""

    def set_default_headers(self) -> None:
        # The Tornado version is nobody's business.
        self.clear_header("Server")

    def write_json(self, status: int, payload: Any) -> None:
        """Finish the response with ``payload`` as JSON and ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Write the JSON error shape; never a traceback.

        Tornado calls this for every error: our :class:`ApiError`, its own
        ``HTTPError`` (405 for an unknown method, …) and uncaught exceptions
        (500, already logged with the traceback by ``log_exception``).
        """
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, ApiError):
            code = exc.code
            body = {"error": code, "detail": exc.detail, **exc.extra}
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif status_code >= 500:
            code = "internal_error"
            body = {"error": code}
        else:
            code = _STATUS_CODES.get(status_code, "http_error")
            body = {"error": code, "detail": self._default_detail(status_code)}
        if status_code == 405 and not self._headers.get("Allow"):
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        self.on_error(code)
        self.set_header("Content-Type", JSON_CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, separators=(",", ":"), ensure_ascii=False))

    def on_error(self, code: str) -> None:
        """Hook called once per error response with its code; counts nothing here."""

    def _default_detail(self, status_code: int) -> str:
        if status_code == 405:
            return f"method {self.request.method} is not allowed on {self.request.path}"
        return self._reason.lower()

    def _allowed_methods(self) -> list[str]:
        cls = type(self)
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(cls, method.lower(), None) is not getattr(tornado.web.RequestHandler, method.lower(), None)
        ]


class NotFoundHandler(JsonHandler):
    """Answers every unknown path with a JSON 404 (the app's default handler)."""

    def prepare(self) -> None:
        """Refuse the request, whatever its method."""
        raise ApiError(404, "not_found", f"no such path: {self.request.path[:200]}")


class _GatewayHandler(JsonHandler):
    """A handler that talks to the gateway passed as its init argument."""

    gateway: Gateway

    def initialize(self, gateway: Gateway) -> None:
        """Keep the gateway; Tornado calls this with the route's kwargs."""
        self.gateway = gateway

    def authenticate(self, verify: Callable[[str, str, float], dict[str, Any]], kind: str) -> dict[str, Any]:
        """Check the request's ``Authorization: Bearer <token>`` with ``verify``; return the claims.

        ``kind`` names the token in messages (``publish``, ``manage``).

        Raises:
            ApiError: ``unauthorized`` (401) with a ``WWW-Authenticate`` challenge.
        """
        header = self.request.headers.get("Authorization")
        # RFC 6750 §3: no error code when no credentials were sent at all.
        challenge = 'Bearer realm="telegraphy"'
        if header is None or not header.strip():
            raise ApiError(401, "unauthorized", f"missing authorization header: send 'Bearer <{kind} token>'", headers={"WWW-Authenticate": challenge})
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(
                401,
                "unauthorized",
                f"authorization scheme must be Bearer, got {scheme[:20]!r}",
                headers={"WWW-Authenticate": challenge},
            )
        try:
            return verify(token.strip(), self.gateway.config.secret or "", self.gateway.config.jwt_leeway)
        except (TokenError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, TokenError) else "no secret configured"
            raise ApiError(
                401,
                "unauthorized",
                reason,
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token", error_description="{reason}"'},
            ) from None


@tornado.web.stream_request_body
class PublishHandler(_GatewayHandler):
    """``POST /publish``: authenticated events from a web app, fanned out.

    The body is streamed in so that its size is checked while it arrives
    (and from ``Content-Length`` before it arrives). The header checks run
    in :meth:`prepare`; a failure there is answered once the body has been
    read, so a keep-alive connection stays usable after a refused request.
    Everything is validated before anything is published.
    """

    def initialize(self, gateway: Gateway) -> None:
        """Set up the per-request state."""
        super().initialize(gateway)
        self._chunks: list[bytes] = []
        self._received = 0
        self._refusal: ApiError | None = None
        self._counted = False
        limit = gateway.config.max_body_size
        self._drain_limit = max(DRAIN_FACTOR * limit, LINGER_BYTES)

    def prepare(self) -> None:
        """Check method, size, media type and token before the body arrives."""
        self._count_request()
        if self.request.method != "POST":
            raise ApiError(405, "method_not_allowed", f"use POST to publish, not {self.request.method}", headers={"Allow": "POST"})
        # This handler enforces the body limits itself, with JSON answers;
        # Tornado's own check would drop the connection with a bare 400.
        self.request.connection.set_max_body_size(2**62)  # type: ignore[union-attr]
        limit = self.gateway.config.max_body_size
        declared = self._declared_length()
        if declared is not None and declared > limit:
            detail = f"body is {declared} bytes, the limit is {limit}"
            if self.request.headers.get("Expect", "").lower() == "100-continue" or declared > self._drain_limit:
                # The client waits for "100 Continue" (it is not sending),
                # or the body is too big to read: answer now; Tornado then
                # closes the connection since the body was not read.
                self._refuse_now(detail)
            else:
                # The client is sending the body: read and drop it, then
                # answer, so it sees the 413 and not a reset connection.
                self._refusal = self._too_large(detail)
            return
        try:
            self._check_media_type()
            self.authenticate(verify_publish_token, "publish")
        except ApiError as exc:
            self._refusal = exc

    def data_received(self, chunk: bytes) -> None:
        """Collect the body; refuse it once it exceeds the limit."""
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self._drain_limit:
            # Too much to keep reading just to answer politely.
            self._refuse_now(f"body is over {self.gateway.config.max_body_size} bytes")
            return
        if self._refusal is not None:
            return  # refused already: read and drop the rest
        limit = self.gateway.config.max_body_size
        if self._received > limit:
            # No Content-Length (a chunked body) told us in advance.
            self._chunks.clear()
            self._refusal = self._too_large(f"body is over {limit} bytes")
            return
        self._chunks.append(chunk)

    async def post(self) -> None:
        """Validate every event, publish them all, answer 202 with their ids."""
        if self._finished:
            return
        if self._refusal is not None:
            raise self._refusal
        events = parse_publish_body(b"".join(self._chunks), self.gateway.config.max_batch)
        self._chunks = []
        result: list[str] | Awaitable[list[str]] = self.gateway.publish_events(events)
        ids = await result if inspect.isawaitable(result) else result
        self.write_json(202, {"published": len(events), "ids": list(ids)})

    def on_error(self, code: str) -> None:
        """Count the refused or failed request."""
        self._count_request()
        self.gateway.metrics.publish_error(code)
        logger.debug("publish refused: %s (%s)", code, self.request.remote_ip)

    def _count_request(self) -> None:
        # Once per request, whether or not prepare() ran (Tornado refuses
        # unknown methods before calling it).
        if not self._counted:
            self._counted = True
            self.gateway.metrics.publish_requests += 1

    def _declared_length(self) -> int | None:
        value = self.request.headers.get("Content-Length")
        if value is None:
            return None
        try:
            return int(value.split(",")[0].strip())
        except ValueError:
            return None  # Tornado's HTTP parser refuses it

    def _too_large(self, detail: str, *, close: bool = False) -> ApiError:
        limit = self.gateway.config.max_body_size
        headers = {"Connection": "close"} if close else None
        return ApiError(413, "body_too_large", detail, headers=headers, extra={"limit": limit})

    def _refuse_now(self, detail: str) -> None:
        """Answer 413 before the body is read; the connection closes after it."""
        self.send_error(413, exc_info=(ApiError, self._too_large(detail, close=True), None))

    def _check_media_type(self) -> None:
        content_type = self.request.headers.get("Content-Type")
        if content_type is not None:
            media_type, _, params = content_type.partition(";")
            media_type = media_type.strip().lower()
            if media_type != "application/json" and not media_type.endswith("+json"):
                raise ApiError(415, "unsupported_media_type", f"content type must be application/json, got {media_type or 'empty'!r}")
            for param in params.split(";"):
                name, _, value = param.partition("=")
                if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                    raise ApiError(415, "unsupported_media_type", f"charset must be utf-8, got {value.strip()!r}")
        encoding = self.request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ApiError(415, "unsupported_media_type", f"content encoding {encoding!r} is not supported")


#: Largest ``/revoke`` body: a user id and at most a few thousand group and permission names.
MAX_REVOKE_BODY = 256 * 1024


class RevokeHandler(_GatewayHandler):
    """``POST /revoke``: a user logged out, or their grants changed; applied to their live sessions at once."""

    claims: dict[str, Any]

    def prepare(self) -> None:
        """Refuse the request unless it is a POST with a valid manage token bound to its body, of a sane size."""
        if self.request.method != "POST":
            raise ApiError(405, "method_not_allowed", f"use POST to revoke, not {self.request.method}", headers={"Allow": "POST"})
        body = self.request.body
        # The token names this exact body (body_sha256): a captured token
        # cannot carry another revocation.
        self.claims = self.authenticate(functools.partial(verify_manage_token, body=body), "manage")
        if len(body) > MAX_REVOKE_BODY:
            raise ApiError(413, "body_too_large", f"body is {len(body)} bytes, the limit is {MAX_REVOKE_BODY}")

    async def post(self) -> None:
        """Apply the revocation; answer 200 with the number of live sessions concerned here."""
        user, logout, grants = parse_revoke_body(self.request.body)
        from telegraphy.tornado_gateway.gateway import RevocationIncomplete

        # Each manage token is used once: a replayed request changes nothing.
        try:
            fresh = await self.gateway.use_manage_token(self.claims)
        except Exception:
            logger.exception("revoke: could not record the manage token as used")
            raise ApiError(503, "store_unavailable", "could not check the token: retry with a new one") from None
        if not fresh:
            reason = "token already used: mint a new one per request"
            raise ApiError(
                401,
                "unauthorized",
                reason,
                headers={"WWW-Authenticate": f'Bearer realm="telegraphy", error="invalid_token", error_description="{reason}"'},
            )

        try:
            sessions = await self.gateway.revoke(user, grants, logout)
        except ValueError as exc:
            field = str(exc).split(":", 1)[0]
            raise ApiError(400, "invalid_revocation", str(exc), extra={"field": field}) from None
        except RevocationIncomplete as exc:
            code = "bus_unavailable" if exc.part == "bus" else "store_unavailable"
            raise ApiError(503, code, f"applied on this gateway, but the {exc.part} failed: retry") from None
        self.write_json(200, {"sessions": sessions})


def parse_revoke_body(body: bytes) -> tuple[str, bool, dict[str, Any] | None]:
    """Return (user, logout, grants) of a ``/revoke`` body.

    Raises:
        ApiError: ``invalid_json`` or ``invalid_revocation`` (400).
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "body must be a JSON object: {\"user\", \"logout\", \"grants\"}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_revocation", f"body must be an object, got {json_type(document)}", extra={"field": None})
    unknown = set(document) - {"user", "logout", "grants"}
    if unknown:
        field = min(unknown)
        raise ApiError(400, "invalid_revocation", f"unknown key {field!r}: a revocation has user, logout, grants", extra={"field": field})
    user = document.get("user")
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)
    if not isinstance(user, str) or not user or len(user) > 256:
        raise ApiError(400, "invalid_revocation", "'user' must be a non-empty string (the user id)", extra={"field": "user"})
    logout = document.get("logout", False)
    if not isinstance(logout, bool):
        raise ApiError(400, "invalid_revocation", f"'logout' must be a boolean, got {json_type(logout)}", extra={"field": "logout"})
    grants = document.get("grants")
    if grants is not None and not isinstance(grants, dict):
        raise ApiError(400, "invalid_revocation", f"'grants' must be an object or null, got {json_type(grants)}", extra={"field": "grants"})
    if not logout and grants is None:
        raise ApiError(400, "invalid_revocation", "nothing to do: set 'logout' to true or give 'grants'", extra={"field": "grants"})
    return user, logout, grants


class HealthHandler(_GatewayHandler):
    """``GET /health``: liveness only, open to anyone.

    It says nothing else (no version, uptime or counts): anyone can read
    it, and activity is for ``/metrics``, which is protected.
    """

    def get(self) -> None:
        """Answer 200 ``{"status": "ok"}``."""
        self.write_json(200, {"status": "ok"})


class MetricsHandler(_GatewayHandler):
    """``GET /metrics``: every counter and gauge in Prometheus text format.

    With ``--metrics-token`` set, the request must carry ``Authorization:
    Bearer <token>``. Without it, only a client on this host that came
    through no proxy may read it (a loopback peer that is not a trusted
    proxy and sent no forwarding header); anyone else gets 403.
    """

    def prepare(self) -> None:
        """Refuse the request unless it may read the metrics."""
        token = self.gateway.config.metrics_token
        challenge = 'Bearer realm="telegraphy-metrics"'
        if token is None:
            if not is_local_request(self.request, TrustedProxies(self.gateway.config.trusted_proxies)):
                raise ApiError(
                    403,
                    "forbidden",
                    "metrics are served to local clients only: set --metrics-token to scrape them remotely",
                )
            return
        header = self.request.headers.get("Authorization", "").strip()
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <metrics token>'", headers={"WWW-Authenticate": challenge})
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "invalid metrics token",
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'},
            )

    def get(self) -> None:
        """Answer 200 with the exposition text."""
        gauges = dict(self.gateway.gauges())
        gauges["uptime_seconds"] = round(time.monotonic() - self.gateway.started_at, 3)
        self.set_header("Content-Type", METRICS_CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(self.gateway.metrics.render(gauges))


class _ManagementHandler(_GatewayHandler):
    """A management endpoint: a manage token is required, GET only.

    Its handlers import :mod:`.management` when called: it pulls in the WAMP
    core, which this module (and the config tests) otherwise do not need.
    """

    def prepare(self) -> None:
        """Refuse the request unless it carries a valid manage token."""
        self.authenticate(verify_manage_token, "manage")

    def required_argument(self, name: str) -> str:
        """Return the query parameter ``name``, or refuse the request if it is missing or empty."""
        value = self.get_query_argument(name, "").strip()
        if not value:
            raise ApiError(400, "missing_parameter", f"query parameter {name!r} is required", extra={"parameter": name})
        return value

    async def from_store(self, report: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Await a report that reads the store; a store failure is a 503, logged here."""
        try:
            return await report
        except Exception:
            logger.exception("management: could not read the store")
            raise ApiError(503, "store_unavailable", "the session store could not be read") from None


class SessionsHandler(_ManagementHandler):
    """``GET /sessions``: the live sessions of this gateway process."""

    def get(self) -> None:
        """Answer 200 with ``{"count", "sessions"}``."""
        from telegraphy.tornado_gateway import management

        self.write_json(200, management.live_sessions(self.gateway.router))


class SubscriptionsHandler(_ManagementHandler):
    """``GET /subscriptions?user=<authid>``: a user's live and persistent subscriptions."""

    async def get(self) -> None:
        """Answer 200 with ``{"user", "live", "persistent"}``."""
        from telegraphy.tornado_gateway import management

        user = self.required_argument("user")
        gateway = self.gateway
        report = await self.from_store(management.user_subscriptions(gateway.router, gateway.store, user, time.time()))
        self.write_json(200, report)


class SubscribersHandler(_ManagementHandler):
    """``GET /subscribers?topic=<topic>`` (alias ``/subscriptors``): who gets the topic's events."""

    async def get(self) -> None:
        """Answer 200 with ``{"topic", "live", "persistent"}``."""
        from telegraphy.tornado_gateway import management

        topic = self.required_argument("topic")
        gateway = self.gateway
        report = await self.from_store(management.topic_subscribers(gateway.router, gateway.store, topic, time.time()))
        self.write_json(200, report)
