"""least_conn's runtime side: nginx's choice without rescanning every peer.

nginx (``ngx_http_upstream_get_least_conn_peer``) takes the available peer with the fewest
connections for its weight (``conns * other.weight`` compared), and when several tie, one
smooth-weighted-round-robin step among the tied peers only: each adds its effective weight
to its current weight, the largest current weight wins (the first in configuration order
on equal ones) and gives back the tied total. A single best peer changes no weight.

:class:`LeastConnBuckets` keeps the peers in buckets, one per (weight, connection count),
so the tie set is the lowest bucket of each weight whose ``conns / weight`` is the
minimum: a scan over the distinct weights, not the peers. Inside a bucket every peer
gains the same weight at each step, so a member's current weight is stored as an offset
from ``weight * ticks`` (the bucket's steps) and a heap of offsets gives the bucket's
winner in O(log n). A weight's lowest non-empty bucket is looked for again only when it
empties (among that weight's buckets: one per distinct connection count). While every peer
is idle, :class:`LeastConnPicker` answers from round robin's precomputed order instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from lbkit.balancers._round_robin import SmoothPicker
from lbkit.upstream import AVAILABLE, PeerGroup, PeerState, RequestState

__all__ = ["LeastConnBuckets", "LeastConnPicker"]

#: nginx's scan: the picker's answer whenever the fast path is off.
Scan = Callable[[RequestState, int], PeerState | None]


class _Bucket:
    """The candidates of one weight with one connection count.

    A member's current weight is its offset (``LeastConnBuckets._offset``) plus
    ``weight * ticks``. ``heap`` holds ``(-offset, index, seq)``: the largest current
    weight, then the first in configuration order, on top; entries whose ``seq`` is no
    longer the peer's are stale (the peer moved) and skipped.
    """

    __slots__ = ("conns", "heap", "live", "ticks", "weight")

    def __init__(self, weight: int, conns: int) -> None:
        self.weight = weight
        self.conns = conns
        self.ticks = 0
        self.live = 0
        self.heap: list[tuple[int, int, int]] = []


class _WeightClass:
    """The candidates of one weight, by connection count; ``low`` is the smallest count
    of a non-empty bucket."""

    __slots__ = ("buckets", "low", "weight")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.buckets: dict[int, _Bucket] = {}
        self.low = 0


class LeastConnBuckets:
    """least_conn's fast path once connections are held: nginx's choice in
    O(distinct weights + log n).

    It runs while every peer is down (never a candidate), full (``max_conns`` reached:
    out of the buckets until one of its connections ends) or available with no time limit
    (not failed), each at full effective weight and not ramping up: then only picks and
    ends of connections change the candidates, and both are reported here (:meth:`first`,
    :meth:`released`). Anything else is preceded by :meth:`sync`, which writes the
    current weights back to the peers and stops it until :meth:`start`.
    """

    __slots__ = (
        "_by_weight",
        "_classes",
        "_fast",
        "_group",
        "_offset",
        "_peers",
        "_seq",
        "_where",
    )

    def __init__(self, primary: PeerGroup) -> None:
        self._group = primary
        self._peers = primary.peers
        self._fast = False
        self._classes: list[_WeightClass] = []
        self._by_weight: dict[int, _WeightClass] = {}
        self._where: list[_Bucket | None] = []
        self._offset: list[int] = []
        self._seq: list[int] = []

    @property
    def fast(self) -> bool:
        """Whether the buckets answer (False: until :meth:`start`)."""
        return self._fast

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """nginx's choice for a first attempt, taken; None when the fast path is off."""
        if not self._fast:
            return None
        classes = self._classes
        if len(classes) == 1:
            cls = classes[0]
            tied = [cls.buckets[cls.low]]
        else:
            tied = []
            best_conns = best_weight = 0
            for cls in classes:
                conns = cls.low
                weight = cls.weight
                if not tied or conns * best_weight < best_conns * weight:
                    tied = [cls.buckets[conns]]
                    best_conns, best_weight = conns, weight
                elif conns * best_weight == best_conns * weight:
                    tied.append(cls.buckets[conns])
            if not tied:
                return None  # every peer is down
        seq = self._seq
        offset = self._offset
        winner: _Bucket | None = None
        best_cw = best_index = 0
        many = len(tied) > 1 or tied[0].live > 1
        total = 0
        for bucket in tied:
            heap = bucket.heap
            while heap[0][2] != seq[heap[0][1]]:
                heapq.heappop(heap)
            if many:
                bucket.ticks += 1
                total += bucket.weight * bucket.live
            index = heap[0][1]
            cw = offset[index] + bucket.weight * bucket.ticks
            if winner is None or cw > best_cw or (cw == best_cw and index < best_index):
                winner, best_cw, best_index = bucket, cw, index
        assert winner is not None
        heapq.heappop(winner.heap)
        self._remove(best_index, winner)
        cw = best_cw - total
        # take_first(), for a peer available with no time limit.
        peer = self._peers[best_index]
        peer.conns += 1
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        if peer.max_conns:
            peer.refresh()
            if peer.blocked_until != AVAILABLE:
                # Full: out of the buckets, its current weight kept on the peer.
                peer.current_weight = cw
                self._where[best_index] = None
                return peer
        self._insert(best_index, winner.weight, winner.conns + 1, cw)
        return peer

    def released(self, state: PeerState) -> None:
        """``state``'s connection count changed outside a pick (an attempt ended
        without a failure, or was given back): move it to its bucket."""
        if not self._fast:
            return
        index = state.index
        peers = self._peers
        if index >= len(peers) or peers[index] is not state or state.down:
            return  # not a candidate of this group (down, a backup, an older membership's)
        bucket = self._where[index]
        if state.blocked_until != AVAILABLE:
            if not state.is_full():
                self.sync()  # out for a time (cannot happen without a failure, which syncs)
            return
        if bucket is None:  # no longer full
            self._insert(index, state.weight, state.conns, state.current_weight)
        elif bucket.conns != state.conns:
            self._insert(index, bucket.weight, state.conns, self._remove(index, bucket))

    def _remove(self, index: int, bucket: _Bucket) -> int:
        """Take peer ``index`` out of ``bucket`` (its heap entry is left stale); its
        current weight."""
        weight = bucket.weight
        cw = self._offset[index] + weight * bucket.ticks
        self._seq[index] += 1
        bucket.live -= 1
        cls = self._by_weight[weight]
        if not bucket.live:
            buckets = cls.buckets
            del buckets[bucket.conns]
            if not buckets:
                del self._by_weight[weight]
                self._classes.remove(cls)
            elif bucket.conns == cls.low:
                cls.low = min(buckets)
        elif len(bucket.heap) > 2 * bucket.live + 8:
            seq = self._seq
            bucket.heap = [e for e in bucket.heap if e[2] == seq[e[1]]]
            heapq.heapify(bucket.heap)
        return cw

    def _insert(self, index: int, weight: int, conns: int, cw: int) -> None:
        """Put peer ``index`` into its weight's bucket of ``conns``, with current weight
        ``cw``."""
        cls = self._by_weight.get(weight)
        if cls is None:
            cls = self._by_weight[weight] = _WeightClass(weight)
            cls.low = conns
            self._classes.append(cls)
        buckets = cls.buckets
        target = buckets.get(conns)
        if target is None:
            target = buckets[conns] = _Bucket(weight, conns)
            if conns < cls.low:
                cls.low = conns
        off = cw - weight * target.ticks
        self._offset[index] = off
        heapq.heappush(target.heap, (-off, index, self._seq[index]))
        target.live += 1
        self._where[index] = target

    def start(self) -> None:
        """Build the buckets when every peer allows the fast path (see the class
        docstring)."""
        group = self._group
        peers = group.peers
        if group.single:
            return
        for p in peers:
            if p.down:
                continue
            if p.effective_weight != p.weight or p.ramp_start is not None:
                return
            if p.blocked_until != AVAILABLE and not (
                p.is_full() and not (p.max_fails and p.fails >= p.max_fails)
            ):
                return
        classes: dict[int, _WeightClass] = {}
        where: list[_Bucket | None] = [None] * len(peers)
        offset = [0] * len(peers)
        for i, p in enumerate(peers):
            if p.blocked_until != AVAILABLE:
                continue  # down or full
            cls = classes.get(p.weight)
            if cls is None:
                cls = classes[p.weight] = _WeightClass(p.weight)
            bucket = cls.buckets.get(p.conns)
            if bucket is None:
                bucket = cls.buckets[p.conns] = _Bucket(p.weight, p.conns)
            bucket.heap.append((-p.current_weight, i, 0))
            bucket.live += 1
            offset[i] = p.current_weight
            where[i] = bucket
        for cls in classes.values():
            cls.low = min(cls.buckets)
            for bucket in cls.buckets.values():
                heapq.heapify(bucket.heap)
        self._classes = list(classes.values())
        self._by_weight = classes
        self._where = where
        self._offset = offset
        self._seq = [0] * len(peers)
        self._fast = True

    def sync(self) -> None:
        """Write the current weights back to the peers and stop until :meth:`start`."""
        if not self._fast:
            return
        self._fast = False
        offset = self._offset
        for p, bucket, off in zip(self._peers, self._where, offset, strict=True):
            if bucket is not None:
                p.current_weight = off + bucket.weight * bucket.ticks
        self._classes = []
        self._by_weight = {}
        self._where = []
        self._offset = []
        self._seq = []


class LeastConnPicker(SmoothPicker):
    """least_conn's picker: round robin's precomputed order while every peer is idle (all
    tied at 0 connections, least_conn's step is round robin's), the buckets of
    :class:`LeastConnBuckets` once connections are held, nginx's scan otherwise.

    The precomputed order is O(1) a pick (this class is round robin's picker, with
    ``idle_only``); it ends at the first pick that finds a peer busy, and the buckets take
    over (O(n) once) until something syncs the peers (a failure, a read of the peers, an
    update...). After a sync nginx's scan answers, and every ``len(peers)`` picks the
    order is tried again, then the buckets.
    """

    __slots__ = ("_buckets", "released")

    #: The buckets answer :meth:`first` while the idle order is off.
    _first_when_off = True

    def __init__(
        self,
        primary: PeerGroup,
        scan: Scan,
        buckets: Callable[[PeerGroup], LeastConnBuckets] = LeastConnBuckets,
    ) -> None:
        super().__init__(primary, scan, idle_only=True)
        self._buckets = buckets(primary)
        #: A connection of a peer ended (see :meth:`LeastConnBuckets.released`): the
        #: buckets' own method while they answer, so that the upstream calls it directly;
        #: None while they do not (the idle order and the scan need no telling), so that
        #: the upstream calls nothing. Set by :meth:`_buckets_start`, unset by :meth:`sync`.
        self.released: Callable[[PeerState], None] | None = None
        # decide now (round robin's picker waits for its first pick): first() takes the
        # idle order only while it is on
        self.start()

    def _first_off(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` while the idle order is off: the buckets' answer."""
        return self._buckets.first(key, addr, now)

    def _first_busy(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` when a peer of the idle order is busy: from now on the buckets
        answer."""
        SmoothPicker.sync(self)
        self._buckets_start()
        return self._buckets.first(key, addr, now)

    def _buckets_start(self) -> None:
        """Start the buckets if they allow it, and have the upstream tell them of every
        connection that ends from now on (:attr:`released`) if they do."""
        buckets = self._buckets
        buckets.start()
        if buckets.fast:
            self.released = buckets.released

    def start(self) -> None:
        """Switch to the idle order if every peer allows it, else to the buckets if they
        allow it (see :class:`LeastConnBuckets`)."""
        self._try_fast()  # also counts len(peers) picks down again
        if not self._fast:
            self._buckets_start()

    def sync(self) -> None:
        """Write the current weights back to the peers and return to nginx's scan."""
        SmoothPicker.sync(self)
        self._buckets.sync()
        self.released = None
