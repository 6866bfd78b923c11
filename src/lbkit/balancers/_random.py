"""nginx's ``random [two [least_conn]]``: weighted random choice, optionally best of two."""

from __future__ import annotations

import random as _random
from typing import ClassVar, Literal

import attrs

from lbkit.balancers._round_robin import get_round_robin_peer
from lbkit.errors import ConfigError
from lbkit.upstream import (
    MAX_HASH_TRIES,
    PeerGroup,
    PeerState,
    RequestState,
    can_take,
    hash_tries_exhausted,
    take_peer,
)

__all__ = ["Random"]


@attrs.define(slots=True)
class _RandomPicker:
    """Runtime side of :class:`Random`: a random source over the group's weight ranges.

    nginx draws from libc ``random()`` seeded per worker from its pid and the time, so its
    exact draws cannot be reproduced; the algorithm around the draws is nginx's.
    """

    two: bool
    rng: _random.Random

    def begin(self, request: RequestState) -> None:
        """Nothing per request beyond the shared try counter."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_random_peer`` / ``get_random2_peer``."""
        group = request.group
        if request.hash_tries > MAX_HASH_TRIES or group.single:
            return get_round_robin_peer(request, now)
        randrange, total = self.rng.randrange, group.total_weight
        prev: PeerState | None = None
        while True:
            peer = group.peer_at(randrange(total))
            if peer is not prev and can_take(request, peer, now):
                if not self.two:
                    break
                if prev is not None:
                    # Of the two, the one with fewer connections relative to weight wins.
                    if peer.conns * prev.weight > prev.conns * peer.weight:
                        peer = prev
                    break
                prev = peer
            if hash_tries_exhausted(request):
                return get_round_robin_peer(request, now)
        return take_peer(request, peer, now)


@attrs.frozen(slots=True)
class Random:
    """nginx's ``random`` (``two``: best of two draws by least connections).

    ``least_conn`` is the only comparison nginx offers for ``two``; it is accepted and
    recorded. ``seed`` makes the draws reproducible (nginx's are not).
    """

    two: bool = False
    least_conn: bool = False
    seed: int | None = None

    kind: ClassVar[Literal["random"]] = "random"
    supports_backup = False
    needs_key = False
    needs_client_addr = False

    def __attrs_post_init__(self) -> None:
        if self.least_conn and not self.two:
            raise ConfigError('invalid parameter "least_conn": it goes with "random two"')

    def bind(self, primary: PeerGroup) -> _RandomPicker:
        """A random source per upstream membership (seeded with ``seed`` when given)."""
        return _RandomPicker(self.two, _random.Random(self.seed))
