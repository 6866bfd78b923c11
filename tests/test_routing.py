"""Host normalisation, server_name tables, PCRE translation, templates, parse_servers."""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lbkit
from lbkit.errors import RequestError
from lbkit.nginx import parse_servers
from lbkit.routing import (
    MAX_HOST_LENGTH,
    Request,
    ServerNames,
    expand,
    normalize_host,
    plan_route,
    translate_pcre,
)


@given(st.binary(max_size=300))
def test_normalize_never_crashes_and_is_idempotent(raw: bytes) -> None:
    try:
        host = normalize_host(raw)
    except lbkit.InvalidHostError as exc:
        message = str(exc)
        host = None
    if host is None:
        assert "invalid host" in message
        return
    assert host == host.lower() or any(ord(c) > 127 for c in host)
    assert normalize_host(host) == host


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("example.com:8080", "example.com"),
        ("[::1]:80", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("  www.example.com  ", "www.example.com"),
        (b"caf\xc3\xa9.example", "caf\xc3\xa9.example"),
    ],
)
def test_normalize(raw: str | bytes, host: str) -> None:
    assert normalize_host(raw) == host


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("a..b", "two dots"),
        ("a/b", "'/'"),
        ("", "empty"),
        (".", "empty"),
        ("a b", "space"),
        ("a\x00b", "control"),
        ("\twww.example.com", "control"),  # nginx skips SP only: a tab is a 400
        ("www.example.com\t", "control"),
        ("x" * (MAX_HOST_LENGTH + 1), "longer than"),
    ],
)
def test_invalid_hosts_say_why(raw: str, why: str) -> None:
    with pytest.raises(lbkit.InvalidHostError, match=why):
        normalize_host(raw)


def test_precedence_exact_head_tail_regex_default() -> None:
    names: ServerNames[str] = ServerNames()
    names.add("~^www\\.", "regex")
    names.add("www.example.*", "tail")
    names.add("*.example.com", "head")
    names.add("www.example.com", "exact")
    names.add("*.b.example.com", "longer head")
    assert names.find("www.example.com").value == "exact"  # type: ignore[union-attr]
    assert names.find("x.example.com").value == "head"  # type: ignore[union-attr]
    assert names.find("x.b.example.com").value == "longer head"  # type: ignore[union-attr]
    assert names.find("www.example.org").value == "tail"  # type: ignore[union-attr]
    assert names.find("www.other.org").value == "regex"  # type: ignore[union-attr]
    assert names.find("other.org") is None
    assert names.find("example.com") is None  # "*." needs a label in front


def test_lookup_does_not_scan_exact_names() -> None:
    names: ServerNames[int] = ServerNames()
    for i in range(20000):
        names.add(f"tenant-{i}.example.com", i)
    assert names.find("tenant-19999.example.com").value == 19999  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pcre", "python"),
    [
        ("^(?<user>[a-z]+)$", "^(?P<user>[a-z]+)$"),
        ("^(?'user'[a-z]+)$", "^(?P<user>[a-z]+)$"),
        ("^(?P<user>a)\\k<user>$", "^(?P<user>a)(?P=user)$"),
        ("^[[:digit:]]+\\z", "^[0-9]+\\Z"),
        ("abc\\Z", "abc(?=\\n?\\Z)"),
    ],
)
def test_pcre_translation(pcre: str, python: str) -> None:
    assert translate_pcre(pcre) == python
    re.compile(python)


@pytest.mark.parametrize("pcre", ["a\\Kb", "(?|a|b)", "\\p{L}+", "(?R)", "(*UTF8)a"])
def test_untranslatable_pcre_is_a_clear_error(pcre: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="Python's re cannot express"):
        translate_pcre(pcre)


def test_templates() -> None:
    values = {"host": "a.test", "1": "x", "2": "y", "name": "n"}
    assert expand("http://host_$2", values) == "http://host_y"
    assert expand("${name}.internal:$1", values) == "n.internal:x"
    assert expand("$3-$1", values) == "-x"  # a capture that did not participate is empty
    with pytest.raises(lbkit.ConfigError, match=r"unknown variable \$nope"):
        expand("$nope", values)


TENANTS = r"""
server { listen 80 default_server; return 444; }
server {
    server_name ~^([a-zA-Z0-9]+)_([a-zA-Z0-9]+)_([0-9]+)\.test\.org$;
    location / { proxy_pass http://host_$3; }
}
upstream host_01 { server 10.0.0.1:80; server 10.0.0.2:80; }
"""


def test_tenant_template_and_upstream_composition() -> None:
    router = parse_servers(TENANTS)
    m = router.match("wordpress_c001_01.test.org")
    assert (m.index, m.captures, m.target) == (1, ("wordpress", "c001", "01"), "http://host_01")
    assert m.upstream is not None
    assert m.upstream.pick().name in {"10.0.0.1:80", "10.0.0.2:80"}
    assert router.match("wordpress_c001_02.test.org").upstream is None
    assert router.match("other.org").index == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server { server_name a; rewrite ^ /x; }", 'unknown directive "rewrite"'),
        ("server { server_name *a.com; }", "is invalid"),
        ("server { server_name a.*.com; }", "invalid server name or wildcard"),
        ("server { server_name ~(?R); }", "recursion"),
        ("server { listen 80 default_server; } server { listen 80 default_server; }", "default"),
        ("location / { }", 'unexpected "location"'),
        ("", "no server blocks"),
    ],
)
def test_parse_servers_errors(text: str, message: str) -> None:
    with pytest.raises(lbkit.ConfigError, match=re.escape(message)):
        parse_servers(text, regex_engine="re")


def test_missing_host_uses_empty_name_then_default() -> None:
    router = parse_servers('server { server_name a.test; } server { server_name ""; }')
    assert router.match(None).index == 1
    router = parse_servers("server { server_name a.test; } server { server_name b.test; }")
    m = router.match(None)
    assert (m.index, m.host) == (0, "a.test")


def _block(text: str, host: str) -> int | None:
    m = parse_servers("server { listen 80 default_server; server_name _; }\n" + text).match(host)
    return m.index if m.name is not None else None


@pytest.mark.parametrize(
    ("names", "host", "block"),
    [
        (["x", "x"], "x", 1),  # exact duplicate: the later is ignored
        (["*.x", ".x"], "a.x", 1),  # *.x and .x share the wildcard key x
        ([".x", "*.x"], "a.x", 1),
        (["*.x", ".x"], "x", None),  # the ignored .x claimed x but serves nothing
        (["*.x", ".x", "x"], "x", None),  # .x claimed x before its wildcard failed: x ignored
        (["x", ".x"], "a.x", None),  # .x after an exact x is dropped, wildcard half too
        (["x", ".x"], "x", 1),
        (["x.*", "x.*"], "x.y", 1),
    ],
)
def test_conflicting_names_follow_nginx(names: list[str], host: str, block: int | None) -> None:
    text = "".join(f"server {{ server_name {n}; }}\n" for n in names)
    assert _block(text, host) == block


def test_conflicts_are_reported_with_lines() -> None:
    router = parse_servers(
        "server { listen 80; server_name *.x; }\nserver { listen 80;\n server_name .x; }\n"
        "server { listen 80; server_name x; }\n"
    )
    assert router.warnings == [
        'conflicting server name ".x" on 0.0.0.0:80, ignored (line 3)',
        'conflicting server name "x" on 0.0.0.0:80, ignored (line 4)',
    ]


def test_listen_sockets_choose_the_table_first() -> None:
    router = parse_servers(
        """
server { listen 8080; server_name a.test; }
server { listen 127.0.0.1:8080; server_name b.test; }
server { listen 127.0.0.1:8080 default_server; listen 9090; server_name c.test; }
server { server_name a.test; }
"""
    )
    assert router.match("a.test", listen="127.0.0.2:8080").index == 0
    assert router.match("a.test", listen="127.0.0.1:8080").index == 2  # its default
    assert router.match("b.test", listen=("127.0.0.1", 8080)).index == 1
    assert router.match("c.test", listen="10.0.0.1:9090").index == 2
    assert router.match("a.test", listen="10.0.0.1:80").index == 3  # no listen: *:80
    assert router.match("a.test").index == 0  # no listen given: the first socket
    with pytest.raises(RequestError, match=r"no server block listens on 0\.0\.0\.0:81"):
        router.match("a.test", listen="*:81")


def test_hostname_and_header_line_bound() -> None:
    router = parse_servers("server {} server { server_name $hostname; }", hostname="Box-1")
    assert router.match("box-1").index == 1
    text = "server { server_name a; }"
    assert parse_servers(text).match("a" * 8184).index == 0
    with pytest.raises(lbkit.InvalidHostError, match="8193 bytes"):
        parse_servers(text).match("a" * 8185)
    with pytest.raises(lbkit.InvalidHostError, match="longer than the 100"):
        parse_servers(text, max_line=100).match("a" * 93)


def test_re_fallback_translates_quoting_and_bounds_backtracking() -> None:
    router = parse_servers(
        r"""
server { server_name _; }
server { server_name "~^\Qa.b\E(\d)$"; }
server { server_name ~^([a-z0-9]+\.?)+\.example\.com$; }
""",
        regex_engine="re",
    )
    assert router.match("a.b7").captures == ("7",)
    assert router.match("axb7").index == 0
    assert router.match("ab.cd.example.com").index == 2
    started = time.perf_counter()
    with pytest.raises(lbkit.RegexLimitError, match=r"hosts of \d+ .*lbkit\[pcre\]"):
        router.match("a" * 24 + "!")
    assert time.perf_counter() - started < 0.1


def test_pcre2_engine_has_unicode_properties_and_a_match_limit() -> None:
    router = parse_servers(
        r"""
server { server_name _; }
server { server_name "~^\p{L}(\p{N}+)$"; }
server { server_name ~^([a-z0-9]+\.?)+\.example\.com$; }
""",
        regex_engine="pcre2",
    )
    assert router.match("a12").captures == ("12",)
    started = time.perf_counter()
    assert router.match("a" * 1000 + "!").index == 0
    with pytest.raises(lbkit.RegexLimitError, match="PCRE2"):
        router.match("ab" * 400 + ".example.co")
    assert time.perf_counter() - started < 0.5


def test_router_is_safe_to_share_between_16_threads() -> None:
    router = parse_servers(
        r"""
server { listen 80 default_server; server_name _; }
server { server_name .a.test *.b.test c.*; }
server { server_name ~^(?<x>[a-z]+)_(\d+)\.d\.test$; }
server { listen 8080; server_name a.test; }
"""
    )
    hosts = ["a.test", "x.a.test", "y.b.test", "c.io", "abc_12.d.test", "zzz", "A.TEST."] * 50
    expected = [(m.index, m.captures, m.named) for m in map(router.match, hosts)]
    results: list[list[tuple[int, tuple[str, ...], dict[str, str]]]] = []
    lock = threading.Lock()

    def worker() -> None:
        got = [(m.index, m.captures, m.named) for m in map(router.match, hosts)]
        with lock:
            results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 16


def test_non_ascii_names_are_the_bytes_nginx_reads() -> None:
    router = parse_servers('server {} server { server_name café.test "~^((?:é)+)\\.x$"; }')
    assert router.match(b"caf\xc3\xa9.test").index == 1  # the UTF-8 bytes a client sends
    assert router.match(b"\xc3\xa9\xc3\xa9.x").captures == ("\xc3\xa9\xc3\xa9",)
    # as in nginx, "é+" repeats the last byte of é only
    assert (
        parse_servers('server {} server { server_name "~^é+$"; }').match(b"\xc3\xa9\xa9").index == 1
    )
    assert router.match(b"caf\xe9.test").index == 0  # a latin-1 byte is another name


def test_ipv6_listen_sockets() -> None:
    router = parse_servers(
        """
server { listen [::]:80; server_name a.test; }
server { listen [::1]:80; server_name b.test; }
server { listen 80; server_name c.test; }
"""
    )
    assert router.sockets == ["[::]:80", "[::1]:80", "0.0.0.0:80"]
    assert router.match("b.test", listen=("::1", 80)).index == 1
    assert router.match("b.test", listen="[2001:db8::5]:80").index == 0  # the v6 wildcard
    assert router.match("a.test", listen="192.0.2.1:80").index == 2  # the v4 wildcard


def test_routes_from_16_threads_leave_no_connection_counted() -> None:
    router = parse_servers(
        """
upstream u { least_conn; server 10.0.0.1:80; server 10.0.0.2:80 weight=2; }
server { server_name a.test; location / { proxy_pass http://u; } }
"""
    )
    upstream = router.upstreams["u"]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                route = plan_route(router, Request("a.test", f"/{n}/{i}"))
                assert route.address in ("10.0.0.1", "10.0.0.2")
                route.done()
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.conns for p in upstream.peers] == [0, 0]
