"""Choosing a store by URL: :func:`open_store`.

::

    memory://                           in this process only; a new epoch on every start
    sqlite:///relative/path.db          a file, relative to the working directory
    sqlite:////absolute/path.db         a file, absolute path
    sqlite://:memory:                   a private in-memory SQLite database
    redis://[:password@]host:port/db    Redis (rediss:// for TLS); pip install telegraphy[redis]
    mongodb://[user:password@]host/db   MongoDB (mongodb+srv:// too); pip install telegraphy[mongodb]

Options, for every backend: ``max_events`` (per topic, default 10,000),
``max_age`` (seconds, default 24 hours) and ``prefix`` (of table, key or
collection names, default ``telegraphy``). ``open_store`` only builds the
store; ``await store.open()`` connects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from .base import Store
from .errors import MissingDependency, StoreConfigError, redact_url

__all__ = ["SCHEMES", "open_store"]

#: Every URL scheme :func:`open_store` accepts.
SCHEMES = ("memory", "sqlite", "redis", "rediss", "mongodb", "mongodb+srv")

_OPTIONS = ("max_events", "max_age", "prefix", "dedup_max_events", "dedup_max_age")


def open_store(url: str, **options: Any) -> Store:
    """Build the store a URL names (not yet opened: ``await store.open()`` next).

    Args:
        url: one of the forms listed in this module's docstring.
        **options: ``max_events``, ``max_age``, ``prefix``, ``dedup_max_events``, ``dedup_max_age``.

    Raises:
        StoreConfigError: an unknown scheme, a malformed URL or an unknown or invalid option.
        MissingDependency: the backend's package is not installed (the message names the extra).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise StoreConfigError(f"unknown store option {unknown[0]!r} (supported: {', '.join(_OPTIONS)})")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "url without a scheme"
        raise StoreConfigError(
            f"unsupported store {shown} in {redact_url(url)!r} (supported: {', '.join(s + '://' for s in SCHEMES)})"
        )
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore(**options)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), url=url, **options)
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisStore
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "redis":
                raise MissingDependency("redis", "redis", "redis") from exc
            raise
        return RedisStore(url, **options)
    try:
        from .mongodb import MongoStore
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("pymongo", "bson"):
            raise MissingDependency("mongodb", "pymongo", "mongodb") from exc
        raise
    return MongoStore(url, **options)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite://`` URL (``:memory:`` for an in-memory database)."""
    parts = urlsplit(url)
    if parts.netloc == ":memory:" and not parts.path:
        return ":memory:"
    if parts.netloc:
        raise StoreConfigError(
            f"invalid sqlite url {url!r}: no host allowed; "
            "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path[1:])  # the first slash separates the (empty) host from the path
    if not path:
        raise StoreConfigError(f"invalid sqlite url {url!r}: no file path; use sqlite:///telegraphy.db")
    return path
