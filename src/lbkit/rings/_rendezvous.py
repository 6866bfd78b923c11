"""Rendezvous (highest random weight) hashing with weights."""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from lbkit.errors import EmptyRingError
from lbkit.hashing import as_bytes, mmh3_32, mmh3_hash64
from lbkit.rings._nodes import check_known_node, check_new_node, check_weight, node_weights

__all__ = ["Rendezvous"]

N = TypeVar("N", bound=Hashable)

_INV_TWO53 = 1.0 / float(2**53)


#: The low 64 bits: mmh3's signed first half masked to the unsigned one (a mask per node
#: is cheaper than a keyword argument per node).
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _entries(weights: dict[N, int]) -> tuple[tuple[int, float, N], ...]:
    """(seed, -weight, node) for each node: the seed of its key hashes, and the numerator
    of its score ready negated (``-w / x`` and ``(-w) / x`` are the same float)."""
    return tuple(
        (mmh3_32(str(node).encode("utf-8", "surrogatepass"), 0, False), -float(weight), node)
        for node, weight in weights.items()
    )


class Rendezvous(Generic[N]):
    """Weighted rendezvous hashing: each key goes to the node with the highest score.

    The score of node ``n`` for a key is ``-weight / ln(u)`` where ``u`` in (0, 1) comes from
    a 64-bit murmur3 hash of the key seeded by the node (the logarithmic method, so shares
    are proportional to weights). Lookups cost O(nodes); removing a node moves only its keys.

    Thread safety: lookups may run while other threads add and remove nodes. A change
    builds a new tuple of (seed, -weight, node) entries and swaps one reference: a lookup
    scores the nodes before the change or after it. Changes are serialised by a lock.
    """

    def __init__(
        self, nodes: Iterable[N] = (), weights: Mapping[N, int] | Sequence[int] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._weights: dict[N, int] = node_weights(list(nodes), weights)
        self._entries = _entries(self._weights)

    def lookup(self, key: str | bytes) -> N:
        """The node with the highest score for ``key``."""
        entries = self._entries
        if not entries:
            raise EmptyRingError("lookup with no nodes: add a node first")
        data = as_bytes(key)  # encoded once, not once per node
        best: N | None = None
        best_score = -math.inf
        log = math.log
        hash64 = mmh3_hash64
        for seed, neg_weight, node in entries:
            h = hash64(data, seed)[0] & _MASK64
            # top 53 bits -> u strictly inside (0, 1), so log(u) < 0
            score = neg_weight / log(((h >> 11) + 0.5) * _INV_TWO53)
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
        with self._lock:
            check_new_node(self._weights, node, "present")
            check_weight(node, weight)
            weights = {**self._weights, node: weight}
            self._entries = _entries(weights)
            self._weights = weights

    def remove(self, node: N) -> None:
        """Remove a node: only its keys move (UnknownNodeError if it is not there)."""
        with self._lock:
            check_known_node(self._weights, node, "present")
            weights = {n: w for n, w in self._weights.items() if n != node}
            self._entries = _entries(weights)
            self._weights = weights

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._weights)
