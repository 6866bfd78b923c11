"""The adapters' shared core: options, signing and rotation, the load and save flows
(merging after a lost race, deletes that stick, lifetimes), and what Flask, Starlette and
Django do with store errors and ``modified``."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from flask import Flask, session
from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.integrations import SessionOptions, store_from_url
from lbkit.integrations._core import StoreSteps, load_flow, save_flow
from lbkit.integrations.flask import SessionInterface
from lbkit.sessions import MemoryStore, PhpSerializer, SessionManager
from lbkit.sessions._flow import Pause, run

SECRET = secrets.token_urlsafe(32)


def test_options_validate_and_name_what_is_valid() -> None:
    with pytest.raises(lbkit.ConfigError, match="cookie_nam"):
        SessionOptions.from_options({"cookie_nam": "x"})
    with pytest.raises(lbkit.ConfigError, match="at least 32 bytes"):
        SessionOptions(secret="short")
    with pytest.raises(lbkit.ConfigError, match="idle_timeout"):
        SessionOptions(idle_timeout=0)
    with pytest.raises(lbkit.ConfigError, match="invalid cookie name"):
        SessionOptions(cookie_name="a b")
    with pytest.raises(lbkit.ConfigError, match="needs secure=True"):
        SessionOptions(same_site="None")
    assert SessionOptions(same_site="None", secure=True).cookie(False, None).secure
    with pytest.raises(lbkit.ConfigError, match="needs meta_key"):
        SessionOptions(absolute_timeout=10, meta_key=None)


def test_signing_rotation_and_id_formats() -> None:
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    before = SessionOptions(secret=old)
    sid = before.new_id()
    assert len(sid) == 43
    cookie = before.sign(sid)
    rotated = SessionOptions(secret=[new, old])
    assert rotated.unsign(cookie) == (sid, True)  # valid, signed by an older secret
    assert rotated.unsign(rotated.sign(sid)) == (sid, False)
    assert SessionOptions(secret=new).unsign(cookie) == (None, False)
    assert rotated.unsign(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) == (None, False)
    php = SessionOptions(ids="php")
    assert php.valid_id("abcdefghijklmnopqrstuvwxyz")  # 26 of [a-v0-9]-style
    assert php.valid_id("a" * 31 + ",")
    assert not php.valid_id("short")
    assert not php.valid_id("a" * 31 + "_")
    assert set(php.new_id()) <= set(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-"
    )


STEPS = StoreSteps(MemoryStore())  # versions, TTLs and touch: every kind of call


def drive(flow: Any, answers: list[Any]) -> tuple[list[Any], Any]:
    """Run a flow by hand: record its store calls as (method, args), answer them from
    ``answers`` (exceptions are thrown in); back-off pauses are recorded as "pause"."""
    ops: list[Any] = []
    try:
        step = next(flow)
        while True:
            if isinstance(step, Pause):
                ops.append("pause")
                step = flow.send(None)
                continue
            ops.append((step.method, step.args, step.kwargs.get("if_version")))
            answer = answers.pop(0)
            step = flow.throw(answer) if isinstance(answer, Exception) else flow.send(answer)
    except StopIteration as stop:
        return ops, stop.value


def methods(ops: list[Any]) -> list[str]:
    return [op if op == "pause" else op[0] for op in ops]


def test_lost_race_merges_only_this_requests_keys() -> None:
    options = SessionOptions(meta_key=None)
    raw = options.serializer.dumps({"a": 1, "b": 1, "cart": [1]})
    ops, loaded = drive(load_flow(options, STEPS, "x" * 43, 0.0), [(raw, 7)])
    assert ops == [("get_versioned", ("x" * 43,), None)]
    data = dict(loaded.data)
    data["cart"].append(2)  # in place
    del data["b"]
    theirs = options.serializer.dumps({"a": 5, "b": 1, "other": True, "cart": [1]})
    ops, action = drive(
        save_flow(options, STEPS, loaded, data),
        [lbkit.SessionConflict("raced"), (theirs, 8), 9],
    )
    assert methods(ops) == ["set", "pause", "get_versioned", "set"]
    assert ops[0][2] == 7
    assert ops[3][2] == 8
    merged = options.serializer.loads(ops[3][1][1])
    assert merged == {"a": 5, "other": True, "cart": [1, 2]}  # "a" untouched here: theirs
    assert action is None


def test_a_save_outlasts_a_long_run_of_lost_races() -> None:
    """Eight requests writing one session (two gunicorn processes under load) lost up to
    five races in a row; the adapters gave up after five and answered 500. They retry as
    often as SessionManager does, and stop without a re-read after the last lost race."""
    options = SessionOptions(meta_key=None)
    assert options.max_retries == SessionManager(MemoryStore()).rules.max_retries == 20
    raw = options.serializer.dumps({"a": 1})
    _, loaded = drive(load_flow(options, STEPS, "x" * 43, 0.0), [(raw, 1)])
    lost = [lbkit.SessionConflict("raced"), (raw, 2)] * 12
    ops, action = drive(save_flow(options, STEPS, loaded, {"a": 1, "b": 2}), [*lost, 3])
    assert methods(ops) == ["set", *["pause", "get_versioned", "set"] * 12]
    assert options.serializer.loads(ops[-1][1][1]) == {"a": 1, "b": 2}
    assert action is None

    # answers for exactly 3 sets and 2 re-reads: a re-read after the third would find none
    options = SessionOptions(meta_key=None, max_retries=2)
    with pytest.raises(lbkit.SessionConflict, match="after 2 retries"):
        drive(save_flow(options, STEPS, loaded, {"b": 2}), [*lost[:4], lost[0]])
    once = SessionOptions(meta_key=None, max_retries=0)
    with pytest.raises(lbkit.SessionConflict, match="after 0 retries"):
        drive(save_flow(once, STEPS, loaded, {"b": 2}), [lost[0]])
    for bad in (-1, True, 1.5):
        with pytest.raises(lbkit.ConfigError, match="max_retries"):
            SessionOptions(max_retries=bad)


def test_session_deleted_meanwhile_stays_deleted() -> None:
    options = SessionOptions()
    raw = options.serializer.dumps({})
    _, loaded = drive(load_flow(options, STEPS, "x" * 43, 0.0), [(raw, 1)])
    ops, action = drive(
        save_flow(options, STEPS, loaded, {"k": 1}), [lbkit.SessionConflict("raced"), None]
    )
    assert methods(ops) == ["set", "pause", "get_versioned"]
    assert action.delete


def test_nothing_changed_touches_and_writes_nothing() -> None:
    options = SessionOptions()
    raw = options.serializer.dumps({"k": [1, {"x": 2}]})
    _, loaded = drive(load_flow(options, STEPS, "x" * 43, 0.0), [(raw, 1)])
    ops, action = drive(save_flow(options, STEPS, loaded, {"k": [1, {"x": 2}]}), [True])
    assert ops == [("touch", ("x" * 43, 1800.0), None)]
    assert action is None
    # modified=True forces the write
    ops, _ = drive(save_flow(options, STEPS, loaded, dict(loaded.data), modified=True), [2])
    assert methods(ops) == ["set"]


def test_absolute_timeout_and_per_session_lifetime() -> None:
    options = SessionOptions(absolute_timeout=100)
    store = MemoryStore()
    steps = StoreSteps(store)
    loaded = run(load_flow(options, steps, None, 1000.0))
    action = run(save_flow(options, steps, loaded, {"k": 1}, lifetime=5000, now=1000.0))
    sid = options.unsign(action.value)[0]
    assert action.max_age == 5000
    assert "Max-Age=5000" in action.header(options, https=True)
    assert "Secure" in action.header(options, https=True)
    assert "Secure" not in action.header(options, https=False)
    again = run(load_flow(options, steps, sid, 1050.0))
    assert again.data == {"k": 1}
    assert again.lifetime == 5000  # kept with the session
    expired = run(load_flow(options, steps, sid, 1101.0))  # created at 1000, limit 100 s
    assert expired.id is None
    assert store.get(sid) is None  # and deleted


def test_strict_ids_never_adopted_and_empty_sessions_not_stored() -> None:
    options = SessionOptions()
    store = MemoryStore()
    steps = StoreSteps(store)
    unknown = "u" * 43
    loaded = run(load_flow(options, steps, unknown, 0.0))
    assert loaded.id is None
    assert loaded.stale_cookie
    action = run(save_flow(options, steps, loaded, {}))
    assert action.delete  # the unknown cookie is removed, nothing stored
    action = run(save_flow(options, steps, loaded, {"k": 1}))
    assert options.unsign(action.value)[0] != unknown


def flask_app(store: Any, **options: Any) -> Flask:
    app = Flask(__name__)
    app.session_interface = SessionInterface(store, **options)

    @app.post("/set/<key>")
    def set_key(key: str) -> str:
        session[key] = True
        return "ok"

    @app.post("/touch-in-place")
    def touch_in_place() -> str:
        session["box"]["n"] += 1  # hidden from any change tracking but the bytes
        return "ok"

    @app.post("/forced")
    def forced() -> str:
        session.modified = True
        return "ok"

    @app.get("/")
    def show() -> Any:
        return dict(session)

    return app


def test_flask_sixteen_threads_on_one_session_keep_every_key() -> None:
    store = MemoryStore()
    app = flask_app(store, secret=SECRET)
    with app.test_client() as first:
        first.post("/set/start")
        cookie = first.get_cookie("lbkit_session").value

    def worker(i: int) -> None:
        with app.test_client() as c:
            c.set_cookie("lbkit_session", cookie)
            assert c.post(f"/set/k{i}").status_code == 200

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with app.test_client() as c:
        c.set_cookie("lbkit_session", cookie)
        assert set(c.get("/").json) == {"start", *(f"k{i}" for i in range(16))}


def test_flask_in_place_and_forced_writes() -> None:
    store = MemoryStore()
    app = flask_app(store)
    with app.test_client() as c:
        c.post("/set/box")
        sid = c.get_cookie("lbkit_session").value
        store.set(sid, app.session_interface.options.serializer.dumps({"box": {"n": 1}}))
        c.post("/touch-in-place")
        assert c.get("/").json == {"box": {"n": 2}}
        _, version = store.get_versioned(sid)
        c.post("/forced")
        assert store.get_versioned(sid)[1] != version


def test_store_errors_are_raised_inside_the_request() -> None:
    """A store that is down gives the framework's 500 (and its error signal), not a new
    session."""
    from flask import got_request_exception

    app = flask_app(store_from_url("redis://127.0.0.1:1/0"))
    seen: list[BaseException] = []

    def record(sender: Any, exception: BaseException, **extra: Any) -> None:
        seen.append(exception)

    got_request_exception.connect(record, app)
    c = app.test_client()  # not "with": that reopens the session after the request
    c.set_cookie("lbkit_session", "x" * 43)
    assert c.get("/").status_code == 500
    assert isinstance(seen[0], lbkit.StoreUnavailable)


def test_starlette_store_errors_and_sync_stores() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from lbkit.integrations.starlette import SessionMiddleware

    async def index(request: Any) -> JSONResponse:
        request.session.setdefault("n", []).append(1)
        return JSONResponse(request.session)

    import asyncio

    async def main() -> None:
        store = MemoryStore()  # a sync store: called in a worker thread
        app = SessionMiddleware(Starlette(routes=[Route("/", index)]), store=store)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert (await c.get("/")).json() == {"n": [1]}
            assert (await c.get("/")).json() == {"n": [1, 1]}  # in place, saved
        down = SessionMiddleware(
            Starlette(routes=[Route("/", index)]), store=store_from_url("redis://127.0.0.1:1/0")
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=down),
            base_url="http://t",
            cookies={"lbkit_session": "x" * 43},
        ) as c:
            with pytest.raises(lbkit.StoreUnavailable):
                await c.get("/")

    asyncio.run(main())


def test_php_serializer_through_an_adapter() -> None:
    store = MemoryStore()
    app = flask_app(store, serializer=PhpSerializer("php"), meta_key=None)
    with app.test_client() as c:
        c.post("/set/flag")
        sid = c.get_cookie("lbkit_session").value
    assert store.get(sid) == b"flag|b:1;"


def test_store_from_url() -> None:
    assert isinstance(store_from_url("memory://"), MemoryStore)
    store = store_from_url("redis://127.0.0.1:1/0?prefix=PHPREDIS_SESSION:&layout=string")
    assert store.prefix == "PHPREDIS_SESSION:"
    assert store.layout == "string"
    memc = store_from_url("memcached://127.0.0.1:11299?prefix=memc.sess.key.")
    assert memc.prefix == "memc.sess.key."
    assert store_from_url("memory://", shared=True) is store_from_url("memory://", shared=True)
    with pytest.raises(lbkit.ConfigError, match="expected one of"):
        store_from_url("ftp://x")
    with pytest.raises(lbkit.ConfigError, match="invalid session store URL"):
        store_from_url("memcached://127.0.0.1:notaport")
    with pytest.raises(lbkit.ConfigError, match="invalid session store URL"):
        store_from_url("redis://[::1")


def test_stores_without_versions_merge_and_keep_deletes() -> None:
    """sharedance has no versions: the save re-reads, merges, and never re-creates."""
    options = SessionOptions(meta_key=None)
    plain = MemoryStore()
    plain.capabilities = frozenset({"ttl", "touch"})  # as a store without versions
    steps = StoreSteps(plain)
    plain.set("p" * 43, options.serializer.dumps({"a": 1, "b": 1}))
    loaded = run(load_flow(options, steps, "p" * 43, 0.0))
    assert loaded.version is None
    plain.set("p" * 43, options.serializer.dumps({"a": 1, "b": 1, "theirs": 1}))
    assert run(save_flow(options, steps, loaded, {"a": 2, "b": 1})) is None
    assert options.serializer.loads(plain.get("p" * 43)) == {"a": 2, "b": 1, "theirs": 1}
    plain.delete("p" * 43)
    action = run(save_flow(options, steps, loaded, {"a": 3, "b": 1}))
    assert action.delete
    assert plain.get("p" * 43) is None


@settings(max_examples=500)
@given(value=st.one_of(st.none(), st.text(max_size=500)), php=st.booleans())
def test_fuzz_cookie_values_give_an_id_or_none(value: str | None, php: bool) -> None:
    for options in (
        SessionOptions(ids="php" if php else "lbkit"),
        SessionOptions(ids="php" if php else "lbkit", secret=[SECRET]),
    ):
        session_id, older = options.unsign(value)
        assert session_id is None or options.valid_id(session_id)
        assert older is False


@settings(max_examples=300)
@given(url=st.text(max_size=80).filter(lambda u: not u.lower().startswith("file:")))
def test_fuzz_store_urls_only_config_errors(url: str) -> None:  # (file: would make dirs)
    try:
        store = store_from_url(url)
    except lbkit.ConfigError:
        return
    store.close()
