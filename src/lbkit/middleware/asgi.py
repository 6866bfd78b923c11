"""ASGI 3 session middleware (http and websocket scopes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lbkit._web_types import ASGIApp, Message, Receive, Scope, Send
from lbkit.sessions._manager import AsyncSessionManager
from lbkit.sessions._session import CookieConfig, Serializer, Session, parse_cookie_header
from lbkit.sessions.base import AsyncSessionStore

__all__ = ["ASGISessionMiddleware", "AsyncLazySession"]


class AsyncLazySession:
    """Loads the session from the store on first ``await lazy.get()``."""

    def __init__(self, load: Callable[[], Awaitable[Session]]) -> None:
        self._load = load
        self._session: Session | None = None

    @property
    def loaded(self) -> bool:
        """Whether the store was read."""
        return self._session is not None

    async def get(self) -> Session:
        """The session (loaded now if needed)."""
        if self._session is None:
            self._session = await self._load()
        return self._session


class ASGISessionMiddleware:
    """Exposes ``scope["session"]`` as an :class:`AsyncLazySession`.

    For http the session is saved (if it changed) when the response starts, and the cookie
    added to its headers; for websocket, when the connection is accepted.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: AsyncSessionStore,
        *,
        ttl: float | None = 1800.0,
        cookie: CookieConfig | None = None,
        serializer: Serializer | None = None,
        secret: str | bytes | None = None,
        scope_key: str = "session",
    ) -> None:
        self.app = app
        self.manager = AsyncSessionManager(
            store, ttl=ttl, cookie=cookie, serializer=serializer, secret=secret
        )
        self.scope_key = scope_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                header = value.decode("latin-1")
                break
        cookie_value = parse_cookie_header(header, self.manager.cookie.name)
        lazy = AsyncLazySession(lambda: self.manager.load(cookie_value))
        scope[self.scope_key] = lazy
        start_type = "http.response.start" if scope["type"] == "http" else "websocket.accept"

        async def wrapped(message: Message) -> None:
            if message["type"] == start_type and lazy.loaded:
                cookie = await self.manager.save(await lazy.get())
                if cookie is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)
