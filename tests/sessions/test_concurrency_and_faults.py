"""Many writers at once, crashes and restarts."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lbkit
from lbkit import sessions
from tests.sessions.increments import increment


@pytest.mark.parametrize("backend", ["memory", "files", "sqlite", "redis", "memcached"])
def test_eight_threads_two_instances_lose_no_update(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    first = make_store(backend)
    if backend == "memory":
        second = first  # one process: the same store
    elif backend == "redis":
        second = sessions.RedisStore(first.url, prefix=first.prefix)
    elif backend == "memcached":
        second = sessions.MemcachedStore(
            *first.address.removeprefix("memcached://").split(":")[:1],
            int(first.address.rsplit(":", 1)[1]),
            prefix=first.prefix,
        )
    elif backend == "files":
        second = sessions.FileStore(first.directory)
    else:
        second = sessions.SqliteStore(first.path)
    per_thread = 25
    stores = [first, second]
    if backend == "memcached":
        # pymemcache clients are not thread-safe: one client per thread
        port = int(first.address.rsplit(":", 1)[1])
        stores = [sessions.MemcachedStore("127.0.0.1", port, prefix=first.prefix) for _ in range(8)]
    if backend == "redis":
        stores = [first, second]
    acked = {}

    def work(i: int) -> None:
        store = stores[i % len(stores)]
        increment(store, "shared", per_thread)
        store.set(f"own-{i}", f"mine-{i}".encode())
        acked[i] = True

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.get("shared") == str(8 * per_thread).encode()
    for i in acked:
        assert first.get(f"own-{i}") == f"mine-{i}".encode()


def _proc_increment(kind: str, where: str, prefix: str, times: int) -> None:
    if kind == "files":
        store: Any = sessions.FileStore(where)
    elif kind == "sqlite":
        store = sessions.SqliteStore(where)
    else:
        store = sessions.RedisStore(where, prefix=prefix)
    increment(store, "pcount", times)


@pytest.mark.parametrize("backend", ["files", "sqlite", "redis"])
def test_eight_processes_lose_no_update(backend: str, make_store: Callable[[str], Any]) -> None:
    store = make_store(backend)
    where = {"files": str(getattr(store, "directory", "")), "sqlite": getattr(store, "path", "")}
    where["redis"] = getattr(store, "url", "")
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_proc_increment,
            args=(backend, where[backend], getattr(store, "prefix", ""), 15),
        )
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert store.get("pcount") == b"120"


def test_killing_redis_gives_store_unavailable_then_reconnects(
    make_store: Callable[[str], Any], redis_proc: Any
) -> None:
    store = make_store("redis")
    store.set("before", b"1")
    redis_proc.kill()
    started = time.monotonic()
    with pytest.raises(lbkit.StoreUnavailable):
        store.get("before")
    assert time.monotonic() - started < 6.0
    redis_proc.restart()  # no persistence: the data is gone, the client reconnects
    store.set("after", b"2")
    assert store.get("after") == b"2"


def test_killing_memcached_and_sharedance(make_store: Callable[[str], Any], request: Any) -> None:
    for backend, fixture in (("memcached", "memcached_proc"), ("sharedance", "sharedance_proc")):
        store = make_store(backend)
        proc = request.getfixturevalue(fixture)
        store.set("k", b"v")
        proc.kill()
        with pytest.raises(lbkit.StoreUnavailable):
            store.get("k")
        proc.restart()
        store.set("k", b"again")
        assert store.get("k") == b"again"


_WRITER = r"""
import sys
from lbkit.sessions import FileStore
store = FileStore(sys.argv[1])
i = 0
while True:
    i += 1
    store.set("victim", b"%08d" % i * 50000)
"""


def test_kill_9_during_file_store_write_keeps_a_whole_value(tmp_path: Path) -> None:
    directory = tmp_path / "files"
    store = sessions.FileStore(directory)
    store.set("victim", b"original")
    for delay in (0.05, 0.15, 0.3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(directory)])
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        value = store.get("victim")
        assert value is not None
        # the previous value or a new one, whole: never a torn write
        assert value == b"original" or (len(value) == 400000 and value == value[:8] * 50000)
    assert not [p for p in directory.iterdir() if p.name.startswith("s-") and p.stat().st_size == 0]


def test_sharded_store_fails_over_to_a_replica(tmp_path: Path) -> None:
    from tests.conformance.servers import free_port

    dead = sessions.RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    nodes = {"a": sessions.MemoryStore(), "b": sessions.MemoryStore(), "dead": dead}
    store = sessions.ShardedStore(nodes, replicas=2)
    keys = [f"user-{i}" for i in range(40)]
    on_dead = [k for k in keys if store.nodes_for(k)[0] == "dead"]
    assert on_dead  # some keys have the dead node as primary
    for k in keys:
        store.set(k, k.encode())  # the dead replica is skipped
    for k in keys:
        assert store.get(k) == k.encode()  # reads fail over
    lonely = sessions.ShardedStore({"dead": dead}, replicas=1)
    with pytest.raises(lbkit.StoreUnavailable):
        lonely.set("x", b"1")


def test_sharded_store_moves_about_one_nth_when_a_node_joins() -> None:
    store = sessions.ShardedStore([sessions.MemoryStore() for _ in range(4)])
    keys = [f"s-{i}" for i in range(4000)]
    before = {k: store.nodes_for(k)[0] for k in keys}
    store.add_node("node-new", sessions.MemoryStore())
    moved = [k for k in keys if store.nodes_for(k)[0] != before[k]]
    assert all(store.nodes_for(k)[0] == "node-new" for k in moved)
    assert 0.1 < len(moved) / len(keys) < 0.3  # ideal 1/5


def test_truncated_frames_are_dropped_after_the_timeout(tmp_path: Path) -> None:
    import socket as _socket

    from tests.conformance.servers import free_port
    from tests.conformance.stores import Process

    port = free_port()
    proc = Process(
        [sys.executable, "-m", "lbkit.sharedance", "--port", str(port), "--directory",
         str(tmp_path / "sd"), "--timeout", "1"],
        port,
    )  # fmt: skip
    try:
        with _socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"S\x00\x00\x00\x05\x00\x00\x00\x10abc")  # announces more than it sends
            started = time.monotonic()
            assert s.recv(10) == b""  # dropped, no reply
            assert time.monotonic() - started < 3
        store = sessions.SharedanceStore("127.0.0.1", port)
        store.set("after", b"ok")
        assert store.get("after") == b"ok"
    finally:
        proc.stop()


def test_server_killed_mid_store_never_leaves_a_partial_value(tmp_path: Path) -> None:
    from tests.conformance.stores import sharedance_server

    proc = sharedance_server(tmp_path / "sd")
    big = b"0123456789abcdef" * (4 * 1024 * 1024 // 16)
    store = sessions.SharedanceStore("127.0.0.1", proc.port, timeout=5.0, max_value=len(big))
    outcome: list[object] = []

    def writer() -> None:
        try:
            store.set("big", big)
            outcome.append("stored")
        except lbkit.StoreError as exc:  # StoreUnavailable is a StoreError too
            outcome.append(exc)

    try:
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.01)
        proc.kill()  # mid-operation (or just after, on a fast machine)
        t.join(10)
        assert not t.is_alive()  # no hang
        proc.restart()
        value = store.get("big")
        assert value is None or value == big  # never a partial value
        if outcome[0] != "stored":
            assert isinstance(outcome[0], lbkit.StoreError)
    finally:
        proc.stop()
