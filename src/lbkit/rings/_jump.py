"""Jump consistent hash (Lamping and Veach, 2014) over a list of nodes."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from lbkit.errors import ConfigError, EmptyRingError
from lbkit.hashing import mmh3_hash64
from lbkit.rings._nodes import check_known_node, check_new_node

__all__ = ["JumpHash", "jump_hash"]

N = TypeVar("N", bound=Hashable)

#: Most buckets :func:`jump_hash` accepts (its loop runs O(log buckets) steps).
MAX_BUCKETS = 2**31


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in ``range(buckets)`` for a 64-bit key."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"jump_hash needs 1..{MAX_BUCKETS} buckets, got {buckets!r}")
    if isinstance(key, bool) or not isinstance(key, int):
        raise ConfigError(f"jump_hash needs an integer key, got {key!r}")
    return _jump(key & 0xFFFFFFFFFFFFFFFF, buckets)


def _jump(key: int, buckets: int) -> int:
    """:func:`jump_hash` for a 64-bit key and a bucket count already checked."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


class JumpHash(Generic[N]):
    """Jump consistent hash over a list of nodes (no weights, no removal but of the last).

    Appending a node moves ~1/N of the keys to it; removing any node other than the last
    renumbers the buckets after it, which is why it suits numbered shards, not named peers.

    Thread safety: lookups may run while other threads add and remove nodes: a change
    builds a new tuple of nodes and swaps one reference, so a lookup sees the nodes before
    the change or after it. Changes are serialised by a lock.
    """

    def __init__(self, nodes: Iterable[N] = ()) -> None:
        node_list = tuple(nodes)
        if len(set(node_list)) != len(node_list):
            raise ConfigError("duplicate nodes: each node may appear once")
        self._nodes: tuple[N, ...] = node_list
        self._lock = threading.Lock()

    def lookup(self, key: str | bytes) -> N:
        """The node for ``key``."""
        nodes = self._nodes
        if not nodes:
            raise EmptyRingError("lookup with no nodes: add a node first")
        return nodes[_jump(mmh3_hash64(key, 0, signed=False)[0], len(nodes))]

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys, in order."""
        return [self.lookup(k) for k in keys]

    def add(self, node: N) -> None:
        """Append a node (bucket ``len(nodes)``)."""
        with self._lock:
            check_new_node(self._nodes, node, "present")
            self._nodes = (*self._nodes, node)

    def remove(self, node: N) -> None:
        """Remove a node; only the last one can go without renumbering others."""
        with self._lock:
            check_known_node(self._nodes, node, "present")
            self._nodes = tuple(n for n in self._nodes if n != node)

    @property
    def nodes(self) -> list[N]:
        """The nodes by bucket number."""
        return list(self._nodes)
