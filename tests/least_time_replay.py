"""Replaying a run of least_time steps on an :class:`~lbkit.Upstream` and on the
line-by-line transcription of nginx's C code (tests/least_time_reference.py) at once.

Shared by the property tests of tests/test_least_time.py (sticky hints, attempts) and
tests/test_least_time_fast_path.py (the buckets and the request-free pick).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import attrs
import pytest

import lbkit
from lbkit import NoLiveUpstreams, Server, TriesExhausted, Upstream
from lbkit.balancers import LeastTime, Sticky, StickyMethod
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


class Clock:
    """A settable clock in exact milliseconds (seconds and ms never disagree)."""

    def __init__(self, ms: int = 1_000_000) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return Fraction(self.ms, 1000)  # type: ignore[return-value]


#: The peer fields and the time fields compared with the transcription's.
FIELDS = ("conns", "fails", "effective_weight", "checked", "accessed")
TIME_FIELDS = (
    "header_time",
    "response_time",
    "inflight_time",
    "inflight_last",
    "inflight_reqs_changed",
    "inflight_reqs",
)


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


def check_equals_nginx(
    primary: list[dict[str, Any]],
    backup: list[dict[str, Any]],
    header: bool,
    inflight: bool,
    ops: list[tuple[Any, ...]],
    buckets: type[LeastTimeBuckets] = LeastTimeBuckets,
    *,
    sticky: bool = False,
) -> None:
    """Replay ``ops`` on an upstream of ``LeastTime`` (running ``buckets``) and on the
    transcription; every choice and every peer and time field must agree after each step.

    With ``sticky``, the method is wrapped in a route ``Sticky`` (routes ``r0``, ``r1``...
    in server order) and a ``("start", n)`` step's attempts carry the hint ``rn`` (n > the
    servers: a route no server has)."""
    clock = Clock(5_000_000)
    names = [f"p{i}:1" for i in range(len(primary))] + [f"b{i}:1" for i in range(len(backup))]
    specs = primary + backup
    servers = [
        Server(name, backup=i >= len(primary), **spec)
        for i, (name, spec) in enumerate(zip(names, specs, strict=True))
    ]
    method = LeastTime("header" if header else "last_byte", inflight=inflight)
    routes = {name: f"r{i}" for i, name in enumerate(names)}
    wrapped: object = (
        StickyMethod(method, Sticky("route", routes=routes))
        if sticky
        else WithBuckets(method, buckets)
    )
    up = Upstream(servers, wrapped, clock=clock)  # type: ignore[arg-type]
    refs = [
        RefPeer(name, sid=routes[name] if sticky else "", **spec)
        for name, spec in zip(names, specs, strict=True)
    ]
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
            hint = f"r{op[1]}" if sticky and len(op) > 1 and op[1] is not None else None
            it = up.attempts(sticky=hint)
            request = ref.init_peer(hint)
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
            assert [getattr(mine, f) for f in FIELDS] == [getattr(theirs, f) for f in FIELDS], (
                mine.name
            )
            assert [getattr(mine.times, f) for f in TIME_FIELDS] == [
                getattr(theirs, f) for f in TIME_FIELDS
            ], mine.name
