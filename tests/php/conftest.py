"""Real redis-server, memcached and lbkit's sharedance server for the PHP interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.stores import Process, memcached_server, redis_server, sharedance_server


@pytest.fixture(scope="module")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = redis_server(tmp_path_factory.mktemp("redis"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def memcached_proc() -> Iterator[Process]:
    proc = memcached_server()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sharedance_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = sharedance_server(tmp_path_factory.mktemp("sharedance"))
    yield proc
    proc.stop()
