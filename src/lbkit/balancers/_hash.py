"""nginx's generic ``hash KEY`` and ``hash KEY consistent`` (ketama-like crc32 ring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import attrs

from lbkit.balancers._round_robin import get_round_robin_peer
from lbkit.errors import ConfigError
from lbkit.hashing import crc32, memcached_crc15
from lbkit.rings import MAX_RING_POINTS
from lbkit.rings._ketama import nginx_ring_table
from lbkit.upstream import (
    MAX_HASH_TRIES,
    PeerGroup,
    PeerState,
    RequestState,
    can_take,
    hash_tries_exhausted,
    take_first,
    take_peer,
)

__all__ = ["Hash"]


@attrs.frozen(slots=True)
class _HashPicker:
    """Runtime side of ``hash KEY`` (not consistent): Cache::Memcached-compatible rehashing."""

    group: PeerGroup

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """The first probe of :meth:`get` for a plain pick when its peer can take it;
        None otherwise (the full path then runs from the start: nothing was changed)."""
        group = self.group
        if group.single or not key:
            return None
        peer = group.peer_at(memcached_crc15(key) % group.total_weight)
        if peer.blocked_until >= now:  # not available (see PeerState.refresh)
            return None
        return take_first(peer, now)

    def begin(self, request: RequestState) -> None:
        """Each request starts at hash 0, rehash 0."""
        request.hash = 0
        request.rehash = 0

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_hash_peer``."""
        group = request.group
        if request.hash_tries > MAX_HASH_TRIES or group.single or not request.key:
            return get_round_robin_peer(request, now)
        key = request.key
        while True:
            # ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH, REHASH omitted the first time
            prefix = str(request.rehash).encode("ascii") if request.rehash > 0 else b""
            request.hash = (request.hash + memcached_crc15(prefix + key)) & 0xFFFFFFFF
            request.rehash += 1
            peer = group.peer_at(request.hash % group.total_weight)
            if can_take(request, peer, now):
                break
            if hash_tries_exhausted(request):
                return get_round_robin_peer(request, now)
        return take_peer(request, peer, now)


@attrs.frozen(slots=True)
class _ConsistentHashPicker:
    """Runtime side of ``hash KEY consistent``: the ring is built once per membership."""

    #: The peer owning each point, and once more the first point's (a key past the last
    #: point wraps to the first).
    owners: list[PeerState]
    #: The owner of a key's point: ``owners[bisect_left(points, crc32(key))]`` through the
    #: ring's prefix table (see :func:`~lbkit.rings.nginx_ring_table`).
    lookup: Callable[[bytes], PeerState]
    #: The index of a crc32's point, ``bisect_left(points, crc32)`` (may be the ring size).
    position: Callable[[int], int]
    #: The group has one peer: nginx then uses round robin's single-peer shortcut.
    single: bool

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """The first probe of :meth:`get` for a plain pick when its peer can take it;
        None otherwise (the full path then runs from the start: nothing was changed)."""
        if self.single or not key:
            return None
        lookup = self.lookup
        peer = lookup(key)
        if peer.blocked_until >= now:  # not available (see PeerState.refresh)
            return None
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        return take_first(peer, now)

    def begin(self, request: RequestState) -> None:
        """Find the first ring point >= crc32(key) (may equal the ring size: it wraps)."""
        position = self.position
        request.hash = position(crc32(request.key))
        request.hash_tries = 0

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_chash_peer``.

        nginx scans every peer for those named like the ring point (a name that resolved to
        several addresses is several peers) and runs smooth WRR among them. lbkit has one
        peer per name, for which that step nets to "effective weight recovers by one", so
        the peer is found by name in O(1).
        """
        group = request.group
        if request.hash_tries > MAX_HASH_TRIES or group.single or not request.key:
            return get_round_robin_peer(request, now)
        owners = self.owners
        number = len(owners) - 1
        while True:
            peer = owners[request.hash % number]
            if can_take(request, peer, now):
                break
            request.hash = (request.hash + 1) & 0xFFFFFFFF
            if hash_tries_exhausted(request):
                return get_round_robin_peer(request, now)
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        return take_peer(request, peer, now)


def _check_key(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"hash key must be str, not {type(value).__name__}")


def _check_max_points(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"invalid max_points={value!r}: expected an integer >= 1")


@attrs.frozen(slots=True)
class Hash:
    """nginx's ``hash KEY [consistent]``; ``key`` records the nginx expression (e.g. ``$uri``).

    lbkit does not evaluate nginx variables: ``pick(key=...)`` takes the evaluated value.
    An empty key falls back to round robin, as in nginx. The consistent ring holds 160
    points per unit of weight; one of more than ``max_points`` points is refused.
    """

    key: str = attrs.field(default="$request_uri", validator=_check_key)
    consistent: bool = False
    max_points: int = attrs.field(default=MAX_RING_POINTS, validator=_check_max_points)

    kind: ClassVar[Literal["hash"]] = "hash"
    supports_backup = False
    needs_key = True
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> _HashPicker | _ConsistentHashPicker:
        """Build the ring for the consistent flavour."""
        if not self.consistent:
            return _HashPicker(primary)
        peers = primary.peers
        ring = nginx_ring_table(
            [(p.name, p.weight) for p in peers], peers, max_points=self.max_points
        )
        return _ConsistentHashPicker(ring.owners, ring.lookup, ring.position, primary.single)
