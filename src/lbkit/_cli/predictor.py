"""What nginx does with one request: server block, rule, target, upstream and peer.

Sans-I/O: :class:`Predictor` takes a router (server blocks and upstreams) and
:class:`~lbkit.nginx.variables.ClientRequest` objects, and keeps each upstream's state
between requests, so stateful methods replay as nginx would from a fresh start (each
request completes before the next one starts).
"""

from __future__ import annotations

from typing import Any

import attrs

from lbkit import InvalidHostError, LbkitError, NoLiveUpstreams, RouteMatch, Router, Upstream
from lbkit.errors import RequestError
from lbkit.nginx.variables import ClientRequest, RequestVariables, render

__all__ = ["Prediction", "Predictor", "request_from_json", "rule_of"]


def rule_of(match: RouteMatch) -> str:
    """Which kind of server_name rule chose the block: exact, wildcard, regex or default."""
    name = match.name
    if name is None:
        return "default"
    if name.startswith("~"):
        return "regex"
    if name.startswith((".", "*.")) or name.endswith(".*"):
        return "wildcard"
    return "exact"


def _target_host(target: str) -> str:
    rest = target.split("://", 1)[-1]
    return rest.split("/", 1)[0]


@attrs.frozen
class Prediction:
    """The outcome for one request (``server`` is the block's 0-based index in config
    order; ``error`` and ``status`` are set when nginx would answer an error instead)."""

    server: int | None = None
    line: int | None = None
    rule: str | None = None
    name: str | None = None
    host: str | None = None
    captures: tuple[str, ...] = ()
    target: str | None = None
    upstream: str | None = None
    peer: str | None = None
    key: str | None = None
    location: str | None = None
    returns: tuple[int, str | None] | None = None
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``lbkit predict --json`` writes."""
        out: dict[str, Any] = {
            "server": self.server,
            "line": self.line,
            "rule": self.rule,
            "name": self.name,
            "host": self.host,
            "captures": list(self.captures),
            "target": self.target,
            "upstream": self.upstream,
            "peer": self.peer,
        }
        if self.location is not None:
            out["location"] = self.location
        if self.key is not None:
            out["key"] = self.key
        if self.returns is not None:
            out["return"] = list(self.returns)
        if self.error is not None:
            out["status"] = self.status
            out["error"] = self.error
        return out


class Predictor:
    """Predicts nginx's choices for a sequence of requests (not thread-safe: one replay)."""

    def __init__(self, router: Router) -> None:
        # match on the blocks alone: the targets are rendered here, with request variables
        self._router = Router(router.servers)
        self.upstreams: dict[str, Upstream] = dict(router.upstreams)

    def _match(self, request: ClientRequest) -> RouteMatch:
        if request.port is None:
            return self._router.match(request.host)
        try:
            return self._router.match(request.host, listen=f"*:{request.port}")
        except RequestError:
            # no block on *:PORT: the first socket with that port (e.g. 127.0.0.1:PORT)
            for socket in self._router.sockets:
                if socket.rpartition(":")[2] == str(request.port):
                    return self._router.match(request.host, listen=socket)
            raise

    def predict(self, request: ClientRequest, *, key: str | None = None) -> Prediction:
        """Route one request (server block, then location) and, when it is proxied to an
        upstream, pick its peer. ``key``, when given, is the evaluated ``hash`` key to use
        instead of evaluating the upstream's key expression from the request."""
        try:
            match = self._match(request)
        except (InvalidHostError, RequestError) as exc:
            return Prediction(status=400, error=str(exc))
        server = match.server
        port = request.port or int(match.listen.rpartition(":")[2] or 80)
        captures, named = match.captures, dict(match.named)
        template, returns, location = server.target, server.return_, None
        locations = getattr(server, "locations", None)
        if returns is None and locations is not None:
            path = RequestVariables(request)["uri"]
            hit = locations.find(path)
            if hit is None:
                template = None  # nginx serves files from root: nothing proxied
            else:
                loc = hit.location
                location = str(loc.display)
                template, returns = loc.proxy_pass, loc.return_
                if hit.redirect:
                    returns = (301, None)
                if hit.captures or hit.named:
                    captures = hit.captures
                    named.update(hit.named)
        variables = RequestVariables(
            request,
            host=match.host,
            captures=captures,
            named=named,
            server_name=server.server_name,
            port=port,
        )
        found = Prediction(
            server=match.index,
            line=server.line or None,
            rule=rule_of(match),
            name=match.name,
            host=match.host,
            captures=captures,
            location=location,
        )
        if returns is not None:
            code, text = returns
            rendered = None if text is None else render(text, variables)
            return attrs.evolve(found, returns=(code, rendered))
        if template is None:
            return found
        target = render(template, variables)
        found = attrs.evolve(found, target=target)
        upstream = self.upstreams.get(_target_host(target))
        if upstream is None:
            return found
        found = attrs.evolve(found, upstream=upstream.name)
        return self._pick(found, upstream, request, variables, key)

    def _pick(
        self,
        found: Prediction,
        upstream: Upstream,
        request: ClientRequest,
        variables: RequestVariables,
        given_key: str | None,
    ) -> Prediction:
        method = upstream.method
        key = None
        if method.needs_key:
            expression = str(getattr(method, "key", ""))
            key = given_key if given_key is not None else render(expression, variables)
        client = request.client if method.needs_client_addr else None
        try:
            peer = upstream.pick(key=key, client_addr=client)
        except NoLiveUpstreams as exc:
            return attrs.evolve(found, key=key, status=502, error=str(exc))
        except RequestError as exc:
            return attrs.evolve(found, key=key, status=400, error=str(exc))
        upstream.done(peer)
        return attrs.evolve(found, key=key, peer=peer.name)


def request_from_json(obj: object) -> ClientRequest:
    """A request from a JSON object with any of host, uri, client, port, headers, method
    (and ``key``, the evaluated hash key, which the caller takes out)."""
    if not isinstance(obj, dict):
        raise RequestError(f"a request must be a JSON object, not {obj!r}")
    obj = {k: v for k, v in obj.items() if k != "key"}
    allowed = ("host", "uri", "client", "port", "headers", "method")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise RequestError(f"unknown request field {unknown[0]!r}: expected any of {allowed}")
    try:
        return ClientRequest(**obj)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LbkitError):
            raise
        raise RequestError(f"invalid request {obj!r}: {exc}") from None
