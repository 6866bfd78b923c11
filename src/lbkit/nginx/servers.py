"""``parse_servers``: nginx ``server { ... }`` blocks -> :class:`~lbkit.Router`."""

from __future__ import annotations

from lbkit.errors import ConfigError
from lbkit.nginx.durations import parse_duration
from lbkit.nginx.lexer import Directive, parse_directives
from lbkit.nginx.upstream import upstream_from_directive
from lbkit.routing.names import ServerNames
from lbkit.routing.router import Router, ServerBlock
from lbkit.upstream import Upstream

__all__ = ["SERVER_DIRECTIVES", "parse_servers"]

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


def _parse_return(d: Directive) -> tuple[int, str | None]:
    args = d.args
    if not 1 <= len(args) <= 2:
        raise ConfigError('invalid number of arguments in "return" directive', line=d.line)
    if len(args) == 1 and not args[0].isdigit():
        return 302, args[0]  # "return URL"
    if not args[0].isdigit() or not 0 <= int(args[0]) <= 999:
        raise ConfigError(f'invalid return code "{args[0]}": expected 0..999', line=d.line)
    return int(args[0]), (args[1] if len(args) == 2 else None)


def _parse_server(d: Directive, index: int) -> ServerBlock:
    names: list[str] = []
    default = False
    target: str | None = None
    ret: tuple[int, str | None] | None = None
    resolver: tuple[str, ...] = ()
    valid: int | None = None
    assert d.block is not None
    for item in d.block:
        if item.name == "listen":
            if not item.args:
                raise ConfigError('invalid number of arguments in "listen"', line=item.line)
            default = default or any(a in ("default_server", "default") for a in item.args[1:])
        elif item.name == "server_name":
            if not item.args:
                raise ConfigError('invalid number of arguments in "server_name"', line=item.line)
            names.extend(item.args)
        elif item.name == "return":
            if ret is None:
                ret = _parse_return(item)
        elif item.name == "resolver":
            if not item.args:
                raise ConfigError('invalid number of arguments in "resolver"', line=item.line)
            resolver = tuple(a for a in item.args if "=" not in a)
            for a in item.args:
                if a.startswith("valid="):
                    valid = parse_duration(a[6:])
                    if valid is None:
                        raise ConfigError(f'invalid parameter "{a}"', line=item.line)
        elif item.name == "location":
            if item.block is None:
                raise ConfigError('"location" needs a block', line=item.line)
            if item.args == ("/",):
                for inner in item.block:
                    if inner.name == "proxy_pass" and len(inner.args) == 1:
                        target = inner.args[0]
                    elif inner.name == "return" and ret is None:
                        ret = _parse_return(inner)
        elif item.name in ("resolver_timeout", *IGNORED_SERVER_DIRECTIVES):
            continue
        else:
            raise ConfigError(
                f'unknown directive "{item.name}" in server block {index}: routing understands '
                + ", ".join(SERVER_DIRECTIVES),
                line=item.line,
            )
    try:
        ServerNames[int]().add_many(names, index)  # validate the names, reporting the line
    except ConfigError as exc:
        raise ConfigError(str(exc), line=d.line) from None
    return ServerBlock(
        index=index,
        names=tuple(names),
        default=default,
        target=target,
        return_=ret,
        resolver=resolver,
        resolver_valid=valid,
        line=d.line,
    )


def parse_servers(text: str) -> Router:
    """Build a :class:`~lbkit.Router` from nginx ``server { ... }`` blocks.

    The text may hold ``upstream`` blocks too (or everything inside ``http { ... }``); a
    route whose ``proxy_pass`` names one of them carries that :class:`~lbkit.Upstream`.
    Understood per server: ``listen`` (``default_server``), ``server_name``, ``return``,
    ``resolver``, and ``proxy_pass`` / ``return`` inside ``location /``; other locations and
    unknown directives inside locations are ignored; unknown server-level directives raise
    :class:`~lbkit.ConfigError` naming them. All blocks are taken to share one listen socket.
    """
    if not isinstance(text, str):
        raise ConfigError(f"parse_servers takes str, not {type(text).__name__}")
    directives = parse_directives(text)
    if len(directives) == 1 and directives[0].name == "http" and directives[0].block is not None:
        directives = directives[0].block
    servers: list[ServerBlock] = []
    upstreams: dict[str, Upstream] = {}
    for d in directives:
        if d.name == "server" and d.block is not None and not d.args:
            servers.append(_parse_server(d, len(servers)))
        elif d.name == "upstream" and d.block is not None:
            up = upstream_from_directive(d)
            upstreams[up.name] = up
        else:
            raise ConfigError(
                f'unexpected "{d.name}": expected "server {{ ... }}" or "upstream NAME {{ ... }}"',
                line=d.line,
            )
    if not servers:
        raise ConfigError("no server blocks found")
    return Router(servers, upstreams)
