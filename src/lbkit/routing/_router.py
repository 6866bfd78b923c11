"""``Router``: Host header -> nginx server block, with captures and expanded targets."""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Mapping, Sequence

import attrs

from lbkit.errors import ConfigError, LbkitError, RequestError
from lbkit.routing._host import (
    CLEAN_HOST,
    CLEAN_LABEL_CHARS,
    FAST_HOST_LENGTH,
    LINE_OVERHEAD,
    LOWERCASE_CLEAN_HOST,
    MAX_HEADER_LINE,
    ascii_lower,
    is_clean_host,
    normalize_host,
)
from lbkit.routing._listen import WILDCARDS, Listen, show, socket_key
from lbkit.routing._names import (
    NO_NAMED,
    NameMatch,
    ServerNames,
    WildcardTables,
)
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


# slots=False: Router.match builds one per request, as a _Draft that becomes a RouteMatch
# (a class with slots could not take the draft's instance dict).
@attrs.frozen(slots=False)
class RouteMatch:
    """The outcome of routing one request.

    ``index`` is the 0-based position of the chosen ``server {}`` block, ``captures`` the
    numbered captures of the regex name that matched (empty otherwise), ``named`` its named
    captures (a shared, read-only empty dict when there are none), ``host`` nginx's ``$host``,
    ``name`` the server_name entry that matched (``None`` when the default server was
    used), ``listen`` the socket's table (``0.0.0.0:80``). A router hands out the same
    match object for every request to one exact name.
    """

    index: int
    server: ServerBlock
    host: str
    captures: tuple[str, ...] = ()
    named: Mapping[str, str] = NO_NAMED
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
    """The server blocks of one listen socket: their names and the default server.

    ``routes`` holds the match of every exact name, built once; ``quick`` those of them a
    raw Host header can be looked up by before normalisation (already lowercase, nothing
    for nginx to strip), ``quick_len`` the longest of these. ``deferred`` are the exact
    names whose match raises (a ``proxy_pass`` nginx refuses): built per request.
    ``clean_head`` and ``clean_tail`` are the wildcard entries a raw Host header can be
    looked up by (see Router.match): lowercase clean keys whose match is a ``_Proto``,
    as ``.example.com`` (from ``*.example.com``) and ``www.example.`` (``www.example.*``).
    """

    __slots__ = (
        "clean_head",
        "clean_tail",
        "default",
        "deferred",
        "find_wildcard",
        "head_chars",
        "head_ends",
        "lookup",
        "names",
        "protos",
        "quick",
        "quick_len",
        "routes",
        "servers",
        "where",
        "wild",
    )

    def __init__(self, where: str, regex_engine: str) -> None:
        self.where = where
        self.lookup = True
        self.servers: list[ServerBlock] = []
        self.default: ServerBlock | None = None
        self.names: ServerNames[int] = ServerNames(where=where, regex_engine=regex_engine)
        self.routes: dict[str, RouteMatch] = {}
        self.quick: dict[str, RouteMatch] = {}
        self.quick_len = 0
        self.deferred: frozenset[str] = frozenset()
        # per block whose proxy_pass has no variables: its match but for host (see
        # _with_host)
        self.protos: dict[int, _Proto] = {}
        # the names' wildcard tables with each entry's match but for host (the entry's
        # NameMatch where the block's proxy_pass has variables)
        self.wild: WildcardTables[_Proto | NameMatch[int]] | None = None
        # what a host that is no exact name looks up next: the wildcards (a lookup that
        # finds nothing when there are none); None when its exact names must be looked
        # up again (some are deferred) or names are not looked up at all
        self.find_wildcard: Callable[[str], _Proto | NameMatch[int] | None] | None = None
        # None when the raw Host is not looked up in the wildcards first (see match)
        self.clean_head: dict[str, _Proto] | None = None
        self.clean_tail: dict[str, _Proto] = {}
        self.head_ends: Collection[str] = ()
        self.head_chars: frozenset[str] = frozenset()


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

    Read-only once built (changing ``upstreams`` afterwards is not seen): safe to share
    between threads.
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
        self._host_limit = max_line - LINE_OVERHEAD
        self._fast_limit = min(self._host_limit, FAST_HOST_LENGTH)  # see normalize_host
        host_name = (socket.gethostname() if hostname is None else hostname).lower()
        self.servers: tuple[ServerBlock, ...] = tuple(_with_hostname(s, host_name) for s in servers)
        self.upstreams: dict[str, Upstream] = dict(upstreams or {})
        # the upstream of each block whose proxy_pass has no variables (else found per match)
        self._fixed_upstream: dict[int, Upstream | None] = {
            s.index: self.upstreams.get(_target_host(s.target))
            for s in self.servers
            if s.target is not None and "$" not in s.target
        }
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
                if server.target is None or "$" not in server.target:
                    upstream = self._fixed_upstream.get(server.index)
                    proto = (server.index, server, (), NO_NAMED, None, upstream, table.where)
                    table.protos[server.index] = proto
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
                self._prepare(table)
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

    def _prepare(self, table: _Table) -> None:
        """Build the matches of the exact names and the regex scan of a looked-up table."""
        limit = self._host_limit
        deferred = set()
        for key, found in table.names.exact.items():
            try:
                route = self._result(self.servers[found.value], key, found, table)
            except LbkitError:  # a proxy_pass nginx would refuse: the error comes per request
                deferred.add(key)
                continue
            table.routes[key] = route
            if len(key) <= limit and is_clean_host(key):
                table.quick[key] = route
                table.quick_len = max(table.quick_len, len(key))
        table.deferred = frozenset(deferred)
        names = table.names.wildcards

        def with_route(
            entries: Mapping[str, NameMatch[int]],
        ) -> dict[str, _Proto | NameMatch[int]]:
            out: dict[str, _Proto | NameMatch[int]] = {}
            for key, found in entries.items():
                proto = table.protos.get(found.value)
                out[key] = found if proto is None else _found_in(proto, found)
            return out

        if names.head or names.tail:
            table.wild = WildcardTables(
                with_route(names.head),
                names.head_lengths,
                with_route(names.tail),
                names.tail_lengths,
                names.head_ends,
            )
        table.names.prepare()
        if not table.deferred:
            table.find_wildcard = _no_wildcard if table.wild is None else table.wild.find
            if table.wild is not None:
                table.clean_head = _clean_entries(table.wild.head, ".{}")
                table.clean_tail = _clean_entries(table.wild.tail, "{}.")
                table.head_ends = table.wild.head_ends
                table.head_chars = frozenset(end[-1] for end in table.wild.head_ends)

    def match(
        self, host: str | bytes | None, *, listen: str | tuple[str, int] | None = None
    ) -> RouteMatch:
        """Route a request by its Host header (``None``: the request had none).

        ``listen`` is the socket the request came in on (``"127.0.0.1:8080"`` or
        ``("127.0.0.1", 8080)``); ``None`` means the first socket of the config. Raises
        :class:`~lbkit.InvalidHostError` where nginx answers 400,
        :class:`~lbkit.RegexLimitError` where nginx's PCRE2 stops (connection closed).
        """
        table = self._first if listen is None else self._table(listen)
        hit: _Proto | NameMatch[int] | bool | None = False  # False: wildcards not tried
        if type(host) is str:
            size = len(host)
            if size <= table.quick_len:
                route = table.quick.get(host)  # an exact name, as nginx would normalise it
                if route is not None:
                    return route
            if size <= self._fast_limit:
                clean_head = table.clean_head
                if clean_head is not None:
                    # A wildcard straight from the raw host. Stripping the clean label
                    # characters from its start leaves "." + the longest leading key it can
                    # match (all labels but the first; clean_head keeps that dot) if its
                    # first label is clean; likewise from its end, the longest trailing
                    # key + "." (clean_tail). A clean key after (before) a clean label makes
                    # a lowercase clean host, $host itself and no exact name (``quick``
                    # would have had it), and the lookup below would find it first; a
                    # trailing one only when no leading key ends with the host's last label
                    # (head_chars: the last character of every leading key).
                    head = host[-1:] in table.head_chars
                    if head:
                        rest = host.lstrip(CLEAN_LABEL_CHARS)
                        proto = clean_head.get(rest)
                        if proto is not None and len(rest) != size:
                            return _with_host(proto, host)
                    rest = host.rstrip(CLEAN_LABEL_CHARS)
                    proto = table.clean_tail.get(rest)
                    if (
                        proto is not None
                        and len(rest) != size
                        and not (head and host[len(rest) :] in table.head_ends)
                    ):
                        return _with_host(proto, host)
            # normalize_host's own fast path, without the call
            if size > self._fast_limit:
                normalized = normalize_host(host, max_line=self.max_line)
            elif LOWERCASE_CLEAN_HOST(host):
                # $host is the header itself, and no exact name (``quick`` holds every
                # one it can be, unless some are deferred): the wildcards next
                normalized = host
                find = table.find_wildcard
                if find is not None:
                    hit = find(host)
                    if type(hit) is tuple:
                        return _with_host(hit, host)
            elif CLEAN_HOST(host):
                normalized = host.lower()
            else:
                normalized = normalize_host(host, max_line=self.max_line)
        elif host is None:
            found = table.names.find("") if table.lookup else None
            server = self.servers[found.value] if found else table.default
            assert server is not None
            return self._result(server, server.server_name, found, table)
        else:
            normalized = normalize_host(host, max_line=self.max_line)
        found = None
        if table.lookup:
            if hit is False:
                route = table.routes.get(normalized)
                if route is not None:
                    return route
                if normalized in table.deferred:
                    found = table.names.exact[normalized]
                elif table.wild is not None:
                    hit = table.wild.find(normalized)
            if type(hit) is tuple:
                return _with_host(hit, normalized)
            if hit:
                found = hit  # type: ignore[assignment]
            elif found is None:  # (normalize_host never returns "": regexes run)
                found = table.names.find_regex(normalized)
        server = self.servers[found.value] if found else table.default
        assert server is not None
        return self._result(server, normalized, found, table)

    def _result(
        self, server: ServerBlock, host: str, found: NameMatch[int] | None, table: _Table
    ) -> RouteMatch:
        proto = table.protos.get(server.index)
        if proto is not None:
            return _with_host(proto if found is None else _found_in(proto, found), host)
        index, where, target = server.index, table.where, server.target
        assert target is not None  # (a block without proxy_pass has a proto)
        if found is None:
            match = RouteMatch(index, server, host, listen=where)
        else:
            match = RouteMatch(
                index, server, host, found.captures, found.named, found.name, None, where
            )
        upstream = (
            self.upstreams.get(_target_host(match.expand(target))) if self.upstreams else None
        )
        return match if upstream is None else attrs.evolve(match, upstream=upstream)

    def __repr__(self) -> str:
        return (
            f"<Router servers={len(self.servers)} sockets={len(self._tables)} "
            f"names={sum(len(t.names) for t in self._tables.values())}>"
        )


#: A RouteMatch but for its host, in _Draft's order: index, server, captures, named,
#: name, upstream, listen.
_Proto = tuple[
    int, ServerBlock, tuple[str, ...], Mapping[str, str], str | None, Upstream | None, str
]


class _Draft:
    """A :class:`RouteMatch` being built, on a per-request path: a plain class takes its
    attributes cheaply, where the frozen class refuses them (its own ``__init__`` costs
    almost three times as much). :func:`_with_host` fills one, then makes it the
    RouteMatch it is by ``__class__`` assignment (two classes without slots: the same
    layout, the same instance dict), before anyone sees it.
    """

    index: int
    server: ServerBlock
    host: str
    captures: tuple[str, ...]
    named: Mapping[str, str]
    name: str | None
    upstream: Upstream | None
    listen: str


def _with_host(proto: _Proto, host: str) -> RouteMatch:
    """``RouteMatch(*proto, host=host)`` (in the match's order) at a fraction of its cost."""
    draft = _Draft()
    (
        draft.index,
        draft.server,
        draft.captures,
        draft.named,
        draft.name,
        draft.upstream,
        draft.listen,
    ) = proto
    draft.host = host
    draft.__class__ = RouteMatch  # type: ignore[assignment]
    return draft  # type: ignore[return-value]


def _clean_entries(entries: Mapping[str, _Proto | NameMatch[int]], shape: str) -> dict[str, _Proto]:
    """The entries of a wildcard table with a lowercase clean key and a prebuilt match,
    keyed by ``shape`` filled with the key (its dot towards the wildcard's label)."""
    return {shape.format(k): v for k, v in entries.items() if type(v) is tuple and is_clean_host(k)}


def _no_wildcard(host: str) -> None:
    """The wildcard lookup of a table without wildcards: nothing to find."""


def _found_in(proto: _Proto, found: NameMatch[int]) -> _Proto:
    """``proto`` with the name and captures of the entry that matched."""
    index, server, _, _, _, upstream, listen = proto
    return (index, server, found.captures, found.named, found.name, upstream, listen)


def _with_hostname(server: ServerBlock, hostname: str) -> ServerBlock:
    if not any(n.lower() == "$hostname" for n in server.names):
        return server
    names = tuple(hostname if n.lower() == "$hostname" else n for n in server.names)
    return attrs.evolve(server, names=names)


def _target_host(target: str) -> str:
    rest = target.split("://", 1)[-1]
    return rest.split("/", 1)[0]
