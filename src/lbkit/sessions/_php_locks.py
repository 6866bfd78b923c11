"""PHP's session locks, taken and honoured, so a Python write is never lost to PHP.

PHP's session handlers lock a session from ``session_start()`` to its end and then write
the whole session with a plain ``SET``: a Python write made meanwhile would be overwritten.
:class:`PhpLockingStore` wraps the store Python shares with PHP and, for every write or
delete, waits while PHP holds the session's lock, takes the lock itself (so PHP waits for
Python), writes and releases it. Reads do not wait: the write that follows is a
compare-and-set, so a session PHP changed meanwhile is re-read and merged.

The locks are the ones PHP's extensions use:

- php-redis (``redis.session.locking_enabled=1``): ``PHPREDIS_SESSION:<id>_LOCK``;
- php-memcached (``memcached.sess_locking``, on by default): ``memc.sess.key.lock.<id>``.

A lock is an "add if absent" with an expiry (``lock_ttl``), as PHP's; the release deletes it
only if it still holds this writer's token (a lock that expired and was taken by PHP stays).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lbkit.errors import ConfigError, SessionConflict, SessionLocked
from lbkit.sessions.base import ABSENT, SessionStore, Version

__all__ = ["PhpLockingStore"]


class PhpLockingStore:
    """A store whose writes take and honour PHP's session lock.

    ``locks`` holds the lock keys (``store`` itself by default): the lock of session ``id``
    is ``locks``' key ``id + lock_suffix``. ``wait`` bounds how long a write waits for PHP
    (then :class:`~lbkit.errors.SessionLocked`); ``lock_ttl`` is how long a lock Python took
    lives if Python dies holding it. Use :meth:`redis` and :meth:`memcached` for PHP's
    own layouts.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        locks: SessionStore | None = None,
        lock_suffix: str = "_LOCK",
        wait: float = 10.0,
        lock_ttl: float = 30.0,
        poll: float = 0.01,
    ) -> None:
        if not wait > 0 or not lock_ttl > 0 or not poll > 0:
            raise ConfigError(
                f"wait, lock_ttl and poll must be seconds > 0, got {wait}, {lock_ttl}, {poll}"
            )
        self.store = store
        self.locks = locks if locks is not None else store
        self.lock_suffix = lock_suffix
        self.wait = wait
        self.lock_ttl = lock_ttl
        self.poll = poll
        self.capabilities = store.capabilities

    @classmethod
    def redis(
        cls, url: str, *, prefix: str = "PHPREDIS_SESSION:", **options: Any
    ) -> PhpLockingStore:
        """Sessions as php-redis keeps them (plain strings at ``prefix + id``), its locks on."""
        from lbkit.sessions._redis import RedisStore

        return cls(RedisStore(url, prefix=prefix, layout="string"), **options)

    @classmethod
    def memcached(
        cls, host: str = "127.0.0.1", port: int = 11211, *, prefix: str = "memc.sess.key.",
        **options: Any,
    ) -> PhpLockingStore:  # fmt: skip
        """Sessions as php-memcached keeps them (``prefix + id``), its locks on."""
        from lbkit.sessions._memcached import MemcachedStore

        return cls(
            MemcachedStore(host, port, prefix=prefix),
            locks=MemcachedStore(host, port, prefix=prefix + "lock."),
            lock_suffix="",
            **options,
        )

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold PHP's lock of session ``key`` (waiting up to ``wait`` seconds for it)."""
        lock_key = key + self.lock_suffix
        token = secrets.token_hex(16).encode()
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self.locks.set(lock_key, token, self.lock_ttl, if_version=ABSENT)
                break
            except SessionConflict:
                if time.monotonic() >= deadline:
                    raise SessionLocked(
                        f"session {key!r} stayed locked (lock key {lock_key!r}) for more than "
                        f"{self.wait} s"
                    ) from None
                time.sleep(self.poll)
        try:
            yield
        finally:
            found = self.locks.get_versioned(lock_key)
            if found is not None and secrets.compare_digest(found[0], token):
                self.locks.delete(lock_key)

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` (does not wait for the lock)."""
        return self.store.get(key)

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key`` (does not wait for the lock)."""
        return self.store.get_versioned(key)

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """Write under PHP's lock."""
        with self.lock(key):
            return self.store.set(key, value, ttl, if_version=if_version)

    def delete(self, key: str) -> bool:
        """Delete under PHP's lock."""
        with self.lock(key):
            return self.store.delete(key)

    def touch(self, key: str, ttl: float) -> bool:
        """Extend the TTL (no lock: PHP's write keeps its own TTL)."""
        return self.store.touch(key, ttl)

    def close(self) -> None:
        """Close the store and the lock store."""
        self.store.close()
        if self.locks is not self.store:
            self.locks.close()
