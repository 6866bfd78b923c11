"""``Router``: Host header -> nginx server block, with captures and expanded targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from lbkit.errors import ConfigError
from lbkit.routing.host import normalize_host
from lbkit.routing.names import NameMatch, ServerNames
from lbkit.routing.template import expand
from lbkit.upstream import Upstream

__all__ = ["RouteMatch", "Router", "ServerBlock"]


@attrs.frozen(slots=True)
class ServerBlock:
    """One ``server { ... }`` block as far as routing needs it.

    ``names`` are the ``server_name`` arguments as written (none means the empty name);
    ``target`` is the ``proxy_pass`` of ``location /`` (a template); ``return_`` is a
    ``return`` directive's ``(code, text)``; ``resolver`` the ``resolver`` addresses.
    """

    index: int
    names: tuple[str, ...] = ()
    default: bool = False
    target: str | None = None
    return_: tuple[int, str | None] | None = None
    resolver: tuple[str, ...] = ()
    resolver_valid: int | None = None
    line: int = 0

    @property
    def server_name(self) -> str:
        """nginx's primary server name: ``$host`` when a request has no Host header."""
        if not self.names:
            return ""
        first = self.names[0]
        if first.startswith("."):
            return first[1:].lower()
        return first if first.startswith("~") else first.lower()


@attrs.frozen(slots=True)
class RouteMatch:
    """The outcome of routing one request.

    ``index`` is the 0-based position of the chosen ``server {}`` block, ``captures`` the
    numbered captures of the regex name that matched (empty otherwise), ``named`` its named
    captures, ``host`` nginx's ``$host``, ``name`` the server_name entry that matched
    (``None`` when the default server was used).
    """

    index: int
    server: ServerBlock
    host: str
    captures: tuple[str, ...] = ()
    named: dict[str, str] = attrs.field(factory=dict)
    name: str | None = None
    upstream: Upstream | None = None

    @property
    def variables(self) -> dict[str, str]:
        """Variables a template can use: ``host``, ``1``..``9`` and the named captures."""
        out = {"host": self.host}
        out.update({str(i): c for i, c in enumerate(self.captures[:9], start=1)})
        out.update(self.named)
        return out

    def expand(self, template: str, extra: Mapping[str, str] | None = None) -> str:
        """Expand an nginx template (``http://host_$3``) with this match's variables."""
        variables = self.variables
        if extra:
            variables.update(extra)
        return expand(template, variables)

    @property
    def target(self) -> str | None:
        """The server block's ``proxy_pass`` with the variables expanded."""
        if self.server.target is None:
            return None
        return self.expand(self.server.target)


class Router:
    """Chooses a server block for a Host header the way nginx does on one listen socket.

    ``upstreams`` maps upstream names to :class:`~lbkit.Upstream` objects; a match whose
    expanded ``proxy_pass`` host names one of them carries it as ``match.upstream``.
    """

    def __init__(
        self, servers: Sequence[ServerBlock], upstreams: Mapping[str, Upstream] | None = None
    ) -> None:
        if not servers:
            raise ConfigError("a router needs at least one server block")
        self.servers: tuple[ServerBlock, ...] = tuple(servers)
        self.upstreams: dict[str, Upstream] = dict(upstreams or {})
        defaults = [s for s in self.servers if s.default]
        if len(defaults) > 1:
            raise ConfigError(
                f"a duplicate default server (server blocks {defaults[0].index} and "
                f"{defaults[1].index})",
                line=defaults[1].line,
            )
        self.default: ServerBlock = defaults[0] if defaults else self.servers[0]
        self.names: ServerNames[int] = ServerNames()
        for server in self.servers:
            self.names.add_many(server.names or ("",), server.index)

    def match(self, host: str | bytes | None) -> RouteMatch:
        """Route a request by its Host header (``None``: the request had none).

        Raises :class:`~lbkit.InvalidHostError` where nginx answers 400.
        """
        if host is None:
            found: NameMatch[int] | None = self.names.find("")
            server = self.servers[found.value] if found else self.default
            return self._result(server, server.server_name, found)
        normalized = normalize_host(host)
        found = self.names.find(normalized)
        server = self.servers[found.value] if found else self.default
        return self._result(server, normalized, found)

    def _result(self, server: ServerBlock, host: str, found: NameMatch[int] | None) -> RouteMatch:
        match = RouteMatch(
            index=server.index,
            server=server,
            host=host,
            captures=found.captures if found else (),
            named=dict(found.named) if found else {},
            name=found.name if found else None,
        )
        if server.target is not None and self.upstreams:
            upstream = self.upstreams.get(_target_host(match.expand(server.target)))
            if upstream is not None:
                match = attrs.evolve(match, upstream=upstream)
        return match

    def __repr__(self) -> str:
        return f"<Router servers={len(self.servers)} names={len(self.names)}>"


def _target_host(target: str) -> str:
    rest = target.split("://", 1)[-1]
    return rest.split("/", 1)[0]
