"""nginx's ``least_time header|last_byte [inflight]`` (open source since nginx 1.31), exactly.

The rules, read in ``ngx_http_upstream_least_time_module.c`` and written out in
tests/golden/README.md, are checked against choices recorded from nginx 1.31.5:

- each peer keeps averages (:func:`~lbkit.upstream.response_time_avg`, integer ms) of the
  times to the response header and to the last byte of its successful attempts;
- a request goes to the peer with the least ``eta * weight`` cross-multiplied, where
  ``eta`` is the peer's time (halved once per ``fail_timeout + 1`` idle seconds, raised to
  its running requests' time with ``inflight``, put in 20 ms buckets, capped at 5000 ms)
  times ``1 + conns``; ties go to smooth weighted round robin from the first of them;
- a sticky hint that names a usable peer wins at once, with no weight update.

Passive health, tries, ``down``/drain, ``max_conns`` and backups are the model's
(:mod:`lbkit.upstream`), shared with the other methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar, Literal

import attrs

from lbkit.balancers._least_time_buckets import LeastTimeBuckets, bucketed
from lbkit.balancers._round_robin import switch_to_backup
from lbkit.errors import ConfigError
from lbkit.upstream import (
    MSEC_MASK,
    MSEC_MAX,
    AttemptOutcome,
    PeerGroup,
    PeerState,
    PeerTimes,
    RequestState,
    TimedPeer,
    response_time_avg,
    take_peer,
    take_single_peer,
)

__all__ = ["LeastTime", "LeastTimeMode", "StickyLookup", "eta"]

LeastTimeMode = Literal["header", "last_byte"]

#: Finds the peer a request's sticky hint names in its current group, if usable.
StickyLookup = Callable[[RequestState, int], PeerState | None]


def eta(peer: PeerState, times: PeerTimes, header: bool, now: int) -> int:
    """nginx's ``ngx_http_upstream_least_time_eta``: the peer's time (``header_time`` in
    header mode, else ``response_time``), decayed, raised to the in-flight time, bucketed,
    times ``1 + conns``. ``now`` is whole seconds."""
    rt = times.header_time if header else times.response_time
    idle = now - peer.checked
    if idle > peer.fail_timeout:
        # halves once per fail_timeout + 1 idle seconds; C's 64-bit shift counts mod 64 (x86)
        rt >>= (idle // (peer.fail_timeout + 1)) & 63
    if times.inflight_reqs > 0 and times.inflight_time > rt:
        rt = times.inflight_time
    return bucketed(rt) * (1 + peer.conns)


def _no_first_timed(now: int, seconds: float) -> None:
    """``first_timed`` with sticky hints: always the full path."""


def _msec(seconds: float) -> int:
    return round(seconds * 1000)


class _LeastTimePicker:
    """Runtime side of :class:`LeastTime`: nginx's ``get``, ``notify`` and ``free``.

    A request's first attempt from the primary group is answered by the buckets of
    :class:`~lbkit.balancers._least_time_buckets.LeastTimeBuckets` while they run (no
    sticky hints); anything else, or a pick they cannot answer, by nginx's scan, after
    :meth:`sync`. Every ``len(peers)`` scans the buckets are tried again.
    """

    __slots__ = (
        "_buckets",
        "_clock",
        "_countdown",
        "_group",
        "_header",
        "_hints",
        "_inflight",
        "_notify",
        "first_timed",
        "released",
    )

    #: :meth:`begin` does nothing: the upstream may skip it.
    begins = False

    def __init__(
        self,
        method: LeastTime,
        primary: PeerGroup,
        buckets: type[LeastTimeBuckets] = LeastTimeBuckets,
    ) -> None:
        self._header = method.mode == "header"
        self._inflight = method.inflight
        # nginx installs its notify handler only with ``inflight``; it acts in header mode
        self._notify = method.inflight and self._header
        self._clock: Callable[[], float] = time.monotonic
        self._hints: StickyLookup | None = None
        self._group = primary
        self._buckets = buckets(primary, self._header, self._inflight, eta)
        #: Scans left before the buckets are tried again (the first scan tries them).
        self._countdown = 0
        #: A peer's connections or times changed outside a pick (see
        #: :meth:`LeastTimeBuckets.retimed`): the buckets' method while they answer, so
        #: that the upstream calls it at each end of an attempt; None while they do not.
        self.released: Callable[[PeerState], None] | None = None
        #: The answer for the first attempt of a plain pick (no request state), taken, at
        #: whole second ``now`` and clock reading ``seconds``; None for the full path:
        #: the buckets' own method (see :meth:`LeastTimeBuckets.take`) without sticky
        #: hints, so that the upstream calls it directly.
        self.first_timed: Callable[[int, float], PeerState | None] = self._buckets.take
        group: PeerGroup | None = primary
        while group is not None:
            for peer in group.peers:
                if peer.times is None:
                    peer.times = PeerTimes()
            group = group.backup

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use the upstream's clock (seconds) for nginx's millisecond clock."""
        self._clock = clock

    def use_hints(self, lookup: StickyLookup) -> None:
        """Look sticky hints up in each group before choosing (nginx's ``SID`` path)."""
        self._hints = lookup
        self.first_timed = _no_first_timed  # (a hint is looked up before anything else)

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare for least_time."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_least_time_peer``, with the backup fallback."""
        seconds = self._clock()
        now_ms = int(seconds * 1000)
        if request.tried == 0 and request.group is self._group and self._hints is None:
            peer = self._buckets.take(now, seconds)
            if peer is not None:
                request.tried = 1 << peer.index
                return peer
        self.sync()
        peer = self._scan(request, now, now_ms)
        self._countdown -= 1
        if self._countdown <= 0:
            self.start(now)
        return peer

    def start(self, now: int) -> None:
        """Try the buckets (at whole second ``now``) and count the scans down again."""
        self._countdown = len(self._group.peers)
        if self._hints is not None:
            return  # the buckets never answer a sticky upstream
        buckets = self._buckets
        buckets.start(now)
        if buckets.fast:
            self.released = buckets.retimed

    def sync(self) -> None:
        """Write the buckets' current weights back to the peers and return to the scan."""
        self._buckets.sync()
        self.released = None

    def _scan(self, request: RequestState, now: int, now_ms: int) -> PeerState | None:
        """nginx's scan of the request's group, then of the backups."""
        while True:
            group = request.group
            if group.single:
                return self._single(request, group.peers[0], now)
            peer = self._choose(request, group, now, now_ms)
            if peer is not None:
                return peer
            if not switch_to_backup(request):
                return None

    def _single(self, request: RequestState, peer: PeerState, now: int) -> PeerState | None:
        # round robin's one-peer path: no passive health, no in-flight account; a sticky
        # hint naming the peer reaches it even when it is drained
        if self._hints is not None and self._hints(request, now) is peer:
            peer.conns += 1
            peer.refresh()
            return peer
        return take_single_peer(peer)

    def _choose(
        self, request: RequestState, group: PeerGroup, now: int, now_ms: int
    ) -> PeerState | None:
        best = self._hints(request, now) if self._hints is not None else None
        if best is None:
            best = self._least(request, group, now, now_ms)
            if best is None:
                return None
        if self._inflight:
            times = best.times
            assert times is not None
            if times.inflight_reqs > 0:
                times.inflight_last = (
                    times.inflight_last
                    + (now_ms - times.inflight_reqs_changed) * times.inflight_reqs
                ) & MSEC_MASK
            times.inflight_reqs_changed = now_ms
            times.inflight_reqs += 1
        return take_peer(request, best, now)

    def _least(
        self, request: RequestState, group: PeerGroup, now: int, now_ms: int
    ) -> PeerState | None:
        """The peer with the least ``eta / weight``; ties by smooth weighted round robin."""
        header = self._header
        tried = request.tried
        # the usable peers with their estimates, in order: nginx's tie pass walks the same
        # peers from the best one on, recomputing the same estimates
        candidates: list[tuple[PeerState, int]] = []
        best: PeerState | None = None
        best_eta = 0
        best_at = 0
        many = False
        for peer in group.peers:
            if tried >> peer.index & 1 or peer.blocked_until >= now:  # see PeerState.refresh
                continue
            extra = peer.extra  # (peer.times without a property call: this loop is hot)
            times = None if extra is None else extra.times
            assert times is not None
            if times.inflight_reqs > 0:
                ift = (
                    times.inflight_last // times.inflight_reqs
                    + now_ms
                    - times.inflight_reqs_changed
                ) & MSEC_MASK
                times.inflight_time = response_time_avg(times.inflight_time, ift)
            e = eta(peer, times, header, now)
            candidates.append((peer, e))
            if best is None:
                best, best_eta, many = peer, e, False
                continue
            # eta_a / weight_a < eta_b / weight_b without division, in unsigned 64 bits
            mine = e * best.weight & MSEC_MASK
            theirs = best_eta * peer.weight & MSEC_MASK
            if mine < theirs:
                best, best_eta, best_at, many = peer, e, len(candidates) - 1, False
            elif mine == theirs:
                many = True
        if best is None or not many:
            return best
        # nginx compares with the *current* best's weight as best changes: keep that
        total = 0
        for peer, e in candidates[best_at:]:
            if e * best.weight & MSEC_MASK != best_eta * peer.weight & MSEC_MASK:
                continue
            peer.current_weight += peer.effective_weight
            total += peer.effective_weight
            if peer.effective_weight < peer.weight:
                peer.effective_weight += 1
            if peer.current_weight > best.current_weight:
                best = peer
        best.current_weight -= total
        return best

    # -- timing of attempts (called by the upstream, under its lock) -------------------

    def attempt_started(self, peer: TimedPeer) -> None:
        """Remember when the attempt started and whether it counts as in flight."""
        peer.started = self._clock()
        # in-flight accounting happened in _choose: not on the single-peer path
        # (a peer picked without request state comes from a group of several)
        request = peer.request
        peer.in_flight = self._inflight and (request is None or not request.group.single)

    def _elapsed_ms(self, peer: TimedPeer, now_ms: int) -> int:
        return (now_ms - int(peer.started * 1000)) & MSEC_MASK

    def header_arrived(self, peer: TimedPeer, elapsed: float | None) -> None:
        """nginx's notify HEADER: with ``header inflight``, average the header time now and
        take the attempt out of the in-flight account."""
        now_ms = int(self._clock() * 1000)
        header_ms = self._elapsed_ms(peer, now_ms) if elapsed is None else _msec(elapsed)
        peer.header_ms = header_ms
        self._notified(peer, header_ms, now_ms)
        released = self.released
        if released is not None and self._notify:
            released(peer.state)  # its header time and in-flight account changed

    def _notified(self, peer: TimedPeer, header_ms: int, now_ms: int) -> None:
        if not self._notify:
            return
        times = peer.state.times
        assert times is not None
        times.header_time = response_time_avg(times.header_time, header_ms)
        if peer.in_flight:
            _inflight_done(times, header_ms, now_ms)
            peer.in_flight = False

    def attempt_ended(
        self,
        peer: TimedPeer,
        outcome: AttemptOutcome,
        elapsed: float | None,
        header_time: float | None,
    ) -> None:
        """nginx's ``ngx_http_upstream_free_least_time_peer`` (the model then releases the
        peer as round robin does)."""
        now_ms = int(self._clock() * 1000)
        response_ms = (
            (now_ms - int(peer.started * 1000)) & MSEC_MASK  # _elapsed_ms() inline
            if elapsed is None
            else round(elapsed * 1000)  # _msec() inline
        )
        extra = peer.state.extra
        times = None if extra is None else extra.times
        if times is None:  # pragma: no cover - every peer of a bound group has times
            return
        if outcome == "ok" and peer.header_ms is None:
            # a success had a header: nginx notified it before the end
            peer.header_ms = response_ms if header_time is None else _msec(header_time)
            if self._notify:
                self._notified(peer, peer.header_ms, now_ms)
        if peer.in_flight:
            # a failed or passed-on attempt is freed before nginx sets its response time:
            # it leaves the in-flight account with (ngx_msec_t) -1 as its time
            last = response_ms if outcome in ("ok", "abandoned") else MSEC_MAX
            _inflight_done(times, last, now_ms)
            peer.in_flight = False
        if outcome != "ok":
            # only successes are averaged (and an abandoned attempt is no measurement)
            return
        header_ms = peer.header_ms
        assert header_ms is not None
        times.response_time = response_time_avg(times.response_time, response_ms)
        if not self._notify:
            times.header_time = response_time_avg(times.header_time, header_ms)


def _inflight_done(times: PeerTimes, last: int, now_ms: int) -> None:
    """nginx's ``ngx_http_upstream_least_time_inflight_done``."""
    if times.inflight_reqs == 1:
        times.inflight_last = 0
    else:
        times.inflight_last = (
            times.inflight_last
            + (now_ms - times.inflight_reqs_changed) * times.inflight_reqs
            - last
        ) & MSEC_MASK
        times.inflight_reqs_changed = now_ms
    times.inflight_reqs -= 1


def _check_mode(_: object, __: object, mode: object) -> None:
    if mode not in ("header", "last_byte"):
        raise ConfigError(f"invalid least_time mode {mode!r}: expected 'header' or 'last_byte'")


def _check_flag(_: object, __: object, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"invalid least_time inflight={value!r}: expected True or False")


@attrs.frozen(slots=True)
class LeastTime:
    """nginx's ``least_time header|last_byte [inflight]``: the least average time to the
    response header (``mode="header"``) or to its last byte (``"last_byte"``), times
    ``1 + conns``, relative to weight; ``inflight=True`` also counts the time of requests
    still running. Report times with :meth:`~lbkit.Upstream.done` (``elapsed``,
    ``header_time``) and :meth:`~lbkit.Upstream.header`, or let the upstream measure them.
    """

    kind: ClassVar[Literal["least_time"]] = "least_time"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    mode: LeastTimeMode = attrs.field(default="header", validator=_check_mode)
    inflight: bool = attrs.field(default=False, validator=_check_flag)

    def bind(self, primary: PeerGroup) -> _LeastTimePicker:
        """A picker over ``primary`` (and its backups); peers get their time state."""
        return _LeastTimePicker(self, primary)
