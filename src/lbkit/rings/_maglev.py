"""Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights.

Each node walks its own permutation of the table slots (``offset + j * skip`` modulo a prime
table size) and, turn by turn, claims the next free slot on its walk; a key's node is
``table[hash(key) % size]``. Every node ends with an almost equal share of slots (weighted:
proportional to weight), and a membership change moves few keys, though unlike a ring some
keys move between surviving nodes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from lbkit.errors import ConfigError, EmptyRingError
from lbkit.hashing import mmh3_32
from lbkit.rings._nodes import check_known_node, check_new_node, check_weight, node_weights

__all__ = ["DEFAULT_TABLE_SIZE", "MAX_TABLE_SIZE", "Maglev", "is_prime"]

N = TypeVar("N", bound=Hashable)

#: Envoy's default table size: a prime, about 650 slots per node for 100 nodes.
DEFAULT_TABLE_SIZE = 65537
#: Largest table accepted (a prime near 2**24: ~130 MB of slots, a few seconds to fill).
MAX_TABLE_SIZE = 16_777_259

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
    return mmh3_32(key, 0, False)


class Maglev(Generic[N]):
    """A Maglev lookup table mapping keys (str or bytes) to nodes.

    ``weights`` (a mapping or a sequence parallel to ``nodes``) makes a node's share of
    slots proportional to its weight. ``table_size`` must be a prime larger than the number
    of nodes, at most :data:`MAX_TABLE_SIZE`. Membership changes rebuild the table (O(table
    size)).

    Thread safety: lookups may run while other threads add and remove nodes. A change
    fills a new table and then swaps one reference (the ``lookup`` function bound to it):
    a lookup sees the old table or the new one, never a half-filled one. Changes are
    serialised by a lock.
    """

    __slots__ = ("_lock", "_table", "_weights", "lookup", "table_size")

    def __init__(
        self,
        nodes: Iterable[N] = (),
        weights: Mapping[N, int] | Sequence[int] | None = None,
        table_size: int = DEFAULT_TABLE_SIZE,
    ) -> None:
        if (
            isinstance(table_size, bool)
            or not isinstance(table_size, int)
            or not 2 <= table_size <= MAX_TABLE_SIZE
            or not is_prime(table_size)
        ):
            raise ConfigError(
                f"invalid table_size {table_size!r}: expected a prime such as 65537, at most "
                f"{MAX_TABLE_SIZE}"
            )
        self.table_size = table_size
        self._lock = threading.Lock()
        weight_map: dict[N, int] = node_weights(list(nodes), weights)
        self._publish(weight_map, self._build(weight_map))

    def _build(self, weights: dict[N, int]) -> list[N]:
        nodes = list(weights)
        if len(nodes) >= self.table_size:
            raise ConfigError(
                f"{len(nodes)} nodes need a table_size larger than that (got {self.table_size})"
            )
        size = self.table_size
        table: list[N | None] = [None] * size
        if not nodes:
            return []
        offsets = []
        skips = []
        for node in nodes:
            name = str(node).encode("utf-8", "surrogatepass")
            offsets.append(mmh3_32(name, _OFFSET_SEED, False) % size)
            skips.append(mmh3_32(name, _SKIP_SEED, False) % (size - 1) + 1)
        weight_list = [weights[n] for n in nodes]
        top = max(weight_list)
        nexts = [0] * len(nodes)
        # A node of the top weight takes a turn every round; one of weight w, w/top of them.
        credit = [0] * len(nodes)
        filled = 0
        while True:
            for i, node in enumerate(nodes):
                credit[i] += weight_list[i]
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
                    return table  # type: ignore[return-value]

    def _publish(self, weights: dict[N, int], table: list[N]) -> None:
        size = self.table_size
        hash32 = mmh3_32

        def lookup(key: str | bytes) -> N:
            """The node that owns ``key``."""
            if not table:
                raise EmptyRingError("lookup on an empty Maglev table: add a node first")
            return table[hash32(key, 0, False) % size]

        self._weights = weights
        self._table = table
        self.lookup: Callable[[str | bytes], N] = lookup

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys at once, in order."""
        table, size = self._table, self.table_size
        if not table:
            raise EmptyRingError("lookup on an empty Maglev table: add a node first")
        return [table[h % size] for h in map(_key_hash, keys)]

    def add(self, node: N, weight: int = 1) -> None:
        """Add ``node`` and rebuild the table."""
        with self._lock:
            check_new_node(self._weights, node, "in the table")
            check_weight(node, weight)
            weights = {**self._weights, node: weight}
            self._publish(weights, self._build(weights))

    def remove(self, node: N) -> None:
        """Remove ``node`` and rebuild the table (UnknownNodeError if it is not there)."""
        with self._lock:
            check_known_node(self._weights, node, "in the table")
            weights = {n: w for n, w in self._weights.items() if n != node}
            self._publish(weights, self._build(weights))

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._weights)

    def slot_counts(self) -> dict[N, int]:
        """How many table slots each node owns."""
        table = self._table
        counts = dict.fromkeys(set(table), 0)
        for node in table:
            counts[node] += 1
        return counts

    def __len__(self) -> int:
        return len(self._weights)

    def __repr__(self) -> str:
        return f"<Maglev nodes={len(self._weights)} table_size={self.table_size}>"
