"""``ShardedStore``: one logical store over several nodes, placed on a ketama ring.

Each key lives on its primary node and, with ``replicas=N``, on the next N-1 distinct nodes
clockwise. Reads go to the primary and fail over to the replicas when a node is
unavailable; writes go to every replica that answers (at least one must). Adding or
removing a node moves only about 1/N of the keys. Versioned writes compare on the first
node that answers and are then copied to the other replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from lbkit.balancers.ketama import Ketama
from lbkit.errors import ConfigError, StoreUnavailable
from lbkit.sessions.base import (
    DEFAULT_MAX_VALUE,
    AsyncSessionStore,
    SessionStore,
    Version,
    check_value,
    validate_key,
)

__all__ = ["AsyncShardedStore", "ShardedStore"]


def _named(stores: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    named = (
        dict(stores)
        if isinstance(stores, Mapping)
        else {f"node-{i}": s for i, s in enumerate(stores)}
    )
    if not named:
        raise ConfigError("a sharded store needs at least one node")
    return named


def _max_value(stores: Mapping[str, Any]) -> int:
    return min(int(getattr(s, "max_value", DEFAULT_MAX_VALUE)) for s in stores.values())


def _caps(stores: Mapping[str, Any]) -> frozenset[str]:
    caps = None
    for store in stores.values():
        c = frozenset(store.capabilities)
        caps = c if caps is None else caps & c
    return caps or frozenset()


class ShardedStore:
    """Spread sessions over ``stores`` (a list, or a mapping of node names to stores)."""

    def __init__(
        self, stores: Sequence[SessionStore] | Mapping[str, SessionStore], replicas: int = 1
    ) -> None:
        self.stores: dict[str, SessionStore] = _named(stores)
        if not isinstance(replicas, int) or not 1 <= replicas <= len(self.stores):
            raise ConfigError(f"replicas={replicas!r}: expected 1..{len(self.stores)} (nodes)")
        self.replicas = replicas
        self.ring: Ketama[str] = Ketama(list(self.stores))
        self.capabilities = _caps(self.stores)

    @property
    def max_value(self) -> int:
        """The smallest value limit of the nodes (checked before any node is written)."""
        return _max_value(self.stores)

    def nodes_for(self, key: str) -> list[str]:
        """The node names holding ``key``, primary first."""
        return self.ring.lookup_distinct(validate_key(key), self.replicas)

    def add_node(self, name: str, store: SessionStore) -> None:
        """Add a node (keys that now map to it are not copied: they move on next write)."""
        self.stores[name] = store
        self.ring.add(name)
        self.capabilities = _caps(self.stores)

    def remove_node(self, name: str) -> None:
        """Remove a node from the ring."""
        self.ring.remove(name)
        del self.stores[name]

    def _read(self, key: str, method: str) -> Any:
        errors = []
        for node in self.nodes_for(key):
            try:
                return getattr(self.stores[node], method)(key)
            except StoreUnavailable as exc:
                errors.append(exc)
        raise StoreUnavailable(
            f"every replica of {key!r} is unavailable: {errors}",
            address=",".join(self.nodes_for(key)),
        ) from errors[-1]

    def _write(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        results = []
        errors = []
        for node in self.nodes_for(key):
            try:
                results.append(getattr(self.stores[node], method)(key, *args, **kwargs))
                # the compare happened on the first node that answered; copy to the rest
                kwargs = {k: v for k, v in kwargs.items() if k != "if_version"}
            except StoreUnavailable as exc:
                errors.append(exc)
        if not results:
            raise StoreUnavailable(
                f"no replica of {key!r} accepted the write: {errors}",
                address=",".join(self.nodes_for(key)),
            ) from errors[-1]
        return results[0]

    def get(self, key: str) -> bytes | None:
        """Read from the primary, failing over to replicas."""
        return self._read(key, "get")  # type: ignore[no-any-return]

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """Versioned read from the first replica that answers."""
        return self._read(key, "get_versioned")  # type: ignore[no-any-return]

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """Write to every replica that answers (compare on the first)."""
        check_value(value, self.max_value)
        kwargs: dict[str, Any] = {} if if_version is None else {"if_version": if_version}
        return self._write(key, "set", value, ttl, **kwargs)  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        """Delete from every replica; True if the first that answered had it."""
        return bool(self._write(key, "delete"))

    def touch(self, key: str, ttl: float) -> bool:
        """Touch on every replica."""
        return bool(self._write(key, "touch", ttl))

    def close(self) -> None:
        """Close every node."""
        for store in self.stores.values():
            store.close()


class AsyncShardedStore:
    """The asyncio twin of :class:`ShardedStore` over async stores."""

    def __init__(
        self,
        stores: Sequence[AsyncSessionStore] | Mapping[str, AsyncSessionStore],
        replicas: int = 1,
    ) -> None:
        self.stores: dict[str, AsyncSessionStore] = _named(stores)
        if not isinstance(replicas, int) or not 1 <= replicas <= len(self.stores):
            raise ConfigError(f"replicas={replicas!r}: expected 1..{len(self.stores)} (nodes)")
        self.replicas = replicas
        self.ring: Ketama[str] = Ketama(list(self.stores))
        self.capabilities = _caps(self.stores)

    @property
    def max_value(self) -> int:
        """The smallest value limit of the nodes (checked before any node is written)."""
        return _max_value(self.stores)

    def nodes_for(self, key: str) -> list[str]:
        """The node names holding ``key``, primary first."""
        return self.ring.lookup_distinct(validate_key(key), self.replicas)

    async def _read(self, key: str, method: str) -> Any:
        errors = []
        for node in self.nodes_for(key):
            try:
                return await getattr(self.stores[node], method)(key)
            except StoreUnavailable as exc:
                errors.append(exc)
        raise StoreUnavailable(
            f"every replica of {key!r} is unavailable: {errors}",
            address=",".join(self.nodes_for(key)),
        ) from errors[-1]

    async def _write(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        results = []
        errors = []
        for node in self.nodes_for(key):
            try:
                results.append(await getattr(self.stores[node], method)(key, *args, **kwargs))
                kwargs = {k: v for k, v in kwargs.items() if k != "if_version"}
            except StoreUnavailable as exc:
                errors.append(exc)
        if not results:
            raise StoreUnavailable(
                f"no replica of {key!r} accepted the write: {errors}",
                address=",".join(self.nodes_for(key)),
            ) from errors[-1]
        return results[0]

    async def get(self, key: str) -> bytes | None:
        """See :meth:`ShardedStore.get`."""
        return await self._read(key, "get")  # type: ignore[no-any-return]

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`ShardedStore.get_versioned`."""
        return await self._read(key, "get_versioned")  # type: ignore[no-any-return]

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """See :meth:`ShardedStore.set`."""
        check_value(value, self.max_value)
        kwargs: dict[str, Any] = {} if if_version is None else {"if_version": if_version}
        return await self._write(key, "set", value, ttl, **kwargs)  # type: ignore[no-any-return]

    async def delete(self, key: str) -> bool:
        """See :meth:`ShardedStore.delete`."""
        return bool(await self._write(key, "delete"))

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`ShardedStore.touch`."""
        return bool(await self._write(key, "touch", ttl))

    async def close(self) -> None:
        """Close every node."""
        await asyncio.gather(*(s.close() for s in self.stores.values()))
