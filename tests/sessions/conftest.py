"""Fixtures: one real server per backend for the whole session-test run."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lbkit import sessions
from tests.conformance.sql_servers import SqlServer, mariadb_server, postgres_server
from tests.conformance.stores import (
    Process,
    RedisCluster,
    memcached_server,
    redis_server,
    sharedance_server,
)

BACKENDS = [
    "memory",
    "files",
    "sqlite",
    "sharedance",
    "redis",
    "memcached",
    "sharded",
    "postgresql",
    "mariadb",
]


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = redis_server(tmp_path_factory.mktemp("redis"))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def memcached_proc() -> Iterator[Process]:
    proc = memcached_server()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sharedance_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = sharedance_server(tmp_path_factory.mktemp("sharedance"))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgresql_proc() -> Iterator[SqlServer]:
    server = postgres_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_proc() -> Iterator[SqlServer]:
    server = mariadb_server()
    yield server
    server.stop()


def _sql_url(request: pytest.FixtureRequest, backend: str) -> tuple[str, str]:
    """The URL of a SQL server (started on first use) and a fresh table created in it."""
    url: str = request.getfixturevalue(f"{backend}_proc").url
    table = f"t{uuid.uuid4().hex[:12]}"
    store = sessions.SqlStore(url, table=table)
    try:
        store.create_table()
    finally:
        store.close()
    return url, table


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Any]:
    """Build a fresh sync store of a backend (servers are started on first use)."""
    made: list[Any] = []

    def make(backend: str) -> Any:
        prefix = f"t{uuid.uuid4().hex[:8]}-"
        if backend == "memory":
            store: Any = sessions.MemoryStore()
        elif backend == "files":
            store = sessions.FileStore(tmp_path / "files")
        elif backend == "sqlite":
            store = sessions.SqliteStore(tmp_path / "s.db")
        elif backend == "sharedance":
            proc = request.getfixturevalue("sharedance_proc")
            store = sessions.SharedanceStore("127.0.0.1", proc.port, timeout=5.0)
        elif backend == "redis":
            proc = request.getfixturevalue("redis_proc")
            store = sessions.RedisStore(f"redis://127.0.0.1:{proc.port}/0", prefix=prefix)
        elif backend == "memcached":
            proc = request.getfixturevalue("memcached_proc")
            store = sessions.MemcachedStore("127.0.0.1", proc.port, prefix=prefix)
        elif backend == "sharded":
            store = sessions.ShardedStore(
                [sessions.FileStore(tmp_path / f"shard{i}") for i in range(3)], replicas=2
            )
        elif backend in ("postgresql", "mariadb"):
            url, table = _sql_url(request, backend)
            store = sessions.SqlStore(url, table=table)
        else:  # pragma: no cover
            raise ValueError(backend)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


class OverAsync:
    """Runs an async store's coroutines on a private event loop thread, so the sync
    conformance tests (and their 16 threads) exercise the async store itself."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def build() -> Any:
            return factory()

        self.store = asyncio.run_coroutine_threadsafe(build(), self.loop).result(30)
        self.capabilities = self.store.capabilities
        self.max_value = self.store.max_value

    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        coro = getattr(self.store, name)(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def get(self, key: str) -> Any:
        return self._run("get", key)

    def get_versioned(self, key: str) -> Any:
        return self._run("get_versioned", key)

    def set(self, key: str, value: Any, ttl: Any = None, **kwargs: Any) -> Any:
        return self._run("set", key, value, ttl, **kwargs)

    def delete(self, key: str) -> Any:
        return self._run("delete", key)

    def touch(self, key: str, ttl: Any) -> Any:
        return self._run("touch", key, ttl)

    def close(self) -> None:
        try:
            self._run("close")
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def make_async_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], OverAsync]]:
    """Build a fresh async store of a backend, driven through :class:`OverAsync`."""
    made: list[OverAsync] = []

    def make(backend: str) -> OverAsync:
        prefix = f"t{uuid.uuid4().hex[:8]}-"
        if backend == "memory":
            factory: Callable[[], Any] = sessions.AsyncMemoryStore
        elif backend == "files":
            factory = lambda: sessions.AsyncFileStore(tmp_path / "afiles")  # noqa: E731
        elif backend == "sqlite":
            factory = lambda: sessions.AsyncSqliteStore(tmp_path / "as.db")  # noqa: E731
        elif backend == "sharedance":
            port = request.getfixturevalue("sharedance_proc").port
            factory = lambda: sessions.AsyncSharedanceStore("127.0.0.1", port, timeout=5.0)  # noqa: E731
        elif backend == "redis":
            url = f"redis://127.0.0.1:{request.getfixturevalue('redis_proc').port}/0"
            factory = lambda: sessions.AsyncRedisStore(url, prefix=prefix)  # noqa: E731
        elif backend == "memcached":
            port = request.getfixturevalue("memcached_proc").port
            factory = lambda: sessions.AsyncMemcachedStore("127.0.0.1", port, prefix=prefix)  # noqa: E731
        elif backend == "sharded":
            factory = lambda: sessions.AsyncShardedStore(  # noqa: E731
                [sessions.AsyncFileStore(tmp_path / f"ashard{i}") for i in range(3)], replicas=2
            )
        elif backend in ("postgresql", "mariadb"):
            url, table = _sql_url(request, backend)
            factory = lambda: sessions.AsyncSqlStore(url, table=table)  # noqa: E731
        else:  # pragma: no cover
            raise ValueError(backend)
        store = OverAsync(factory)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
