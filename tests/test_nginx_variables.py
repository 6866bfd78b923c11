"""nginx variables evaluated from a request: $arg_, $cookie_, $http_, $uri, captures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbkit import ConfigError
from lbkit.errors import RequestError
from lbkit.nginx.variables import (
    ClientRequest,
    RequestVariables,
    cookie_value,
    query_arg,
    render,
)

NAME = st.text("abcdefgXYZ_0123", min_size=1, max_size=6)
VALUE = st.text("abc123%+-.xyz", max_size=8)


def variables(**kwargs: object) -> RequestVariables:
    return RequestVariables(ClientRequest(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        ("a=1&b=2", "b", "2"),
        ("a=1&b=2", "B", "2"),  # names compare case-insensitively
        ("A=1", "a", "1"),
        ("ba=1&a=2", "a", "2"),  # "a" inside "ba" is not at an argument's start
        ("a=1&a=2", "a", "1"),  # the first one wins
        ("a", "a", None),  # no '=': not an argument value
        ("a=", "a", ""),
        ("x=%20y", "x", "%20y"),  # not decoded
        ("a&a=3", "a", "3"),
        ("aa=1", "a", None),
        ("", "a", None),
        ("a=1;b=2", "b", None),  # only '&' separates
    ],
)
def test_query_arg_follows_ngx_http_arg(args: str, name: str, expected: str | None) -> None:
    assert query_arg(args, name) == expected


@given(st.lists(st.tuples(NAME, VALUE), min_size=1, max_size=5), st.data())
def test_query_arg_finds_the_first_named_argument(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    args = "&".join(f"{k}={v}" for k, v in pairs)
    name = data.draw(st.sampled_from([k for k, _ in pairs]))
    first = next(v for k, v in pairs if k.lower() == name.lower())
    assert query_arg(args, name) == first


@given(st.text(max_size=30), st.text(max_size=5))
def test_query_arg_never_fails_and_returns_one_argument(args: str, name: str) -> None:
    value = query_arg(args, name)
    if value is not None:
        assert "&" not in value
        assert value in args


@pytest.mark.parametrize(
    ("lines", "name", "expected"),
    [
        (["a=1; b=2"], "b", "2"),
        (["a=1; B=2"], "b", "2"),
        (["a=1;b=2"], "b", "2"),
        (["a = 1"], "a", "1"),  # spaces around '=' allowed
        (["a=1, b=2"], "b", "2"),  # ',' separates entries too ...
        (["a=1, b=2"], "a", "1, b=2"),  # ... but does not end a value
        (["ab=1"], "a", None),
        (["x=1", "a=2"], "a", "2"),  # later Cookie lines are searched
        (["a=1", "a=2"], "a", "1"),
        (["a"], "a", None),
        ([], "a", None),
    ],
)
def test_cookie_value_follows_ngx_parse_multi_header_lines(
    lines: list[str], name: str, expected: str | None
) -> None:
    assert cookie_value(lines, name) == expected


@given(st.lists(st.tuples(NAME, st.text("abc123", max_size=5)), min_size=1, max_size=5))
def test_cookie_value_finds_the_first_cookie(pairs: list[tuple[str, str]]) -> None:
    line = "; ".join(f"{k}={v}" for k, v in pairs)
    for name, _ in pairs:
        first = next(v for k, v in pairs if k.lower() == name.lower())
        assert cookie_value([line], name) == first


def test_request_variables() -> None:
    v = variables(
        host="Example.COM",
        uri="/a/../b//c.html?id=7&Lang=de",
        client="192.0.2.9",
        port=8080,
        headers=[
            ("User-Agent", "curl"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("Cookie", "sid=abc"),
            ("Cookie", "theme=dark"),
            ("X_Bad", "dropped"),  # underscores: nginx ignores the header line
            ("X-Trace", "one"),
            ("X-Trace", "two"),
        ],
    )
    assert render("$request_uri", v) == "/a/../b//c.html?id=7&Lang=de"
    assert render("$uri", v) == "/b/c.html"
    assert render("$args|$is_args|$query_string", v) == "id=7&Lang=de|?|id=7&Lang=de"
    assert render("$arg_id-$arg_lang-$arg_none", v) == "7-de-"
    assert render("$http_user_agent", v) == "curl"
    assert render("$http_x_forwarded_for", v) == "10.0.0.1, 10.0.0.2"
    assert render("$http_cookie", v) == "sid=abc; theme=dark"
    assert render("$cookie_theme/$cookie_sid", v) == "dark/abc"
    assert render("[$http_x_bad]", v) == "[]"
    assert render("$http_x_trace", v) == "one"
    assert render("$remote_addr:$server_port", v) == "192.0.2.9:8080"
    assert render("$host", v) == "example.com"
    assert render("${arg_id}x", v) == "7x"


def test_captures_and_host_come_from_the_route() -> None:
    v = RequestVariables(
        ClientRequest(host="a_b_01.test"),
        host="a_b_01.test",
        captures=("a", "b", "01"),
        named={"site": "a"},
        server_name="~^(.+)$",
    )
    assert render("http://host_$3/$site/$1$2", v) == "http://host_01/a/ab"
    assert render("$9", v) == ""


def test_no_host_header_uses_the_server_name() -> None:
    v = RequestVariables(ClientRequest(), server_name="example.org")
    assert render("$host", v) == "example.org"


def test_unknown_variable_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"\$nosuch"):
        render("$nosuch", variables())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uri": "no-slash"},
        {"uri": "/" + "a" * 9000},
        {"port": 0},
        {"port": "80"},
        {"headers": "Host: x"},
        {"headers": [("a",)]},
        {"headers": [("a", 1)]},
        {"headers": [("h", "v")] * 101},
    ],
)
def test_bad_requests_raise_request_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(RequestError):
        ClientRequest(**kwargs)  # type: ignore[arg-type]


@given(st.text(max_size=40).map(lambda s: "/" + s))
def test_uri_is_normalised(uri: str) -> None:
    path = render("$uri", variables(uri=uri))
    assert path.startswith("/")
    assert "//" not in path
    assert "/./" not in path + "/"
    assert "/../" not in path + "/"


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "host": st.one_of(st.none(), st.text(max_size=10)),
            "uri": st.text(max_size=20),
            "client": st.text(max_size=10),
            "port": st.integers(-5, 70000),
            "headers": st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5))),
        },
    ),
    st.text("$_abcdefghijklmnopqrstuvwxyz{}19", max_size=20),
)
def test_fuzz_requests_and_templates(kwargs: dict[str, object], template: str) -> None:
    try:
        request = ClientRequest(**kwargs)  # type: ignore[arg-type]
    except RequestError:
        return
    try:
        out = render(template, RequestVariables(request))
    except ConfigError:
        return
    assert isinstance(out, str)
