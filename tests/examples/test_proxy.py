"""The example proxy end to end: three real backend processes, the proxy under uvicorn.

Each backend (tests/examples/backend.py) runs in its own process on a free 127.0.0.1 port
and says who it is; the proxy (``python -m examples.proxy``) runs in another, configured
from an nginx.conf, with its admin endpoint showing every peer's connection count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lbkit.nginx import parse_upstream
from tests.conformance.servers import free_ports, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "/_lbkit/status"
NAMES = ("b1", "b2", "b3")


def _config(ports: dict[str, int]) -> str:
    b1, b2, b3 = (f"127.0.0.1:{ports[n]}" for n in NAMES)
    return rf"""
events {{ }}
http {{
    proxy_next_upstream error timeout http_502 http_503 http_504;
    upstream rr {{ server {b1} weight=3; server {b2} weight=2; server {b3}; }}
    upstream lc {{ least_conn; server {b1}; server {b2}; server {b3}; }}
    upstream uri {{ hash $request_uri; server {b1}; server {b2}; server {b3}; }}
    upstream ip {{ ip_hash; server {b1}; server {b2}; server {b3}; }}
    upstream ra {{ hash $remote_addr; server {b1}; server {b2}; server {b3}; }}
    upstream ck {{ hash $cookie_sid consistent; server {b1}; server {b2}; server {b3}; }}
    upstream fo {{
        server {b1} max_fails=1 fail_timeout=30s;
        server {b2} max_fails=1 fail_timeout=30s;
        server {b3} max_fails=1 fail_timeout=30s;
    }}
    upstream nf {{ server {b1} max_fails=0; server {b2} max_fails=0; server {b3} max_fails=0; }}
    upstream host_01 {{ server {b1}; }}
    upstream host_02 {{ server {b2}; }}
    server {{
        listen 80 default_server;
        server_name rr.test;
        location / {{ proxy_pass http://rr; }}
    }}
    server {{ listen 80; server_name lc.test; location / {{ proxy_pass http://lc; }} }}
    server {{ listen 80; server_name nf.test; location / {{ proxy_pass http://nf; }} }}
    server {{
        listen 80;
        server_name to.test;
        proxy_read_timeout 1s;
        proxy_next_upstream_tries 2;
        location / {{ proxy_pass http://nf; }}
    }}
    server {{ listen 80; server_name uri.test; location / {{ proxy_pass http://uri; }} }}
    server {{ listen 80; server_name ip.test; location / {{ proxy_pass http://ip; }} }}
    server {{ listen 80; server_name ra.test; location / {{ proxy_pass http://ra; }} }}
    server {{ listen 80; server_name ck.test; location / {{ proxy_pass http://ck; }} }}
    server {{
        listen 80;
        server_name fo.test;
        location / {{ proxy_pass http://fo; }}
        location /xff/ {{
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_pass http://fo/;
        }}
    }}
    server {{
        listen 80;
        server_name ~^([a-zA-Z0-9]+)_([a-zA-Z0-9]+)_([0-9]+)\.test\.org$;
        location / {{ proxy_pass http://host_$3; }}
    }}
}}
"""


class World:
    """Backends and the proxy, each a process stopped by its PID."""

    def __init__(self, root: Path) -> None:
        ports = free_ports(4)
        self.ports = dict(zip(NAMES, ports[:3], strict=True))
        self.proxy_port = ports[3]
        self.backends: dict[str, subprocess.Popen[bytes]] = {}
        for name in NAMES:
            self.start_backend(name)
        self.conf = root / "nginx.conf"
        self.conf.write_text(_config(self.ports))
        self.proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.proxy",
                str(self.conf),
                "--port",
                str(self.proxy_port),
                "--admin-path",
                ADMIN,
            ],
            cwd=ROOT,
        )
        wait_for_port(self.proxy_port, self.proxy, timeout=20)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.proxy_port}", timeout=30)

    def start_backend(self, name: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.examples.backend", name, str(self.ports[name])], cwd=ROOT
        )
        self.backends[name] = proc
        wait_for_port(self.ports[name], proc, timeout=20)

    def peer(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def backend_of(self, peer: str) -> str:
        return next(n for n in NAMES if self.peer(n) == peer)

    def get(self, host: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Host": host, **kw.pop("headers", {})}
        return self.client.get(path, headers=headers, **kw)

    def status(self) -> dict[str, Any]:
        return dict(self.client.get(ADMIN).json())

    def conns(self) -> dict[str, int]:
        return {
            f"{up}/{self.backend_of(p['name'])}": p["conns"]
            for up, peers in self.status()["upstreams"].items()
            for p in peers
        }

    def stop(self) -> None:
        self.client.close()
        for proc in [self.proxy, *self.backends.values()]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("proxy"))
    try:
        yield w
    finally:
        w.stop()


def _expected(world: World, text: str, n: int, **kw: Any) -> list[str]:
    """What lbkit itself picks for the same upstream from a fresh start."""
    up = parse_upstream(text)
    out = []
    for _ in range(n):
        peer = up.pick(**kw)
        up.done(peer)
        out.append(world.backend_of(peer.name))
    return out


def test_round_robin_weights_are_exact(world: World) -> None:
    got = [world.get("rr.test", f"/r{i}").headers["x-backend"] for i in range(24)]
    b1, b2, b3 = (world.peer(n) for n in NAMES)
    text = f"upstream rr {{ server {b1} weight=3; server {b2} weight=2; server {b3}; }}"
    assert got == _expected(world, text, 24)
    assert Counter(got) == {"b1": 12, "b2": 8, "b3": 4}
    # every one reported done (not just given back) once its response was sent
    # (the proxy reports just after the last byte went out: wait for it)
    _wait(lambda: [p["requests"] for p in world.status()["upstreams"]["rr"]] == [12, 8, 4])


def test_hash_by_request_uri_is_stable(world: World) -> None:
    b1, b2, b3 = (world.peer(n) for n in NAMES)
    text = f"upstream uri {{ hash $request_uri; server {b1}; server {b2}; server {b3}; }}"
    uris = [f"/item/{i}?v={i % 3}" for i in range(30)]
    first = {u: world.get("uri.test", u).headers["x-backend"] for u in uris}
    again = {u: world.get("uri.test", u).headers["x-backend"] for u in reversed(uris)}
    assert first == again
    assert len(set(first.values())) == 3
    for uri in uris:
        assert [first[uri]] == _expected(world, text, 1, key=uri)


def _from(world: World, source: str, host: str) -> str:
    """The backend a request from the client address ``source`` reaches."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        url = f"http://127.0.0.1:{world.proxy_port}/who"
        return client.get(url, headers={"Host": host}).headers["x-backend"]


def test_client_address_methods(world: World) -> None:
    sources = [f"127.0.{i}.{j}" for i in (0, 1, 2) for j in (2, 3)]
    b1, b2, b3 = (world.peer(n) for n in NAMES)
    servers = f"server {b1}; server {b2}; server {b3};"
    ip = {s: _from(world, s, "ip.test") for s in sources}
    ra = {s: _from(world, s, "ra.test") for s in sources}
    for source in sources:
        assert [ip[source]] == _expected(
            world, f"upstream ip {{ ip_hash; {servers} }}", 1, client_addr=source
        )
        assert [ra[source]] == _expected(
            world, f"upstream ra {{ hash $remote_addr; {servers} }}", 1, key=source
        )
    # ip_hash hashes an IPv4 client's first three octets: 127.0.0.2 and .3 share a peer
    assert all(ip[f"127.0.{i}.2"] == ip[f"127.0.{i}.3"] for i in (0, 1, 2))
    assert {s: _from(world, s, "ip.test") for s in sources} == ip  # stable


def test_hash_by_cookie(world: World) -> None:
    b1, b2, b3 = (world.peer(n) for n in NAMES)
    text = f"upstream ck {{ hash $cookie_sid consistent; server {b1}; server {b2}; server {b3}; }}"
    got = {}
    for i in range(20):
        cookie = f"theme=dark; sid=user{i}"
        got[i] = world.get("ck.test", f"/p{i % 3}", headers={"Cookie": cookie})
        assert [got[i].headers["x-backend"]] == _expected(world, text, 1, key=f"user{i}")
    assert len({r.headers["x-backend"] for r in got.values()}) == 3


def _held(world: World, host: str, n: int) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=world.get, args=(host, "/hold"), daemon=True) for _ in range(n)
    ]
    for t in threads:
        t.start()
    return threads


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_least_conn_follows_held_requests(world: World) -> None:
    threads = _held(world, "lc.test", 2)
    try:
        _wait(lambda: sum(v for k, v in world.conns().items() if k.startswith("lc/")) == 2)
        held = {k: v for k, v in world.conns().items() if k.startswith("lc/")}
        assert held == {"lc/b1": 1, "lc/b2": 1, "lc/b3": 0}  # ties go round robin
        got = [world.get("lc.test", f"/q{i}").headers["x-backend"] for i in range(6)]
        assert got == ["b3"] * 6  # the only peer without a held request
    finally:
        for name in NAMES:
            httpx.get(f"http://{world.peer(name)}/release", timeout=10)
        for t in threads:
            t.join(10)
    _wait(lambda: all(v == 0 for v in world.conns().values()))


def test_tenant_regex_reaches_host_01(world: World) -> None:
    response = world.get("wordpress_container001_01.test.org", "/wp/x?y=1")
    info = response.json()
    assert (response.status_code, info["backend"], info["path"]) == (200, "b1", "/wp/x")
    assert info["host"] == "host_01"  # proxy_set_header Host $proxy_host (nginx's default)
    assert info["connection"] == "close"
    assert world.get("shop_c9_02.TEST.org", "/").json()["backend"] == "b2"


def test_forwarded_for_as_nginx(world: World) -> None:
    plain = world.get("fo.test", "/a", headers={"X-Forwarded-For": "1.2.3.4"}).json()
    assert plain["xff"] == "1.2.3.4"  # passed as sent: nginx adds nothing by default
    added = world.get("fo.test", "/xff/a", headers={"X-Forwarded-For": "1.2.3.4"}).json()
    assert (added["xff"], added["path"]) == ("1.2.3.4, 127.0.0.1", "/a")
    assert world.get("fo.test", "/xff/b").json()["xff"] == "127.0.0.1"


def _replay(world: World, methods: list[str]) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(status, backend) lbkit's attempts give when b2 answers 503 and the rest 200, and
    the failures each peer has then."""
    b1, b2, b3 = (world.peer(n) for n in NAMES)
    up = parse_upstream(
        f"upstream nf {{ server {b1} max_fails=0; server {b2} max_fails=0; "
        f"server {b3} max_fails=0; }}"
    )
    out = []
    for method in methods:
        for peer in up.attempts():
            if peer.name == b2 and method == "GET":
                up.done(peer, failed=True)  # http_503: the next peer, a failure
                continue
            up.done(peer)
            out.append((503 if peer.name == b2 else 200, world.backend_of(peer.name)))
    return out, {world.backend_of(p.name): p.fails for p in up.peers}


def test_next_upstream_on_503_and_non_idempotent_post(world: World) -> None:
    # max_fails=0: b2 is never taken out, so it meets requests again and again
    got = [world.get("nf.test", "/fail/b2") for _ in range(9)]
    # a POST was sent: retrying it needs non_idempotent, so b2's 503 reaches the client
    got += [
        world.client.post("/fail/b2", headers={"Host": "nf.test"}, content=b"x") for _ in range(9)
    ]
    seen = [(r.status_code, r.headers["x-backend"]) for r in got]
    expected, expected_fails = _replay(world, ["GET"] * 9 + ["POST"] * 9)
    assert seen == expected
    assert all(status == 200 for status, _ in seen[:9])
    assert (503, "b2") in seen[9:]
    fails = {world.backend_of(p["name"]): p["fails"] for p in world.status()["upstreams"]["nf"]}
    assert fails == expected_fails
    assert fails["b2"] > 0


def test_streams_large_bodies_both_ways(world: World) -> None:
    size = 96 * 1024 * 1024
    pid = world.proxy.pid
    before = _peak_rss(pid)
    block = bytes(range(256)) * 4096  # 1 MiB

    def upload() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    response = world.client.post(
        "/count", headers={"Host": "fo.test", "Content-Length": str(size)}, content=upload()
    )
    info = response.json()
    assert info["size"] == size
    with world.client.stream("GET", f"/bytes/{size}", headers={"Host": "fo.test"}) as down:
        assert down.status_code == 200
        assert sum(len(c) for c in down.iter_raw()) == size
    grown = _peak_rss(pid) - before
    assert grown < 32 * 1024 * 1024, f"the proxy's peak memory grew by {grown} bytes"


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_cancelled_clients_leave_no_connection_counted(world: World) -> None:
    socks = []
    for i in range(6):
        s = socket.create_connection(("127.0.0.1", world.proxy_port), 5)
        s.sendall(f"GET /slow?{i} HTTP/1.1\r\nHost: lc.test\r\n\r\n".encode())
        socks.append(s)
    _wait(lambda: sum(v for k, v in world.conns().items() if k.startswith("lc/")) == 6)
    fails_before = sum(p["fails"] for p in world.status()["upstreams"]["lc"])
    for s in socks:
        s.close()
    _wait(lambda: all(v == 0 for v in world.conns().values()))
    assert sum(p["fails"] for p in world.status()["upstreams"]["lc"]) == fails_before


def test_failover_when_a_backend_is_killed(world: World) -> None:
    victim = world.backends["b2"]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    try:
        got = [world.get("fo.test", f"/f{i}") for i in range(12)]
        assert all(r.status_code == 200 for r in got)
        assert {r.headers["x-backend"] for r in got} == {"b1", "b3"}
        peers = {world.backend_of(p["name"]): p for p in world.status()["upstreams"]["fo"]}
        assert peers["b2"]["fails"] == 1  # max_fails=1: one failure, then skipped for 30 s
        assert peers["b2"]["failed"] is True
        assert not peers["b1"]["failed"]
        assert not peers["b3"]["failed"]
        _wait(lambda: all(v == 0 for v in world.conns().values()))
    finally:
        with contextlib.suppress(Exception):
            world.start_backend("b2")


def test_admin_endpoint_is_json(world: World) -> None:
    status = world.status()
    names = {"rr", "lc", "uri", "ip", "ra", "ck", "fo", "nf", "host_01", "host_02"}
    assert set(status["upstreams"]) == names
    peer = status["upstreams"]["rr"][0]
    assert set(peer) == {"name", "conns", "fails", "requests", "failed", "down"}
    assert json.dumps(status)


def test_cancelled_tasks_in_process_give_every_peer_back(world: World) -> None:
    """The ASGI app driven directly: tasks cancelled while connecting, waiting for the
    header, or streaming the body leave every count at 0 and count no failure."""
    from examples.proxy.app import ProxyApp
    from lbkit.nginx import load_config

    config = load_config(world.conf)
    app = ProxyApp(config)
    started: list[int] = []

    async def one(host: str, path: str, gate: asyncio.Event) -> None:
        async def receive() -> dict[str, Any]:
            if not gate.is_set():
                gate.set()
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client never says it left: we cancel
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", host.encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
        }
        await app(scope, receive, send)

    async def main() -> None:
        tasks = []
        for i in range(12):
            host = ("lc.test", "rr.test", "uri.test")[i % 3]
            path = "/slow" if i % 2 else f"/bytes/{64 * 1024 * 1024}"
            tasks.append(asyncio.create_task(one(host, path, asyncio.Event())))
        await asyncio.sleep(0.5)
        held = sum(p.conns for n in ("lc", "rr", "uri") for p in config.upstreams[n].peers)
        assert held >= 6  # the /slow ones at least are waiting on their peers
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.aclose()

    asyncio.run(main())
    for name in ("lc", "rr", "uri"):
        assert [p.conns for p in config.upstreams[name].peers] == [0, 0, 0]
        assert [p.fails for p in config.upstreams[name].peers] == [0, 0, 0]


def test_shared_sessions_are_optional(world: World) -> None:
    """With a session store the backends get the client's session id; a forged one is
    dropped. Without one (the default) nothing about sessions is sent or set."""
    from examples.proxy.app import make_app
    from lbkit.nginx import load_config
    from lbkit.sessions import AsyncMemoryStore

    async def main() -> None:
        store = AsyncMemoryStore()
        app = make_app(load_config(world.conf), sessions=store)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        # https: the middleware's cookie is Secure by default
        async with httpx.AsyncClient(transport=transport, base_url="https://fo.test") as c:
            forged = {"X-Session-Id": "forged"}
            first = await c.get("/s", headers=forged)
            assert first.json()["session"] is None  # a new session has no id yet
            assert "session" in first.cookies
            second = await c.get("/s", headers=forged)
            sid = second.json()["session"]
            assert sid not in (None, "forged")
            assert first.cookies["session"].startswith(sid)
        plain = make_app(load_config(world.conf))
        transport = httpx.ASGITransport(app=plain, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://fo.test") as c:
            response = await c.get("/s", headers={"X-Session-Id": "mine"})
            assert response.json()["session"] == "mine"  # no sessions: passed as any header
            assert "set-cookie" not in response.headers

    asyncio.run(main())


def _resolving_proxy_answers(
    conf: Path, dns_port: int, names: str, port: int, hosts: list[str], field: str
) -> tuple[Any, list[tuple[int, str]]]:
    """A proxy whose ``server_name names`` proxy to ``$host:port`` resolved by dnsmasq at
    ``dns_port``: its app and, per Host, the status and the JSON ``field`` answered."""
    from examples.proxy.app import ProxyApp
    from lbkit.nginx import load_config

    conf.write_text(
        f"""
        events {{ }}
        http {{
            resolver 127.0.0.1:{dns_port} valid=5s ipv6=off;
            server {{
                listen 80;
                server_name {names};
                location / {{ proxy_pass http://$host:{port}; }}
            }}
        }}
        """
    )
    app = ProxyApp(load_config(conf))

    async def main() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        out = []
        async with httpx.AsyncClient(transport=transport) as c:
            for host in hosts:
                r = await c.get("http://proxy/p", headers={"Host": host})
                out.append((r.status_code, r.json()[field] if r.status_code == 200 else ""))
        await app.aclose()
        return out

    return app, asyncio.run(main())


def test_names_resolved_with_the_blocks_resolver(world: World, tmp_path: Path) -> None:
    """``proxy_pass http://$host:PORT`` with ``resolver``: the name goes to a real dnsmasq
    (hosts file and a wildcard record); a name it does not know is nginx's 502."""
    from tests.conformance.servers import Dnsmasq, free_port

    (tmp_path / "hosts").write_text("127.0.0.1 one.svc.test.priv\n")
    dns = Dnsmasq(tmp_path, free_port(), ["/wild.test.priv/127.0.0.1"], ttl=5)
    port = world.ports["b3"]
    hosts = ["one.svc.test.priv", "x.wild.test.priv", "gone.svc.test.priv"]
    try:
        _, got = _resolving_proxy_answers(
            tmp_path / "nginx.conf", dns.port, "*.svc.test.priv *.wild.test.priv", port, hosts,
            "host",
        )  # fmt: skip
    finally:
        dns.stop()
    assert got == [
        (200, f"one.svc.test.priv:{port}"),  # Host: $proxy_host, with its port
        (200, f"x.wild.test.priv:{port}"),
        (502, ""),
    ]


class _HostEcho(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"host": self.headers["Host"], "at": self.server.server_address[0]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_name_with_several_addresses_moves_on_to_the_next(tmp_path: Path) -> None:
    """A resolved name is a round-robin group of all its addresses for the request, as
    nginx's ``ngx_http_upstream_create_round_robin_peer`` makes it: the first address
    refuses, the request goes to the second; a name whose only address refuses is 502."""
    from tests.conformance.servers import Dnsmasq, free_port

    port = free_port()  # nothing listens on 127.0.0.1:port
    live = ThreadingHTTPServer(("127.0.0.2", port), _HostEcho)
    thread = threading.Thread(target=live.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "hosts").write_text(
        "127.0.0.1 two.svc.test.priv\n127.0.0.2 two.svc.test.priv\n127.0.0.1 dead.svc.test.priv\n"
    )
    dns = Dnsmasq(tmp_path, free_port(), [], ttl=5)
    hosts = ["two.svc.test.priv", "two.svc.test.priv", "dead.svc.test.priv"]
    try:
        app, got = _resolving_proxy_answers(
            tmp_path / "nginx.conf", dns.port, "*.svc.test.priv", port, hosts, "at"
        )
    finally:
        dns.stop()
        live.shutdown()
        live.server_close()
        thread.join()
    assert got == [(200, "127.0.0.2"), (200, "127.0.0.2"), (502, "")]
    assert app.stats["upstream_error"] == 3  # 127.0.0.1 refused each time: tried first


def test_timeouts_retry_up_to_the_tries_limit_then_504(world: World) -> None:
    before = sum(p["fails"] for p in world.status()["upstreams"]["nf"])
    started = time.monotonic()
    response = world.get("to.test", "/slow")
    took = time.monotonic() - started
    assert response.status_code == 504  # the last try timed out: nginx's 504
    assert 2.0 <= took < 6.0  # two tries of proxy_read_timeout 1s, not three
    assert sum(p["fails"] for p in world.status()["upstreams"]["nf"]) == before + 2
    _wait(lambda: all(v == 0 for v in world.conns().values()))


def test_a_body_cut_short_closes_the_client_and_counts_as_nginx(world: World) -> None:
    peers = {p["name"]: p for p in world.status()["upstreams"]["nf"]}
    with pytest.raises(httpx.HTTPError):  # the client sees the response cut short
        world.get("nf.test", "/break")
    total = sum(p["requests"] for p in peers.values())
    # reported done: nginx frees the peer as a success
    _wait(lambda: sum(p["requests"] for p in world.status()["upstreams"]["nf"]) == total + 1)
    after = {p["name"]: p for p in world.status()["upstreams"]["nf"]}
    assert [p["fails"] for p in after.values()] == [p["fails"] for p in peers.values()]
    _wait(lambda: all(v == 0 for v in world.conns().values()))
