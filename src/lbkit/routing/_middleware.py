"""Routing middleware: each request's Host taken to its backend before the app runs.

The request's headers, cookies and query arguments are nginx variables here
(``$http_NAME``, ``$cookie_NAME``, ``$arg_NAME``, via :mod:`lbkit.nginx.variables`), so a
``hash $cookie_session consistent`` upstream picks the peer nginx would.

:class:`ASGIRoutingMiddleware` and :class:`WSGIRoutingMiddleware` route the request with
:func:`~lbkit.routing.aroute_request` / :func:`~lbkit.routing.route_request` and put the
:class:`~lbkit.routing.Route` (block, location, rendered target, upstream, peer, resolved
address) in ``scope["lbkit.route"]`` / ``environ["lbkit.route"]`` for the app (a proxy)
to use. When the app returns the route is reported done, or failed if the app raised
(the app may report it itself first, e.g. ``route.done(failed=True)`` on a backend
error), so least_conn and passive health stay right. Requests nginx would refuse are
answered here: 400 for an invalid Host, 502 when no peer is live or the name does not
resolve, 500 when a regex hit its bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from lbkit._web_types import Receive, Scope, Send, StartResponse
from lbkit.errors import (
    InvalidHostError,
    LbkitError,
    NoLiveUpstreams,
    RegexLimitError,
    RequestError,
    ResolutionError,
)
from lbkit.routing._route import Request, Route, aroute_request, route_request
from lbkit.routing._router import Router

__all__ = ["ASGIRoutingMiddleware", "WSGIRoutingMiddleware", "status_for"]


#: Characters of a decoded path that need no %-escape to be read back the same.
_SAFE = "/!$&'()*+,;=:@~-._"
_REASONS = {400: "Bad Request", 500: "Internal Server Error", 502: "Bad Gateway"}


def status_for(error: LbkitError) -> int:
    """The status nginx answers for a routing error: 400, 502 or 500."""
    if isinstance(error, RegexLimitError):
        return 500  # nginx closes the connection
    if isinstance(error, (InvalidHostError, RequestError)):
        return 400
    if isinstance(error, (NoLiveUpstreams, ResolutionError)):
        return 502
    return 500


def _variables(target: str, headers: list[tuple[str, str]], client: str | None) -> Any:
    """The request's own nginx variables ($http_, $cookie_, $arg_...)."""
    # imported here: lbkit.nginx imports lbkit.routing when it loads
    from lbkit.nginx.variables import ClientRequest, RequestVariables

    request = ClientRequest(uri=target, client=client or "127.0.0.1", headers=tuple(headers))
    return RequestVariables(request)


def _finish(route: Route, failed: bool) -> None:
    if route.state == "pending":
        route.done(failed=failed)


def _refusal(error: LbkitError) -> tuple[int, str, bytes]:
    """Status, reason and body of the answer for a request routing refused."""
    status = status_for(error)
    return status, _REASONS[status], f"{status} {_REASONS[status]}\n".encode()


class _Middleware:
    """What both middleware share: the router, the resolver and the listen socket."""

    def __init__(
        self,
        app: Any,
        router: Router,
        *,
        resolver: Any = None,
        listen: str | tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.router = router
        self.resolver = resolver
        self.listen = listen


class ASGIRoutingMiddleware(_Middleware):
    """ASGI 3 middleware: ``scope["lbkit.route"]`` for http and websocket requests.

    ``ASGIRoutingMiddleware(app, router, *, resolver=None, listen=None)``: ``resolver`` is
    an :class:`~lbkit.routing.AsyncResolver` or a :class:`~lbkit.routing.ResolverPool` of
    them; ``listen`` the nginx socket these requests stand for (default: the config's
    first).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route, run the app with the route in its scope, report the outcome."""
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope.get("headers", ()) if k.lower() == b"host"), None)
        client = scope.get("client")
        raw = scope.get("raw_path") or quote(scope.get("path", "/"), safe=_SAFE).encode()
        query = bytes(scope.get("query_string", b""))
        target = (raw + (b"?" + query if query else b"")).decode("latin-1")
        headers = [
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
            for k, v in scope.get("headers", ())
        ]
        addr = client[0] if client else None
        try:
            request = Request.from_target(
                host,
                target,
                listen=self.listen,
                client_addr=addr,
                variables=_variables(target, headers, addr),
            )
            route = await aroute_request(self.router, request, resolver=self.resolver)
        except LbkitError as exc:
            status, _, body = _refusal(exc)
            fields = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": status, "headers": fields})
            await send({"type": "http.response.body", "body": body})
            return
        inner = dict(scope)
        inner["lbkit.route"] = route
        try:
            await self.app(inner, receive, send)
        except BaseException:
            _finish(route, failed=True)
            raise
        _finish(route, failed=False)


class WSGIRoutingMiddleware(_Middleware):
    """WSGI middleware: ``environ["lbkit.route"]``; reported when the response is closed.

    ``WSGIRoutingMiddleware(app, router, *, resolver=None, listen=None)``: ``resolver`` is
    a :class:`~lbkit.routing.Resolver` or a :class:`~lbkit.routing.ResolverPool`;
    ``listen`` as for the ASGI middleware.
    """

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Route, run the app with the route in its environ, report when closed."""
        target = environ.get("REQUEST_URI") or (
            quote(environ.get("PATH_INFO", "") or "/", safe=_SAFE, encoding="latin-1")
            + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        )
        headers = [
            (k[5:].replace("_", "-").lower(), v)
            for k, v in environ.items()
            if k.startswith("HTTP_") and isinstance(v, str)
        ]
        try:
            request = Request.from_target(
                environ.get("HTTP_HOST"),
                target,
                listen=self.listen,
                client_addr=environ.get("REMOTE_ADDR"),
                variables=_variables(target, headers, environ.get("REMOTE_ADDR")),
            )
            route = route_request(self.router, request, resolver=self.resolver)
        except LbkitError as exc:
            status, reason, body = _refusal(exc)
            start_response(
                f"{status} {reason}",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        environ["lbkit.route"] = route
        try:
            result = self.app(environ, start_response)
        except BaseException:
            _finish(route, failed=True)
            raise
        return _Reported(result, route)


class _Reported:
    """The app's response; closing it reports the route (failed if iterating raised)."""

    def __init__(self, result: Iterable[bytes], route: Route) -> None:
        self._result = result
        self._route = route
        self._failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            _finish(self._route, failed=self._failed)
