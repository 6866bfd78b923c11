"""Smooth weighted round robin, exactly as nginx's ``ngx_http_upstream_round_robin.c``.

Every available peer adds its effective weight to its current weight; the peer with the
largest current weight wins and gives back the total. A failure lowers a peer's effective
weight by ``weight // max_fails`` (see :func:`~lbkit.upstream.release_peer`); each time the
peer is considered it recovers by one.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from lbkit.upstream import PeerGroup, PeerState, RequestState, take_peer, take_single_peer

__all__ = ["RoundRobin", "get_round_robin_peer", "switch_to_backup"]


def _smooth_wrr(request: RequestState, now: int) -> PeerState | None:
    """nginx's ``ngx_http_upstream_get_peer``: one smooth-WRR step over untried peers."""
    best: PeerState | None = None
    total = 0
    tried = request.tried
    for peer in request.group.peers:
        if tried >> peer.index & 1 or peer.blocked_until >= now:  # see PeerState.refresh
            continue
        peer.current_weight += peer.effective_weight
        total += peer.effective_weight
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        if best is None or peer.current_weight > best.current_weight:
            best = peer
    if best is None:
        return None
    best.current_weight -= total
    return take_peer(request, best, now)


def switch_to_backup(request: RequestState) -> bool:
    """Move ``request`` to the backup group (tried set cleared); False when there is none."""
    backup = request.group.backup
    if backup is None:
        return False
    request.group = backup
    request.tried = 0
    return True


def get_round_robin_peer(request: RequestState, now: int) -> PeerState | None:
    """nginx's ``ngx_http_upstream_get_round_robin_peer``, including the backup fallback.

    A group of one peer skips the passive health check, as nginx does (``peers->single``).
    """
    while True:
        group = request.group
        peer = take_single_peer(group.peers[0]) if group.single else _smooth_wrr(request, now)
        if peer is not None:
            return peer
        if not switch_to_backup(request):
            return None


@attrs.frozen(slots=True)
class _RoundRobinPicker:
    """Runtime side of :class:`RoundRobin`."""

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare for round robin."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Next peer in smooth weighted round-robin order."""
        return get_round_robin_peer(request, now)


@attrs.frozen(slots=True)
class RoundRobin:
    """nginx's default method: smooth weighted round robin (no directive)."""

    kind: ClassVar[Literal["round_robin"]] = "round_robin"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> _RoundRobinPicker:
        """Round robin needs no precomputed structure."""
        return _RoundRobinPicker()
