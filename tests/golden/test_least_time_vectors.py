"""``Upstream`` + ``LeastTime`` replay every least_time choice recorded from nginx 1.31.5.

Each scenario's upstream text goes through :func:`lbkit.nginx.parse_upstream`; the
upstream's clock is the recorded wall clock (nginx's ``$msec``), and each request is
reported with the header and response times nginx logged (the very numbers it averaged):
:meth:`~lbkit.Upstream.header` when its header arrived, :meth:`~lbkit.Upstream.done` when
it ended.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import lbkit.balancers._least_time as least_time_module
import lbkit.balancers._least_time_buckets as buckets_module
from lbkit import Attempts, Peer, Upstream
from lbkit.balancers import LeastTime, StickyMethod
from lbkit.nginx import parse_upstream

HERE = Path(__file__).parent
VECTORS = json.loads((HERE / "nginx_least_time.json").read_text())
#: least_time with refused connections, retries, fail_timeout probes, backups, max_conns, down
HEALTH = json.loads((HERE / "nginx_least_time_health.json").read_text())
#: least_time with sticky cookie (hints, drain, the backup group)
STICKY = json.loads((HERE / "nginx_least_time_sticky.json").read_text())
SCENARIOS = VECTORS["scenarios"] + HEALTH["scenarios"] + STICKY["scenarios"]


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
            tried = rec["upstream_addr"].split(", ")
            addresses.update(zip(rec["upstream_names"], tried, strict=True))
    text = scenario["upstream"]
    for i, backend in enumerate(b["name"] for b in scenario["backends"]):
        text = text.replace("{" + backend + "}", addresses.get(backend, f"127.0.0.2:{1000 + i}"))
    up = parse_upstream("upstream u {\n" + text + "\n}", clock=clock)
    method = up.method.inner if isinstance(up.method, StickyMethod) else up.method
    assert isinstance(method, LeastTime)
    return up, {address: name for name, address in addresses.items()}


def ms(seconds: str) -> int:
    return round(float(seconds) * 1000)


def attempts_of(rec: dict[str, Any]) -> list[tuple[str, int, int, int | None]]:
    """(backend, start ms, end ms, header ms or None) of each attempt nginx made for one
    request; an attempt starts when the one before it ended."""
    names = rec["upstream_names"]
    responses = [ms(t) for t in rec["upstream_response_time"].split(", ")]
    headers = [None if t == "-" else ms(t) for t in rec["upstream_header_time"].split(", ")]
    end = round(float(rec["msec"]) * 1000)
    out: list[tuple[str, int, int, int | None]] = []
    for name, response, header in reversed(list(zip(names, responses, headers, strict=True))):
        out.append((name, end - response, end, header))
        end -= response
    return out[::-1]


def request_events(n: int, rec: dict[str, Any]) -> list[tuple[int, int, str, float, int]]:
    """One request's events in order: (ms, kind, what, seconds, attempt), where kind orders
    events of different requests at the same millisecond: ends, then headers, then picks."""
    events: list[tuple[int, int, str, float, int]] = []
    for i, (_, start, end, header) in enumerate(attempts_of(rec)):
        events.append((start, 2, "pick", 0.0, i))
        if header is None:
            events.append((end, 0, "fail", (end - start) / 1000, i))
            continue
        events.append((start + header, 1, "header", header / 1000, i))
        events.append((end, 0, "end", (end - start) / 1000, i))
    return events


def hint_of(rec: dict[str, Any]) -> str | None:
    """The sticky cookie's server id the request carried, if any."""
    cookie = rec.get("headers", {}).get("Cookie", "")
    return cookie.removeprefix("srv_id=") if cookie.startswith("srv_id=") else None


def replay(scenario: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """Replay nginx's recorded times; returns (lbkit's attempts, nginx's attempts)."""
    clock = ReplayClock()
    up, names = build(scenario, clock)
    records = {rec["n"]: rec for rec in scenario["records"] if "n" in rec}
    chains = {n: request_events(n, rec) for n, rec in records.items()}
    # each request's events stay in order; requests interleave by time
    ready = [(chain[0][0], chain[0][1], n, 0) for n, chain in chains.items()]
    heapq.heapify(ready)
    loops: dict[int, Attempts] = {}
    current: dict[int, Peer] = {}
    got: dict[int, list[str]] = {n: [] for n in records}
    while ready:
        _, _, n, index = heapq.heappop(ready)
        at, _, what, seconds, _ = chains[n][index]
        clock.ms = at
        if what == "pick":
            if n not in loops:
                loops[n] = up.attempts(sticky=hint_of(records[n]))
            loop = loops[n]
            current[n] = next(loop)
            got[n].append(names.get(current[n].name, current[n].name))
        elif what == "header":
            up.header(current[n], seconds)
        else:
            up.done(current[n], failed=what == "fail", elapsed=seconds)
        if index + 1 < len(chains[n]):
            follow = chains[n][index + 1]
            heapq.heappush(ready, (follow[0], follow[1], n, index + 1))
    assert all(p.conns == 0 for p in up.peers)
    want = [records[n]["upstream_names"] for n in sorted(records)]
    return [got[n] for n in sorted(records)], want


def test_vectors_come_from_a_newer_nginx() -> None:
    for vectors in (VECTORS, HEALTH, STICKY):
        major, minor, _ = (int(x) for x in vectors["nginx_version"].split("."))
        assert (major, minor) >= (1, 31)
    assert len(SCENARIOS) >= 16
    assert any(len(rec.get("upstream_names", ())) > 1 for s in SCENARIOS for rec in s["records"])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s["name"])
def test_replay_matches_nginx(scenario: dict[str, Any]) -> None:
    got, want = replay(scenario)
    assert got == want


def _keep_last_sample(avg: int, sample: int) -> int:
    return sample


def _ignore_hints(self: object, lookup: object) -> None:
    return


@pytest.mark.parametrize(
    ("target", "name", "value"),
    [
        (buckets_module, "BUCKET_MS", 10),  # buckets of 10 ms instead of 20
        (buckets_module, "BUCKET_MS", 40),
        (least_time_module, "response_time_avg", _keep_last_sample),  # the last time only
        (least_time_module._LeastTimePicker, "use_hints", _ignore_hints),  # sticky ignored
    ],
)
def test_a_wrong_rule_breaks_the_replay(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, value: object
) -> None:
    """The replay can fail: one wrong constant or rule changes some recorded choice."""
    monkeypatch.setattr(target, name, value)
    assert any(got != want for got, want in map(replay, SCENARIOS))
