"""Issue 9: no store acknowledges a write it did not make, resurrects a deleted session,
repeats a version or lets a raw exception escape; hostile input is refused before any I/O."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lbkit
from lbkit import sessions

from .conftest import BACKENDS

VERSIONED = [b for b in BACKENDS if b != "sharedance"]


@contextlib.contextmanager
def tiny_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (the tests run as root)."""
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (run the tests as root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- FileStore: a full disk never loses the previous value --------------------------------


def test_file_store_on_a_full_tmpfs_keeps_the_previous_value(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "tiny", "64k") as mnt:
        store = sessions.FileStore(mnt / "s", max_value=1024 * 1024)
        v1 = store.set("victim", b"old value", ttl=60)
        big = os.urandom(200 * 1024)  # larger than the whole filesystem
        with pytest.raises(lbkit.StoreError):
            store.set("victim", big)
        assert store.get("victim") == b"old value"
        with pytest.raises(lbkit.StoreError):
            store.set("victim", big, if_version=v1)
        assert store.get_versioned("victim") == (b"old value", v1)
        # fill the disk to the last byte, then touch (a rewrite) must fail, not vanish
        filler = 0
        with contextlib.suppress(lbkit.StoreError):
            while True:
                store.set(f"fill-{filler}", os.urandom(4096))
                filler += 1
        assert filler > 0
        with contextlib.suppress(OSError), open(mnt / "pad", "wb") as f:
            while True:
                f.write(b"\0" * 512)
                f.flush()
        ok = False
        with contextlib.suppress(lbkit.StoreError):
            ok = store.touch("victim", 120)
        assert store.get("victim") == b"old value"
        assert ok in (True, False)
        assert not [p for p in (mnt / "s").iterdir() if p.name.startswith(".tmp-")]


def test_file_store_short_write_is_never_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sessions.FileStore(tmp_path / "s")
    store.set("victim", b"previous")
    real_write = os.write

    def short_then_full(fd: int, data: Any) -> int:
        if len(data) > 100:
            return real_write(fd, bytes(data[: len(data) // 2]))  # what a full disk does
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(lbkit.StoreError):
        store.set("victim", b"x" * 1000)
    with pytest.raises(lbkit.StoreError):
        store.touch("victim", 60)  # touch rewrites the file: same rule
    monkeypatch.undo()
    assert store.get("victim") == b"previous"


# --- SQLite: a full disk is a StoreError, the rows stay ------------------------------------


def test_sqlite_full_disk_is_a_store_error(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "tiny", "256k") as mnt:
        store = sessions.SqliteStore(mnt / "s.db", max_value=1024 * 1024)
        store.set("kept", b"safe", ttl=60)
        errors: list[BaseException] = []
        for i in range(100):
            try:
                store.set(f"k{i}", os.urandom(64 * 1024))
            except Exception as exc:
                errors.append(exc)
                break
        assert errors, "the tiny filesystem never filled up"
        assert isinstance(errors[0], lbkit.StoreError), repr(errors[0])
        assert not isinstance(errors[0], sqlite3.Error)
        assert store.get("kept") == b"safe"


# --- bad arguments: refused before any I/O, nothing written --------------------------------

BAD_TTLS: list[Any] = [0, -1, -0.5, math.nan, math.inf, -math.inf, "5", 1e16, True, [5]]


@pytest.mark.parametrize("backend", VERSIONED)
def test_bad_ttl_is_refused_before_any_write(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    store = make_store(backend)
    for ttl in BAD_TTLS:
        with pytest.raises(lbkit.InvalidStoreArgument, match="ttl") as info:
            store.set("ttl-key", b"v", ttl=ttl)
        assert isinstance(info.value, ValueError)
        assert store.get("ttl-key") is None, f"ttl={ttl!r} wrote the value anyway"
        with pytest.raises(lbkit.InvalidStoreArgument):
            store.touch("ttl-key", ttl)


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_that_are_not_bytes_are_refused(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    store = make_store(backend)
    for value in ["text", 5, None, {"a": 1}]:
        with pytest.raises(lbkit.InvalidStoreArgument, match="bytes"):
            store.set("typed", value)
    assert store.get("typed") is None


@pytest.mark.parametrize("backend", VERSIONED)
def test_bad_versions_are_refused(backend: str, make_store: Callable[[str], Any]) -> None:
    store = make_store(backend)
    store.set("ver", b"one")
    _value, version = store.get_versioned("ver")
    for bad in [1.9, -1, "1", True, 2**64, float(version)]:
        with pytest.raises(lbkit.InvalidStoreArgument, match="if_version"):
            store.set("ver", b"two", if_version=bad)
    assert store.get("ver") == b"one"


@pytest.mark.parametrize("backend", VERSIONED)
def test_versions_never_repeat_after_delete(backend: str, make_store: Callable[[str], Any]) -> None:
    store = make_store(backend)
    seen = set()
    for _ in range(5):
        store.set("again", b"value")
        _value, version = store.get_versioned("again")
        assert version not in seen
        seen.add(version)
        store.delete("again")
    stale = next(iter(seen))
    store.set("again", b"fresh")
    with pytest.raises(lbkit.SessionConflict):
        store.set("again", b"stale write", if_version=stale)
    assert store.get("again") == b"fresh"


def test_deep_json_is_a_clean_error_and_a_fresh_session() -> None:
    with pytest.raises(lbkit.SessionDataError):
        sessions.JSONSerializer().loads(b"[" * 100000)
    store = sessions.MemoryStore()
    sid = sessions.new_session_id()
    store.set(sid, b"[" * 100000)
    manager = sessions.SessionManager(store)
    session = manager.load(sid)
    assert dict(session) == {}  # unreadable data: an empty session, not an error


# --- memcached limits ----------------------------------------------------------------------


def test_memcached_value_of_exactly_max_value_and_bad_cas(
    make_store: Callable[[str], Any],
) -> None:
    store = make_store("memcached")
    exact = os.urandom(store.max_value)
    store.set("exact", exact)
    assert store.get("exact") == exact
    with pytest.raises(sessions.ValueTooLarge):
        store.set("exact", exact + b"x")
    with pytest.raises(lbkit.InvalidStoreArgument):
        store.set("exact", b"v", if_version=-1)
    assert store.get("exact") == exact  # still connected, nothing written


# --- sharedance client: the timeout bounds the whole call ----------------------------------


def _trickling_server(stop: threading.Event) -> int:
    """Accepts connections and sends one byte every 0.2 s, for 6 s, then closes them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)

    def serve() -> None:
        conns = []
        until = time.monotonic() + 6
        while not stop.is_set() and time.monotonic() < until:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                conns.append(conn)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(b"x")
            time.sleep(0.2)
        for conn in conns:
            conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def test_sync_sharedance_timeout_bounds_the_whole_call() -> None:
    stop = threading.Event()
    port = _trickling_server(stop)
    try:
        for store in (
            sessions.SharedanceStore("127.0.0.1", port, timeout=1.0),
            sessions.SharedanceStore("127.0.0.1", port, timeout=1.0, max_value=10),
        ):
            started = time.monotonic()
            with pytest.raises(lbkit.StoreError):
                store.get("slow")
            assert time.monotonic() - started < 2.0
    finally:
        stop.set()


# --- sessions: never resurrect, merge disjoint changes, conflict only on real conflicts -----


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_request_in_flight_never_undoes_a_logout(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    manager = sessions.SessionManager(make_store(backend), ttl=None)
    first = manager.load(None)
    first["user"] = "alice"
    cookie = manager.save(first)
    assert cookie is not None
    sid = first.id
    assert sid is not None
    in_flight = manager.load(sid)  # request A loads
    logout = manager.load(sid)  # request B logs out
    logout.invalidate()
    manager.save(logout)
    in_flight["cart"] = ["book"]  # A saves afterwards
    with pytest.raises(lbkit.SessionInterrupted):
        manager.save(in_flight)
    assert manager.store.get(sid) is None


MERGING = ["memory", "files", "sqlite", "redis", "memcached"]


@pytest.mark.parametrize("backend", MERGING)
def test_sixteen_requests_on_one_session_changing_disjoint_keys_all_succeed(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    manager = sessions.SessionManager(make_store(backend), ttl=600)
    seed = manager.load(None)
    seed["count"] = 0
    manager.save(seed)
    sid = seed.id
    assert sid is not None
    errors: list[BaseException] = []
    bursts = 5

    def request(i: int, burst: int, start: threading.Barrier) -> None:
        try:
            session = manager.load(sid)
            start.wait()
            assert session.get("count") == 0  # reads a key it does not change
            session[f"worker-{i}"] = burst  # and changes a key it did not read
            manager.save(session)
        except BaseException as exc:
            errors.append(exc)

    for burst in range(bursts):
        start = threading.Barrier(16)
        threads = [threading.Thread(target=request, args=(i, burst, start)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    final = manager.load(sid)
    assert {k: final[k] for k in final if k.startswith("worker-")} == {
        f"worker-{i}": bursts - 1 for i in range(16)
    }


@pytest.mark.parametrize("backend", MERGING)
def test_sixteen_read_modify_writes_of_one_key_lose_no_update(
    backend: str, make_store: Callable[[str], Any]
) -> None:
    manager = sessions.SessionManager(make_store(backend), ttl=600)
    seed = manager.load(None)
    seed["count"] = 0
    manager.save(seed)
    sid = seed.id
    saved = []
    conflicts = []
    other: list[BaseException] = []

    def request(start: threading.Barrier) -> None:
        session = manager.load(sid)
        start.wait()
        session["count"] = session["count"] + 1  # read and changed: a real conflict
        try:
            manager.save(session)
            saved.append(1)
        except lbkit.SessionConflict:
            conflicts.append(1)
        except BaseException as exc:
            other.append(exc)

    for _ in range(3):
        start = threading.Barrier(16)
        threads = [threading.Thread(target=request, args=(start,)) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert other == []
    assert len(saved) + len(conflicts) == 48
    assert manager.load(sid)["count"] == len(saved)  # every acknowledged increment is there
