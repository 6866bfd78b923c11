"""Upstream at run time: attempts that give back what they took, asyncio attempts,
non-failure retries and their limits, update() and drain() under traffic."""

from __future__ import annotations

import asyncio
import gc
import random
import threading

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers import LeastTime
from lbkit.nginx import parse_upstream

from .helpers import FakeClock, servers, wait_until


def _conns(up: lbkit.Upstream) -> list[int]:
    return [p.conns for p in up.peers]


# -- attempts give back what they took ------------------------------------------------


def test_break_gives_back_the_unreported_peer() -> None:
    up = lbkit.Upstream(servers(1, 1, 1), lbkit.LeastConn())
    for _peer in up.attempts():
        break
    assert _conns(up) == [0, 0, 0]


def test_exception_in_the_body_gives_back_the_peer() -> None:
    up = lbkit.Upstream(servers(1, 1))

    def proxy() -> None:
        for _peer in up.attempts():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        proxy()
    assert _conns(up) == [0, 0]
    assert all(p.fails == 0 for p in up.peers)


def test_closed_iterator_gives_back_the_peer() -> None:
    up = lbkit.Upstream(servers(1, 1))
    attempts = up.attempts()
    peer = next(attempts)
    assert peer.state.conns == 1
    attempts.close()
    assert _conns(up) == [0, 0]
    assert list(attempts) == []
    with pytest.raises(lbkit.UsageError):
        up.done(peer)  # given back counts as reported


def test_with_block_counts_an_escaping_error_as_a_failure() -> None:
    up = parse_upstream("upstream u { server a:1; server b:1; }")
    with pytest.raises(ConnectionError), up.attempts() as attempts:
        for _peer in attempts:
            raise ConnectionError("refused")
    assert _conns(up) == [0, 0]
    assert sum(p.fails for p in up.peers) == 1


def test_reported_peers_are_not_given_back_twice() -> None:
    up = lbkit.Upstream(servers(1, 1))
    for peer in up.attempts():
        up.done(peer)
        break
    gc.collect()
    assert _conns(up) == [0, 0]
    assert sum(p.requests for p in up.peers) == 1


@pytest.mark.parametrize("method", [lbkit.RoundRobin(), lbkit.LeastConn()])
def test_an_attempt_dropped_while_the_lock_is_held_is_given_back(method: lbkit.Method) -> None:
    """The garbage collector may run a dropped loop's finaliser inside pick() or done(),
    in the thread that holds the upstream's lock: the give-back neither waits for that
    lock (a deadlock) nor changes peers in the middle of that change (least_conn's buckets
    may be half-updated); it is made as soon as the change is over."""
    up = lbkit.Upstream(servers(1, 1), method)
    up.done(up.pick())  # a request-free pick first (its fast path)
    finished = threading.Event()
    inside: list[list[int]] = []

    def drop_inside_the_lock() -> None:
        attempts = up.attempts()
        next(attempts)
        cycle: list[object] = [attempts]
        cycle.append(cycle)  # freed only by the collector
        del attempts, cycle
        with up._lock:  # as pick() or done() hold it when the collector runs
            gc.collect()
            inside.append([p.conns for p in up._members.primary.peers])
            finished.set()

    thread = threading.Thread(target=drop_inside_the_lock, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert finished.is_set(), "the give-back waited for the lock its own thread held"
    assert sorted(inside[0]) == [0, 1], "the give-back changed a peer inside the lock"
    wait_until(lambda: _conns(up) == [0, 0], timeout=10)
    up.done(up.pick())
    assert _conns(up) == [0, 0]


def test_a_request_context_closed_without_an_exit_gives_its_peer_back() -> None:
    """A request() context entered and then dropped (its generator closed by the
    collector) has no outcome: its connection is given back, not counted as a failure."""
    up = lbkit.Upstream(servers(1, 1))
    context = up.request()
    peer = context.__enter__()
    del context
    gc.collect()
    assert peer.reported
    assert not peer.failed
    assert _conns(up) == [0, 0]
    assert all(p.fails == 0 for p in up.peers)


# -- asyncio ---------------------------------------------------------------------------


def test_cancelled_before_the_first_await_of_the_body() -> None:
    up = lbkit.Upstream(servers(1, 1), lbkit.LeastConn())

    async def proxy() -> None:
        async for _peer in up.attempts_async():
            await asyncio.Event().wait()

    async def main() -> None:
        tasks = [asyncio.create_task(proxy()) for _ in range(6)]
        gathered = asyncio.gather(*tasks, return_exceptions=True)  # waits before they run
        await asyncio.sleep(0)
        assert sum(_conns(up)) == 6
        for t in tasks:
            t.cancel()
        await gathered
        assert _conns(up) == [0, 0]

    asyncio.run(main())


def test_many_async_loops_in_one_task_leave_no_callbacks() -> None:
    up = lbkit.Upstream(servers(1, 1))

    async def main() -> None:
        for _ in range(200):
            async for peer in up.attempts_async():
                up.done(peer)
        task = asyncio.current_task()
        assert task is not None
        assert len(getattr(task, "_callbacks", None) or []) <= 1

    asyncio.run(main())


def test_async_attempts_retry_then_succeed() -> None:
    up = lbkit.Upstream(servers(1, 1, 1))

    async def main() -> list[str]:
        tried = []
        async for peer in up.attempts_async():
            tried.append(peer.name)
            up.done(peer, failed=len(tried) < 3)
        return tried

    tried = asyncio.run(main())
    assert len(set(tried)) == 3
    assert _conns(up) == [0, 0, 0]


def test_cancelled_tasks_leave_every_count_at_zero() -> None:
    up = lbkit.Upstream(servers(1, 2, 3), lbkit.LeastConn())

    async def proxy(started: asyncio.Event) -> None:
        async for peer in up.attempts_async():
            started.set()
            await asyncio.sleep(30)  # the backend is slow; the client goes away
            up.done(peer)

    async def proxy_with(started: asyncio.Event) -> None:
        async with up.attempts_async() as attempts:
            async for peer in attempts:
                started.set()
                await asyncio.sleep(30)
                up.done(peer)

    async def main() -> None:
        events = [asyncio.Event() for _ in range(40)]
        tasks = [
            asyncio.create_task((proxy if i % 2 else proxy_with)(e)) for i, e in enumerate(events)
        ]
        for e in events:
            await e.wait()
        assert sum(_conns(up)) == 40
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        # given back by the time the cancelled tasks are awaited, with the tracebacks (and
        # so the loop frames) still alive in `results`: no garbage collection needed
        assert _conns(up) == [0, 0, 0]

    gc.disable()
    try:
        asyncio.run(main())
    finally:
        gc.enable()
    assert _conns(up) == [0, 0, 0]
    assert all(p.fails == 0 for p in up.peers)


# -- non-failure retries and limits ------------------------------------------------------


def test_retry_goes_on_without_counting_a_failure() -> None:
    """proxy_next_upstream http_404: the next peer is tried, no failure is counted, and
    when every peer answered 404 the loop ends (nginx passes the last 404 on)."""
    up = parse_upstream("upstream u { server a:1 max_fails=1; server b:1; server c:1; }")
    tried = []
    for peer in up.attempts():
        tried.append(peer.name)
        up.done(peer, retry=True)
    assert sorted(tried) == ["a:1", "b:1", "c:1"]
    assert all(p.fails == 0 for p in up.peers)
    assert up.pick().name in {"a:1", "b:1", "c:1"}


def test_tries_limit() -> None:
    up = lbkit.Upstream(servers(1, 1, 1, 1))
    tried = []
    with pytest.raises(lbkit.TriesExhausted):
        for peer in up.attempts(tries=2):
            tried.append(peer.name)
            up.done(peer, failed=True)
    assert len(tried) == 2
    tried.clear()
    up = lbkit.Upstream(servers(1, 1, 1, 1))
    for peer in up.attempts(tries=3):
        tried.append(peer.name)
        up.done(peer, retry=True)
    assert len(tried) == 3


def test_timeout_limit_counts_from_the_first_try() -> None:
    clock = FakeClock()
    up = lbkit.Upstream(servers(1, 1, 1, 1), clock=clock)
    tried = []
    with pytest.raises(lbkit.TriesExhausted):
        for peer in up.attempts(timeout=5):
            tried.append(peer.name)
            clock.now += 3
            up.done(peer, failed=True)
    assert len(tried) == 2
    with pytest.raises(lbkit.ConfigError, match="tries"):
        up.attempts(tries=-1)
    with pytest.raises(lbkit.ConfigError, match="timeout"):
        up.attempts(timeout=0)


# -- update() and drain() ---------------------------------------------------------------


def test_update_keeps_the_state_of_peers_that_stay() -> None:
    clock = FakeClock()
    up = parse_upstream(
        "upstream u { server a:1 weight=3; server b:1; server c:1 max_fails=5; }", clock=clock
    )
    held = up.pick()
    failed = up.pick()
    up.done(failed, failed=True)
    before = {p.name: (p.conns, p.fails, p.current_weight) for p in up.peers}
    up.update(["c:1 max_fails=5", "b:1", "a:1 weight=3", "d:1 weight=2"])
    after = {p.name: (p.conns, p.fails, p.current_weight) for p in up.peers}
    for name in ("a:1", "b:1", "c:1"):
        assert after[name] == before[name]
    assert after["d:1"] == (0, 0, 0)
    assert [s.address for s in up.servers] == ["c:1", "b:1", "a:1", "d:1"]
    up.done(held)
    assert sum(_conns(up)) == 0


@pytest.mark.parametrize("method", [lbkit.RoundRobin(), lbkit.LeastConn(), LeastTime()])
def test_update_that_drops_slow_start_ends_a_running_ramp(method: lbkit.Method) -> None:
    # a peer on its slow-start ramp, updated without slow_start: at full weight at once,
    # and the next pick works (it used to trip over the ramp it still listed)
    clock = FakeClock()
    up = lbkit.Upstream(
        [lbkit.Server("a:1", weight=4, slow_start=10), lbkit.Server("b:1")], method, clock=clock
    )
    held = []
    while (peer := up.pick()).name != "a:1":
        held.append(peer)
    up.done(peer, failed=True)
    clock.now += 11  # fail_timeout (10 s) over: a:1 is probed
    for peer in held:
        up.done(peer)
    while (peer := up.pick()).name != "a:1":
        up.done(peer)
    up.done(peer)  # the probe succeeds: the ramp starts
    assert up.peer_state("a:1").ramp_start is not None
    up.update(["a:1 weight=4", "b:1"])
    assert up.peer_state("a:1").ramp_start is None
    for _ in range(5):
        up.done(up.pick())
    assert up.peer_state("a:1").weight == 4
    assert sum(_conns(up)) == 0


def test_update_with_server_objects_and_reweight() -> None:
    up = lbkit.Upstream(servers(1, 1))
    up.update([lbkit.Server("10.0.0.1:80", weight=3), lbkit.Server("10.0.0.2:80")])
    names = []
    for _ in range(8):
        peer = up.pick()
        names.append(peer.name)
        up.done(peer)
    assert names.count("10.0.0.1:80") == 6


def test_bad_update_changes_nothing() -> None:
    up = parse_upstream("upstream u { hash $k; server a:1; server b:1; }")
    for bad in (
        [],
        ["a:1", "a:1"],
        ["a:1 backup", "b:1"],
        ["a:1 weight=\u00b2"],
        ["a:99999"],
        [42],
    ):
        with pytest.raises(lbkit.ConfigError):
            up.update(bad)  # type: ignore[arg-type]
    assert [s.address for s in up.servers] == ["a:1", "b:1"]


def test_removed_peer_can_still_be_reported() -> None:
    up = lbkit.Upstream(servers(1, 1))
    running = up.pick()
    gone = running.name
    up.update([s for s in up.servers if s.address != gone])
    assert gone not in {p.name for p in up.peers}
    up.done(running, elapsed=0.1)
    assert running.state.conns == 0


def test_attempts_started_before_an_update_follow_it() -> None:
    up = lbkit.Upstream(servers(1, 1, 1))
    attempts = up.attempts()
    first = next(attempts)
    up.done(first, failed=True)
    survivors = [s for s in up.servers if s.address != first.name]
    up.update([*survivors, lbkit.Server("10.0.0.9:80")])
    rest = []
    for peer in attempts:  # the request keeps its tries (3): two more
        rest.append(peer.name)
        up.done(peer, failed=len(rest) < 2)
    assert first.name not in rest
    assert len(set(rest)) == len(rest) == 2
    assert sum(_conns(up)) == 0


def test_drain_takes_no_new_requests_and_running_ones_finish() -> None:
    up = parse_upstream("upstream u { least_conn; server a:1; server b:1; }")
    running = [up.pick() for _ in range(4)]
    up.drain("a:1")
    assert all(up.pick().name == "b:1" for _ in range(10))
    for peer in running:
        up.done(peer)
    assert up.peer_state("a:1").conns == 0
    assert up.peer_state("a:1").requests == 2
    with pytest.raises(lbkit.UnknownPeerError, match="no server"):
        up.drain("zz:1")
    up.update(["b:1"])
    assert [p.name for p in up.peers] == ["b:1"]


@pytest.mark.parametrize(
    "method",
    [lbkit.RoundRobin(), lbkit.LeastConn(), lbkit.Hash("$k", consistent=True), lbkit.Random()],
    ids=["round_robin", "least_conn", "hash_consistent", "random"],
)
def test_updates_under_eight_threads_of_picks(method: lbkit.Method) -> None:
    """8 threads pick and report while the membership changes: no error, no pick of a
    server removed by an update() that returned before the pick began, nothing leaked."""
    pool = [f"10.1.0.{i}:80" for i in range(1, 13)]
    up = lbkit.Upstream([lbkit.Server(a) for a in pool[:6]], method)
    lock = threading.Lock()
    removed_at: dict[str, int] = {}  # name -> update number after which it is gone
    version = [0]
    stop = threading.Event()
    errors: list[BaseException] = []
    late: list[str] = []

    def updater() -> None:
        rng = random.Random(3)
        try:
            for n in range(1, 200):
                members = rng.sample(pool, rng.randrange(1, len(pool)))
                up.update(members)
                with lock:
                    version[0] = n
                    for name in pool:
                        if name not in members:
                            removed_at.setdefault(name, n)
                        else:
                            removed_at.pop(name, None)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            stop.set()

    def picker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                with lock:
                    gone = {name for name, n in removed_at.items() if n <= version[0]}
                try:
                    peer = up.pick(key=str(rng.random()))
                except lbkit.NoLiveUpstreams:
                    continue
                if peer.name in gone and peer.name not in {s.address for s in up.servers}:
                    late.append(peer.name)
                up.done(peer, failed=rng.random() < 0.05)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=picker, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=updater))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert not late
    assert all(p.conns == 0 for p in up.peers)


def test_no_pick_of_a_removed_peer_once_update_returns() -> None:
    up = lbkit.Upstream(servers(1, 1, 1, 1), lbkit.LeastConn())
    errors: list[str] = []
    stop = threading.Event()
    # members[v]: the servers after update number v (appended once update() returned)
    members: list[set[str]] = [{s.address for s in up.servers}]

    def picker() -> None:
        while not stop.is_set():
            v = len(members) - 1  # update v had returned before this pick began
            peer = up.pick()
            if not any(peer.name in m for m in members[v:]):
                errors.append(peer.name)
            up.done(peer)

    threads = [threading.Thread(target=picker) for _ in range(8)]
    for t in threads:
        t.start()
    rng = random.Random(1)
    names = [f"10.0.0.{i}:80" for i in range(1, 9)]
    for _ in range(300):
        chosen = set(rng.sample(names, 3))
        up.update(sorted(chosen))
        members.append(chosen)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert all(p.conns == 0 for p in up.peers)


@settings(max_examples=40, deadline=None)
@given(
    names=st.lists(
        st.integers(1, 250).map(lambda i: f"10.2.0.{i}:80"), min_size=2, max_size=12, unique=True
    ),
    data=st.data(),
)
def test_consistent_hash_update_moves_only_the_keys_it_implies(
    names: list[str], data: st.DataObject
) -> None:
    """Removing servers moves only their keys; adding servers moves keys only to them."""
    keys = [f"key-{i}" for i in range(300)]
    up = lbkit.Upstream([lbkit.Server(n) for n in names], lbkit.Hash("$k", consistent=True))

    def owners() -> list[str]:
        out = []
        for k in keys:
            peer = up.pick(key=k)
            up.done(peer)
            out.append(peer.name)
        return out

    before = owners()
    removed = set(data.draw(st.lists(st.sampled_from(names), max_size=len(names) - 1)))
    added = [f"10.3.0.{i}:80" for i in range(data.draw(st.integers(0, 3)))]
    up.update([n for n in names if n not in removed] + added)
    after = owners()
    for old, new in zip(before, after, strict=True):
        if old in removed:
            assert new not in removed
        else:
            assert new in (old, *added)


# -- the servers read from the peers ---------------------------------------------------


def test_configured_stays_as_made_and_servers_follow_updates() -> None:
    first = servers(1, 2, 3)
    up = lbkit.Upstream(first)
    assert up.configured == up.servers == tuple(first)
    up.update(["10.0.0.9:80", "10.0.0.2:80 weight=5"])
    assert up.configured == tuple(first)
    assert [(s.address, s.weight) for s in up.servers] == [("10.0.0.9:80", 1), ("10.0.0.2:80", 5)]
    backups = parse_upstream("upstream u { server a:1 backup; server b:1; server c:1 backup; }")
    assert [s.address for s in backups.servers] == ["a:1", "b:1", "c:1"]
    assert backups.configured == backups.servers


def test_servers_and_configured_are_never_half_updated_under_16_threads() -> None:
    # The same addresses with other weights: the first update() changes the servers of
    # the peers the upstream read its servers from. Each round makes a fresh upstream.
    one = tuple(lbkit.Server(f"10.1.{i // 250}.{i % 250 + 1}:80") for i in range(2000))
    two = tuple(attrs.evolve(s, weight=2) for s in one)
    current = [lbkit.Upstream(one)]
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            up = current[0]
            read = up.servers
            if read not in (one, two):
                seen.append("servers: some old, some new")
            if up.configured != one:
                seen.append("configured: not as made")

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            up = lbkit.Upstream(one)
            current[0] = up
            up.update(two)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert seen == []
