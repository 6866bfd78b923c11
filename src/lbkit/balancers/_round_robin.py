"""Smooth weighted round robin, exactly as nginx's ``ngx_http_upstream_round_robin.c``.

Every available peer adds its effective weight to its current weight; the peer with the
largest current weight wins and gives back the total. A failure lowers a peer's effective
weight by ``weight // max_fails`` (see :func:`~lbkit.upstream.release_peer`); each time the
peer is considered it recovers by one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import ClassVar, Literal

import attrs

from lbkit.balancers._schedule import smooth_wrr_from
from lbkit.upstream import (
    AVAILABLE,
    PeerGroup,
    PeerState,
    RequestState,
    take_peer,
    take_single_peer,
)

__all__ = ["RoundRobin", "SmoothPicker", "get_round_robin_peer", "switch_to_backup"]


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


#: Largest total weight for which the fast path precomputes nginx's order.
MAX_FAST_PERIOD = 100_000


def _indexes(order: list[int], peers: int) -> array[int]:
    """Peer indexes in the narrowest array for ``peers`` peers: 1 or 2 bytes each (4 above
    65,536 peers) instead of a list's 8-byte reference."""
    return array("B" if peers <= 1 << 8 else "H" if peers <= 1 << 16 else "I", order)


class SmoothPicker:
    """Runtime side of :class:`RoundRobin` (and of :class:`~lbkit.LeastConn`): nginx's scan,
    with an O(1) fast path.

    While every peer of the primary group is available with no time limit (not down, not
    failed, not full), at full effective weight and not ramping up, nginx's choices from
    the current weights are fixed: they are precomputed (:func:`smooth_wrr_from`) and a
    fresh request takes the next one. The peers' ``current_weight`` then lags; :meth:`sync`
    writes it back (the upstream calls it before anything else reads or changes a peer)
    and returns to the scan (``scan``). The order is kept: the next first attempt takes it
    up again at the same position if the peers are still as the sync left them (a read of
    the peers changes nothing); otherwise the scan answers, and the fast path is tried
    again (from the current weights) at the first attempt after every ``len(peers)`` scans.

    With ``idle_only`` (least_conn) the fast path also needs every peer idle: least_conn
    then finds all peers tied at 0 connections and runs exactly round robin's step among
    them. It starts only when every peer is idle; the peer it hands out is remembered, and
    if it is still busy at the next pick, that pick goes to the scan (so at most one peer
    is remembered: each pick either finds the last one idle or ends the fast path).
    """

    __slots__ = (
        "_base",
        "_countdown",
        "_fast",
        "_group",
        "_idle_only",
        "_kept",
        "_last",
        "_order",
        "_peers",
        "_pos",
        "_retry",
        "_scan",
    )

    #: :meth:`begin` does nothing: the upstream may skip it.
    begins = False

    def __init__(
        self,
        primary: PeerGroup,
        scan: Callable[[RequestState, int], PeerState | None] = get_round_robin_peer,
        *,
        idle_only: bool = False,
    ) -> None:
        self._group = primary
        self._peers = primary.peers
        self._scan = scan
        self._idle_only = idle_only
        #: The peer the fast path handed out last (``idle_only``; None: none yet).
        self._last: PeerState | None = None
        self._fast = False
        #: One period of nginx's choices (indexes of peers) while the fast path is on or
        #: may be taken up again (:attr:`_kept`), built when the first pick needs it: a
        #: membership never picked from holds none (bounded by MAX_FAST_PERIOD).
        self._order: array[int] = array("B")
        #: The current weights the order starts from (None: all 0, as in a fresh upstream
        #: and at the end of every period that started there). The weights are the peers':
        #: nothing changes them without a :meth:`sync` first.
        self._base: list[int] | None = None
        self._pos = 0
        #: Scans left before the fast path is tried again (see :attr:`_retry`).
        self._countdown = 0
        #: Whether the next first attempt tries the fast path (:meth:`start`): at the first
        #: pick (not at bind time: a membership never picked from builds no order), then
        #: after every ``len(peers)`` scans.
        self._retry = True
        #: The current weights :meth:`sync` wrote back when it stopped the fast path, the
        #: order kept at its position (None: nothing kept): the next first attempt takes
        #: the order up again if the peers still allow it and hold these weights.
        self._kept: list[int] | None = None

    @property
    def fast(self) -> bool:
        """Whether the precomputed order answers (False: nginx's scan)."""
        return self._fast

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare for round robin."""

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """The first peer of a plain pick from the precomputed order, or None when the
        fast path is off (the upstream then builds a request and calls :meth:`get`)."""
        if not self._fast:
            return self._first_off(key, addr, now)
        last = self._last
        if last is not None and last.conns:
            return self._first_busy(key, addr, now)
        pos = self._pos
        order = self._order
        peer = self._peers[order[pos]]
        pos += 1
        if pos == len(order):
            self._next_period()
        else:
            self._pos = pos
        # take_first() for a peer of the fast path: available with no time limit, so only
        # reaching max_conns may change that (then back to the scan).
        server = peer.server
        peer.conns += 1
        if now - peer.checked > server.fail_timeout:
            peer.checked = now
        if self._idle_only:
            self._last = peer
        if server.max_conns:
            peer.refresh()
            if peer.blocked_until != AVAILABLE:
                self.sync()
        return peer

    def _first_off(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` while the precomputed order is off: taken up again where a sync
        left it, or tried again when it is time (see :attr:`_retry`); else the answer of
        :meth:`_first_unordered`."""
        if self._kept is not None:
            self._resume()
        elif self._retry:
            self.start()
        if self._fast:
            return self.first(key, addr, now)
        return self._first_unordered(key, addr, now)

    def _first_unordered(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` when the precomputed order cannot answer: None (round robin's
        scan answers in :meth:`get`)."""
        return None

    def _first_busy(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` when a peer it handed out is still busy (``idle_only``): None,
        the scan answers."""
        return None

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Next peer in nginx's order: :meth:`first` for a request's first attempt (which
        also takes the fast path up again when it may), else nginx's scan."""
        if request.tried == 0 and request.group is self._group:
            peer = self.first(b"", b"", now)
            if peer is not None:
                request.tried = 1 << peer.index
                return peer
        self.sync()
        chosen = self._scan(request, now)
        self._countdown -= 1
        if self._countdown <= 0:
            self._retry = True
        return chosen

    def start(self) -> None:
        """Switch to the precomputed order if the peers allow it (see the class docstring)."""
        self._try_fast()

    def _next_period(self) -> None:
        """Start the next precomputed period from the weights the last one ended at."""
        end = self._current_weights(len(self._order))
        if end != self._start():
            self._base = end if any(end) else None
            self._order = self._period(end)
        self._pos = 0

    def _start(self) -> list[int]:
        """The current weights the order starts from."""
        return [0] * len(self._peers) if self._base is None else self._base

    def _current_weights(self, pos: int) -> list[int]:
        """The current weights after ``pos`` picks of the precomputed order."""
        total = len(self._order)
        peers = self._peers
        picks = [0] * len(peers)
        for index in self._order[:pos]:
            picks[index] += 1
        return [
            b + pos * p.weight - total * c
            for b, p, c in zip(self._start(), peers, picks, strict=True)
        ]

    def _allows_order(self) -> bool:
        """Whether every peer is intact (and, ``idle_only``, idle): the precomputed order
        then gives nginx's choices (see the class docstring)."""
        group = self._group
        if group.single or group.total_weight > MAX_FAST_PERIOD:
            return False
        idle_only = self._idle_only
        for p in group.peers:
            if (
                p.blocked_until != AVAILABLE
                or p.effective_weight != p.weight
                or p.ramp_start is not None
                or (idle_only and p.conns)
            ):
                # (a busy peer also stops least_conn's fast path before it computes an
                # order that its first pick would give up)
                return False
        return True

    def _try_fast(self) -> None:
        """Switch to the fast path when every peer is intact, its order computed from
        the current weights (see the class docstring)."""
        self._retry = False
        self._kept = None
        self._countdown = len(self._peers)
        if not self._allows_order():
            self._drop_order()
            return
        base = [p.current_weight for p in self._peers]
        self._base = base if any(base) else None
        self._order = self._period(base)
        self._pos = 0
        self._order_on()

    def _resume(self) -> None:
        """Take the order kept by :meth:`sync` up again at its position if every peer is
        still intact and holds the weight the sync wrote (nothing changed since: the rest
        of the order is nginx's choices from here); else drop it, and the scan answers
        until the next try (see :attr:`_retry`)."""
        kept = self._kept
        self._kept = None
        self._countdown = len(self._peers)
        if self._allows_order() and [p.current_weight for p in self._peers] == kept:
            self._order_on()
        else:
            self._drop_order()

    def _drop_order(self) -> None:
        """Forget the precomputed order (it is computed again when the fast path starts)."""
        self._kept = None
        self._order = array("B")

    def _order_on(self) -> None:
        """The precomputed order answers from its current position."""
        self._last = None
        self._fast = True

    def _period(self, start: list[int]) -> array[int]:
        """nginx's next period of choices (peer indexes) from current weights ``start``."""
        peers = self._peers
        return _indexes(smooth_wrr_from([p.weight for p in peers], start), len(peers))

    def sync(self) -> None:
        """Write the lagging current weights back and return to nginx's scan (the order
        kept, to be taken up again where it stopped if nothing changes meanwhile)."""
        if not self._fast:
            return
        self._fast = False
        weights = self._current_weights(self._pos)
        for p, cw in zip(self._group.peers, weights, strict=True):
            p.current_weight = cw
        self._kept = weights


@attrs.frozen(slots=True)
class RoundRobin:
    """nginx's default method: smooth weighted round robin (no directive)."""

    kind: ClassVar[Literal["round_robin"]] = "round_robin"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> SmoothPicker:
        """A picker with nginx's scan and its precomputed fast path."""
        return SmoothPicker(primary)
