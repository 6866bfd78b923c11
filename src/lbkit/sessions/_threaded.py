"""Async twins for stores whose work is local (memory, files, SQLite, memcached client).

Each call runs the synchronous store's method in a worker thread (``asyncio.to_thread``),
so the event loop never blocks on disk or socket I/O.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from lbkit.sessions.base import SessionStore, Version

__all__ = ["ThreadedAsyncStore"]

S = TypeVar("S", bound=SessionStore)


class ThreadedAsyncStore(Generic[S]):
    """Wraps a synchronous store; every method is a coroutine run in a thread."""

    def __init__(self, store: S) -> None:
        self.sync = store
        self.capabilities = store.capabilities

    @property
    def max_value(self) -> int:
        """The wrapped store's largest value."""
        return int(getattr(self.sync, "max_value"))  # noqa: B009

    async def get(self, key: str) -> bytes | None:
        """See :meth:`lbkit.sessions.SessionStore.get`."""
        return await asyncio.to_thread(self.sync.get, key)

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`lbkit.sessions.SessionStore.get_versioned`."""
        return await asyncio.to_thread(self.sync.get_versioned, key)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """See :meth:`lbkit.sessions.SessionStore.set`."""
        return await asyncio.to_thread(self.sync.set, key, value, ttl, if_version=if_version)

    async def delete(self, key: str) -> bool:
        """See :meth:`lbkit.sessions.SessionStore.delete`."""
        return await asyncio.to_thread(self.sync.delete, key)

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`lbkit.sessions.SessionStore.touch`."""
        return await asyncio.to_thread(self.sync.touch, key, ttl)

    async def close(self) -> None:
        """Close the wrapped store."""
        await asyncio.to_thread(self.sync.close)
