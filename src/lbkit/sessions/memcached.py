"""``MemcachedStore``: sessions in memcached (pymemcache), versioned writes with ``cas``.

memcached may evict any entry when it is full: use it where losing a session is
acceptable. TTLs are whole seconds (rounded up), at most 30 days. Needs pymemcache
(``pip install lbkit[memcached]``).
"""

from __future__ import annotations

import math
import socket
from typing import Any

from lbkit.errors import ConfigError, SessionConflict, StoreUnavailable
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_ttl,
    check_value,
    validate_key,
)
from lbkit.sessions.threaded import ThreadedAsyncStore

__all__ = ["AsyncMemcachedStore", "MemcachedStore"]

_MAX_TTL = 30 * 24 * 3600


def _expire(ttl: float | None) -> int:
    if ttl is None:
        return 0
    seconds = max(1, math.ceil(ttl))
    if seconds > _MAX_TTL:
        raise ValueError(f"memcached TTLs are at most {_MAX_TTL} s (30 days), got {ttl}")
    return seconds


class MemcachedStore:
    """Sessions in one memcached server; every call bounded by ``timeout`` seconds."""

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11211,
        *,
        prefix: str = "lbkit-session-",
        timeout: float = 5.0,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        try:
            from pymemcache.client.base import Client
            from pymemcache.exceptions import MemcacheError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "MemcachedStore needs pymemcache: pip install 'lbkit[memcached]'"
            ) from exc
        self.address = f"memcached://{host}:{port}"
        self.prefix = prefix
        self.max_value = max_value
        self._errors: tuple[type[BaseException], ...] = (OSError, socket.timeout, MemcacheError)
        self._c: Any = Client(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            default_noreply=False,
            no_delay=True,
        )

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._c, name)(*args, **kwargs)
        except self._errors as exc:
            self._c.close()
            raise StoreUnavailable(
                f"{self.address} unavailable: {exc!r}", address=self.address
            ) from exc

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        value = self._call("get", self._k(key))
        return None if value is None else bytes(value)

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and its cas token, or None."""
        value, cas = self._call("gets", self._k(key))
        return None if value is None else (bytes(value), int(cas))

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """Store ``value`` (``cas`` when ``if_version``; ``add`` when it is ABSENT).

        Returns None: memcached does not report the new cas token, and reading it back
        would cost a round trip; ``get_versioned`` gives it when needed.
        """
        k = self._k(key)
        data = check_value(value, self.max_value)
        expire = _expire(check_ttl(ttl))
        if if_version is None:
            self._call("set", k, data, expire=expire)
        elif if_version == ABSENT:
            if not self._call("add", k, data, expire=expire):
                raise SessionConflict(f"session {key!r} already exists")
        else:
            ok = self._call("cas", k, data, str(if_version), expire=expire)
            if not ok:
                raise SessionConflict(f"session {key!r} changed since version {if_version}")
        return None

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return bool(self._call("delete", self._k(key)))

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now."""
        return bool(self._call("touch", self._k(key), _expire(check_ttl(ttl))))

    def close(self) -> None:
        """Close the connection."""
        self._c.close()


class AsyncMemcachedStore(ThreadedAsyncStore[MemcachedStore]):
    """The asyncio twin of :class:`MemcachedStore` (calls run in a worker thread).

    pymemcache clients are not thread-safe, so each call takes the store's lock.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(_LockedMemcached(*args, **kwargs))


class _LockedMemcached(MemcachedStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import threading

        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super()._call(name, *args, **kwargs)
