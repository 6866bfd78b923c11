"""A session store from a URL (Django's ``LBKIT_SESSION_STORE``, configuration files)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lbkit.errors import ConfigError

__all__ = ["store_from_url"]

_SCHEMES = "redis://, rediss://, unix://, memcached://, sharedance://, file:///, memory://"
_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def store_from_url(url: str, *, shared: bool = False) -> Any:
    """A store for ``url``; with ``shared``, one store per URL for the whole process.

    ``redis://host:port/db?prefix=PHPREDIS_SESSION:&layout=string`` (also ``rediss://``,
    ``unix://``), ``memcached://host:port?prefix=memc.sess.key.``, ``sharedance://host:port``,
    ``file:///directory``, ``memory://`` (one process only).
    """
    if shared:
        with _shared_lock:
            if url not in _shared:
                _shared[url] = store_from_url(url)
            return _shared[url]
    from lbkit import sessions

    try:
        parts = urlsplit(url)
    except (TypeError, ValueError) as exc:  # e.g. "redis://[::1" (an unclosed IPv6 host)
        raise ConfigError(f"invalid session store URL {url!r}: {exc}") from exc
    query = dict(parse_qsl(parts.query))
    scheme = parts.scheme
    try:
        if scheme in ("redis", "rediss", "unix"):
            options: dict[str, Any] = {}
            if "prefix" in query:
                options["prefix"] = query.pop("prefix")
            if "layout" in query:
                options["layout"] = query.pop("layout")
            rest = "&".join(f"{k}={v}" for k, v in query.items())
            base = parts._replace(query=rest).geturl()
            return sessions.RedisStore(base, **options)
        if scheme == "memcached":
            kwargs = {"prefix": query["prefix"]} if "prefix" in query else {}
            return sessions.MemcachedStore(
                parts.hostname or "127.0.0.1", parts.port or 11211, **kwargs
            )
        if scheme == "sharedance":
            return sessions.SharedanceStore(parts.hostname or "127.0.0.1", parts.port or 1042)
        if scheme == "file":
            return sessions.FileStore(Path(parts.path))
        if scheme == "memory":
            return sessions.MemoryStore()
    except ValueError as exc:  # a bad port number
        raise ConfigError(f"invalid session store URL {url!r}: {exc}") from exc
    raise ConfigError(f"invalid session store URL {url!r}: expected one of {_SCHEMES}")
