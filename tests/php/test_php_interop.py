"""PHP and Python apps sharing sessions: PHP writes, Python (Flask, through lbkit) reads and
changes, PHP reads back, on redis (php-redis), memcached (php-memcached) and sharedance (a
PHP handler speaking its protocol), with PHP's session locks on."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session

import lbkit
from lbkit.integrations.flask import SessionInterface
from lbkit.sessions import PhpLockingStore, PhpSerializer, RedisStore, SharedanceStore

from .php import php_binary, require_extension

HERE = Path(__file__).parent
HANDLERS = ["php", "php_serialize"]


class PhpApp:
    """Runs tests/php/session.php against one store, with PHP's locks on."""

    def __init__(self, backend: str, port: int, handler: str) -> None:
        self.flags = ["-d", f"session.serialize_handler={handler}"]
        self.extra: list[str] = []
        if backend == "redis":
            require_extension("redis")
            self.flags += [
                "-d", "session.save_handler=redis",
                "-d", f"session.save_path=tcp://127.0.0.1:{port}",
                "-d", "session.use_strict_mode=1",
                "-d", "redis.session.locking_enabled=1",
                "-d", "redis.session.lock_retries=-1",
                "-d", "redis.session.lock_wait_time=10000",
            ]  # fmt: skip
        elif backend == "memcached":
            require_extension("memcached")
            self.flags += [
                "-d", "session.save_handler=memcached",
                "-d", f"session.save_path=127.0.0.1:{port}",
                "-d", "session.use_strict_mode=1",
                "-d", "memcached.sess_locking=1",
                "-d", "memcached.sess_lock_wait_min=10",
                "-d", "memcached.sess_lock_wait_max=20",
                "-d", "memcached.sess_lock_retries=1000",
            ]  # fmt: skip
        else:
            self.extra = ["sharedance", "127.0.0.1", str(port)]

    def args(self, action: str, sid: str, changes: dict[str, Any], hold_ms: int) -> list[str]:
        return [
            php_binary(), *self.flags, str(HERE / "session.php"),
            action, sid, json.dumps(changes), str(hold_ms), *self.extra,
        ]  # fmt: skip

    def run(
        self, action: str, sid: str = "-", changes: dict[str, Any] | None = None, hold_ms: int = 0
    ) -> dict[str, Any]:
        out = subprocess.run(
            self.args(action, sid, changes or {}, hold_ms),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def start(self, sid: str, changes: dict[str, Any], hold_ms: int) -> subprocess.Popen[str]:
        """A PHP request in the background; ``hold_ms=HELD`` holds its session (and lock)
        until :meth:`release`."""
        return subprocess.Popen(
            self.args("update", sid, changes, hold_ms),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    @staticmethod
    def wait_inside(proc: subprocess.Popen[str]) -> None:
        """Wait until a HELD request is inside its session: read, its lock taken (however
        long a loaded machine takes to start PHP; killed after 60 s)."""
        assert proc.stderr is not None
        deadline = threading.Timer(60, proc.kill)
        deadline.start()
        try:
            line = proc.stderr.readline()
        finally:
            deadline.cancel()
        assert line == "session started\n", line + proc.stderr.read()

    @staticmethod
    def release(proc: subprocess.Popen[str]) -> None:
        """Let a HELD request go on: it writes its session and releases its lock."""
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


#: ``hold_ms`` for a PHP request that holds its session until released.
HELD = -1


def python_app(store: Any, handler: str) -> Flask:
    """A Flask app sharing PHP's cookie, ids and format."""
    app = Flask(__name__)
    app.session_interface = SessionInterface(
        store,
        cookie_name="PHPSESSID",
        ids="php",
        serializer=PhpSerializer(handler=handler),  # type: ignore[arg-type]
        meta_key=None,  # keep lbkit's bookkeeping out of PHP's $_SESSION
    )

    @app.post("/change")
    def change() -> Any:
        seen = copy.deepcopy(dict(session))
        session["n"] = session.get("n", 0) + 1
        session.setdefault("cart", []).append("from python")
        session["py"] = "é"
        return seen

    @app.post("/set/<key>/<value>")
    def set_key(key: str, value: str) -> str:
        session[key] = value
        return "ok"

    return app


def make_store(backend: str, request: pytest.FixtureRequest) -> tuple[Any, int]:
    if backend == "redis":
        port = request.getfixturevalue("redis_proc").port
        return PhpLockingStore.redis(f"redis://127.0.0.1:{port}/0"), port
    if backend == "memcached":
        port = request.getfixturevalue("memcached_proc").port
        return PhpLockingStore.memcached("127.0.0.1", port), port
    port = request.getfixturevalue("sharedance_proc").port
    return SharedanceStore("127.0.0.1", port), port


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize("backend", ["redis", "memcached", "sharedance"])
def test_php_writes_python_changes_php_reads_back(
    backend: str, handler: str, request: pytest.FixtureRequest
) -> None:
    store, port = make_store(backend, request)
    php = PhpApp(backend, port, handler)
    created = php.run("new", changes={"user": "alice", "n": 3, "cart": ["from php"]})
    sid = created["id"]
    assert len(sid) == 32  # PHP's id: 32 characters of [0-9a-zA-Z,-]
    with python_app(store, handler).test_client() as client:
        client.set_cookie("PHPSESSID", sid)
        seen = client.post("/change")
        assert seen.status_code == 200, seen.text
        assert seen.json == {"user": "alice", "n": 3, "cart": ["from php"]}
        assert "PHPSESSID" not in seen.headers.get("Set-Cookie", "")  # same id kept
    back = php.run("update", sid, {"php_again": True})
    assert back["session"] == {
        "user": "alice",
        "n": 4,
        "cart": ["from php", "from python"],
        "py": "é",
        "php_again": True,
    }
    store.close()


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_python_waits_for_phps_lock_and_keeps_both_changes(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store, port = make_store(backend, request)
    php = PhpApp(backend, port, "php")
    sid = php.run("new", changes={"user": "alice"})["id"]
    slow = php.start(sid, {"php": "slow"}, hold_ms=HELD)
    php.wait_inside(slow)  # PHP has read the session and holds its lock
    replies: list[int] = []

    def python_request() -> None:
        with python_app(store, "php").test_client() as client:
            client.set_cookie("PHPSESSID", sid)
            replies.append(client.post("/set/py/fast").status_code)

    python = threading.Thread(target=python_request)
    python.start()
    python.join(0.5)
    assert python.is_alive()  # Python waits for PHP's lock...
    php.release(slow)
    python.join(60)
    _out, err = slow.communicate(timeout=30)
    assert slow.returncode == 0, err
    assert replies == [200]
    final = php.run("update", sid)["session"]
    # ...and wrote after PHP (had it not waited, PHP would have written back what it read)
    assert final == {"user": "alice", "php": "slow", "py": "fast"}
    store.close()


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_php_waits_for_pythons_lock(backend: str, request: pytest.FixtureRequest) -> None:
    store, port = make_store(backend, request)
    php = PhpApp(backend, port, "php")
    sid = php.run("new", changes={"user": "alice"})["id"]
    with store.lock(sid):
        began = time.time()
        waiting = php.start(sid, {"php": "waited"}, hold_ms=0)
        time.sleep(0.8)
        assert waiting.poll() is None  # PHP blocks in session_start()
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert json.loads(out)["started"] - began > 0.7
    store.close()


def test_without_locks_phps_write_overwrites_python(request: pytest.FixtureRequest) -> None:
    """Why the locking mode exists: PHP writes back what it read, Python's change is lost."""
    port = request.getfixturevalue("redis_proc").port
    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="PHPREDIS_SESSION:", layout="string")
    php = PhpApp("redis", port, "php")
    sid = php.run("new", changes={"user": "alice"})["id"]
    slow = php.start(sid, {"php": "slow"}, hold_ms=HELD)
    php.wait_inside(slow)  # PHP has read the session
    with python_app(store, "php").test_client() as client:
        client.set_cookie("PHPSESSID", sid)
        assert client.post("/set/py/lost").status_code == 200
    php.release(slow)
    slow.communicate(timeout=30)
    assert php.run("update", sid)["session"] == {"user": "alice", "php": "slow"}
    store.close()


def test_python_refuses_ids_php_never_made_and_php_ids_it_does_not_hold(
    request: pytest.FixtureRequest,
) -> None:
    port = request.getfixturevalue("redis_proc").port
    store = PhpLockingStore.redis(f"redis://127.0.0.1:{port}/0")
    unknown = "abcdefghijklmnopqrstuvwxyz,-0123"  # PHP's alphabet, not in the store
    with python_app(store, "php").test_client() as client:
        client.set_cookie("PHPSESSID", unknown)
        response = client.post("/set/k/v")
        new_id = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert new_id != unknown  # strict: never adopts an id the store does not hold
    assert store.get(unknown) is None
    php = PhpApp("redis", port, "php")
    assert php.run("update", new_id)["session"] == {"k": "v"}  # PHP accepts lbkit's id
    store.close()


def test_wrongtype_is_a_clear_error(request: pytest.FixtureRequest) -> None:
    from lbkit.errors import SessionDataError

    port = request.getfixturevalue("redis_proc").port
    url = f"redis://127.0.0.1:{port}/0"
    RedisStore(url, prefix="x:").set("hashed", b"v")
    with pytest.raises(SessionDataError, match="layout='string'"):
        RedisStore(url, prefix="x:", layout="string").get("hashed")
    with pytest.raises(SessionDataError, match="WRONGTYPE"):
        RedisStore(url, prefix="x:", layout="string").set("hashed", b"v")
    RedisStore(url, prefix="x:", layout="string").set("plain", b"v")
    with pytest.raises(SessionDataError, match="layout='hash'"):
        RedisStore(url, prefix="x:").get_versioned("plain")  # a php-redis session


def test_lock_wait_is_bounded(request: pytest.FixtureRequest) -> None:
    from lbkit.errors import SessionLocked

    port = request.getfixturevalue("redis_proc").port
    store = PhpLockingStore.redis(f"redis://127.0.0.1:{port}/0", wait=0.3)
    with store.lock("someid"):
        began = time.monotonic()
        with pytest.raises(SessionLocked, match="someid"):
            store.set("someid", b"x")
        assert 0.3 <= time.monotonic() - began < 2
    assert store.get("someid") is None  # the refused write wrote nothing
    store.set("someid", b"x")  # the lock was released
    store.close()


@pytest.mark.parametrize("backend", ["redis", "memcached", "sharedance"])
def test_php_reads_a_session_python_wrote_under_an_id_with_comma_and_dash(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store, port = make_store(backend, request)
    sid = "Ab,-" + "0123456789abcdefghijklmnopqrstuvwxyzABCD"[:28]  # 32 chars, 6 bits each
    store.set(sid, PhpSerializer("php").dumps({"from": "python", "n": 1}))
    back = PhpApp(backend, port, "php").run("update", sid, {"n": 2})
    assert back["id"] == sid  # PHP (strict mode on redis and memcached) kept the id
    assert back["session"] == {"from": "python", "n": 2}
    assert PhpSerializer("php").loads(store.get(sid)) == {"from": "python", "n": 2}
    store.close()


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_locking_store_from_sixteen_threads(backend: str, request: pytest.FixtureRequest) -> None:
    store, _ = make_store(backend, request)
    sid = "sixteen-" + "x" * 24
    store.set(sid, b"0", if_version=0)

    def add(times: int) -> None:
        for _ in range(times):
            while True:
                value, version = store.get_versioned(sid)
                try:
                    store.set(sid, b"%d" % (int(value) + 1), if_version=version)
                    break
                except lbkit.SessionConflict:
                    continue

    threads = [threading.Thread(target=add, args=(10,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(sid) == b"160"
    assert store.locks.get(sid + store.lock_suffix) is None  # every lock released
    store.close()


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_async_locking_store_with_php(backend: str, request: pytest.FixtureRequest) -> None:
    """The asyncio twin: PHP waits for its lock; a versioned write waits for PHP's, then
    loses to PHP's change and releases the lock."""
    import asyncio

    from lbkit.sessions import AsyncPhpLockingStore

    sync_store, port = make_store(backend, request)
    sync_store.close()
    php = PhpApp(backend, port, "php")
    sid = php.run("new", changes={"user": "alice"})["id"]
    store = (
        AsyncPhpLockingStore.redis(f"redis://127.0.0.1:{port}/0")
        if backend == "redis"
        else AsyncPhpLockingStore.memcached("127.0.0.1", port)
    )

    async def main() -> None:
        async with store.lock(sid):
            began = time.time()
            waiting = php.start(sid, {"php": "waited"}, hold_ms=0)
            await asyncio.sleep(0.8)
            assert waiting.poll() is None  # PHP blocks in session_start()
        out, err = await asyncio.to_thread(waiting.communicate, timeout=30)
        assert waiting.returncode == 0, err
        assert json.loads(out)["started"] - began > 0.7

        _, version = await store.get_versioned(sid)
        slow = php.start(sid, {"php": "slow"}, hold_ms=HELD)
        await asyncio.to_thread(php.wait_inside, slow)  # PHP holds its lock
        write = asyncio.ensure_future(
            store.set(sid, PhpSerializer("php").dumps({"x": 1}), if_version=version)
        )
        await asyncio.sleep(0.5)
        assert not write.done()  # waits for PHP's lock
        php.release(slow)
        with pytest.raises(lbkit.SessionConflict):  # waited for PHP, then saw its change
            await write
        await asyncio.to_thread(slow.communicate, timeout=30)
        assert await store.locks.get(sid + store.lock_suffix) is None  # released on error
        assert PhpSerializer("php").loads(await store.get(sid)) == {
            "user": "alice",
            "php": "slow",
        }
        await store.close()

    asyncio.run(main())
