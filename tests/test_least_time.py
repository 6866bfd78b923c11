"""``LeastTime``: nginx's ``least_time`` as a method of ``Upstream``.

The recorded nginx choices are replayed in tests/golden/; here: the arithmetic's quirks, the
API (``header()``, ``done(header_time=)``, attempts, asyncio, ``request()``), sticky, drain,
backups, a property test against a line-by-line transcription of nginx's C code
(tests/least_time_reference.py) and 16 threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit import NoLiveUpstreams, Server, Upstream
from lbkit.balancers import LeastTime, Sticky, StickyMethod, server_id
from lbkit.balancers._least_time import eta
from lbkit.errors import ConfigError, UsageError
from lbkit.nginx import parse_upstream, render_upstream
from lbkit.upstream import MSEC_MAX, PeerState, PeerTimes, response_time_avg
from tests.least_time_reference import U64
from tests.least_time_replay import Clock, check_equals_nginx


def upstream(
    text: str, method: LeastTime | None = None, clock: Clock | None = None, **kw: object
) -> Upstream:
    servers = [Server.parse(line) for line in text.split(",")]
    return Upstream(servers, method or LeastTime(), clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def times(up: Upstream, name: str) -> PeerTimes:
    found = up.peer_state(name).times
    assert found is not None
    return found


# -- the arithmetic ---------------------------------------------------------------------


def test_average_rounds_half_up_and_restarts_from_zero() -> None:
    assert response_time_avg(0, 37) == 37
    assert response_time_avg(100, 0) == 95
    assert response_time_avg(10, 20) == 11  # 0.5 + (1.0 + 9.5) = 11.0
    assert response_time_avg(1, 0) == 1  # 0.5 + 0.95 = 1.45 -> 1
    assert response_time_avg(0, 0) == 0


def _state(header_time: int = 0, fail_timeout: int = 10, checked: int = 100) -> PeerState:
    state = PeerState.from_server(Server("a:1", fail_timeout=fail_timeout), 0)
    state.checked = checked
    state.times = PeerTimes(header_time=header_time)
    return state


@pytest.mark.parametrize(
    ("rt", "bucket"),
    [(0, 20), (19, 20), (20, 40), (39, 40), (4999, 5000), (5000, 5020), (5001, 5000)],
)
def test_buckets_and_the_5000_ms_cap(rt: int, bucket: int) -> None:
    state = _state(rt)
    assert state.times is not None
    assert eta(state, state.times, True, 100) == bucket
    assert eta(state, state.times, False, 100) == 20  # last_byte reads response_time
    state.conns = 2
    assert eta(state, state.times, True, 100) == bucket * 3


def test_decay_halves_once_per_fail_timeout_plus_one() -> None:
    state = _state(160, fail_timeout=1)
    assert state.times is not None
    assert eta(state, state.times, True, 101) == 180  # idle 1 s: not > fail_timeout
    assert eta(state, state.times, True, 102) == 100  # idle 2 s: 160 >> 1 = 80 -> 100
    assert eta(state, state.times, True, 104) == 60  # 160 >> 2 = 40 -> 60
    assert eta(state, state.times, True, 100 + 2 * 64) == 180  # shift 64 & 63 = 0, as x86


def test_inflight_time_raises_the_estimate_only_while_requests_run() -> None:
    state = _state(30)
    assert state.times is not None
    state.times.inflight_time = 250
    assert eta(state, state.times, True, 100) == 40
    state.times.inflight_reqs = 1
    assert eta(state, state.times, True, 100) == 260


# -- choices --------------------------------------------------------------------------


def _seed(up: Upstream, name: str, header_ms: int) -> None:
    times(up, name).header_time = header_ms
    times(up, name).response_time = header_ms


def test_ties_use_smooth_weighted_round_robin_from_the_best() -> None:
    # 30 ms -> bucket 40 at weight 2 ties with 10 ms -> bucket 20 at weight 1 (at 0 s, as
    # the peers were checked: no decay)
    up = upstream("a:1 weight=2,b:1", clock=Clock(0))
    _seed(up, "a:1", 30)
    _seed(up, "b:1", 10)
    seq = []
    for _ in range(6):
        peer = up.pick()
        seq.append(peer.name[0])
        up.give_back(peer)  # no outcome: the averages stay
    assert "".join(seq) == "abaaba"


def test_without_a_tie_only_the_chosen_peer_changes() -> None:
    up = upstream("a:1,b:1", clock=Clock(0))
    _seed(up, "a:1", 10)
    _seed(up, "b:1", 50)
    assert up.pick().name == "a:1"
    a, b = up.peers
    assert (a.current_weight, b.current_weight, a.conns, b.conns) == (0, 0, 1, 0)


def test_connections_multiply_the_estimate() -> None:
    up = upstream("a:1,b:1", clock=Clock(0))
    _seed(up, "a:1", 30)  # bucket 40
    _seed(up, "b:1", 110)  # bucket 120
    names = [up.pick().name for _ in range(4)]
    # 40*1 < 120; 40*2 < 120; 40*3 == 120*1 (tie: SWRR from a); then b
    assert names[:2] == ["a:1", "a:1"]
    assert sorted(names[2:]) == ["a:1", "b:1"]


def test_down_drained_failed_and_full_peers_are_skipped_then_backup() -> None:
    clock = Clock()
    up = upstream("a:1 max_fails=1,b:1 down,c:1 max_conns=1,z:1 backup", clock=clock)
    first = up.pick()
    assert first.name == "a:1"
    up.done(first, failed=True)
    held = up.pick()
    assert held.name == "c:1"  # b is down, a failed
    assert up.pick().name == "z:1"  # c is full
    up.done(held)
    up.drain("c:1")
    assert up.pick().name == "z:1"  # c drained
    clock.ms += 11_000  # a's fail_timeout ran out
    assert up.pick().name == "a:1"
    assert up.peer_state("a:1").effective_weight == 0


def test_a_single_peer_takes_round_robins_path() -> None:
    up = upstream("a:1 max_fails=1", LeastTime("header", inflight=True))
    peer = up.pick()
    up.done(peer, failed=True)
    again = up.pick()  # one peer: no passive health check
    assert times(up, "a:1").inflight_reqs == 0  # and no in-flight account
    up.done(again, elapsed=0.05)
    assert times(up, "a:1").header_time == 50


# -- reporting times --------------------------------------------------------------------


def test_header_and_last_byte_averages() -> None:
    for mode, expect in (("header", (5, 70)), ("last_byte", (5, 70))):
        up = upstream("a:1,b:1", LeastTime(mode))  # type: ignore[arg-type]
        peer = up.pick()
        up.header(peer, 0.005)
        up.done(peer, elapsed=0.070)
        t = times(up, peer.name)
        assert (t.header_time, t.response_time) == expect


def test_times_are_measured_on_the_upstream_clock_when_not_given() -> None:
    clock = Clock()
    up = upstream("a:1,b:1", clock=clock)
    peer = up.pick()
    clock.ms += 12
    up.header(peer)
    clock.ms += 30
    up.done(peer)
    t = times(up, peer.name)
    assert (t.header_time, t.response_time) == (12, 42)


def test_a_success_without_a_header_time_counts_its_last_byte() -> None:
    up = upstream("a:1,b:1")
    peer = up.pick()
    up.done(peer, elapsed=0.04)
    assert (times(up, "a:1").header_time, times(up, "a:1").response_time) == (40, 40)
    peer = up.pick()
    up.done(peer, elapsed=0.08, header_time=0.02)
    assert (times(up, peer.name).header_time, times(up, peer.name).response_time) == (20, 80)


def test_failures_and_retries_are_not_averaged() -> None:
    up = upstream("a:1 max_fails=0,b:1")
    for kwargs in ({"failed": True}, {"retry": True}):
        peer = up.pick()
        up.header(peer, 0.001)
        up.done(peer, elapsed=0.002, **kwargs)  # type: ignore[arg-type]
    assert all(t.times == PeerTimes() for t in up.peers)


def test_header_inflight_averages_at_the_header_and_leaves_the_account() -> None:
    clock = Clock()
    up = upstream("a:1,b:1", LeastTime("header", inflight=True), clock=clock)
    peer = up.pick()
    assert times(up, "a:1").inflight_reqs == 1
    clock.ms += 10
    up.header(peer)
    assert (times(up, "a:1").header_time, times(up, "a:1").inflight_reqs) == (10, 0)
    clock.ms += 500
    up.done(peer)
    assert times(up, "a:1").header_time == 10  # not averaged again
    assert times(up, "a:1").response_time == 510


def test_a_failed_inflight_attempt_leaves_with_nginxs_minus_one() -> None:
    """nginx frees a failed attempt before it sets its response time: ``last`` is
    ``(ngx_msec_t) -1``, so ``inflight_last`` gains ``elapsed * reqs + 1`` (mod 2**64)."""
    clock = Clock()
    up = upstream("a:1 max_fails=0", LeastTime("last_byte", inflight=True), clock=clock)
    up.update(["a:1 max_fails=0", "b:1 down"])  # two peers: not the single-peer path
    first, second = up.pick(), up.pick()
    t = times(up, "a:1")
    assert (t.inflight_reqs, t.inflight_last) == (2, 0)
    clock.ms += 7
    up.done(first, failed=True)
    assert t.inflight_last == (0 + 7 * 2 - MSEC_MAX) & U64 == 15
    assert (t.inflight_reqs, t.inflight_reqs_changed) == (1, clock.ms)
    up.done(second)
    assert (t.inflight_reqs, t.inflight_last) == (0, 0)


def test_bad_reports_are_refused_before_any_change() -> None:
    up = upstream("a:1,b:1")
    peer = up.pick()
    with pytest.raises(lbkit.LbkitError, match=r"-1\.0"):
        up.done(peer, elapsed=-1.0)
    with pytest.raises(lbkit.LbkitError):
        up.done(peer, header_time=float("nan"))
    with pytest.raises(lbkit.LbkitError):
        up.header(peer, -0.5)
    assert peer.state.conns == 1
    assert not peer.reported
    up.header(peer, 0.01)
    with pytest.raises(UsageError, match="header"):
        up.header(peer, 0.01)
    with pytest.raises(UsageError, match="header"):
        up.done(peer, header_time=0.01)
    up.done(peer, elapsed=0.02)
    with pytest.raises(UsageError, match="already reported"):
        up.header(peer)
    with pytest.raises(UsageError):
        up.header("a:1")  # type: ignore[arg-type]
    other = upstream("a:1,b:1")
    with pytest.raises(UsageError, match="belong"):
        other.header(up.pick())


def test_other_methods_accept_header_reports() -> None:
    up = Upstream([Server("a:1"), Server("b:1")])
    peer = up.pick()
    up.header(peer, 0.01)
    up.done(peer, elapsed=0.02, header_time=None)
    with pytest.raises(UsageError):
        up.header(peer)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="mode"):
        LeastTime("first_byte")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="inflight"):
        LeastTime("header", inflight=1)  # type: ignore[arg-type]


# -- attempts, asyncio, request() ---------------------------------------------------------


def test_attempts_report_headers_and_retry_with_the_next_estimate() -> None:
    clock = Clock()
    up = upstream("a:1,b:1,c:1", LeastTime("header", inflight=True), clock=clock)
    tried = []
    for peer in up.attempts():
        tried.append(peer.name)
        clock.ms += 5
        if len(tried) < 2:
            up.done(peer, failed=True)
            continue
        up.header(peer)
        up.done(peer)
    assert tried == ["a:1", "b:1"]
    assert [p.conns for p in up.peers] == [0, 0, 0]
    assert [times(up, n).inflight_reqs for n in ("a:1", "b:1", "c:1")] == [0, 0, 0]
    assert times(up, "b:1").header_time == 5


def test_a_loop_left_early_gives_back_its_inflight_account() -> None:
    up = upstream("a:1,b:1", LeastTime("header", inflight=True))
    for peer in up.attempts():
        assert times(up, peer.name).inflight_reqs == 1
        break
    assert [(p.conns, p.times.inflight_reqs if p.times else -1) for p in up.peers] == [
        (0, 0),
        (0, 0),
    ]
    assert times(up, "a:1").header_time == 0  # abandoned: not a measurement


def test_cancelled_async_attempts_leave_every_count_at_zero() -> None:
    up = upstream("a:1,b:1,c:1", LeastTime("last_byte", inflight=True))

    async def proxy(started: asyncio.Event) -> None:
        async for peer in up.attempts_async():
            up.header(peer)
            started.set()
            await asyncio.sleep(10)
            up.done(peer)

    async def main() -> None:
        events = [asyncio.Event() for _ in range(5)]
        tasks = [asyncio.create_task(proxy(e)) for e in events]
        for e in events:
            await e.wait()
        assert sum(p.conns for p in up.peers) == 5
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert all(p.conns == 0 and p.times and p.times.inflight_reqs == 0 for p in up.peers)
    assert all(p.times and p.times.inflight_last == 0 for p in up.peers)


def test_request_context_reports_the_header_and_the_elapsed_time() -> None:
    up = upstream("a:1,b:1")
    with up.request() as peer:
        up.header(peer, 0.003)
    t = times(up, peer.name)
    assert t.header_time == 3
    assert peer.reported
    with pytest.raises(RuntimeError), up.request() as second:
        raise RuntimeError("backend reset")
    assert second.failed
    assert second.state.fails == 1


# -- sticky, update, the nginx syntax ------------------------------------------------------


def _sticky(up_text: str, inflight: bool = True) -> Upstream:
    method = StickyMethod(LeastTime("header", inflight=inflight), Sticky("cookie", cookie="s"))
    return Upstream([Server.parse(s) for s in up_text.split(",")], method, clock=Clock(0))


def test_a_sticky_hint_wins_without_a_weight_update_and_counts_in_flight() -> None:
    up = _sticky("a:1,b:1")
    _seed(up, "b:1", 400)  # b is the slow one
    peer = up.pick(sticky=server_id("b:1"))
    assert peer.name == "b:1"
    b = up.peer_state("b:1")
    assert (b.current_weight, b.effective_weight, b.conns) == (0, 1, 1)
    assert times(up, "b:1").inflight_reqs == 1
    assert up.pick(sticky="unknown").name == "a:1"


def test_a_sticky_hint_is_looked_up_in_the_backup_group_too() -> None:
    up = _sticky("a:1 max_fails=1,b:1 backup,c:1 backup")
    up.done(up.pick(), failed=True)  # a is out
    assert up.pick(sticky=server_id("c:1")).name == "c:1"
    assert up.pick().name == "b:1"


def test_drained_peers_take_only_their_sticky_clients() -> None:
    up = _sticky("a:1,b:1 ,c:1")
    up.drain("b:1")
    assert {up.pick().name for _ in range(6)} == {"a:1", "c:1"}
    assert up.pick(sticky=server_id("b:1")).name == "b:1"
    single = _sticky("a:1")
    single.drain("a:1")
    with pytest.raises(NoLiveUpstreams):
        single.pick()
    assert single.pick(sticky=server_id("a:1")).name == "a:1"  # round robin's single path


def test_update_keeps_the_averages_of_peers_that_stay() -> None:
    up = upstream("a:1,b:1")
    peer = up.pick()
    up.done(peer, elapsed=0.033)
    running = up.pick()
    up.update(["a:1 weight=2", "c:1"])
    assert times(up, "a:1").response_time == 33
    assert times(up, "c:1") == PeerTimes()
    up.done(running, elapsed=0.01)  # b:1 was removed: still reported
    assert running.state.times is not None
    assert running.state.times.response_time == 10


def test_backups_alone_while_names_are_unresolved_still_time_attempts() -> None:
    up = Upstream(
        [
            Server("app.svc:80", resolve=True),
            Server("b:1", backup=True),
            Server("c:1", backup=True),
        ],
        LeastTime("header", inflight=True),
        resolver=("127.0.0.1:53",),
        clock=Clock(),
    )
    peer = up.pick()
    assert peer.name == "b:1"
    assert times(up, "b:1").inflight_reqs == 1
    up.header(peer, 0.01)
    up.done(peer, elapsed=0.02)
    assert times(up, "b:1") == PeerTimes(
        header_time=10, response_time=20, inflight_reqs_changed=1_000_000
    )


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("least_time header;", LeastTime()),
        ("least_time last_byte;", LeastTime("last_byte")),
        ("least_time header inflight;", LeastTime("header", inflight=True)),
        ("least_time last_byte inflight;", LeastTime("last_byte", inflight=True)),
    ],
)
def test_parse_and_render(text: str, method: LeastTime) -> None:
    up = parse_upstream(f"upstream u {{ {text} server a:1 backup; server b:1 weight=3; }}")
    assert up.method == method
    assert f"    {text}\n" in render_upstream(up)
    again = parse_upstream(render_upstream(up))
    assert (again.method, again.servers) == (up.method, up.servers)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("least_time;", "invalid number of arguments"),
        ("least_time header inflight x;", "invalid number of arguments"),
        ("least_time first_byte;", 'invalid value "first_byte"'),
        ("least_time header slow;", 'invalid parameter "slow"'),
        ("least_time inflight header;", 'invalid parameter "header"'),
    ],
)
def test_parse_errors_name_the_word_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_upstream(f"upstream u {{\n {text}\n server a:1; }}")
    assert info.value.line == 2


def test_sticky_least_time_from_nginx_text() -> None:
    up = parse_upstream(
        "upstream u { least_time last_byte inflight; sticky cookie srv; "
        "server a:1; server b:1 drain; }"
    )
    assert isinstance(up.method, StickyMethod)
    assert up.method.kind == "least_time"
    assert up.pick(sticky=server_id("b:1")).name == "b:1"
    assert up.pick().name == "a:1"


def _zone_text(zone: str) -> str:
    return f"upstream u {{ zone {zone} 64k; least_time header inflight; server a:1; server b:1; }}"


def _slow_first_pick(zone_dir: str, zone: str) -> None:
    """Another worker process: its first pick (a:1) takes 900 ms."""
    os.environ["LBKIT_ZONE_DIR"] = zone_dir
    up = parse_upstream(_zone_text(zone))
    peer = up.pick()
    assert peer.name == "a:1"
    up.header(peer, 0.9)
    up.done(peer, elapsed=0.95)


def test_a_zone_shares_the_times_among_processes(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As nginx's zone holds the peers' averages, every process sees the same times."""
    monkeypatch.setenv("LBKIT_ZONE_DIR", str(tmp_path))
    zone = "lt" + uuid.uuid4().hex[:12]
    mine = parse_upstream(_zone_text(zone))
    other = multiprocessing.get_context("spawn").Process(
        target=_slow_first_pick, args=(str(tmp_path), zone)
    )
    other.start()
    other.join(60)
    assert other.exitcode == 0
    held = mine.pick()
    assert held.name == "b:1"  # a:1 averages 900 ms in the other process
    assert times(mine, "a:1").header_time == 900
    assert times(mine, "a:1").response_time == 950
    again = parse_upstream(_zone_text(zone))  # one more worker of this host
    assert times(again, "b:1").inflight_reqs == 1  # held's attempt, in flight
    mine.header(held, 0.02)
    mine.done(held, elapsed=0.03)
    assert times(again, "b:1") == times(mine, "b:1")
    assert times(again, "b:1").inflight_reqs == 0


# -- against a transcription of nginx's C code ----------------------------------------------

_server = st.fixed_dictionaries(
    {
        "weight": st.integers(1, 3),
        "max_fails": st.integers(0, 2),
        "fail_timeout": st.integers(0, 2),
        "max_conns": st.integers(0, 2),
        "down": st.booleans(),
    }
)
_op = st.one_of(
    st.tuples(st.just("start"), st.none() | st.integers(0, 6)),
    st.tuples(st.just("drain"), st.integers(0, 6)),
    st.tuples(st.just("header"), st.integers(0, 7), st.none() | st.integers(0, 6000)),
    st.tuples(
        st.just("end"),
        st.integers(0, 7),
        st.sampled_from(["ok", "ok", "failed", "next"]),
        st.none() | st.integers(0, 6000),
        st.none() | st.integers(0, 6000),
    ),
    st.tuples(st.just("abandon"), st.integers(0, 7)),
    st.tuples(st.just("tick"), st.integers(0, 2500)),
)


@settings(max_examples=300, deadline=None)
@given(
    primary=st.lists(_server, min_size=1, max_size=4),
    backup=st.lists(_server, max_size=2),
    header=st.booleans(),
    inflight=st.booleans(),
    ops=st.lists(_op, max_size=60),
)
def test_matches_a_transcription_of_nginxs_c_code(
    primary: list[dict[str, Any]],
    backup: list[dict[str, Any]],
    header: bool,
    inflight: bool,
    ops: list[tuple[Any, ...]],
) -> None:
    """Sticky hints (routes ``r0``... in server order; ``r5``, ``r6`` name no server) and
    ``attempts()`` loops, step for step with the transcription."""
    check_equals_nginx(primary, backup, header, inflight, ops, sticky=True)


# -- threads ----------------------------------------------------------------------------


def test_sixteen_threads_leave_nothing_counted() -> None:
    up = parse_upstream(
        "upstream u { least_time header inflight; server a:1 weight=2; server b:1 max_conns=4; "
        "server c:1; server z:1 backup; }"
    )
    errors: list[BaseException] = []
    counts: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(16)

    def work(seed: int) -> None:
        try:
            start.wait()
            for i in range(300):
                passing_on = (i + seed) % 7 == 0
                try:
                    for peer in up.attempts():
                        with lock:
                            counts[peer.name] = counts.get(peer.name, 0) + 1
                        if passing_on:
                            up.done(peer, retry=True, elapsed=0.001)
                            continue
                        up.header(peer, ((i * seed) % 50) / 1000)
                        up.done(peer, elapsed=((i * seed) % 90) / 1000 + 0.05)
                except NoLiveUpstreams:
                    # passed on by every peer it could take while other threads held b's
                    # 4 max_conns slots: nginx's NGX_BUSY, legitimately
                    if not passing_on:
                        raise
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(counts.values()) >= 16 * 300
    for peer in up.peers:
        assert peer.conns == 0
        assert peer.times is not None
        assert (peer.times.inflight_reqs, peer.times.inflight_last) == (0, 0)
    assert set(counts) >= {"a:1", "b:1", "c:1"}
