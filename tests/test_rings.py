"""Ketama (three flavours), Maglev, bounded loads, rendezvous, jump hash, reshard plans."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.nginx import parse_upstream

node_names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.:-", min_size=1, max_size=16),
    min_size=2,
    max_size=12,
    unique=True,
)
keys_st = st.lists(st.text(max_size=24), min_size=20, max_size=200)


def _keys(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"key-{rng.getrandbits(64):x}" for _ in range(n)]


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
@settings(max_examples=30, deadline=None)
@given(nodes=node_names, keys=keys_st, data=st.data())
def test_removing_a_node_moves_only_its_keys(
    flavor: lbkit.Flavor, nodes: list[str], keys: list[str], data: st.DataObject
) -> None:
    ring = lbkit.Ketama(nodes, flavor=flavor)
    before = ring.lookup_many(keys)
    gone = data.draw(st.sampled_from(nodes))
    ring.remove(gone)
    after = ring.lookup_many(keys)
    for old, new in zip(before, after, strict=True):
        if old != gone:
            assert new == old
        else:
            assert new != gone
    ring.add(gone)
    assert ring.lookup_many(keys) == before


@settings(max_examples=30, deadline=None)
@given(nodes=node_names, keys=keys_st)
def test_adding_a_node_moves_keys_only_to_it(nodes: list[str], keys: list[str]) -> None:
    ring = lbkit.Ketama(nodes[1:])
    before = ring.lookup_many(keys)
    ring.add(nodes[0], weight=2)
    for old, new in zip(before, ring.lookup_many(keys), strict=True):
        assert new in (old, nodes[0])


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
@given(key=st.text(max_size=50))
def test_str_and_utf8_bytes_agree(flavor: lbkit.Flavor, key: str) -> None:
    ring = lbkit.Ketama(["a:1", "b:2", "c:3"], flavor=flavor)
    assert ring.lookup(key) == ring.lookup(key.encode())
    assert ring.lookup_many([key, key.encode()]) == [ring.lookup(key)] * 2


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
def test_lookup_many_equals_lookup(flavor: lbkit.Flavor) -> None:
    ring = lbkit.Ketama([f"n{i}" for i in range(37)], [1 + i % 4 for i in range(37)], flavor)
    keys = _keys(20000)
    assert ring.lookup_many(keys) == [ring.lookup(k) for k in keys]
    assert ring.lookup_many(iter(keys[:10])) == [ring.lookup(k) for k in keys[:10]]


@pytest.mark.parametrize(("flavor", "tolerance"), [("fast", 0.25), ("nginx", 0.3)])
def test_shares_follow_weights(flavor: lbkit.Flavor, tolerance: float) -> None:
    nodes = [f"10.0.0.{i}:80" for i in range(1, 11)]
    weights = [1 + i % 3 for i in range(10)]
    ring = lbkit.Ketama(nodes, weights, flavor=flavor)
    counts = Counter(ring.lookup_many(_keys(100_000)))
    total = sum(weights)
    for node, w in zip(nodes, weights, strict=True):
        expected = 100_000 * w / total
        assert abs(counts[node] - expected) < tolerance * expected


def test_nginx_flavour_is_nginx_hash_consistent() -> None:
    servers = [f"10.0.0.{i}:8080" for i in range(1, 9)] + ["backend.example", "unix:/run/x"]
    weights = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1]
    body = " ".join(f"server {s} weight={w};" for s, w in zip(servers, weights, strict=True))
    up = parse_upstream(f"upstream u {{ hash $k consistent; {body} }}")
    ring = lbkit.Ketama(servers, weights, flavor="nginx")
    for key in _keys(3000):
        peer = up.pick(key=key)
        up.done(peer)
        assert ring.lookup(key) == peer.name


def test_libketama_flavour_matches_uhashring() -> None:
    import uhashring  # the peer to compare with (test extra)

    nodes = [f"cache{i}.example:11211" for i in range(12)]
    for weights in (None, [1 + i % 3 for i in range(12)]):
        conf = {n: {"weight": weights[i] if weights else 1} for i, n in enumerate(nodes)}
        theirs = uhashring.HashRing(nodes=conf, hash_fn="ketama")
        ours = lbkit.Ketama(nodes, weights, flavor="libketama")
        assert ours.points == len(theirs.get_points())
        keys = _keys(20000, seed=3)
        assert ours.lookup_many(keys) == [theirs.get_node(k) for k in keys]


def test_ring_errors() -> None:
    with pytest.raises(lbkit.EmptyRingError):
        lbkit.Ketama([]).lookup("k")
    with pytest.raises(lbkit.EmptyRingError):
        lbkit.Ketama([]).lookup_many(["k"])
    ring = lbkit.Ketama(["a"])
    with pytest.raises(lbkit.ConfigError, match="already"):
        ring.add("a")
    with pytest.raises(lbkit.ConfigError, match="weight"):
        ring.add("b", weight=0)
    with pytest.raises(KeyError, match="not on the ring"):
        ring.remove("zz")
    with pytest.raises(lbkit.ConfigError, match="flavor"):
        lbkit.Ketama(["a"], flavor="md4")  # type: ignore[arg-type]
    with pytest.raises(lbkit.ConfigError, match="2 weights for 1 nodes"):
        lbkit.Ketama(["a"], [1, 2])
    assert ring.lookup("x") == "a"


def test_flavour_aliases() -> None:
    assert lbkit.Ketama(["a"], flavor="mmh3").flavor == "fast"  # type: ignore[arg-type]
    assert lbkit.Ketama(["a:1"], flavor="crc32").flavor == "nginx"  # type: ignore[arg-type]
    assert lbkit.Ketama(["a"], flavor="md5").flavor == "libketama"  # type: ignore[arg-type]


def test_replicas_walk_distinct_nodes() -> None:
    ring = lbkit.Ketama(["a", "b", "c", "d"])
    reps = ring.lookup_distinct("session-1", 3)
    assert len(set(reps)) == 3
    assert reps[0] == ring.lookup("session-1")


def test_maglev_balance_100_nodes() -> None:
    nodes = [f"node-{i}" for i in range(100)]
    table = lbkit.Maglev(nodes)
    counts = table.slot_counts()
    mean = table.table_size / 100
    assert max(counts.values()) / mean <= 1.01
    keys = Counter(table.lookup_many(_keys(200_000)))
    assert max(keys.values()) / 2000 < 1.1


def test_maglev_weights_and_disruption() -> None:
    table = lbkit.Maglev(["a", "b", "c"], [1, 2, 3], table_size=10007)
    counts = table.slot_counts()
    assert counts["c"] == pytest.approx(3 * counts["a"], rel=0.01)
    nodes = [f"n{i}" for i in range(50)]
    keys = _keys(50_000)
    before = lbkit.Maglev(nodes).lookup_many(keys)
    after = lbkit.Maglev(nodes[:-1]).lookup_many(keys)
    moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(keys)
    assert moved < 2.5 / 50  # ideal 1/50, Maglev moves a little more
    with pytest.raises(lbkit.ConfigError, match="prime"):
        lbkit.Maglev(["a"], table_size=1000)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.floats(1.05, 2.0))
def test_bounded_load_never_exceeds_cap(seed: int, c: float) -> None:
    rng = random.Random(seed)
    b = lbkit.BoundedLoad([f"n{i}" for i in range(8)], [1, 1, 2, 1, 1, 3, 1, 1], c=c)
    held: list[str] = []
    weights = b.ring.weights
    total_w = sum(weights.values())
    for _ in range(2000):
        node = b.acquire(f"hot-{int(rng.paretovariate(1.1))}")
        assert b.loads[node] <= math.ceil(c * b.total * weights[node] / total_w)
        held.append(node)
        if len(held) > 40:
            b.release(held.pop(rng.randrange(len(held))))
    for node in held:
        b.release(node)
    assert b.total == 0


def test_bounded_load_100k_skewed_requests_c125() -> None:
    rng = random.Random(42)
    b = lbkit.BoundedLoad([f"n{i}" for i in range(20)], c=1.25)
    held: list[str] = []
    worst = 0.0
    for _ in range(100_000):
        node = b.acquire(f"user-{int(rng.paretovariate(1.0))}")
        held.append(node)
        cap = math.ceil(1.25 * b.total / 20)
        worst = max(worst, max(b.loads.values()) / cap)
        if len(held) >= 200:
            b.release(held.pop(rng.randrange(len(held))))
    assert worst <= 1.0
    with pytest.raises(lbkit.UsageError):
        lbkit.BoundedLoad(["a"]).release("a")


@settings(max_examples=25, deadline=None)
@given(nodes=node_names, keys=keys_st, data=st.data())
def test_rendezvous_minimal_disruption(
    nodes: list[str], keys: list[str], data: st.DataObject
) -> None:
    r = lbkit.Rendezvous(nodes)
    before = r.lookup_many(keys)
    gone = data.draw(st.sampled_from(nodes))
    r.remove(gone)
    for old, new in zip(before, r.lookup_many(keys), strict=True):
        if old != gone:
            assert new == old


def test_rendezvous_weights() -> None:
    counts = Counter(lbkit.Rendezvous(["a", "b", "c"], [1, 2, 3]).lookup_many(_keys(60_000)))
    assert counts["a"] == pytest.approx(10_000, rel=0.05)
    assert counts["c"] == pytest.approx(30_000, rel=0.05)


def test_jump_hash_matches_the_paper_and_peer() -> None:
    import jump  # jump-consistent-hash, the peer to compare with (test extra)

    rng = random.Random(5)
    for _ in range(2000):
        key, n = rng.getrandbits(64), rng.randrange(1, 1000)
        assert lbkit.jump_hash(key, n) == jump.hash(key, n)
    j = lbkit.JumpHash([f"s{i}" for i in range(10)])
    keys = _keys(20000)
    before = j.lookup_many(keys)
    j.add("s10")
    after = j.lookup_many(keys)
    assert all(b in (a, "s10") for a, b in zip(before, after, strict=True))


def test_reshard_plan() -> None:
    keys = _keys(10000)
    plan = lbkit.plan_reshard(["a", "b", "c", "d"], ["a", "b", "c"], keys)
    assert {m.source for m in plan.moves} == {"d"}
    assert 0.15 < plan.moved_fraction < 0.35
    assert sum(plan.by_route().values()) == len(plan.moves)


def test_power_of_two_and_least_time() -> None:
    clock = [0.0]
    p2c = lbkit.PowerOfTwo(["a", "b", "c"], seed=1, clock=lambda: clock[0])
    held = [p2c.pick() for _ in range(30)]
    assert max(p2c.inflight.values()) - min(p2c.inflight.values()) <= 2
    for node in held:
        p2c.done(node, elapsed=0.01)
    assert sum(p2c.inflight.values()) == 0

    lt = lbkit.LeastTime(["fast", "slow"], clock=lambda: clock[0])
    for _ in range(5):
        for node in ("fast", "slow"):
            lt.inflight[node] += 1
            lt.done(node, elapsed=0.01 if node == "fast" else 0.2)
        clock[0] += 1
    picks = Counter()
    for _ in range(20):
        node = lt.pick()
        picks[node] += 1
        lt.done(node, elapsed=0.01 if node == "fast" else 0.2)
    assert picks["fast"] > picks["slow"]


def test_peak_ewma_jumps_up_and_decays() -> None:
    e = lbkit.PeakEwma(decay=1.0)
    e.observe(0.1, 0.0)
    e.observe(1.0, 0.1)
    assert e.get(0.1) == 1.0
    e.observe(0.1, 5.0)
    assert e.get(5.0) < 0.2
    with pytest.raises(lbkit.RequestError):
        e.observe(-1, 6.0)


def _ring_factories() -> list[tuple[str, object]]:
    base = [f"10.0.0.{i}:80" for i in range(1, 9)]
    return [
        ("ketama fast", lambda: lbkit.Ketama(base)),
        ("ketama nginx", lambda: lbkit.Ketama(base, flavor="nginx")),
        ("ketama libketama", lambda: lbkit.Ketama(base, [1 + i % 3 for i in range(8)], "md5")),
        ("maglev", lambda: lbkit.Maglev(base, table_size=1009)),
        ("rendezvous", lambda: lbkit.Rendezvous(base)),
        ("jump", lambda: lbkit.JumpHash(base)),
    ]


@pytest.mark.parametrize(("label", "factory"), _ring_factories(), ids=lambda v: str(v)[:20])
def test_lookups_during_membership_changes_see_a_whole_ring(label: str, factory: object) -> None:
    """1 thread adds and removes nodes while 15 look up: no error, and every answer is a
    node that was on the ring at some moment of the lookup call."""
    import itertools
    import threading

    ring = factory()  # type: ignore[operator]
    base = set(ring.nodes)
    churn = [f"10.9.0.{i}:80" for i in range(1, 5)]
    clock = itertools.count()
    intervals: dict[str, list[list[float]]] = {n: [] for n in churn}
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[tuple[str, int, int]]] = []

    def mutate() -> None:
        try:
            while not stop.is_set():
                for node in churn:
                    span = [next(clock), math.inf]
                    intervals[node].append(span)
                    ring.add(node)
                for node in churn:
                    ring.remove(node)
                    intervals[node][-1][1] = next(clock)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[tuple[str, int, int]] = []
        seen.append(mine)
        try:
            for _ in range(1500):
                before = next(clock)
                node = ring.lookup(f"k{rng.getrandbits(32)}")
                mine.append((node, before, next(clock)))
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=mutate)
    readers = [threading.Thread(target=read, args=(i,)) for i in range(15)]
    writer.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer.join()
    assert not errors, errors[:3]
    for node, before, after in itertools.chain.from_iterable(seen):
        if node in base:
            continue
        assert any(start <= after and end >= before for start, end in intervals[node]), node
    assert set(ring.nodes) == base


def test_unknown_node_errors_are_key_errors() -> None:
    for structure in (lbkit.Ketama(["a"]), lbkit.Maglev(["a"]), lbkit.Rendezvous(["a"])):
        with pytest.raises(lbkit.UnknownNodeError, match="zz"):
            structure.remove("zz")
    with pytest.raises(KeyError):
        lbkit.JumpHash(["a"]).remove("zz")
    with pytest.raises(lbkit.UnknownNodeError):
        lbkit.BoundedLoad(["a"]).release("zz")
    with pytest.raises(lbkit.UnknownNodeError):
        lbkit.PowerOfTwo(["a", "b"]).cost("zz")


def test_ring_size_is_bounded() -> None:
    with pytest.raises(lbkit.ConfigError, match="max_points=1,048,576"):
        lbkit.Ketama(["a", "b"], [100_000, 1], flavor="nginx")
    with pytest.raises(lbkit.ConfigError, match="max_points=100"):
        lbkit.Ketama(["a"], max_points=100)
    ring = lbkit.Ketama(["a"], max_points=320)
    with pytest.raises(lbkit.ConfigError, match="max_points"):
        ring.add("b", weight=2)
    assert ring.nodes == ["a"]
    with pytest.raises(lbkit.ConfigError, match="weight"):
        lbkit.Ketama(["a"], [2**63])
    with pytest.raises(lbkit.ConfigError, match="table_size"):
        lbkit.Maglev(["a"], table_size=2**61 - 1)


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (lbkit.Ketama, "on the ring"),
        (lbkit.Maglev, "in the table"),
        (lbkit.Rendezvous, "present"),
        (lbkit.JumpHash, "present"),
    ],
)
def test_membership_errors_say_which_node_and_which_are_known(make: Any, where: str) -> None:
    structure = make([f"n{i}" for i in range(12)])
    with pytest.raises(lbkit.ConfigError, match=f"^node 'n3' is already {where}$"):
        structure.add("n3")
    known = ", ".join(repr(f"n{i}") for i in range(10))  # the first ten, not all twelve
    with pytest.raises(lbkit.UnknownNodeError, match=re.escape(f"(nodes: {known})")):
        structure.remove("zz")
    assert structure.nodes == [f"n{i}" for i in range(12)]
