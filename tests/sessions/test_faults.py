"""Fault suite: kill -9 and SIGSTOP of each durable server under 8 writer threads, and the
sharedance server's limits (0600 files, connection limit, whole-request deadline)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lbkit
from lbkit import sessions
from tests.conformance.servers import free_port
from tests.conformance.stores import Process, redis_server, sharedance_server
from tests.helpers import Lateness, wait_until


def _writers_through_faults(
    proc: Process, make: Callable[[], Any], label: str
) -> tuple[int, int, int]:
    """8 threads write unique keys while the server is killed, restarted, stopped and
    continued; returns (acknowledged, refused, lost)."""
    acked: dict[str, bytes] = {}
    refused = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def writer(i: int) -> None:
        store = make()
        n = 0
        while not stop.is_set():
            n += 1
            key, value = f"w{i}-{n}", f"{i}:{n}:".encode() * 20
            try:
                store.set(key, value)
            except lbkit.StoreError:
                with lock:
                    refused[0] += 1
                time.sleep(0.01)
                continue
            with lock:
                acked[key] = value
        store.close()

    def traffic(what: str) -> None:
        """Wait until more writes are acknowledged: each fault hits a server under load (on
        a loaded machine, waiting a fixed time may see none)."""
        with lock:
            before = len(acked)
        wait_until(lambda: len(acked) >= before + 20, 60, f"writes acknowledged {what}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        traffic("before the kill")
        proc.kill()  # kill -9 mid-traffic
        time.sleep(0.3)
        proc.proc = proc._spawn()
        traffic("after the restart")
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGCONT)
        traffic("after SIGCONT")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    reader = make()
    lost = sum(1 for key, value in acked.items() if reader.get(key) != value)
    reader.close()
    print(f"{label}: {len(acked)} acknowledged, {refused[0]} refused, {lost} lost")
    return len(acked), refused[0], lost


def test_redis_with_appendfsync_always_loses_no_acknowledged_write(tmp_path: Path) -> None:
    proc = redis_server(tmp_path, None, "--appendonly", "yes", "--appendfsync", "always")
    url = f"redis://127.0.0.1:{proc.port}/0"
    try:
        acked, _refused, lost = _writers_through_faults(
            proc, lambda: sessions.RedisStore(url, timeout=0.5), "redis (AOF always)"
        )
    finally:
        proc.stop()
    assert acked > 0
    assert lost == 0


def test_sharedance_server_loses_no_acknowledged_write(tmp_path: Path) -> None:
    proc = sharedance_server(tmp_path / "sd")
    try:
        acked, _refused, lost = _writers_through_faults(
            proc,
            lambda: sessions.SharedanceStore("127.0.0.1", proc.port, timeout=0.5),
            "lbkit sharedance server",
        )
    finally:
        proc.stop()
    assert acked > 0
    assert lost == 0


_FILE_WRITER = r"""
import sys, threading
from lbkit.sessions import FileStore, SqliteStore
kind, where = sys.argv[1], sys.argv[2]
store = FileStore(where) if kind == "files" else SqliteStore(where)
lock = threading.Lock()
def work(i):
    n = 0
    while True:
        n += 1
        store.set(f"w{i}-{n}", b"%d:%d:" % (i, n) * 20)
        with lock:
            print(f"w{i}-{n}", flush=True)
for i in range(8):
    threading.Thread(target=work, args=(i,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.parametrize("backend", ["files", "sqlite"])
def test_kill_9_of_a_process_writing_from_8_threads_loses_no_acknowledged_write(
    backend: str, tmp_path: Path
) -> None:
    import subprocess

    where = tmp_path / ("files" if backend == "files" else "s.db")
    if backend == "sqlite":
        sessions.SqliteStore(where).close()  # create the schema first
    proc = subprocess.Popen(
        [sys.executable, "-c", _FILE_WRITER, backend, str(where)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # killed once it has acknowledged 200 writes (however long a loaded machine takes; a
    # writer that never writes is killed after 120 s and fails the test below)
    deadline = threading.Timer(120, proc.kill)
    deadline.start()
    try:
        acked = [proc.stdout.readline().strip() for _ in range(200)]
    finally:
        deadline.cancel()
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(10)
    acked = [line for line in acked + out.splitlines() if line]
    store: Any = sessions.FileStore(where) if backend == "files" else sessions.SqliteStore(where)
    lost = 0
    for key in acked:
        i, n = key[1:].split("-")
        if store.get(key) != f"{i}:{n}:".encode() * 20:
            lost += 1
    print(f"{backend}: {len(acked)} acknowledged by a killed writer process, {lost} lost")
    assert acked
    assert lost == 0


# --- the sharedance server's limits --------------------------------------------------------


def test_sharedance_files_are_0600(tmp_path: Path) -> None:
    proc = sharedance_server(tmp_path / "sd")
    try:
        sessions.SharedanceStore("127.0.0.1", proc.port).set("private", b"secret")
        mode = stat.S_IMODE((tmp_path / "sd" / "private").stat().st_mode)
        assert mode == 0o600, oct(mode)
    finally:
        proc.stop()


def test_sharedance_whole_request_deadline_and_connection_limit(tmp_path: Path) -> None:
    port = free_port()
    proc = Process(
        [sys.executable, "-m", "lbkit.sharedance", "--port", str(port), "--directory",
         str(tmp_path / "sd"), "--timeout", "2", "--maxconnections", "100"],
        port,
    )  # fmt: skip
    conns: list[socket.socket] = []
    try:
        time.sleep(0.2)
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"S\x00\x00\x00\x03\x00\x00\x00\x10")  # announces 19 more bytes
            conns.append(s)
        started = time.monotonic()
        # a byte every 0.5 s: never idle for 2 s, but the whole request takes too long
        open_ = list(conns)
        with Lateness() as late:
            while open_ and time.monotonic() - started < 8:
                for s in list(open_):
                    try:
                        s.sendall(b"a")
                        s.settimeout(0.001)
                        if s.recv(1) == b"":
                            open_.remove(s)
                    except (BlockingIOError, TimeoutError):
                        pass
                    except OSError:
                        open_.remove(s)
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        assert not open_, f"{len(open_)} trickling connections still open after {elapsed:.1f}s"
        assert elapsed < 4.5 + 2 * late.worst, (elapsed, late.worst)
        store = sessions.SharedanceStore("127.0.0.1", port, timeout=5)
        store.set("after", b"ok")  # the server is still serving
        assert store.get("after") == b"ok"
    finally:
        for s in conns:
            with contextlib.suppress(OSError):
                s.close()
        proc.stop()


def test_sharedance_holds_at_most_max_connections(tmp_path: Path) -> None:
    port = free_port()
    proc = Process(
        [sys.executable, "-m", "lbkit.sharedance", "--port", str(port), "--directory",
         str(tmp_path / "sd"), "--timeout", "30", "--maxconnections", "10"],
        port,
    )  # fmt: skip
    conns: list[socket.socket] = []
    try:
        time.sleep(0.3)
        baseline = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for _ in range(60):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        held = len(os.listdir(f"/proc/{proc.pid}/fd")) - baseline
        assert held <= 10, f"the server holds {held} connections, limit 10"
        for s in conns:
            s.close()
        conns.clear()
        store = sessions.SharedanceStore("127.0.0.1", port, timeout=10)
        store.set("after", b"ok")  # the slots come back once clients leave
        assert store.get("after") == b"ok"
    finally:
        for s in conns:
            s.close()
        proc.stop()


def test_sharedance_at_a_low_open_file_limit_keeps_serving_quietly(tmp_path: Path) -> None:
    import resource
    import subprocess

    from tests.conformance.servers import wait_for_port

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    port = free_port()
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lbkit.sharedance", "--port", str(port), "--directory",
             str(tmp_path / "sd"), "--timeout", "3"],
            stdout=subprocess.DEVNULL, stderr=err, preexec_fn=low_limit,
        )  # fmt: skip
    conns: list[socket.socket] = []
    try:
        wait_for_port(port, proc)
        for _ in range(200):  # far more than 64 descriptors
            with contextlib.suppress(OSError):
                conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        time.sleep(1.0)
        for s in conns:
            s.close()
        conns.clear()
        time.sleep(0.5)
        store = sessions.SharedanceStore("127.0.0.1", port, timeout=5)
        store.set("still", b"serving")
        assert store.get("still") == b"serving"
    finally:
        for s in conns:
            s.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert log.read_text(errors="replace").count("Traceback") == 0
