"""The fast paths of round robin choose exactly what nginx's plain O(n) scan chooses.

The reference is a method whose picker only runs the scan (``get_round_robin_peer``); both
upstreams get the same random configuration and the same random run of picks, held
connections, failures, clock steps, drains and updates, and must agree on every choice and
every peer field after every step.
"""

from __future__ import annotations

import threading
from typing import ClassVar, Literal

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers._round_robin import get_round_robin_peer
from lbkit.upstream import PeerGroup, PeerState, RequestState
from tests.helpers import FakeClock


@attrs.frozen
class _ScanPicker:
    def begin(self, request: RequestState) -> None:
        """Nothing to prepare."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        return get_round_robin_peer(request, now)


@attrs.frozen
class ScanRoundRobin:
    """Round robin by nginx's scan alone: the reference."""

    kind: ClassVar[Literal["round_robin"]] = "round_robin"
    supports_backup = True
    needs_key = False
    needs_client_addr = False

    def bind(self, primary: PeerGroup) -> _ScanPicker:
        return _ScanPicker()


def _fields(up: lbkit.Upstream) -> list[tuple[object, ...]]:
    return [
        (
            p.name,
            p.current_weight,
            p.effective_weight,
            p.weight,
            p.conns,
            p.fails,
            p.checked,
            p.accessed,
            p.down,
        )
        for p in up.peers
    ]


server_st = st.builds(
    dict,
    weight=st.integers(1, 4),
    max_fails=st.integers(0, 3),
    fail_timeout=st.integers(0, 5),
    max_conns=st.sampled_from([0, 0, 0, 1, 2, 3]),
    backup=st.sampled_from([False, False, True]),
    down=st.sampled_from([False, False, False, False, True]),
    slow_start=st.sampled_from([0, 0, 0, 3]),
)

op_st = st.one_of(
    st.tuples(st.just("pick"), st.booleans()),
    st.tuples(st.just("pick"), st.booleans()),
    st.tuples(st.just("pick"), st.just(True)),
    st.tuples(st.just("done"), st.integers(0, 20), st.sampled_from([False, False, True])),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("drain"), st.integers(0, 20)),
    st.tuples(st.just("attempts"), st.integers(0, 3)),
    st.tuples(
        st.just("read"),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    configs=st.lists(server_st, min_size=1, max_size=7),
    ops=st.lists(op_st, max_size=80),
    warm=st.integers(0, 30),
)
def test_round_robin_fast_path_equals_nginx_scan(
    configs: list[dict[str, object]], ops: list[tuple[object, ...]], warm: int
) -> None:
    if all(c["backup"] for c in configs):
        configs[0]["backup"] = False
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", **c) for i, c in enumerate(configs)]  # type: ignore[arg-type]
    clocks = [FakeClock(), FakeClock()]
    ups = [
        lbkit.Upstream(servers, lbkit.RoundRobin(), clock=clocks[0]),
        lbkit.Upstream(servers, ScanRoundRobin(), clock=clocks[1]),  # type: ignore[arg-type]
    ]
    held: list[list[lbkit.upstream.Peer]] = [[], []]

    def both(step: object) -> list[object]:
        out = []
        for up, mine in zip(ups, held, strict=True):
            try:
                out.append(step(up, mine))  # type: ignore[operator]
            except lbkit.NoLiveUpstreams:
                out.append("502")
        return out

    for _ in range(warm):
        fast, ref = both(lambda up, mine: up.done(up.pick()))
        assert fast == ref
    for op in ops:
        kind = op[0]
        if kind == "pick":

            def pick(
                up: lbkit.Upstream, mine: list[lbkit.upstream.Peer], op: tuple[object, ...] = op
            ) -> str:
                peer = up.pick()
                if op[1]:
                    mine.append(peer)
                else:
                    up.done(peer)
                return peer.name

            results = both(pick)
        elif kind == "done":

            def done(
                up: lbkit.Upstream, mine: list[lbkit.upstream.Peer], op: tuple[object, ...] = op
            ) -> str:
                if not mine:
                    return "-"
                peer = mine.pop(int(op[1]) % len(mine))  # type: ignore[call-overload]
                up.done(peer, failed=bool(op[2]))
                return peer.name

            results = both(done)
        elif kind == "tick":
            for clock in clocks:
                clock.now += int(op[1])  # type: ignore[call-overload]
            results = [None, None]
        elif kind == "drain":
            name = servers[int(op[1]) % len(servers)].address  # type: ignore[call-overload]
            results = both(lambda up, mine, name=name: up.drain(name))
        elif kind == "attempts":

            def walk(
                up: lbkit.Upstream, mine: list[lbkit.upstream.Peer], op: tuple[object, ...] = op
            ) -> list[str]:
                names = []
                fails = int(op[1])  # type: ignore[call-overload]
                try:
                    for peer in up.attempts():
                        names.append(peer.name)
                        up.done(peer, failed=len(names) <= fails)
                except lbkit.LbkitError as exc:
                    names.append(type(exc).__name__)
                return names

            results = both(walk)
        else:
            results = both(lambda up, mine: _fields(up))
        assert results[0] == results[1], op
    assert _fields(ups[0]) == _fields(ups[1])


def test_fast_path_leaves_a_peer_that_reached_max_conns() -> None:
    up = lbkit.Upstream([lbkit.Server("10.0.0.1:80", max_conns=1), lbkit.Server("10.0.0.2:80")])
    held = [up.pick() for _ in range(3)]
    assert [p.name for p in held] == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.2:80"]


def test_fast_path_follows_a_failure_as_the_scan_does() -> None:
    servers = [lbkit.Server(f"10.0.0.{i}:80", weight=i, max_fails=2) for i in (1, 2, 3)]
    fast = lbkit.Upstream(servers)
    ref = lbkit.Upstream(servers, ScanRoundRobin())  # type: ignore[arg-type]
    for up in (fast, ref):
        for _ in range(4):
            up.done(up.pick())
        up.done(up.pick(), failed=True)
    names = [[up.pick().name for _ in range(12)] for up in (fast, ref)]
    assert names[0] == names[1]
    assert _fields(fast) == _fields(ref)


def test_fast_path_from_16_threads_keeps_nginx_counts() -> None:
    """Picks from 16 threads at once: every peer gets exactly its weight's share of each
    period (round robin ignores conns without max_conns), no connection stays counted, and
    the current weights written back are those of the scan after as many picks."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(48)]
    up = lbkit.Upstream(servers)
    period = sum(s.weight for s in servers)
    rounds = 4 * period // 16  # 96 * 4 picks: four whole periods

    def work() -> None:
        for _ in range(rounds):
            up.done(up.pick())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.requests for p in up.peers] == [4 * s.weight for s in servers]
    assert all(p.conns == 0 for p in up.peers)
    ref = lbkit.Upstream(servers, ScanRoundRobin())  # type: ignore[arg-type]
    for _ in range(16 * rounds):
        ref.done(ref.pick())
    assert _fields(up) == _fields(ref)
