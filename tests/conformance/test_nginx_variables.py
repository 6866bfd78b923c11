"""lbkit.nginx.variables against a real nginx: the same request, the same variable values.

nginx answers ``return 200 "<variables>"`` for generated requests (query strings, Cookie
lines, repeated headers, paths with dot segments and escapes); lbkit evaluates the same
template from the same request and must print the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbkit.nginx.variables import ClientRequest, RequestVariables, render
from tests.conformance.http_client import get_with_headers
from tests.conformance.servers import Nginx, free_port

pytestmark = pytest.mark.nginx

TEMPLATE = (
    "args=[$args] isargs=[$is_args] ru=[$request_uri] uri=[$uri] "
    "a=[$arg_a] ab=[$arg_ab] b_c=[$arg_b_c] "
    "sid=[$cookie_sid] x=[$cookie_x] "
    "trace=[$http_x_trace] xff=[$http_x_forwarded_for] cookie=[$http_cookie] "
    "host=[$host] addr=[$remote_addr] port=[$server_port]"
)


@pytest.fixture(scope="module")
def nginx_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir: Path = tmp_path_factory.mktemp("nginx-variables")
    port = free_port()
    text = (
        f"server {{\n    listen 127.0.0.1:{port};\n    server_name vars.test;\n"
        f'    location / {{ return 200 "{TEMPLATE}"; }}\n}}\n'
    )
    nginx = Nginx(workdir, text, [port])
    try:
        yield port
    finally:
        nginx.stop()


def _lbkit(uri: str, headers: list[tuple[str, str]], port: int) -> str:
    request = ClientRequest(
        host="vars.test", uri=uri, client="127.0.0.1", port=port, headers=headers
    )
    return render(TEMPLATE, RequestVariables(request, host="vars.test", server_name="vars.test"))


QUERY = st.text("aAbB_c=&;%1x", max_size=16)
COOKIE = st.text("sidSIDx=;, 1a", max_size=18)
PATH = st.lists(st.sampled_from(["a", "b", ".", "..", "", "%41", "%2e", "x.y"]), max_size=5)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=PATH,
    query=st.none() | QUERY,
    cookies=st.lists(COOKIE, max_size=2),
    traces=st.lists(
        st.tuples(
            st.sampled_from(["X-Trace", "x-trace", "X-TRACE"]), st.text("abc 1\t", max_size=5)
        ),
        max_size=2,
    ),
    forwarded=st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2, 10.0.0.3"]), max_size=2),
)
def test_variables_match_nginx(
    nginx_port: int,
    path: list[str],
    query: str | None,
    cookies: list[str],
    traces: list[tuple[str, str]],
    forwarded: list[str],
) -> None:
    uri = "/" + "/".join(path) + ("" if query is None else "?" + query)
    headers = [("Cookie", c) for c in cookies]
    headers += traces
    headers += [("X-Forwarded-For", f) for f in forwarded]
    headers.append(("X_Trace", "underscored, ignored"))
    status, body = get_with_headers(nginx_port, uri, [("Host", "vars.test"), *headers])
    if status == 400:
        return  # nginx refuses the path (a ".." above the root): no variables to compare
    assert status == 200
    assert _lbkit(uri, headers, nginx_port) == body, (uri, headers)
