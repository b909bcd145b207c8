"""Exceptions of the store.

::

    StoreError                  root; anything the store cannot do
    ├── StoreUnavailable        the server (or database file) cannot be reached
    ├── StoreNotOpen            a method was called before open() or after close()
    └── StoreConfigError        a bad store URL or option (the caller's configuration)
        └── MissingDependency   the backend's package is not installed

Arguments that break a method's contract (a negative offset, a subscription
without a topic, a record that is not JSON) raise the built-in ``ValueError``
or ``TypeError``: they are bugs in the calling code, not store failures.

Messages are short, lowercase and carry their values. A URL in a message never
shows its password (see :func:`redact_url`). ``http_status`` is the hint for an
HTTP boundary (the management API, ``/publish`` with the store on).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "MissingDependency",
    "StoreConfigError",
    "StoreError",
    "StoreNotOpen",
    "StoreUnavailable",
    "redact_url",
]

#: Query parameters whose values are secrets (redis-py accepts ``?password=``).
_SECRET_PARAMETERS = frozenset({"password", "pass", "secret", "token"})


def redact_url(url: str) -> str:
    """Return ``url`` with its password (in the user part or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc, query = parts.netloc, parts.query
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _SECRET_PARAMETERS for key, _ in pairs):
        query = urlencode(
            [(key, "***" if key.lower() in _SECRET_PARAMETERS else value) for key, value in pairs],
            safe="*",
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


class StoreError(Exception):
    """Root of the store's exceptions."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailable(StoreError):
    """The store's server or file cannot be reached; retrying later may work."""

    http_status = 503

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"store {self.url} is unavailable: {reason}")


class StoreNotOpen(StoreError):
    """A store method was called before ``await store.open()`` or after ``close()``."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        super().__init__(f"{backend} store is not open: call await store.open() first")


class StoreConfigError(StoreError):
    """A store URL or option is invalid; the message says what is accepted."""


class MissingDependency(StoreConfigError):
    """The backend a URL asks for needs a package that is not installed."""

    def __init__(self, backend: str, package: str, extra: str) -> None:
        self.backend = backend
        self.package = package
        self.extra = extra
        super().__init__(f"the {backend} store needs the {package!r} package: pip install telegraphy[{extra}]")
