"""``MemoryStore``: bounded, TTL-aware, thread-safe, in this process (the embedded default)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from lbkit.errors import ConfigError
from lbkit.sessions._threaded import ThreadedAsyncStore
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_expected,
    check_set,
    check_ttl,
    validate_key,
)

__all__ = ["AsyncMemoryStore", "MemoryStore"]


class MemoryStore:
    """Sessions in a dict: least recently used entries go first past ``max_entries``.

    Only for one process (several threads); use another backend to share sessions between
    servers.
    """

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        max_entries: int = 100_000,
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"invalid max_entries={max_entries!r}: expected >= 1")
        self.max_entries = max_entries
        self.max_value = max_value
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, Version, float | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def _live(self, key: str) -> tuple[bytes, Version, float | None] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires = entry[2]
        if expires is not None and self._clock() >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        validate_key(key)
        with self._lock:
            entry = self._live(key)
            return None if entry is None else entry[0]

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        validate_key(key)
        with self._lock:
            entry = self._live(key)
            return None if entry is None else (entry[0], entry[1])

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Store ``value`` (versioned when ``if_version`` is given)."""
        data, ttl = check_set(key, value, ttl, if_version, self.max_value)
        with self._lock:
            if if_version is not None:
                current = self._live(key)
                check_expected(key, ABSENT if current is None else current[1], if_version)
            version = next(self._versions)
            expires = None if ttl is None else self._clock() + ttl
            self._data[key] = (data, version, expires)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
            return version

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        validate_key(key)
        with self._lock:
            return self._live(key) is not None and self._data.pop(key, None) is not None

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now."""
        validate_key(key)
        limit = check_ttl(ttl)
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return False
            expires = None if limit is None else self._clock() + limit
            self._data[key] = (entry[0], entry[1], expires)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def close(self) -> None:
        """Nothing to release."""


class AsyncMemoryStore(ThreadedAsyncStore[MemoryStore]):
    """The asyncio twin of :class:`MemoryStore` (calls run in worker threads)."""

    def __init__(
        self,
        max_entries: int = 100_000,
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(MemoryStore(max_entries, max_value, clock=clock))
