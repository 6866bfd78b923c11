"""SqlStore / AsyncSqlStore against a real PostgreSQL and a real MariaDB (and SQLite).

The servers are started by these tests (tests/conformance/sql_servers.py) in temporary data
directories on free ports, killed with SIGKILL mid-load and restarted, and stopped by PID.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

import lbkit
from lbkit import sessions
from tests.conformance.servers import free_port
from tests.conformance.sql_servers import SqlServer, mariadb_server, postgres_server
from tests.helpers import Lateness, wait_until
from tests.sessions.increments import increment

DATABASES = ["postgresql", "mariadb"]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SqlServer]]:
    started: dict[str, SqlServer] = {}
    try:
        started["postgresql"] = postgres_server()
        started["mariadb"] = mariadb_server()
        for server in started.values():
            store = sessions.SqlStore(server.url)
            store.create_table()
            store.close()
        yield started
    finally:
        for server in started.values():
            server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_sql(
    servers: dict[str, SqlServer], tmp_path: Path
) -> Iterator[Callable[..., sessions.SqlStore]]:
    made: list[sessions.SqlStore] = []

    def make(backend: str, **kwargs: Any) -> sessions.SqlStore:
        url = f"sqlite:///{tmp_path / 's.db'}" if backend == "sqlite" else servers[backend].url
        store = sessions.SqlStore(url, **kwargs)
        if backend == "sqlite":
            store.create_table()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def _key() -> str:
    return f"k-{uuid.uuid4().hex}"


def _statements(store: sessions.SqlStore) -> list[str]:
    seen: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(str(args[2])))
    return seen


# --- the store conformance suite ---------------------------------------------------------


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_roundtrip_overwrite_delete(backend: str, make_sql: Callable[..., Any]) -> None:
    store = make_sql(backend)
    key = _key()
    assert store.get(key) is None
    assert store.get_versioned(key) is None
    v1 = store.set(key, b"\x00\xffbinary value")
    assert store.get(key) == b"\x00\xffbinary value"
    v2 = store.set(key, b"second")
    assert v2 != v1
    assert store.get_versioned(key) == (b"second", v2)
    assert store.delete(key) is True
    assert store.get(key) is None
    assert store.delete(key) is False
    store.set(f"app:{key}", b"prefixed")
    assert store.get(f"app:{key}") == b"prefixed"


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_keys_are_case_sensitive(backend: str, make_sql: Callable[..., Any]) -> None:
    # MySQL's default collation would fold case: session ids "Ab" and "aB" must differ
    store = make_sql(backend)
    key = _key()
    store.set(key + "AB", b"upper")
    store.set(key + "ab", b"lower")
    assert store.get(key + "AB") == b"upper"
    assert store.get(key + "ab") == b"lower"
    assert store.get(key + "Ab") is None


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_bad_input_never_reaches_the_database(backend: str, make_sql: Callable[..., Any]) -> None:
    store = make_sql(backend)
    store.get("warm-up")
    seen = _statements(store)
    for key in ["", "../../etc/passwd", "a/b", "a.b", "x" * 201, "sp ace", "nul\x00", "é", "a'b"]:
        with pytest.raises(sessions.InvalidKeyError, match="invalid session key"):
            store.set(key, b"v")
        with pytest.raises(sessions.InvalidKeyError):
            store.get(key)
        with pytest.raises(sessions.InvalidKeyError):
            store.delete(key)
        with pytest.raises(sessions.InvalidKeyError):
            store.touch(key, 5)
    for ttl in [0, -1, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="invalid ttl"):
            store.set("good", b"v", ttl=ttl)
    for version in [-1, True, 1.5, "3"]:
        with pytest.raises(lbkit.StoreError, match="invalid if_version"):
            store.set("good", b"v", if_version=version)
    with pytest.raises(sessions.ValueTooLarge, match=str(store.max_value)):
        store.set("good", b"x" * (store.max_value + 1))
    assert seen == []
    assert store.get("good") is None


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_values_up_to_the_limit(backend: str, make_sql: Callable[..., Any]) -> None:
    store = make_sql(backend, max_value=4 * 1024 * 1024)
    key = _key()
    value = bytes(range(256)) * (store.max_value // 256)
    assert len(value) == store.max_value
    store.set(key, value)
    assert store.get(key) == value  # LONGBLOB / bytea: nothing truncated


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_ttl_expires_and_touch_extends(backend: str, make_sql: Callable[..., Any]) -> None:
    clock = FakeClock()
    store = make_sql(backend, clock=clock)
    short, kept = _key(), _key()
    store.set(short, b"a", ttl=1)
    store.set(kept, b"b", ttl=1)
    assert store.touch(kept, 30) is True
    assert store.touch(_key(), 30) is False
    assert store.get(short) == b"a"
    clock.now += 2
    assert store.get(short) is None
    assert store.get_versioned(short) is None
    assert store.touch(short, 30) is False  # an expired row is not revived
    assert store.delete(short) is False
    assert store.get(kept) == b"b"
    # an expired key counts as absent for a create-only write
    store.set(short, b"again", ttl=1)
    clock.now += 2
    store.set(short, b"fresh", if_version=sessions.ABSENT)
    assert store.get(short) == b"fresh"


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_versioned_writes_never_lose_or_repeat(backend: str, make_sql: Callable[..., Any]) -> None:
    store = make_sql(backend)
    key = _key()
    v1 = store.set(key, b"one", if_version=sessions.ABSENT)
    with pytest.raises(lbkit.SessionConflict):
        store.set(key, b"again", if_version=sessions.ABSENT)
    assert store.get_versioned(key) == (b"one", v1)
    v2 = store.set(key, b"two", if_version=v1)
    with pytest.raises(lbkit.SessionConflict):
        store.set(key, b"lost update", if_version=v1)
    assert store.get_versioned(key) == (b"two", v2)
    # deleted and written again: the old version must not match the new value
    store.delete(key)
    with pytest.raises(lbkit.SessionConflict):
        store.set(key, b"resurrected", if_version=v2)
    assert store.get(key) is None
    v3 = store.set(key, b"three")
    assert len({v1, v2, v3}) == 3
    with pytest.raises(lbkit.SessionConflict):
        store.set(key, b"stale", if_version=v1)
    assert store.get_versioned(key) == (b"three", v3)


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_purge_removes_only_expired_rows_in_batches(
    backend: str, make_sql: Callable[..., Any]
) -> None:
    clock = FakeClock()
    store = make_sql(backend, clock=clock)
    store.purge_expired()  # what earlier tests left behind
    prefix = _key()
    for i in range(25):
        store.set(f"{prefix}-old-{i}", b"x", ttl=1)
    store.set(f"{prefix}-forever", b"y")
    store.set(f"{prefix}-later", b"z", ttl=100)
    clock.now += 2
    seen = _statements(store)
    assert store.purge_expired(batch_size=10) == 25
    deletes = [s for s in seen if s.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3  # 10 + 10 + 5: each batch its own short statement
    assert store.get(f"{prefix}-forever") == b"y"
    assert store.get(f"{prefix}-later") == b"z"
    assert store.purge_expired() == 0
    with pytest.raises(lbkit.ConfigError, match="batch_size"):
        store.purge_expired(batch_size=0)


@pytest.mark.parametrize("backend", DATABASES)
def test_an_application_engine_is_used_as_given(
    backend: str, servers: dict[str, SqlServer]
) -> None:
    url = servers[backend].url
    driver = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}[backend]
    engine = sa.create_engine(sa.make_url(url).set(drivername=driver))
    store = sessions.SqlStore(engine, table="app_sessions")
    store.create_table()
    store.create_table()  # idempotent
    key = _key()
    store.set(key, b"v")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, value FROM app_sessions")).all()
    assert (key, b"v") in [(r[0], bytes(r[1])) for r in rows]
    store.close()  # the engine stays the application's
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
    with pytest.raises(lbkit.ConfigError, match="invalid table name"):
        sessions.SqlStore(engine, table="x; DROP TABLE y")


def test_missing_table_says_how_to_create_it(servers: dict[str, SqlServer]) -> None:
    store = sessions.SqlStore(servers["postgresql"].url, table="never_created")
    with pytest.raises(lbkit.StoreError, match="create_table"):
        store.get("abc")
    store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable_database_is_store_unavailable_within_timeout(scheme: str) -> None:
    port = free_port()
    store = sessions.SqlStore(f"{scheme}://root:hunter2@127.0.0.1:{port}/db", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(lbkit.StoreUnavailable, match=str(port)) as info:
        store.get("abc")
    assert time.monotonic() - started < 3.0
    assert info.value.__cause__ is not None
    assert "hunter2" not in str(info.value)  # the password is never shown
    assert "hunter2" not in info.value.address
    store.close()


def test_bad_configuration_is_refused_before_connecting() -> None:
    with pytest.raises(lbkit.ConfigError, match="AsyncSqliteStore"):
        sessions.AsyncSqlStore("sqlite:///x.db")
    with pytest.raises(lbkit.ConfigError, match="invalid timeout"):
        sessions.SqlStore("postgresql://u@127.0.0.1:1/db", timeout=0)
    with pytest.raises(lbkit.ConfigError, match="invalid pool_size"):
        sessions.SqlStore("mysql://u@127.0.0.1:1/db", pool_size=0)


# --- asyncio --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", DATABASES)
def test_async_store(backend: str, servers: dict[str, SqlServer]) -> None:
    async def main() -> None:
        store = sessions.AsyncSqlStore(servers[backend].url, timeout=5.0)
        await store.create_table()
        key = _key()
        assert await store.get(key) is None
        v1 = await store.set(key, b"one", ttl=30, if_version=sessions.ABSENT)
        assert await store.get_versioned(key) == (b"one", v1)
        with pytest.raises(lbkit.SessionConflict):
            await store.set(key, b"x", if_version=sessions.ABSENT)
        v2 = await store.set(key, b"two", if_version=v1)
        with pytest.raises(lbkit.SessionConflict):
            await store.set(key, b"lost", if_version=v1)
        assert await store.touch(key, 60) is True
        assert await store.get(key) == b"two"
        with pytest.raises(sessions.InvalidKeyError):
            await store.get("../x")
        # sixteen tasks incrementing one counter lose nothing
        counter = _key()

        async def bump(times: int) -> None:
            for _ in range(times):
                while True:
                    found = await store.get_versioned(counter)
                    n, v = (0, sessions.ABSENT) if found is None else (int(found[0]), found[1])
                    try:
                        await store.set(counter, str(n + 1).encode(), if_version=v)
                        break
                    except lbkit.SessionConflict:
                        await asyncio.sleep(0)

        await asyncio.gather(*(bump(10) for _ in range(16)))
        assert await store.get(counter) == b"160"
        # a cancelled call leaves no connection checked out
        task = asyncio.ensure_future(store.set(_key(), b"c"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert store.engine.pool.checkedout() == 0
        assert await store.delete(key) is True
        assert v2 != v1
        await store.close()

    asyncio.run(main())


def test_async_unreachable_is_store_unavailable_within_timeout() -> None:
    port = free_port()

    async def main() -> None:
        store = sessions.AsyncSqlStore(f"postgresql://u@127.0.0.1:{port}/db", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(lbkit.StoreUnavailable, match=str(port)):
            await store.get("abc")
        assert time.monotonic() - started < 3.0
        await store.close()

    asyncio.run(main())


# --- many writers ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", DATABASES)
def test_sixteen_threads_lose_no_update(backend: str, make_sql: Callable[..., Any]) -> None:
    store = make_sql(backend)
    key = _key()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            increment(store, key, 15)
            store.set(f"{key}-own-{i}", f"mine-{i}".encode())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get(key) == str(16 * 15).encode()
    for i in range(16):
        assert store.get(f"{key}-own-{i}") == f"mine-{i}".encode()
    assert store.engine.pool.checkedout() == 0
    assert store.deadlock_retries == 0


def _process_worker(url: str, key: str, times: int, go: Any) -> None:
    store = sessions.SqlStore(url)
    store.get("warm-up")
    go.wait()
    increment(store, key, times)
    store.close()


@pytest.mark.parametrize("backend", DATABASES)
def test_eight_processes_lose_no_update(backend: str, servers: dict[str, SqlServer]) -> None:
    url = servers[backend].url
    key = _key()
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_process_worker, args=(url, key, 15, go)) for _ in range(8)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = sessions.SqlStore(url)
    assert store.get(key) == str(8 * 15).encode()
    store.close()


# --- the database crashes -------------------------------------------------------------------


@pytest.mark.parametrize("backend", DATABASES)
def test_kill_9_mid_load_loses_no_acknowledged_write(
    backend: str, servers: dict[str, SqlServer]
) -> None:
    server = servers[backend]
    timeout = 2.0
    store = sessions.SqlStore(server.url, timeout=timeout)
    prefix = _key()
    acked: dict[str, bytes] = {}
    failures: list[tuple[str, float]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(t: int) -> None:
        i = 0
        while not stop.is_set():
            key, value = f"{prefix}-{t}-{i}", f"value-{t}-{i}".encode() * 8
            started = time.monotonic()
            try:
                store.set(key, value)
            except lbkit.StoreUnavailable as exc:
                with lock:
                    failures.append((type(exc).__name__, time.monotonic() - started))
                time.sleep(0.05)
            else:
                with lock:
                    acked[key] = value
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    started = time.monotonic()
    while len(acked) < 50 and time.monotonic() - started < 20:
        time.sleep(0.05)
    before = len(acked)
    failed_before = len(failures)
    server.kill()
    # writes while the database is down must fail
    wait_until(lambda: len(failures) > failed_before, 30, "a write to fail while it is down")
    server.restart()
    deadline = time.monotonic() + 30
    recovered = False
    while time.monotonic() < deadline:
        with lock:
            n = len(acked)
        time.sleep(0.3)
        with lock:
            if len(acked) > n + 8:
                recovered = True
                break
    stop.set()
    for t in threads:
        t.join(30)
    assert before > 0
    assert all(name == "StoreUnavailable" for name, _ in failures)
    assert max(elapsed for _, elapsed in failures) < timeout + 1.5
    assert recovered, "the store did not recover after the database came back"
    check = sessions.SqlStore(server.url)
    lost = [k for k, v in acked.items() if check.get(k) != v]
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged writes lost"
    check.close()
    store.close()


@pytest.mark.parametrize("backend", DATABASES)
def test_pooled_connections_survive_a_restart(backend: str, servers: dict[str, SqlServer]) -> None:
    server = servers[backend]
    store = sessions.SqlStore(server.url, timeout=5.0)
    key = _key()
    store.set(key, b"before")  # the pool now holds a connection to the old server
    server.kill()
    server.restart()
    _wait_until_answering(server)
    # the old connection is dead: the call runs on a fresh one instead of failing
    assert store.get(key) == b"before"
    version = store.set(key, b"after", if_version=store.get_versioned(key)[1])
    assert store.get_versioned(key) == (b"after", version)
    store.close()


@pytest.mark.parametrize("backend", DATABASES)
def test_a_hung_database_ends_each_call_within_its_timeout(
    backend: str, servers: dict[str, SqlServer]
) -> None:
    server = servers[backend]
    store = sessions.SqlStore(server.url, timeout=1.0)
    astore = sessions.AsyncSqlStore(server.url, timeout=1.0)
    key = _key()
    _answered(lambda: store.set(key, b"before"))

    async def async_calls() -> list[float]:
        elapsed = []
        for call in (astore.get(key), astore.set(key, b"lost?")):
            started = time.monotonic()
            with pytest.raises(lbkit.StoreUnavailable, match=r"within 1\.0s"):
                await call
            elapsed.append(time.monotonic() - started)
        return elapsed

    loop = asyncio.new_event_loop()
    try:
        _answered(lambda: loop.run_until_complete(astore.get(key)))  # a pooled connection
        server.pause()
        try:
            elapsed = []
            for call in (lambda: store.get(key), lambda: store.set(key, b"lost?")):
                started = time.monotonic()
                with pytest.raises(lbkit.StoreUnavailable):
                    call()
                elapsed.append(time.monotonic() - started)
            elapsed += loop.run_until_complete(async_calls())
        finally:
            server.resume()
        assert max(elapsed) < 2.5, elapsed
        # back: both recover; a write that timed out may or may not have been made
        assert _answered(lambda: store.get(key)) in (b"before", b"lost?")
        _answered(lambda: store.set(key, b"after"))
        assert _answered(lambda: loop.run_until_complete(astore.get(key))) == b"after"
        assert store.engine.pool.checkedout() == 0
    finally:
        store.close()
        loop.run_until_complete(astore.close())
        loop.close()


@pytest.mark.parametrize("backend", DATABASES)
def test_a_hung_database_bounds_the_whole_call_with_an_exhausted_pool(
    backend: str, servers: dict[str, SqlServer]
) -> None:
    """Pool wait + connect + statements + the retry all fit in one ``timeout``.

    pool_size=1 (and 1 overflow) against a SIGSTOPped server, 8 threads: calls hang on the
    pooled connection's statement, on connecting the overflow one (libpq's connect timeout
    alone is at least 2 s), or wait for the pool and then connect with what time is left.
    """
    server = servers[backend]
    timeout = 1.0
    store = sessions.SqlStore(server.url, timeout=timeout, pool_size=1)
    key = _key()
    _answered(lambda: store.set(key, b"before"))  # one pooled connection
    elapsed: list[float] = []
    outcomes: list[BaseException | None] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        for r in range(2):
            began = time.monotonic()
            try:
                if (i + r) % 2:
                    store.set(key, b"lost?")
                else:
                    store.get(key)
                outcome: BaseException | None = None
            except BaseException as exc:  # recorded, checked below
                outcome = exc
            with lock:
                elapsed.append(time.monotonic() - began)
                outcomes.append(outcome)

    server.pause()
    try:
        with Lateness() as late:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        server.resume()
    try:
        assert len(outcomes) == 16
        assert all(isinstance(o, lbkit.StoreUnavailable) for o in outcomes), outcomes
        # one timeout for the whole call (a phase with its own would take 2 s or more), plus
        # what the machine's load delays waking up (the watchdog, then the call's thread)
        assert max(elapsed) < timeout + 0.35 + 2 * late.worst, (sorted(elapsed), late.worst)
        assert _answered(lambda: store.get(key)) in (b"before", b"lost?")
        assert store.engine.pool.checkedout() == 0
    finally:
        store.close()


T = TypeVar("T")


def _answered(call: Callable[[], T], within: float = 60.0) -> T:
    """A call that must succeed against a database that answers (test setup, recovery):
    retried while it times out, as a healthy database on a loaded machine can take longer
    than the short timeout under test, and a database just resumed is slow at first."""
    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except lbkit.StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_until_answering(server: SqlServer) -> None:
    probe = sessions.SqlStore(server.url, timeout=1.0)
    try:
        _answered(lambda: probe.get("probe"))
    finally:
        probe.close()


def test_a_repeated_write_is_confirmed_by_its_version_not_guessed() -> None:
    # the plans are sans-I/O: drive one by hand as a shell whose connection broke would
    from lbkit.sessions._sql import _Duplicate, _Outcome, _Statements, sessions_table

    sql = _Statements(sessions_table(), "postgresql", 1024, time.time)
    # an UPDATE ... WHERE version run twice: the second run matches nothing
    plan = sql.write("k", b"v", None, 7)
    assert "UPDATE" in str(next(plan))
    check = plan.send(_Outcome(0, [], repeated=True))
    assert "SELECT" in str(check)
    assert list(check.compile().params.values()) == ["k"]
    with pytest.raises(StopIteration) as done:
        plan.send(_Outcome(1, [(_version_of(plan),)]))
    assert isinstance(done.value.value, int)
    # ...but another writer's version there is a conflict
    plan = sql.write("k", b"v", None, 7)
    next(plan)
    plan.send(_Outcome(0, [], repeated=True))
    with pytest.raises(lbkit.SessionConflict):
        plan.send(_Outcome(1, [(12345,)]))
    # a first run that matched nothing is a conflict without asking again
    plan = sql.write("k", b"v", None, 7)
    next(plan)
    with pytest.raises(lbkit.SessionConflict):
        plan.send(_Outcome(0, []))
    # a create-only INSERT repeated after it committed: the duplicate is our own row
    plan = sql.write("k", b"v", None, sessions.ABSENT)
    next(plan)  # DELETE of an expired row
    insert = plan.send(_Outcome(0, []))
    ours = insert.compile().params["version"]
    check = plan.throw(_Duplicate(repeated=True))
    with pytest.raises(StopIteration) as done:
        plan.send(_Outcome(1, [(ours,)]))
    assert done.value.value == ours


def _blind_insert(store: Any, key: str) -> Any:
    """A plan that INSERTs without expecting the key to exist (no store plan does this)."""
    row = {"id": key, "value": b"blind", "version": 1, "expires": None}
    yield sa.insert(store.table).values(row)
    return "inserted"


@pytest.mark.parametrize("backend", [*DATABASES, "sqlite"])
def test_an_unexpected_duplicate_key_is_a_store_error_in_both_shells(
    backend: str, make_sql: Callable[..., Any], servers: dict[str, SqlServer]
) -> None:
    store = make_sql(backend)
    key = _key()
    assert store._run(lambda: _blind_insert(store, key)) == "inserted"  # a plan's result
    with pytest.raises(lbkit.StoreError, match="unexpected constraint error"):
        store._run(lambda: _blind_insert(store, key))
    assert store.get(key) == b"blind"  # the refused write left the row as it was
    if backend == "sqlite":
        return  # no asyncio SQLite driver

    async def main() -> None:
        twin = sessions.AsyncSqlStore(servers[backend].url, timeout=5.0)
        try:
            with pytest.raises(lbkit.StoreError, match="unexpected constraint error"):
                await twin._run(lambda: _blind_insert(twin, key))
            assert await twin.get(key) == b"blind"
        finally:
            await twin.close()

    asyncio.run(main())


def _version_of(plan: Any) -> int:
    return int(plan.gi_frame.f_locals["version"])


# --- two app servers share sessions ---------------------------------------------------------


@pytest.mark.parametrize("backend", DATABASES)
def test_two_app_servers_share_one_session(backend: str, servers: dict[str, SqlServer]) -> None:
    from tests.sessions.test_middleware import two_app_servers_share_one_session

    two_app_servers_share_one_session(servers[backend].url, f"e2e-{backend}:")
