"""The fast paths of the methods choose exactly what nginx's plain O(n) scan chooses.

The reference for round robin and least_conn is a method whose picker only runs nginx's
scan (``get_round_robin_peer``, ``get_least_conn_peer``); for the hash methods it is the
same picker without its ``first`` (the answer for a plain pick without request state).
Both upstreams get the same random configuration and the same random run of picks, held
connections, failures, clock steps, drains, give-backs, retries and updates, and must agree
on every choice and every peer field after every step. Deliberately broken fast paths must
make the property fail (the last tests here), so it is known to catch a wrong one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers._least_conn import get_least_conn_peer
from lbkit.balancers._least_conn_picker import LeastConnBuckets, LeastConnPicker
from lbkit.balancers._round_robin import SmoothPicker, get_round_robin_peer
from lbkit.upstream import Method, PeerGroup, PeerState, Picker, RequestState
from tests.helpers import SEARCH_FOR_THE_BUG, FakeClock


@attrs.frozen
class _ScanPicker:
    scan: Callable[[RequestState, int], PeerState | None]

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        return self.scan(request, now)


@attrs.frozen
class Rebound:
    """A method with the flags of ``like`` whose picker is ``make(primary)``."""

    like: Method
    make: Callable[[PeerGroup], Picker]

    @property
    def kind(self) -> str:
        return self.like.kind

    @property
    def supports_backup(self) -> bool:
        return self.like.supports_backup

    @property
    def needs_key(self) -> bool:
        return self.like.needs_key

    @property
    def needs_client_addr(self) -> bool:
        return self.like.needs_client_addr

    def bind(self, primary: PeerGroup) -> Picker:
        return self.make(primary)


def scan_round_robin() -> Rebound:
    """Round robin by nginx's scan alone: the reference."""
    return Rebound(lbkit.RoundRobin(), lambda _: _ScanPicker(get_round_robin_peer))


def scan_least_conn() -> Rebound:
    """least_conn by nginx's scan alone: the reference."""
    return Rebound(lbkit.LeastConn(), lambda _: _ScanPicker(get_least_conn_peer))


@attrs.frozen
class _GetOnlyPicker:
    inner: Any

    def begin(self, request: RequestState) -> None:
        self.inner.begin(request)

    def get(self, request: RequestState, now: int) -> PeerState | None:
        return self.inner.get(request, now)  # type: ignore[no-any-return]


def without_first(method: Method) -> Rebound:
    """``method`` whose picker answers every pick by its full ``get`` (no ``first``)."""
    return Rebound(method, lambda g: _GetOnlyPicker(method.bind(g)))


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
            p.requests,
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
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(
        st.just("done"), st.integers(0, 20), st.sampled_from(["ok", "ok", "failed", "retry"])
    ),
    st.tuples(st.just("give_back"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("drain"), st.integers(0, 20)),
    st.tuples(st.just("attempts"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("update"), st.integers(1, 2**8 - 1)),
    st.tuples(
        st.just("read"),
    ),
)

#: Hash keys (the empty one falls back to round robin, as in nginx) and client addresses.
#: Few of them, so that a run often comes back to the peer of an earlier key.
KEYS = ["/a", "", "/item/1", "\u00e9"]
ADDRS = ["10.0.0.1", "192.168.7.7", "2001:db8::5", "10.0.1.1"]


def _request_args(method: Method, k: int) -> dict[str, str]:
    if method.needs_key:
        return {"key": KEYS[k % len(KEYS)]}
    if method.needs_client_addr:
        return {"client_addr": ADDRS[k % len(ADDRS)]}
    return {}


def _step(
    op: tuple[Any, ...],
    up: lbkit.Upstream,
    mine: list[lbkit.upstream.Peer],
    method: Method,
    servers: list[lbkit.Server],
) -> object:
    """Apply ``op`` to one upstream (``mine``: the peers it holds); what it gives back."""
    kind = op[0]
    if kind == "pick":
        peer = up.pick(**_request_args(method, op[2]))
        if op[1]:
            mine.append(peer)
        else:
            up.done(peer)
        return peer.name
    if kind in ("done", "give_back"):
        if not mine:
            return "-"
        peer = mine.pop(op[1] % len(mine))
        if kind == "give_back":
            up.give_back(peer)
        else:
            up.done(peer, failed=op[2] == "failed", retry=op[2] == "retry")
        return peer.name
    if kind == "idle":  # picks each reported before the next
        return [_step(("pick", False, k), up, mine, method, servers) for k in range(op[1])]
    if kind == "hold":  # picks held at once
        return [_step(("pick", True, k), up, mine, method, servers) for k in range(op[1])]
    if kind == "release":  # every held pick reported, from the op[1]-th on (round)
        return [_step(("done", op[1], "ok"), up, mine, method, servers) for _ in list(mine)]
    if kind == "fail":  # a pick that fails
        peer = up.pick(**_request_args(method, 0))
        up.done(peer, failed=True)
        return peer.name
    if kind == "drain":
        return up.drain(servers[op[1] % len(servers)].address)
    if kind == "update":
        keep = [s for i, s in enumerate(servers) if op[1] >> i & 1]
        return up.update(keep if keep and not all(s.backup for s in keep) else servers)
    if kind == "attempts":
        names = []
        try:
            for peer in up.attempts(**_request_args(method, op[2])):
                names.append(peer.name)
                up.done(peer, failed=len(names) <= op[1])
        except lbkit.LbkitError as exc:
            names.append(type(exc).__name__)
        return names
    return _fields(up)


def check_fast_path_equals_scan(
    fast_method: Method,
    ref_method: Method,
    configs: list[dict[str, Any]],
    ops: list[tuple[Any, ...]],
    warm: int,
    fast_upstream: type[lbkit.Upstream] = lbkit.Upstream,
    after_each: Callable[[lbkit.Upstream, lbkit.Upstream], None] | None = None,
) -> None:
    """Run ``ops`` on an upstream of each method; every result and peer field must agree
    (``after_each`` checks more after every step).

    The fast method's picks come back to ``done()`` without request state (its inline
    end of an attempt), the reference's with it (the full end)."""
    if not fast_method.supports_backup:
        for c in configs:
            c["backup"] = False
            c["slow_start"] = 0
    if all(c["backup"] for c in configs):
        configs[0]["backup"] = False
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", **c) for i, c in enumerate(configs)]
    clocks = [FakeClock(), FakeClock()]
    ups = [
        fast_upstream(servers, fast_method, clock=clocks[0]),
        lbkit.Upstream(servers, ref_method, clock=clocks[1]),
    ]
    held: list[list[lbkit.upstream.Peer]] = [[], []]
    warm_ops = [("pick", False, i) for i in range(warm)]
    for op in warm_ops + ops:
        if op[0] == "tick":
            for clock in clocks:
                clock.now += op[1]
            continue
        results = []
        for up, mine in zip(ups, held, strict=True):
            try:
                results.append(_step(op, up, mine, fast_method, servers))
            except lbkit.LbkitError as exc:  # 502, or a drain of a server updated away
                results.append(type(exc).__name__)
        assert results[0] == results[1], op
        if after_each is not None:
            after_each(*ups)
    assert _fields(ups[0]) == _fields(ups[1])


#: (method with its fast path, the reference without it), by name.
PAIRS: dict[str, tuple[Callable[[], Method], Callable[[], Method]]] = {
    "round_robin": (lbkit.RoundRobin, scan_round_robin),
    "least_conn": (lbkit.LeastConn, scan_least_conn),
    "hash": (lambda: lbkit.Hash(), lambda: without_first(lbkit.Hash())),
    "hash consistent": (
        lambda: lbkit.Hash(consistent=True),
        lambda: without_first(lbkit.Hash(consistent=True)),
    ),
    "ip_hash": (lbkit.IpHash, lambda: without_first(lbkit.IpHash())),
}

scenario = {
    "configs": st.lists(server_st, min_size=1, max_size=7),
    "ops": st.lists(op_st, max_size=80),
    "warm": st.integers(0, 30),
}


#: Servers that leave least_conn's fast path on most of the time (no max_conns reached,
#: few failures, no slow start), and runs that hold many connections: the fast path then
#: answers with peers busy, ties among part of the peers and connections ending.
held_server_st = st.builds(
    dict,
    weight=st.integers(1, 4),
    max_fails=st.sampled_from([0, 0, 0, 1]),
    fail_timeout=st.integers(0, 5),
    max_conns=st.sampled_from([0, 0, 0, 0, 0, 3]),
    backup=st.sampled_from([False, False, False, False, True]),
    down=st.sampled_from([False] * 9 + [True]),
    slow_start=st.just(0),
)

held_op_st = st.one_of(
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("done"), st.integers(0, 20), st.just("ok")),
    st.tuples(st.just("done"), st.integers(0, 20), st.sampled_from(["ok", "failed", "retry"])),
    st.tuples(st.just("give_back"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("attempts"), st.integers(0, 1), st.integers(0, 3)),
    st.tuples(st.just("update"), st.integers(1, 2**8 - 1)),
)

held_scenario = {
    "configs": st.lists(held_server_st, min_size=2, max_size=12),
    "ops": st.lists(held_op_st, min_size=20, max_size=120),
    "warm": st.integers(0, 30),
}

#: Long runs of held picks and ends of connections in any order, as a busy server sees:
#: some peers stay busy while others come and go through the same connection counts, so
#: least_conn's buckets fill with stale heap entries and compact them, and emptied
#: buckets are used again.
churn_op_st = st.one_of(
    st.tuples(st.just("pick"), st.just(True), st.integers(0, 3)),
    st.tuples(st.just("done"), st.integers(0, 40), st.just("ok")),
)

churn_scenario = {
    "configs": st.lists(held_server_st, min_size=2, max_size=12),
    "ops": st.lists(churn_op_st, min_size=100, max_size=300),
    "warm": st.just(0),
}


#: Servers and runs that take the fast paths off and let them come back: bursts of held
#: connections released, failures that expire, reads of the peers, updates, each followed
#: by runs of idle picks longer than an order (least_conn goes back to round robin's
#: precomputed order once every peer has been idle as many times as the order is long).
recover_server_st = st.builds(
    dict,
    weight=st.integers(1, 3),
    max_fails=st.sampled_from([0, 1, 1, 2]),
    fail_timeout=st.integers(0, 3),
    max_conns=st.sampled_from([0, 0, 0, 0, 2]),
    backup=st.sampled_from([False] * 5 + [True]),
    down=st.sampled_from([False] * 19 + [True]),
    slow_start=st.sampled_from([0, 0, 0, 0, 2]),
)

recover_op_st = st.one_of(
    st.tuples(st.just("idle"), st.integers(1, 60)),
    st.tuples(st.just("idle"), st.integers(20, 60)),
    st.tuples(st.just("idle"), st.integers(20, 60)),
    st.tuples(st.just("hold"), st.integers(1, 6)),
    st.tuples(st.just("hold"), st.integers(1, 6)),
    st.tuples(st.just("release"), st.integers(0, 5)),
    st.tuples(st.just("release"), st.integers(0, 5)),
    st.tuples(st.just("done"), st.integers(0, 20), st.sampled_from(["ok", "failed", "retry"])),
    st.tuples(st.just("give_back"), st.integers(0, 20)),
    st.tuples(st.just("fail")),
    st.tuples(st.just("tick"), st.integers(0, 4)),
    st.tuples(st.just("read")),
    st.tuples(st.just("update"), st.integers(1, 2**8 - 1)),
    st.tuples(st.just("attempts"), st.integers(0, 1), st.integers(0, 3)),
)

recover_scenario = {
    "configs": st.lists(recover_server_st, min_size=2, max_size=7),
    "ops": st.lists(recover_op_st, min_size=5, max_size=40),
    "warm": st.integers(0, 10),
}


#: Runs of failures, clock steps and picks: a success after a failure and a fail_timeout,
#: which ends the probe and forgets the failures, comes up often (on the fast paths too).
probe_op_st = st.one_of(
    st.tuples(st.just("pick"), st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("done"), st.integers(0, 20), st.sampled_from(["ok", "failed", "failed"])),
    st.tuples(st.just("tick"), st.integers(0, 4)),
)

probe_scenario = {
    "configs": st.lists(server_st, min_size=1, max_size=5),
    "ops": st.lists(probe_op_st, max_size=60),
    "warm": st.integers(0, 10),
}


@pytest.mark.parametrize("name", list(PAIRS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**probe_scenario)
def test_fast_path_ends_fail_timeout_probes_as_nginx_scan(
    name: str, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    fast, ref = PAIRS[name]
    check_fast_path_equals_scan(fast(), ref(), configs, ops, warm)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**held_scenario)
def test_least_conn_fast_path_with_held_connections_equals_nginx_scan(
    configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    check_fast_path_equals_scan(lbkit.LeastConn(), scan_least_conn(), configs, ops, warm)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**churn_scenario)
def test_least_conn_fast_path_with_churning_connections_equals_nginx_scan(
    configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    check_fast_path_equals_scan(lbkit.LeastConn(), scan_least_conn(), configs, ops, warm)


@pytest.mark.parametrize("name", ["round_robin", "least_conn"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**recover_scenario)
def test_fast_path_coming_back_equals_nginx_scan(
    name: str, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    fast, ref = PAIRS[name]
    check_fast_path_equals_scan(fast(), ref(), configs, ops, warm)


@pytest.mark.parametrize("name", list(PAIRS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**scenario)
def test_fast_path_equals_nginx_scan(
    name: str, configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int
) -> None:
    fast, ref = PAIRS[name]
    check_fast_path_equals_scan(fast(), ref(), configs, ops, warm)


def test_fast_path_leaves_a_peer_that_reached_max_conns() -> None:
    up = lbkit.Upstream([lbkit.Server("10.0.0.1:80", max_conns=1), lbkit.Server("10.0.0.2:80")])
    held = [up.pick() for _ in range(3)]
    assert [p.name for p in held] == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.2:80"]


def test_fast_path_follows_a_failure_as_the_scan_does() -> None:
    servers = [lbkit.Server(f"10.0.0.{i}:80", weight=i, max_fails=2) for i in (1, 2, 3)]
    fast = lbkit.Upstream(servers)
    ref = lbkit.Upstream(servers, scan_round_robin())  # type: ignore[arg-type]
    for up in (fast, ref):
        for _ in range(4):
            up.done(up.pick())
        up.done(up.pick(), failed=True)
    names = [[up.pick().name for _ in range(12)] for up in (fast, ref)]
    assert names[0] == names[1]
    assert _fields(fast) == _fields(ref)


def _in_16_threads(work: Callable[[int], object]) -> None:
    """Run ``work(i)`` for i in 0..15, each in its own thread, all at once."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_fast_path_from_16_threads_keeps_nginx_counts() -> None:
    """Picks from 16 threads at once: every peer gets exactly its weight's share of each
    period (round robin ignores conns without max_conns), no connection stays counted, and
    the current weights written back are those of the scan after as many picks."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(48)]
    clock = FakeClock()  # (on the real clock a second may turn between the two runs)
    up = lbkit.Upstream(servers, clock=clock)
    period = sum(s.weight for s in servers)
    rounds = 4 * period // 16  # 96 * 4 picks: four whole periods

    def work() -> None:
        for _ in range(rounds):
            up.done(up.pick())

    _in_16_threads(lambda _: work())
    assert [p.requests for p in up.peers] == [4 * s.weight for s in servers]
    assert all(p.conns == 0 for p in up.peers)
    ref = lbkit.Upstream(servers, scan_round_robin(), clock=clock)  # type: ignore[arg-type]
    for _ in range(16 * rounds):
        ref.done(ref.pick())
    assert _fields(up) == _fields(ref)


# -- the property catches wrong fast paths ----------------------------------------------


class _StaleClockPicker(SmoothPicker):
    """Broken: the fast path never restarts the fail_timeout probe clock (``checked``)."""

    __slots__ = ()

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        return super().first(key, addr, 0)


@attrs.frozen
class _BrokenHashPicker:
    """Broken: the fast path takes the hashed peer without asking if it is available."""

    inner: Any
    group: PeerGroup

    def begin(self, request: RequestState) -> None:
        self.inner.begin(request)

    def get(self, request: RequestState, now: int) -> PeerState | None:
        return self.inner.get(request, now)  # type: ignore[no-any-return]

    def first(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        group = self.group
        if group.single or not key:
            return None
        peer = group.peer_at(lbkit.hashing.memcached_crc15(key) % group.total_weight)
        return lbkit.upstream.take_first(peer, now)


class _DeafBuckets(LeastConnBuckets):
    """Broken: the fast path does not follow connections that end (done, give_back)."""

    __slots__ = ()

    def released(self, state: PeerState) -> None:
        """Ignore it."""


class _UntoldPicker(LeastConnPicker):
    """Broken: the buckets take over from the idle order (a pick found a peer busy) but
    the upstream is not told to tell them of the connections that end."""

    __slots__ = ()

    def _first_busy(self, key: bytes, addr: bytes, now: int) -> PeerState | None:
        SmoothPicker.sync(self)
        self._buckets.start()
        return self._buckets.first(key, addr, now)


class _OneWeightBuckets(LeastConnBuckets):
    """Broken: peers of different weights with the same connections per weight do not tie
    (only the first weight with the lowest fraction takes the round-robin step)."""

    __slots__ = ()

    def _tie(self) -> list[Any]:
        tied = super()._tie()
        del tied[1:]  # (the list the buckets keep)
        return tied


class _StaleTieBuckets(LeastConnBuckets):
    """Broken: the tie set kept between picks is not found again when an ended connection
    makes a lower bucket (the peer that now has the fewest connections is passed over)."""

    __slots__ = ()

    def released(self, state: PeerState) -> None:
        tied = self._tied
        super().released(state)
        if self._fast and tied is not None and all(bucket.live for bucket in tied):
            self._tied = tied


class _DriftingCompactBuckets(LeastConnBuckets):
    """Broken: compacting a bucket's heap (dropping its stale entries) takes one from the
    current weight of every peer left in it."""

    __slots__ = ()

    def _compact(self, bucket: Any) -> None:
        super()._compact(bucket)
        bucket.heap = [(key + 1, index) for key, index in bucket.heap]
        for entry in bucket.heap:
            self._entry[entry[1]] = entry


class _RestartingResumePicker(LeastConnPicker):
    """Broken: the idle order stopped by a sync (a read of the peers) is taken up again
    at the start of its period, not where it stopped."""

    __slots__ = ()

    def _resume(self) -> None:
        super()._resume()
        self._pos = 0


class _RestartingRoundRobin(SmoothPicker):
    """Broken: round robin's order stopped by a sync is taken up again at the start of
    its period, not where it stopped."""

    __slots__ = ()

    def _resume(self) -> None:
        super()._resume()
        self._pos = 0


class _ResetIdlePicker(LeastConnPicker):
    """Broken: when every peer is idle again the idle order takes over from the start of
    a fresh upstream's (all current weights 0), not from the current weights."""

    __slots__ = ()

    def _idle(self) -> None:
        if self._allows_order():
            self._buckets.sync()
            self.released = None
            self._try_fast()
            self._base = None
            self._order = self._period([0] * len(self._peers))


class _ProbeBlindUpstream(lbkit.Upstream):
    """Broken: done() ends every request-free success inline, also the one that ends a
    fail_timeout probe (its peer's failures are then never forgotten)."""

    def done(
        self,
        peer: lbkit.upstream.Peer,
        failed: bool = False,
        elapsed: float | None = None,
        *,
        retry: bool = False,
        header_time: float | None = None,
    ) -> None:
        if failed or retry or peer.request is not None or peer.reported:
            super().done(peer, failed, elapsed, retry=retry, header_time=header_time)
            return
        with self._lock:
            peer.reported = True
            state = peer.state
            state.conns -= 1
            state.refresh()
            state.requests += 1
            released = self._members.follower.released
            if released is not None:
                released(state)


BROKEN: dict[str, tuple[Callable[[], Method], Callable[[], Method]]] = {
    "least_conn deaf to ended connections": (
        lambda: Rebound(
            lbkit.LeastConn(), lambda g: LeastConnPicker(g, get_least_conn_peer, _DeafBuckets)
        ),
        scan_least_conn,
    ),
    "least_conn buckets started from the idle order untold of ended connections": (
        lambda: Rebound(lbkit.LeastConn(), lambda g: _UntoldPicker(g, get_least_conn_peer)),
        scan_least_conn,
    ),
    "least_conn with ties within one weight only": (
        lambda: Rebound(
            lbkit.LeastConn(), lambda g: LeastConnPicker(g, get_least_conn_peer, _OneWeightBuckets)
        ),
        scan_least_conn,
    ),
    "least_conn keeping its tie set when a lower bucket fills": (
        lambda: Rebound(
            lbkit.LeastConn(), lambda g: LeastConnPicker(g, get_least_conn_peer, _StaleTieBuckets)
        ),
        scan_least_conn,
    ),
    "least_conn compacting a heap with drift": (
        lambda: Rebound(
            lbkit.LeastConn(),
            lambda g: LeastConnPicker(g, get_least_conn_peer, _DriftingCompactBuckets),
        ),
        scan_least_conn,
    ),
    "least_conn ignoring busy peers": (
        lambda: Rebound(lbkit.LeastConn(), lambda g: SmoothPicker(g, get_least_conn_peer)),
        scan_least_conn,
    ),
    "least_conn taking the idle order up at the start of its period": (
        lambda: Rebound(
            lbkit.LeastConn(), lambda g: _RestartingResumePicker(g, get_least_conn_peer)
        ),
        scan_least_conn,
    ),
    "least_conn back to the idle order from reset weights": (
        lambda: Rebound(lbkit.LeastConn(), lambda g: _ResetIdlePicker(g, get_least_conn_peer)),
        scan_least_conn,
    ),
    "round robin taking its order up at the start of its period": (
        lambda: Rebound(lbkit.RoundRobin(), _RestartingRoundRobin),
        scan_round_robin,
    ),
    "round robin not restarting checked": (
        lambda: Rebound(lbkit.RoundRobin(), _StaleClockPicker),
        scan_round_robin,
    ),
    "hash ignoring availability": (
        lambda: Rebound(lbkit.Hash(), lambda g: _BrokenHashPicker(lbkit.Hash().bind(g), g)),
        lambda: without_first(lbkit.Hash()),
    ),
}


#: The broken variants of a fast path coming back (searched with the runs that take it
#: off and let it come back).
COMING_BACK = {
    "least_conn taking the idle order up at the start of its period",
    "least_conn back to the idle order from reset weights",
    "round robin taking its order up at the start of its period",
}


#: Broken ends of a request-free attempt (done()), with the method they run under (hash:
#: its fast path also answers for a peer with failures, so the case comes up often).
BROKEN_UPSTREAMS: dict[str, tuple[type[lbkit.Upstream], str]] = {
    "done() not ending a fail_timeout probe": (_ProbeBlindUpstream, "hash"),
}


@pytest.mark.parametrize("name", list(BROKEN) + list(BROKEN_UPSTREAMS))
def test_property_fails_for_a_broken_fast_path(name: str) -> None:
    upstream: type[lbkit.Upstream] = lbkit.Upstream
    if name in BROKEN_UPSTREAMS:
        upstream, method = BROKEN_UPSTREAMS[name]
        fast, ref = PAIRS[method]
    else:
        fast, ref = BROKEN[name]
    scenario_st = (
        recover_scenario
        if name in COMING_BACK
        else churn_scenario
        if name.startswith(("least_conn compacting", "least_conn keeping"))
        else held_scenario
        if name.startswith("least_conn")
        else probe_scenario
        if name in BROKEN_UPSTREAMS
        else scenario
    )

    @SEARCH_FOR_THE_BUG
    @given(**scenario_st)
    def prop(configs: list[dict[str, Any]], ops: list[tuple[Any, ...]], warm: int) -> None:
        check_fast_path_equals_scan(fast(), ref(), configs, ops, warm, upstream)

    with pytest.raises(AssertionError):
        prop()


def test_least_conn_fast_path_from_16_threads_leaves_nothing_counted() -> None:
    """least_conn from 16 threads at once (peers busy at the same time, so the fast path
    and the scan alternate): every pick is counted once, no connection stays counted, and
    afterwards the fast path chooses what the scan chooses from the same state."""
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(48)]
    up = lbkit.Upstream(servers, lbkit.LeastConn())
    rounds = 300

    def work() -> None:
        for _ in range(rounds):
            up.done(up.pick())

    _in_16_threads(lambda _: work())
    assert sum(p.requests for p in up.peers) == 16 * rounds
    assert all(p.conns == 0 for p in up.peers)
    ref = lbkit.Upstream(servers, scan_least_conn())  # type: ignore[arg-type]
    for mine, theirs in zip(up.peers, ref.peers, strict=True):
        theirs.current_weight = mine.current_weight
    assert [up.pick().name for _ in range(200)] == [ref.pick().name for _ in range(200)]


@pytest.mark.parametrize("name", ["hash", "hash consistent", "ip_hash"])
def test_hash_fast_path_from_16_threads_sends_each_key_to_its_peer(name: str) -> None:
    """Hash picks from 16 threads at once: with every peer healthy each key goes to the
    peer the scan gives it, every time; nothing stays counted."""
    fast, ref = PAIRS[name]
    servers = [lbkit.Server(f"10.0.0.{i + 1}:80", weight=1 + i % 3) for i in range(20)]
    up = lbkit.Upstream(servers, fast())
    reference = lbkit.Upstream(servers, ref())
    method = up.method
    choices = {k: reference.pick(**_request_args(method, k)).name for k in (1, 2, 3)}
    if not method.needs_client_addr:
        del choices[1]  # the empty key: round robin, not the hash
    seen: list[list[tuple[int, str]]] = [[] for _ in range(16)]

    def work(out: list[tuple[int, str]]) -> None:
        for i in range(200):
            k = 3 if i % 2 else 2 if method.needs_key else 1 + i % 3
            peer = up.pick(**_request_args(method, k))
            out.append((k, peer.name))
            up.done(peer)

    _in_16_threads(lambda i: work(seen[i]))
    assert all(name == choices[k] for out in seen for k, name in out)
    assert sum(p.requests for p in up.peers) == 16 * 200
    assert all(p.conns == 0 for p in up.peers)


def test_least_conn_on_idle_intact_peers_answers_from_round_robins_order() -> None:
    """While every peer is idle and intact least_conn answers from round robin's
    precomputed order (O(1)), not from its busy-time buckets, from the very first pick on
    (a regression once left the buckets answering, at three times the cost)."""
    up = lbkit.Upstream(
        [lbkit.Server(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(10)], lbkit.LeastConn()
    )
    for _ in range(25):
        peer = up.pick()
        assert peer.request is None  # no request state: the request-free path
        assert up._members.picker.fast  # type: ignore[attr-defined]
        up.done(peer)


def test_least_conn_upstream_calls_the_part_that_answers() -> None:
    """The upstream calls least_conn's answering part itself (one call a pick): the idle
    order's first() while every peer is idle, the buckets' once connections are held, the
    idle order's again when the scan tries again after a sync with every peer idle, and
    the buckets' when it tries again with a connection held."""
    servers = [lbkit.Server(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(1, 5)]
    up = lbkit.Upstream(servers, lbkit.LeastConn())
    members = up._members
    picker: Any = members.picker
    assert members.first == picker.first
    held = [up.pick() for _ in range(3)]
    assert members.first == picker._buckets.first
    for peer in held:
        up.done(peer)
    assert [p.conns for p in up.peers] == [0, 0, 0, 0]  # (a read of the peers syncs)
    assert not picker._buckets.fast
    for _ in range(len(servers) + 1):
        up.done(up.pick())  # nginx's scan, then the idle order starts again
    assert picker.fast
    assert members.first == picker.first
    held = [up.pick()]
    assert [p.conns for p in up.peers].count(1) == 1  # (a read: the order stops)
    for _ in range(len(servers) + 1):
        up.done(up.pick())  # nginx's scan (a peer busy), then the buckets start again
    assert picker._buckets.fast
    assert members.first == picker._buckets.first
    up.done(held[0])


def _after(kind: str, up: lbkit.Upstream, clock: FakeClock) -> None:
    """Bring ``up`` (least_conn, its peers idle) off its precomputed order by ``kind``."""
    if kind == "read":
        assert all(p.conns == 0 for p in up.peers)  # a read of the peers syncs them
    elif kind == "expired failure":
        up.done(up.pick(), failed=True)
        clock.now += 11  # past fail_timeout (10 s): the next pick probes the peer
    elif kind == "held then released":
        held = [up.pick() for _ in range(5)]
        for peer in held[::2] + held[1::2]:
            up.done(peer)
    elif kind == "update":
        up.update([*up.servers[:-1], lbkit.Server("10.0.0.9:80", weight=2)])
        held = [up.pick() for _ in range(2)]
        for peer in held:
            up.done(peer)


@pytest.mark.parametrize("kind", ["read", "expired failure", "held then released", "update"])
def test_least_conn_idle_again_answers_from_round_robins_order(kind: str) -> None:
    """Once every peer is idle and intact again least_conn goes back to round robin's
    precomputed order (its cheapest path), whatever took it off: a read of the peers, a
    failure that expired, connections held then released, an update. Within a few periods
    of idle picks the upstream calls the order's first() again, and the choices and
    weights are still nginx's scan's."""
    servers = [lbkit.Server(f"10.0.0.{i}:80", weight=1 + i % 3) for i in range(1, 7)]
    clocks = [FakeClock(), FakeClock()]
    up = lbkit.Upstream(servers, lbkit.LeastConn(), clock=clocks[0])
    ref = lbkit.Upstream(servers, scan_least_conn(), clock=clocks[1])  # type: ignore[arg-type]
    picker: Any = up._members.picker
    for u, clock in zip((up, ref), clocks, strict=True):
        for _ in range(4):
            u.done(u.pick())
        _after(kind, u, clock)
    picker = up._members.picker  # (an update binds a new one)
    period = sum(p.weight for p in up.peers if not p.server.backup)
    answered = []
    for _ in range(4 * period):
        answered.append(up._members.first == picker.first and picker.fast)
        names = []
        for u in (up, ref):
            peer = u.pick()
            names.append(peer.name)
            u.done(peer)
        assert names[0] == names[1]
    assert answered[-period:] == [True] * period
    assert _fields(up) == _fields(ref)
