"""nginx's ``random [two [least_conn]]``: weighted random choice, optionally best of two."""

from __future__ import annotations

import bisect
import random as _random

import attrs

from lbkit.balancers.round_robin import get_round_robin_peer
from lbkit.errors import ConfigError
from lbkit.peer import PeerGroup, PeerState, RequestState

__all__ = ["Random", "RandomPicker"]


@attrs.define(slots=True)
class RandomPicker:
    """Runtime side of :class:`Random`: cumulative weight ranges and a random source.

    nginx draws from libc ``random()`` seeded per worker from its pid and the time, so its
    exact draws cannot be reproduced; the algorithm around the draws is nginx's.
    """

    starts: list[int]
    total_weight: int
    two: bool
    rng: _random.Random

    def begin(self, request: RequestState) -> None:
        """Nothing per request beyond the shared try counter."""

    def _peek(self, peers: list[PeerState]) -> tuple[int, PeerState]:
        x = self.rng.randrange(self.total_weight)
        i = bisect.bisect_right(self.starts, x) - 1
        return i, peers[i]

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_random_peer`` / ``get_random2_peer``."""
        group = request.group
        if request.hash_tries > 20 or group.single:
            return get_round_robin_peer(request, now)
        peers = group.peers
        prev: PeerState | None = None
        while True:
            _, peer = self._peek(peers)
            usable = (
                peer is not prev
                and not (request.tried >> peer.index & 1)
                and peer.is_available(now)
            )
            if usable:
                if not self.two:
                    break
                if prev is not None:
                    # Of the two, the one with fewer connections relative to weight wins.
                    if peer.conns * prev.weight > prev.conns * peer.weight:
                        peer = prev
                    break
                prev = peer
            request.hash_tries += 1
            if request.hash_tries > 20:
                return get_round_robin_peer(request, now)
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        peer.conns += 1
        request.tried |= 1 << peer.index
        return peer


@attrs.frozen(slots=True)
class Random:
    """nginx's ``random`` (``two``: best of two draws by least connections).

    ``least_conn`` is the only comparison nginx offers for ``two``; it is accepted and
    recorded. ``seed`` makes the draws reproducible (nginx's are not).
    """

    two: bool = False
    least_conn: bool = False
    seed: int | None = None

    supports_backup = False
    needs_key = False
    needs_client_addr = False

    def __attrs_post_init__(self) -> None:
        if self.least_conn and not self.two:
            raise ConfigError('invalid parameter "least_conn": it goes with "random two"')

    def bind(self, primary: PeerGroup) -> RandomPicker:
        """Precompute nginx's cumulative weight ranges."""
        starts: list[int] = []
        total = 0
        for peer in primary.peers:
            starts.append(total)
            total += peer.weight
        return RandomPicker(starts, total, self.two, _random.Random(self.seed))

    def to_nginx(self) -> str:
        """The directive text."""
        if self.two:
            return "random two least_conn;" if self.least_conn else "random two;"
        return "random;"
