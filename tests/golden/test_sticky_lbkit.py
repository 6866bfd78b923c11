"""lbkit's sticky implementation replays every recorded nginx 1.31.5 sticky/drain scenario.

The upstream text of each scenario is parsed by :func:`lbkit.nginx.parse_upstream` with the
backends' recorded addresses; each request's hint comes from its recorded cookies (or the
route variables nginx's ``map`` computed), and lbkit must choose the backend nginx chose
and produce the ``Set-Cookie`` nginx sent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lbkit.balancers import StickyMethod
from lbkit.nginx import parse_upstream

VECTORS = json.loads((Path(__file__).parent / "nginx_sticky.json").read_text())
SCENARIOS = {s["name"]: s for s in VECTORS["scenarios"]}


def cookies_of(rec: dict[str, Any]) -> dict[str, str]:
    found = re.findall(r"(?:^|; )([^=;]+)=([^;]*)", rec["headers"].get("Cookie", ""))
    return dict(found)


def build(s: dict[str, Any]) -> tuple[Any, StickyMethod, dict[str, str]]:
    addresses = {}
    for rec in s["records"]:
        if "n" in rec and rec["upstream_addr"]:
            addresses[rec["backend"]] = rec["upstream_addr"]
    for i, backend in enumerate(b["name"] for b in s["backends"]):
        addresses.setdefault(backend, f"127.0.0.2:{1000 + i}")  # never chosen by nginx
    text = s["upstream"]
    for backend, address in addresses.items():
        text = text.replace("{" + backend + "}", address)
    up = parse_upstream("upstream u {\n" + text + "\n}", clock=lambda: 1000.0)
    assert isinstance(up.method, StickyMethod)
    return up, up.method, {a: b for b, a in addresses.items()}


def variables_of(s: dict[str, Any], rec: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    """The nginx variables the scenario's http block computes for one request."""
    cookies = cookies_of(rec)
    route_cookie = cookies.get("jsessionid", "").rpartition(".")[2]
    return {
        "$route_cookie": route_cookie,
        "$route_uri": "b" if step.get("uri") == "?route=b" else "",
        "$cookie_examplecookie": cookies.get("examplecookie", ""),
        "$upstream_cookie_examplecookie": (rec["set_cookie"] or "=").split("=", 1)[1],
    }


def requests(s: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(step, record) pairs in order."""
    records = iter(r for r in s["records"] if "n" in r)
    return [(step, next(records)) for step in s["steps"] for _ in range(step["count"])]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lbkit_chooses_what_nginx_chose(name: str) -> None:
    s = SCENARIOS[name]
    up, sticky, backend_of = build(s)
    got, want = [], []
    for step, rec in requests(s):
        variables = variables_of(s, rec, step)
        hint = sticky.hint(cookies_of(rec), variables)
        peer = up.pick(sticky=hint)
        up.done(peer)
        got.append(backend_of[peer.name])
        want.append(rec["backend"])
        if sticky.sticky.mode == "cookie":
            # nginx's cached second may lag the logged msec by one second.
            logged = int(float(rec["msec"]))
            made = {sticky.response(peer, now=t) for t in (logged - 1, logged)}
            assert rec["set_cookie"] in made
        else:
            variables["$upstream_cookie_examplecookie"] = (rec["set_cookie"] or "=").split("=")[1]
            assert sticky.response(peer, variables) is None
    assert "".join(got) == "".join(want)


def replay(name: str) -> tuple[str, str]:
    s = SCENARIOS[name]
    up, sticky, backend_of = build(s)
    got = []
    for step, rec in requests(s):
        peer = up.pick(sticky=sticky.hint(cookies_of(rec), variables_of(s, rec, step)))
        up.done(peer)
        got.append(backend_of[peer.name])
    return "".join(got), "".join(r["backend"] for _s, r in requests(s))


def test_the_replay_fails_when_the_weight_rule_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking the sticky peer without the smooth-round-robin update (as least_time does)
    does not match what nginx's round robin chose: the vectors pin the rule."""
    from lbkit.balancers import _sticky

    name = next(n for n in SCENARIOS if n.startswith("sticky cookie: new"))
    assert replay(name)[0] == replay(name)[1]
    monkeypatch.setattr(
        _sticky,
        "_round_robin_with_hint",
        lambda request, peer, now: _sticky.take_peer(request, peer, now),
    )
    got, want = replay(name)
    assert got != want
