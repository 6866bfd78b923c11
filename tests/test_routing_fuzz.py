"""Fuzzing the routing parsers: only lbkit errors escape, whatever the input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.errors import RequestError
from lbkit.nginx import parse_directives, parse_servers, tokenize
from lbkit.routing import Request, normalize_host, normalize_uri, plan_route

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# words that mean something to the parser, odd numbers included
_WORDS = st.sampled_from(
    [
        "server",
        "listen",
        "server_name",
        "return",
        "location",
        "proxy_pass",
        "resolver",
        "upstream",
        "least_time",
        "header",
        "inflight",
        "default_server",
        "80",
        "²",
        "٣",
        "8" * 5000,
        "127.0.0.1:8080",
        "[::1]:80",
        "*:80",
        "unix:/tmp/x",
        "*.a",
        ".a",
        "a.*",
        "a",
        "~^(a)",
        "~(",
        '"x y"',
        "'q\\'q'",
        "$hostname",
        "=",
        "^~",
        "~*",
        "/",
        "/x/",
        "@n",
        "http://b/x",
        "valid=10s",
        "ipv6=off",
        "ipv6=maybe",
        "{",
        "}",
        ";",
        "#c\n",
        "\n",
        "\\",
        "${x}",
        "\x00",
        "\ud800",
    ]
)


@FUZZ
@given(st.lists(_WORDS, max_size=40).map(" ".join))
def test_parse_servers_raises_only_config_errors(text: str) -> None:
    try:
        router = parse_servers(text)
    except lbkit.ConfigError:
        return
    assert router.servers


@FUZZ
@given(st.text(max_size=300))
def test_lexer_raises_only_config_errors(text: str) -> None:
    try:
        tokens = tokenize(text)
        parse_directives(text)
    except lbkit.ConfigError:
        return
    assert all(t.kind in ("word", ";", "{", "}") for t in tokens)


@pytest.mark.parametrize("code", ["²", "٣٠٢", "1" * 5000, "-1", "1000"])
def test_return_codes_nginx_refuses_are_config_errors(code: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="invalid return code"):
        parse_servers(f"server {{ return {code} x; }}")


@pytest.mark.parametrize("port", ["²", "8" * 5000, "0", "65536", "٨٠"])
def test_ports_nginx_refuses_are_config_errors(port: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="invalid port"):
        parse_servers(f"server {{ listen 127.0.0.1:{port}; }}")


_HOSTS = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
    st.integers(),
    st.none(),
    st.floats(),
    st.lists(st.text(max_size=3), max_size=2),
)

_ROUTER = parse_servers(
    r"""
server { listen 80 default_server; server_name _; }
server { server_name .a.test *.b.test c.*; }
server { server_name ~^(?<x>[a-z]+)\.d\.test$ ~(\w+)_(\d+)$; }
"""
)


@FUZZ
@given(_HOSTS)
def test_normalize_and_match_raise_only_lbkit_errors(host: object) -> None:
    with contextlib.suppress(lbkit.InvalidHostError):
        normalize_host(host)  # type: ignore[arg-type]
    try:
        m = _ROUTER.match(host)  # type: ignore[arg-type]
    except lbkit.LbkitError:
        return
    assert 0 <= m.index < 3


def test_lone_surrogates_are_invalid_hosts_not_unicode_errors() -> None:
    with pytest.raises(lbkit.InvalidHostError, match="surrogate"):
        normalize_host("a\ud800b")
    # surrogateescape'd bytes (os.fsdecode, WSGI servers) stand for the bytes they escape
    assert normalize_host("caf\udcc3\udca9.test") == "caf\xc3\xa9.test"


@pytest.mark.parametrize("host", [12, 1.5, ["a"], object()])
def test_non_text_hosts_are_invalid_host_errors(host: object) -> None:
    with pytest.raises(lbkit.InvalidHostError, match="expected str or bytes"):
        _ROUTER.match(host)  # type: ignore[arg-type]


@FUZZ
@given(st.text(alphabet="/.%?#ab2eF0+ \x00\u00e9", max_size=40).map(lambda s: "/" + s))
def test_normalize_uri_raises_only_request_errors(target: str) -> None:
    try:
        path, args = normalize_uri(target)
    except RequestError:
        return
    assert path.startswith("/")
    assert "//" not in path
    assert "#" not in args
    for segment in ("/./", "/../"):
        assert segment not in path + "/" or "%" in target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a//b/./c/../%64?x=1#f", ("/a/b/d", "x=1")),
        ("/a/b/..", ("/a/", "")),
        ("/a/%2e%2e/b", ("/b", "")),
        ("/x%3Fy?z", ("/x?y", "z")),
        ("/x%25y", ("/x%y", "")),
    ],
)
def test_normalize_uri_as_nginx(target: str, expected: tuple[str, str]) -> None:
    assert normalize_uri(target) == expected


_PLANNED = parse_servers(
    r"""
upstream u { hash $request_uri consistent; server 10.0.0.1:80; server 10.0.0.2:80; }
server {
    listen 80 default_server;
    server_name ~^(?<t>[a-z]+)\.t$;
    location / { proxy_pass http://u; }
    location /p/ { proxy_pass http://10.0.0.3:8080/q/; }
    location ~* \.(png|€)$ { return 404; }
    location ~ ^/(?<n>\d+)/ { proxy_pass http://$n.svc.priv:81; }
    location = /x { return 200 "$t"; }
}
"""
)


@FUZZ
@given(
    st.one_of(st.none(), st.text(max_size=20), st.binary(max_size=20)),
    st.text(max_size=30).map(lambda s: "/" + s),
)
def test_plan_route_raises_only_lbkit_errors(host: str | bytes | None, target: str) -> None:
    try:
        route = plan_route(_PLANNED, Request.from_target(host, target))
    except lbkit.LbkitError:
        return
    if route.peer is not None:
        route.done()
    assert route.status is not None or route.target is not None


_TARGETED = parse_servers(
    r"server { server_name a.test; location ~ ^/(?<to>.*)$ { proxy_pass http://$to; } }"
)


@pytest.mark.parametrize("port", ["9" * 5000, "0" * 5000, "65536", "²", "٨٠"])
def test_proxy_pass_ports_out_of_range_are_request_errors(port: str) -> None:
    with pytest.raises(RequestError, match="invalid port in proxy_pass target"):
        plan_route(_TARGETED, Request("a.test", f"/h:{port}"))


@pytest.mark.parametrize(
    ("port", "expected"), [("80", 80), ("000080", 80), ("0" * 5000 + "81", 81)]
)
def test_proxy_pass_ports_may_have_leading_zeros(port: str, expected: int) -> None:
    route = plan_route(_TARGETED, Request("a.test", f"/h:{port}"))
    assert (route.host, route.port) == ("h", expected)


@pytest.mark.parametrize(
    ("port", "expected"), [("80", 80), ("000080", 80), ("0" * 40 + "8080", 8080)]
)
def test_listen_ports_may_have_leading_zeros(port: str, expected: int) -> None:
    router = parse_servers(f"server {{ listen 127.0.0.1:{port}; }}")
    assert router.sockets == [f"127.0.0.1:{expected}"]
    assert lbkit.Server(f"10.0.0.1:{port}").address.endswith(port)  # accepted as nginx does


def test_an_empty_proxy_pass_port_is_refused_as_nginx_refuses_it() -> None:
    with pytest.raises(RequestError, match="invalid port in proxy_pass target"):
        plan_route(_TARGETED, Request("a.test", "/h:"))
