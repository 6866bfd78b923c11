"""Fixtures: one real server per backend for the whole session-test run."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lbkit import sessions
from tests.conformance.stores import (
    Process,
    RedisCluster,
    memcached_server,
    redis_server,
    sharedance_server,
)

BACKENDS = ["memory", "files", "sqlite", "sharedance", "redis", "memcached", "sharded"]


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
        else:  # pragma: no cover
            raise ValueError(backend)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
