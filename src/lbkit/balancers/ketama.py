"""Ketama consistent-hash rings in three flavours behind one class.

- ``"fast"`` (default): murmur3 (mmh3, 32-bit) points, 160 per unit of weight.
- ``"nginx"``: the ring of nginx's ``hash KEY consistent`` (crc32 points chained from
  ``HOST\\0PORT``, 160 per unit of weight, first point >= crc32(key)).
- ``"libketama"``: libketama's continuum as uhashring builds it (md5, 4 points per digest,
  ``40 * nodes * weight // total_weight`` digests per node, first point > md5 key hash).

A lookup is one hash call, one ``bisect`` and one list index. Points are kept in one sorted
list with a parallel list of owners; the owners list carries one extra entry (a copy of the
first owner) so that a key past the last point wraps round without a modulo.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import struct
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Generic, Literal, TypeVar

import mmh3

from lbkit.errors import ConfigError, EmptyRingError
from lbkit.hashing import crc32
from lbkit.server import split_address

__all__ = ["FLAVORS", "Flavor", "Ketama"]

N = TypeVar("N", bound=Hashable)
Flavor = Literal["fast", "nginx", "libketama"]
#: The ring flavours :class:`Ketama` implements.
FLAVORS: tuple[Flavor, ...] = ("fast", "nginx", "libketama")

_LE_U32 = struct.Struct("<I")
_LE_4U32 = struct.Struct("<4I")


def _to_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def _crc32_key(key: str | bytes) -> int:
    return crc32(_to_bytes(key))


def _md5_key(key: str | bytes) -> int:
    return int(_LE_U32.unpack_from(hashlib.md5(_to_bytes(key), usedforsecurity=False).digest())[0])


def _fast_points(node: str, weight: int, _nodes: int, _total: int) -> list[int]:
    prefix = node.encode("utf-8") + b"-"
    hash32 = mmh3.hash
    return [hash32(prefix + b"%d" % i) for i in range(160 * weight)]


def _nginx_points(node: str, weight: int, _nodes: int, _total: int) -> list[int]:
    host, port = split_address(node)
    base = crc32(host.encode("utf-8") + b"\x00" + (port or "").encode("ascii"))
    out = []
    prev = 0
    pack = _LE_U32.pack
    for _ in range(160 * weight):
        prev = crc32(pack(prev), base)
        out.append(prev)
    return out


def _libketama_points(node: str, weight: int, nodes: int, total: int) -> list[int]:
    count = (40 * nodes * weight) // total
    out: list[int] = []
    md5 = hashlib.md5
    for i in range(count):
        digest = md5(f"{node}-{i}".encode(), usedforsecurity=False).digest()
        out.extend(_LE_4U32.unpack(digest))
    return out


_FLAVOR_FUNCS: dict[str, tuple[Callable[[str | bytes], int], Callable[..., list[int]], bool]] = {
    # flavour: (key hash, node points, whether points depend on the whole membership)
    "fast": (mmh3.hash, _fast_points, False),
    "nginx": (_crc32_key, _nginx_points, False),
    "libketama": (_md5_key, _libketama_points, True),
}


#: Other names accepted for the flavours.
_ALIASES = {"mmh3": "fast", "default": "fast", "crc32": "nginx", "md5": "libketama"}


class Ketama(Generic[N]):
    """A consistent-hash ring mapping keys (str or bytes) to nodes.

    ``nodes`` are hashable values whose ``str()`` names them on the ring (for the ``nginx``
    flavour, the server address as written in nginx's config). ``weights`` maps a node to
    an integer weight (default 1), or is a sequence parallel to ``nodes``. A ``str`` key and
    its UTF-8 bytes map to the same node. Adding or removing a node moves only the keys of
    that node (for ``libketama`` with unequal weights, every node's point count depends on
    the total weight, so other nodes' points are recomputed, as libketama itself does).
    """

    __slots__ = (
        "_bisect",
        "_bucket_table",
        "_flavor",
        "_global_points",
        "_hash",
        "_node_points",
        "_node_seq",
        "_owners",
        "_point_fn",
        "_points",
        "_seq",
        "_weights",
        "lookup",
    )

    def __init__(
        self,
        nodes: Iterable[N] = (),
        weights: Mapping[N, int] | Sequence[int] | None = None,
        flavor: Flavor = "fast",
    ) -> None:
        flavor = _ALIASES.get(flavor, flavor)  # type: ignore[assignment]
        if flavor not in _FLAVOR_FUNCS:
            raise ConfigError(f"unknown ring flavor {flavor!r}: expected one of {FLAVORS}")
        node_list = list(nodes)
        weight_map = _weights_for(node_list, weights)
        self._flavor: Flavor = flavor
        key_hash, point_fn, global_points = _FLAVOR_FUNCS[flavor]
        self._hash = key_hash
        self._point_fn = point_fn
        self._global_points = global_points
        # libketama finds the first point strictly greater than the key's hash.
        self._bisect = bisect.bisect_right if flavor == "libketama" else bisect.bisect_left
        self._points: list[int] = []
        self._owners: list[N] = []
        self._weights: dict[N, int] = {}
        self._node_points: dict[N, list[int]] = {}
        self._node_seq: dict[N, int] = {}
        self._seq = 0
        self._bucket_table: _BucketTable | None = None
        for node in node_list:
            self._register(node, weight_map[node])
        self._rebuild()
        self.lookup: Callable[[str | bytes], N] = self._make_lookup()

    # -- building --------------------------------------------------------------------

    def _register(self, node: N, weight: int) -> None:
        if node in self._weights:
            raise ConfigError(f"node {node!r} is already on the ring")
        _check_weight(node, weight)
        if self._flavor == "nginx" and not isinstance(node, str):
            raise ConfigError(f"the nginx flavour needs str nodes (server addresses), got {node!r}")
        self._weights[node] = weight
        self._node_seq[node] = self._seq
        self._seq += 1

    def _compute(self, node: N) -> list[int]:
        return self._point_fn(
            str(node), self._weights[node], len(self._weights), sum(self._weights.values())
        )

    def _rebuild(self) -> None:
        entries: list[tuple[int, int, N]] = []
        self._node_points = {}
        for node in self._weights:
            pts = self._compute(node)
            self._node_points[node] = pts
            seq = self._node_seq[node]
            entries.extend((p, seq, node) for p in pts)
        entries.sort(key=lambda e: (e[0], e[1]))
        self._points[:] = [e[0] for e in entries]
        self._owners[:] = [e[2] for e in entries]
        self._fix_wrap()

    def _fix_wrap(self) -> None:
        self._bucket_table = None
        # owners has one more entry than points: a key past the last point takes owners[0].
        if len(self._owners) > len(self._points):
            del self._owners[len(self._points) :]
        if self._points:
            self._owners.append(self._owners[0])

    def _make_lookup(self) -> Callable[[str | bytes], N]:
        points, owners, key_hash, find = self._points, self._owners, self._hash, self._bisect

        def lookup(key: str | bytes) -> N:
            """The node that owns ``key``."""
            try:
                return owners[find(points, key_hash(key))]
            except IndexError:
                raise EmptyRingError("lookup on an empty ring: add a node first") from None

        return lookup

    # -- changing membership ---------------------------------------------------------

    def add(self, node: N, weight: int = 1) -> None:
        """Put ``node`` on the ring; only keys that now fall on its points move to it."""
        self._register(node, weight)
        if self._global_points and len(set(self._weights.values())) > 1:
            # libketama: with unequal weights every node's point count depends on the total.
            self._rebuild()
            return
        pts = self._compute(node)
        self._node_points[node] = pts
        if self._points:
            self._owners.pop()  # the wrap entry, restored below
        seq = self._node_seq[node]
        points, owners, node_seq = self._points, self._owners, self._node_seq
        for p in pts:
            # equal points keep the order nodes were added in (nginx keeps the first)
            i = bisect.bisect_left(points, p)
            while i < len(points) and points[i] == p and node_seq[owners[i]] < seq:
                i += 1
            points.insert(i, p)
            owners.insert(i, node)
        self._fix_wrap()

    def remove(self, node: N) -> None:
        """Take ``node`` off the ring; only its keys move (to the next points clockwise)."""
        if node not in self._weights:
            known = ", ".join(map(repr, list(self._weights)[:10]))
            raise KeyError(f"node {node!r} is not on the ring (nodes: {known})")
        equal_before = len(set(self._weights.values())) == 1
        del self._weights[node]
        pts = self._node_points.pop(node)
        del self._node_seq[node]
        if self._global_points and not equal_before:
            self._rebuild()
            return
        points, owners = self._points, self._owners
        owners.pop()  # the wrap entry, restored below
        for p in pts:
            i = bisect.bisect_left(points, p)
            while owners[i] != node:
                i += 1
            del points[i]
            del owners[i]
        self._fix_wrap()

    # -- lookups ---------------------------------------------------------------------

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys at once, in order (markedly faster per key than ``lookup``).

        Uses a bucket table over the top bits of the hash, built on first use and dropped
        when the membership changes: a key whose bucket holds no ring point is answered by
        one table index; the others (a few percent) by a binary search.
        """
        if not self._points:
            raise EmptyRingError("lookup on an empty ring: add a node first")
        if self._bucket_table is None:
            self._bucket_table = _BucketTable.build(self._points, self._owners, self._flavor)
        table = self._bucket_table
        key_list = keys if isinstance(keys, (list, tuple)) else list(keys)
        key_hash = self._hash
        found: list[object] = list(
            map(
                table.owners.__getitem__,
                map(operator.rshift, map(key_hash, key_list), repeat(table.shift)),
            )
        )
        points, owners, find, miss = self._points, self._owners, self._bisect, _MISS
        i = -1
        try:
            while True:
                i = found.index(miss, i + 1)
                found[i] = owners[find(points, key_hash(key_list[i]))]
        except ValueError:
            pass
        return found  # type: ignore[return-value]

    def lookup_distinct(self, key: str | bytes, count: int) -> list[N]:
        """Up to ``count`` distinct nodes met walking clockwise from ``key`` (replicas)."""
        return list(_take_distinct(self.walk(key), count))

    def walk(self, key: str | bytes) -> Iterator[N]:
        """Owners of the points from ``key``'s position clockwise, once round the ring."""
        if not self._points:
            raise EmptyRingError("walk on an empty ring: add a node first")
        n = len(self._points)
        start = self._bisect(self._points, self._hash(key)) % n
        owners = self._owners
        for i in range(n):
            yield owners[(start + i) % n]

    # -- introspection ---------------------------------------------------------------

    @property
    def flavor(self) -> Flavor:
        """The ring's flavour."""
        return self._flavor

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._weights)

    @property
    def weights(self) -> dict[N, int]:
        """Each node's weight."""
        return dict(self._weights)

    @property
    def points(self) -> int:
        """How many points the ring holds."""
        return len(self._points)

    def key_hash(self, key: str | bytes) -> int:
        """The ring position of ``key`` in this flavour."""
        return int(self._hash(key))

    def shares(self) -> dict[N, float]:
        """Fraction of the hash space each node owns (the arc before each of its points)."""
        if not self._points:
            return {}
        lo, hi = (0, 2**32) if self._flavor != "fast" else (-(2**31), 2**31)
        span = hi - lo
        out = dict.fromkeys(self._weights, 0.0)
        points, owners = self._points, self._owners
        prev = points[-1] - span
        for p, owner in zip(points, owners, strict=False):
            out[owner] += (p - prev) / span
            prev = p
        return out

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node: object) -> bool:
        return node in self._weights

    def __repr__(self) -> str:
        return f"<Ketama {self._flavor} nodes={len(self._weights)} points={len(self._points)}>"


class _Miss:
    """Marks a bucket that holds ring points: its keys need a binary search."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<bucket needs bisect>"


_MISS = _Miss()


class _BucketTable:
    """Owner of every bucket of ``2**(32 - shift)`` hash values that holds no ring point."""

    __slots__ = ("owners", "shift")

    def __init__(self, owners: list[object], shift: int) -> None:
        self.owners = owners
        self.shift = shift

    @classmethod
    def build(cls, points: list[int], owners: Sequence[object], flavor: str) -> _BucketTable:
        # about sixteen buckets per point: ~94% of buckets then hold no point at all
        bits = min(20, max(10, (16 * len(points)).bit_length()))
        shift = 32 - bits
        size = 1 << bits
        table: list[object] = [_MISS] * size
        # signed hashes (mmh3) index from the end for negative values: bucket v sits at v % size
        first = -(size >> 1) if flavor == "fast" else 0
        i = 0
        n = len(points)
        for v in range(first, first + size):
            hi = (v + 1) << shift
            j = i
            while j < n and points[j] < hi:
                j += 1
            if j == i:
                table[v % size] = owners[i]  # owners[n] is the wrap entry
            i = j
        return cls(table, shift)


def _take_distinct(it: Iterable[N], count: int) -> Iterator[N]:
    seen: set[N] = set()
    for node in it:
        if node not in seen:
            seen.add(node)
            yield node
            if len(seen) >= count:
                return


def _check_weight(node: object, weight: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ConfigError(f"invalid weight {weight!r} for node {node!r}: expected an integer >= 1")


def _weights_for(nodes: list[N], weights: Mapping[N, int] | Sequence[int] | None) -> dict[N, int]:
    if weights is None:
        return dict.fromkeys(nodes, 1)
    if isinstance(weights, Mapping):
        unknown = [n for n in weights if n not in set(nodes)]
        if unknown:
            raise ConfigError(f"weights given for unknown nodes: {unknown[:5]!r}")
        return {n: weights.get(n, 1) for n in nodes}
    weight_list = list(weights)
    if len(weight_list) != len(nodes):
        raise ConfigError(
            f"{len(weight_list)} weights for {len(nodes)} nodes: give one weight per node"
        )
    return dict(zip(nodes, weight_list, strict=True))


def node_weights(nodes: list[N], weights: Mapping[N, int] | Sequence[int] | None) -> dict[N, int]:
    """Each node's weight, refusing duplicate nodes and weights that are not integers >= 1."""
    if len(set(nodes)) != len(nodes):
        raise ConfigError("duplicate nodes: each node may appear once")
    out = _weights_for(nodes, weights)
    for node, weight in out.items():
        _check_weight(node, weight)
    return out
