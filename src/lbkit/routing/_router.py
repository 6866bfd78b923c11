"""``Router``: Host header -> nginx server block, with captures and expanded targets."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

import attrs

from lbkit.errors import ConfigError, RequestError
from lbkit.routing._host import MAX_HEADER_LINE, ascii_lower, normalize_host
from lbkit.routing._listen import WILDCARDS, Listen, show, socket_key
from lbkit.routing._names import NameMatch, ServerNames
from lbkit.routing._template import expand
from lbkit.upstream import Upstream

__all__ = ["RouteMatch", "Router", "ServerBlock"]


@attrs.frozen(slots=True)
class ServerBlock:
    """One ``server { ... }`` block as far as routing needs it.

    ``names`` are the ``server_name`` arguments as written (none means the empty name);
    ``target`` is the ``proxy_pass`` of ``location /`` (a template); ``return_`` is a
    ``return`` directive's ``(code, text)``; ``resolver`` the ``resolver`` addresses;
    ``listens`` its ``listen`` sockets (none: ``*:80``, default when ``default`` is set);
    ``locations`` its ``location`` blocks (a :class:`~lbkit.routing.Locations`, or None).
    """

    index: int
    names: tuple[str, ...] = ()
    default: bool = False
    target: str | None = None
    return_: tuple[int, str | None] | None = None
    resolver: tuple[str, ...] = ()
    resolver_valid: int | None = None
    line: int = 0
    listens: tuple[Listen, ...] = ()
    resolver_ipv6: bool = True
    locations: object | None = None
    name_lines: tuple[int, ...] = ()

    @property
    def server_name(self) -> str:
        """nginx's primary server name: ``$host`` when a request has no Host header."""
        if not self.names:
            return ""
        first = self.names[0]
        if first.startswith("."):
            return ascii_lower(first[1:])
        return first if first.startswith("~") else ascii_lower(first)


@attrs.frozen(slots=True)
class RouteMatch:
    """The outcome of routing one request.

    ``index`` is the 0-based position of the chosen ``server {}`` block, ``captures`` the
    numbered captures of the regex name that matched (empty otherwise), ``named`` its named
    captures, ``host`` nginx's ``$host``, ``name`` the server_name entry that matched
    (``None`` when the default server was used), ``listen`` the socket's table
    (``0.0.0.0:80``).
    """

    index: int
    server: ServerBlock
    host: str
    captures: tuple[str, ...] = ()
    named: dict[str, str] = attrs.field(factory=dict)
    name: str | None = None
    upstream: Upstream | None = None
    listen: str = ""

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


class _Table:
    """The server blocks of one listen socket: their names and the default server."""

    __slots__ = ("default", "lookup", "names", "servers", "where")

    def __init__(self, where: str, regex_engine: str) -> None:
        self.where = where
        self.lookup = True
        self.servers: list[ServerBlock] = []
        self.default: ServerBlock | None = None
        self.names: ServerNames[int] = ServerNames(where=where, regex_engine=regex_engine)


class Router:
    """Chooses a server block for a Host header the way nginx does.

    Blocks are grouped by listen socket as nginx does: a request is matched against the
    blocks of its socket's address and port, or of ``*:port`` when no block listens on
    that address (``default_server`` per socket; else the socket's first block). A block
    without ``listen`` is on ``*:80``. ``upstreams`` maps upstream names to
    :class:`~lbkit.Upstream` objects; a match whose expanded ``proxy_pass`` host names one
    of them carries it as ``match.upstream``. ``hostname`` replaces ``$hostname`` in
    server names (default: this machine's name, lowercased); ``max_line`` is nginx's
    header-line bound; ``regex_engine`` is ``"auto"`` (PCRE2 when installed), ``"pcre2"``
    or ``"re"``. ``warnings`` lists nginx's warnings (conflicting server names) with lines.

    Read-only once built: safe to share between threads.
    """

    def __init__(
        self,
        servers: Sequence[ServerBlock],
        upstreams: Mapping[str, Upstream] | None = None,
        *,
        hostname: str | None = None,
        max_line: int = MAX_HEADER_LINE,
        regex_engine: str = "auto",
    ) -> None:
        if not servers:
            raise ConfigError("a router needs at least one server block")
        if isinstance(max_line, bool) or not isinstance(max_line, int) or max_line < 16:
            raise ConfigError(f"invalid max_line={max_line!r}: expected bytes >= 16")
        self.max_line = max_line
        host_name = (socket.gethostname() if hostname is None else hostname).lower()
        self.servers: tuple[ServerBlock, ...] = tuple(_with_hostname(s, host_name) for s in servers)
        self.upstreams: dict[str, Upstream] = dict(upstreams or {})
        self.warnings: list[str] = []
        for server in self.servers:
            lines = server.name_lines or (server.line,) * len(server.names)
            for name, line in zip(server.names, lines, strict=True):
                if "/" in name:  # ngx_http_core_server_name warns, and keeps the name
                    self.warnings.append(
                        f'server name "{name}" has suspicious symbols (line {line})'
                    )
        self._tables: dict[tuple[str, int], _Table] = {}
        for server in self.servers:
            listens = server.listens or (Listen("*", 80, server.default),)
            seen: set[tuple[str, int]] = set()
            for listen in listens:
                if listen.key in seen:
                    raise ConfigError(f"a duplicate listen {show(listen.key)}", line=server.line)
                seen.add(listen.key)
                table = self._tables.get(listen.key)
                if table is None:
                    table = self._tables[listen.key] = _Table(show(listen.key), regex_engine)
                table.servers.append(server)
                if listen.default:
                    if table.default is not None:
                        raise ConfigError(
                            f"a duplicate default server for {show(listen.key)} (server "
                            f"blocks {table.default.index} and {server.index})",
                            line=server.line,
                        )
                    table.default = server
        for table in self._tables.values():
            for server in table.servers:
                names = server.names or ("",)
                lines = server.name_lines or (server.line,) * len(names)
                for name, line in zip(names, lines, strict=True):
                    table.names.add(name, server.index, line=line)
            if table.default is None:
                table.default = table.servers[0]
            # ngx_http_optimize_servers: a socket with one block looks names up only when
            # that block's last regex name has captures (nginx's cscf->captures); else
            # every request goes to it without a regex ever running (and $1.. stay empty)
            only = table.servers[0]
            table.lookup = len(table.servers) > 1 or table.names.keeps_captures(only.index)
            if table.lookup:
                self.warnings.extend(table.names.warnings)
        first = next(iter(self._tables.values()))
        self._first = first
        self.names: ServerNames[int] = first.names
        assert first.default is not None
        self.default: ServerBlock = first.default

    @property
    def sockets(self) -> list[str]:
        """The listen sockets, as nginx prints them (``0.0.0.0:80``), in config order."""
        return [t.where for t in self._tables.values()]

    def _table(self, listen: str | tuple[str, int] | None) -> _Table:
        if listen is None:
            return self._first
        key = socket_key(listen)
        table = self._tables.get(key)
        if table is None:
            family_any = WILDCARDS[1] if key[0].startswith("[") else WILDCARDS[0]
            table = self._tables.get((family_any, key[1]))
        if table is None:
            raise RequestError(
                f"no server block listens on {show(key)}: listening on " + ", ".join(self.sockets)
            )
        return table

    def match(
        self, host: str | bytes | None, *, listen: str | tuple[str, int] | None = None
    ) -> RouteMatch:
        """Route a request by its Host header (``None``: the request had none).

        ``listen`` is the socket the request came in on (``"127.0.0.1:8080"`` or
        ``("127.0.0.1", 8080)``); ``None`` means the first socket of the config. Raises
        :class:`~lbkit.InvalidHostError` where nginx answers 400,
        :class:`~lbkit.RegexLimitError` where nginx's PCRE2 stops (connection closed).
        """
        table = self._table(listen)
        if host is None:
            found: NameMatch[int] | None = table.names.find("") if table.lookup else None
            server = self.servers[found.value] if found else table.default
            assert server is not None
            return self._result(server, server.server_name, found, table)
        normalized = normalize_host(host, max_line=self.max_line)
        found = table.names.find(normalized) if table.lookup else None
        server = self.servers[found.value] if found else table.default
        assert server is not None
        return self._result(server, normalized, found, table)

    def _result(
        self, server: ServerBlock, host: str, found: NameMatch[int] | None, table: _Table
    ) -> RouteMatch:
        match = RouteMatch(
            index=server.index,
            server=server,
            host=host,
            captures=found.captures if found else (),
            named=dict(found.named) if found else {},
            name=found.name if found else None,
            listen=table.where,
        )
        if server.target is not None and self.upstreams:
            upstream = self.upstreams.get(_target_host(match.expand(server.target)))
            if upstream is not None:
                match = attrs.evolve(match, upstream=upstream)
        return match

    def __repr__(self) -> str:
        return (
            f"<Router servers={len(self.servers)} sockets={len(self._tables)} "
            f"names={sum(len(t.names) for t in self._tables.values())}>"
        )


def _with_hostname(server: ServerBlock, hostname: str) -> ServerBlock:
    if not any(n.lower() == "$hostname" for n in server.names):
        return server
    names = tuple(hostname if n.lower() == "$hostname" else n for n in server.names)
    return attrs.evolve(server, names=names)


def _target_host(target: str) -> str:
    rest = target.split("://", 1)[-1]
    return rest.split("/", 1)[0]
