"""One conformance suite, run against every backend (real servers where there are any)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import lbkit
from lbkit import sessions
from tests.helpers import wait_until

from .conftest import BACKENDS

VERSIONED = [b for b in BACKENDS if b != "sharedance"]


MODES = ["sync", "async"]


def _build(request: pytest.FixtureRequest, backend: str, mode: str) -> Any:
    return request.getfixturevalue("make_store" if mode == "sync" else "make_async_store")(backend)


@pytest.fixture(params=[(b, m) for b in BACKENDS for m in MODES], ids="-".join)
def store(request: pytest.FixtureRequest) -> Any:
    return _build(request, *request.param)


@pytest.fixture(params=[(b, m) for b in VERSIONED for m in MODES], ids="-".join)
def vstore(request: pytest.FixtureRequest) -> Any:
    return _build(request, *request.param)


def test_sixteen_threads_share_one_store(store: Any) -> None:
    """Every store (sync, or async driven from many threads) is safe to share."""
    versioned = "versions" in store.capabilities
    errors: list[BaseException] = []
    rounds = 15
    start = threading.Barrier(16)

    def work(i: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                own = f"thread-{i}"
                value = f"{i}-{r}".encode() * (1 + r)
                store.set(own, value)
                assert store.get(own) == value
                if versioned:
                    while True:
                        found = store.get_versioned("counter")
                        count, version = (
                            (0, sessions.ABSENT) if found is None else (int(found[0]), found[1])
                        )
                        try:
                            store.set("counter", str(count + 1).encode(), if_version=version)
                            break
                        except lbkit.SessionConflict:
                            continue
            assert store.delete(f"thread-{i}") is True
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    if versioned:
        assert store.get("counter") == str(16 * rounds).encode()
    assert all(store.get(f"thread-{i}") is None for i in range(16))


def test_roundtrip_overwrite_delete(store: Any) -> None:
    assert store.get("missing") is None
    store.set("k1", b"\x00\xffbinary value")
    assert store.get("k1") == b"\x00\xffbinary value"
    store.set("k1", b"second")
    assert store.get("k1") == b"second"
    assert store.delete("k1") is True
    assert store.get("k1") is None
    assert store.delete("k1") is False
    store.set("app:user-1", b"prefixed")  # ":" is allowed for prefixes
    assert store.get("app:user-1") == b"prefixed"


def test_bad_keys_never_reach_the_backend(store: Any) -> None:
    for key in ["", "../../etc/passwd", "a/b", "a.b", "x" * 201, "sp ace", "nul\x00", "é"]:
        with pytest.raises(lbkit.StoreError, match="invalid session key"):
            store.set(key, b"v")
        with pytest.raises(sessions.InvalidKeyError):
            store.get(key)


def test_oversized_value_names_the_limit(store: Any) -> None:
    with pytest.raises(sessions.ValueTooLarge, match=str(store.max_value)):
        store.set("big", b"x" * (store.max_value + 1))
    assert store.get("big") is None


def test_ttl_expires_and_touch_extends(vstore: Any) -> None:
    # 2 s: memcached counts whole seconds, so a 2 s TTL lasts at least 1 s, time enough for
    # the next three calls on a loaded machine (a 1 s TTL may end at once)
    written = time.monotonic()
    vstore.set("short", b"a", ttl=2)
    vstore.set("kept", b"b", ttl=2)
    assert vstore.touch("kept", 30) is True
    assert vstore.touch("never-set", 30) is False
    assert vstore.get("short") == b"a"
    wait_until(lambda: vstore.get("short") is None, 30, "a 2 s TTL to end")
    assert time.monotonic() - written >= 1.0
    assert vstore.get("kept") == b"b"


def test_versioned_writes(vstore: Any) -> None:
    v1 = vstore.set("v", b"one", if_version=sessions.ABSENT)
    with pytest.raises(lbkit.SessionConflict):
        vstore.set("v", b"again", if_version=sessions.ABSENT)
    value, version = vstore.get_versioned("v")
    assert value == b"one"
    if v1 is not None:
        assert version == v1
    v2 = vstore.set("v", b"two", if_version=version)
    with pytest.raises(lbkit.SessionConflict):
        vstore.set("v", b"lost update", if_version=version)
    assert vstore.get_versioned("v") == (b"two", v2) if v2 is not None else True
    assert vstore.get("v") == b"two"


def test_sharedance_says_what_it_cannot_do(make_store: Callable[[str], Any]) -> None:
    store = make_store("sharedance")
    assert store.capabilities == frozenset()
    with pytest.raises(
        lbkit.UnsupportedOperation, match="sharedance store cannot set a per-key TTL"
    ):
        store.set("k", b"v", ttl=5)
    with pytest.raises(lbkit.UnsupportedOperation, match="compare-and-set"):
        store.set("k", b"v", if_version=1)
    with pytest.raises(lbkit.UnsupportedOperation, match="touch"):
        store.touch("k", 5)
    with pytest.raises(lbkit.StoreError, match="empty value"):
        store.set("k", b"")


@pytest.mark.parametrize("backend", ["sharedance", "redis", "memcached", "postgresql", "mariadb"])
def test_unreachable_server_is_store_unavailable_within_timeout(backend: str) -> None:
    from tests.conformance.servers import free_port

    port = free_port()
    store: Any = {
        "sharedance": lambda: sessions.SharedanceStore("127.0.0.1", port, timeout=1.0),
        "redis": lambda: sessions.RedisStore(f"redis://127.0.0.1:{port}/0", timeout=1.0),
        "memcached": lambda: sessions.MemcachedStore("127.0.0.1", port, timeout=1.0),
        "postgresql": lambda: sessions.SqlStore(f"postgresql://u@127.0.0.1:{port}/db", timeout=1.0),
        "mariadb": lambda: sessions.SqlStore(f"mysql://u@127.0.0.1:{port}/db", timeout=1.0),
    }[backend]()
    started = time.monotonic()
    with pytest.raises(lbkit.StoreUnavailable, match=str(port)) as info:
        store.get("abc")
    assert time.monotonic() - started < 3.0
    assert info.value.__cause__ is not None


def test_async_twins(make_store: Callable[[str], Any], tmp_path: Any, request: Any) -> None:
    import asyncio

    redis_port = request.getfixturevalue("redis_proc").port
    mc_port = request.getfixturevalue("memcached_proc").port
    sd_port = request.getfixturevalue("sharedance_proc").port

    async def exercise(store: Any, versioned: bool) -> None:
        await store.set("a1", b"hello")
        assert await store.get("a1") == b"hello"
        if versioned:
            _value, version = await store.get_versioned("a1")
            await store.set("a1", b"next", if_version=version)
            with pytest.raises(lbkit.SessionConflict):
                await store.set("a1", b"stale", if_version=version)
            assert await store.touch("a1", 30)
        assert await store.delete("a1")
        assert await store.get("a1") is None
        await store.close()

    async def main() -> None:
        await exercise(sessions.AsyncMemoryStore(), True)
        await exercise(sessions.AsyncFileStore(tmp_path / "af"), True)
        await exercise(sessions.AsyncSqliteStore(tmp_path / "a.db"), True)
        await exercise(sessions.AsyncRedisStore(f"redis://127.0.0.1:{redis_port}/0"), True)
        await exercise(sessions.AsyncMemcachedStore("127.0.0.1", mc_port), True)
        await exercise(sessions.AsyncSharedanceStore("127.0.0.1", sd_port), False)
        await exercise(
            sessions.AsyncShardedStore(
                [sessions.AsyncMemoryStore(), sessions.AsyncMemoryStore()], replicas=2
            ),
            True,
        )

    asyncio.run(main())


def test_redis_cluster(redis_cluster: Any) -> None:
    store = sessions.RedisStore(redis_cluster.url, cluster=True)
    for i in range(50):
        store.set(f"user-{i}", f"value-{i}".encode(), ttl=60)
    assert [store.get(f"user-{i}") for i in range(50)] == [f"value-{i}".encode() for i in range(50)]
    _value, version = store.get_versioned("user-7")
    store.set("user-7", b"new", if_version=version)
    with pytest.raises(lbkit.SessionConflict):
        store.set("user-7", b"stale", if_version=version)
    store.close()
