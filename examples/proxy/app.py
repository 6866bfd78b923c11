"""An ASGI reverse proxy configured from an nginx.conf, balancing with lbkit.

Each request goes Host -> server block -> location -> ``proxy_pass`` target
(:func:`lbkit.routing.plan_route`); a target naming an ``upstream`` is tried peer after peer
with :meth:`lbkit.Upstream.attempts_async` as ``proxy_next_upstream`` says
(:mod:`retry`), other names are resolved with the block's ``resolver``. Bodies stream both
ways through httpx; each attempt's outcome is reported to the upstream (passive health,
least_conn), and a client that goes away cancels its request, which gives back its peer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx

from examples.proxy.body import ClientDisconnected, RequestBody
from examples.proxy.headers import (
    proxy_add_x_forwarded_for,
    proxy_host,
    request_headers,
    response_headers,
)
from examples.proxy.retry import Attempt, after_error, after_status
from examples.proxy.settings import ProxySettings, SettingsTable, proxy_settings
from lbkit import NoLiveUpstreams, Server, Upstream
from lbkit.errors import LbkitError
from lbkit.middleware import ASGISessionMiddleware
from lbkit.nginx.config import NginxConfig
from lbkit.nginx.variables import ClientRequest, RequestVariables
from lbkit.routing import AsyncResolver, Request, ResolverPool, Route, plan_route, status_for
from lbkit.sessions.base import AsyncSessionStore

__all__ = ["ProxyApp", "make_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Characters of a decoded path that need no %-escape (when the server gives no raw path).
_PATH_SAFE = "/!$&'()*+,;=:@~-._"
_REASONS = {400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


def _error_flag(exc: httpx.HTTPError) -> tuple[str, bool]:
    """(``proxy_next_upstream`` flag, whether the request reached the peer)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ("timeout" if isinstance(exc, httpx.TimeoutException) else "error"), False
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", True
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending" not in str(exc):
        return "invalid_header", True
    return "error", True


def _split_hostport(name: str, default: int) -> tuple[str, int]:
    if name.startswith("["):
        host, _, rest = name[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, sep, port = name.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return name, default


class _Answer(Exception):
    """Answer the client with this status (nginx's own error page)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ProxyApp:
    """The proxy as an ASGI 3 app.

    ``config`` is a loaded nginx.conf (:func:`lbkit.nginx.load_config`); ``listen`` the
    socket these requests stand for (default: the config's first); ``admin_path`` serves
    every upstream's peer state as JSON (off by default); ``session_header`` names the
    header that carries the client's shared-session id to the backends (only with
    :func:`make_app`'s ``sessions``).
    """

    def __init__(
        self,
        config: NginxConfig,
        *,
        listen: str | tuple[str, int] | None = None,
        admin_path: str | None = None,
        session_header: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if config.router is None:
            raise LbkitError(f"{config.path} has no server block to route to")
        self.config = config
        self.router = config.router
        self.listen = listen
        self.admin_path = admin_path
        self.session_header = session_header
        self.settings: SettingsTable = proxy_settings(config)
        self.resolvers = ResolverPool(lambda servers, valid, ipv6: AsyncResolver(
            servers, valid, ipv6=ipv6))  # fmt: skip
        self._transport = transport
        self._clients: dict[int | None, httpx.AsyncClient] = {}
        self.stats: collections.Counter[str] = collections.Counter()

    def _client(self, upstream: Upstream | None) -> httpx.AsyncClient:
        """One client per keepalive setting: without ``keepalive`` nginx closes each
        upstream connection (``Connection: close``); with it, connections are reused."""
        keepalive = upstream.keepalive if upstream is not None else None
        client = self._clients.get(keepalive)
        if client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=keepalive or 0)
            client = self._clients[keepalive] = httpx.AsyncClient(
                limits=limits, transport=self._transport, trust_env=False
            )
        return client

    async def aclose(self) -> None:
        """Close the upstream connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (http; lifespan is acknowledged)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.admin_path is not None and scope.get("path") == self.admin_path:
            await self._admin(send)
            return
        await self._watched(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every upstream's peers: connections, failures, requests, whether failed now."""
        now = int(time.monotonic())
        return {
            name: [
                {
                    "name": p.name,
                    "conns": p.conns,
                    "fails": p.fails,
                    "requests": p.requests,
                    "failed": p.is_failed(now),
                    "down": p.down,
                }
                for p in up.peers
            ]
            for name, up in self.config.upstreams.items()
        }

    async def _admin(self, send: Send) -> None:
        body = json.dumps({"upstreams": self.snapshot(), "stats": dict(self.stats)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _watched(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; a client disconnect after its body was read and before the
        response was sent cancels it (which gives its peer back)."""
        body_read = asyncio.Event()
        finished = asyncio.Event()

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished.set()  # from here on a disconnect is the normal end, not an abort
            await send(message)

        handler = asyncio.ensure_future(self._handle(scope, receive, send_tracked, body_read))

        async def watch() -> None:
            await body_read.wait()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished.is_set():
                        handler.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and finished.is_set():
                await asyncio.wait({handler})  # the response is out: let it report
        finally:
            watcher.cancel()
            if not handler.done():
                handler.cancel()
            try:
                await handler
            except asyncio.CancelledError:  # the handler's; a cancel of ours goes on
                self.stats["client_closed"] += 1

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, body_read: asyncio.Event
    ) -> None:
        started: list[bool] = [False]

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self._proxy(scope, receive, tracked, body_read)
        except _Answer as answer:
            if not started[0]:
                await _send_status(send, answer.status)
        except ClientDisconnected:
            self.stats["client_closed"] += 1

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, body_read: asyncio.Event
    ) -> None:
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
        host = next((v for k, v in headers if k.lower() == b"host"), None)
        client = scope.get("client")
        client_addr = client[0] if client else "127.0.0.1"
        raw = scope.get("raw_path") or quote(scope.get("path", "/"), safe=_PATH_SAFE).encode()
        query = bytes(scope.get("query_string", b""))
        target = (bytes(raw) + (b"?" + query if query else b"")).decode("latin-1")
        try:
            own = self._own_variables(scope, headers, target, client_addr)
            request = Request.from_target(
                host, target, listen=self.listen, client_addr=client_addr, variables=own
            )
            route = plan_route(self.router, request, pick=False)
        except LbkitError as exc:
            raise _Answer(status_for(exc)) from None
        if route.status is not None:
            raise _Answer(route.status)
        assert route.target is not None
        settings = self.settings.lookup(route.match.server.index, route.location)
        variables = self._variables(scope, own, route, client_addr)
        drop = [self.session_header.lower()] if self.session_header else []
        upstream_headers = request_headers(
            headers,
            settings.set_headers,
            variables,
            pass_request_headers=settings.pass_request_headers,
            drop=drop,
        )
        if self.session_header and "session" in scope:
            session = await scope["session"].get()
            if session.new:
                session["since"] = int(time.time())  # saved: the client gets its cookie
            elif session.id:
                upstream_headers.append((self.session_header.encode(), session.id.encode()))
        body = RequestBody(
            receive, settings.client_body_buffer_size, keep=settings.request_buffering
        )
        await body.prefetch()
        if body.complete:
            body_read.set()
        if body.length is not None and (body.length or _has(headers, b"content-length")):
            upstream_headers.append((b"content-length", b"%d" % body.length))
        elif body.length is None:  # streamed: the client's length, else chunked
            upstream_headers.extend((k, v) for k, v in headers if k.lower() == b"content-length")
        method = scope.get("method", "GET")
        upstream = route.upstream
        if upstream is None:
            await self._resolve(route)
            upstream = _addresses_upstream(route)
        await self._balanced(route, upstream, settings, method, upstream_headers, body,
                             body_read, send, client_addr)  # fmt: skip

    def _own_variables(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], target: str, client_addr: str
    ) -> RequestVariables:
        """The request's own nginx variables (``$http_``, ``$cookie_``, ``$arg_``...)."""
        request = ClientRequest(
            uri=target,
            client=client_addr,
            method=scope.get("method", "GET"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
        )
        server = scope.get("server")
        return RequestVariables(request, port=server[1] if server else None)

    def _variables(
        self, scope: Scope, own: RequestVariables, route: Route, client_addr: str
    ) -> collections.ChainMap[str, str]:
        """Everything a ``proxy_set_header`` value may use: the proxy's own variables,
        then the route's (``$host``, captures...), which fall back to the request's."""
        assert route.target is not None
        host, port = proxy_host(route.target)
        forwarded = own.request.header_lines("x-forwarded-for")
        extra = {
            "proxy_host": host,
            "proxy_port": port,
            "proxy_add_x_forwarded_for": proxy_add_x_forwarded_for(forwarded, client_addr),
            "scheme": scope.get("scheme", "http"),
        }
        return collections.ChainMap(extra, route.variables)

    async def _resolve(self, route: Route) -> None:
        name = route.resolve_name
        if name is None:
            return
        try:
            route.resolved(await self.resolvers.for_route(route).resolve(name))
        except LbkitError:
            raise _Answer(502) from None

    async def _balanced(
        self,
        route: Route,
        upstream: Upstream,
        settings: ProxySettings,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        body_read: asyncio.Event,
        send: Send,
        client_addr: str,
    ) -> None:
        """Try the upstream's peers as ``proxy_next_upstream`` says; report each outcome."""
        client = self._client(upstream)
        limit = settings.next_upstream_tries
        first = time.monotonic()
        count = 0
        last_status = 502
        try:
            async with upstream.attempts_async(
                key=route.key, client_addr=client_addr, tries=limit
            ) as attempts:
                async for peer in attempts:
                    count += 1
                    # nginx: u->peer.tries > 1 (the peers not down, at most the limit)
                    more = count < _tries(upstream) and (not limit or count < limit)
                    host, port = _split_hostport(peer.name, route.port)
                    request = self._request(route, settings, method, headers, body, host, port)
                    started = time.monotonic()
                    sent = [False]
                    try:
                        response = await client.send(request, stream=True)
                    except httpx.HTTPError as exc:
                        flag, sent[0] = _error_flag(exc)
                        decision = after_error(flag, self._attempt(settings, method, more,
                                               sent[0], body, first))  # fmt: skip
                        upstream.done(peer, failed=True)
                        self.stats[f"upstream_{flag}"] += 1
                        if not decision.retry:
                            raise _Answer(decision.status or 502) from None
                        last_status = decision.status or 502
                        continue
                    try:
                        decision = after_status(
                            response.status_code,
                            self._attempt(settings, method, more, True, body, first),
                        )
                        if decision.retry:
                            upstream.done(peer, failed=decision.failed, retry=not decision.failed)
                            self.stats[f"next_{response.status_code}"] += 1
                            continue
                        body_read.set()
                        try:
                            await self._relay(response, send)
                        except httpx.HTTPError:
                            # nginx frees the peer as a success when the body breaks off
                            # (ngx_http_upstream_finalize_request); the client's
                            # connection is closed to show the response is cut short
                            upstream.done(peer, elapsed=time.monotonic() - started)
                            self.stats["upstream_broke_body"] += 1
                            raise
                    finally:
                        await response.aclose()
                    upstream.done(peer, elapsed=time.monotonic() - started)
                    return
        except NoLiveUpstreams:  # TriesExhausted too: every allowed try failed
            raise _Answer(last_status) from None
        raise _Answer(last_status)

    def _attempt(
        self,
        settings: ProxySettings,
        method: str,
        more: bool,
        sent: bool,
        body: RequestBody,
        first: float,
    ) -> Attempt:
        return Attempt(
            next_upstream=settings.next_upstream,
            method=method,
            more_tries=more,
            request_sent=sent and not body.empty,
            replayable=body.replayable or body.empty,
            timeout=settings.next_upstream_timeout,
            elapsed=time.monotonic() - first,
        )

    def _request(
        self,
        route: Route,
        settings: ProxySettings,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        host: str,
        port: int,
    ) -> httpx.Request:
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.send_timeout,
            pool=settings.connect_timeout,
        )
        url = httpx.URL(scheme=route.scheme, host=host, port=port, raw_path=route.uri.encode())
        content = None if body.empty else body.stream()
        return httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": timeout.as_dict()}
        )

    async def _relay(self, response: httpx.Response, send: Send) -> None:
        """Stream the upstream response to the client as it arrives (bounded memory)."""
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers(response.headers.raw),
            }
        )
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _addresses_upstream(route: Route) -> Upstream:
    """nginx's group for a target that names no upstream block: every address the name
    resolved to (or the literal address), weight 1, ``max_fails=1``, ``fail_timeout=10``,
    fresh for each request, so the first address is tried first and an error moves on to
    the next (``ngx_http_upstream_create_round_robin_peer``)."""
    if not route.addresses:
        raise _Answer(502)
    servers = [
        Server(f"[{a}]:{route.port}" if ":" in a else f"{a}:{route.port}")
        for a in dict.fromkeys(route.addresses)
    ]
    return Upstream(servers, name=route.host or "")


def _tries(upstream: Upstream) -> int:
    """nginx's initial ``pc->tries``: the peers not marked down (primaries and backups)."""
    return sum(1 for p in upstream.peers if not p.down)


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


async def _send_status(send: Send, status: int) -> None:
    reason = _REASONS.get(status, "Error")
    body = f"{status} {reason}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_app(
    config: NginxConfig,
    *,
    sessions: AsyncSessionStore | None = None,
    session_header: str = "X-Session-Id",
    **options: Any,
) -> ASGIApp:
    """The proxy app; with ``sessions`` (a shared store) each client gets an lbkit session
    whose id reaches the backends in ``session_header`` (off by default)."""
    if sessions is None:
        return ProxyApp(config, **options)
    proxy = ProxyApp(config, session_header=session_header, **options)
    return ASGISessionMiddleware(proxy, sessions)
