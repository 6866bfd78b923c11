"""The proxy's sans-I/O parts: retry decisions, headers, settings, the request body."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.proxy.body import ClientDisconnected, RequestBody
from examples.proxy.headers import (
    proxy_add_x_forwarded_for,
    proxy_host,
    request_headers,
    response_headers,
)
from examples.proxy.retry import Attempt, Decision, after_error, after_status
from examples.proxy.settings import ProxySettings, proxy_settings
from lbkit import ConfigError
from lbkit.nginx import load_config

NEXT = frozenset({"error", "timeout", "http_502", "http_503", "http_504"})


def _attempt(**kw: Any) -> Attempt:
    base: dict[str, Any] = {
        "next_upstream": NEXT,
        "method": "GET",
        "more_tries": True,
        "request_sent": True,
        "replayable": True,
    }
    base.update(kw)
    return Attempt(**base)


def test_errors_always_count_and_retry_when_allowed() -> None:
    assert after_error("error", _attempt()) == Decision(True, True, 502)
    assert after_error("timeout", _attempt(more_tries=False)) == Decision(False, True, 504)
    assert after_error("invalid_header", _attempt()) == Decision(False, True, 502)  # not set
    # a POST that reached the peer needs non_idempotent; one that did not connect is retried
    assert not after_error("error", _attempt(method="POST")).retry
    assert after_error("error", _attempt(method="post", request_sent=False)).retry
    assert after_error("error", _attempt(method="POST", next_upstream=NEXT | {"non_idempotent"}))
    # a streamed body is never sent twice
    assert not after_error("error", _attempt(replayable=False)).retry
    assert after_error("error", _attempt(replayable=False, request_sent=False)).retry
    # proxy_next_upstream_timeout
    assert not after_error("error", _attempt(timeout=1.0, elapsed=1.0)).retry
    assert after_error("error", _attempt(timeout=1.0, elapsed=0.5)).retry
    assert not after_error("error", _attempt(next_upstream=frozenset({"off"}))).retry


def test_statuses_retry_only_with_another_try_left() -> None:
    assert after_status(503, _attempt()) == Decision(True, True, None)
    assert after_status(503, _attempt(more_tries=False)) == Decision(False, False, None)
    assert after_status(500, _attempt()) == Decision(False, False, None)  # http_500 not set
    assert after_status(200, _attempt()) == Decision(False, False, None)
    flags = NEXT | {"http_404"}
    assert after_status(404, _attempt(next_upstream=flags)) == Decision(True, False, None)
    assert not after_status(502, _attempt(method="PATCH")).retry
    assert after_status(502, _attempt(method="PUT")).retry  # idempotent


@given(
    flag=st.sampled_from(["error", "timeout", "invalid_header"]),
    method=st.sampled_from(["GET", "POST", "PUT", "LOCK", "PATCH", "DELETE"]),
    more=st.booleans(),
    sent=st.booleans(),
    replayable=st.booleans(),
    flags=st.frozensets(st.sampled_from(sorted(NEXT | {"non_idempotent", "invalid_header"}))),
)
def test_no_retry_without_a_try_or_the_flag(
    flag: str, method: str, more: bool, sent: bool, replayable: bool, flags: frozenset[str]
) -> None:
    attempt = _attempt(
        next_upstream=flags, method=method, more_tries=more, request_sent=sent,
        replayable=replayable,
    )  # fmt: skip
    decision = after_error(flag, attempt)
    assert decision.failed
    if decision.retry:
        assert more
        assert flag in flags
        assert replayable or not sent
        assert method not in ("POST", "LOCK", "PATCH") or not sent or "non_idempotent" in flags


def test_proxy_host_drops_the_default_port() -> None:
    assert proxy_host("http://host_01") == ("host_01", "80")
    assert proxy_host("http://host_01:80/x") == ("host_01", "80")
    assert proxy_host("http://10.0.0.1:8080/a?b") == ("10.0.0.1:8080", "8080")
    assert proxy_host("https://h:443") == ("h", "443")
    assert proxy_host("http://[::1]:81") == ("[::1]:81", "81")
    assert proxy_add_x_forwarded_for([], "10.0.0.9") == "10.0.0.9"
    assert proxy_add_x_forwarded_for(["1.1.1.1", "2.2.2.2"], "3.3.3.3") == (
        "1.1.1.1, 2.2.2.2, 3.3.3.3"
    )


def test_request_headers_in_nginx_order() -> None:
    client = [
        (b"host", b"a.test"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"connection", b"keep-alive"),
        (b"te", b"trailers"),
        (b"accept", b"*/*"),
        (b"x-real-ip", b"5.5.5.5"),
    ]
    sets = [("X-Real-IP", "$remote_addr"), ("X-Empty", "$nothing")]
    got = request_headers(client, sets, {"proxy_host": "up", "remote_addr": "9.9.9.9"})
    assert got == [
        (b"X-Real-IP", b"9.9.9.9"),
        (b"host", b"up"),
        (b"connection", b"close"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"accept", b"*/*"),
    ]
    keep = request_headers(client, [("Connection", "")], {"proxy_host": "up"})
    assert (b"connection", b"close") not in keep
    assert (b"connection", b"keep-alive") not in keep  # named: never passed from the client
    assert request_headers(client, [], {"proxy_host": "up"}, pass_request_headers=False) == [
        (b"host", b"up"),
        (b"connection", b"close"),
    ]


def test_response_headers_hide_what_nginx_hides() -> None:
    got = response_headers(
        [(b"Server", b"x"), (b"Date", b"d"), (b"X-Accel-Redirect", b"/i"), (b"X-App", b"1"),
         (b"Connection", b"close"), (b"Content-Length", b"3")]
    )  # fmt: skip
    assert got == [(b"X-App", b"1"), (b"Content-Length", b"3")]


def test_settings_merge_as_nginx(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(
        """
        events { }
        http {
            proxy_set_header X-A 1;
            proxy_next_upstream error http_503;
            proxy_read_timeout 5s;
            upstream u { server 127.0.0.1:1; }
            server {
                listen 80;
                proxy_next_upstream_tries 2;
                location / { proxy_pass http://u; }
                location /b/ {
                    proxy_set_header X-B 2;
                    proxy_request_buffering off;
                    client_body_buffer_size 1k;
                    proxy_pass http://u;
                    location /b/c/ { proxy_next_upstream off; proxy_pass http://u; }
                }
            }
        }
        """
    )
    config = load_config(tmp_path / "nginx.conf")
    assert config.router is not None
    table = proxy_settings(config)
    locations = {loc.name: loc for loc in config.router.servers[0].locations.all}  # type: ignore[union-attr]
    root = table.lookup(0, locations["/"])
    assert root.set_headers == (("X-A", "1"),)
    assert root.next_upstream == frozenset({"error", "http_503"})
    assert (root.next_upstream_tries, root.read_timeout, root.connect_timeout) == (2, 5.0, 60.0)
    b = table.lookup(0, locations["/b/"])
    assert b.set_headers == (("X-B", "2"),)  # an inner proxy_set_header replaces them all
    assert (b.request_buffering, b.client_body_buffer_size) == (False, 1024)
    nested = locations["/b/"].nested.all[0]  # type: ignore[union-attr]
    c = table.lookup(0, nested)
    assert c.next_upstream == frozenset({"off"})
    assert c.set_headers == (("X-B", "2"),)
    assert table.lookup(7, None) == ProxySettings()


def test_settings_refuse_bad_values(tmp_path: Path) -> None:
    for bad in ("proxy_next_upstream sometimes;", "proxy_read_timeout soon;",
                "client_body_buffer_size big;", "proxy_request_buffering maybe;"):  # fmt: skip
        (tmp_path / "nginx.conf").write_text(f"http {{ {bad} server {{ listen 80; }} }}")
        with pytest.raises(ConfigError, match=r"nginx\.conf:1"):
            proxy_settings(load_config(tmp_path / "nginx.conf"))


def _receiver(chunks: list[bytes], *, disconnect: bool = False) -> Any:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        messages[-1] = {"type": "http.disconnect"}

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive


async def _collect(body: RequestBody) -> bytes:
    return b"".join([chunk async for chunk in body.stream()])


def test_small_bodies_replay_large_ones_stream_once() -> None:
    async def main() -> None:
        small = RequestBody(_receiver([b"ab", b"cd"]), 10)
        await small.prefetch()
        assert (small.replayable, small.length) == (True, 4)
        assert await _collect(small) == await _collect(small) == b"abcd"
        large = RequestBody(_receiver([b"x" * 6, b"y" * 6, b"z" * 6]), 10)
        await large.prefetch()
        assert (large.replayable, large.length, large.complete) == (False, None, False)
        assert await _collect(large) == b"x" * 6 + b"y" * 6 + b"z" * 6
        with pytest.raises(RuntimeError):
            await _collect(large)
        unkept = RequestBody(_receiver([b"ab"]), 10, keep=False)
        await unkept.prefetch()
        assert not unkept.replayable
        empty = RequestBody(_receiver([b""]), 10)
        await empty.prefetch()
        assert empty.empty
        gone = RequestBody(_receiver([b"a", b"b"], disconnect=True), 10)
        with pytest.raises(ClientDisconnected):
            await gone.prefetch()

    asyncio.run(main())


def test_the_shipped_config_loads() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "examples/proxy/nginx.conf")
    assert config.warnings == []
    assert config.router is not None
    table = proxy_settings(config)
    locations = {loc.name: loc for loc in config.router.servers[0].locations.all}  # type: ignore[union-attr]
    root = table.lookup(0, locations["/"])
    assert root.next_upstream == NEXT
    assert root.connect_timeout == 2.0
    assert root.set_headers == (("X-Forwarded-For", "$proxy_add_x_forwarded_for"),)
    match = config.router.match("wordpress_container001_01.test.org")
    assert match.target == "http://host_01"
