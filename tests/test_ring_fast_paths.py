"""The rings' fast paths against straightforward references.

- Ketama's prefix table (a direct answer for most buckets, a bisect bounded to the bucket
  for the others) against a plain sorted list and a full ``bisect``, written here from the
  hash functions up, over random node sets, weights, add/remove sequences and keys.
- JumpHash through the C package against the pure-Python loop.
- Placement pinned: digests of what every structure answered before the fast paths.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import struct
import zlib
from array import array
from collections.abc import Callable

import jump  # jump-consistent-hash, the C jump (fast and test extras)
import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.rings import _jump, _ketama, _point_sort, split_address

from .helpers import churn_ring

# -- a reference ring, from the hash functions up ----------------------------------------


def _reference_points(flavor: str, node: str, weight: int, nodes: int, total: int) -> list[int]:
    if flavor == "fast":
        return [mmh3.hash(f"{node}-{i}".encode()) for i in range(160 * weight)]
    if flavor == "nginx":
        host, port = split_address(node)
        base = zlib.crc32(host.encode() + b"\x00" + port.encode())
        out, prev = [], 0
        for _ in range(160 * weight):
            prev = zlib.crc32(struct.pack("<I", prev), base)
            out.append(prev)
        return out
    out = []
    for i in range((40 * nodes * weight) // total):
        out += struct.unpack("<4I", hashlib.md5(f"{node}-{i}".encode()).digest())
    return out


def _reference_key_hash(flavor: str, key: str | bytes) -> int:
    data = key.encode() if isinstance(key, str) else key
    if flavor == "fast":
        return int(mmh3.hash(data))
    if flavor == "nginx":
        return zlib.crc32(data)
    return int.from_bytes(hashlib.md5(data).digest()[:4], "little")


def _reference_lookup(flavor: str, weights: dict[str, int]) -> Callable[[str | bytes], str]:
    """Sort every (point, order added, node), then ``owners[bisect(points, h) % n]``."""
    total = sum(weights.values())
    entries = sorted(
        (p, order, node)
        for order, (node, w) in enumerate(weights.items())
        for p in _reference_points(flavor, node, w, len(weights), total)
    )
    points = [p for p, _, _ in entries]
    owners = [node for _, _, node in entries]
    find = bisect.bisect_right if flavor == "libketama" else bisect.bisect_left

    def lookup(key: str | bytes) -> str:
        return owners[find(points, _reference_key_hash(flavor, key)) % len(points)]

    return lookup


_NODE_POOL = [f"10.0.{i // 4}.{i}:{8000 + i}" for i in range(10)] + ["unix:/run/a", "b.example"]
_keys_st = st.lists(st.text(max_size=12) | st.binary(max_size=12), max_size=40)


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), keys=_keys_st, seed=st.integers(0, 2**32))
def test_fast_lookup_equals_a_plain_bisect(
    flavor: lbkit.Flavor, data: st.DataObject, keys: list[str | bytes], seed: int
) -> None:
    first = data.draw(st.lists(st.sampled_from(_NODE_POOL), min_size=1, max_size=6, unique=True))
    weights = {n: data.draw(st.integers(1, 3)) for n in first}
    ring: lbkit.Ketama[str] = lbkit.Ketama(list(weights), dict(weights), flavor)
    churn_ring(data, ring, weights, _NODE_POOL, data.draw(st.integers(0, 5)))
    rng = random.Random(seed)
    keys = keys + [f"k{rng.getrandbits(64):x}" for _ in range(300)]
    expected = _reference_lookup(flavor, weights)
    want = [expected(k) for k in keys]
    assert [ring.lookup(k) for k in keys] == want
    assert ring.lookup_many(keys) == want
    assert [next(ring.walk(k)) for k in keys[:50]] == want[:50]
    assert ring.nodes == list(weights)


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_ring_built_at_once_equals_one_built_by_adds_and_removes(
    flavor: lbkit.Flavor, data: st.DataObject
) -> None:
    """Adding and removing nodes one by one leaves exactly the points, owners and table
    that building the final membership at once gives (ties between nodes included)."""
    pool = [*_NODE_POOL, "n1", "n2"]
    start = data.draw(st.lists(st.sampled_from(pool), max_size=5, unique=True))
    weights = {n: data.draw(st.integers(1, 3)) for n in start}
    ring: lbkit.Ketama[str] = lbkit.Ketama(list(weights), dict(weights), flavor)
    churn_ring(data, ring, weights, pool, data.draw(st.integers(1, 8)), keep_one=False)
    built: lbkit.Ketama[str] = lbkit.Ketama(list(weights), dict(weights), flavor)
    got, want = ring._ring, built._ring
    assert list(got.points) == list(want.points)
    assert got.owners == want.owners
    assert (list(got.starts), got.direct) == (list(want.starts), want.direct)
    assert ring.nodes == built.nodes


def test_equal_points_of_two_nodes_keep_the_order_they_were_added_in() -> None:
    """A point two nodes share belongs to the node added first, built at once or not."""
    # two different nodes with the same ring name (str()) have the same points
    first, second = _SameName(1), _SameName(2)
    ring: lbkit.Ketama[_SameName] = lbkit.Ketama([first, second])
    assert ring._ring.owners == [first, second] * 160 + [first]
    assert ring.distinct_points()[1] == [first] * 160
    later: lbkit.Ketama[_SameName] = lbkit.Ketama([first])
    later.add(second)
    assert later._ring.owners == ring._ring.owners
    assert ring.lookup_many(["a", "b", "c"]) == [first, first, first]
    later.remove(first)
    assert later.lookup_many(["a", "b", "c"]) == [second, second, second]


class _SameName:
    """A node whose ring name (its ``str()``) is the same for every instance."""

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __str__(self) -> str:
        return "same"

    def __repr__(self) -> str:
        return f"_SameName({self.ident})"


# -- the prefix table itself, on hashes chosen to sit on points and bucket edges ---------


def _table_cases(signed: bool) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    lo, hi = (-(2**31), 2**31 - 1) if signed else (0, 2**32 - 1)
    # with few points the table has 2**8 buckets of 2**24 hashes (the small table of a huge
    # ring 2**16 of 2**16): crowd the edges
    edges = [
        e
        for b in range(-2, 3)
        for shift in (24, 16)
        for e in ((b << shift), (b << shift) - 1, (b << shift) + 1)
    ]
    edges = [e % 2**32 - (2**31 if signed else 0) for e in edges] + [lo, hi]
    value = st.integers(lo, hi) | st.sampled_from(edges)
    return st.tuples(st.lists(value, min_size=1, max_size=60), st.lists(value, max_size=60))


@pytest.mark.parametrize("small_table", [False, True])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("find", [bisect.bisect_left, bisect.bisect_right])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_prefix_table_equals_a_plain_bisect_on_edges(
    small_table: bool, signed: bool, find: Callable[..., int], data: st.DataObject
) -> None:
    """Lookups through the table, as rings build it and as huge rings do (a 2**16 table
    found by bisects), equal a plain bisect."""
    raw, probes = data.draw(_table_cases(signed))
    owners_pool = "abcde"
    entries = sorted((p, data.draw(st.sampled_from(owners_pool))) for p in raw)
    points = [p for p, _ in entries]
    owners = [o for _, o in entries]
    with pytest.MonkeyPatch.context() as patch:
        if small_table:
            patch.setattr(_ketama, "_SMALL_TABLE_ABOVE", 0)
        ring = _ketama._Ring(array("q", points), list(owners), dict.fromkeys(owners, 1), signed)
    assert ring.shift == 16 if small_table else ring.shift >= 12
    lookup = _ketama._lookup_function(ring, lambda h: h, find)  # type: ignore[arg-type,return-value]
    # every point, its neighbours, and the probes
    for h in [*probes, *points, *(p - 1 for p in points), *(p + 1 for p in points)]:
        if not (-(2**31) if signed else 0) <= h < (2**31 if signed else 2**32):
            continue
        assert lookup(h) == owners[find(points, h) % len(points)], h  # type: ignore[arg-type]


@pytest.mark.parametrize("signed", [True, False])
@settings(max_examples=100, deadline=None)
@given(data=st.data(), bits=st.integers(1, 12))
def test_bucket_starts_by_bisect_equal_those_by_count(
    signed: bool, data: st.DataObject, bits: int
) -> None:
    raw, _ = data.draw(_table_cases(signed))
    points = array("q", sorted(raw))
    size = 1 << bits
    first = -(size >> 1) if signed else 0
    counted, counted_held = _ketama._starts_by_count(points, 32 - bits, first, size)
    found, found_held = _ketama._starts_by_bisect(points, 32 - bits, first, size)
    assert list(found) == list(counted)
    assert sorted(found_held) == sorted(counted_held)
    assert counted[0] == 0
    assert counted[-1] == len(points)


def test_empty_ring_lookups_say_add_a_node() -> None:
    ring: lbkit.Ketama[str] = lbkit.Ketama()
    with pytest.raises(lbkit.EmptyRingError, match="add a node"):
        ring.lookup("k")
    with pytest.raises(lbkit.EmptyRingError):
        ring.lookup_many(["k"])
    ring.add("a")
    ring.remove("a")
    with pytest.raises(lbkit.EmptyRingError):
        ring.lookup("k")


def test_a_ring_of_10000_nodes_builds_and_answers_like_the_reference() -> None:
    nodes = [f"node-{i}" for i in range(10_000)]
    ring = lbkit.Ketama(nodes, max_points=1_600_000)
    assert ring.points == 1_600_000
    sample = [f"k{i}" for i in range(2000)]
    expected = _reference_lookup("fast", dict.fromkeys(nodes, 1))
    assert ring.lookup_many(sample) == [expected(k) for k in sample]


# -- JumpHash: C and pure Python agree ----------------------------------------------------

_MASK64 = 2**64 - 1


@settings(max_examples=500)
@given(key=st.integers(-(2**70), 2**70), buckets=st.integers(1, 2**31 - 1))
def test_c_jump_equals_the_pure_python_jump(key: int, buckets: int) -> None:
    pure = _jump.py_jump(key & _MASK64, buckets)
    assert jump.c_hash(key & _MASK64, buckets) == pure
    assert lbkit.jump_hash(key, buckets) == pure


def test_jump_hash_past_the_c_range_takes_the_pure_loop() -> None:
    assert lbkit.jump_hash(12345, 2**31) == _jump.py_jump(12345, 2**31)


@settings(max_examples=50, deadline=None)
@given(count=st.integers(1, 300), keys=_keys_st)
def test_jump_lookup_is_the_same_with_and_without_the_c_package(
    count: int, keys: list[str | bytes]
) -> None:
    nodes = [f"s{i}" for i in range(count)]
    keys = keys + [f"k{i}" for i in range(100)]
    with_c = lbkit.JumpHash(nodes)
    saved = _jump._c_jump
    _jump._c_jump = None
    try:
        pure = lbkit.JumpHash(nodes)
    finally:
        _jump._c_jump = saved
    want = [nodes[_jump.py_jump(mmh3.hash64(k, 0, signed=False)[0], count)] for k in keys]
    assert [with_c.lookup(k) for k in keys] == want
    assert pure.lookup_many(keys) == want


def test_jump_hash_uses_the_c_package_when_installed() -> None:
    assert _jump._c_jump is jump.c_hash
    with pytest.raises(lbkit.EmptyRingError, match="add a node"):
        lbkit.JumpHash().lookup("k")


# -- placement pinned ---------------------------------------------------------------------


def _digest(values: object) -> str:
    return hashlib.sha256(repr(list(values)).encode()).hexdigest()[:16]  # type: ignore[call-overload]


#: What each structure answered before the prefix tables and the C jump (the same keys,
#: nodes and membership changes): the fast paths must not move a single key.
_PINNED = {
    "fast": "356ab8118f2c3652",
    "nginx": "848513ad505ec4d5",
    "libketama": "fbce2769355d442e",
    "fast-points": "ed23336e0f7fed60",
    "nginx-points": "e862d470828da3ce",
    "libketama-points": "bd7755f9363a88c0",
    "fast-equal": "0d8243b163a63ada",
    "nginx-equal": "02ebb92e642c62a2",
    "libketama-equal": "15559d55ed6651bc",
    "jump": "fe5222951fa981c2",
    "rendezvous": "342f9f37cdb080f1",
}


def test_placement_is_what_it_always_was() -> None:
    rng = random.Random(7)
    keys = [f"k{rng.getrandbits(48):x}" for _ in range(3000)] + ["", "é", "a" * 40]
    got = {}
    for flavor in lbkit.FLAVORS:
        nodes = [f"10.0.{i // 250}.{i % 250}:80" for i in range(30)]
        ring = lbkit.Ketama(nodes, [1 + i % 3 for i in range(30)], flavor=flavor)
        ring.remove(nodes[3])
        ring.add("x:1", 2)
        ring.remove(nodes[10])
        ring.add(nodes[3], 1)
        got[flavor] = _digest(ring.lookup(k) for k in keys)
        got[f"{flavor}-points"] = _digest(ring.distinct_points()[0])
        equal = lbkit.Ketama(nodes, flavor=flavor)
        equal.remove(nodes[5])
        equal.add("y:2")
        got[f"{flavor}-equal"] = _digest(equal.lookup_many(keys))
    got["jump"] = _digest(lbkit.JumpHash([f"s{i}" for i in range(50)]).lookup_many(keys))
    rendezvous = lbkit.Rendezvous([f"s{i}" for i in range(50)], [1 + i % 4 for i in range(50)])
    got["rendezvous"] = _digest(rendezvous.lookup_many(keys[:1000]))
    assert got == _PINNED


_POINT = {True: st.integers(-(2**31), 2**31 - 1), False: st.integers(0, 2**32 - 1)}


@pytest.mark.parametrize("signed", [True, False])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_record_sort_equals_the_int_sort_and_a_tuple_sort(
    signed: bool, data: st.DataObject
) -> None:
    """Both ways of sorting (point, node rank) agree with a plain sort of tuples, ties and
    the signed extremes included."""
    shared = data.draw(st.lists(_POINT[signed], min_size=1, max_size=4))
    value = _POINT[signed] | st.sampled_from([*shared, *(_POINT_EDGES[signed])])
    points = data.draw(st.lists(st.lists(value, max_size=12), max_size=40))
    code = "<%di" if signed else "<%dI"
    blobs = [struct.pack(code % len(pts), *pts) for pts in points]
    want = sorted((p, rank) for rank, pts in enumerate(points) for p in pts)
    assert _point_sort._RECORDS_READABLE  # every machine the tests run on
    for sort in (_point_sort._sort_records, _point_sort._sort_ints):
        got_points, got_ranks = sort(blobs, signed)
        assert list(got_points) == [p for p, _ in want]
        assert list(got_ranks) == [rank for _, rank in want]


_POINT_EDGES = {True: [-(2**31), -1, 0, 2**31 - 1], False: [0, 2**31 - 1, 2**31, 2**32 - 1]}


def test_sort_points_ranks_past_the_record_limit() -> None:
    """Past 65,536 nodes the plain integer sort takes over, with the same order."""
    count = _point_sort.MAX_RECORD_NODES + 1
    blobs = [struct.pack("<i", (rank * 7919) % 1000 - 500) for rank in range(count)]
    points, ranks = _point_sort.sort_points(blobs, signed=True)
    want = sorted(((rank * 7919) % 1000 - 500, rank) for rank in range(count))
    assert list(points) == [p for p, _ in want]
    assert list(ranks) == [rank for _, rank in want]


def test_rendezvous_keys_are_text_or_bytes() -> None:
    r = lbkit.Rendezvous(["a", "b", "c"], [1, 2, 3])
    assert r.lookup("k") == r.lookup(b"k")
    with pytest.raises(lbkit.KeyTypeError, match="str or bytes"):
        r.lookup(123)  # type: ignore[arg-type]
