"""Session middleware in real servers: WSGI (wsgiref), ASGI (uvicorn), and two app servers
sharing one store behind an alternating client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest

from lbkit import sessions
from lbkit.middleware import ASGISessionMiddleware, WSGISessionMiddleware
from lbkit.sessions import CookieConfig
from tests.conformance.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/static":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no session"]
    session = environ["lbkit.session"].get()
    if path == "/login":
        session["user"] = "alice"
        session.regenerate()
    elif path == "/logout":
        session.invalidate()
    else:
        session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("n", 0)).encode()]


class CountingStore(sessions.MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def get_versioned(self, key: str) -> Any:
        self.calls += 1
        return super().get_versioned(key)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().set(*args, **kwargs)


@pytest.fixture
def wsgi_server() -> Iterator[tuple[str, CountingStore]]:
    store = CountingStore()
    app = WSGISessionMiddleware(
        _wsgi_app, store, cookie=CookieConfig(secure=False), secret="s" * 32
    )
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", store
    server.shutdown()


def test_wsgi_sessions_in_a_real_server(wsgi_server: tuple[str, CountingStore]) -> None:
    base, store = wsgi_server
    with httpx.Client(base_url=base) as client:
        r = client.get("/static")
        assert "set-cookie" not in r.headers
        assert store.calls == 0  # the session was never loaded
        r = client.get("/")
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/" in cookie
        assert [client.get("/").text for _ in range(3)] == ["2", "3", "4"]
        old = client.cookies["session"]
        client.get("/login")
        new = client.cookies["session"]
        assert new != old  # a new id on login
        assert store.get(old.split(".")[0]) is None
        assert client.get("/").text == "5"  # data kept across the new id
        # a forged or tampered cookie starts a new session
        tampered = httpx.get(f"{base}/", headers={"Cookie": f"session={new[:-2]}xx"})
        assert tampered.text == "1"
        unsigned = httpx.get(f"{base}/", headers={"Cookie": f"session={new.split('.')[0]}"})
        assert unsigned.text == "1"
        client.get("/logout")
        assert "Max-Age=0" in client.get("/logout").headers.get("set-cookie", "Max-Age=0")


def test_asgi_websocket_scope_exposes_the_session() -> None:
    store = sessions.AsyncMemoryStore()
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = await scope["session"].get()
        session["ws"] = True
        seen["session"] = session
        await send({"type": "websocket.accept"})

    mw = ASGISessionMiddleware(app, store, cookie=CookieConfig(secure=False))
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    asyncio.run(mw({"type": "websocket", "headers": []}, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    assert any(name == b"set-cookie" for name, _ in sent[0]["headers"])
    assert seen["session"].id is not None


def _uvicorn(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.apps.counter:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for_port(port, proc, timeout=20)
    return proc


@pytest.mark.parametrize("backend", ["redis", "memcached", "files", "sharedance"])
def test_two_app_servers_share_one_session(backend: str, request: Any, tmp_path: Path) -> None:
    if backend == "redis":
        spec = f"redis://127.0.0.1:{request.getfixturevalue('redis_proc').port}/0"
    elif backend == "memcached":
        spec = f"memcached://127.0.0.1:{request.getfixturevalue('memcached_proc').port}"
    elif backend == "sharedance":
        spec = f"sharedance://127.0.0.1:{request.getfixturevalue('sharedance_proc').port}"
    else:
        spec = f"files:{tmp_path / 'shared'}"
    two_app_servers_share_one_session(spec, f"e2e-{backend}:")


def two_app_servers_share_one_session(spec: str, prefix: str) -> None:
    """Alternate one client's requests between two uvicorn processes on store ``spec``."""
    ports = [free_port(), free_port()]
    env = {"LBKIT_TEST_STORE": spec, "LBKIT_TEST_PREFIX": prefix}
    procs = [_uvicorn(p, env) for p in ports]
    try:
        jar = httpx.Cookies()
        pids = set()
        n = 12
        for i in range(n):
            with httpx.Client(base_url=f"http://127.0.0.1:{ports[i % 2]}", cookies=jar) as c:
                r = c.get("/")
                jar = c.cookies
            count, pid = r.text.split("|")
            pids.add(pid)
            assert int(count) == i + 1
        assert len(pids) == 2  # two processes served the one session
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
