"""least_time's fast path: nginx's choice without rescanning every peer.

nginx (``ngx_http_upstream_get_least_time_peer``) takes the first available peer with the
least ``eta / weight`` (cross-multiplied); when others tie with it, one smooth weighted
round-robin step runs from it on among the peers that tie with the *current* best, whose
weight changes as the best does. While every tied peer has the same weight, the tie set
is exactly the peers of that weight and that ``eta``; peers of different weights tying
make the quirk matter, and nginx's scan answers.

:class:`LeastTimeBuckets` keeps the candidates in buckets, one per (weight, eta), with a
heap of bucket etas per weight: the least ``eta / weight`` is a scan over the distinct
weights, not the peers. Inside a bucket every peer gains its weight at each step, so a
member's current weight is an offset from ``weight * ticks`` and a heap of offsets gives
the winner in O(log n) (as least_conn's buckets do).

A peer's ``eta`` changes only when its connections, its averaged time, its ``checked`` or
the whole-second clock crossing one of its decay boundaries (``checked + k * (fail_timeout
+ 1)``) change; a heap of those boundaries moves each peer when its time comes. With
``inflight``, a peer with requests in flight has an estimate that moves at every scan
(nginx averages its in-flight time there): the buckets answer only while no peer has one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from lbkit.upstream import AVAILABLE, PeerGroup, PeerState, PeerTimes

__all__ = ["LeastTimeBuckets", "bucketed"]

#: Above this many milliseconds every time is equally bad (nginx's ``rt > 5000``).
RT_CAP_MS = 5000
#: Times are compared in buckets of this many milliseconds (``rt += 20 - rt % 20``).
BUCKET_MS = 20

#: Largest weight, and connection count, for which ``eta * weight`` stays below 2**64
#: (``eta <= 5020 * (1 + conns)``): nginx's unsigned products then never wrap, and the
#: buckets' exact ratios are nginx's comparisons. Beyond them nginx's scan answers.
SAFE_WEIGHT = 1 << 24
SAFE_CONNS = 1 << 26

#: nginx's estimate of a peer at a whole second: ``eta(peer, times, header, now)``.
Eta = Callable[[PeerState, PeerTimes, bool, int], int]


def bucketed(rt: int) -> int:
    """nginx's 20 ms bucket of a time, capped (``0 -> 20``, ``5000 -> 5020``,
    ``5001 -> 5000``)."""
    return RT_CAP_MS if rt > RT_CAP_MS else rt + BUCKET_MS - rt % BUCKET_MS


class _Bucket:
    """The candidates of one weight with one ``eta``.

    A member's current weight is its offset (``LeastTimeBuckets._offset``) plus
    ``weight * ticks``. ``heap`` holds ``(-offset, index, seq)``: the largest current
    weight, then the first in configuration order, on top; entries whose ``seq`` is no
    longer the peer's are stale (the peer moved) and skipped.
    """

    __slots__ = ("eta", "heap", "live", "ticks", "weight")

    def __init__(self, weight: int, eta: int) -> None:
        self.weight = weight
        self.eta = eta
        self.ticks = 0
        self.live = 0
        self.heap: list[tuple[int, int, int]] = []


class _WeightClass:
    """The candidates of one weight, by ``eta``; ``etas`` is a heap of the buckets' etas
    (an eta with no bucket any more is stale)."""

    __slots__ = ("buckets", "etas", "weight")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.buckets: dict[int, _Bucket] = {}
        self.etas: list[int] = []

    def low(self) -> _Bucket:
        """The bucket of the least eta (the class has one)."""
        etas = self.etas
        buckets = self.buckets
        while etas[0] not in buckets:
            heapq.heappop(etas)
        return buckets[etas[0]]


class LeastTimeBuckets:
    """least_time's fast path: nginx's choice for a first attempt in
    O(distinct weights + log n).

    It runs while every peer of the primary group is down (never a candidate), full
    (``max_conns`` reached: out of the buckets until one of its connections ends) or
    available with no time limit (not failed), each at full effective weight and not
    ramping up. Then only picks, the ends of attempts (:meth:`retimed`) and the clock
    change the candidates. Anything else is preceded by :meth:`sync`, which writes the
    current weights back to the peers and stops it until :meth:`start`.
    """

    __slots__ = (
        "_best",
        "_by_weight",
        "_classes",
        "_due",
        "_eta",
        "_fast",
        "_flying",
        "_group",
        "_header",
        "_in_flight",
        "_inflight",
        "_now",
        "_offset",
        "_peers",
        "_pending",
        "_schedule",
        "_seq",
        "_where",
    )

    def __init__(self, primary: PeerGroup, header: bool, inflight: bool, eta: Eta) -> None:
        self._group = primary
        self._peers = primary.peers
        self._header = header
        self._inflight = inflight
        self._eta = eta
        self._fast = False
        self._now = 0
        self._classes: list[_WeightClass] = []
        self._by_weight: dict[int, _WeightClass] = {}
        #: The bucket of the least ``eta / weight`` while known to be one alone (None:
        #: to be found again by :meth:`_least`).
        self._best: _Bucket | None = None
        self._where: list[_Bucket | None] = []
        self._offset: list[int] = []
        self._seq: list[int] = []
        #: Whether each peer has requests in flight (``inflight``), and how many do.
        self._flying: list[bool] = []
        self._in_flight = 0
        #: Peers taken (out of the buckets) that the next pick puts back unless their end
        #: does it first: a pick and its end then move a peer once, not twice.
        self._pending: list[int] = []
        #: ``(second, index)`` of each peer's next decay boundary that changes its eta;
        #: an entry whose second is no longer the peer's ``_due`` is stale.
        self._schedule: list[tuple[int, int]] = []
        self._due: list[int | None] = []

    @property
    def fast(self) -> bool:
        """Whether the buckets answer (False: until :meth:`start`)."""
        return self._fast

    def take(self, now: int, seconds: float) -> PeerState | None:
        """nginx's choice for a first attempt from the primary group at whole second
        ``now`` (clock reading ``seconds``), taken (one more connection, ``checked``
        restarted, the in-flight account); None, having changed no peer, when nginx's
        scan must answer."""
        if not self._fast or self._in_flight:
            return None
        if now != self._now:
            if now < self._now:
                self.sync()  # the clock went back: estimates may grow again
                return None
            self._advance(now)
        if self._pending:
            self._settle()
            if not self._fast:
                return None
        tied = self._best or self._least()
        if tied is None:
            return None  # every peer out, or weights tied: nginx's quirky pass
        seq = self._seq
        heap = tied.heap
        while heap[0][2] != seq[heap[0][1]]:
            heapq.heappop(heap)
        weight = tied.weight
        if tied.live > 1:
            tied.ticks += 1
            total = weight * tied.live
        else:
            total = 0  # nginx's single best changes no weight
        index = heap[0][1]
        cw = self._remove(index, tied) - total
        peer = self._peers[index]
        # take_peer() for a peer available with no time limit
        peer.conns += 1
        server = peer.server
        if now - peer.checked > server.fail_timeout:
            peer.checked = now
        if server.max_conns:
            peer.refresh()
        # out of the buckets, its current weight on the peer, until its end (retimed) or
        # the next pick (_settle) puts it back where its estimate is then
        peer.current_weight = cw
        if self._inflight:
            times = peer.extra.times  # type: ignore[union-attr]  # bound: every peer has times
            assert times is not None
            # (no request was in flight: nothing to add up)
            times.inflight_reqs_changed = int(seconds * 1000)
            times.inflight_reqs = 1
            self._flying[index] = True
            self._in_flight += 1
        else:
            self._pending.append(index)
        return peer

    def _settle(self) -> None:
        """Put back the peers taken since the last pick and not ended since (their
        estimates are those of one more connection), unless full."""
        where = self._where
        peers = self._peers
        header = self._header
        now = self._now
        pending = self._pending
        self._pending = []
        for index in pending:
            peer = peers[index]
            if where[index] is not None or peer.blocked_until != AVAILABLE:
                continue  # put back already, or full (out until a connection ends)
            if peer.conns >= SAFE_CONNS:
                self.sync()
                return
            eta = self._eta(peer, peer.extra.times, header, now)  # type: ignore[union-attr,arg-type]
            self._insert(index, peer.weight, eta, peer.current_weight)
            self._plan(index, peer)

    def _least(self) -> _Bucket | None:
        """The bucket of the least ``eta / weight`` over every weight; None when there is
        none, or when buckets of different weights tie (then nginx's tie pass compares
        with the weight of a best that changes: its scan answers)."""
        found: _Bucket | None = None
        tie = False
        for cls in self._classes:
            bucket = cls.low()
            if found is None:
                found = bucket
                continue
            mine = bucket.eta * found.weight
            theirs = found.eta * bucket.weight
            if mine < theirs:
                found, tie = bucket, False
            elif mine == theirs:
                tie = True
        if tie:
            return None
        self._best = found
        return found

    def retimed(self, state: PeerState) -> None:
        """``state``'s estimate may have changed outside a pick (an attempt ended without
        a failure, was given back, or its header arrived): move it to its bucket."""
        if not self._fast:
            return
        index = state.index
        peers = self._peers
        if index >= len(peers) or peers[index] is not state:
            return  # not a candidate of this group (a backup, an older membership's)
        times = state.extra.times  # type: ignore[union-attr]  # bound: every peer has times
        assert times is not None
        if self._flying[index]:
            if times.inflight_reqs:
                return  # still in flight
            self._flying[index] = False
            self._in_flight -= 1
        elif times.inflight_reqs:  # pragma: no cover - only picks put peers in flight
            self.sync()
            return
        if state.down:
            return
        bucket = self._where[index]
        if state.blocked_until != AVAILABLE:
            if not state.is_full():
                self.sync()  # out for a time (cannot happen without a failure, which syncs)
            return
        if state.conns >= SAFE_CONNS:  # pragma: no cover - 67 million connections
            self.sync()
            return
        eta = self._eta(state, times, self._header, self._now)
        pending = self._pending
        if pending and pending[-1] == index:
            pending.pop()  # (the end of the last pick: put back here, not by the next pick)
        if bucket is None:  # taken since the last pick, no longer full, back from flight
            self._insert(index, state.weight, eta, state.current_weight)
        elif bucket.eta != eta:
            self._insert(index, bucket.weight, eta, self._remove(index, bucket))
        self._plan(index, state)  # (its time may have changed, if not its bucket)

    def _advance(self, now: int) -> None:
        """Move the peers whose decay boundary ``now`` reached (``now`` >= the last)."""
        schedule = self._schedule
        due = self._due
        where = self._where
        peers = self._peers
        self._now = now
        while schedule and schedule[0][0] <= now:
            second, index = heapq.heappop(schedule)
            bucket = where[index]
            if due[index] != second or bucket is None:
                continue
            peer = peers[index]
            eta = self._eta(peer, peer.extra.times, self._header, now)  # type: ignore[union-attr,arg-type]
            if eta != bucket.eta:
                self._insert(index, bucket.weight, eta, self._remove(index, bucket))
            self._plan(index, peer)

    def _plan(self, index: int, peer: PeerState) -> None:
        """Schedule the next second at which peer ``index``'s decayed time changes bucket
        (none if it never does): its time halves once per ``fail_timeout + 1`` idle
        seconds, the count of halvings taken mod 64 as nginx's shift does."""
        times = peer.extra.times  # type: ignore[union-attr]
        assert times is not None
        rt = times.header_time if self._header else times.response_time
        if rt < BUCKET_MS:
            self._due[index] = None  # every halving of it is in the first bucket too
            return
        period = peer.server.fail_timeout + 1
        checked = peer.checked
        idle = self._now - checked
        k = idle // period if idle > 0 else 0
        shifted = rt >> (k & 63)
        if shifted < BUCKET_MS:
            # halved into the first bucket: it stays there until the shift count wraps
            step = (k | 63) + 1
        else:
            now_bucket = bucketed(shifted)
            step = k + 1
            while bucketed(rt >> (step & 63)) == now_bucket:
                step += 1  # (few steps: until the halvings leave the capped bucket)
                if step > k + 64:
                    self._due[index] = None  # every halving is capped (rt >= 5001 << 63)
                    return
        second = checked + step * period
        if self._due[index] != second:
            self._due[index] = second
            schedule = self._schedule
            heapq.heappush(schedule, (second, index))
            if len(schedule) > 2 * len(self._peers) + 8:
                self._compact_schedule()

    def _compact_schedule(self) -> None:
        """Drop the stale boundaries (the heap holds at most one live entry per peer)."""
        due = self._due
        self._schedule = [e for e in self._schedule if due[e[1]] == e[0]]
        heapq.heapify(self._schedule)

    def _remove(self, index: int, bucket: _Bucket) -> int:
        """Take peer ``index`` out of ``bucket`` (its heap entry is left stale); its
        current weight."""
        weight = bucket.weight
        cw = self._offset[index] + weight * bucket.ticks
        self._seq[index] += 1
        self._where[index] = None
        bucket.live -= 1
        if not bucket.live:
            if bucket is self._best:
                self._best = None
            cls = self._by_weight[weight]
            buckets = cls.buckets
            del buckets[bucket.eta]
            if not buckets:
                del self._by_weight[weight]
                self._classes.remove(cls)
            elif len(cls.etas) > 2 * len(buckets) + 8:
                cls.etas = list(buckets)
                heapq.heapify(cls.etas)
        elif len(bucket.heap) > 2 * bucket.live + 8:
            seq = self._seq
            bucket.heap = [e for e in bucket.heap if e[2] == seq[e[1]]]
            heapq.heapify(bucket.heap)
        return cw

    def _insert(self, index: int, weight: int, eta: int, cw: int) -> None:
        """Put peer ``index`` into its weight's bucket of ``eta``, with current weight
        ``cw``."""
        cls = self._by_weight.get(weight)
        if cls is None:
            cls = self._by_weight[weight] = _WeightClass(weight)
            self._classes.append(cls)
        buckets = cls.buckets
        target = buckets.get(eta)
        if target is None:
            target = buckets[eta] = _Bucket(weight, eta)
            heapq.heappush(cls.etas, eta)
        best = self._best
        if best is not None and target is not best:
            mine = eta * best.weight
            theirs = best.eta * weight
            if mine < theirs:
                self._best = target
            elif mine == theirs:
                self._best = None  # tied with another weight: _least() finds out
        off = cw - weight * target.ticks
        self._offset[index] = off
        heapq.heappush(target.heap, (-off, index, self._seq[index]))
        target.live += 1
        self._where[index] = target

    def start(self, now: int) -> None:
        """Build the buckets at whole second ``now`` when every peer allows the fast path
        (see the class docstring)."""
        group = self._group
        peers = group.peers
        if group.single or not peers:
            return
        for p in peers:
            if p.down:
                continue
            if (
                p.effective_weight != p.weight
                or p.ramp_start is not None
                or p.weight > SAFE_WEIGHT
                or p.conns >= SAFE_CONNS
            ):
                return
            if p.blocked_until != AVAILABLE and not (
                p.is_full() and not (p.max_fails and p.fails >= p.max_fails)
            ):
                return
        count = len(peers)
        self._classes = []
        self._by_weight = {}
        self._best = None
        self._where = [None] * count
        self._offset = [0] * count
        self._seq = [0] * count
        self._due = [None] * count
        self._schedule = []
        self._now = now
        flying = [False] * count
        in_flight = 0
        header = self._header
        for i, p in enumerate(peers):
            times = p.times
            assert times is not None
            if times.inflight_reqs:
                flying[i] = True
                in_flight += 1
                continue
            if p.blocked_until != AVAILABLE:
                continue  # down or full
            self._insert(i, p.weight, self._eta(p, times, header, now), p.current_weight)
            self._plan(i, p)
        self._flying = flying
        self._in_flight = in_flight
        self._pending = []
        self._fast = True

    def sync(self) -> None:
        """Write the current weights back to the peers and stop until :meth:`start`."""
        if not self._fast:
            return
        self._fast = False
        for p, bucket, off in zip(self._peers, self._where, self._offset, strict=True):
            if bucket is not None:
                p.current_weight = off + bucket.weight * bucket.ticks
        self._classes = []
        self._by_weight = {}
        self._best = None
        self._where = []
        self._offset = []
        self._seq = []
        self._flying = []
        self._in_flight = 0
        self._pending = []
        self._schedule = []
        self._due = []
