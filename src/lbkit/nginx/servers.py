"""``parse_servers``: nginx ``server { ... }`` blocks -> :class:`~lbkit.Router`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from lbkit.errors import ConfigError
from lbkit.nginx.durations import parse_duration
from lbkit.nginx.lexer import Directive, parse_directives
from lbkit.nginx.locations import locations_from_directives, parse_return
from lbkit.nginx.upstream import upstream_from_directive
from lbkit.routing._host import MAX_HEADER_LINE
from lbkit.routing._listen import Listen
from lbkit.routing._names import ServerNames
from lbkit.routing._resolution import parse_nameservers
from lbkit.routing._router import Router, ServerBlock
from lbkit.upstream import Upstream

__all__ = [
    "SERVER_DIRECTIVES",
    "as_config_bytes",
    "check_resolvable",
    "http_resolving",
    "inherit",
    "method_warnings",
    "parse_servers",
    "server_from_directive",
]

#: Server-level directives that routing uses.
SERVER_DIRECTIVES = ("listen", "server_name", "location", "return", "resolver", "resolver_timeout")
#: Server-level directives accepted and ignored (they do not change which block is chosen).
IGNORED_SERVER_DIRECTIVES = (
    "access_log",
    "add_header",
    "charset",
    "client_max_body_size",
    "error_log",
    "error_page",
    "index",
    "keepalive_timeout",
    "proxy_set_header",
    "root",
    "set_real_ip_from",
    "real_ip_header",
    "ssl_certificate",
    "ssl_certificate_key",
)


_METHODS = ("hash", "ip_hash", "least_conn", "random", "least_time", "sticky")


def method_warnings(upstream: Directive) -> list[str]:
    """nginx's "load balancing method redefined" for each method after an upstream's first
    (the last one is used)."""
    methods = [item for item in upstream.block or () if item.name in _METHODS]
    # "sticky" sets the method too (it wraps the one before it) but never warns itself
    return [
        f"load balancing method redefined in {item.where}"
        for item in methods[1:]
        if item.name != "sticky"
    ]


def _parse_resolver(item: Directive) -> tuple[tuple[str, ...], int | None, bool]:
    if not item.args:
        raise ConfigError('invalid number of arguments in "resolver"', line=item.line)
    valid: int | None = None
    ipv6 = True
    for a in item.args:
        if a.startswith("valid="):
            valid = parse_duration(a[6:])
            if valid is None:
                raise ConfigError(f'invalid parameter "{a}"', line=item.line)
        elif a.startswith("ipv6="):
            if a not in ("ipv6=on", "ipv6=off"):
                raise ConfigError(f'invalid parameter "{a}": expected ipv6=on|off', line=item.line)
            ipv6 = a == "ipv6=on"
    addresses = tuple(a for a in item.args if "=" not in a)
    if addresses:
        try:  # nginx reads each address with ngx_parse_url at start-up, port rule included
            parse_nameservers(addresses)
        except ConfigError as exc:
            raise ConfigError(f"{exc} in resolver", line=item.line) from None
    return addresses, valid, ipv6


def http_resolving(items: Sequence[Directive]) -> list[Directive]:
    """The ``http`` block's ``resolver`` and ``resolver_timeout`` (the last of each), which
    its ``server`` and ``upstream`` blocks without their own inherit."""
    found: dict[str, Directive] = {}
    for item in items:
        if item.name in ("resolver", "resolver_timeout"):
            found[item.name] = item
    return list(found.values())


def inherit(block: Directive, inherited: Sequence[Directive]) -> Directive:
    """``block`` with the ``inherited`` directives it does not set itself, first."""
    own = {item.name for item in block.block or ()}
    missing = tuple(item for item in inherited if item.name not in own)
    if not missing or block.block is None:
        return block
    return attrs.evolve(block, block=(*missing, *block.block))


def check_resolvable(up: Upstream, where: str) -> None:
    """nginx's check that an upstream with ``server NAME resolve`` has a resolver."""
    if up.resolve_servers and not any("=" not in word for word in up.resolver):
        raise ConfigError(
            f'no resolver defined to resolve names at run time in upstream "{up.name}"{where}'
        )


def server_from_directive(
    d: Directive,
    index: int,
    *,
    unknown: Callable[[Directive], None] | None = None,
    regex_engine: str = "auto",
) -> ServerBlock:
    """Build a :class:`~lbkit.ServerBlock` from a parsed ``server { ... }`` directive.

    Directives routing does not model go to ``unknown`` (kept and listed by
    ``load_config``); without it they raise :class:`~lbkit.ConfigError` naming them.
    """
    names: list[str] = []
    name_lines: list[int] = []
    listens: list[Listen] = []
    ret: tuple[int, str | None] | None = None
    resolver: tuple[str, ...] = ()
    valid: int | None = None
    ipv6 = True
    locations: list[Directive] = []
    assert d.block is not None
    for item in d.block:
        if item.name == "listen":
            listens.append(Listen.parse(item.args, line=item.line))
        elif item.name == "server_name":
            if not item.args:
                raise ConfigError('invalid number of arguments in "server_name"', line=item.line)
            names.extend(item.args)
            name_lines.extend([item.line] * len(item.args))
        elif item.name == "return":
            if ret is None:
                ret = parse_return(item)
        elif item.name == "resolver":
            resolver, valid, ipv6 = _parse_resolver(item)
        elif item.name == "location":
            if item.block is None:
                raise ConfigError('"location" needs a block', line=item.line)
            locations.append(item)
        elif item.name in ("resolver_timeout", *IGNORED_SERVER_DIRECTIVES):
            continue
        elif unknown is not None:
            unknown(item)
        else:
            raise ConfigError(
                f'unknown directive "{item.name}" in server block {index}: routing understands '
                + ", ".join(SERVER_DIRECTIVES),
                line=item.line,
            )
    for name, line in zip(names, name_lines, strict=True):
        if not name.startswith("~"):  # regexes are compiled once, by the router
            ServerNames[int]().add(name, index, line=line)
    table = (
        locations_from_directives(locations, unknown=unknown, regex_engine=regex_engine)
        if locations
        else None
    )
    found = table.find("/") if table is not None else None
    root = found.location if found is not None else None
    target = root.proxy_pass if root is not None else None
    if ret is None and root is not None and root.return_ is not None:
        ret = root.return_
    return ServerBlock(
        index=index,
        names=tuple(names),
        default=any(listen.default for listen in listens),
        target=target,
        return_=ret,
        resolver=resolver,
        resolver_valid=valid,
        line=d.line,
        listens=tuple(listens),
        resolver_ipv6=ipv6,
        locations=table,
        name_lines=tuple(name_lines),
    )


def as_config_bytes(text: str) -> str:
    """The text as nginx sees its file: bytes, one character each (UTF-8 then latin-1).

    nginx compares server names and regexes with the Host's bytes, and lbkit keeps a Host's
    bytes as latin-1 characters: a name written ``café`` (a UTF-8 file) must become the
    four bytes nginx reads, ``caf\xc3\xa9``, to match the same Hosts.
    """
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(
            "configuration text has a lone surrogate: it is not bytes a file could hold"
        ) from None


def parse_servers(
    text: str,
    *,
    hostname: str | None = None,
    max_line: int = MAX_HEADER_LINE,
    regex_engine: str = "auto",
) -> Router:
    """Build a :class:`~lbkit.Router` from nginx ``server { ... }`` blocks.

    The text may hold ``upstream`` blocks too (or everything inside ``http { ... }``); a
    route whose ``proxy_pass`` names one of them carries that :class:`~lbkit.Upstream`.
    Understood per server: ``listen`` (address, port, ``default_server``), ``server_name``
    (``$hostname`` is ``hostname``, default this machine's name), ``return``, ``resolver``
    and ``location`` blocks (their ``proxy_pass`` and ``return``); unknown server-level
    directives raise :class:`~lbkit.ConfigError` naming them (``load_config`` keeps them
    instead). ``max_line`` and ``regex_engine`` are passed to the :class:`~lbkit.Router`.
    """
    if not isinstance(text, str):
        raise ConfigError(f"parse_servers takes str, not {type(text).__name__}")
    directives = parse_directives(as_config_bytes(text))
    if len(directives) == 1 and directives[0].name == "http" and directives[0].block is not None:
        directives = directives[0].block
    servers: list[ServerBlock] = []
    upstreams: dict[str, Upstream] = {}
    warnings: list[str] = []
    resolving = http_resolving(directives)
    for d in directives:
        if d.name == "server" and d.block is not None and not d.args:
            d = inherit(d, resolving)
            servers.append(server_from_directive(d, len(servers), regex_engine=regex_engine))
        elif d.name == "upstream" and d.block is not None:
            warnings.extend(method_warnings(d))
            up = upstream_from_directive(inherit(d, resolving))
            check_resolvable(up, f" (line {d.line})")
            upstreams[up.name] = up
        elif d.name in ("resolver", "resolver_timeout"):
            continue
        else:
            raise ConfigError(
                f'unexpected "{d.name}": expected "server {{ ... }}" or "upstream NAME {{ ... }}"',
                line=d.line,
            )
    if not servers:
        raise ConfigError("no server blocks found")
    router = Router(
        servers, upstreams, hostname=hostname, max_line=max_line, regex_engine=regex_engine
    )
    router.warnings[:0] = warnings
    return router
