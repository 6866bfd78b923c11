"""nginx's generic ``hash KEY`` and ``hash KEY consistent`` (ketama-like crc32 ring)."""

from __future__ import annotations

import bisect
import struct

import attrs

from lbkit.balancers.ip_hash import weighted_index
from lbkit.balancers.round_robin import get_round_robin_peer
from lbkit.errors import ConfigError
from lbkit.hashing import crc32
from lbkit.peer import PeerGroup, PeerState, RequestState
from lbkit.server import split_address

__all__ = [
    "POINTS_PER_WEIGHT",
    "ConsistentHashPicker",
    "Hash",
    "HashPicker",
    "consistent_points",
]

#: Points each unit of weight puts on nginx's consistent-hash ring.
POINTS_PER_WEIGHT = 160

_LE_U32 = struct.Struct("<I")


@attrs.frozen(slots=True)
class HashPicker:
    """Runtime side of ``hash KEY`` (not consistent): Cache::Memcached-compatible rehashing."""

    def begin(self, request: RequestState) -> None:
        """Each request starts at hash 0, rehash 0."""
        request.hash = 0
        request.rehash = 0

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_hash_peer``."""
        group = request.group
        if request.hash_tries > 20 or group.single or not request.key:
            return get_round_robin_peer(request, now)
        key = request.key
        while True:
            # ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH, REHASH omitted the first time
            prefix = str(request.rehash).encode("ascii") if request.rehash > 0 else b""
            step = (crc32(prefix + key) >> 16) & 0x7FFF
            request.hash = (request.hash + step) & 0xFFFFFFFF
            request.rehash += 1
            peer = weighted_index(group, request.hash % group.total_weight)
            if not (request.tried >> peer.index & 1) and peer.is_available(now):
                break
            request.hash_tries += 1
            if request.hash_tries > 20:
                return get_round_robin_peer(request, now)
        peer.conns += 1
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        request.tried |= 1 << peer.index
        return peer


def consistent_points(peers: list[PeerState]) -> tuple[list[int], list[str]]:
    """nginx's ring: ``weight * 160`` crc32 points per server, sorted, duplicates dropped.

    Point ``j`` of a server is ``crc32(HOST "\\0" PORT prev)`` where ``prev`` is the previous
    point as 4 little-endian bytes (0 for the first), HOST and PORT split from the address as
    written. Returns the sorted hashes and the address text owning each.
    """
    points: list[tuple[int, int, str]] = []
    order = 0
    for peer in peers:
        host, port = split_address(peer.server.address)
        base = crc32(host.encode() + b"\x00" + (port or "").encode())
        prev = 0
        for _ in range(peer.weight * POINTS_PER_WEIGHT):
            prev = crc32(_LE_U32.pack(prev), base)
            # nginx sorts with glibc's qsort, a stable merge sort: of equal hashes the first
            # in configuration order survives the dedupe below. ``order`` keeps that.
            points.append((prev, order, peer.server.address))
            order += 1
    points.sort()
    hashes: list[int] = []
    owners: list[str] = []
    for value, _, owner in points:
        if hashes and hashes[-1] == value:
            continue
        hashes.append(value)
        owners.append(owner)
    return hashes, owners


@attrs.frozen(slots=True)
class ConsistentHashPicker:
    """Runtime side of ``hash KEY consistent``: the ring is built once per upstream."""

    hashes: list[int]
    owners: list[str]
    peers: dict[str, PeerState]

    def begin(self, request: RequestState) -> None:
        """Find the first ring point >= crc32(key) (may equal the ring size: it wraps)."""
        request.hash = bisect.bisect_left(self.hashes, crc32(request.key))
        request.hash_tries = 0

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_chash_peer``.

        nginx scans every peer for those named like the ring point (a name that resolved to
        several addresses is several peers) and runs smooth WRR among them. lbkit has one
        peer per name, for which that step nets to "effective weight recovers by one", so
        the peer is found by name in O(1).
        """
        group = request.group
        if request.hash_tries > 20 or group.single or not request.key:
            return get_round_robin_peer(request, now)
        number = len(self.hashes)
        by_name = self.peers
        while True:
            peer = by_name[self.owners[request.hash % number]]
            if not (request.tried >> peer.index & 1) and peer.is_available(now):
                break
            request.hash = (request.hash + 1) & 0xFFFFFFFF
            request.hash_tries += 1
            if request.hash_tries > 20:
                return get_round_robin_peer(request, now)
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        peer.conns += 1
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        request.tried |= 1 << peer.index
        return peer


def _check_key(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"hash key must be str, not {type(value).__name__}")


@attrs.frozen(slots=True)
class Hash:
    """nginx's ``hash KEY [consistent]``; ``key`` records the nginx expression (e.g. ``$uri``).

    lbkit does not evaluate nginx variables: ``pick(key=...)`` takes the evaluated value.
    An empty key falls back to round robin, as in nginx.
    """

    key: str = attrs.field(default="$request_uri", validator=_check_key)
    consistent: bool = False

    supports_backup = False
    needs_key = True
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> HashPicker | ConsistentHashPicker:
        """Build the ring for the consistent flavour."""
        if not self.consistent:
            return HashPicker()
        hashes, owners = consistent_points(primary.peers)
        return ConsistentHashPicker(hashes, owners, {p.name: p for p in primary.peers})

    def to_nginx(self) -> str:
        """The directive text."""
        return f"hash {self.key}{' consistent' if self.consistent else ''};"
