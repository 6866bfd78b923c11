"""nginx's ``ip_hash``: the client's address picks the peer (IPv4: first three octets)."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from lbkit.balancers._round_robin import get_round_robin_peer
from lbkit.hashing import IP_HASH_MODULUS, ip_hash_step
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

__all__ = ["IpHash"]

#: nginx starts every request's hash at 89.
START = 89


@attrs.frozen(slots=True)
class _IpHashPicker:
    """Runtime side of :class:`IpHash`."""

    group: PeerGroup
    #: The peer of every hash: ``peer_at(hash % total_weight)`` is
    #: ``by_hash[hash % len(by_hash)]`` (see :meth:`PeerGroup.peers_by_weight`).
    by_hash: list[PeerState]

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """The first probe of :meth:`get` for a plain pick when its peer can take it;
        None otherwise (the full path then runs from the start: nothing was changed)."""
        if self.group.single:
            return None
        by_hash = self.by_hash
        peer = by_hash[ip_hash_step(START, addr) % len(by_hash)]
        if peer.blocked_until >= now:  # not available (see PeerState.refresh)
            return None
        return take_first(peer, now)

    def begin(self, request: RequestState) -> None:
        """nginx starts every request's hash at 89."""
        request.hash = START

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_ip_hash_peer``."""
        group = request.group
        if request.hash_tries > MAX_HASH_TRIES or group.single:
            return get_round_robin_peer(request, now)
        hash_value = request.hash
        by_hash = self.by_hash
        while True:
            hash_value = ip_hash_step(hash_value, request.addr)
            peer = by_hash[hash_value % len(by_hash)]
            if can_take(request, peer, now):
                break
            if hash_tries_exhausted(request):
                return get_round_robin_peer(request, now)
        request.hash = hash_value
        return take_peer(request, peer, now)


@attrs.frozen(slots=True)
class IpHash:
    """nginx's ``ip_hash`` directive: needs ``client_addr=`` on every pick."""

    kind: ClassVar[Literal["ip_hash"]] = "ip_hash"
    supports_backup = False
    needs_key = False
    needs_client_addr = True

    def bind(self, primary: PeerGroup) -> _IpHashPicker:
        """The peer of each hash (at most 6,271 of them: as many as the total weight)."""
        return _IpHashPicker(primary, primary.peers_by_weight(IP_HASH_MODULUS))
