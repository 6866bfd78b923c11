"""``plan_route(..., pick=False)``: the route names its upstream and key, takes no peer."""

from __future__ import annotations

from lbkit.nginx import parse_servers
from lbkit.routing import Request, plan_route

CONFIG = r"""
    upstream app { hash $request_uri; server 10.0.0.1:80; server 10.0.0.2:80; }
    server {
        listen 80;
        server_name ~^(?<tenant>[a-z]+)\.example$;
        location / { proxy_pass http://app; }
    }
"""


def test_no_peer_is_taken_and_the_key_is_rendered() -> None:
    router = parse_servers(CONFIG)
    route = plan_route(router, Request("shop.example", "/a", "b=1"), pick=False)
    up = router.upstreams["app"]
    assert route.upstream is up
    assert (route.peer, route.host, route.key) == (None, None, "/a?b=1")
    assert route.variables["tenant"] == "shop"
    assert all(p.conns == 0 for p in up.peers)
    route.done()  # nothing to report to the upstream
    assert all(p.requests == 0 for p in up.peers)
    peer = next(iter(up.attempts(key=route.key)))
    assert peer.name == plan_route(router, Request("shop.example", "/a", "b=1")).peer.name


def test_default_still_picks() -> None:
    router = parse_servers(CONFIG)
    route = plan_route(router, Request("shop.example", "/x"))
    assert route.peer is not None
    assert route.key == "/x"
    route.done()
    assert all(p.conns == 0 for p in router.upstreams["app"].peers)
