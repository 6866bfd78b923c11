from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lbkit
from lbkit.nginx import parse_upstream

from .helpers import FakeClock, sequence, servers


def test_classic_smooth_sequence_5_1_1() -> None:
    up = lbkit.Upstream(servers(5, 1, 1))
    a, b, c = (s.address for s in up.servers)
    assert sequence(up, 7) == [a, a, b, a, c, a, a]


@given(st.lists(st.integers(1, 20), min_size=2, max_size=12), st.integers(1, 3))
def test_each_cycle_gives_every_peer_exactly_its_weight(weights: list[int], cycles: int) -> None:
    up = lbkit.Upstream(servers(*weights))
    total = sum(weights)
    counts = Counter(sequence(up, total * cycles))
    assert [counts[s.address] for s in up.servers] == [w * cycles for w in weights]


@given(st.lists(st.integers(1, 10), min_size=2, max_size=8))
def test_smooth_no_peer_runs_ahead_of_its_share(weights: list[int]) -> None:
    """After k picks, a peer has at most ceil(k * w / W) + 1 of them (smoothness)."""
    up = lbkit.Upstream(servers(*weights))
    total = sum(weights)
    counts: Counter[str] = Counter()
    for k, name in enumerate(sequence(up, total), start=1):
        counts[name] += 1
        for s in up.servers:
            assert counts[s.address] <= -(-k * s.weight // total) + 1


def test_down_peer_is_never_picked() -> None:
    up = parse_upstream("upstream u { server a:1; server b:1 down; server c:1; }")
    assert "b:1" not in sequence(up, 50)


def test_backup_only_when_primaries_unavailable() -> None:
    clock = FakeClock()
    up = parse_upstream(
        "upstream u { server a:1 max_fails=1; server b:1 max_fails=1; server c:1 backup; }",
        clock=clock,
    )
    assert "c:1" not in sequence(up, 20)
    for name in ("a:1", "b:1"):
        peer = up.pick()
        while peer.name != name:
            up.done(peer)
            peer = up.pick()
        up.done(peer, failed=True)
    assert sequence(up, 3) == ["c:1"] * 3
    clock.now += 11  # past fail_timeout: the primaries are probed again
    assert set(sequence(up, 4)) == {"a:1", "b:1"}


def test_failure_lowers_effective_weight_which_recovers() -> None:
    clock = FakeClock()
    up = parse_upstream("upstream u { server a:1 weight=4 max_fails=2; server b:1; }", clock=clock)
    a = up.peer_state("a:1")
    peer = up.pick()
    assert peer.name == "a:1"
    up.done(peer, failed=True)
    assert a.effective_weight == 2  # 4 - 4 // 2
    assert a.fails == 1
    sequence(up, 2)
    assert a.effective_weight == 4  # +1 each time it is considered


def test_max_fails_within_fail_timeout_takes_peer_out_then_probe() -> None:
    clock = FakeClock()
    up = parse_upstream(
        "upstream u { server a:1 max_fails=2 fail_timeout=5; server b:1; }", clock=clock
    )
    a = up.peer_state("a:1")
    while a.fails < 2:
        for peer in up.attempts():
            up.done(peer, failed=peer.name == "a:1")
            if peer.name != "a:1":
                break
    assert up.peer_state("a:1").is_failed(int(clock.now))
    assert set(sequence(up, 10)) == {"b:1"}
    clock.now += 6
    probe = up.pick()
    if probe.name != "a:1":
        up.done(probe)
        probe = up.pick()
    assert probe.name == "a:1"
    up.done(probe)  # success after the probe: fails reset
    assert up.peer_state("a:1").fails == 0


def test_max_fails_zero_never_marks_failed() -> None:
    up = parse_upstream("upstream u { server a:1 max_fails=0; server b:1; }")
    for _ in range(10):
        peer = up.pick()
        up.done(peer, failed=True)
    assert "a:1" in sequence(up, 4)


def test_max_conns_skips_full_peer() -> None:
    up = parse_upstream("upstream u { server a:1 max_conns=1; server b:1; }")
    held = up.pick()
    assert held.name == "a:1"
    assert sequence(up, 4) == ["b:1"] * 4
    up.done(held)
    assert "a:1" in sequence(up, 2)


def test_single_server_is_never_marked_failed() -> None:
    up = parse_upstream("upstream u { server a:1 max_fails=1; }")
    for _ in range(5):
        peer = up.pick()
        up.done(peer, failed=True)
    assert up.pick().name == "a:1"


@pytest.mark.parametrize("weights", [(1,), (3, 1), (1, 1, 1, 1)])
def test_conns_return_to_zero(weights: tuple[int, ...]) -> None:
    up = lbkit.Upstream(servers(*weights))
    sequence(up, 20)
    assert all(p.conns == 0 for p in up.peers)


@given(st.lists(st.integers(1, 12), min_size=1, max_size=25), st.integers(0, 40))
def test_precomputed_schedule_equals_nginx_order(weights: list[int], extra: int) -> None:
    up = lbkit.Upstream(servers(*weights))
    schedule = lbkit.SmoothSchedule([s.address for s in up.servers], weights)
    n = 2 * sum(weights) + extra
    assert schedule.take(n) == sequence(up, n)
    assert schedule.period == sum(weights)


def test_slow_start_ramps_a_recovered_peer() -> None:
    clock = FakeClock()
    up = parse_upstream(
        "upstream u { server a:1 weight=10 max_fails=1 fail_timeout=5 slow_start=20s;"
        " server b:1 weight=10; }",
        clock=clock,
    )
    a = up.peer_state("a:1")
    peer = up.pick()
    assert peer.name == "a:1"
    up.done(peer, failed=True)
    clock.now += 6  # past fail_timeout: a is probed and recovers
    while True:
        peer = up.pick()
        up.done(peer)
        if peer.name == "a:1":
            break
    assert a.ramp_start is not None
    early = Counter(sequence(up, 200))
    assert early["a:1"] < 30  # weight 1 of 11 at first
    clock.now += 10
    middle = Counter(sequence(up, 200))
    assert 60 < middle["a:1"] < 100  # weight 5 of 15
    clock.now += 11
    late = Counter(sequence(up, 200))
    assert 95 <= late["a:1"] <= 105  # full weight again
    assert a.weight == 10
    assert a.ramp_start is None


def test_schedule_shared_by_eight_threads_loses_no_pick() -> None:
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    schedule = lbkit.SmoothSchedule(["a", "b", "c"], [1, 2, 3])

    def work(_: int) -> Counter[str]:
        local = Counter(schedule.next() for _ in range(3000))
        local.update(schedule.take(600))
        return local

    with ThreadPoolExecutor(8) as pool:
        counts = sum(pool.map(work, range(8)), Counter())
    assert counts == {"a": 4800, "b": 9600, "c": 14400}
