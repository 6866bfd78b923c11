"""The docs' Flask app under two gunicorn processes (threads) sharing one redis-server."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import redis

from .conftest import docs_file, gunicorn


def _sid(client: httpx.Client) -> str:
    return client.cookies["lbkit_session"].rpartition(".")[0]


def test_flask_app_shares_sessions_between_two_servers(
    tmp_path: Path, start_apps: Any, redis_url: str, session_secret: str
) -> None:
    (tmp_path / "flask_app.py").write_text(docs_file("frameworks.md", "flask_app.py"))
    env = {"REDIS_URL": redis_url, "SESSION_SECRETS": session_secret}
    a, b = start_apps(gunicorn("flask_app:app"), env)
    r = redis.Redis.from_url(redis_url)
    with httpx.Client(timeout=10) as client:
        first = client.get(f"{a.url}/")
        assert first.status_code == 200, first.text
        cookie = first.headers["set-cookie"]
        # the cookie: not Flask's "session", not Secure over plain http, HttpOnly, Lax
        assert cookie.startswith("lbkit_session=")
        assert "Secure" not in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        csrf = first.json()["csrf"]
        anonymous = _sid(client)
        assert r.exists(f"lbkit:session:{anonymous}")

        # CSRF checked on the other server; login moves the session to a new id
        assert client.post(f"{b.url}/login", data={"user": "alice"}).status_code == 403
        ok = client.post(f"{b.url}/login", data={"user": "alice", "csrf": csrf})
        assert ok.status_code == 200, ok.text
        assert _sid(client) != anonymous
        assert not r.exists(f"lbkit:session:{anonymous}")

        # flash(): shown once, on whichever server reads it
        page = client.get(f"{a.url}/").json()
        assert page["user"] == "alice"
        assert page["messages"] == ["welcome alice"]
        assert client.get(f"{b.url}/").json()["messages"] == []

        # in-place edits are saved, across servers
        for i, server in enumerate([a, b, a, b]):
            cart = client.post(f"{server.url}/cart", data={"item": f"i{i}"}).json()["cart"]
        assert cart == ["i0", "i1", "i2", "i3"]

        # nothing changed: nothing written, no new cookie
        sid = _sid(client)
        assert "set-cookie" not in client.get(f"{b.url}/").headers
        assert _sid(client) == sid
        assert r.ttl(f"lbkit:session:{sid}") > 1700

        # logout deletes the session from redis and the client; replaying the old cookie
        # gives a new empty session, never the old id
        old_cookie = client.cookies["lbkit_session"]
        client.post(f"{a.url}/logout")
        assert "lbkit_session" not in client.cookies
        assert not r.exists(f"lbkit:session:{sid}")
        replay = httpx.get(f"{b.url}/", cookies={"lbkit_session": old_cookie})
        assert replay.json()["user"] is None
        assert sid not in replay.headers["set-cookie"]

        # a forged signature is refused before any lookup
        forged = f"{sid}.{secrets.token_urlsafe(32)}"
        assert httpx.get(f"{a.url}/", cookies={"lbkit_session": forged}).json()["user"] is None


def _login(client: httpx.Client, url: str, **form: str) -> None:
    csrf = client.get(f"{url}/").json()["csrf"]
    assert (
        client.post(f"{url}/login", data={"user": "bob", "csrf": csrf, **form}).status_code == 200
    )


def test_flask_permanent_sessions_and_secret_rotation(
    tmp_path: Path, start_apps: Any, redis_url: str
) -> None:
    (tmp_path / "flask_app.py").write_text(docs_file("frameworks.md", "flask_app.py"))
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    r = redis.Redis.from_url(redis_url)
    with httpx.Client(timeout=10) as client:
        (a,) = start_apps(
            gunicorn("flask_app:app"), {"REDIS_URL": redis_url, "SESSION_SECRETS": old}, 1
        )
        _login(client, a.url, remember="1")
        sid = _sid(client)
        # session.permanent: Flask's permanent_session_lifetime (31 days) as Max-Age and TTL
        assert r.ttl(f"lbkit:session:{sid}") > 30 * 86400
        signed_old = client.cookies["lbkit_session"]
        a.stop()

        # rotation: [new, old] verifies the old signature and re-signs with the new secret
        (b,) = start_apps(
            gunicorn("flask_app:app"),
            {"REDIS_URL": redis_url, "SESSION_SECRETS": f"{new} {old}"},
            1,
        )
        response = client.get(f"{b.url}/")
        assert response.json()["user"] == "bob"
        assert "Max-Age=2678400" in response.headers["set-cookie"]
        assert client.cookies["lbkit_session"] != signed_old
        assert _sid(client) == sid
        b.stop()

        # the old secret retired: the re-signed cookie still works, the old one does not
        (c,) = start_apps(
            gunicorn("flask_app:app"), {"REDIS_URL": redis_url, "SESSION_SECRETS": new}, 1
        )
        assert client.get(f"{c.url}/").json()["user"] == "bob"
        stale = httpx.get(f"{c.url}/", cookies={"lbkit_session": signed_old})
        assert stale.json()["user"] is None


KEYS_APP = """
import os

from flask import Flask, session

from lbkit.integrations.flask import SessionInterface
from lbkit.sessions import RedisStore

app = Flask(__name__)
app.session_interface = SessionInterface(RedisStore(os.environ["REDIS_URL"]))


@app.post("/set/<key>")
def set_key(key):
    session[key] = True
    return "ok"


@app.get("/")
def show():
    return sorted(session)
"""


def test_sixteen_clients_on_two_servers_change_one_session(
    tmp_path: Path, start_apps: Any, redis_url: str
) -> None:
    """Concurrent requests changing different keys of one session, spread over two gunicorn
    processes: every change is kept (compare-and-set, re-read, merge)."""
    import threading

    (tmp_path / "keys_app.py").write_text(KEYS_APP)
    servers = start_apps(gunicorn("keys_app:app"), {"REDIS_URL": redis_url})
    first = httpx.post(f"{servers[0].url}/set/start", timeout=10)
    cookie = first.cookies["lbkit_session"]
    failures: list[str] = []

    def worker(i: int) -> None:
        for round_ in range(5):
            url = servers[(i + round_) % 2].url
            got = httpx.post(f"{url}/set/k{i}-{round_}", cookies={"lbkit_session": cookie})
            if got.status_code != 200:
                failures.append(got.text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    keys = httpx.get(f"{servers[1].url}/", cookies={"lbkit_session": cookie}).json()
    assert set(keys) == {"start", *(f"k{i}-{r}" for i in range(16) for r in range(5))}
