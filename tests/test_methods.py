"""Properties of least_conn, ip_hash, hash, hash consistent and random."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.hashing import client_address_bytes
from lbkit.nginx import parse_upstream
from lbkit.rings import POINTS_PER_WEIGHT, nginx_ring

from .helpers import sequence, servers

weights_st = st.lists(st.integers(1, 8), min_size=2, max_size=10)
keys_st = st.one_of(st.text(max_size=40), st.binary(max_size=40))


@given(weights_st)
def test_least_conn_without_load_is_round_robin(weights: list[int]) -> None:
    rr = lbkit.Upstream(servers(*weights))
    lc = lbkit.Upstream(servers(*weights), lbkit.LeastConn())
    n = 3 * sum(weights)
    assert sequence(lc, n) == sequence(rr, n)


def test_least_conn_prefers_fewest_conns_per_weight() -> None:
    up = parse_upstream("upstream u { least_conn; server a:1 weight=2; server b:1; }")
    held = [up.pick() for _ in range(6)]
    counts = Counter(p.name for p in held)
    # a (weight 2) carries twice b's load at every step
    assert counts == {"a:1": 4, "b:1": 2}
    for p in held:
        up.done(p)
    assert all(p.conns == 0 for p in up.peers)


@given(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 255))
def test_ip_hash_ignores_last_ipv4_octet(base: int, x: int, y: int) -> None:
    up = lbkit.Upstream(servers(1, 2, 3, 1), lbkit.IpHash())
    net = int(ipaddress.IPv4Address(base)) & 0xFFFFFF00
    a = str(ipaddress.IPv4Address(net | x))
    b = str(ipaddress.IPv4Address(net | y))
    first = up.pick(client_addr=a)
    up.done(first)
    second = up.pick(client_addr=b)
    assert first.name == second.name


def test_ip_hash_uses_all_ipv6_bytes() -> None:
    assert len(client_address_bytes("2001:db8::1")) == 16
    assert client_address_bytes("192.0.2.77") == bytes([192, 0, 2])
    up = lbkit.Upstream(servers(1, 1, 1, 1, 1), lbkit.IpHash())
    names = {sequence(up, 1, client_addr=f"2001:db8::{i:x}")[0] for i in range(64)}
    assert len(names) > 1


@pytest.mark.parametrize(
    "bad", ["", "10.0.0", "example.com", "1.2.3.4:80", "::g", "x" * 500, b"\xff"]
)
def test_ip_hash_rejects_non_ip(bad: str | bytes) -> None:
    up = lbkit.Upstream(servers(1, 1), lbkit.IpHash())
    with pytest.raises(lbkit.InvalidAddressError, match="client address"):
        up.pick(client_addr=bad)
    assert all(p.conns == 0 and p.current_weight == 0 for p in up.peers)


@given(keys_st)
def test_hash_str_and_utf8_bytes_agree(key: str | bytes) -> None:
    for consistent in (False, True):
        up = lbkit.Upstream(servers(1, 2, 3), lbkit.Hash("$k", consistent))
        as_bytes = key.encode() if isinstance(key, str) else key
        if not as_bytes:
            continue
        a = up.pick(key=key)
        up.done(a)
        b = up.pick(key=as_bytes)
        up.done(b)
        assert a.name == b.name


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=50, max_size=200), st.integers(0, 4))
def test_consistent_hash_moves_only_keys_of_the_removed_server(keys: list[str], gone: int) -> None:
    full = [lbkit.Server(f"10.1.0.{i}:8080", weight=1 + i % 2) for i in range(5)]
    before = lbkit.Upstream(full, lbkit.Hash("$k", consistent=True))
    after = lbkit.Upstream(
        [s for i, s in enumerate(full) if i != gone], lbkit.Hash("$k", consistent=True)
    )
    removed = full[gone].address
    for key in keys:
        old = before.pick(key=key)
        before.done(old)
        new = after.pick(key=key)
        after.done(new)
        if old.name != removed:
            assert new.name == old.name


def test_consistent_points_count_and_order() -> None:
    up = lbkit.Upstream(servers(1, 3), lbkit.Hash("$k", True))
    hashes, owners = nginx_ring((p.name, p.weight) for p in up.peers)
    assert len(hashes) <= 4 * POINTS_PER_WEIGHT
    assert hashes == sorted(set(hashes))
    share = Counter(owners)
    assert share["10.0.0.2:80"] > 2 * share["10.0.0.1:80"]


def test_consistent_hash_depends_on_address_text() -> None:
    a = nginx_ring([("h:80", 1)])
    b = nginx_ring([("h", 1)])
    assert a != b


@given(st.text(min_size=1, max_size=30))
def test_hash_is_stable_across_instances(key: str) -> None:
    ups = [lbkit.Upstream(servers(2, 1, 1), lbkit.Hash("$k")) for _ in range(2)]
    assert len({sequence(u, 1, key=key)[0] for u in ups}) == 1


def test_empty_hash_key_falls_back_to_round_robin() -> None:
    up = lbkit.Upstream(servers(5, 1, 1), lbkit.Hash("$k"))
    rr = lbkit.Upstream(servers(5, 1, 1))
    assert sequence(up, 14, key="") == sequence(rr, 14)


def test_hash_needs_key_and_ip_hash_needs_address() -> None:
    with pytest.raises(lbkit.RequestError, match="needs key="):
        lbkit.Upstream(servers(1, 1), lbkit.Hash("$k")).pick()
    with pytest.raises(lbkit.RequestError, match="needs client_addr="):
        lbkit.Upstream(servers(1, 1), lbkit.IpHash()).pick()


def test_random_shares_follow_weights_and_seed_reproduces() -> None:
    a = lbkit.Upstream(servers(1, 3), lbkit.Random(seed=3))
    b = lbkit.Upstream(servers(1, 3), lbkit.Random(seed=3))
    seq = sequence(a, 4000)
    assert seq == sequence(b, 4000)
    share = Counter(seq)["10.0.0.2:80"] / 4000
    assert 0.72 < share < 0.78


def test_random_two_picks_less_loaded_of_two() -> None:
    up = lbkit.Upstream(servers(1, 1), lbkit.Random(two=True, least_conn=True, seed=1))
    held = up.pick()
    # with two peers, both are always drawn: the idle one wins every time
    other = {p.name for p in up.peers} - {held.name}
    assert set(sequence(up, 50)) == other


def test_random_never_picks_down() -> None:
    up = parse_upstream("upstream u { random; server a:1; server b:1 down; server c:1; }")
    assert "b:1" not in sequence(up, 500)


@pytest.mark.parametrize(
    "method",
    [lbkit.RoundRobin(), lbkit.LeastConn(), lbkit.Random(seed=0), lbkit.Hash("$k", True)],
)
def test_all_down_is_no_live_upstreams(method: lbkit.Method) -> None:
    up = lbkit.Upstream([lbkit.Server("a:1", down=True), lbkit.Server("b:1", down=True)], method)
    with pytest.raises(lbkit.NoLiveUpstreams, match="no live upstreams"):
        up.pick(key="k")
