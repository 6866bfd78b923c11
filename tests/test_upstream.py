"""The Upstream API: attempts, done, request(), errors that change nothing, threads."""

from __future__ import annotations

import threading
from collections import Counter, deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.nginx import parse_upstream, render_upstream

from .helpers import FakeClock, sequence, servers, snapshot


def test_attempts_try_each_peer_once_then_tries_exhausted() -> None:
    up = lbkit.Upstream(servers(1, 1, 1))
    tried = []
    with pytest.raises(lbkit.TriesExhausted, match="every try failed"):
        for peer in up.attempts():
            tried.append(peer.name)
            up.done(peer, failed=True)
    assert sorted(tried) == sorted(s.address for s in up.servers)
    assert all(p.conns == 0 for p in up.peers)


def test_attempts_stop_after_success() -> None:
    up = lbkit.Upstream(servers(1, 1, 1))
    tried = []
    for peer in up.attempts():
        tried.append(peer.name)
        up.done(peer, failed=len(tried) < 2)
        if len(tried) == 2:
            break
    assert len(set(tried)) == 2


def test_attempts_go_to_backups_after_primaries() -> None:
    up = parse_upstream(
        "upstream u { server a:1; server b:1; server c:1 backup; server d:1 backup down; }"
    )
    tried = []
    with pytest.raises(lbkit.TriesExhausted):
        for peer in up.attempts():
            tried.append(peer.name)
            up.done(peer, failed=True)
    assert set(tried[:2]) == {"a:1", "b:1"}
    assert tried[2:] == ["c:1"]


def test_attempts_raise_no_live_upstreams_when_all_failed() -> None:
    clock = FakeClock()
    up = parse_upstream("upstream u { server a:1; server b:1; }", clock=clock)
    with pytest.raises(lbkit.TriesExhausted):
        for peer in up.attempts():
            up.done(peer, failed=True)
    with pytest.raises(lbkit.NoLiveUpstreams) as info:
        next(iter(up.attempts()))
    assert not isinstance(info.value, lbkit.TriesExhausted)
    clock.now += 11
    assert up.pick().name in {"a:1", "b:1"}


def test_single_server_gets_one_try() -> None:
    up = parse_upstream("upstream u { server a:1; }")
    tried = []
    with pytest.raises(lbkit.TriesExhausted):
        for peer in up.attempts():
            tried.append(peer.name)
            up.done(peer, failed=True)
    assert tried == ["a:1"]


def test_unreported_attempt_is_a_usage_error_and_leaks_nothing() -> None:
    up = lbkit.Upstream(servers(1, 1))
    it = up.attempts()
    next(it)
    with pytest.raises(lbkit.UsageError, match="not reported"):
        next(it)
    assert all(p.conns == 0 for p in up.peers)


def test_done_twice_or_foreign_peer_is_usage_error() -> None:
    a = lbkit.Upstream(servers(1, 1))
    b = lbkit.Upstream(servers(1, 1))
    peer = a.pick()
    a.done(peer)
    with pytest.raises(lbkit.UsageError, match="already reported"):
        a.done(peer)
    other = b.pick()
    with pytest.raises(lbkit.UsageError, match="does not belong"):
        a.done(other)
    with pytest.raises(lbkit.UsageError):
        a.done("10.0.0.1:80")  # type: ignore[arg-type]


def test_request_context_manager_reports_success_and_failure() -> None:
    up = parse_upstream("upstream u { server a:1 max_fails=1; server b:1; }")
    with up.request() as peer:
        assert peer.name == "a:1"
    assert up.peer_state("a:1").conns == 0
    assert up.peer_state("a:1").response_time is not None
    with pytest.raises(ConnectionError), up.request() as peer:
        raise ConnectionError("refused")
    assert up.peer_state(peer.name).fails == 1


def test_elapsed_feeds_response_time_average() -> None:
    up = lbkit.Upstream(servers(1))
    for elapsed in (1.0, 2.0):
        up.done(up.pick(), elapsed=elapsed)
    assert up.peers[0].response_time == pytest.approx(1.2)
    with pytest.raises(lbkit.RequestError, match="response time"):
        up.done(up.pick(), elapsed=-1)


def test_bad_key_changes_nothing() -> None:
    up = lbkit.Upstream(servers(2, 1), lbkit.Hash("$k"))
    sequence(up, 3, key="x")
    before = snapshot(up)
    with pytest.raises(lbkit.RequestError, match="too long"):
        up.pick(key="k" * (lbkit.upstream.MAX_KEY_LENGTH + 1))
    with pytest.raises(TypeError):
        up.pick(key=12)  # type: ignore[arg-type]
    assert snapshot(up) == before


@pytest.mark.parametrize(
    ("method", "in_flight", "tolerance"),
    [
        (lbkit.RoundRobin(), 1, 0),
        (lbkit.RoundRobin(), 4, 0),
        (lbkit.LeastConn(), 16, 0.15),
        (lbkit.Random(seed=5), 1, 0.05),
    ],
)
def test_eight_threads_pick_and_report(
    method: lbkit.Method, in_flight: int, tolerance: float
) -> None:
    """Each thread keeps ``in_flight`` requests open (equal durations, FIFO), so least_conn
    sees real load; its share then follows the weights like round robin's."""
    weights = (1, 2, 3, 2)
    up = lbkit.Upstream(servers(*weights), method)
    per_thread = 6000
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work() -> None:
        local: Counter[str] = Counter()
        barrier.wait()
        open_peers: deque[lbkit.Peer] = deque()
        for _ in range(per_thread):
            peer = up.pick()
            local[peer.name] += 1
            open_peers.append(peer)
            if len(open_peers) >= in_flight:
                up.done(open_peers.popleft())
        while open_peers:
            up.done(open_peers.popleft())
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 8 * per_thread
    assert sum(counts.values()) == total
    assert all(p.conns == 0 for p in up.peers)
    for server in up.servers:
        expected = total * server.weight / sum(weights)
        assert abs(counts[server.address] - expected) <= tolerance * expected + 1e-9


def test_repr_and_to_nginx_round_trip() -> None:
    text = (
        "upstream app {\n    hash $request_uri consistent;\n"
        "    server 10.0.0.1:80 weight=2 max_fails=3 fail_timeout=30s;\n"
        "    server 10.0.0.2:80 down;\n    keepalive 16;\n}\n"
    )
    up = parse_upstream(text)
    assert render_upstream(up) == text
    assert parse_upstream(render_upstream(up)).servers == up.servers
    assert "app" in repr(up)


def test_errors_stay_in_the_hierarchy() -> None:
    up = lbkit.Upstream(servers(1, 1), lbkit.Hash("$k", consistent=True))
    with pytest.raises(lbkit.UnknownPeerError, match="no server 'zz'") as info:
        up.peer_state("zz")
    assert isinstance(info.value, KeyError)
    for bad in (12, None.__class__, "\udcff"):
        with pytest.raises(lbkit.RequestError) as request_info:
            up.pick(key=bad)  # type: ignore[arg-type]
        assert isinstance(request_info.value, TypeError)
    peer = up.pick(key="k")
    for elapsed in (-1, float("nan"), float("inf"), "1"):
        with pytest.raises(lbkit.RequestError):
            up.done(peer, elapsed=elapsed)  # type: ignore[arg-type]
    assert not peer.reported
    up.done(peer, elapsed=0.5)
    assert all(p.conns == 0 for p in up.peers)


@settings(max_examples=200, deadline=None)
@given(
    args=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.integers(-(2**70), 2**70),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=True),
        ),
        min_size=1,
        max_size=8,
    ),
    method=st.sampled_from([None, lbkit.Hash("$k", True), lbkit.IpHash(), "rr", 3]),
)
def test_fuzzed_python_construction_raises_only_config_error(
    args: list[object], method: object
) -> None:
    try:
        params = dict(zip(("weight", "max_fails"), args[1:3], strict=False))
        server = lbkit.Server(args[0], **params)  # type: ignore[arg-type]
        up = lbkit.Upstream([server], method)  # type: ignore[arg-type]
    except lbkit.ConfigError:
        return
    peer = up.pick(key="k", client_addr="192.0.2.1")
    up.done(peer)
