"""From Host to backend through an lbkit-based proxy: real dnsmasq, real backend processes.

A WSGI proxy (wsgiref, in a thread) wrapped in ``WSGIRoutingMiddleware`` forwards each
request to the address lbkit chose: a peer of the ``hash $request_uri consistent``
upstream of ``web-01``/``web-02`` (names resolved by dnsmasq from its hosts file), a
``proxy_pass http://$host:PORT`` target (a dnsmasq wildcard), or the tenant pattern's
``proxy_pass http://host_$3:PORT``. Two backend processes on 127.0.0.1 and 127.0.0.2 say
who they are.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import lbkit
from lbkit.nginx import load_config
from lbkit.nginx.config import NginxConfig
from lbkit.routing import (
    ASGIRoutingMiddleware,
    AsyncResolver,
    Request,
    Resolver,
    ResolverPool,
    Route,
    WSGIRoutingMiddleware,
    route_request,
)

from .servers import Dnsmasq, free_port

BACKEND = """
import http.server, sys
name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((addr, port), H).serve_forever()
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NginxConfig, Dnsmasq, int]]:
    root: Path = tmp_path_factory.mktemp("e2e")
    port = free_port()
    (root / "hosts").write_text(
        "127.0.0.1 web-01.test.priv\n127.0.0.2 web-02.test.priv\n"
        "127.0.0.1 host_01.test.org\n127.0.0.2 host_02.test.org\n"
    )
    dns = Dnsmasq(root, free_port(), ["/apps.test.priv/127.0.0.2"], ttl=5)
    backends = [
        subprocess.Popen([sys.executable, "-c", BACKEND, f"backend-{i}", f"127.0.0.{i}", str(port)])
        for i in (1, 2)
    ]
    (root / "nginx.conf").write_text(
        f"""
events {{ }}
http {{
    resolver 127.0.0.1:{dns.port} valid=5s ipv6=off;
    upstream web {{
        hash $request_uri consistent;
        server web-01.test.priv:{port};
        server web-02.test.priv:{port};
    }}
    upstream bycookie {{
        hash $cookie_sid consistent;
        server web-01.test.priv:{port};
        server web-02.test.priv:{port};
    }}
    server {{
        listen 80 default_server;
        server_name web.test.priv;
        location / {{ proxy_pass http://web; }}
        location /c/ {{ proxy_pass http://bycookie; }}
    }}
    server {{
        listen 80;
        server_name web-01.test.priv web-02.test.priv *.apps.test.priv;
        location / {{ proxy_pass http://$host:{port}; }}
    }}
    server {{
        listen 80;
        server_name ~^([a-zA-Z0-9]+)_([a-zA-Z0-9]+)_([0-9]+)\\.test\\.org$;
        location / {{ proxy_pass http://host_$3.test.org:{port}/tenant/; }}
    }}
}}
"""
    )
    try:
        for i, proc in enumerate(backends, start=1):
            _wait(f"127.0.0.{i}", port, proc)
        yield load_config(root / "nginx.conf"), dns, port
    finally:
        for proc in backends:
            proc.terminate()
            proc.wait(10)
        dns.stop()


def _wait(addr: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until addr:port accepts (wait_for_port knows 127.0.0.1 only)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"backend on {addr}:{port} exited with {proc.returncode}")
        try:
            socket.create_connection((addr, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing answered on {addr}:{port}")


def _proxy_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    route: Route = environ["lbkit.route"]
    assert route.address is not None
    conn = http.client.HTTPConnection(route.address, route.port, timeout=5)
    try:
        conn.request("GET", route.uri, headers={"Host": route.host or ""})
        body = conn.getresponse().read()
    except OSError:
        route.done(failed=True)
        start_response("502 Bad Gateway", [])
        return [b""]
    finally:
        conn.close()
    peer = route.peer.name if route.peer is not None else "-"
    start_response("200 OK", [("X-Peer", peer), ("X-Address", route.address)])
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(world: tuple[NginxConfig, Dnsmasq, int]) -> Iterator[int]:
    config, _, _ = world
    assert config.router is not None
    pool = ResolverPool(lambda servers, valid, ipv6: Resolver(servers, valid, ipv6=ipv6))
    app = WSGIRoutingMiddleware(_proxy_app, config.router, resolver=pool)
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get(
    port: int, host: str, uri: str, cookie: str | None = None
) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Host": host} | ({"Cookie": cookie} if cookie else {})
        conn.request("GET", uri, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def test_named_hosts_reach_their_backends(proxy: int) -> None:
    assert _get(proxy, "web-01.test.priv", "/a")[1] == "backend-1 /a"
    assert _get(proxy, "WEB-02.test.priv:8080", "/b?c=1")[1] == "backend-2 /b?c=1"
    assert _get(proxy, "x.apps.test.priv", "/w")[1] == "backend-2 /w"  # dnsmasq wildcard
    # no URI part in proxy_pass: the request URI goes as the client sent it
    assert _get(proxy, "web-01.test.priv", "/a//b/../c?d")[1] == "backend-1 /a//b/../c?d"


def test_tenant_pattern_reaches_host_nn(proxy: int) -> None:
    status, body, _ = _get(proxy, "wordpress_container001_01.test.org", "/wp/x")
    # proxy_pass with variables and a URI part sends that URI as it is (nginx)
    assert (status, body) == (200, "backend-1 /tenant/")
    assert _get(proxy, "shop_c9_02.test.org", "/")[1] == "backend-2 /tenant/"
    assert _get(proxy, "shop_c9_02.test.org", "/../x")[0] == 400  # above the root


def test_consistent_hash_upstream_spreads_by_uri(
    proxy: int, world: tuple[NginxConfig, Dnsmasq, int]
) -> None:
    config, _, port = world
    seen: dict[str, str] = {}
    for i in range(30):
        status, body, headers = _get(proxy, "web.test.priv", f"/k{i}")
        assert status == 200
        expected = "backend-1" if headers["X-Peer"].startswith("web-01") else "backend-2"
        assert body == f"{expected} /k{i}"
        seen[f"/k{i}"] = headers["X-Peer"]
    assert set(seen.values()) == {f"web-01.test.priv:{port}", f"web-02.test.priv:{port}"}
    again = {uri: _get(proxy, "web.test.priv", uri)[2]["X-Peer"] for uri in list(seen)[:10]}
    assert all(seen[uri] == peer for uri, peer in again.items())  # same key, same peer
    web = config.upstreams["web"]
    assert all(state.conns == 0 for state in web.peers)  # every request was reported back


def test_hash_keys_use_the_request_variables(
    proxy: int, world: tuple[NginxConfig, Dnsmasq, int]
) -> None:
    config, _, _ = world
    fresh = load_config(config.path).upstreams["bycookie"]
    peers = set()
    for i in range(12):
        sid = f"s{i}"
        expected = fresh.pick(key=sid)
        fresh.done(expected)
        for uri in ("/c/a", "/c/b?x=1"):
            headers = _get(proxy, "web.test.priv", uri, cookie=f"theme=dark; sid={sid}")[2]
            assert headers["X-Peer"] == expected.name
        peers.add(expected.name)
    assert len(peers) == 2


def test_errors_are_answered_as_nginx(proxy: int) -> None:
    assert _get(proxy, "bad\thost", "/")[0] == 400
    assert _get(proxy, "gone.apps.test.priv", "/")[0] == 200  # the wildcard answers anything
    assert _get(proxy, "nobody_x_03.test.org", "/")[0] == 502  # host_03 does not resolve


def test_plain_function_reports_failures(world: tuple[NginxConfig, Dnsmasq, int]) -> None:
    config, dns, _ = world
    assert config.router is not None
    resolver = Resolver([f"127.0.0.1:{dns.port}"], ipv6=False)
    route = route_request(config.router, Request("web.test.priv", "/z"), resolver=resolver)
    assert route.upstream is config.upstreams["web"]
    assert route.address in ("127.0.0.1", "127.0.0.2")
    route.done(failed=True)
    assert route.state == "failed"
    with pytest.raises(lbkit.UsageError):
        route.done()


def test_asgi_middleware_and_shared_lookups(world: tuple[NginxConfig, Dnsmasq, int]) -> None:
    config, dns, _ = world
    assert config.router is not None
    resolver = AsyncResolver([f"127.0.0.1:{dns.port}"], ipv6=False)
    asked: list[str] = []
    real = resolver._client.resolve

    async def counting(name: str, qtype: str, **kw: Any) -> Any:
        asked.append(name)
        return await real(name, qtype, **kw)

    resolver._client.resolve = counting
    routes: list[Route] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        routes.append(scope["lbkit.route"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = ASGIRoutingMiddleware(app, config.router, resolver=resolver)

    async def one(host: bytes) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "path": "/p", "query_string": b"", "headers": [(b"host", host)]}
        await middleware(scope, receive, send)
        return int(sent[0]["status"])

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one(b"q.apps.test.priv") for _ in range(20))))

    assert asyncio.run(main()) == [204] * 20
    assert asked == ["q.apps.test.priv"]  # twenty requests, one query (A only: ipv6=off)
    assert {r.address for r in routes} == {"127.0.0.2"}
    assert all(r.state == "done" for r in routes)
    assert asyncio.run(one(b"a..b")) == 400


def test_sync_resolver_shares_one_query_between_16_threads(
    world: tuple[NginxConfig, Dnsmasq, int],
) -> None:
    _, dns, _ = world
    resolver = Resolver([f"127.0.0.1:{dns.port}"], ipv6=False)
    asked: list[str] = []
    real = resolver._client.resolve
    gate = threading.Barrier(16)

    def counting(name: str, qtype: str, **kw: Any) -> Any:
        asked.append(name)
        return real(name, qtype, **kw)

    resolver._client.resolve = counting
    answers: list[list[str]] = []

    def worker() -> None:
        gate.wait()
        answers.append(resolver.resolve("t16.apps.test.priv"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [["127.0.0.2"]] * 16
    assert asked == ["t16.apps.test.priv"]
