"""render_upstream gives back what parse_upstream read: sticky, route=, drain, resolve."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit import Upstream
from lbkit.nginx import parse_upstream, render_server, render_upstream

_METHODS = ["", "least_conn;", "hash $k;", "hash $k consistent;", "ip_hash;", "random two;"]
_STICKY = [
    "",
    "sticky cookie srv expires=1h domain=.ex.com samesite=$ss path=/ httponly secure;",
    "sticky cookie s expires=max samesite=Lax;",
    "sticky route $route_cookie $route_uri;",
    "sticky learn create=$upstream_cookie_s lookup=$cookie_s zone=render_rt:1m timeout=5m header;",
]
_route = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=32)


@st.composite
def upstream_texts(draw: st.DrawFn) -> str:
    method = draw(st.sampled_from(_METHODS))
    backups_allowed = method in ("", "least_conn;")
    lines = [method, draw(st.sampled_from(_STICKY))]
    count = draw(st.integers(1, 6))
    for i in range(count):
        words = [f"server 10.0.{i}.{draw(st.integers(1, 9))}:{draw(st.integers(1, 65535))}"]
        if draw(st.booleans()):
            words.append(f"weight={draw(st.integers(1, 100))}")
        if draw(st.booleans()):
            words.append(f"max_fails={draw(st.integers(0, 5))}")
        if draw(st.booleans()):
            words.append(f"max_conns={draw(st.integers(0, 50))}")
        if draw(st.booleans()):
            words.append(draw(st.sampled_from(["down", "drain"])))
        if draw(st.booleans()):
            words.append(f"route={draw(_route)}")
        if backups_allowed and i and draw(st.booleans()):
            words.append("backup")
        lines.append(" ".join(words) + ";")
    if draw(st.booleans()):
        lines.append(f"keepalive {draw(st.integers(1, 64))};")
    return "upstream u {\n" + "\n".join(line for line in lines if line) + "\n}"


def _view(up: Upstream) -> tuple[object, ...]:
    routes = getattr(up.method, "sticky", None)
    return (
        up.servers,
        up.method,
        dict(routes.routes) if routes is not None else None,
        sorted(p.name for p in up.peers if p.draining),
        up.keepalive,
        up.zone,
    )


@settings(max_examples=150, deadline=None)
@given(upstream_texts())
def test_parse_render_parse_is_the_same_upstream(text: str) -> None:
    up = parse_upstream(text)
    rendered = render_upstream(up)
    again = parse_upstream(rendered)
    assert _view(again) == _view(up)
    assert render_upstream(again) == rendered


def test_route_and_drain_are_rendered() -> None:
    text = (
        "upstream u {\n    sticky route $r;\n    server a:1 route=blue;\n"
        "    server b:1 drain;\n    server c:1;\n}\n"
    )
    up = parse_upstream(text)
    assert render_upstream(up) == text
    up.drain("c:1")  # a drain made at run time shows too
    assert "server c:1 drain;" in render_upstream(up)


def test_resolving_upstream_renders_as_configured() -> None:
    text = (
        "upstream app {\n    zone render_app;\n    resolver 127.0.0.1:53 valid=5s ipv6=off;\n"
        "    resolver_timeout 2s;\n    server app.example:8080 weight=2 resolve;\n"
        "    server app.example service=http resolve;\n    server 10.0.0.9:80 backup;\n}\n"
    )
    up = parse_upstream(text)
    assert render_upstream(up) == text
    assert [s.address for s in up.servers] == ["10.0.0.9:80"]  # no peer until resolved
    assert render_server(up.resolve_servers[1]) == "server app.example service=http resolve;"


_server_words = st.sampled_from(
    [
        "resolve",
        "service=http",
        "service=_sip._udp",
        "service=",
        "weight=3",
        "backup",
        "down",
        "drain",
        "route=r1",
        "max_fails=0",
        "max_conns=4",
        "bogus",
    ]
)
_addresses = st.sampled_from(
    ["app.example", "app.example:8080", "10.0.0.7", "10.0.0.7:81", "[fd00::1]:80", "unix:/s"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_addresses, st.lists(_server_words, max_size=4)), min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_fuzzed_resolve_servers(
    lines: list[tuple[str, list[str]]], zone: bool, sticky: bool
) -> None:
    """Any mix of resolve/service/route/drain words: a ConfigError, or an upstream whose
    names to resolve are exactly the ``resolve`` servers on names, rendered back as read."""
    body = [f"server {address} {' '.join(words)};" for address, words in lines]
    inner = ("sticky cookie s;\n" if sticky else "") + "\n".join(body) + "\n}"
    # a zone's membership is shared by every upstream that opens it: one zone per config
    text = "upstream u {\n" + (f"zone render_fuzz_{zlib.crc32(inner.encode())};\n" if zone else "")
    text += inner
    try:
        up = parse_upstream(text)
    except lbkit.ConfigError:
        return
    for server in up.configured:
        named = not server.address.startswith(("unix:", "10.", "["))
        assert server.resolvable == (server.resolve and named)
    assert set(up.servers) == {s for s in up.configured if not s.resolvable}
    if up.resolve_servers:
        assert zone
    again = parse_upstream(render_upstream(up))
    assert again.configured == up.configured
