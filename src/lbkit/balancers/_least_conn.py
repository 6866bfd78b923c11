"""nginx's ``least_conn``: fewest active connections relative to weight, ties by round robin."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from lbkit.balancers._least_conn_picker import LeastConnPicker
from lbkit.balancers._round_robin import get_round_robin_peer, switch_to_backup
from lbkit.upstream import PeerGroup, PeerState, RequestState, take_peer

__all__ = ["LeastConn", "get_least_conn_peer"]


def _least_conn_step(request: RequestState, now: int) -> PeerState | None:
    peers = request.group.peers
    tried = request.tried
    best: PeerState | None = None
    many = False
    for peer in peers:
        if tried >> peer.index & 1 or peer.blocked_until >= now:  # see PeerState.refresh
            continue
        # conns_a / weight_a < conns_b / weight_b, without division, as nginx compares.
        if best is None or peer.conns * best.weight < best.conns * peer.weight:
            best = peer
            many = False
        elif peer.conns * best.weight == best.conns * peer.weight:
            many = True
    if best is None:
        return None
    if many:
        # Round robin among the tied peers, from the first of them onwards.
        total = 0
        first = best
        for peer in peers[first.index :]:
            if tried >> peer.index & 1 or peer.conns * first.weight != first.conns * peer.weight:
                continue
            if peer.blocked_until >= now:
                continue
            peer.current_weight += peer.effective_weight
            total += peer.effective_weight
            if peer.effective_weight < peer.weight:
                peer.effective_weight += 1
            if peer.current_weight > best.current_weight:
                best = peer
        best.current_weight -= total
    return take_peer(request, best, now)


def get_least_conn_peer(request: RequestState, now: int) -> PeerState | None:
    """nginx's ``ngx_http_upstream_get_least_conn_peer``, including the backup fallback."""
    if request.group.single:
        return get_round_robin_peer(request, now)
    while True:
        peer = _least_conn_step(request, now)
        if peer is not None:
            return peer
        if not switch_to_backup(request):
            return None
        if request.group.single:
            return get_round_robin_peer(request, now)


@attrs.frozen(slots=True)
class LeastConn:
    """nginx's ``least_conn`` directive."""

    kind: ClassVar[Literal["least_conn"]] = "least_conn"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> LeastConnPicker:
        """nginx's scan, with round robin's precomputed order while every peer is idle and
        buckets of peers by connections per weight once connections are held (see
        :class:`~lbkit.balancers._least_conn_picker.LeastConnPicker`)."""
        return LeastConnPicker(primary, get_least_conn_peer)
