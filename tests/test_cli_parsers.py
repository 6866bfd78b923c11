"""Fuzzing the command line's own parsers: node lists, request arguments, JSON requests,
and the error report: only lbkit errors escape, and reports always name the file."""

from __future__ import annotations

import contextlib

from hypothesis import example, given
from hypothesis import strategies as st

from lbkit import ConfigError
from lbkit._cli.diagnostics import describe_error
from lbkit._cli.predict import parse_request_argument
from lbkit._cli.predictor import request_from_json
from lbkit._cli.reshard import node_list
from lbkit._cli.sources import ConfigFile, upstream_blocks
from lbkit.errors import RequestError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@given(st.text(max_size=200))
@example(text="0 \u00b2")  # a superscript digit: str.isdigit() but not int() (was ValueError)
@example(text="0 " + "1" * 5000)  # more digits than int() reads (was ValueError)
def test_node_list_accepts_or_refuses_with_a_config_error(text: str) -> None:
    try:
        nodes, weights = node_list(ConfigFile("nodes.txt", text))
    except ConfigError:
        return
    assert len(nodes) == len(weights) > 0
    assert all(w >= 0 for w in weights)


@given(st.text(max_size=60), st.integers(-3, 70000) | st.none())
def test_request_arguments(text: str, port: int | None) -> None:
    try:
        request = parse_request_argument(text, client="192.0.2.1", port=port, headers=[])
    except RequestError:
        return
    assert request.uri.startswith("/")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "host": JSON,
            "uri": JSON,
            "client": JSON,
            "port": JSON,
            "headers": JSON,
            "method": JSON,
        },
    )
    | JSON
)
def test_json_requests_raise_only_request_errors(obj: object) -> None:
    with contextlib.suppress(RequestError):
        request_from_json(obj)


@given(st.text(max_size=300))
def test_upstream_blocks_raise_only_config_errors(text: str) -> None:
    with contextlib.suppress(ConfigError):
        upstream_blocks(text)


@given(st.text(max_size=80), st.integers(1, 5) | st.none(), st.text(max_size=120))
def test_error_reports_name_the_file(message: str, line: int | None, text: str) -> None:
    report = describe_error(ConfigError(message, line=line), "conf/x.conf", text)
    first = report.splitlines()[0]
    assert first.startswith("conf/x.conf:" if line is not None else "conf/x.conf: error:")
    assert report.splitlines()[-1].startswith("hint:")
