"""parse_upstream: what it accepts, and errors that name the bad token and its line."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.nginx import parse_duration, parse_upstream, tokenize


def test_parses_every_parameter() -> None:
    up = parse_upstream(
        """
        # a comment
        upstream backend {
            zone backend_config_test 64k;
            least_conn;
            server 10.0.0.1:8080 weight=3 max_fails=2 fail_timeout=1m max_conns=10;
            server [2001:db8::1]:80 backup;
            server unix:/run/app.sock down;
            server 'example.com';
            keepalive 32;
            keepalive_timeout 60s;
        }
        """
    )
    assert up.name == "backend"
    assert isinstance(up.method, lbkit.LeastConn)
    assert up.keepalive == 32
    assert up.zone == "backend_config_test"
    first = up.servers[0]
    assert (first.weight, first.max_fails, first.fail_timeout, first.max_conns) == (3, 2, 60, 10)
    assert up.servers[1].backup
    assert up.servers[2].down
    assert [s.address for s in up.servers][-1] == "example.com"


@pytest.mark.parametrize(
    ("directive", "method"),
    [
        ("ip_hash;", lbkit.IpHash()),
        ("hash $remote_addr;", lbkit.Hash("$remote_addr")),
        ("hash $uri consistent;", lbkit.Hash("$uri", consistent=True)),
        ("random;", lbkit.Random()),
        ("random two;", lbkit.Random(two=True)),
        ("random two least_conn;", lbkit.Random(two=True, least_conn=True)),
    ],
)
def test_methods(directive: str, method: lbkit.Method) -> None:
    up = parse_upstream(f"upstream u {{ {directive} server a:1; server b:1; }}")
    assert up.method == method


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server a:1 weight=0;", 'invalid parameter "weight=0"'),
        ("server a:1 weight=-2;", 'invalid parameter "weight=-2"'),
        ("server a:1 weight=1.5;", 'invalid parameter "weight=1.5"'),
        ("server a:1 max_fails=-1;", 'invalid parameter "max_fails=-1"'),
        ("server a:1 fail_timeout=abc;", 'invalid parameter "fail_timeout=abc"'),
        ("server a:1 fail_timeout=10ms;", 'invalid parameter "fail_timeout=10ms"'),
        ("server a:1 slow_start=soon;", 'invalid parameter "slow_start=soon"'),
        ("hash $k; server a:1 slow_start=10s;", 'does not support parameter "slow_start"'),
        ("server a:1; server a:1;", 'duplicate server "a:1"'),
        ("hash $k; server a:1; server b:1 backup;", 'does not support parameter "backup"'),
        ("server a:1 backup; server b:1; ip_hash;", 'does not support parameter "backup"'),
        ("random; server a:1; server b:1 backup;", 'does not support parameter "backup"'),
        ("server a:1; sticky cookie x y;", 'invalid parameter "y" in "sticky"'),
        ("server a:1; sticky;", 'invalid number of arguments in "sticky"'),
        ("server a:1; sticky learn create=$a zone=z:1m;", "needs lookup="),
        ("hash $k sometimes; server a:1;", 'invalid parameter "sometimes"'),
        ("random three; server a:1;", 'invalid parameter "three"'),
        ("server a:99999;", "invalid port"),
        ("server a:1; keepalive 0;", "keepalive"),
        ("", "no servers"),
        ("server a:1 backup;", "every server is a backup"),
    ],
)
def test_errors_name_the_token_and_line(text: str, message: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="line") as info:
        parse_upstream(f"upstream u {{\n{text}\n}}")
    assert message in str(info.value) or message in repr(info.value)
    assert isinstance(info.value, ValueError)


def test_error_reports_line_number() -> None:
    with pytest.raises(lbkit.ConfigError) as info:
        parse_upstream("upstream u {\n  server a:1;\n  server b:1 weight=zero;\n}")
    assert info.value.line == 3


@pytest.mark.parametrize(
    "text",
    [
        "upstream u { server a:1; ",
        "upstream u { server a:1 }",
        "server a:1;",
        "upstream u { server a:1; } upstream v { server b:1; }",
        'upstream u { server "a:1; }',
        "upstream { server a:1; }",
    ],
)
def test_malformed_text(text: str) -> None:
    with pytest.raises(lbkit.ConfigError):
        parse_upstream(text)


def test_tokenizer_quotes_escapes_and_variables() -> None:
    words = [t.text for t in tokenize("hash \"$a b\" 'c\\'d' ${host}x # no\n;")]
    assert words == ["hash", "$a b", "c'd", "${host}x", ";"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10), ("10s", 10), ("1m", 60), ("1m 30s", 90), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "1s 1m", "5ms", "-1", "1m1m"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


@given(st.text(max_size=200))
def test_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(lbkit.ConfigError):
        parse_upstream(text)


_words = st.sampled_from(["header", "last_byte", "inflight", "", "HEADER", "header;", "x"])


@given(st.lists(_words | st.text(max_size=12), max_size=4))
def test_fuzzed_least_time_arguments(words: list[str]) -> None:
    """``least_time`` with any words: a LeastTime exactly for nginx's accepted forms."""
    args = " ".join(f'"{w}"' for w in words)
    try:
        up = parse_upstream(f"upstream u {{ least_time {args}; server a:1; server b:1; }}")
    except lbkit.ConfigError:
        assert not (
            words
            and len(words) <= 2
            and words[0] in ("header", "last_byte")
            and words[1:] in ([], ["inflight"])
        )
        return
    assert up.method == lbkit.LeastTimeMethod(words[0], inflight=len(words) == 2)  # type: ignore[arg-type]
    assert up.pick().name in ("a:1", "b:1")


_odd_numbers = st.one_of(
    st.sampled_from(
        ["\u00b2", "\u0661\u0662", "0x10", "1e3", "-0", "+1", "", "9" * 5000, "0" * 5000 + "1"]
    ),
    st.integers(-5, 2**80).map(str),
    st.text(
        alphabet="0123456789\u00b2\u00b3\u00b9\u0660\u0661\u0662\u0969\U0001d7d8",
        min_size=1,
        max_size=30,
    ),
)
_params = st.sampled_from(
    ["weight=", "max_fails=", "max_conns=", "fail_timeout=", "slow_start=", "keepalive "]
)


@settings(max_examples=400, deadline=None)
@given(
    port=_odd_numbers,
    params=st.lists(st.tuples(_params, _odd_numbers), max_size=4),
    method=st.sampled_from(
        [
            "",
            "least_conn;",
            "hash $k consistent;",
            "ip_hash;",
            "random two;",
            "least_time header;",
            "least_time last_byte inflight;",
        ]
    ),
)
def test_fuzzed_numbers_raise_only_config_error(
    port: str, params: list[tuple[str, str]], method: str
) -> None:
    """Ports and parameters written with non-ASCII digits, thousands of digits or huge
    values: the parser answers with a ConfigError or an upstream, never anything else."""
    server = f"server a:{port}"
    extra = []
    for name, value in params:
        if name == "keepalive ":
            extra.append(f"keepalive {value};")
        else:
            server += f" {name}{value}"
    text = f"upstream u {{ {method} {server}; server b:1; {' '.join(extra)} }}"
    try:
        up = parse_upstream(text)
    except lbkit.ConfigError:
        return
    assert all(s.weight <= lbkit.upstream.MAX_NGX_INT for s in up.servers)


@pytest.mark.parametrize(
    "token",
    [
        "weight=99999999999999999999",
        "weight=9223372036854775808",
        "max_fails=\u00b2",
        "max_conns=1\u00b2",
    ],
)
def test_numbers_nginx_refuses_are_refused(token: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="invalid parameter"):
        parse_upstream(f"upstream u {{ server a:1 {token}; }}")


def test_largest_nginx_weight_is_accepted() -> None:
    up = parse_upstream("upstream u { server a:1 weight=9223372036854775807; server b:1; }")
    assert up.servers[0].weight == 2**63 - 1
    assert up.pick().name == "a:1"


def test_huge_consistent_ring_is_refused_quickly() -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(lbkit.ConfigError, match="max_points") as info:
        parse_upstream("upstream u { hash $k consistent; server a:1 weight=100000; server b:1; }")
    assert time.perf_counter() - started < 1.0
    assert info.value.line == 1


def test_render_upstream_round_trips_every_method() -> None:
    from lbkit.nginx import render_upstream

    for directive in (
        "",
        "least_conn;",
        "ip_hash;",
        "hash $k;",
        "random two least_conn;",
        "least_time header;",
        "least_time last_byte inflight;",
    ):
        text = f"upstream u {{ zone u 64k; {directive} server a:1 weight=2; server b:1 down; }}"
        up = parse_upstream(text)
        again = parse_upstream(render_upstream(up))
        assert (again.method, again.servers, again.zone) == (up.method, up.servers, up.zone)


def test_an_escaped_newline_still_counts_as_a_line_in_quoted_and_bare_words() -> None:
    tokens = tokenize('a "x\\\ny" b\\\nc d;\ne;')
    assert [(t.text, t.line, t.column) for t in tokens] == [
        ("a", 1, 1),
        ("x\\\ny", 1, 3),
        ("b\\\nc", 2, 4),
        ("d", 3, 3),
        (";", 3, 4),
        ("e", 4, 1),
        (";", 4, 2),
    ]
