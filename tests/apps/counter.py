"""A tiny ASGI app for the end-to-end tests: counts requests in the session.

The store comes from ``LBKIT_TEST_STORE``: ``redis://HOST:PORT/0``, ``memcached://HOST:PORT``,
``files:/DIR``, ``sharedance://HOST:PORT``, ``postgresql://...`` or ``mysql://...``.
"""

from __future__ import annotations

import os
from typing import Any

from lbkit import sessions
from lbkit.middleware import ASGISessionMiddleware
from lbkit.sessions import CookieConfig


def store_from_env() -> Any:
    spec = os.environ["LBKIT_TEST_STORE"]
    if spec.startswith("redis://"):
        return sessions.AsyncRedisStore(spec, prefix=os.environ.get("LBKIT_TEST_PREFIX", "e2e:"))
    if spec.startswith("memcached://"):
        host, port = spec.removeprefix("memcached://").split(":")
        return sessions.AsyncMemcachedStore(host, int(port), prefix="e2e-")
    if spec.startswith("sharedance://"):
        host, port = spec.removeprefix("sharedance://").split(":")
        return sessions.AsyncSharedanceStore(host, int(port))
    if spec.startswith(("postgresql://", "mysql://")):
        return sessions.AsyncSqlStore(spec)
    if spec.startswith("files:"):
        return sessions.AsyncFileStore(spec.removeprefix("files:"))
    raise ValueError(f"unknown LBKIT_TEST_STORE {spec!r}")


async def counter(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    session = await scope["session"].get()
    session["n"] = session.get("n", 0) + 1
    body = f"{session['n']}|{os.getpid()}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = ASGISessionMiddleware(counter, store_from_env(), cookie=CookieConfig(secure=False))
