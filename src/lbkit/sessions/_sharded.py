"""``ShardedStore``: one logical store over several nodes, placed on a ketama ring.

Each key lives on its primary node and, with ``replicas=N``, on the next N-1 distinct nodes
clockwise. Reads go to the primary and fail over to the replicas when a node is
unavailable; writes go to every replica that answers (at least one must). Adding or
removing a node moves only about 1/N of the keys. Versioned writes compare on the first
node that answers and are then copied to the other replicas.

The replica plan and the read/write rules live once, in :class:`_Shards`, as flows;
:class:`ShardedStore` and :class:`AsyncShardedStore` drive them. Thread-safe: adding or
removing a node builds a new ring and node table and swaps one reference, so a concurrent
call sees the old placement or the new one, never a half-built ring.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from lbkit.errors import ConfigError, StoreUnavailable, UnknownNodeError
from lbkit.rings import Ketama
from lbkit.sessions._flow import Call, Flow, arun, run
from lbkit.sessions.base import (
    DEFAULT_MAX_VALUE,
    AsyncSessionStore,
    SessionStore,
    Version,
    check_ttl,
    check_value,
    check_version,
    validate_key,
)

__all__ = ["AsyncShardedStore", "ShardedStore"]

S = TypeVar("S")


@attrs.frozen
class _Placement(Generic[S]):
    """Nodes and their ring, replaced whole on every change."""

    stores: dict[str, S]
    ring: Ketama[str]
    capabilities: frozenset[str]
    max_value: int


def _placement(stores: dict[str, Any]) -> _Placement[Any]:
    caps: frozenset[str] | None = None
    for store in stores.values():
        c = frozenset(store.capabilities)
        caps = c if caps is None else caps & c
    limit = min(int(getattr(s, "max_value", DEFAULT_MAX_VALUE)) for s in stores.values())
    return _Placement(stores, Ketama(list(stores)), caps or frozenset(), limit)


class _Shards(Generic[S]):
    """The replica plan (which nodes hold a key) and the read/write rules, as flows."""

    def __init__(self, stores: Sequence[S] | Mapping[str, S], replicas: int = 1) -> None:
        named = (
            dict(stores)
            if isinstance(stores, Mapping)
            else {f"node-{i}": s for i, s in enumerate(stores)}
        )
        if not named:
            raise ConfigError("a sharded store needs at least one node")
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ConfigError(f"replicas={replicas!r}: expected an int")
        if not 1 <= replicas <= len(named):
            raise ConfigError(f"replicas={replicas!r}: expected 1..{len(named)} (nodes)")
        self.replicas = replicas
        self._placement: _Placement[S] = _placement(named)
        self._change = threading.Lock()

    @property
    def stores(self) -> dict[str, S]:
        """Node names to stores (a snapshot: do not mutate; use add_node/remove_node)."""
        return self._placement.stores

    @property
    def ring(self) -> Ketama[str]:
        """The current ring (a snapshot)."""
        return self._placement.ring

    @property
    def capabilities(self) -> frozenset[str]:
        """What every node supports."""
        return self._placement.capabilities

    @property
    def max_value(self) -> int:
        """The smallest value limit of the nodes (checked before any node is written)."""
        return self._placement.max_value

    def nodes_for(self, key: str) -> list[str]:
        """The node names holding ``key``, primary first."""
        return self._placement.ring.lookup_distinct(validate_key(key), self.replicas)

    def add_node(self, name: str, store: S) -> None:
        """Add a node (keys that now map to it are not copied: they move on next write)."""
        with self._change:
            stores = dict(self._placement.stores)
            if name in stores:
                raise ConfigError(f"node {name!r} is already in the sharded store")
            stores[name] = store
            self._placement = _placement(stores)

    def remove_node(self, name: str) -> None:
        """Remove a node from the ring (its store is not closed)."""
        with self._change:
            stores = dict(self._placement.stores)
            if name not in stores:
                raise UnknownNodeError(f"no node {name!r}: nodes are {sorted(stores)}")
            if len(stores) <= self.replicas:
                raise ConfigError(
                    f"cannot remove {name!r}: {self.replicas} replicas need that many nodes"
                )
            del stores[name]
            self._placement = _placement(stores)

    def read(self, key: str, method: str) -> Flow[Any]:
        placement = self._placement
        nodes = placement.ring.lookup_distinct(validate_key(key), self.replicas)
        errors = []
        for node in nodes:
            try:
                return (yield Call(placement.stores[node], method, (key,)))
            except StoreUnavailable as exc:
                errors.append(exc)
        raise StoreUnavailable(
            f"every replica of {key!r} is unavailable: {errors}", address=",".join(nodes)
        ) from errors[-1]

    def write(self, key: str, method: str, *args: Any, **kwargs: Any) -> Flow[Any]:
        placement = self._placement
        nodes = placement.ring.lookup_distinct(validate_key(key), self.replicas)
        results = []
        errors = []
        for node in nodes:
            try:
                results.append((yield Call(placement.stores[node], method, (key, *args), kwargs)))
                # the compare happened on the first node that answered; copy to the rest
                kwargs = {k: v for k, v in kwargs.items() if k != "if_version"}
            except StoreUnavailable as exc:
                errors.append(exc)
        if not results:
            raise StoreUnavailable(
                f"no replica of {key!r} accepted the write: {errors}", address=",".join(nodes)
            ) from errors[-1]
        return results[0]

    def set_flow(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None
    ) -> Flow[Any]:
        check_value(value, self.max_value)
        check_ttl(ttl)
        check_version(if_version)
        kwargs: dict[str, Any] = {} if if_version is None else {"if_version": if_version}
        return (yield from self.write(key, "set", value, ttl, **kwargs))

    def touch_flow(self, key: str, ttl: float) -> Flow[Any]:
        check_ttl(ttl)
        return (yield from self.write(key, "touch", ttl))


class ShardedStore(_Shards[SessionStore]):
    """Spread sessions over ``stores`` (a list, or a mapping of node names to stores)."""

    def __init__(
        self, stores: Sequence[SessionStore] | Mapping[str, SessionStore], replicas: int = 1
    ) -> None:
        super().__init__(stores, replicas)

    def get(self, key: str) -> bytes | None:
        """Read from the primary, failing over to replicas."""
        return run(self.read(key, "get"))  # type: ignore[no-any-return]

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """Versioned read from the first replica that answers."""
        return run(self.read(key, "get_versioned"))  # type: ignore[no-any-return]

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """Write to every replica that answers (compare on the first)."""
        return run(self.set_flow(key, value, ttl, if_version))  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        """Delete from every replica; True if the first that answered had it."""
        return bool(run(self.write(key, "delete")))

    def touch(self, key: str, ttl: float) -> bool:
        """Touch on every replica."""
        return bool(run(self.touch_flow(key, ttl)))

    def close(self) -> None:
        """Close every node."""
        for store in self.stores.values():
            store.close()


class AsyncShardedStore(_Shards[AsyncSessionStore]):
    """The asyncio twin of :class:`ShardedStore` over async stores."""

    def __init__(
        self,
        stores: Sequence[AsyncSessionStore] | Mapping[str, AsyncSessionStore],
        replicas: int = 1,
    ) -> None:
        super().__init__(stores, replicas)

    async def get(self, key: str) -> bytes | None:
        """See :meth:`ShardedStore.get`."""
        return await arun(self.read(key, "get"))

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`ShardedStore.get_versioned`."""
        return await arun(self.read(key, "get_versioned"))

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """See :meth:`ShardedStore.set`."""
        return await arun(self.set_flow(key, value, ttl, if_version))

    async def delete(self, key: str) -> bool:
        """See :meth:`ShardedStore.delete`."""
        return bool(await arun(self.write(key, "delete")))

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`ShardedStore.touch`."""
        return bool(await arun(self.touch_flow(key, ttl)))

    async def close(self) -> None:
        """Close every node."""
        for store in self.stores.values():
            await store.close()
