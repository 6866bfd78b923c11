"""Rendezvous (highest random weight) hashing with weights, and jump consistent hash."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

import mmh3

from lbkit.balancers.ketama import _check_weight, node_weights
from lbkit.errors import ConfigError, EmptyRingError

__all__ = ["JumpHash", "Rendezvous", "jump_hash"]

N = TypeVar("N", bound=Hashable)

_INV_TWO53 = 1.0 / float(2**53)


class Rendezvous(Generic[N]):
    """Weighted rendezvous hashing: each key goes to the node with the highest score.

    The score of node ``n`` for a key is ``-weight / ln(u)`` where ``u`` in (0, 1) comes from
    a 64-bit murmur3 hash of the key seeded by the node (the logarithmic method, so shares
    are proportional to weights). Lookups cost O(nodes); removing a node moves only its keys.
    """

    def __init__(
        self, nodes: Iterable[N] = (), weights: Mapping[N, int] | Sequence[int] | None = None
    ) -> None:
        self._weights = node_weights(list(nodes), weights)
        self._entries: list[tuple[int, float, N]] = []
        self._refresh()

    def _refresh(self) -> None:
        self._entries = [
            (mmh3.hash(str(node), 0, False), float(weight), node)
            for node, weight in self._weights.items()
        ]

    def lookup(self, key: str | bytes) -> N:
        """The node with the highest score for ``key``."""
        if not self._entries:
            raise EmptyRingError("lookup with no nodes: add a node first")
        best: N | None = None
        best_score = -math.inf
        log = math.log
        for seed, weight, node in self._entries:
            h = mmh3.hash64(key, seed, signed=False)[0]
            # top 53 bits -> u strictly inside (0, 1), so log(u) < 0
            score = -weight / log(((h >> 11) + 0.5) * _INV_TWO53)
            if score > best_score:
                best_score = score
                best = node
        assert best is not None
        return best

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys, in order."""
        return [self.lookup(k) for k in keys]

    def add(self, node: N, weight: int = 1) -> None:
        """Add a node: only keys for which it scores highest move to it."""
        if node in self._weights:
            raise ConfigError(f"node {node!r} is already present")
        _check_weight(node, weight)
        self._weights[node] = weight
        self._refresh()

    def remove(self, node: N) -> None:
        """Remove a node: only its keys move."""
        if node not in self._weights:
            raise KeyError(f"node {node!r} is not present")
        del self._weights[node]
        self._refresh()

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._weights)


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in ``range(buckets)`` for a 64-bit key."""
    if buckets < 1:
        raise ConfigError(f"jump_hash needs at least one bucket, got {buckets}")
    key &= 0xFFFFFFFFFFFFFFFF
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
    """

    def __init__(self, nodes: Iterable[N] = ()) -> None:
        self._nodes = list(nodes)
        if len(set(self._nodes)) != len(self._nodes):
            raise ConfigError("duplicate nodes: each node may appear once")

    def lookup(self, key: str | bytes) -> N:
        """The node for ``key``."""
        if not self._nodes:
            raise EmptyRingError("lookup with no nodes: add a node first")
        return self._nodes[jump_hash(mmh3.hash64(key, 0, signed=False)[0], len(self._nodes))]

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys, in order."""
        return [self.lookup(k) for k in keys]

    def add(self, node: N) -> None:
        """Append a node (bucket ``len(nodes)``)."""
        if node in self._nodes:
            raise ConfigError(f"node {node!r} is already present")
        self._nodes.append(node)

    def remove(self, node: N) -> None:
        """Remove a node; only the last one can go without renumbering others."""
        if node not in self._nodes:
            raise KeyError(f"node {node!r} is not present")
        self._nodes.remove(node)

    @property
    def nodes(self) -> list[N]:
        """The nodes by bucket number."""
        return list(self._nodes)
