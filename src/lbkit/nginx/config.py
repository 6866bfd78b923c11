"""``load_config``: a whole nginx.conf, read the way ``nginx -t`` reads it.

Follows ``include`` (globs sorted, relative paths from the main file's directory, as
nginx's conf prefix), reads ``events {}``, ``http {}``, its ``upstream``, ``server`` and
``map`` blocks, ``if (...)`` conditions and ``*_by_lua_block`` bodies. Directives lbkit does
not model are kept (``NginxConfig.unknown``, with their context and ``file:line:column``),
never misread; errors name ``file:line:column``. nginx's warnings (conflicting server names,
"load balancing method redefined") are in ``NginxConfig.warnings``.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from lbkit.errors import ConfigError
from lbkit.nginx.lexer import Directive, parse_directives
from lbkit.nginx.servers import (
    check_resolvable,
    http_resolving,
    inherit,
    method_warnings,
    server_from_directive,
)
from lbkit.nginx.upstream import upstream_from_directive
from lbkit.routing._host import MAX_HEADER_LINE
from lbkit.routing._regex import ServerRegex, compile_regex
from lbkit.routing._router import RouteMatch, Router, ServerBlock
from lbkit.upstream import Upstream

__all__ = ["MapBlock", "NginxConfig", "SocketRouter", "UnknownDirective", "load_config"]

#: Most files one configuration may include (a bound on globs and include loops).
MAX_FILES = 1000
#: Deepest chain of includes.
MAX_INCLUDE_DEPTH = 16
#: Most characters all the files of one configuration may hold together.
MAX_TOTAL_LENGTH = 64 * 1024 * 1024


@attrs.frozen(slots=True)
class UnknownDirective:
    """A directive lbkit keeps but does not model: where it is and what it says."""

    name: str
    args: tuple[str, ...]
    context: str
    where: str


@attrs.frozen(slots=True)
class MapBlock:
    """A ``map $source $variable { ... }`` block: exact keys, regexes in order, a default."""

    source: str
    variable: str
    default: str = ""
    exact: Mapping[str, str] = attrs.field(factory=dict)
    regexes: tuple[tuple[ServerRegex, str], ...] = ()
    hostnames: bool = False

    def lookup(self, value: str) -> str:
        """The mapped value for ``value`` (exact key, then the first matching regex)."""
        hit = self.exact.get(value if not self.hostnames else value.lower())
        if hit is not None:
            return hit
        for regex, result in self.regexes:
            if regex.search(value) is not None:
                return result
        return self.default


class SocketRouter:
    """A :class:`~lbkit.Router` bound to one listen socket: ``match(host)``."""

    def __init__(self, router: Router, socket: str) -> None:
        self.router = router
        self.socket = socket

    def match(self, host: str | bytes | None) -> RouteMatch:
        """Route a request that came in on this socket."""
        return self.router.match(host, listen=self.socket)

    def __repr__(self) -> str:
        return f"<SocketRouter {self.socket}>"


@attrs.define
class NginxConfig:
    """What ``load_config`` read: upstreams by name, a router per listen socket, and more.

    ``router`` matches on every socket (``router.match(host, listen=...)``); ``routers``
    maps each socket (``"0.0.0.0:80"``) to a :class:`SocketRouter`. ``None`` / empty when
    the config has no ``server`` block.
    """

    path: Path
    upstreams: dict[str, Upstream]
    router: Router | None
    routers: dict[str, SocketRouter]
    maps: dict[str, MapBlock]
    unknown: list[UnknownDirective]
    warnings: list[str]
    files: list[Path]
    directives: tuple[Directive, ...]


class _Loader:
    def __init__(self, main: Path) -> None:
        self.prefix = main.parent
        self.files: list[Path] = []
        self.unknown: list[UnknownDirective] = []
        self.warnings: list[str] = []
        self.total = 0

    def read(
        self, path: Path, depth: int, text: str | None = None, name: str | None = None
    ) -> tuple[Directive, ...]:
        if len(self.files) >= MAX_FILES:
            raise ConfigError(f"more than {MAX_FILES} configuration files (an include loop?)")
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfigError(f"includes nested more than {MAX_INCLUDE_DEPTH} deep at {path}")
        if text is None:
            try:
                text = path.read_bytes().decode("latin-1")  # bytes, as nginx reads them
            except OSError as exc:
                raise ConfigError(f'open() "{path}" failed ({exc.strerror})') from None
        self.total += len(text)
        if self.total > MAX_TOTAL_LENGTH:
            raise ConfigError(f"configuration files exceed {MAX_TOTAL_LENGTH} characters at {path}")
        self.files.append(path)
        return self.expand(parse_directives(text, source=name or str(path)), depth)

    def expand(self, directives: tuple[Directive, ...], depth: int) -> tuple[Directive, ...]:
        out: list[Directive] = []
        for d in directives:
            if d.name == "include" and d.block is None:
                if len(d.args) != 1:
                    raise ConfigError(f'invalid number of arguments in "include" in {d.where}')
                out.extend(self.include(d, depth))
            elif d.block and d.body is None:
                out.append(attrs.evolve(d, block=self.expand(d.block, depth)))
            else:
                out.append(d)
        return tuple(out)

    def include(self, d: Directive, depth: int) -> Iterator[Directive]:
        pattern = d.args[0]
        full = pattern if os.path.isabs(pattern) else str(self.prefix / pattern)
        if not any(c in pattern for c in "*?["):
            yield from self.read(Path(full), depth + 1)
            return
        for name in sorted(glob.glob(full)):  # nginx: glob(3), sorted; no match is fine
            if os.path.isfile(name):
                yield from self.read(Path(name), depth + 1)

    def keep(self, d: Directive, context: str) -> None:
        self.unknown.append(UnknownDirective(d.name, d.args, context, d.where))


def _map(d: Directive, engine: str) -> MapBlock:
    if len(d.args) != 2 or d.block is None:
        raise ConfigError(f'invalid number of arguments in "map" in {d.where}')
    source, variable = d.args
    if not variable.startswith("$"):
        raise ConfigError(f'invalid variable name "{variable}" in {d.where}')
    default = ""
    exact: dict[str, str] = {}
    regexes: list[tuple[ServerRegex, str]] = []
    hostnames = False
    for item in d.block:
        if item.name in ("hostnames", "volatile") and not item.args:
            hostnames = hostnames or item.name == "hostnames"
            continue
        if len(item.args) != 1:
            raise ConfigError(f"invalid number of the map parameters in {item.where}")
        key, value = item.name, item.args[0]
        if key == "default":
            default = value
        elif key.startswith("~"):
            caseless = key.startswith("~*")
            pattern = key[2:] if caseless else key[1:]
            try:
                regexes.append((compile_regex(pattern, caseless=caseless, engine=engine), value))
            except ConfigError as exc:
                raise ConfigError(f"{exc} in {item.where}") from None
        else:
            exact.setdefault(key[1:] if key.startswith("\\") else key, value)
    return MapBlock(source, variable[1:], default, exact, tuple(regexes), hostnames)


def _upstream(d: Directive, loader: _Loader) -> Upstream:
    loader.warnings.extend(method_warnings(d))
    try:
        return upstream_from_directive(d)
    except ConfigError as exc:
        raise ConfigError(f"{exc} in {d.source}") from None


def load_config(
    path: str | os.PathLike[str],
    *,
    hostname: str | None = None,
    max_line: int = MAX_HEADER_LINE,
    regex_engine: str = "auto",
    text: str | None = None,
) -> NginxConfig:
    """Read a whole nginx.conf (includes followed) into upstreams and routers.

    ``hostname``, ``max_line`` and ``regex_engine`` are passed to the
    :class:`~lbkit.Router`. ``text``: the main file's contents, already read (standard
    input, say); ``path`` then only names it in errors and relative ``include`` paths start
    from its directory. Raises :class:`~lbkit.ConfigError` naming ``file:line:column``.
    """
    main = Path(os.fspath(path)).absolute()
    loader = _Loader(main)
    tree = loader.read(main, 0, text, None if text is None else os.fspath(path))
    upstreams: dict[str, Upstream] = {}
    maps: dict[str, MapBlock] = {}
    servers: list[ServerBlock] = []
    for d in tree:
        if d.name != "http":
            if d.name != "events" or d.block is None:
                loader.keep(d, "main")
            continue
        if d.block is None:
            raise ConfigError(f'directive "http" has no opening "{{" in {d.where}')
        resolving = http_resolving(d.block)  # what server and upstream blocks inherit
        for item in d.block:
            if item.name == "upstream" and item.block is not None:
                up = _upstream(inherit(item, resolving), loader)
                check_resolvable(up, f" in {item.where}")
                if up.name in upstreams:
                    raise ConfigError(f'duplicate upstream "{up.name}" in {item.where}')
                upstreams[up.name] = up
            elif item.name == "map" and item.block is not None:
                block = _map(item, regex_engine)
                maps[block.variable] = block
            elif item.name == "server" and item.block is not None:
                index = len(servers)
                context = f"http > server #{index}"
                item = inherit(item, resolving)
                try:
                    servers.append(
                        server_from_directive(
                            item,
                            index,
                            unknown=functools.partial(_keep_in, loader, context),
                            regex_engine=regex_engine,
                        )
                    )
                except ConfigError as exc:
                    if " in /" in str(exc) or item.source is None:
                        raise
                    raise ConfigError(f"{exc} in {item.source}") from None
            elif item.name not in ("resolver", "resolver_timeout"):
                loader.keep(item, "http")
    router: Router | None = None
    routers: dict[str, SocketRouter] = {}
    if servers:
        router = Router(
            servers, upstreams, hostname=hostname, max_line=max_line, regex_engine=regex_engine
        )
        loader.warnings.extend(router.warnings)
        routers = {s: SocketRouter(router, _socket_arg(s)) for s in router.sockets}
    return NginxConfig(
        path=main,
        upstreams=upstreams,
        router=router,
        routers=routers,
        maps=maps,
        unknown=loader.unknown,
        warnings=loader.warnings,
        files=loader.files,
        directives=tree,
    )


def _keep_in(loader: _Loader, context: str, d: Directive) -> None:
    loader.keep(d, context)


def _socket_arg(shown: str) -> str:
    """``0.0.0.0:80`` (as nginx prints ``*:80``) back to a ``listen=`` argument."""
    wildcard = "0.0.0.0:"
    return "*:" + shown[len(wildcard) :] if shown.startswith(wildcard) else shown
