"""``Upstream`` + ``LeastTime`` replay every least_time choice recorded from nginx 1.31.5.

Each scenario's upstream text goes through :func:`lbkit.nginx.parse_upstream`; the
upstream's clock is the recorded wall clock (nginx's ``$msec``), and each request is
reported with the header and response times nginx logged (the very numbers it averaged):
:meth:`~lbkit.Upstream.header` when its header arrived, :meth:`~lbkit.Upstream.done` when
it ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import lbkit.balancers._least_time as least_time_module
from lbkit import Peer, Upstream
from lbkit.balancers import LeastTime
from lbkit.nginx import parse_upstream

VECTORS = json.loads((Path(__file__).parent / "nginx_least_time.json").read_text())
SCENARIOS = VECTORS["scenarios"]


class ReplayClock:
    """The recorded wall clock, in exact milliseconds (so seconds and ms never disagree)."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return Fraction(self.ms, 1000)  # type: ignore[return-value]


def build(scenario: dict[str, Any], clock: Callable[[], float]) -> tuple[Upstream, dict[str, str]]:
    """The scenario's upstream, with each backend at the address nginx logged for it."""
    addresses: dict[str, str] = {}
    for rec in scenario["records"]:
        if "n" in rec:
            addresses[rec["backend"]] = rec["upstream_addr"]
    text = scenario["upstream"]
    for i, backend in enumerate(b["name"] for b in scenario["backends"]):
        text = text.replace("{" + backend + "}", addresses.get(backend, f"127.0.0.2:{1000 + i}"))
    up = parse_upstream("upstream u {\n" + text + "\n}", clock=clock)
    assert isinstance(up.method, LeastTime)
    return up, {address: name for name, address in addresses.items()}


def ms(seconds: str) -> int:
    return round(float(seconds) * 1000)


def replay(scenario: dict[str, Any]) -> tuple[str, str]:
    """Replay nginx's recorded times; returns (lbkit's choices, nginx's choices)."""
    clock = ReplayClock()
    up, names = build(scenario, clock)
    events: list[tuple[int, int, int, int, str, dict[str, Any]]] = []
    for rec in scenario["records"]:
        if "n" not in rec:
            continue
        n = rec["n"]
        end = round(float(rec["msec"]) * 1000)
        start = end - ms(rec["upstream_response_time"])
        header = start + ms(rec["upstream_header_time"])
        # at the same millisecond: ends first (a request's header just before its own end),
        # then headers, then new picks
        events += [
            (start, 2, n, 0, "pick", rec),
            (header, 0 if header == end else 1, n, 0, "header", rec),
            (end, 0, n, 1, "end", rec),
        ]
    running: dict[int, Peer] = {}
    picks: dict[int, str] = {}
    for at, _, n, _, what, rec in sorted(events, key=lambda e: e[:4]):
        clock.ms = at
        if what == "pick":
            running[n] = up.pick()
            picks[n] = names.get(running[n].name, running[n].name)
        elif what == "header":
            up.header(running[n], float(rec["upstream_header_time"]))
        else:
            up.done(running.pop(n), elapsed=float(rec["upstream_response_time"]))
    assert all(p.conns == 0 for p in up.peers)
    got = "".join(picks[n] for n in sorted(picks))
    want = "".join(r["backend"] for r in scenario["records"] if "n" in r)
    return got, want


def test_vectors_come_from_a_newer_nginx() -> None:
    major, minor, _ = (int(x) for x in VECTORS["nginx_version"].split("."))
    assert (major, minor) >= (1, 31)
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s["name"])
def test_replay_matches_nginx(scenario: dict[str, Any]) -> None:
    got, want = replay(scenario)
    assert got == want


def _keep_last_sample(avg: int, sample: int) -> int:
    return sample


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BUCKET_MS", 10),  # buckets of 10 ms instead of 20
        ("BUCKET_MS", 40),
        ("response_time_avg", _keep_last_sample),  # no average: the last time only
    ],
)
def test_a_wrong_rule_breaks_the_replay(
    monkeypatch: pytest.MonkeyPatch, name: str, value: object
) -> None:
    """The replay can fail: one wrong constant or rule changes some recorded choice."""
    monkeypatch.setattr(least_time_module, name, value)
    assert any(got != want for got, want in map(replay, SCENARIOS))
