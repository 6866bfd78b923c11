"""least_conn's runtime side: nginx's choice without rescanning every peer.

nginx (``ngx_http_upstream_get_least_conn_peer``) takes the available peer with the fewest
connections for its weight (``conns * other.weight`` compared), and when several tie, one
smooth-weighted-round-robin step among the tied peers only: each adds its effective weight
to its current weight, the largest current weight wins (the first in configuration order
on equal ones) and gives back the tied total. A single best peer changes no weight.

:class:`LeastConnBuckets` keeps the peers in buckets, one per (weight, connection count),
so the tie set is the lowest bucket of each weight whose ``conns / weight`` is the
minimum: a scan over the distinct weights, not the peers, and only when one of those
lowest buckets changes (it is kept between picks). Inside a bucket every peer gains the
same weight at each step, so a member's current weight is stored relative to the
bucket's steps and a heap gives the bucket's winner in O(log n). A pick moves the winner
one bucket up and the end of a connection one bucket down, along links between the
buckets of a weight. While every peer is idle, :class:`LeastConnPicker` answers from
round robin's precomputed order instead, and goes back to it when every peer is idle again.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush

from lbkit.balancers._round_robin import SmoothPicker
from lbkit.upstream import AVAILABLE, PeerGroup, PeerState, RequestState

__all__ = ["LeastConnBuckets", "LeastConnPicker"]

#: nginx's scan: the picker's answer whenever the fast path is off.
Scan = Callable[[RequestState, int], PeerState | None]

#: An answer for a plain pick's first attempt (``first(key, addr, now)``; None: the full
#: path answers).
First = Callable[[bytes, bytes, int], PeerState | None]


def _tell_nobody(first: First) -> None:
    """What :class:`LeastConnPicker` tells until an upstream asks (see ``publish_first``)."""


def _stay() -> None:
    """What :class:`LeastConnBuckets` call when every peer is idle again, until told."""


class _Bucket:
    """The candidates of one weight with one connection count.

    A member's current weight is ``weight * ticks - key``, ``(key, index)`` being its
    heap entry: the largest current weight, then the first in configuration order, on
    top. An entry that is no longer its peer's (``LeastConnBuckets._entry``) is stale
    (the peer moved) and skipped. ``down`` and ``up`` are the buckets of the same weight
    with one connection fewer and one more (``up``: None until a peer gets there).
    """

    __slots__ = ("conns", "down", "heap", "live", "owner", "ticks", "up", "weight")

    def __init__(self, owner: _WeightClass, conns: int, down: _Bucket | None) -> None:
        self.owner = owner
        self.weight = owner.weight
        self.conns = conns
        self.ticks = 0
        self.live = 0
        self.heap: list[tuple[int, int]] = []
        self.down = down
        self.up: _Bucket | None = None


class _WeightClass:
    """The candidates of one weight: a bucket for every connection count from 0 up to
    the largest reached since the buckets started (so bounded by the connections held);
    ``low`` is the smallest count of a non-empty bucket (-1: none)."""

    __slots__ = ("buckets", "low", "weight")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.buckets: list[_Bucket] = []
        self.low = 0

    def at(self, conns: int) -> _Bucket:
        """The bucket of ``conns`` connections, made (with those below it) if missing."""
        buckets = self.buckets
        while len(buckets) <= conns:
            below = buckets[-1] if buckets else None
            bucket = _Bucket(self, len(buckets), below)
            if below is not None:
                below.up = bucket
            buckets.append(bucket)
        return buckets[conns]

    def lowest(self) -> int:
        """The smallest count of a non-empty bucket (-1: every bucket is empty)."""
        return next((b.conns for b in self.buckets if b.live), -1)


#: The entry of a peer in no bucket (down, full, or not a candidate).
_NO_ENTRY = (0, -1)


class LeastConnBuckets:
    """least_conn's fast path once connections are held: nginx's choice in
    O(distinct weights + log n), O(log n) while the tie set's buckets stay the lowest.

    It runs while every peer is down (never a candidate), full (``max_conns`` reached:
    out of the buckets until one of its connections ends) or available with no time limit
    (not failed), each at full effective weight and not ramping up: then only picks and
    ends of connections change the candidates, and both are reported here (:meth:`first`,
    :meth:`released`). Anything else is preceded by :meth:`sync`, which writes the
    current weights back to the peers and stops it until :meth:`start`.

    They count the connections held on the group's peers, and call :attr:`idle` when
    every peer has been idle again a given number of times (see :meth:`start`).
    """

    __slots__ = (
        "_by_weight",
        "_classes",
        "_entry",
        "_fast",
        "_group",
        "_held",
        "_idle_left",
        "_peers",
        "_tied",
        "_where",
        "idle",
    )

    def __init__(self, primary: PeerGroup) -> None:
        self._group = primary
        self._peers = primary.peers
        self._fast = False
        self._classes: list[_WeightClass] = []
        self._by_weight: dict[int, _WeightClass] = {}
        #: Each peer's bucket (None: in none) and heap entry (``_NO_ENTRY``: none).
        self._where: list[_Bucket | None] = []
        self._entry: list[tuple[int, int]] = []
        #: The buckets whose peers tie for the pick (None: to be found again, as the
        #: lowest bucket of a weight changed).
        self._tied: list[_Bucket] | None = None
        #: Connections held on the group's peers (while the buckets answer).
        self._held = 0
        #: Times every peer may be idle again before :attr:`idle` is called (0: never).
        self._idle_left = 0
        #: Called (in :meth:`released`) when every peer has been idle again as many times
        #: as :meth:`start` said; it may stop the buckets (:meth:`sync`).
        self.idle: Callable[[], None] = _stay

    @property
    def fast(self) -> bool:
        """Whether the buckets answer (False: until :meth:`start`)."""
        return self._fast

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """nginx's choice for a first attempt, taken; None when the fast path is off."""
        if not self._fast:
            return None
        tied = self._tied
        if tied is None:
            tied = self._tie()
            if not tied:
                return None  # every peer is down or full
        entry = self._entry
        if len(tied) == 1:
            bucket = tied[0]
            heap = bucket.heap
            top = heap[0]
            index = top[1]
            while entry[index] is not top:
                heappop(heap)
                top = heap[0]
                index = top[1]
            live = bucket.live
            weight = bucket.weight
            if live == 1:  # a single best peer: no weight changes
                cw = weight * bucket.ticks - top[0]
            else:
                ticks = bucket.ticks = bucket.ticks + 1
                cw = weight * (ticks - live) - top[0]  # minus the tied total
        else:
            bucket = tied[0]
            index = -1
            best_cw = total = 0
            for tie in tied:
                heap = tie.heap
                top = heap[0]
                i = top[1]
                while entry[i] is not top:
                    heappop(heap)
                    top = heap[0]
                    i = top[1]
                weight = tie.weight
                ticks = tie.ticks = tie.ticks + 1
                total += weight * tie.live
                cw = weight * ticks - top[0]
                if index < 0 or cw > best_cw or (cw == best_cw and i < index):
                    bucket, best_cw, index = tie, cw, i
            heap = bucket.heap
            live = bucket.live
            weight = bucket.weight
            cw = best_cw - total
        heappop(heap)  # the winner's entry
        self._held += 1
        bucket.live = live - 1
        if live == 1:
            heap.clear()  # only stale entries are left
            self._tied = None  # (the winner's weight has a new lowest bucket)
        # take_first(), for a peer available with no time limit.
        peer = self._peers[index]
        peer.conns += 1
        server = peer.server
        if now - peer.checked > server.fail_timeout:
            peer.checked = now
        if server.max_conns:
            peer.refresh()
            if peer.blocked_until != AVAILABLE:
                # Full: out of the buckets, its current weight kept on the peer.
                peer.current_weight = cw
                self._where[index] = None
                entry[index] = _NO_ENTRY
                if live == 1:
                    bucket.owner.low = bucket.owner.lowest()
                return peer
        up = bucket.up
        if up is None:
            up = bucket.owner.at(bucket.conns + 1)
        entry[index] = e = (weight * up.ticks - cw, index)
        heappush(up.heap, e)
        up.live += 1
        self._where[index] = up
        if live == 1:
            bucket.owner.low = up.conns
        return peer

    def released(self, state: PeerState) -> None:
        """``state``'s connection count changed outside a pick (an attempt ended
        without a failure, or was given back): move it to its bucket."""
        if not self._fast:
            return
        index = state.index
        where = self._where
        if index >= len(where) or self._peers[index] is not state:
            return  # not a candidate of this group (a backup, an older membership's)
        held = self._held = self._held - 1
        bucket = where[index]
        if bucket is None or state.conns != bucket.conns - 1 or state.blocked_until != AVAILABLE:
            self._released_other(state, bucket)
            if not held and self._idle_left:
                self._idle_again()
            return
        # One connection fewer: one bucket down.
        entry = self._entry
        weight = bucket.weight
        cw = weight * bucket.ticks - entry[index][0]
        live = bucket.live = bucket.live - 1
        heap = bucket.heap
        if not live:
            heap.clear()
        elif len(heap) > 2 * live + 8:
            self._compact(bucket)
        down = bucket.down
        assert down is not None  # (conns >= 0)
        entry[index] = e = (weight * down.ticks - cw, index)
        heappush(down.heap, e)
        down.live += 1
        where[index] = down
        owner = bucket.owner
        if down.conns < owner.low:
            owner.low = down.conns
            self._tied = None
        if not held and self._idle_left:
            self._idle_again()

    def _idle_again(self) -> None:
        """Every peer is idle again: the ``idle_after``-th time (see :meth:`start`),
        :attr:`idle` is called."""
        if not self._fast:
            return  # (stopped by the change just followed)
        left = self._idle_left = self._idle_left - 1
        if not left:
            self.idle()

    def _released_other(self, state: PeerState, bucket: _Bucket | None) -> None:
        """:meth:`released` for any other change: a full peer no longer full, another
        connection count, a peer out for a time."""
        if state.down:
            return  # never a candidate
        if state.blocked_until != AVAILABLE:
            if not state.is_full():
                self.sync()  # out for a time (cannot happen without a failure, which syncs)
            return
        index = state.index
        if bucket is None:  # no longer full
            cw = state.current_weight
        elif bucket.conns == state.conns:
            return
        else:
            cw = self._remove(index, bucket)
        self._insert(index, state.weight, state.conns, cw)

    def _compact(self, bucket: _Bucket) -> None:
        """Drop the stale entries of ``bucket``'s heap (more than half of it)."""
        entry = self._entry
        heap = bucket.heap = [e for e in bucket.heap if entry[e[1]] is e]
        heapify(heap)

    def _remove(self, index: int, bucket: _Bucket) -> int:
        """Take peer ``index`` out of ``bucket`` (its heap entry is left stale); its
        current weight."""
        entry = self._entry
        cw = bucket.weight * bucket.ticks - entry[index][0]
        entry[index] = _NO_ENTRY
        self._where[index] = None
        live = bucket.live = bucket.live - 1
        if not live:
            bucket.heap.clear()
            owner = bucket.owner
            if bucket.conns == owner.low:
                owner.low = owner.lowest()
                self._tied = None
        elif len(bucket.heap) > 2 * live + 8:
            self._compact(bucket)
        return cw

    def _insert(self, index: int, weight: int, conns: int, cw: int) -> None:
        """Put peer ``index`` into its weight's bucket of ``conns``, with current weight
        ``cw``."""
        owner = self._by_weight.get(weight)
        if owner is None:
            owner = self._by_weight[weight] = _WeightClass(weight)
            owner.low = -1
            self._classes.append(owner)
        target = owner.at(conns)
        self._entry[index] = e = (weight * target.ticks - cw, index)
        heappush(target.heap, e)
        target.live += 1
        self._where[index] = target
        if owner.low < 0 or conns < owner.low:
            owner.low = conns
            self._tied = None

    def _tie(self) -> list[_Bucket]:
        """The buckets whose peers tie for the next pick (the lowest of each weight whose
        ``conns / weight`` is the minimum), kept in :attr:`_tied` when there are any."""
        tied: list[_Bucket] = []
        best_conns = best_weight = 0
        for owner in self._classes:
            conns = owner.low
            if conns < 0:
                continue  # every peer of this weight is full
            weight = owner.weight
            if not tied or conns * best_weight < best_conns * weight:
                tied = [owner.buckets[conns]]
                best_conns, best_weight = conns, weight
            elif conns * best_weight == best_conns * weight:
                tied.append(owner.buckets[conns])
        self._tied = tied or None
        return tied

    def start(self, idle_after: int = 0) -> None:
        """Build the buckets when every peer allows the fast path (see the class
        docstring); :attr:`idle` is called once every peer has been idle again
        ``idle_after`` times (0: never)."""
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
        entry = [_NO_ENTRY] * len(peers)
        for i, p in enumerate(peers):
            if p.blocked_until != AVAILABLE:
                continue  # down or full
            owner = classes.get(p.weight)
            if owner is None:
                owner = classes[p.weight] = _WeightClass(p.weight)
            bucket = owner.at(p.conns)
            entry[i] = e = (-p.current_weight, i)
            bucket.heap.append(e)
            bucket.live += 1
            where[i] = bucket
        for owner in classes.values():
            owner.low = owner.lowest()
            for bucket in owner.buckets:
                heapify(bucket.heap)
        self._classes = list(classes.values())
        self._by_weight = classes
        self._where = where
        self._entry = entry
        self._tied = None
        self._held = sum(p.conns for p in peers)
        self._idle_left = idle_after
        self._fast = True

    def sync(self) -> None:
        """Write the current weights back to the peers and stop until :meth:`start`."""
        if not self._fast:
            return
        self._fast = False
        for p, bucket, e in zip(self._peers, self._where, self._entry, strict=True):
            if bucket is not None:
                p.current_weight = bucket.weight * bucket.ticks - e[0]
        self._classes = []
        self._by_weight = {}
        self._where = []
        self._entry = []
        self._tied = None


class LeastConnPicker(SmoothPicker):
    """least_conn's picker: round robin's precomputed order while every peer is idle (all
    tied at 0 connections, least_conn's step is round robin's), the buckets of
    :class:`LeastConnBuckets` once connections are held, nginx's scan otherwise.

    The precomputed order is O(1) a pick (this class is round robin's picker, with
    ``idle_only``); it ends at the first pick that finds a peer busy, and the buckets take
    over (O(n) once). Once every peer has been idle again as many times as the order is
    long (a rebuilt order costs about as many steps), the order takes over again, computed
    from the current weights. A sync of the peers (a failure, a read of the peers, an
    update...) stops either: the order is taken up again where it stopped if nothing
    changed (:class:`SmoothPicker`); otherwise nginx's scan answers, and every
    ``len(peers)`` scans the order is tried again before a first attempt, then the buckets.
    """

    __slots__ = ("_buckets", "_publish", "released")

    def __init__(
        self,
        primary: PeerGroup,
        scan: Scan,
        buckets: Callable[[PeerGroup], LeastConnBuckets] = LeastConnBuckets,
    ) -> None:
        super().__init__(primary, scan, idle_only=True)
        self._buckets = buckets(primary)
        self._buckets.idle = self._idle
        #: A connection of a peer ended (see :meth:`LeastConnBuckets.released`): the
        #: buckets' own method while they answer, so that the upstream calls it directly;
        #: None while they do not (the idle order and the scan need no telling), so that
        #: the upstream calls nothing. Set by :meth:`_buckets_start`, unset by :meth:`sync`.
        self.released: Callable[[PeerState], None] | None = None
        #: Tells the upstream which method answers a first attempt from now on (see
        #: :meth:`publish_first`); nothing until it asks.
        self._publish: Callable[[First], None] = _tell_nobody
        # decide now (round robin's picker waits for its first pick): first() takes the
        # idle order only while it is on
        self.start()

    def _first_unordered(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` while the idle order cannot answer: the buckets' answer."""
        return self._buckets.first(key, addr, now)

    def _first_busy(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        """:meth:`first` when a peer of the idle order is busy: from now on the buckets
        answer (the order is dropped: the buckets' steps are not round robin's)."""
        SmoothPicker.sync(self)
        self._drop_order()
        self._buckets_start()
        return self._buckets.first(key, addr, now)

    def _buckets_start(self) -> None:
        """Start the buckets if they allow it, and have the upstream tell them of every
        connection that ends from now on (:attr:`released`) if they do."""
        buckets = self._buckets
        buckets.start(self._group.total_weight)
        if buckets.fast:
            self.released = buckets.released
            self._publish(buckets.first)

    def _idle(self) -> None:
        """The buckets found every peer idle again (as many times as the order is long):
        the order takes over from the current weights if the peers allow it (none down:
        the buckets never call again otherwise, until they start again)."""
        if self._allows_order():
            self._buckets.sync()
            self.released = None
            self._try_fast()

    def _order_on(self) -> None:
        """The idle order answers from its current position, and the upstream calls it."""
        super()._order_on()
        self._publish(self.first)

    def publish_first(self, publish: Callable[[First], None]) -> None:
        """Call ``publish`` with the method that answers a first attempt, now and whenever
        another one takes over: the buckets' :meth:`~LeastConnBuckets.first` from the
        moment they start, this picker's :meth:`first` (the idle order) when that starts
        again. The upstream calls it directly (one call a pick, not three); while the
        buckets are stopped their method answers None, and the full path's :meth:`get`
        sorts the picker out."""
        self._publish = publish
        publish(self._buckets.first if self._buckets.fast else self.first)

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
