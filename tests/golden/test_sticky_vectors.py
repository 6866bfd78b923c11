"""The sticky and drain rules written in tests/golden/README.md, checked against nginx 1.31.5.

A small reference model of round robin with a sticky hint (``ngx_http_upstream_get_peer``
with ``NGX_HTTP_UPSTREAM_SID``) replays the recorded choices; the cookie's shape and the
server ids are checked on every response. An lbkit sticky implementation can be tested
against the same vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

VECTORS = json.loads((Path(__file__).parent / "nginx_sticky.json").read_text())


def scenario(prefix: str) -> dict[str, Any]:
    return next(s for s in VECTORS["scenarios"] if s["name"].startswith(prefix))


class StickyRoundRobin:
    """Smooth weighted round robin with nginx's sticky hint, as the README describes it."""

    def __init__(self, upstream: str, sids: dict[str, str]) -> None:
        self.peers: list[dict[str, Any]] = []
        for line in upstream.splitlines():
            if not line.startswith("server "):
                continue
            words = line.rstrip(";").split()
            name = words[1].strip("{}")
            weight = next((int(w[7:]) for w in words if w.startswith("weight=")), 1)
            route = next((w[6:] for w in words if w.startswith("route=")), None)
            down = "down" in words or "drain" in words
            self.peers.append(
                {
                    "name": name,
                    "w": weight,
                    "cw": 0,
                    "ew": weight,
                    "down": down,
                    "drain": "drain" in words,
                    "sid": route or sids[name],
                }
            )
        self.total_weight = sum(p["w"] for p in self.peers)

    def get(self, hint: str | None) -> str:
        st = next((p for p in self.peers if hint is not None and p["sid"] == hint), None)
        if st is not None and st["down"] and not st["drain"]:
            st = None
        if st is not None and st["cw"] <= -(self.total_weight - st["w"]):
            return str(st["name"])  # no weight update at all
        best = None
        total = 0
        for p in self.peers:
            if p["down"]:
                continue
            p["cw"] += p["ew"]
            total += p["ew"]
            if best is None or p["cw"] > best["cw"]:
                best = p
        if st is not None:
            best = st
        assert best is not None
        best["cw"] -= total
        return str(best["name"])


def sids_of(s: dict[str, Any]) -> dict[str, str]:
    """nginx's sid per backend: md5 hex of the printable address it connected to."""
    out = {}
    for rec in s["records"]:
        if "n" in rec and rec["upstream_addr"]:
            out[rec["backend"]] = hashlib.md5(rec["upstream_addr"].encode()).hexdigest()
    return out


def hint_of(rec: dict[str, Any], cookie: str) -> str | None:
    found = re.search(rf"(?:^|; ){cookie}=([^;]*)", rec["headers"].get("Cookie", ""))
    return found.group(1) if found else None


@pytest.mark.parametrize(
    "prefix", ["sticky cookie: new clients", "drain:", "sticky cookie: the cookie's"]
)
def test_round_robin_with_a_sticky_hint_replays_nginx(prefix: str) -> None:
    s = scenario(prefix)
    sids = sids_of(s)
    for name in ("a", "b", "c"):  # a backend nginx never chose still has its sid
        sids.setdefault(name, "never-" + name)
    model = StickyRoundRobin(s["upstream"], sids)
    got = "".join(model.get(hint_of(r, "srv_id")) for r in s["records"] if "n" in r)
    want = "".join(r["backend"] for r in s["records"] if "n" in r)
    assert got == want


def test_every_response_carries_the_cookie_of_the_server_that_answered() -> None:
    s = scenario("sticky cookie: new clients")
    cookie = re.compile(
        r"srv_id=([0-9a-f]{32}); expires=\w{3}, \d\d-\w{3}-\d\d \d\d:\d\d:\d\d GMT; "
        r"max-age=3600; domain=\.example\.com; path=/\Z"
    )
    for rec in (r for r in s["records"] if "n" in r):
        found = cookie.match(rec["set_cookie"])
        assert found, rec["set_cookie"]
        assert found.group(1) == hashlib.md5(rec["upstream_addr"].encode()).hexdigest()


def test_drained_server_takes_only_its_sticky_clients() -> None:
    s = scenario("drain:")
    sid_b = sids_of(s)["b"]
    for rec in (r for r in s["records"] if "n" in r):
        assert (rec["backend"] == "b") == (hint_of(rec, "srv_id") == sid_b)


def test_route_uses_the_first_nonempty_variable_and_unknown_routes_fall_back() -> None:
    s = scenario("sticky route")
    model = StickyRoundRobin(s["upstream"], {})
    got = []
    for step in s["steps"]:
        route_cookie = step.get("headers", {}).get("Cookie", "").rpartition(".")[2] or None
        route_uri = "b" if step.get("uri") == "?route=b" else None  # map $arg_route
        for _ in range(step["count"]):
            got.append(model.get(route_cookie or route_uri))
    assert "".join(got) == "".join(r["backend"] for r in s["records"] if "n" in r)


def test_learn_remembers_the_session_the_backend_created() -> None:
    s = scenario("sticky learn")
    created: dict[str, str] = {}
    for rec in (r for r in s["records"] if "n" in r):
        asked = hint_of(rec, "examplecookie")
        if asked in created:
            assert rec["backend"] == created[asked]
        created[rec["set_cookie"].split("=", 1)[1]] = rec["backend"]
