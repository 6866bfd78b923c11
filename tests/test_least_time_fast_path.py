"""least_time's fast path (its buckets, the request-free pick) chooses exactly what nginx's
scan chooses.

The reference is the line-by-line transcription of nginx's C code in
tests/least_time_reference.py. An upstream and the reference get the same random servers
(weights, max_fails, fail_timeout, max_conns, down, backups) and the same random run of
plain picks, attempts loops, header reports, successes with random times, failures,
passes to the next peer, give-backs, drains and clock steps (some long enough to decay the
averages, some past 64 halvings); after every step the chosen peers and every peer and
time field must agree. The fields are read without stopping the fast path (a read of
``Upstream.peers`` writes the buckets back and returns to the scan), except in the
``read`` step. Deliberately broken buckets must make the property fail (the last tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit import NoLiveUpstreams, Server, TriesExhausted, Upstream
from lbkit.balancers import LeastTime
from lbkit.balancers._least_time import _LeastTimePicker
from lbkit.balancers._least_time_buckets import LeastTimeBuckets
from lbkit.upstream import PeerGroup, PeerState
from tests.least_time_reference import (
    NGX_PEER_FAILED,
    NGX_PEER_NEXT,
    U64,
    RefLeastTime,
    RefPeer,
    RefRequest,
)
from tests.test_least_time import _FIELDS, _TIME_FIELDS, Clock


@attrs.frozen
class WithBuckets:
    """``LeastTime`` whose picker runs the buckets ``buckets`` (broken ones in tests)."""

    inner: LeastTime
    buckets: type[LeastTimeBuckets]

    kind = "least_time"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> _LeastTimePicker:
        return _LeastTimePicker(self.inner, primary, self.buckets)


def current_weights(up: Upstream) -> list[int]:
    """Every peer's current weight, primaries then backups, as nginx would hold it, read
    without stopping the buckets (which keep the primaries' as offsets while they run)."""
    members = up._members
    primary = members.primary
    peers = primary.peers + (primary.backup.peers if primary.backup else [])
    weights = [p.current_weight for p in peers]
    picker = members.picker
    buckets = picker._buckets if isinstance(picker, _LeastTimePicker) else None
    if buckets is not None and buckets.fast:
        for i, bucket in enumerate(buckets._where):
            if bucket is not None:
                weights[i] = buckets._offset[i] + bucket.weight * bucket.ticks
    return weights


def all_peers(up: Upstream) -> list[PeerState]:
    primary = up._members.primary
    return primary.peers + (primary.backup.peers if primary.backup else [])


server_st = st.fixed_dictionaries(
    {
        "weight": st.sampled_from([1, 1, 2, 3]),
        "max_fails": st.sampled_from([0, 0, 1, 2]),
        "fail_timeout": st.integers(0, 3),
        "max_conns": st.sampled_from([0, 0, 0, 1, 2]),
        "down": st.sampled_from([False] * 6 + [True]),
    }
)
#: Milliseconds a response takes: several land in one 20 ms bucket, so peers often tie.
ms_st = st.sampled_from([0, 3, 15, 25, 38, 45, 90, 130, 700, 5000, 5001, 9000])
op_st = st.one_of(
    st.tuples(st.just("pick"), st.booleans(), ms_st, ms_st),
    st.tuples(st.just("pick"), st.just(False), ms_st, ms_st),
    st.tuples(st.just("start")),
    st.tuples(st.just("header"), st.integers(0, 7), st.none() | ms_st),
    st.tuples(
        st.just("end"),
        st.integers(0, 7),
        st.sampled_from(["ok", "ok", "ok", "failed", "next"]),
        st.none() | ms_st,
        st.none() | ms_st,
    ),
    st.tuples(st.just("abandon"), st.integers(0, 7)),
    st.tuples(
        st.just("tick"),
        st.sampled_from([0, 1, 7, 400, 999, 1000, 1001, 2500, 4000, 9000, 200_000, 700_000]),
    ),
    st.tuples(st.just("drain"), st.integers(0, 7)),
    st.tuples(st.just("read")),
)


def check_equals_nginx(
    primary: list[dict[str, Any]],
    backup: list[dict[str, Any]],
    header: bool,
    inflight: bool,
    ops: list[tuple[Any, ...]],
    buckets: type[LeastTimeBuckets] = LeastTimeBuckets,
) -> None:
    """Replay ``ops`` on an upstream and on the transcription; all must agree."""
    clock = Clock(5_000_000)
    names = [f"p{i}:1" for i in range(len(primary))] + [f"b{i}:1" for i in range(len(backup))]
    specs = primary + backup
    servers = [
        Server(name, backup=i >= len(primary), **spec)
        for i, (name, spec) in enumerate(zip(names, specs, strict=True))
    ]
    method = LeastTime("header" if header else "last_byte", inflight=inflight)
    up = Upstream(servers, WithBuckets(method, buckets), clock=clock)  # type: ignore[arg-type]
    refs = [RefPeer(name, **spec) for name, spec in zip(names, specs, strict=True)]
    ref = RefLeastTime(refs[: len(primary)], refs[len(primary) :], header, inflight)
    # running attempts: lbkit's iterator (None: a plain pick) and peer, the reference's
    # request, start, header
    running: list[tuple[Any, lbkit.Peer, RefRequest, int, int | None]] = []

    def now() -> tuple[int, int]:
        return clock.ms // 1000, clock.ms

    def chosen(take: Callable[[], lbkit.Peer], request: RefRequest) -> lbkit.Peer | None:
        s, ms = now()
        try:
            peer = take()
        except NoLiveUpstreams:
            assert ref.get(request, s, ms) is None
            return None
        theirs = ref.get(request, s, ms)
        assert theirs is not None
        assert theirs.name == peer.name
        return peer

    def next_attempt(it: Any, request: RefRequest) -> None:
        if request.tries == 0:
            with pytest.raises((TriesExhausted, StopIteration)):
                next(it)
            return
        peer = chosen(lambda: next(it), request)
        if peer is not None:
            running.append((it, peer, request, clock.ms, None))

    def end(k: int, outcome: str, elapsed: int | None, given_header: int | None) -> None:
        s, ms = now()
        it, peer, request, started, header_ms = running.pop(k)
        r = ms - started if elapsed is None else elapsed
        e = None if elapsed is None else r / 1000
        if outcome == "ok":
            h_given = None
            if header_ms is None:
                header_ms = r if given_header is None else given_header
                h_given = None if given_header is None else header_ms / 1000
                ref.notify_header(request, header_ms, ms)
            up.done(peer, elapsed=e, header_time=h_given)
            ref.free(request, 0, header_ms, r, s, ms)
            return
        up.done(peer, failed=outcome == "failed", retry=outcome == "next", elapsed=e)
        state = NGX_PEER_FAILED if outcome == "failed" else NGX_PEER_NEXT
        ref.free(request, state, U64, U64, s, ms)
        if it is not None:
            next_attempt(it, request)

    for op in ops:
        ms = clock.ms
        kind = op[0]
        if kind == "pick":
            request = ref.init_peer()
            peer = chosen(up.pick, request)
            if peer is not None:
                running.append((None, peer, request, ms, None))
                if not op[1]:
                    end(len(running) - 1, "ok", op[2] + op[3], op[2])
        elif kind == "start":
            it = up.attempts()
            request = ref.init_peer()
            peer = chosen(lambda it=it: next(it), request)  # type: ignore[misc]
            if peer is not None:
                running.append((it, peer, request, ms, None))
        elif kind == "drain":
            drained = refs[op[1] % len(refs)]
            up.drain(drained.name)
            drained.down = 8  # nginx's drain: down = NGX_HTTP_UPSTREAM_DRAINING
        elif kind == "tick":
            clock.ms += op[1]
        elif kind == "read":
            assert [p.current_weight for p in up.peers] == [r.current_weight for r in refs]
        elif running:
            k = op[1] % len(running)
            it, peer, request, started, header_ms = running[k]
            if kind == "header":
                if header_ms is not None:
                    continue
                h = ms - started if op[2] is None else op[2]
                up.header(peer, None if op[2] is None else h / 1000)
                ref.notify_header(request, h, ms)
                running[k] = (it, peer, request, started, h)
            elif kind == "abandon":
                del running[k]
                up.give_back(peer)
                if request.inflight:
                    assert request.current is not None
                    ref.inflight_done(request, request.current, ms - started, ms)
                assert request.current is not None
                request.current.conns -= 1
            else:
                end(k, op[2], op[3], op[4])
        peers = all_peers(up)
        assert current_weights(up) == [r.current_weight for r in refs]
        for mine, theirs in zip(peers, refs, strict=True):
            assert mine.times is not None
            assert [getattr(mine, f) for f in _FIELDS if f != "current_weight"] == [
                getattr(theirs, f) for f in _FIELDS if f != "current_weight"
            ], mine.name
            assert [getattr(mine.times, f) for f in _TIME_FIELDS] == [
                getattr(theirs, f) for f in _TIME_FIELDS
            ], mine.name


scenario = {
    "primary": st.lists(server_st, min_size=2, max_size=6),
    "backup": st.lists(server_st, max_size=2),
    "header": st.booleans(),
    "inflight": st.booleans(),
    "ops": st.lists(op_st, max_size=80),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**scenario)
def test_fast_path_equals_a_transcription_of_nginxs_c_code(
    primary: list[dict[str, Any]],
    backup: list[dict[str, Any]],
    header: bool,
    inflight: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    check_equals_nginx(primary, backup, header, inflight, ops)


#: Many peers of a few weights, all healthy: the buckets answer nearly every pick, with
#: ties inside a bucket, connections held and times decaying.
busy_scenario = {
    "primary": st.lists(
        st.fixed_dictionaries(
            {
                "weight": st.sampled_from([1, 2, 2, 3]),
                "max_fails": st.just(0),
                "fail_timeout": st.integers(0, 2),
                "max_conns": st.sampled_from([0, 0, 0, 0, 2]),
                "down": st.sampled_from([False] * 9 + [True]),
            }
        ),
        min_size=2,
        max_size=12,
    ),
    "backup": st.just([]),
    "header": st.booleans(),
    "inflight": st.booleans(),
    "ops": st.lists(
        st.one_of(
            st.tuples(st.just("pick"), st.booleans(), ms_st, ms_st),
            st.tuples(st.just("pick"), st.just(False), ms_st, ms_st),
            st.tuples(st.just("end"), st.integers(0, 7), st.just("ok"), ms_st, ms_st),
            st.tuples(st.just("header"), st.integers(0, 7), ms_st),
            st.tuples(st.just("tick"), st.sampled_from([0, 1000, 2000, 3000, 130_000])),
        ),
        min_size=10,
        max_size=100,
    ),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**busy_scenario)
def test_fast_path_with_healthy_peers_equals_nginx(
    primary: list[dict[str, Any]],
    backup: list[dict[str, Any]],
    header: bool,
    inflight: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    check_equals_nginx(primary, backup, header, inflight, ops)


def test_the_buckets_answer_picks_while_peers_are_healthy() -> None:
    """The fast path is what answers a healthy upstream's picks (not the scan after a
    sync at each pick): the buckets run from the second pick on."""
    clock = Clock()
    servers = [Server(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(10)]
    up = Upstream(servers, LeastTime(), clock=clock)
    picker = up._members.picker
    assert isinstance(picker, _LeastTimePicker)
    up.done(up.pick(), elapsed=0.01)
    for _ in range(30):
        up.done(up.pick(), elapsed=0.01)
        assert picker._buckets.fast
        clock.ms += 300


def test_plain_picks_from_16_threads_leave_nothing_counted() -> None:
    """Plain picks and their ends from 16 threads at once, some held while others pick
    (the buckets and nginx's scan alternate, with inflight): every pick is counted once,
    and no connection or request in flight stays counted."""
    servers = [Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(24)]
    rounds = 200
    for method in (LeastTime(), LeastTime("last_byte", inflight=True)):
        up = Upstream(servers, method)

        def work(seed: int, up: Upstream = up) -> None:
            held = []
            for i in range(rounds):
                held.append(up.pick())
                if (i + seed) % 3:
                    up.done(held.pop(0), elapsed=((i * seed) % 7) / 100)
            for peer in held:
                up.done(peer, elapsed=0.01)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peers = up.peers
        assert sum(p.requests for p in peers) == 16 * rounds
        assert all(p.conns == 0 for p in peers)
        assert all(p.times is not None and p.times.inflight_reqs == 0 for p in peers)


# -- the property catches wrong fast paths ----------------------------------------------


class _NoDecayBuckets(LeastTimeBuckets):
    """Broken: the estimates never decay while the buckets run."""

    __slots__ = ()

    def _advance(self, now: int) -> None:
        self._now = now


class _DeafBuckets(LeastTimeBuckets):
    """Broken: the buckets do not follow the ends of attempts (connections, times)."""

    __slots__ = ()

    def retimed(self, state: PeerState) -> None:
        """Ignore it."""


class _FlightBlindBuckets(LeastTimeBuckets):
    """Broken: peers taken with ``inflight`` stay in the buckets as if not in flight."""

    __slots__ = ()

    def take(self, now: int, seconds: float) -> PeerState | None:
        peer = super().take(now, seconds)
        if peer is not None and self._in_flight and not peer.is_full():
            self._in_flight = 0
            self._flying[peer.index] = False
            self._insert(peer.index, peer.weight, 20 * (1 + peer.conns), peer.current_weight)
        return peer

    def retimed(self, state: PeerState) -> None:
        if self._fast and state.times is not None and state.times.inflight_reqs:
            return
        super().retimed(state)


class _TieBlindBuckets(LeastTimeBuckets):
    """Broken: peers of different weights tying on ``eta / weight`` do not send the pick to
    nginx's scan (the first of the tied buckets takes the round-robin step alone)."""

    __slots__ = ()

    def _least(self) -> Any:
        found = None
        for cls in self._classes:
            bucket = cls.low()
            if found is None or bucket.eta * found.weight < found.eta * bucket.weight:
                found = bucket
        return found


BROKEN: dict[str, type[LeastTimeBuckets]] = {
    "no decay": _NoDecayBuckets,
    "deaf to ended attempts": _DeafBuckets,
    "blind to requests in flight": _FlightBlindBuckets,
    "blind to ties across weights": _TieBlindBuckets,
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_property_fails_for_broken_buckets(name: str) -> None:
    broken = BROKEN[name]

    @settings(
        max_examples=2000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(**busy_scenario)
    def prop(
        primary: list[dict[str, Any]],
        backup: list[dict[str, Any]],
        header: bool,
        inflight: bool,
        ops: list[tuple[Any, ...]],
    ) -> None:
        check_equals_nginx(primary, backup, header, inflight, ops, broken)

    with pytest.raises(AssertionError):
        prop()
