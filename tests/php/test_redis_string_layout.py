"""RedisStore(layout="string") passes the store conformance checks and stays consistent
under 16 threads of compare-and-set."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import lbkit
from lbkit import sessions
from tests.sessions import test_store_conformance as conformance


@pytest.fixture
def string_store(redis_proc: Any) -> Iterator[Any]:
    store = sessions.RedisStore(
        f"redis://127.0.0.1:{redis_proc.port}/0",
        prefix=f"t{uuid.uuid4().hex[:8]}:",
        layout="string",
    )
    yield store
    store.close()


@pytest.mark.parametrize(
    "check",
    [
        conformance.test_roundtrip_overwrite_delete,
        conformance.test_bad_keys_never_reach_the_backend,
        conformance.test_oversized_value_names_the_limit,
        conformance.test_ttl_expires_and_touch_extends,
        conformance.test_versioned_writes,
    ],
    ids=lambda f: f.__name__,
)
def test_string_layout_conforms(check: Any, string_store: Any) -> None:
    check(string_store)


def test_values_are_plain_strings_with_expiry(string_store: Any, redis_proc: Any) -> None:
    r = redis.Redis(port=redis_proc.port)
    string_store.set("abc,-DEF", b'user|s:5:"alice";', ttl=60)  # PHP's id alphabet
    key = f"{string_store.prefix}abc,-DEF"
    assert r.type(key) == b"string"
    assert r.get(key) == b'user|s:5:"alice";'
    assert 55 < r.ttl(key) <= 60
    # someone else's plain SET (PHP's write) changes the version: a stale CAS loses
    _, version = string_store.get_versioned("abc,-DEF")
    r.set(key, b'user|s:3:"bob";')
    with pytest.raises(lbkit.SessionConflict):
        string_store.set("abc,-DEF", b"stale", if_version=version)
    assert r.get(key) == b'user|s:3:"bob";'


def test_invalid_layout_is_refused(redis_proc: Any) -> None:
    with pytest.raises(lbkit.ConfigError, match="'hash' or 'string'"):
        sessions.RedisStore(f"redis://127.0.0.1:{redis_proc.port}/0", layout="list")  # type: ignore[arg-type]


def test_sixteen_threads_compare_and_set(string_store: Any) -> None:
    string_store.set("counter", b"0")

    def add(times: int) -> None:
        for _ in range(times):
            while True:
                value, version = string_store.get_versioned("counter")
                try:
                    string_store.set("counter", b"%d" % (int(value) + 1), if_version=version)
                    break
                except lbkit.SessionConflict:
                    continue

    threads = [threading.Thread(target=add, args=(25,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert string_store.get("counter") == b"400"


async def _async_roundtrip(url: str) -> None:
    store = sessions.AsyncRedisStore(url, prefix="async-string:", layout="string")
    try:
        v1 = await store.set("k", b"one", 30, if_version=sessions.ABSENT)
        assert await store.get_versioned("k") == (b"one", v1)
        with pytest.raises(lbkit.SessionConflict):
            await store.set("k", b"x", if_version=sessions.ABSENT)
        assert await store.get("k") == b"one"
        assert await store.delete("k")
    finally:
        await store.close()


def test_async_string_layout(redis_proc: Any) -> None:
    import asyncio

    asyncio.run(_async_roundtrip(f"redis://127.0.0.1:{redis_proc.port}/0"))
