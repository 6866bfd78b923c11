"""From a request to its backend, as nginx: Host -> server block -> location -> proxy_pass
-> an upstream's peer or a resolved name (the sans-I/O plan and its report-back).

:func:`plan_route` makes every decision that needs no I/O: the block and location, the
rendered ``proxy_pass`` target and the URI sent upstream, and the peer when the target
names an ``upstream`` of the config (the peer is counted as started: report the outcome
with :meth:`Route.done`). What is left is a name to resolve (:attr:`Route.resolve_name`):
:func:`route_request` (blocking) and :func:`aroute_request` (asyncio) resolve it with a
:class:`~lbkit.routing.Resolver` / :class:`~lbkit.routing.AsyncResolver`.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Protocol

import attrs

from lbkit.errors import RequestError, UsageError
from lbkit.routing._address import is_address, port_number, split_host_port
from lbkit.routing._locations import Location, rewrite_uri
from lbkit.routing._router import RouteMatch, Router
from lbkit.routing._template import expand
from lbkit.routing._uri import normalize_uri
from lbkit.upstream import Upstream

__all__ = [
    "Request",
    "ResolverPool",
    "Route",
    "aroute_request",
    "plan_route",
    "route_request",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}


@attrs.define(eq=False)
class Route:
    """Where one request goes, and the report-back of its outcome.

    ``status``/``text`` are set when the block or location answers itself (``return``);
    else ``target`` is the rendered ``proxy_pass`` and ``uri`` what is sent upstream.
    ``upstream``/``peer`` are set when the target names an upstream block; ``host`` and
    ``port`` are what to connect to and ``address`` its resolved IP. ``state`` is
    ``"pending"``, ``"done"`` or ``"failed"``.
    """

    match: RouteMatch
    location: Location | None = None
    status: int | None = None
    text: str | None = None
    target: str | None = None
    scheme: str = "http"
    uri: str = "/"
    upstream: Upstream | None = None
    peer: Any = None
    host: str | None = None
    port: int = 80
    address: str | None = None
    #: Every address the name resolved to, in the order to try them (``address`` is the
    #: first); nginx makes a round-robin group of them for the request and, on an error,
    #: tries the next one (``ngx_http_upstream_create_round_robin_peer``).
    addresses: list[str] = attrs.field(factory=list)
    state: str = "pending"
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)
    #: The evaluated hash key of ``upstream`` (None: the method takes none).
    key: str | None = None
    #: The variables the target and key were rendered with (``$host``, captures, ...).
    variables: dict[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def resolve_name(self) -> str | None:
        """The host name still to resolve (None: an IP, or nothing to connect to)."""
        if self.host is None or self.address is not None:
            return None
        return self.host

    def resolved(self, addresses: list[str]) -> None:
        """Keep the resolved addresses; ``address`` is the first, the one tried first."""
        if not addresses:
            raise RequestError(f"no address for {self.host!r}")
        self.addresses = list(addresses)
        self.address = self.addresses[0]

    def done(self, *, failed: bool = False, elapsed: float | None = None) -> None:
        """Report the outcome once: to the upstream (passive health, least_conn) if any."""
        with self._lock:
            if self.state != "pending":
                raise UsageError(f"route to {self.target!r} was already reported ({self.state})")
            self.state = "failed" if failed else "done"
        if self.upstream is not None and self.peer is not None:
            self.upstream.done(self.peer, failed=failed, elapsed=elapsed)


def _split_target(target: str) -> tuple[str, str, str]:
    scheme, sep, rest = target.partition("://")
    if not sep:
        raise RequestError(f"proxy_pass target {target!r} has no scheme (http://...)")
    hostport, slash, path = rest.partition("/")
    return scheme.lower(), hostport, (slash + path)


def _host_port(hostport: str, default: int) -> tuple[str, int]:
    host, port = split_host_port(hostport)
    if port is None:  # (a bare ":" is an empty port: nginx's ngx_atoi refuses it)
        return host, default
    number = port_number(port)
    if number is None:
        raise RequestError(f"invalid port in proxy_pass target {hostport!r}")
    return host, number


@attrs.frozen(slots=True)
class Request:
    """What routing needs of a request: its Host header (``None``: none), the normalised
    path (nginx's ``$uri``), the query string, the listen socket it came in on, the
    client's address, the request line's target as sent (``$request_uri``), and any more
    variables a ``hash`` key or ``proxy_pass`` may use (e.g. a
    :class:`lbkit.nginx.variables.RequestVariables`, for ``$cookie_``/``$arg_``/``$http_``)."""

    host: str | bytes | None
    path: str = "/"
    query: str = ""
    listen: str | tuple[str, int] | None = None
    client_addr: str | None = None
    raw_target: str | None = None
    variables: Mapping[str, str] | None = attrs.field(default=None, eq=False)

    @classmethod
    def from_target(
        cls,
        host: str | bytes | None,
        target: str,
        *,
        listen: str | tuple[str, int] | None = None,
        client_addr: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Request:
        """From the request line's target (``/a//b/../c?x=1``), normalised as nginx's
        ``$uri`` and ``$args`` (:class:`~lbkit.RequestError` where nginx answers 400).
        ``variables`` are more nginx variables of the request (``$cookie_id``...)."""
        path, query = normalize_uri(target)
        return cls(host, path, query, listen, client_addr, target, variables)


def plan_route(router: Router, request: Request, *, pick: bool = True) -> Route:
    """Every decision for one request that needs no I/O (see the module docstring).

    With ``pick=False`` a target naming an upstream is not given a peer: ``route.upstream``
    and ``route.key`` are set and the caller takes peers itself, e.g. with
    ``route.upstream.attempts_async(key=route.key, ...)`` to retry as
    ``proxy_next_upstream`` does (``route.host`` stays None; ``route.done()`` reports
    nothing to the upstream).

    Raises :class:`~lbkit.InvalidHostError` (nginx: 400), :class:`~lbkit.RegexLimitError`,
    :class:`~lbkit.NoLiveUpstreams` (502) or :class:`~lbkit.RequestError`.
    """
    path, query, client_addr = request.path, request.query, request.client_addr
    match = router.match(request.host, listen=request.listen)
    server = match.server
    location: Location | None = None
    extra: Any = request.variables or {}  # read only: ChainMap writes to the first map
    variables: Any = collections.ChainMap(dict(match.variables), extra)
    raw = request.raw_target or path + (f"?{query}" if query else "")
    variables.update(request_uri=raw, uri=path, args=query)
    if client_addr is not None:
        variables["remote_addr"] = client_addr
    proxy_pass = server.target
    returned = server.return_
    table = server.locations
    if table is not None:
        found = table.find(path)  # type: ignore[attr-defined]
        if found is None:
            return Route(match, None, 404)
        location = found.location
        if found.redirect:
            return Route(match, location, 301, path + "/")
        if found.captures or found.named:
            variables.update({str(i): "" for i in range(1, 10)})
            variables.update({str(i): c for i, c in enumerate(found.captures[:9], start=1)})
            variables.update(found.named)
        proxy_pass = location.proxy_pass
        returned = location.return_ if location.return_ is not None else server.return_
    if returned is not None and (proxy_pass is None or server.return_ is not None):
        code, text = returned
        rendered = None if text is None else expand(text, variables, strict=False)
        return Route(match, location, code, rendered)
    if proxy_pass is None:
        return Route(match, location, 404)
    target = expand(proxy_pass, variables, strict=False)
    scheme, hostport, _ = _split_target(target)
    raw_uri = variables["request_uri"]
    uri = rewrite_uri(location, target, path, raw_uri, query) if location is not None else raw_uri
    route = Route(match, location, None, None, target, scheme, uri, variables=variables)
    upstream = router.upstreams.get(hostport)
    if upstream is not None:
        key_template = getattr(upstream.method, "key", None)
        key = expand(key_template, variables, strict=False) if key_template else None
        route.upstream = upstream
        route.key = key
        if not pick:
            return route
        route.peer = upstream.pick(key=key, client_addr=client_addr)
        hostport = route.peer.name
    route.host, route.port = _host_port(hostport, _DEFAULT_PORTS.get(scheme, 80))
    if is_address(route.host):
        route.address = route.host
        route.addresses = [route.host]
    return route


class _Resolving(Protocol):
    def resolve(self, name: str) -> Any: ...


class ResolverPool:
    """One resolver per distinct ``resolver`` line of the config's blocks, made on demand.

    ``factory(nameservers, valid, ipv6)`` builds one (e.g. a :class:`~lbkit.routing.Resolver`
    or an :class:`~lbkit.routing.AsyncResolver`); ``default`` serves blocks without a
    ``resolver`` line. Thread-safe.
    """

    def __init__(
        self, factory: Callable[..., _Resolving], default: _Resolving | None = None
    ) -> None:
        self._factory = factory
        self._default = default
        self._lock = threading.Lock()
        self._made: dict[Hashable, _Resolving] = {}

    def for_route(self, route: Route) -> _Resolving:
        """The resolver that serves this route's server block."""
        server = route.match.server
        if not server.resolver:
            if self._default is None:
                raise RequestError(
                    f"cannot resolve {route.host!r}: server block {server.index} has no "
                    "resolver and no default resolver was given"
                )
            return self._default
        key = (server.resolver, server.resolver_valid, server.resolver_ipv6)
        with self._lock:
            made = self._made.get(key)
            if made is None:
                made = self._made[key] = self._factory(
                    list(server.resolver), server.resolver_valid, server.resolver_ipv6
                )
        return made


def _pool(resolver: Any) -> ResolverPool:
    if isinstance(resolver, ResolverPool):
        return resolver
    return ResolverPool(lambda *a: resolver, resolver)


def route_request(router: Router, request: Request, *, resolver: Any = None) -> Route:
    """:func:`plan_route`, then resolve the name with ``resolver`` (a Resolver or a
    :class:`ResolverPool`). On a resolution error the picked peer is reported failed."""
    route = plan_route(router, request)
    name = route.resolve_name
    if name is not None:
        with _failing(route):
            route.resolved(_pool(resolver).for_route(route).resolve(name))
    return route


async def aroute_request(router: Router, request: Request, *, resolver: Any = None) -> Route:
    """The asyncio twin of :func:`route_request` (``resolver``: an AsyncResolver or a
    pool of them)."""
    route = plan_route(router, request)
    name = route.resolve_name
    if name is not None:
        with _failing(route):
            route.resolved(await _pool(resolver).for_route(route).resolve(name))
    return route


@contextlib.contextmanager
def _failing(route: Route) -> Iterator[None]:
    """Report the route failed if resolving raises (the peer must not stay counted)."""
    try:
        yield
    except BaseException:
        route.done(failed=True)
        raise
