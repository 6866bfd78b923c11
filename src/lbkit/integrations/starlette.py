"""Starlette (and any ASGI app): ``SessionMiddleware(app, store=store, **options)``.

``request.session`` (``scope["session"]``) is then a real dict kept in an lbkit store, so
Starlette's and Authlib's code that expects Starlette's own session works unchanged. The
store may be asyncio (``AsyncRedisStore``...) or synchronous (called in a worker thread).
``request.session.regenerate()``, ``.invalidate()`` and ``.set_expiry(seconds)`` control the
session's id and lifetime. Store errors are raised inside the request.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from lbkit._web_types import ASGIApp, Message, Receive, Scope, Send
from lbkit.integrations._core import (
    SessionDict,
    SessionOptions,
    StoreSteps,
    load_flow,
    request_is_https,
)
from lbkit.sessions._flow import arun
from lbkit.sessions._session import parse_cookie_header
from lbkit.sessions._threaded import ThreadedAsyncStore

__all__ = ["SessionMiddleware"]


class SessionMiddleware:
    """ASGI middleware putting an lbkit session at ``scope["session"]``.

    ``options`` are :class:`~lbkit.integrations.SessionOptions`. The session is saved when
    the response starts (before its headers are sent); websocket scopes get the session
    read-only.
    """

    def __init__(self, app: ASGIApp, store: Any, **options: Any) -> None:
        self.app = app
        if not inspect.iscoroutinefunction(store.get):
            store = ThreadedAsyncStore(store)  # a sync store: its calls run in a thread
        self.store = store
        self.options = SessionOptions.from_options(options)
        self.steps = StoreSteps(store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                header = value
                break
        cookie = parse_cookie_header(header.decode("latin-1"), self.options.cookie_name)
        session_id, resign = self.options.unsign(cookie)
        loaded = await arun(
            load_flow(self.options, self.steps, session_id, time.time(), resign=resign)
        )
        session = SessionDict(loaded)
        scope["session"] = session
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = request_is_https(scope.get("scheme"))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                action = await arun(session.save_flow(self.options, self.steps))
                if action is not None:
                    headers = list(message.get("headers", ()))
                    headers.append((b"vary", b"Cookie"))
                    cookie = action.header(self.options, https).encode("latin-1")
                    headers.append((b"set-cookie", cookie))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)
