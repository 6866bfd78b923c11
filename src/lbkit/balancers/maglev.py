"""Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights.

Each node walks its own permutation of the table slots (``offset + j * skip`` modulo a prime
table size) and, turn by turn, claims the next free slot on its walk; a key's node is
``table[hash(key) % size]``. Every node ends with an almost equal share of slots (weighted:
proportional to weight), and a membership change moves few keys, though unlike a ring some
keys move between surviving nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

import mmh3

from lbkit.balancers.ketama import _check_weight, node_weights
from lbkit.errors import ConfigError, EmptyRingError

__all__ = ["DEFAULT_TABLE_SIZE", "Maglev", "is_prime"]

N = TypeVar("N", bound=Hashable)

#: Envoy's default table size: a prime, about 650 slots per node for 100 nodes.
DEFAULT_TABLE_SIZE = 65537

_OFFSET_SEED = 0x2545F491
_SKIP_SEED = 0x9E3779B9


def is_prime(n: int) -> bool:
    """Deterministic primality test for table sizes."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def _key_hash(key: str | bytes) -> int:
    return mmh3.hash(key, 0, False)


class Maglev(Generic[N]):
    """A Maglev lookup table mapping keys (str or bytes) to nodes.

    ``weights`` (a mapping or a sequence parallel to ``nodes``) makes a node's share of
    slots proportional to its weight. ``table_size`` must be a prime larger than the number
    of nodes. Membership changes rebuild the table (O(table size)).
    """

    __slots__ = ("_nodes", "_table", "_weights", "lookup", "table_size")

    def __init__(
        self,
        nodes: Iterable[N] = (),
        weights: Mapping[N, int] | Sequence[int] | None = None,
        table_size: int = DEFAULT_TABLE_SIZE,
    ) -> None:
        if (
            isinstance(table_size, bool)
            or not isinstance(table_size, int)
            or not is_prime(table_size)
        ):
            raise ConfigError(f"invalid table_size {table_size!r}: expected a prime such as 65537")
        self.table_size = table_size
        self._weights: dict[N, int] = node_weights(list(nodes), weights)
        self._table: list[N] = []
        self._build()
        self.lookup: Callable[[str | bytes], N] = self._make_lookup()

    def _build(self) -> None:
        nodes = list(self._weights)
        if len(nodes) >= self.table_size:
            raise ConfigError(
                f"{len(nodes)} nodes need a table_size larger than that (got {self.table_size})"
            )
        size = self.table_size
        table: list[N | None] = [None] * size
        if not nodes:
            self._table[:] = []
            return
        offsets = []
        skips = []
        for node in nodes:
            name = str(node).encode("utf-8")
            offsets.append(mmh3.hash(name, _OFFSET_SEED, False) % size)
            skips.append(mmh3.hash(name, _SKIP_SEED, False) % (size - 1) + 1)
        weights = [self._weights[n] for n in nodes]
        top = max(weights)
        nexts = [0] * len(nodes)
        # A node of the top weight takes a turn every round; one of weight w, w/top of them.
        credit = [0] * len(nodes)
        filled = 0
        while True:
            for i, node in enumerate(nodes):
                credit[i] += weights[i]
                if credit[i] < top:
                    continue
                credit[i] -= top
                off, skip, j = offsets[i], skips[i], nexts[i]
                slot = (off + j * skip) % size
                while table[slot] is not None:
                    j += 1
                    slot = (off + j * skip) % size
                table[slot] = node
                nexts[i] = j + 1
                filled += 1
                if filled == size:
                    self._table[:] = table  # type: ignore[assignment]
                    return

    def _make_lookup(self) -> Callable[[str | bytes], N]:
        table, size = self._table, self.table_size

        def lookup(key: str | bytes) -> N:
            """The node that owns ``key``."""
            if not table:
                raise EmptyRingError("lookup on an empty Maglev table: add a node first")
            return table[mmh3.hash(key, 0, False) % size]

        return lookup

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys at once, in order."""
        if not self._table:
            raise EmptyRingError("lookup on an empty Maglev table: add a node first")
        table, size = self._table, self.table_size
        return [table[h % size] for h in map(_key_hash, keys)]

    def add(self, node: N, weight: int = 1) -> None:
        """Add ``node`` and rebuild the table."""
        if node in self._weights:
            raise ConfigError(f"node {node!r} is already in the table")
        _check_weight(node, weight)
        self._weights[node] = weight
        self._build()

    def remove(self, node: N) -> None:
        """Remove ``node`` and rebuild the table."""
        if node not in self._weights:
            raise KeyError(f"node {node!r} is not in the table")
        del self._weights[node]
        self._build()

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._weights)

    def slot_counts(self) -> dict[N, int]:
        """How many table slots each node owns."""
        counts = dict.fromkeys(self._weights, 0)
        for node in self._table:
            counts[node] += 1
        return counts

    def __len__(self) -> int:
        return len(self._weights)

    def __repr__(self) -> str:
        return f"<Maglev nodes={len(self._weights)} table_size={self.table_size}>"
