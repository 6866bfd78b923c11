"""``random`` and ``random two``'s answer for a plain pick equals their full path, draw for draw.

The fast path (``first``: no request state, draws inlined) and the full path (``get``
on a request, ``randrange`` and ``PeerGroup.peer_at``) run on two upstreams seeded alike,
with the same random configuration and the same run of picks, held connections,
failures, clock steps, drains, give-backs, retries and updates. After every step they
must agree on what was chosen, on every peer field, and on the state of the random source
(the same draws consumed). Deliberately broken fast paths make the property fail (the
``BROKEN`` tests), so it is known to catch a draw lost or made twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers import Sticky, StickyMethod
from lbkit.balancers._random import _RandomPicker
from lbkit.balancers._round_robin import MAX_FAST_PERIOD
from lbkit.upstream import PeerState
from tests.helpers import SEARCH_FOR_THE_BUG
from tests.test_fast_paths import (
    Rebound,
    _fields,
    _in_16_threads,
    check_fast_path_equals_scan,
    op_st,
    without_first,
)


def _source(up: lbkit.Upstream) -> object:
    """The state of the random source of ``up``'s current membership."""
    picker = up._members.picker
    while hasattr(picker, "inner"):  # (a picker wrapped by sticky, or by without_first)
        picker = picker.inner
    return picker.rng.getstate()


def _same_peers_and_draws(fast: lbkit.Upstream, ref: lbkit.Upstream) -> None:
    assert _fields(fast) == _fields(ref)
    assert _source(fast) == _source(ref)


def check_first_equals_get(
    fast: lbkit.Method,
    ref: lbkit.Method,
    configs: list[dict[str, Any]],
    ops: list[tuple[Any, ...]],
) -> None:
    """Run ``ops`` on an upstream of each method: every result, every peer field and the
    random source must agree after every step."""
    check_fast_path_equals_scan(fast, ref, configs, ops, 0, after_each=_same_peers_and_draws)


def _still() -> float:
    """One clock for both upstreams compared, standing still: their peers' ``checked``
    seconds cannot differ because a second ended between two picks."""
    return 1_000_000.0


def _methods(two: bool, seed: int) -> tuple[lbkit.Method, lbkit.Method]:
    """``random [two least_conn]`` with ``seed``, and the same answering by get() alone."""
    method = lbkit.Random(two=two, least_conn=two, seed=seed)
    return method, without_first(method)


random_server_st = st.builds(
    dict,
    # (sometimes weights whose total is past the fast path's table: the full path answers)
    weight=st.sampled_from([1, 2, 3, 4] * 3 + [60_000]),
    max_fails=st.integers(0, 3),
    fail_timeout=st.integers(0, 5),
    max_conns=st.sampled_from([0, 0, 0, 1, 2, 3]),
    down=st.sampled_from([False, False, False, False, True]),
)

#: Peers that fill up: held connections on peers of max_conns=1 often leave every peer
#: unavailable, so that the draws run out (round robin answers after 21 probes, or 502).
crowded_server_st = st.builds(
    dict,
    weight=st.integers(1, 5),
    max_fails=st.sampled_from([0, 1]),
    fail_timeout=st.integers(0, 3),
    max_conns=st.sampled_from([1, 1, 1, 2, 0]),
    down=st.sampled_from([False, False, False, True]),
)

crowded_op_st = st.one_of(
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("done"), st.integers(0, 20), st.sampled_from(["ok", "failed", "retry"])),
    st.tuples(st.just("give_back"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("attempts"), st.integers(0, 2), st.integers(0, 3)),
)

scenario = {
    "two": st.booleans(),
    "seed": st.integers(0, 2**64),
    "configs": st.lists(random_server_st, min_size=1, max_size=7),
    "ops": st.lists(op_st, min_size=20, max_size=80),
}

crowded_scenario = {
    "two": st.booleans(),
    "seed": st.integers(0, 2**64),
    "configs": st.lists(crowded_server_st, min_size=1, max_size=5),
    "ops": st.lists(crowded_op_st, min_size=10, max_size=80),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**scenario)
def test_random_fast_path_equals_full_path(
    two: bool, seed: int, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]]
) -> None:
    check_first_equals_get(*_methods(two, seed), configs, ops)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**crowded_scenario)
def test_random_fast_path_equals_full_path_when_peers_fill_up(
    two: bool, seed: int, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]]
) -> None:
    check_first_equals_get(*_methods(two, seed), configs, ops)


@settings(max_examples=150, deadline=None)
@given(
    two=st.booleans(),
    seed=st.integers(0, 2**64),
    weights=st.lists(st.integers(1, 5000), min_size=2, max_size=20),
)
@example(two=False, seed=1, weights=[1, 1])  # total 2: one bit, never redrawn
@example(two=False, seed=1, weights=[1, 2])  # total 3: two bits, one value redrawn
@example(two=False, seed=3, weights=[4096, 4096])  # total 2**13
@example(two=True, seed=4, weights=[4095, 4096])  # total 2**13 - 1
@example(two=False, seed=5, weights=[4096, 4097])  # total 2**13 + 1
@example(two=False, seed=6, weights=[50_000, 50_000])  # the largest table
def test_inline_draws_are_randrange_over_the_total_weight(
    two: bool, seed: int, weights: list[int]
) -> None:
    """With every peer available each pick of ``random`` is one draw (``two``: two or
    more): the fast path's draws (``getrandbits`` inline) are exactly
    ``randrange(total)``'s."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)]
    fast, ref = (lbkit.Upstream(servers, m, clock=_still) for m in _methods(two, seed))
    for _ in range(40):
        peers = [fast.pick(), ref.pick()]
        assert peers[0].name == peers[1].name
        if not two:  # (two may draw one peer 21 times: round robin then answers)
            assert peers[0].request is None  # answered by the fast path
        fast.done(peers[0])
        ref.done(peers[1])
    assert _source(fast) == _source(ref)
    assert _fields(fast) == _fields(ref)


def test_weights_past_the_table_take_the_full_path() -> None:
    weights = [MAX_FAST_PERIOD // 2, MAX_FAST_PERIOD // 2 + 1]
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)]
    fast, ref = (lbkit.Upstream(servers, m, clock=_still) for m in _methods(True, 9))
    for _ in range(20):
        peers = [fast.pick(), ref.pick()]
        assert peers[0].name == peers[1].name
        assert peers[0].request is not None  # the full path answered, nothing drawn first
    assert _source(fast) == _source(ref)


@pytest.mark.parametrize(("two", "down", "live"), [(False, 100, 1), (True, 12, 2)])
def test_draws_run_out_then_round_robin_answers_as_the_full_path(
    two: bool, down: int, live: int
) -> None:
    """A heavy down peer and light live ones: 21 draws often miss them (``two``: miss two
    of them), and round robin then answers, after the fast path's draws (not after a
    second round of draws)."""
    servers = [lbkit.Server("10.0.0.1:80", weight=down, down=True)]
    servers += [lbkit.Server(f"10.0.0.{i + 2}:80") for i in range(live)]
    fast, ref = (lbkit.Upstream(servers, m, clock=_still) for m in _methods(two, 11))
    paths = set()
    for _ in range(60):
        peers = [fast.pick(), ref.pick()]
        assert peers[0].name == peers[1].name != "10.0.0.1:80"
        paths.add(peers[0].request is None)
        fast.done(peers[0])
        ref.done(peers[1])
        assert _source(fast) == _source(ref)
    assert paths == {True, False}  # the draws found live peers, and ran out
    assert _fields(fast) == _fields(ref)


@pytest.mark.parametrize("two", [False, True])
def test_no_live_peer_draws_once_as_the_full_path(two: bool) -> None:
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=i + 1, max_conns=1) for i in range(3)]
    fast, ref = (lbkit.Upstream(servers, m, clock=_still) for m in _methods(two, 12))
    held = [[up.pick() for _ in range(3)] for up in (fast, ref)]
    assert [p.name for p in held[0]] == [p.name for p in held[1]]
    for _ in range(3):
        for up in (fast, ref):
            with pytest.raises(lbkit.NoLiveUpstreams):
                up.pick()
        assert _source(fast) == _source(ref)
    for up, mine in zip((fast, ref), held, strict=True):
        up.done(mine[0])
    assert fast.pick().name == ref.pick().name == held[0][0].name
    assert _source(fast) == _source(ref)
    assert _fields(fast) == _fields(ref)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    two=st.booleans(),
    seed=st.integers(0, 2**64),
    configs=st.lists(crowded_server_st, min_size=2, max_size=5),
    picks=st.lists(st.tuples(st.integers(-1, 4), st.booleans()), min_size=5, max_size=60),
)
def test_sticky_random_fast_path_equals_full_path(
    two: bool, seed: int, configs: list[dict[str, Any]], picks: list[tuple[int, bool]]
) -> None:
    """Under ``sticky`` (which hands a pick without a hint to the method's first()),
    picks with and without hints, some held: the same peers, fields and draws."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", **c) for i, c in enumerate(configs)]
    sticky = Sticky("cookie", cookie="srv")
    ups = [
        lbkit.Upstream(servers, StickyMethod(m, sticky), clock=_still) for m in _methods(two, seed)
    ]
    held: list[list[lbkit.upstream.Peer]] = [[], []]
    for target, hold in picks:
        hint = None if target < 0 else sticky.sid(servers[target % len(servers)].address)
        names = []
        for up, mine in zip(ups, held, strict=True):
            try:
                peer = up.pick(sticky=hint)
            except lbkit.NoLiveUpstreams:
                names.append("502")
                if mine:
                    up.done(mine.pop(0))
                continue
            names.append(peer.name)
            if hold:
                mine.append(peer)
            else:
                up.done(peer)
        assert names[0] == names[1]
        assert _source(ups[0]) == _source(ups[1])
    assert _fields(ups[0]) == _fields(ups[1])


@pytest.mark.parametrize("two", [False, True])
def test_random_fast_path_from_16_threads(two: bool) -> None:
    """Picks from 16 threads at once, each reported at once: nothing stays counted. With
    every peer available each pick of ``random`` is one draw, so however the threads
    interleave, the peers get exactly the requests of as many picks in one thread, and the
    source ends alike (``two`` compares connections, which the other threads change)."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(48)]
    fast, ref = (lbkit.Upstream(servers, m, clock=_still) for m in _methods(two, 13))
    rounds = 300

    def work() -> None:
        for _ in range(rounds):
            fast.done(fast.pick())

    _in_16_threads(lambda _: work())
    assert sum(p.requests for p in fast.peers) == 16 * rounds
    assert all(p.conns == 0 for p in fast.peers)
    if not two:
        for _ in range(16 * rounds):
            ref.done(ref.pick())
        assert [p.requests for p in fast.peers] == [p.requests for p in ref.peers]
        assert _source(fast) == _source(ref)


# -- the property catches wrong fast paths ----------------------------------------------


class _LosesItsDraw(_RandomPicker):
    """Broken: a first draw whose peer cannot take the request is dropped (the full path
    then draws again), the mistake a first-attempt shortcut invites."""

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        group = self.group
        if group.single:
            return None
        before = self.rng.getstate()
        if group.peer_at(self.rng.randrange(group.total_weight)).blocked_until >= now:
            return None
        self.rng.setstate(before)
        return super().first(key, addr, now)


class _ForgetsItRanOut(_RandomPicker):
    """Broken: when its draws run out, the full path is not told (it draws 21 more)."""

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        peer = super().first(key, addr, now)
        self._drawn_out = False
        return peer


def _broken(picker: type[_RandomPicker]) -> Callable[[bool, int], lbkit.Method]:
    def make(two: bool, seed: int) -> lbkit.Method:
        return Rebound(
            lbkit.Random(two=two, least_conn=two, seed=seed),
            lambda g: picker(two, random.Random(seed), g),
        )

    return make


BROKEN: dict[str, Callable[[bool, int], lbkit.Method]] = {
    "a first draw lost": _broken(_LosesItsDraw),
    "draws made twice once they ran out": _broken(_ForgetsItRanOut),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_property_fails_for_a_broken_fast_path(name: str) -> None:
    make = BROKEN[name]

    @SEARCH_FOR_THE_BUG
    @given(**crowded_scenario)
    def prop(
        two: bool, seed: int, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]]
    ) -> None:
        check_first_equals_get(make(two, seed), _methods(two, seed)[1], configs, ops)

    with pytest.raises(AssertionError):
        prop()
