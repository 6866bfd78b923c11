"""WSGI (PEP 3333) session middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lbkit._web_types import StartResponse, WSGIApp
from lbkit.sessions._manager import SessionManager
from lbkit.sessions._session import CookieConfig, Serializer, Session, parse_cookie_header
from lbkit.sessions.base import SessionStore

__all__ = ["LazySession", "WSGISessionMiddleware"]


class LazySession:
    """Loads the session from the store on first use."""

    def __init__(self, load: Callable[[], Session]) -> None:
        self._load = load
        self._session: Session | None = None

    @property
    def loaded(self) -> bool:
        """Whether the store was read."""
        return self._session is not None

    def get(self) -> Session:
        """The session (loaded now if needed)."""
        if self._session is None:
            self._session = self._load()
        return self._session


class WSGISessionMiddleware:
    """Exposes a session as ``environ["lbkit.session"]`` (a :class:`LazySession`; call
    ``.get()``). The store is read only if the application asks for the session, and
    written only if it changed, when the application calls ``start_response``.
    """

    def __init__(
        self,
        app: WSGIApp,
        store: SessionStore,
        *,
        ttl: float | None = 1800.0,
        cookie: CookieConfig | None = None,
        serializer: Serializer | None = None,
        secret: str | bytes | None = None,
        environ_key: str = "lbkit.session",
    ) -> None:
        self.app = app
        self.manager = SessionManager(
            store, ttl=ttl, cookie=cookie, serializer=serializer, secret=secret
        )
        self.environ_key = environ_key

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        name = self.manager.cookie.name
        value = parse_cookie_header(environ.get("HTTP_COOKIE", ""), name)
        lazy = LazySession(lambda: self.manager.load(value))
        environ[self.environ_key] = lazy

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if lazy.loaded:
                cookie = self.manager.save(lazy.get())
                if cookie is not None:
                    headers = [*headers, ("Set-Cookie", cookie)]
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return self.app(environ, start)
