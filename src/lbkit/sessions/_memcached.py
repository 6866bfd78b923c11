"""``MemcachedStore``: sessions in memcached (pymemcache), versioned writes with ``cas``.

memcached may evict any entry when it is full: use it where losing a session is
acceptable. TTLs are whole seconds (rounded up), at most 30 days. Needs pymemcache
(``pip install lbkit[memcached]``).
"""

from __future__ import annotations

import math
import socket
import threading
from typing import Any

from lbkit.errors import (
    ConfigError,
    InvalidStoreArgument,
    SessionConflict,
    StoreUnavailable,
    ValueTooLarge,
)
from lbkit.sessions._threaded import ThreadedAsyncStore
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_ttl,
    check_value,
    check_version,
    validate_key,
)

__all__ = ["MEMCACHED_MAX_VALUE", "AsyncMemcachedStore", "MemcachedStore"]

_MAX_TTL = 30 * 24 * 3600
#: memcached refuses items over 1 MiB including its own header and the key: leave room.
MEMCACHED_MAX_VALUE = DEFAULT_MAX_VALUE - 1024


def _expire(ttl: float | None) -> int:
    ttl = check_ttl(ttl)
    if ttl is None:
        return 0
    if ttl > _MAX_TTL:
        raise InvalidStoreArgument(
            f"invalid ttl {ttl!r}: memcached TTLs are at most {_MAX_TTL} s (30 days)"
        )
    return max(1, math.ceil(ttl))


class MemcachedStore:
    """Sessions in one memcached server; every call bounded by ``timeout`` seconds.

    Thread-safe: pymemcache clients are not, so each call borrows a connection from a
    pool of at most ``max_connections`` (a caller waits up to ``timeout`` for one). A
    connection that fails is closed, never returned to the pool.
    """

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11211,
        *,
        prefix: str = "lbkit-session-",
        timeout: float = 5.0,
        max_value: int = MEMCACHED_MAX_VALUE,
        max_connections: int = 32,
    ) -> None:
        try:
            from pymemcache.client.base import Client
            from pymemcache.exceptions import MemcacheError, MemcacheServerError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "MemcachedStore needs pymemcache: pip install 'lbkit[memcached]'"
            ) from exc
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigError(f"invalid max_connections={max_connections!r}: expected an int")
        if max_connections < 1:
            raise ConfigError(f"invalid max_connections={max_connections}: expected >= 1")
        self.address = f"memcached://{host}:{port}"
        self.prefix = prefix
        self.max_value = max_value
        self.timeout = timeout
        self._errors: tuple[type[BaseException], ...] = (OSError, socket.timeout, MemcacheError)
        self._server_error: type[BaseException] = MemcacheServerError

        def connect() -> Any:
            return Client(
                (host, port),
                connect_timeout=timeout,
                timeout=timeout,
                default_noreply=False,
                no_delay=True,
            )

        self._connect = connect
        self._free: list[Any] = []
        self._free_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._slots.acquire(timeout=self.timeout):
            raise StoreUnavailable(
                f"{self.address}: no free connection within {self.timeout} s",
                address=self.address,
            )
        try:
            with self._free_lock:
                client = self._free.pop() if self._free else None
            if client is None:
                client = self._connect()
            try:
                result = getattr(client, name)(*args, **kwargs)
            except self._errors as exc:
                client.close()
                if isinstance(exc, self._server_error) and "too large" in str(exc):
                    raise ValueTooLarge(f"{self.address} refused the value: {exc}") from exc
                raise StoreUnavailable(
                    f"{self.address} unavailable: {exc!r}", address=self.address
                ) from exc
            except BaseException:
                client.close()
                raise
            with self._free_lock:
                self._free.append(client)
            return result
        finally:
            self._slots.release()

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
        expire = _expire(ttl)
        check_version(if_version)
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
        k = self._k(key)
        return bool(self._call("touch", k, _expire(ttl)))

    def close(self) -> None:
        """Close the pooled connections."""
        with self._free_lock:
            free, self._free = self._free, []
        for client in free:
            client.close()


class AsyncMemcachedStore(ThreadedAsyncStore[MemcachedStore]):
    """The asyncio twin of :class:`MemcachedStore` (calls run in worker threads)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11211,
        *,
        prefix: str = "lbkit-session-",
        timeout: float = 5.0,
        max_value: int = MEMCACHED_MAX_VALUE,
        max_connections: int = 32,
    ) -> None:
        super().__init__(
            MemcachedStore(
                host,
                port,
                prefix=prefix,
                timeout=timeout,
                max_value=max_value,
                max_connections=max_connections,
            )
        )
