"""Smooth weighted round robin, exactly as nginx's ``ngx_http_upstream_round_robin.c``.

Every available peer adds its effective weight to its current weight; the peer with the
largest current weight wins and gives back the total. A failure lowers a peer's effective
weight by ``weight // max_fails``; each time the peer is considered it recovers by one.
"""

from __future__ import annotations

import attrs

from lbkit.peer import PeerGroup, PeerState, RequestState

__all__ = ["RoundRobin", "RoundRobinPicker", "free_peer", "get_round_robin_peer"]


def _smooth_wrr(request: RequestState, now: int) -> PeerState | None:
    """nginx's ``ngx_http_upstream_get_peer``: one smooth-WRR step over untried peers."""
    best: PeerState | None = None
    total = 0
    tried = request.tried
    for peer in request.group.peers:
        if tried >> peer.index & 1 or peer.down:
            continue
        if (
            peer.max_fails
            and peer.fails >= peer.max_fails
            and now - peer.checked <= peer.fail_timeout
        ):
            continue
        if peer.max_conns and peer.conns >= peer.max_conns:
            continue
        peer.current_weight += peer.effective_weight
        total += peer.effective_weight
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        if best is None or peer.current_weight > best.current_weight:
            best = peer
    if best is None:
        return None
    request.tried |= 1 << best.index
    best.current_weight -= total
    if now - best.checked > best.fail_timeout:
        best.checked = now
    return best


def switch_to_backup(request: RequestState) -> bool:
    """Move ``request`` to the backup group (tried set cleared); False when there is none."""
    backup = request.group.backup
    if backup is None:
        return False
    request.group = backup
    request.tried = 0
    return True


def get_round_robin_peer(request: RequestState, now: int) -> PeerState | None:
    """nginx's ``ngx_http_upstream_get_round_robin_peer``, including the backup fallback."""
    while True:
        group = request.group
        if group.single:
            peer: PeerState | None = group.peers[0]
            assert peer is not None
            if peer.down or (peer.max_conns and peer.conns >= peer.max_conns):
                peer = None
        else:
            peer = _smooth_wrr(request, now)
        if peer is not None:
            peer.conns += 1
            return peer
        if not switch_to_backup(request):
            return None


def free_peer(request: RequestState, peer: PeerState, failed: bool, now: int) -> None:
    """nginx's ``ngx_http_upstream_free_round_robin_peer``: account for a finished attempt."""
    if request.group.single:
        peer.conns -= 1
        request.tries_left = 0
        return
    if failed:
        peer.fails += 1
        peer.accessed = now
        peer.checked = now
        if peer.max_fails:
            peer.effective_weight -= peer.weight // peer.max_fails
        peer.effective_weight = max(peer.effective_weight, 0)
    elif peer.accessed < peer.checked:
        # A success after the fail_timeout probe marks the peer live again.
        if peer.server.slow_start and peer.max_fails and peer.fails >= peer.max_fails:
            peer.ramp_start = now
        peer.fails = 0
    peer.conns -= 1
    if request.tries_left:
        request.tries_left -= 1


@attrs.frozen(slots=True)
class RoundRobinPicker:
    """Runtime side of :class:`RoundRobin`."""

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare for round robin."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Next peer in smooth weighted round-robin order."""
        return get_round_robin_peer(request, now)


@attrs.frozen(slots=True)
class RoundRobin:
    """nginx's default method: smooth weighted round robin (no directive)."""

    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> RoundRobinPicker:
        """Round robin needs no precomputed structure."""
        return RoundRobinPicker()

    def to_nginx(self) -> str:
        """Round robin is nginx's default: no directive."""
        return ""
