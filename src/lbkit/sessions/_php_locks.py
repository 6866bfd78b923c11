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
The waiting, taking and releasing are written once, as flows (:class:`_LockRules`), driven
by :class:`PhpLockingStore` with blocking calls and by :class:`AsyncPhpLockingStore` with
``await``. A write cancelled while holding the lock leaves it to expire after ``lock_ttl``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from lbkit.errors import ConfigError, SessionConflict, SessionLocked
from lbkit.sessions._flow import Call, Flow, Pause, arun, run
from lbkit.sessions.base import ABSENT, AsyncSessionStore, SessionStore, Version

__all__ = ["AsyncPhpLockingStore", "PhpLockingStore"]


class _LockRules:
    """Waiting for, taking and releasing PHP's lock of a session, as flows over ``locks``."""

    def __init__(
        self, locks: Any, lock_suffix: str, wait: float, lock_ttl: float, poll: float
    ) -> None:
        for name, value in (("wait", wait), ("lock_ttl", lock_ttl), ("poll", poll)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"invalid {name}={value!r}: expected seconds > 0")
        self.locks = locks
        self.lock_suffix = lock_suffix
        self.wait = wait
        self.lock_ttl = lock_ttl
        self.poll = poll

    def acquire(self, key: str) -> Flow[bytes]:
        """Take the lock of session ``key`` (waiting up to ``wait``); returns its token."""
        lock_key = key + self.lock_suffix
        token = secrets.token_hex(16).encode()
        deadline = time.monotonic() + self.wait
        while True:
            try:
                yield Call(
                    self.locks, "set", (lock_key, token, self.lock_ttl), {"if_version": ABSENT}
                )
                return token
            except SessionConflict:
                if time.monotonic() >= deadline:
                    raise SessionLocked(
                        f"session {key!r} stayed locked (lock key {lock_key!r}) for more than "
                        f"{self.wait} s"
                    ) from None
            yield Pause(self.poll)

    def release(self, key: str, token: bytes) -> Flow[None]:
        """Drop the lock if it still holds ``token``."""
        lock_key = key + self.lock_suffix
        found = yield Call(self.locks, "get_versioned", (lock_key,))
        if found is not None and secrets.compare_digest(found[0], token):
            yield Call(self.locks, "delete", (lock_key,))

    def locked(self, store: Any, method: str, key: str, *args: Any, **kwargs: Any) -> Flow[Any]:
        """``store.method(key, ...)`` under the lock of ``key``."""
        token = yield from self.acquire(key)
        try:
            result = yield Call(store, method, (key, *args), kwargs)
        except GeneratorExit:
            raise  # cancelled: no more calls; the lock expires after lock_ttl
        except BaseException:
            yield from self.release(key, token)
            raise
        yield from self.release(key, token)
        return result


#: The locking store a layout builds: the sync one, or its asyncio twin.
_Twin = TypeVar("_Twin", bound="_PhpLocking")


class _PhpLocking:
    """The constructor and PHP layouts both locking stores share."""

    def __init__(
        self,
        store: Any,
        *,
        locks: Any = None,
        lock_suffix: str = "_LOCK",
        wait: float = 10.0,
        lock_ttl: float = 30.0,
        poll: float = 0.01,
    ) -> None:
        self.store = store
        self.locks = locks if locks is not None else store
        self.lock_suffix = lock_suffix
        self.capabilities = store.capabilities
        self._rules = _LockRules(self.locks, lock_suffix, wait, lock_ttl, poll)

    @classmethod
    def redis(
        cls: type[_Twin], url: str, *, prefix: str = "PHPREDIS_SESSION:", **options: Any
    ) -> _Twin:
        """Sessions as php-redis keeps them (plain strings at ``prefix + id``), its locks on."""
        redis_store = cls._backend("RedisStore")
        return cls(redis_store(url, prefix=prefix, layout="string"), **options)

    @classmethod
    def memcached(
        cls: type[_Twin], host: str = "127.0.0.1", port: int = 11211, *,
        prefix: str = "memc.sess.key.", **options: Any,
    ) -> _Twin:  # fmt: skip
        """Sessions as php-memcached keeps them (``prefix + id``), its locks on."""
        memcached_store = cls._backend("MemcachedStore")
        return cls(
            memcached_store(host, port, prefix=prefix),
            locks=memcached_store(host, port, prefix=prefix + "lock."),
            lock_suffix="",
            **options,
        )

    @classmethod
    def _backend(cls, name: str) -> Any:
        """The sessions store class ``name``, or its asyncio twin for the asyncio store."""
        from lbkit import sessions

        twin = "Async" if issubclass(cls, AsyncPhpLockingStore) else ""
        return getattr(sessions, twin + name)


class PhpLockingStore(_PhpLocking):
    """A store whose writes take and honour PHP's session lock.

    ``locks`` holds the lock keys (``store`` itself by default): the lock of session ``id``
    is ``locks``' key ``id + lock_suffix``. ``wait`` bounds how long a write waits for PHP
    (then :class:`~lbkit.errors.SessionLocked`); ``lock_ttl`` is how long a lock Python took
    lives if Python dies holding it. Use :meth:`redis` and :meth:`memcached` for PHP's
    own layouts. Thread-safe when its stores are.
    """

    store: SessionStore

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold PHP's lock of session ``key`` (waiting up to ``wait`` seconds for it)."""
        token = run(self._rules.acquire(key))
        try:
            yield
        finally:
            run(self._rules.release(key, token))

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
        version: Version | None = run(
            self._rules.locked(self.store, "set", key, value, ttl, if_version=if_version)
        )
        return version

    def delete(self, key: str) -> bool:
        """Delete under PHP's lock."""
        return bool(run(self._rules.locked(self.store, "delete", key)))

    def touch(self, key: str, ttl: float) -> bool:
        """Extend the TTL (no lock: PHP's write keeps its own TTL)."""
        return self.store.touch(key, ttl)

    def close(self) -> None:
        """Close the store and the lock store."""
        self.store.close()
        if self.locks is not self.store:
            self.locks.close()


class AsyncPhpLockingStore(_PhpLocking):
    """The asyncio twin of :class:`PhpLockingStore` (over asyncio stores)."""

    store: AsyncSessionStore

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """See :meth:`PhpLockingStore.lock`."""
        token = await arun(self._rules.acquire(key))
        try:
            yield
        finally:
            await arun(self._rules.release(key, token))

    async def get(self, key: str) -> bytes | None:
        """See :meth:`PhpLockingStore.get`."""
        return await self.store.get(key)

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`PhpLockingStore.get_versioned`."""
        return await self.store.get_versioned(key)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """See :meth:`PhpLockingStore.set`."""
        version: Version | None = await arun(
            self._rules.locked(self.store, "set", key, value, ttl, if_version=if_version)
        )
        return version

    async def delete(self, key: str) -> bool:
        """See :meth:`PhpLockingStore.delete`."""
        return bool(await arun(self._rules.locked(self.store, "delete", key)))

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`PhpLockingStore.touch`."""
        return await self.store.touch(key, ttl)

    async def close(self) -> None:
        """Close the store and the lock store."""
        await self.store.close()
        if self.locks is not self.store:
            await self.locks.close()
