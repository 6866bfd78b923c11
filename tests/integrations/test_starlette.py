"""The docs' Starlette app under two uvicorn processes sharing one redis-server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import redis

from .conftest import docs_file, uvicorn


def test_starlette_app_shares_sessions_between_two_servers(
    tmp_path: Path, start_apps: Any, redis_url: str, session_secret: str
) -> None:
    (tmp_path / "starlette_app.py").write_text(docs_file("frameworks.md", "starlette_app.py"))
    env = {"REDIS_URL": redis_url, "SESSION_SECRET": session_secret}
    a, b = start_apps(uvicorn("starlette_app:app"), env)
    r = redis.Redis.from_url(redis_url)
    with httpx.Client(timeout=10) as client:
        # request.session is a real dict: a counter across both servers
        for i, server in enumerate([a, b] * 3, start=1):
            assert client.get(f"{server.url}/").json()["visits"] == i
        anonymous = client.cookies["lbkit_session"].rpartition(".")[0]

        # an OAuth-style state round trip through the session (as Authlib keeps it)
        state = client.get(f"{a.url}/authorize").json()["state"]
        done = client.get(f"{b.url}/callback", params={"state": state, "user": "carol"})
        assert done.status_code == 303, done.text
        sid = client.cookies["lbkit_session"].rpartition(".")[0]
        assert sid != anonymous  # regenerated on login
        assert not r.exists(f"lbkit:session:{anonymous}")
        page = client.get(f"{a.url}/").json()
        assert page == {"user": "carol", "visits": 7}
        # the state is single-use
        replay = client.get(f"{b.url}/callback", params={"state": state, "user": "mallory"})
        assert replay.status_code == 400

        client.post(f"{b.url}/logout")
        assert not r.exists(f"lbkit:session:{sid}")
        assert client.get(f"{a.url}/").json() == {"user": None, "visits": 1}


def test_starlette_secure_follows_the_scheme(redis_url: str, session_secret: str) -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from lbkit.integrations.starlette import SessionMiddleware
    from lbkit.sessions import AsyncRedisStore

    async def index(request: Any) -> PlainTextResponse:
        assert isinstance(request.session, dict)
        request.session["n"] = 1
        return PlainTextResponse("ok")

    async def main() -> tuple[str, str]:
        store = AsyncRedisStore(redis_url)
        app = SessionMiddleware(Starlette(routes=[Route("/", index)]), store=store)
        try:
            found = []
            for base in ("https://app.test", "http://app.test"):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                    found.append((await c.get("/")).headers["set-cookie"])
            return found[0], found[1]
        finally:
            await store.close()

    https, http = asyncio.run(main())
    assert "Secure" in https
    assert "Secure" not in http
