"""Ketama consistent-hash rings in three flavours behind one class, and nginx's ring.

- ``"fast"`` (default): murmur3 (mmh3, 32-bit) points, 160 per unit of weight.
- ``"nginx"``: the ring of nginx's ``hash KEY consistent`` (crc32 points chained from
  ``HOST\\0PORT``, 160 per unit of weight, first point >= crc32(key)). :func:`nginx_ring`
  builds it for :class:`~lbkit.Hash` too: one builder for both.
- ``"libketama"``: libketama's continuum as uhashring builds it (md5, 4 points per digest,
  ``40 * nodes * weight // total_weight`` digests per node, first point > md5 key hash).

A build sorts every node's points at once (see :mod:`lbkit.rings._point_sort`); points are
kept in one sorted ``array`` with a parallel list of owners; the owners list
carries one extra entry (a copy of the first owner) so that a key past the last point wraps
round without a modulo. A lookup is one hash call and one index into a prefix table over the
top bits of the hash; only keys whose bucket holds points go on to a ``bisect`` bounded to
that bucket (see :class:`_Ring`).
"""

from __future__ import annotations

import bisect
import operator
import struct
import threading
from array import array
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, chain, compress, islice, repeat
from typing import Generic, Literal, TypeVar

from lbkit.errors import ConfigError, EmptyRingError
from lbkit.hashing import crc32, crc32_key, md5_digest, md5_key, mmh3_32, mmh3_32_le
from lbkit.rings._nodes import (
    MAX_RING_POINTS,
    check_known_node,
    check_max_points,
    check_new_node,
    check_ring_size,
    check_weight,
    node_weights,
    take_distinct,
)
from lbkit.rings._point_sort import sort_points

__all__ = [
    "FLAVORS",
    "POINTS_PER_WEIGHT",
    "Flavor",
    "Ketama",
    "nginx_points",
    "nginx_ring",
    "nginx_ring_table",
    "split_address",
]

N = TypeVar("N", bound=Hashable)
#: A ring flavour: which hash places points and keys.
Flavor = Literal["fast", "nginx", "libketama"]
#: The ring flavours :class:`Ketama` implements.
FLAVORS: tuple[Flavor, ...] = ("fast", "nginx", "libketama")
#: Points each unit of weight puts on a ``fast`` or ``nginx`` ring (nginx's constant).
POINTS_PER_WEIGHT = 160

_LE_U32 = struct.Struct("<I")


def split_address(address: str) -> tuple[str, str]:
    """Split server address text into ``(host, port)`` as nginx's ``hash consistent`` does.

    ``unix:/path`` gives ``("/path", "")``; otherwise the port is the run of digits after
    the last ``:`` (``"[::1]:8080"`` gives ``("[::1]", "8080")``), and text with no such run
    has no port (``"example.com"`` gives ``("example.com", "")``).
    """
    if address[:5].lower() == "unix:":
        return address[5:], ""
    stripped = address.rstrip("0123456789")
    if stripped.endswith(":"):
        return stripped[:-1], address[len(stripped) :]
    return address, ""


def nginx_points(address: str, weight: int) -> list[int]:
    """nginx's ``hash consistent`` points of one server, in the order nginx makes them.

    Point ``j`` is ``crc32(HOST "\\0" PORT prev)`` where ``prev`` is the previous point as 4
    little-endian bytes (0 for the first), HOST and PORT split from the address as written.
    """
    return _values(_nginx_point_bytes(address, weight), signed=False)


def _nginx_point_bytes(address: str, weight: int) -> bytes:
    """:func:`nginx_points` as little-endian 32-bit values: each is the next one's input."""
    host, port = split_address(address)
    base = crc32(host.encode("utf-8", "surrogatepass") + b"\x00" + port.encode("ascii"))
    out = []
    prev = b"\x00\x00\x00\x00"
    pack = _LE_U32.pack
    for _ in range(POINTS_PER_WEIGHT * weight):
        prev = pack(crc32(prev, base))
        out.append(prev)
    return b"".join(out)


def _values(points: bytes, signed: bool) -> list[int]:
    """The integers of little-endian 32-bit ``points``."""
    return list(struct.unpack(f"<{len(points) >> 2}{'i' if signed else 'I'}", points))


def nginx_ring(
    servers: Iterable[tuple[str, int]], *, max_points: int = MAX_RING_POINTS
) -> tuple[list[int], list[str]]:
    """nginx's consistent-hash ring for ``(address, weight)`` pairs in configuration order.

    Returns the sorted distinct point hashes and the address owning each. nginx sorts with
    glibc's qsort, a stable merge sort, then drops repeated hashes: of equal points the
    first in configuration order survives. The points are :class:`Ketama`'s ``nginx``
    flavour, so both give every key the same server.
    """
    pairs = list(servers)
    points, ranks = _nginx_ranked(pairs, max_points)
    addresses = [a for a, _ in pairs]
    return list(points), list(map(addresses.__getitem__, ranks))


def nginx_ring_table(
    servers: Sequence[tuple[str, int]], owners: Sequence[N], *, max_points: int = MAX_RING_POINTS
) -> _Ring[N]:
    """:func:`nginx_ring` with :class:`Ketama`'s prefix table, for lookups.

    ``owners[i]`` owns the points of ``servers[i]`` (an upstream's peer, say). The ring's
    ``lookup(key)`` is the owner of the first point >= crc32(key) (bytes; past the last
    point, the first), as ``owners[bisect_left(points, crc32(key)) % len(points)]`` but
    mostly one table index; ``position(crc32(key))`` is that point's index, by a bisect
    bounded to the table bucket (``len(points)`` past the last point, where ``owners``
    holds a copy of the first owner). Never changed once built.
    """
    points, ranks = _nginx_ranked(servers, max_points)
    ring: _Ring[N] = _Ring(points, list(map(owners.__getitem__, ranks)), {}, signed=False)
    _set_lookups(ring, crc32, bisect.bisect_left)
    return ring


def _nginx_ranked(
    servers: Sequence[tuple[str, int]], max_points: int
) -> tuple[array[int], array[int]]:
    """nginx's sorted distinct points, and the index in ``servers`` of each one's server."""
    ring: Ketama[str] = Ketama(flavor="nginx", max_points=max_points)
    # the points alone: no lookup table
    weights = ring._checked_weights([a for a, _ in servers], [w for _, w in servers])
    points, ranks = ring._ranked(weights)
    firsts = _firsts(points)
    if firsts is None:
        return points, ranks
    return (
        array(points.typecode, compress(points, firsts)),
        array(ranks.typecode, compress(ranks, firsts)),
    )


def _firsts(points: Sequence[int]) -> list[bool] | None:
    """Which of the sorted ``points`` are the first of their value; None when all are (one
    C pass finds that: equal points are rare)."""
    if not any(map(operator.eq, islice(points, 1, None), points)):
        return None
    return [True, *map(operator.ne, islice(points, 1, None), points)]


def _distinct(points: Sequence[int], owners: list[N]) -> tuple[list[int], list[N]]:
    """Sorted ``points`` without repeats, and the owner of each (the first, of equal ones)."""
    firsts = _firsts(points)
    if firsts is None:
        return list(points), owners[: len(points)]
    return list(compress(points, firsts)), list(compress(owners, firsts))


#: Decimal suffixes of the ``fast`` flavour's point names, made once: weights up to 8 need
#: no formatting at build time.
_DECIMALS = [b"%d" % i for i in range(8 * POINTS_PER_WEIGHT)]


def _decimals(count: int) -> Iterable[bytes]:
    if count <= len(_DECIMALS):
        return islice(_DECIMALS, count)
    return chain(_DECIMALS, map(b"%d".__mod__, range(len(_DECIMALS), count)))


# A node's points as little-endian 32-bit values, one ``bytes`` (see sort_points).


def _fast_points(node: str, weight: int, _nodes: int, _total: int) -> bytes:
    prefix = node.encode("utf-8", "surrogatepass") + b"-"
    return b"".join(map(mmh3_32_le, map(prefix.__add__, _decimals(POINTS_PER_WEIGHT * weight))))


def _nginx_flavour_points(node: str, weight: int, _nodes: int, _total: int) -> bytes:
    return _nginx_point_bytes(node, weight)


def _libketama_points(node: str, weight: int, nodes: int, total: int) -> bytes:
    # each md5 digest is 4 points, little-endian
    text = node.encode("utf-8", "surrogatepass") + b"-"
    return b"".join(md5_digest(text + b"%d" % i) for i in range((40 * nodes * weight) // total))


def _fast_count(weight: int, _nodes: int, _total: int) -> int:
    return POINTS_PER_WEIGHT * weight


def _libketama_count(weight: int, nodes: int, total: int) -> int:
    return 4 * ((40 * nodes * weight) // total)


_FLAVOR_FUNCS: dict[
    str,
    tuple[Callable[[str | bytes], int], Callable[..., bytes], Callable[..., int], bool],
] = {
    # flavour: (key hash, node points, point count, whether points depend on the membership)
    "fast": (mmh3_32, _fast_points, _fast_count, False),
    "nginx": (crc32_key, _nginx_flavour_points, _fast_count, False),
    "libketama": (md5_key, _libketama_points, _libketama_count, True),
}


#: Other names accepted for the flavours.
_ALIASES = {"mmh3": "fast", "default": "fast", "crc32": "nginx", "md5": "libketama"}

#: Bucket bits of the prefix table: four to eight buckets per point (three in four keys
#: answered directly), at most 2**20 buckets: a 6,000-node ring (a million points) then
#: has ~12 MB of table beside ~18 MB of points and owners, and one point per bucket.
_MIN_TABLE_BITS = 8
_MAX_TABLE_BITS = 20
_EXTRA_TABLE_BITS = 2
#: Past this many points a 2**20-bucket table answers under one key in four directly
#: (e**(-points / 2**20) < 1/4) and lookups wait on cache misses in the points and owners:
#: a 2**16-bucket table, which stays in cache, then looks up as fast (measured at 9,000 to
#: 14,000 nodes) and is built by 65,537 bisects instead of counting every point.
_SMALL_TABLE_ABOVE = 1_450_000
_SMALL_TABLE_BITS = 16


class _Miss:
    """Marks a prefix-table bucket that holds ring points: its keys need a bounded bisect."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<bucket needs bisect>"


_MISS: object = _Miss()


class _Ring(Generic[N]):
    """One published state of a ring; never changed once published.

    ``points`` is the sorted array of point hashes and ``owners`` the node of each, with
    one extra entry (a copy of the first owner) so that a key past the last point wraps
    round without a modulo. Equal points keep the order their nodes were added in.

    The prefix table splits the 32-bit hash space into ``2**bits`` buckets by the top bits
    of the hash: ``direct[b]`` is the owner of every key of bucket ``b`` when the bucket
    holds no point (most buckets), else ``_MISS``; then the key's point lies in
    ``points[starts[j]:starts[j + 1]]`` or is the first after it (``j = b + half``; for the
    signed ``fast`` hashes ``b`` is negative for negative hashes and ``direct`` is laid out
    so that Python's negative indexing finds it, ``half`` maps it back for ``starts``).
    """

    __slots__ = (
        "direct",
        "half",
        "lookup",
        "owners",
        "points",
        "position",
        "shift",
        "starts",
        "weights",
    )

    def __init__(
        self, points: array[int], owners: list[N], weights: dict[N, int], signed: bool
    ) -> None:
        self.points = points
        if points:
            owners.append(owners[0])
        self.owners = owners
        self.weights = weights
        self.lookup: Callable[[str | bytes], N]
        self.position: Callable[[int], int]
        n = len(points)
        if n > _SMALL_TABLE_ABOVE:
            bits, bucket_starts = _SMALL_TABLE_BITS, _starts_by_bisect
        else:
            bits = min(_MAX_TABLE_BITS, max(_MIN_TABLE_BITS, n.bit_length() + _EXTRA_TABLE_BITS))
            bucket_starts = _starts_by_count
        size = 1 << bits
        self.shift = shift = 32 - bits
        self.half = half = size >> 1 if signed else 0
        if not n:
            self.direct: list[object] = []
            self.starts = array("I")
            return
        # each bucket's first point index, in bucket order, and the buckets holding points
        starts, held = bucket_starts(points, shift, -half, size)
        self.starts = starts
        # bucket b at index b % size: for signed hashes the upper half holds b < 0
        in_index_order = chain(islice(starts, half, size), islice(starts, half))
        direct: list[object] = list(map(owners.__getitem__, in_index_order))
        deque(map(direct.__setitem__, held, repeat(_MISS)), 0)
        self.direct = direct


def _index_array(values: Iterable[int], n: int) -> array[int]:
    """An array of indexes into ``n`` points, of the smallest type that holds ``n``."""
    return array("H" if n < 1 << 16 else "I" if n < 1 << 32 else "Q", values)


def _starts_by_count(
    points: array[int], shift: int, first: int, size: int
) -> tuple[array[int], Iterable[int]]:
    """Bucket starts (``size + 1`` of them, buckets ``first ..``) from a count of the points
    in each bucket: one pass over the points, for tables about as large as the ring."""
    counts = Counter(map(operator.rshift, points, repeat(shift)))
    per_bucket = [0] * size  # bucket b at b - first
    deque(map(per_bucket.__setitem__, map(operator.sub, counts, repeat(first)), counts.values()), 0)
    return _index_array(accumulate(per_bucket, initial=0), len(points)), counts


def _starts_by_bisect(
    points: array[int], shift: int, first: int, size: int
) -> tuple[array[int], Iterable[int]]:
    """Bucket starts as :func:`_starts_by_count` gives them, by one bisect per bucket edge:
    for tables much smaller than the ring."""
    edges = range(first << shift, (first + size) << shift | 1, 1 << shift)
    starts = _index_array(map(bisect.bisect_left, repeat(points), edges), len(points))
    held = compress(range(first, first + size), map(operator.ne, starts, islice(starts, 1, None)))
    return starts, held


def _lookup_function(
    ring: _Ring[N], key_hash: Callable[[str | bytes], int], find: Callable[..., int]
) -> Callable[[str | bytes], N]:
    """The lookup of one ring state: hash, one prefix-table index, and for the few keys
    whose bucket holds points, a bisect bounded to that bucket (``find`` is bisect_left,
    or bisect_right for libketama's first point strictly greater)."""
    points, owners, direct, starts = ring.points, ring.owners, ring.direct, ring.starts
    shift, half, miss = ring.shift, ring.half, _MISS

    def lookup(key: str | bytes) -> N:
        """The node that owns ``key``."""
        h = key_hash(key)
        try:
            node = direct[h >> shift]
        except IndexError:
            raise EmptyRingError("lookup on an empty ring: add a node first") from None
        if node is miss:
            j = (h >> shift) + half
            return owners[find(points, h, starts[j], starts[j + 1])]
        return node  # type: ignore[return-value]

    return lookup


def _position_function(ring: _Ring[N], find: Callable[..., int]) -> Callable[[int], int]:
    """The index of the point a key hash finds on one ring state (``len(points)`` past the
    last point), by a bisect bounded to the hash's bucket of the prefix table."""
    points, starts, shift, half = ring.points, ring.starts, ring.shift, ring.half

    def position(h: int) -> int:
        """The index of the first point >= ``h`` (> ``h`` for libketama)."""
        j = (h >> shift) + half
        try:
            return find(points, h, starts[j], starts[j + 1])
        except IndexError:
            raise EmptyRingError("lookup on an empty ring: add a node first") from None

    return position


def _set_lookups(
    ring: _Ring[N], key_hash: Callable[[str | bytes], int], find: Callable[..., int]
) -> None:
    """Give one ring state its ``lookup`` and ``position``."""
    ring.lookup = _lookup_function(ring, key_hash, find)
    ring.position = _position_function(ring, find)


class Ketama(Generic[N]):
    """A consistent-hash ring mapping keys (str or bytes) to nodes.

    ``nodes`` are hashable values whose ``str()`` names them on the ring (for the ``nginx``
    flavour, the server address as written in nginx's config). ``weights`` maps a node to
    an integer weight (default 1), or is a sequence parallel to ``nodes``. A ``str`` key and
    its UTF-8 bytes map to the same node. Adding or removing a node moves only the keys of
    that node (for ``libketama`` with unequal weights, every node's point count depends on
    the total weight, so other nodes' points are recomputed, as libketama itself does).
    A ring of more than ``max_points`` points is refused with a ConfigError.

    Thread safety: any number of threads may look up while others add and remove nodes.
    Each change builds new point and owner lists beside the published ones and then swaps
    one reference (the ``lookup`` function bound to them): a lookup sees the ring before
    the change or after it, never a half-changed one. Changes are serialised by a lock.
    """

    __slots__ = (
        "_bisect",
        "_count_fn",
        "_flavor",
        "_global_points",
        "_hash",
        "_lock",
        "_max_points",
        "_point_fn",
        "_ring",
        "lookup",
    )

    def __init__(
        self,
        nodes: Iterable[N] = (),
        weights: Mapping[N, int] | Sequence[int] | None = None,
        flavor: Flavor = "fast",
        *,
        max_points: int = MAX_RING_POINTS,
    ) -> None:
        flavor = _ALIASES.get(flavor, flavor)  # type: ignore[assignment]
        if flavor not in _FLAVOR_FUNCS:
            raise ConfigError(f"unknown ring flavor {flavor!r}: expected one of {FLAVORS}")
        self._max_points = check_max_points(max_points)
        self._flavor: Flavor = flavor
        key_hash, point_fn, count_fn, global_points = _FLAVOR_FUNCS[flavor]
        self._hash = key_hash
        self._point_fn = point_fn
        self._count_fn = count_fn
        self._global_points = global_points
        # libketama finds the first point strictly greater than the key's hash.
        self._bisect = bisect.bisect_right if flavor == "libketama" else bisect.bisect_left
        self._lock = threading.Lock()
        self._publish(self._build(self._checked_weights(nodes, weights)))

    # -- building --------------------------------------------------------------------

    def _checked_weights(
        self, nodes: Iterable[N], weights: Mapping[N, int] | Sequence[int] | None
    ) -> dict[N, int]:
        weight_map = node_weights(list(nodes), weights)
        for node in weight_map:
            self._check_node(node)
        self._check_size(weight_map)
        return weight_map

    def _check_node(self, node: N) -> None:
        if self._flavor == "nginx" and not isinstance(node, str):
            raise ConfigError(f"the nginx flavour needs str nodes (server addresses), got {node!r}")

    def _check_size(self, weights: dict[N, int]) -> None:
        nodes, total = len(weights), sum(weights.values())
        count = self._count_fn
        points = sum(count(w, nodes, total) for w in weights.values())
        check_ring_size(points, self._max_points, f"a {self._flavor} ring of {nodes} nodes")

    def _node_points(self, node: N, weights: dict[N, int], total: int) -> bytes:
        return self._point_fn(str(node), weights[node], len(weights), total)

    def _sorted_node_points(self, node: N, weights: dict[N, int]) -> list[int]:
        points = self._node_points(node, weights, sum(weights.values()))
        return sorted(_values(points, self._flavor == "fast"))

    def _sorted(self, weights: dict[N, int]) -> tuple[array[int], list[N]]:
        """Every point in ascending order, and its node. ``weights`` lists the nodes in the
        order they were added: of equal points the earlier node comes first (nginx keeps
        the first in configuration order)."""
        points, ranks = self._ranked(weights)
        nodes = list(weights)
        return points, list(map(nodes.__getitem__, ranks))

    def _ranked(self, weights: dict[N, int]) -> tuple[array[int], array[int]]:
        """:meth:`_sorted` with each point's node as its index in ``weights``."""
        total = sum(weights.values())
        blobs = [self._node_points(n, weights, total) for n in weights]
        return sort_points(blobs, self._flavor == "fast")

    def _build(self, weights: dict[N, int]) -> _Ring[N]:
        return _Ring(*self._sorted(weights), weights, self._flavor == "fast")

    def _publish(self, ring: _Ring[N]) -> None:
        _set_lookups(ring, self._hash, self._bisect)
        # Two references, each consistent on its own: a call uses one or the other.
        self._ring = ring
        self.lookup: Callable[[str | bytes], N] = ring.lookup

    # -- changing membership ---------------------------------------------------------

    def add(self, node: N, weight: int = 1) -> None:
        """Put ``node`` on the ring; only keys that now fall on its points move to it."""
        with self._lock:
            old = self._ring
            check_new_node(old.weights, node, "on the ring")
            check_weight(node, weight)
            self._check_node(node)
            weights = {**old.weights, node: weight}
            self._check_size(weights)
            if self._global_points and len(set(weights.values())) > 1:
                # libketama: with unequal weights every node's point count depends on the total.
                self._publish(self._build(weights))
                return
            # One pass of slice copies: O(points + k log k), not k list inserts. The new
            # node is the newest, so of equal points it goes after the others (bisect_right):
            # nginx keeps the first in configuration order.
            old_points, old_owners = old.points, old.owners
            points = array(old_points.typecode)
            owners: list[N] = []
            lo = 0
            for p in self._sorted_node_points(node, weights):
                i = bisect.bisect_right(old_points, p, lo)
                points += old_points[lo:i]
                owners += old_owners[lo:i]
                points.append(p)
                owners.append(node)
                lo = i
            points += old_points[lo:]
            owners += old_owners[lo : len(old_points)]
            self._publish(_Ring(points, owners, weights, self._flavor == "fast"))

    def remove(self, node: N) -> None:
        """Take ``node`` off the ring; only its keys move (to the next points clockwise).

        Raises :class:`~lbkit.errors.UnknownNodeError` (a ``KeyError``) for a node not on it.
        """
        with self._lock:
            old = self._ring
            check_known_node(old.weights, node, "on the ring")
            equal_before = len(set(old.weights.values())) == 1
            weights = {n: w for n, w in old.weights.items() if n != node}
            if self._global_points and not equal_before:
                self._publish(self._build(weights))
                return
            # the ring always holds what _build(old.weights) makes: recompute the node's points
            old_points, old_owners = old.points, old.owners
            points = array(old_points.typecode)
            owners: list[N] = []
            lo = 0
            for p in self._sorted_node_points(node, old.weights):
                i = bisect.bisect_left(old_points, p, lo)
                while old_owners[i] != node:  # equal points of other nodes
                    i += 1
                points += old_points[lo:i]
                owners += old_owners[lo:i]
                lo = i + 1
            points += old_points[lo:]
            owners += old_owners[lo : len(old_points)]
            self._publish(_Ring(points, owners, weights, self._flavor == "fast"))

    # -- lookups ---------------------------------------------------------------------

    def lookup_many(self, keys: Iterable[str | bytes]) -> list[N]:
        """The nodes of many keys, in order, all from one state of the ring.

        Saves the caller's loop; each key costs what ``lookup`` costs (mostly one table
        index).
        """
        return list(map(self._ring.lookup, keys))

    def lookup_distinct(self, key: str | bytes, count: int) -> list[N]:
        """Up to ``count`` distinct nodes met walking clockwise from ``key`` (replicas)."""
        return list(take_distinct(self.walk(key), count))

    def walk(self, key: str | bytes) -> Iterator[N]:
        """Owners of the points from ``key``'s position clockwise, once round the ring."""
        ring = self._ring
        points, owners = ring.points, ring.owners
        if not points:
            raise EmptyRingError("walk on an empty ring: add a node first")
        n = len(points)
        start = ring.position(self._hash(key)) % n
        return (owners[(start + i) % n] for i in range(n))

    def distinct_points(self) -> tuple[list[int], list[N]]:
        """The sorted distinct points and the owner of each (the first added, of equal ones)."""
        ring = self._ring
        return _distinct(ring.points, ring.owners)

    # -- introspection ---------------------------------------------------------------

    @property
    def flavor(self) -> Flavor:
        """The ring's flavour."""
        return self._flavor

    @property
    def max_points(self) -> int:
        """The most points this ring may hold."""
        return self._max_points

    @property
    def nodes(self) -> list[N]:
        """The nodes, in the order they were added."""
        return list(self._ring.weights)

    @property
    def weights(self) -> dict[N, int]:
        """Each node's weight."""
        return dict(self._ring.weights)

    @property
    def points(self) -> int:
        """How many points the ring holds."""
        return len(self._ring.points)

    def key_hash(self, key: str | bytes) -> int:
        """The ring position of ``key`` in this flavour."""
        return int(self._hash(key))

    def shares(self) -> dict[N, float]:
        """Fraction of the hash space each node owns (the arc before each of its points)."""
        ring = self._ring
        if not ring.points:
            return {}
        lo, hi = (0, 2**32) if self._flavor != "fast" else (-(2**31), 2**31)
        span = hi - lo
        out = dict.fromkeys(ring.weights, 0.0)
        points, owners = ring.points, ring.owners
        prev = points[-1] - span
        for p, owner in zip(points, owners, strict=False):
            out[owner] += (p - prev) / span
            prev = p
        return out

    def __len__(self) -> int:
        return len(self._ring.weights)

    def __contains__(self, node: object) -> bool:
        return node in self._ring.weights

    def __repr__(self) -> str:
        ring = self._ring
        return f"<Ketama {self._flavor} nodes={len(ring.weights)} points={len(ring.points)}>"
