"""nginx's ``random [two [least_conn]]``: weighted random choice, optionally best of two."""

from __future__ import annotations

import random as _random
from array import array
from collections.abc import Callable
from typing import ClassVar, Literal

import attrs

from lbkit.balancers._round_robin import MAX_FAST_PERIOD, _indexes, get_round_robin_peer
from lbkit.errors import ConfigError
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

__all__ = ["Random"]


def _fewer_conns(drawn: PeerState, other: PeerState) -> PeerState:
    """Of two peers drawn by ``random two`` (``drawn`` first), the one with fewer
    connections relative to its weight; ``other`` on a tie, as in nginx."""
    return drawn if other.conns * drawn.weight > drawn.conns * other.weight else other


@attrs.define(slots=True)
class _RandomPicker:
    """Runtime side of :class:`Random`: a random source over the group's weight ranges.

    nginx draws from libc ``random()`` seeded per worker from its pid and the time, so its
    exact draws cannot be reproduced; the algorithm around the draws is nginx's.

    :meth:`first` answers a plain pick without request state, with exactly the draws
    :meth:`get` would make for a fresh request: the same numbers from the same source,
    the same peers probed, the same peer chosen and the same changes to it.
    """

    two: bool
    rng: _random.Random
    group: PeerGroup
    #: ``rng.getrandbits``, and the bits of one draw below the total weight (see first()).
    _getrandbits: Callable[[int], int] = attrs.field(init=False)
    _bits: int = attrs.field(init=False)
    #: Index of the peer owning each unit of the total weight (``group.peer_at`` in one
    #: step), built by the first :meth:`first`; empty until then, and for a single peer or
    #: a total weight above ``MAX_FAST_PERIOD``.
    _owners: array[int] = attrs.field(init=False, factory=lambda: array("B"))
    #: Set by :meth:`first` when its draws ran out (``MAX_HASH_TRIES`` probes found no
    #: peer): the request the upstream builds next, under the same lock, goes straight to
    #: round robin in :meth:`get`, as it would have after those draws.
    _drawn_out: bool = attrs.field(init=False, default=False)

    #: :meth:`begin` does nothing: the upstream may skip it.
    begins: ClassVar[bool] = False

    def __attrs_post_init__(self) -> None:
        self._getrandbits = self.rng.getrandbits
        self._bits = self.group.total_weight.bit_length()

    def begin(self, request: RequestState) -> None:
        """Nothing per request beyond the shared try counter."""

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`get` for a plain pick, the peer taken as
        :func:`~lbkit.upstream.take_first` does: the same loop for a request that tried no
        peer yet (so "may take" is "available"), with the draws and the weight ranges
        looked up inline.

        None with nothing drawn for a group of one peer (nginx's round-robin shortcut) or
        weights too large for the table (see ``_owners``), and None once the draws run out
        (see ``_drawn_out``): the full path then goes on.
        """
        owners = self._owners
        if not owners:
            owners = self._build_owners()
            if not owners:
                return None
        getrandbits, bits, total = self._getrandbits, self._bits, len(owners)
        peers = self.group.peers
        two = self.two
        prev: PeerState | None = None
        probes = 0
        while True:
            # randrange(total), as random.Random computes it: draws of bit_length(total)
            # bits until one is below total (tests/test_random_fast_path.py checks it).
            w = getrandbits(bits)
            while w >= total:
                w = getrandbits(bits)
            peer = peers[owners[w]]
            if peer is not prev and peer.blocked_until < now:  # see PeerState.refresh
                if not two:
                    return take_first(peer, now)
                if prev is not None:
                    return take_first(_fewer_conns(prev, peer), now)
                prev = peer
            probes += 1  # hash_tries_exhausted()
            if probes > MAX_HASH_TRIES:
                self._drawn_out = True
                return None

    def _build_owners(self) -> array[int]:
        """Fill :attr:`_owners` (left empty for a single peer and above
        ``MAX_FAST_PERIOD``): each peer's index once per unit of its weight, in
        configuration order, as :meth:`~lbkit.upstream.PeerGroup.peer_at` ranges them."""
        group = self.group
        if not group.single and group.total_weight <= MAX_FAST_PERIOD:
            peers = group.peers
            ranges = [i for i, peer in enumerate(peers) for _ in range(peer.weight)]
            self._owners = _indexes(ranges, len(peers))
        return self._owners

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_random_peer`` / ``get_random2_peer``."""
        if self._drawn_out:  # first() made this request's draws (see _drawn_out)
            self._drawn_out = False
            request.hash_tries = MAX_HASH_TRIES + 1
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
                    peer = _fewer_conns(prev, peer)
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
        return _RandomPicker(self.two, _random.Random(self.seed), primary)
