"""Jump consistent hash (Lamping and Veach, 2014) over a list of nodes.

With the ``fast`` extra installed, the jump itself runs in C (the ``jump-consistent-hash``
package, imported here only); the pure-Python loop below is the fallback and gives the same
bucket for every key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from lbkit.errors import ConfigError, EmptyRingError
from lbkit.hashing import mmh3_hash64
from lbkit.rings._nodes import check_known_node, check_new_node

try:
    from jump import c_hash as _c_jump
except ImportError:  # the fast extra is not installed
    _c_jump = None

__all__ = ["JumpHash", "jump_hash"]

N = TypeVar("N", bound=Hashable)

#: Most buckets :func:`jump_hash` accepts (its loop runs O(log buckets) steps).
MAX_BUCKETS = 2**31
#: Most buckets the C jump takes (a C ``int32_t``); more take the pure-Python loop.
_C_MAX_BUCKETS = 2**31 - 1

_MASK64 = 0xFFFFFFFFFFFFFFFF


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in ``range(buckets)`` for a 64-bit key."""
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"jump_hash needs 1..{MAX_BUCKETS} buckets, got {buckets!r}")
    if isinstance(key, bool) or not isinstance(key, int):
        raise ConfigError(f"jump_hash needs an integer key, got {key!r}")
    if _c_jump is not None and buckets <= _C_MAX_BUCKETS:
        return int(_c_jump(key & _MASK64, buckets))
    return py_jump(key & _MASK64, buckets)


def py_jump(key: int, buckets: int) -> int:
    """:func:`jump_hash` in pure Python for a 64-bit key and a bucket count already checked.

    The C version computes the same doubles: ``(b + 1) * (2**31 / ((key >> 33) + 1))``
    truncated towards zero.
    """
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def _lookup_over(nodes: tuple[N, ...]) -> Callable[[str | bytes], N]:
    """The lookup function of one tuple of nodes (C jump when installed)."""
    count = len(nodes)
    hash64 = mmh3_hash64
    if not nodes:

        def empty(key: str | bytes) -> N:
            """The node for ``key``."""
            raise EmptyRingError("lookup with no nodes: add a node first")

        return empty
    jump = _c_jump if _c_jump is not None and count <= _C_MAX_BUCKETS else py_jump

    def lookup(key: str | bytes) -> N:
        """The node for ``key``."""
        return nodes[jump(hash64(key, 0, signed=False)[0], count)]

    return lookup


class JumpHash(Generic[N]):
    """Jump consistent hash over a list of nodes (no weights, no removal but of the last).

    Appending a node moves ~1/N of the keys to it; removing any node other than the last
    renumbers the buckets after it, which is why it suits numbered shards, not named peers.

    Thread safety: lookups may run while other threads add and remove nodes: a change
    builds a new tuple of nodes and swaps one reference (the ``lookup`` function bound to
    it), so a lookup sees the nodes before the change or after it. Changes are serialised
    by a lock.
    """

    __slots__ = ("_lock", "_nodes", "lookup")

    def __init__(self, nodes: Iterable[N] = ()) -> None:
        node_list = tuple(nodes)
        if len(set(node_list)) != len(node_list):
            raise ConfigError("duplicate nodes: each node may appear once")
        self._lock = threading.Lock()
        self._publish(node_list)

    def _publish(self, nodes: tuple[N, ...]) -> None:
        self._nodes = nodes
        self.lookup: Callable[[str | bytes], N] = _lookup_over(nodes)

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys, in order."""
        return list(map(self.lookup, keys))

    def add(self, node: N) -> None:
        """Append a node (bucket ``len(nodes)``)."""
        with self._lock:
            check_new_node(self._nodes, node, "present")
            self._publish((*self._nodes, node))

    def remove(self, node: N) -> None:
        """Remove a node; only the last one can go without renumbering others."""
        with self._lock:
            check_known_node(self._nodes, node, "present")
            self._publish(tuple(n for n in self._nodes if n != node))

    @property
    def nodes(self) -> list[N]:
        """The nodes by bucket number."""
        return list(self._nodes)
