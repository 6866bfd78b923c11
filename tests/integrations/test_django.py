"""The docs' Django app under two gunicorn processes sharing one redis-server: login()
(cycle_key), messages, CSRF in the session, in-place edits, logout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis

from .conftest import docs_file, gunicorn


def test_django_app_shares_sessions_between_two_servers(
    tmp_path: Path, start_apps: Any, redis_url: str, session_secret: str
) -> None:
    (tmp_path / "django_app.py").write_text(docs_file("frameworks.md", "django_app.py"))
    env = {
        "REDIS_URL": redis_url,
        "SESSION_SECRET": session_secret,
        "DJANGO_DB": str(tmp_path / "db.sqlite3"),
    }
    setup = subprocess.run(
        [sys.executable, "django_app.py", "alice", "correct horse"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    a, b = start_apps(gunicorn("django_app"), env)
    r = redis.Redis.from_url(redis_url)
    with httpx.Client(timeout=10) as client:
        csrf = client.get(f"{a.url}/").json()["csrf"]
        anonymous = client.cookies["sessionid"]
        assert r.exists(f"lbkit:session:{anonymous}")  # CSRF_USE_SESSIONS keeps it there

        # CSRF is checked against the session, on the other server
        form = {"username": "alice", "password": "correct horse"}
        assert client.post(f"{b.url}/login", data=form).status_code == 403
        ok = client.post(f"{b.url}/login", data=form, headers={"X-CSRFToken": csrf})
        assert ok.status_code == 200, ok.text
        sid = client.cookies["sessionid"]
        assert sid != anonymous  # login() cycled the key
        assert not r.exists(f"lbkit:session:{anonymous}")

        page = client.get(f"{a.url}/").json()
        assert page["user"] == "alice"
        assert page["messages"] == ["welcome alice"]
        assert client.get(f"{b.url}/").json()["messages"] == []

        # in-place edits (setdefault(...).append) are saved, without session.modified
        csrf = client.get(f"{a.url}/").json()["csrf"]
        for i, server in enumerate([a, b, a]):
            got = client.post(
                f"{server.url}/cart", data={"item": f"i{i}"}, headers={"X-CSRFToken": csrf}
            )
            assert got.status_code == 200, got.text
        assert got.json()["cart"] == ["i0", "i1", "i2"]

        client.post(f"{b.url}/logout", headers={"X-CSRFToken": csrf})
        assert not r.exists(f"lbkit:session:{sid}")
        assert httpx.get(f"{a.url}/", cookies={"sessionid": sid}).json()["user"] is None

    # a store that is down: the error is raised inside the request (Django's 500 page and
    # its error reporting see it), never a silent new session
    (down,) = start_apps(gunicorn("django_app"), {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}, 1)
    failed = httpx.get(f"{down.url}/", cookies={"sessionid": "a" * 32}, timeout=10)
    assert failed.status_code == 500
