"""A peer's rarely set fields (PeerExtra): made only when one is set, read and written
through PeerState's attributes of the same names, and kept across updates."""

from __future__ import annotations

import pytest

import lbkit
from lbkit.nginx import parse_upstream
from lbkit.upstream import PeerExtra, PeerState, PeerTimes

from .helpers import FakeClock, sequence, servers


def test_a_fresh_peer_reads_nginx_defaults_with_no_extra() -> None:
    state = PeerState.from_server(lbkit.Server("a:1"), 0)
    assert state.extra is None
    assert (state.fails, state.accessed, state.response_time) == (0, 0, None)
    assert (state.ramp_start, state.draining, state.times) == (None, False, None)


@pytest.mark.parametrize(
    ("name", "default", "value"),
    [
        ("fails", 0, 2),
        ("accessed", 0, 1000),
        ("response_time", None, 0.25),
        ("ramp_start", None, 1000),
        ("draining", False, True),
        ("times", None, PeerTimes(header_time=5)),
    ],
)
def test_setting_a_field_makes_the_extra_and_its_default_does_not(
    name: str, default: object, value: object
) -> None:
    state = PeerState.from_server(lbkit.Server("a:1"), 0)
    setattr(state, name, default)
    assert state.extra is None
    setattr(state, name, value)
    assert isinstance(state.extra, PeerExtra)
    assert getattr(state, name) == value
    assert getattr(state.extra, name) == value
    setattr(state, name, default)  # back to the default: the extra stays, holding it
    assert getattr(state, name) == default


def test_round_robin_traffic_without_failures_makes_no_extra() -> None:
    for method in (lbkit.RoundRobin(), lbkit.LeastConn()):
        up = lbkit.Upstream(servers(1, 2, 3), method)
        sequence(up, 30)
        held = [up.pick() for _ in range(4)]
        for peer in held:
            up.done(peer)
        assert [p.extra for p in up.peers] == [None, None, None]
        assert sum(p.requests for p in up.peers) == 34


def test_a_failure_keeps_nginx_accounting_in_the_extra() -> None:
    clock = FakeClock(1000.0)
    up = parse_upstream(
        "upstream u { server a:1 max_fails=2 fail_timeout=10s; server b:1; }", clock=clock
    )
    peer = up.pick()
    assert peer.name == "a:1"
    up.done(peer, failed=True)
    state = up.peer_state("a:1")
    assert (state.fails, state.accessed, state.checked) == (1, 1000, 1000)
    assert state.extra is not None
    assert state.extra.fails == 1
    assert up.peer_state("b:1").extra is None
    # a success after the fail_timeout probe clears the failures, as nginx does
    clock.now = 1011.0
    names = sequence(up, 2)
    assert "a:1" in names
    assert state.fails == 0


def test_reported_elapsed_times_and_drains_use_the_extra() -> None:
    up = lbkit.Upstream(servers(1, 1))
    peer = up.pick()
    up.done(peer, elapsed=0.5)
    assert up.peer_state(peer.name).response_time == 0.5
    other = next(p for p in up.peers if p.name != peer.name)
    assert other.extra is None
    up.drain(other.name)
    assert other.draining
    assert other.down
    assert sequence(up, 3) == [peer.name] * 3


def test_the_extra_survives_an_update_that_keeps_the_peer() -> None:
    up = lbkit.Upstream(servers(1, 1))
    peer = up.pick()
    up.done(peer, failed=True, elapsed=0.2)
    state = up.peer_state(peer.name)
    up.update([*servers(1, 1), "10.0.0.9:80"])
    assert up.peer_state(peer.name) is state
    assert (state.fails, state.response_time) == (1, 0.2)
