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

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbkit import Server, Upstream
from lbkit.balancers import LeastTime
from lbkit.balancers._least_time import _LeastTimePicker
from lbkit.balancers._least_time_buckets import LeastTimeBuckets
from lbkit.upstream import PeerState
from tests.helpers import SEARCH_FOR_THE_BUG
from tests.least_time_replay import Clock, check_equals_nginx
from tests.test_fast_paths import _in_16_threads

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

        _in_16_threads(work)
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

    @SEARCH_FOR_THE_BUG
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
