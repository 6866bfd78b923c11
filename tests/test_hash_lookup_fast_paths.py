"""The lookups of ``ip_hash`` and ``hash consistent`` equal the plain ones they replace.

- ``ip_hash_step``'s closed form against nginx's byte loop, over any bytes and hash, and
  every retry step;
- ``client_address_bytes`` against ``ipaddress`` over IPv4, IPv6 and mapped text;
- ip_hash's table of the peer of each hash against ``PeerGroup.peer_at``'s bisect;
- the ``hash consistent`` ring's prefix table (:func:`~lbkit.rings._ketama.nginx_ring_table`)
  against a plain ``bisect_left`` over :func:`~lbkit.rings.nginx_ring`'s sorted points, with
  keys that hash exactly onto points, equal points, one server and keys past the last point;
- whole upstreams against the same methods answering through the plain lookups, over
  random configurations, failures and retries (tests/test_fast_paths.py's scenarios).

Deliberately broken variants must make each property fail (the last tests here).
"""

from __future__ import annotations

import bisect
import ipaddress
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers._hash import _ConsistentHashPicker
from lbkit.balancers._round_robin import get_round_robin_peer
from lbkit.hashing import IP_HASH_MODULUS, client_address_bytes, ip_hash_step
from lbkit.rings import nginx_ring, split_address
from lbkit.rings._ketama import _Ring, nginx_ring_table
from lbkit.upstream import (
    MAX_HASH_TRIES,
    PeerGroup,
    PeerState,
    RequestState,
    can_take,
    hash_tries_exhausted,
    take_peer,
)
from tests.helpers import SEARCH_FOR_THE_BUG
from tests.test_fast_paths import Rebound, check_fast_path_equals_scan, op_st, server_st

# -- ip_hash's step ------------------------------------------------------------------------


def loop_step(hash_value: int, addr: bytes) -> int:
    """nginx's ``hash = (hash * 113 + byte) % 6271``, byte by byte: the reference."""
    for byte in addr:
        hash_value = (hash_value * 113 + byte) % 6271
    return hash_value


def reversed_bytes_step(hash_value: int, addr: bytes) -> int:
    """Broken: the closed form with the multipliers in the wrong order."""
    return loop_step(hash_value, addr[::-1])


def one_shift_step(hash_value: int, addr: bytes) -> int:
    """Broken: the hash moved up by 113**3 whatever the address length."""
    return (hash_value * 113**3 + loop_step(0, addr)) % 6271


addr_bytes_st = st.binary(min_size=3, max_size=3) | st.binary(min_size=16, max_size=16)
any_bytes_st = addr_bytes_st | st.binary(max_size=40)
hash_st = st.integers(0, IP_HASH_MODULUS - 1) | st.integers(-(2**40), 2**40)


def check_step_equals_loop(
    step: Callable[[int, bytes], int], hash_value: int, addr: bytes, retries: int
) -> None:
    """The first step from ``hash_value`` and every retry after it equal the loop's."""
    mine, theirs = hash_value, hash_value
    for _ in range(retries + 1):
        mine, theirs = step(mine, addr), loop_step(theirs, addr)
        assert mine == theirs, (hash_value, addr)


@settings(max_examples=1000)
@given(hash_value=hash_st, addr=any_bytes_st, retries=st.integers(0, MAX_HASH_TRIES + 1))
def test_ip_hash_step_equals_nginx_loop(hash_value: int, addr: bytes, retries: int) -> None:
    check_step_equals_loop(ip_hash_step, hash_value, addr, retries)


def test_ip_hash_step_equals_nginx_loop_from_89_for_every_ipv4_prefix_byte() -> None:
    """Every value of each IPv4 byte (the other two fixed), from nginx's start of 89."""
    for i in range(3):
        for value in range(256):
            addr = bytearray(b"\x0a\x63\xfe")
            addr[i] = value
            check_step_equals_loop(ip_hash_step, 89, bytes(addr), MAX_HASH_TRIES)


# -- the client address's bytes ------------------------------------------------------------


def reference_address_bytes(client_addr: str | bytes) -> bytes:
    """What ip_hash hashes, by ``ipaddress``: 3 bytes of IPv4, 16 of IPv6."""
    text = client_addr.decode("ascii") if isinstance(client_addr, bytes) else client_addr
    address = ipaddress.ip_address(text)
    return address.packed[:3] if address.version == 4 else address.packed


ipv4_st = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6_st = st.integers(0, 2**128 - 1).flatmap(
    lambda n: st.sampled_from(
        [ipaddress.IPv6Address(n).compressed, ipaddress.IPv6Address(n).exploded]
    )
)
mapped_st = st.integers(0, 2**32 - 1).flatmap(
    lambda n: st.sampled_from(
        [
            f"::ffff:{ipaddress.IPv4Address(n)}",
            f"::{ipaddress.IPv4Address(n)}",
            f"64:ff9b::{n >> 16:x}:{n & 0xFFFF:x}",
        ]
    )
)
address_text_st = ipv4_st | ipv6_st | mapped_st


@settings(max_examples=600)
@given(text=address_text_st, as_bytes=st.booleans())
def test_client_address_bytes_equal_ipaddress_packed(text: str, as_bytes: bool) -> None:
    client_addr: str | bytes = text.encode("ascii") if as_bytes else text
    assert client_address_bytes(client_addr) == reference_address_bytes(client_addr)


@settings(max_examples=400)
@given(junk=st.text(max_size=20) | st.binary(max_size=20))
def test_client_address_bytes_refuse_what_ipaddress_refuses(junk: str | bytes) -> None:
    try:
        want = reference_address_bytes(junk)
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(lbkit.InvalidAddressError):
            client_address_bytes(junk)
    else:
        assert client_address_bytes(junk) == want


# -- ip_hash's table of the peer of each hash ----------------------------------------------


def _group(weights: Sequence[int]) -> PeerGroup:
    return PeerGroup.from_servers(
        [lbkit.Server(f"10.0.{i // 250}.{i % 250 + 1}:80", weight=w) for i, w in enumerate(weights)]
    )


def one_short_table(group: PeerGroup) -> list[PeerState]:
    """Broken: the table ends one entry short (the modulo then wraps too early)."""
    return group.peers_by_weight(IP_HASH_MODULUS)[:-1] or group.peers


def check_table_equals_peer_at(
    table_of: Callable[[PeerGroup], list[PeerState]], weights: list[int]
) -> None:
    group = _group(weights)
    table = table_of(group)
    for h in range(IP_HASH_MODULUS):
        assert table[h % len(table)] is group.peer_at(h % group.total_weight), h


weights_st = st.lists(
    st.integers(1, 4) | st.integers(1, 3000) | st.just(IP_HASH_MODULUS), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(weights=weights_st)
def test_ip_hash_table_equals_peer_at(weights: list[int]) -> None:
    check_table_equals_peer_at(lambda g: g.peers_by_weight(IP_HASH_MODULUS), weights)


# -- the hash consistent ring --------------------------------------------------------------


def plain_ring(servers: list[tuple[str, int]]) -> tuple[list[int], list[str]]:
    """nginx's ring as sorted lists, the owners with a copy of the first at the end."""
    points, owners = nginx_ring(servers)
    return points, [*owners, owners[0]]


def keys_on_points(servers: list[tuple[str, int]]) -> list[bytes]:
    """Keys whose crc32 is exactly a ring point: nginx makes point ``j`` of a server as
    ``crc32(HOST "\\0" PORT prev)``, which is the crc32 of those bytes in one string."""
    keys = []
    for address, weight in servers:
        host, port = split_address(address)
        base = host.encode() + b"\x00" + port.encode()
        prev = 0
        for _ in range(160 * weight):
            key = base + struct.pack("<I", prev)
            keys.append(key)
            prev = zlib.crc32(key)
    return keys


def probes(points: list[int]) -> list[int]:
    """Hashes on, just before and just after every point, and both ends of the space."""
    around = [p + d for p in points for d in (-1, 0, 1)]
    return [h for h in [0, 2**32 - 1, *around] if 0 <= h < 2**32]


def check_table_equals_bisect(
    table_of: Callable[[list[tuple[str, int]], list[str]], _Ring[str]],
    servers: list[tuple[str, int]],
    keys: list[bytes],
) -> None:
    points, owners = plain_ring(servers)
    ring = table_of(servers, [a for a, _ in servers])
    assert list(ring.points) == points
    assert ring.owners == owners
    for h in probes(points):
        assert ring.position(h) == bisect.bisect_left(points, h), h
    for key in keys_on_points(servers) + keys:
        want = owners[bisect.bisect_left(points, zlib.crc32(key))]
        assert ring.lookup(key) == want, key


def right_bisect_table(servers: list[tuple[str, int]], owners: list[str]) -> _Ring[str]:
    """Broken: the first point > crc32(key), not >= (libketama's rule, not nginx's)."""
    ring = nginx_ring_table(servers, owners)
    points = list(ring.points)
    ring.position = lambda h: bisect.bisect_right(points, h)
    ring.lookup = lambda key: ring.owners[bisect.bisect_right(points, zlib.crc32(key))]
    return ring


#: Addresses of which some have the same ring points ("h:80" is "h" port "80", and a unix
#: socket is its path): equal points, of which nginx keeps the first in config order.
_ADDRESS_POOL = ["10.0.0.1:80", "10.0.0.2:80", "h:80", "h", "unix:/run/a.sock", "/run/a.sock"]


ring_servers_st = st.lists(
    st.tuples(
        st.sampled_from(_ADDRESS_POOL) | st.from_regex(r"\A[a-z]{1,6}:[0-9]{1,4}\Z"),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda s: s[0],
)


@settings(max_examples=150, deadline=None)
@given(servers=ring_servers_st, keys=st.lists(st.binary(max_size=12), max_size=30))
def test_consistent_ring_table_equals_a_plain_bisect(
    servers: list[tuple[str, int]], keys: list[bytes]
) -> None:
    check_table_equals_bisect(nginx_ring_table, servers, keys)


def test_consistent_ring_table_keeps_the_first_of_equal_points() -> None:
    servers = [("h", 1), ("h:80", 2), ("unix:h", 1)]  # "h" and "unix:h": the same points
    points, _ = plain_ring(servers)
    assert len(points) == 160 * 3  # the third server's points are all the first's
    ring = nginx_ring_table(servers, [a for a, _ in servers])
    assert set(ring.owners) == {"h", "h:80"}
    check_table_equals_bisect(nginx_ring_table, servers, [])


# -- whole upstreams against the plain lookups ---------------------------------------------


@attrs.frozen
class _PlainIpHashPicker:
    """ip_hash through nginx's byte loop and ``peer_at``'s bisect, without a first probe."""

    def begin(self, request: RequestState) -> None:
        request.hash = 89

    def get(self, request: RequestState, now: int) -> PeerState | None:
        group = request.group
        if request.hash_tries > MAX_HASH_TRIES or group.single:
            return get_round_robin_peer(request, now)
        hash_value = request.hash
        while True:
            hash_value = loop_step(hash_value, request.addr)
            peer = group.peer_at(hash_value % group.total_weight)
            if can_take(request, peer, now):
                break
            if hash_tries_exhausted(request):
                return get_round_robin_peer(request, now)
        request.hash = hash_value
        return take_peer(request, peer, now)


def plain_consistent(group: PeerGroup) -> _ConsistentHashPicker:
    """hash consistent whose lookups are a plain bisect over nginx_ring's sorted lists."""
    points, names = nginx_ring((p.name, p.weight) for p in group.peers)
    by_name = {p.name: p for p in group.peers}
    owners = [by_name[n] for n in names] + [by_name[names[0]]]

    def lookup(key: bytes) -> PeerState:
        return owners[bisect.bisect_left(points, zlib.crc32(key))]

    def position(h: int) -> int:
        return bisect.bisect_left(points, h)

    return _ConsistentHashPicker(owners, lookup, position, group.single)


PLAIN: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "ip_hash": (lbkit.IpHash, lambda: Rebound(lbkit.IpHash(), lambda _: _PlainIpHashPicker())),
    "hash consistent": (
        lambda: lbkit.Hash(consistent=True),
        lambda: Rebound(lbkit.Hash(consistent=True), plain_consistent),
    ),
}

#: Heavy weights too for ip_hash, whose table is cut at 6,271 entries.
_heavy_server_st = server_st | st.builds(
    dict,
    weight=st.integers(1000, 7000),
    max_fails=st.integers(0, 2),
    fail_timeout=st.integers(0, 5),
).map(lambda c: {**c, "max_conns": 0, "backup": False, "down": False, "slow_start": 0})

upstream_scenario = {
    "configs": st.lists(server_st, min_size=1, max_size=6),
    "ops": st.lists(op_st, max_size=60),
    "warm": st.integers(0, 20),
}


@pytest.mark.parametrize("name", list(PLAIN))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**upstream_scenario)
def test_upstream_picks_equal_those_through_the_plain_lookups(
    name: str, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    fast, plain = PLAIN[name]
    check_fast_path_equals_scan(fast(), plain(), configs, ops, warm)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    configs=st.lists(_heavy_server_st, min_size=1, max_size=4),
    ops=st.lists(op_st, max_size=40),
    warm=st.integers(0, 10),
)
def test_ip_hash_with_heavy_weights_equals_the_plain_lookups(
    configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    fast, plain = PLAIN["ip_hash"]
    check_fast_path_equals_scan(fast(), plain(), configs, ops, warm)


# -- the properties catch wrong lookups ----------------------------------------------------


@pytest.mark.parametrize("step", [reversed_bytes_step, one_shift_step])
def test_step_property_fails_for_a_wrong_closed_form(step: Callable[[int, bytes], int]) -> None:
    @SEARCH_FOR_THE_BUG
    @given(hash_value=hash_st, addr=any_bytes_st, retries=st.integers(0, MAX_HASH_TRIES + 1))
    def prop(hash_value: int, addr: bytes, retries: int) -> None:
        check_step_equals_loop(step, hash_value, addr, retries)

    with pytest.raises(AssertionError):
        prop()


def test_table_property_fails_for_a_table_cut_short() -> None:
    @SEARCH_FOR_THE_BUG
    @given(weights=weights_st)
    def prop(weights: list[int]) -> None:
        check_table_equals_peer_at(one_short_table, weights)

    with pytest.raises(AssertionError):
        prop()


def test_ring_property_fails_for_the_first_point_above_the_key() -> None:
    @SEARCH_FOR_THE_BUG
    @given(servers=ring_servers_st, keys=st.lists(st.binary(max_size=12), max_size=5))
    def prop(servers: list[tuple[str, int]], keys: list[bytes]) -> None:
        check_table_equals_bisect(right_bisect_table, servers, keys)

    with pytest.raises(AssertionError):
        prop()
