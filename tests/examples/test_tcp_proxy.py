"""examples/tcp_proxy.py end to end: real backend processes, real sockets, clients from
several loopback addresses (127.0.0.2, 127.0.0.3...), ``hash $remote_addr consistent``."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.tcp_proxy import TCPProxy, serve
from lbkit.nginx import parse_upstream
from tests.conformance.servers import free_port, free_ports, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
# Says its name, then echoes every byte back until the client half-closes.
ECHO = """
import socket, sys, threading
name, port = sys.argv[1].encode(), int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(64)
def serve(c):
    c.sendall(name + b"\\n")
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
NAMES = ("t1", "t2", "t3")


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, tuple[int, subprocess.Popen[bytes]]]]:
    procs = {}
    for name, port in zip(NAMES, free_ports(3), strict=True):
        proc = subprocess.Popen([sys.executable, "-c", ECHO, name, str(port)])
        procs[name] = (port, proc)
    try:
        for port, proc in procs.values():
            wait_for_port(port, proc)
        yield procs
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _upstream_text(backends: dict[str, tuple[int, subprocess.Popen[bytes]]]) -> str:
    lines = "".join(f"server 127.0.0.1:{port};" for port, _ in backends.values())
    return f"upstream tcp {{ hash $remote_addr consistent; {lines} }}"


class Running:
    """The proxy's event loop in a thread, listening on a free port."""

    def __init__(self, proxy: TCPProxy) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            self.server = await serve(proxy, "127.0.0.1", self.port)
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        ready.wait(10)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _talk(port: int, source: str, payload: bytes) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0)) as s:
        f = s.makefile("rb")
        name = f.readline().strip().decode()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        echoed = f.read()
    return name, echoed


def _backend_name(backends: dict[str, tuple[int, subprocess.Popen[bytes]]], peer_name: str) -> str:
    return next(n for n, (port, _) in backends.items() if peer_name == f"127.0.0.1:{port}")


def test_clients_keep_their_backend_and_fail_over(
    backends: dict[str, tuple[int, subprocess.Popen[bytes]]],
) -> None:
    text = _upstream_text(backends)
    upstream = parse_upstream(text)
    running = Running(TCPProxy(upstream, connect_timeout=5))
    sources = [f"127.0.0.{i}" for i in range(2, 26)]
    try:
        first = {s: _talk(running.port, s, b"hello " + s.encode()) for s in sources}
        assert all(echo == b"hello " + s.encode() for s, (_, echo) in first.items())
        owner = {s: name for s, (name, _) in first.items()}
        predicted = parse_upstream(text)
        for source in sources:
            peer = predicted.pick(key=source)
            predicted.done(peer)
            assert owner[source] == _backend_name(backends, peer.name)
        assert set(owner.values()) == set(NAMES)
        assert {s: _talk(running.port, s, b"x")[0] for s in sources} == owner  # sticky
        # a large payload streams through both ways
        big = os.urandom(8 * 1024 * 1024)
        assert _talk(running.port, "127.0.0.2", big)[1] == big
        # kill one backend: its clients move, everybody else stays put
        port, victim = backends["t2"]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        after = {s: _talk(running.port, s, b"y")[0] for s in sources}
        for source in sources:
            if owner[source] == "t2":
                assert after[source] in ("t1", "t3")
            else:
                assert after[source] == owner[source]
        dead = upstream.peer_state(f"127.0.0.1:{port}")
        assert dead.fails == 1  # max_fails=1: one failure, then skipped for fail_timeout
        # the client may see EOF just before the proxy reports its peer done
        deadline = time.monotonic() + 10
        while any(p.conns for p in upstream.peers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(p.conns == 0 for p in upstream.peers)
        # 3 rounds of clients and the big payload, plus the one refused attempt on t2
        assert sum(p.requests for p in upstream.peers) == 3 * len(sources) + 1 + 1
    finally:
        running.stop()


def test_cancelled_connections_give_their_peer_back(
    backends: dict[str, tuple[int, subprocess.Popen[bytes]]],
) -> None:
    live = {n: b for n, b in backends.items() if b[1].poll() is None}
    upstream = parse_upstream(_upstream_text(live))
    running = Running(TCPProxy(upstream))
    socks = []
    try:
        for i in range(2, 12):
            s = socket.create_connection(("127.0.0.1", running.port), 10, (f"127.0.0.{i}", 0))
            s.makefile("rb").readline()  # connected through to a backend
            socks.append(s)
        assert sum(p.conns for p in upstream.peers) == 10
    finally:
        running.stop()  # cancels every connection's task while it copies
        for s in socks:
            s.close()
    assert all(p.conns == 0 for p in upstream.peers)
    assert all(p.fails == 0 for p in upstream.peers)


def test_command_line(
    backends: dict[str, tuple[int, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    live = {n: b for n, b in backends.items() if b[1].poll() is None}
    conf = tmp_path / "upstream.conf"
    conf.write_text(_upstream_text(live))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "examples/tcp_proxy.py",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            str(conf),
        ],
        cwd=ROOT,
    )
    try:
        wait_for_port(port, proc)
        name, echoed = _talk(port, "127.0.0.9", b"ping")
        assert (name in live, echoed) == (True, b"ping")
    finally:
        proc.terminate()
        proc.wait(10)
