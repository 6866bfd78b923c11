"""The nginx-exact least_time core replays choices recorded from nginx 1.31.5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbkit.balancers.least_time_nginx import (
    LeastTimeAttempt,
    LeastTimePeer,
    NginxLeastTime,
    eta,
    ewma,
)
from lbkit.errors import ConfigError, RequestError

VECTORS = json.loads((Path(__file__).parent / "nginx_least_time.json").read_text())


def build(upstream: str) -> NginxLeastTime:
    lines = [line.strip().rstrip(";") for line in upstream.splitlines() if line.strip()]
    words = lines[0].split()
    assert words[0] == "least_time"
    peers = []
    for line in lines[1:]:
        name, *params = line.split()[1:]
        kw: dict[str, Any] = {}
        for p in params:
            key, _, value = p.partition("=")
            kw[key] = int(value.rstrip("s"))
        peers.append(LeastTimePeer(name.strip("{}"), **kw))
    return NginxLeastTime(peers, mode=words[1], inflight=len(words) > 2)  # type: ignore[arg-type]


def ms(seconds: str) -> int:
    return round(float(seconds) * 1000)


def replay(scenario: dict[str, Any]) -> tuple[str, str]:
    """Feed nginx's recorded times through the core; returns (core's picks, nginx's picks)."""
    lt = build(scenario["upstream"])
    by_name = {p.name: p for p in lt.peers}
    events: list[tuple[int, int, int, dict[str, Any]]] = []
    for rec in scenario["records"]:
        if "n" not in rec:
            continue
        end = round(float(rec["msec"]) * 1000)
        start = end - ms(rec["upstream_response_time"])
        header = start + ms(rec["upstream_header_time"])
        # at the same millisecond: ends first, then headers, then new picks
        events += [(start, 2, rec["n"], rec), (header, 1, rec["n"], rec), (end, 0, rec["n"], rec)]
    attempts: dict[int, LeastTimeAttempt] = {}
    picks: dict[int, str] = {}
    for at, kind, n, rec in sorted(events, key=lambda e: (e[0], e[1], e[2])):
        if kind == 2:
            attempt = lt.pick(at)
            assert attempt is not None
            attempts[n] = attempt
            picks[n] = attempt.peer.name
            # nginx connected to the backend the record names: follow it, to stay in step
            if attempt.peer.name != rec["backend"]:
                attempt.peer.conns -= 1
                attempts[n] = LeastTimeAttempt(by_name[rec["backend"]], attempt.in_flight)
                attempts[n].peer.conns += 1
        elif kind == 1:
            lt.header(attempts[n], ms(rec["upstream_header_time"]), at)
        else:
            lt.done(
                attempts[n], ms(rec["upstream_header_time"]), ms(rec["upstream_response_time"]), at
            )
    order = sorted(picks)
    got = "".join(picks[n] for n in order)
    want = "".join(r["backend"] for r in scenario["records"] if "n" in r)
    return got, want


def test_vectors_come_from_a_newer_nginx() -> None:
    major, minor, _ = (int(x) for x in VECTORS["nginx_version"].split("."))
    assert (major, minor) >= (1, 31)
    assert len(VECTORS["scenarios"]) >= 8


@pytest.mark.parametrize("scenario", VECTORS["scenarios"], ids=lambda s: s["name"])
def test_replay_matches_nginx(scenario: dict[str, Any]) -> None:
    got, want = replay(scenario)
    assert got == want


def test_ewma_rounds_half_up_and_restarts_from_zero() -> None:
    assert ewma(0, 37) == 37
    assert ewma(100, 0) == 95
    assert ewma(10, 20) == 11  # 0.5 + (1.0 + 9.5) = 11.0
    assert ewma(1, 0) == 1  # 0.5 + 0.95 = 1.45 -> 1
    assert ewma(0, 0) == 0


@pytest.mark.parametrize(
    ("rt", "bucket"),
    [(0, 20), (19, 20), (20, 40), (39, 40), (4999, 5000), (5000, 5020), (5001, 5000)],
)
def test_buckets_and_the_5000_ms_cap(rt: int, bucket: int) -> None:
    peer = LeastTimePeer("a", header_time=rt, checked=100)
    assert eta(peer, "header", 100) == bucket
    peer.conns = 2
    assert eta(peer, "header", 100) == bucket * 3


def test_decay_halves_once_per_fail_timeout_plus_one() -> None:
    peer = LeastTimePeer("a", header_time=160, fail_timeout=1, checked=100)
    assert eta(peer, "header", 101) == 180  # idle 1 s: not > fail_timeout
    assert eta(peer, "header", 102) == 100  # idle 2 s: 160 >> 1 = 80 -> 100
    assert eta(peer, "header", 104) == 60  # 160 >> 2 = 40 -> 60
    assert eta(peer, "header", 100 + 2 * 64) == 180  # shift count 64 & 63 = 0, as x86 does


def test_ties_use_smooth_weighted_round_robin_from_the_best() -> None:
    # 30 ms -> bucket 40 at weight 2 ties with 10 ms -> bucket 20 at weight 1
    a = LeastTimePeer("a", weight=2, header_time=30)
    b = LeastTimePeer("b", header_time=10)
    lt = NginxLeastTime([a, b])
    seq = []
    for t in range(6):
        attempt = lt.pick(1000 * t)
        assert attempt is not None
        seq.append(attempt.peer.name)
        lt.done(attempt, None, 0, 1000 * t)  # no header: the averages stay
    assert "".join(seq) == "abaaba"


def test_without_a_tie_only_the_chosen_peer_changes() -> None:
    a = LeastTimePeer("a", header_time=10)
    b = LeastTimePeer("b", header_time=50)
    lt = NginxLeastTime([a, b])
    attempt = lt.pick(0)
    assert attempt is not None
    assert attempt.peer is a
    assert (a.current_weight, b.current_weight, a.conns, b.conns) == (0, 0, 1, 0)


def test_failed_peer_is_skipped_then_backup() -> None:
    a = LeastTimePeer("a", max_fails=1, fail_timeout=10)
    lt = NginxLeastTime([a, LeastTimePeer("b")], [LeastTimePeer("z")])
    first = lt.pick(0)
    assert first is not None
    assert first.peer is a
    lt.done(first, None, 5, 0, failed=True)
    again = lt.pick(1000)
    assert again is not None
    assert again.peer.name == "b"
    lt.done(again, None, 5, 1000, failed=True)
    last = lt.pick(2000)
    assert last is not None
    assert last.peer.name == "z"
    assert a.effective_weight == 0


def test_inflight_counts_time_of_running_requests() -> None:
    lt = NginxLeastTime([LeastTimePeer("a"), LeastTimePeer("b")], inflight=True)
    first = lt.pick(0)
    assert first is not None
    assert first.peer.name == "a"
    assert first.peer.inflight_reqs == 1
    lt.header(first, 10, 10)
    assert first.peer.inflight_reqs == 0
    assert first.peer.header_time == 10


def test_refuses_bad_config_and_bad_times() -> None:
    with pytest.raises(ConfigError, match="mode"):
        NginxLeastTime([LeastTimePeer("a")], mode="first_byte")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="duplicate"):
        NginxLeastTime([LeastTimePeer("a"), LeastTimePeer("a")])
    with pytest.raises(ConfigError, match="weight"):
        NginxLeastTime([LeastTimePeer("a", weight=0)])
    lt = NginxLeastTime([LeastTimePeer("a"), LeastTimePeer("b")])
    attempt = lt.pick(0)
    assert attempt is not None
    with pytest.raises(RequestError, match="response_ms"):
        lt.done(attempt, 1, -1, 0)
    assert attempt.peer.conns == 1  # refused before any change


@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=5),
    st.lists(st.tuples(st.integers(0, 6000), st.integers(0, 3)), min_size=1, max_size=60),
)
def test_every_pick_is_a_best_estimate(weights: list[int], steps: list[tuple[int, int]]) -> None:
    peers = [LeastTimePeer(f"p{i}", weight=w) for i, w in enumerate(weights)]
    lt = NginxLeastTime(peers)
    now = 0
    for rt, _ in steps:
        now += 100
        etas = {p.name: eta(p, "header", now // 1000) for p in peers}
        best = min(etas[p.name] * 1.0 / p.weight for p in peers)
        attempt = lt.pick(now)
        assert attempt is not None
        assert etas[attempt.peer.name] * 1.0 / attempt.peer.weight == best
        lt.done(attempt, rt, rt, now)
    assert all(p.conns == 0 for p in peers)
