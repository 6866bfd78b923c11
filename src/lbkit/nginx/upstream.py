"""``parse_upstream``: one nginx ``upstream NAME { ... }`` block -> :class:`~lbkit.Upstream`.

Syntax only: what makes servers and an upstream valid is decided by the model
(:mod:`lbkit.upstream`); its errors are re-raised here with the line they come from.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from lbkit.balancers import (
    Hash,
    IpHash,
    LeastConn,
    LeastTime,
    Random,
    RoundRobin,
    Sticky,
    StickyMethod,
)
from lbkit.errors import ConfigError
from lbkit.nginx._sticky import parse_size, parse_sticky, split_sticky_server_params
from lbkit.nginx.lexer import Directive, parse_directives
from lbkit.upstream import (
    Method,
    Server,
    ServerConfigError,
    Upstream,
    ZoneSessions,
    open_zone,
    parse_count,
    parse_duration,
    server_from_params,
)

__all__ = ["UPSTREAM_DIRECTIVES", "parse_upstream", "upstream_from_directive"]

#: Directives accepted inside an upstream block.
UPSTREAM_DIRECTIVES = (
    "server",
    "hash",
    "ip_hash",
    "least_conn",
    "least_time",
    "random",
    "keepalive",
    "keepalive_requests",
    "keepalive_time",
    "keepalive_timeout",
    "zone",
    "sticky",
    "resolver",
    "resolver_timeout",
)


def _at_line(exc: ConfigError, line: int) -> ConfigError:
    message = str(exc)
    if exc.line is not None:  # already placed: drop the old suffix
        message = message.rsplit(" (line ", 1)[0]
    return ConfigError(message, line=line)


def _parse_server(
    d: Directive,
    routes: dict[str, str],
    drained: list[str],
) -> Server:
    if not d.args:
        raise ConfigError('invalid number of arguments in "server" directive', line=d.line)
    address, *params = d.args
    params, route, drain = split_sticky_server_params(d, params)
    try:
        server = server_from_params(address, params)
    except ConfigError as exc:
        raise _at_line(exc, d.line) from None
    if (route is not None or drain) and server.resolvable:
        # nginx gives every peer resolved from the name its route= and drain; lbkit keys
        # both by peer address, so it cannot yet: refuse rather than route differently
        raise ConfigError(
            f"route= and drain on a resolve server ({address[:80]}) are not supported by "
            "lbkit: give them to servers with addresses",
            line=d.line,
        )
    if route is not None:
        routes[address] = route
    if drain:
        drained.append(address)
    return server


def _parse_method(d: Directive) -> Method:
    args = d.args
    if d.name == "least_conn" and not args:
        return LeastConn()
    if d.name == "least_time" and len(args) in (1, 2):
        # nginx: the mode is an enum slot, checked after the third word
        if len(args) == 2 and args[1] != "inflight":
            raise ConfigError(
                f'invalid parameter "{args[1][:80]}" of "least_time": expected "inflight"',
                line=d.line,
            )
        if args[0] not in ("header", "last_byte"):
            raise ConfigError(
                f'invalid value "{args[0][:80]}" in "least_time": expected "header" or "last_byte"',
                line=d.line,
            )
        return LeastTime(args[0], inflight=len(args) == 2)  # type: ignore[arg-type]
    if d.name == "ip_hash" and not args:
        return IpHash()
    if d.name == "hash" and len(args) in (1, 2):
        if len(args) == 2 and args[1] != "consistent":
            raise ConfigError(
                f'invalid parameter "{args[1]}" of "hash": expected "consistent"', line=d.line
            )
        return Hash(args[0], consistent=len(args) == 2)
    if d.name == "random" and len(args) <= 2:
        if args and args[0] != "two":
            raise ConfigError(
                f'invalid parameter "{args[0]}" of "random": expected "two"', line=d.line
            )
        if len(args) == 2 and args[1] != "least_conn":
            raise ConfigError(
                f'invalid parameter "{args[1]}" of "random two": expected "least_conn"',
                line=d.line,
            )
        return Random(two=bool(args), least_conn=len(args) == 2)
    raise ConfigError(f'invalid number of arguments in "{d.name}" directive', line=d.line)


def _find_upstream_block(text: str) -> Directive:
    directives = parse_directives(text)
    blocks = [d for d in directives if d.name == "upstream"]
    others = [d for d in directives if d.name != "upstream"]
    if others:
        raise ConfigError(
            f'unexpected "{others[0].name}" directive: expected one "upstream NAME {{ ... }}" '
            "block",
            line=others[0].line,
        )
    if len(blocks) != 1:
        raise ConfigError(f"expected exactly one upstream block, found {len(blocks)}")
    block = blocks[0]
    if block.block is None or len(block.args) != 1:
        raise ConfigError('expected "upstream NAME { ... }"', line=block.line)
    return block


def parse_upstream(text: str, *, clock: Callable[[], float] | None = None) -> Upstream:
    """Build an :class:`~lbkit.Upstream` from one nginx ``upstream NAME { ... }`` block.

    Accepts ``server`` (weight, max_fails, fail_timeout, max_conns, slow_start, backup,
    down), ``hash KEY [consistent]``, ``ip_hash``, ``least_conn``, ``least_time
    header|last_byte [inflight]``, ``random [two [least_conn]]``, ``keepalive N``,
    ``zone NAME [SIZE]`` (its name is recorded as ``Upstream.zone``) and, without effect
    on the choice, the other ``keepalive_*`` directives. Anything else raises
    :class:`~lbkit.ConfigError` naming it and its line.
    ``clock`` is passed to the upstream (default :func:`time.monotonic`).
    """
    if not isinstance(text, str):
        raise ConfigError(f"parse_upstream takes str, not {type(text).__name__}")
    return upstream_from_directive(_find_upstream_block(text), clock=clock)


def _keepalive(d: Directive) -> int:
    if len(d.args) != 1:
        raise ConfigError('invalid number of arguments in "keepalive"', line=d.line)
    value = parse_count(d.args[0], 1)
    if value is None:
        raise ConfigError(
            f'invalid value "{d.args[0][:80]}" in "keepalive": expected an integer >= 1',
            line=d.line,
        )
    return value


def _resolver_words(d: Directive) -> list[str]:
    """``resolver ADDRESS... [valid=TIME] [ipv6=on|off]`` as its words, or
    ``resolver_timeout TIME`` as ``["timeout=TIME"]`` (how :class:`~lbkit.Upstream` keeps it)."""
    if d.name == "resolver_timeout":
        if len(d.args) != 1 or parse_duration(d.args[0]) is None:
            raise ConfigError('invalid "resolver_timeout": expected one time', line=d.line)
        return [f"timeout={d.args[0]}"]
    if not d.args:
        raise ConfigError('invalid number of arguments in "resolver"', line=d.line)
    for word in d.args:
        key, eq, value = word.partition("=")
        if not eq:
            continue
        if key == "valid" and parse_duration(value) is not None:
            continue
        if key == "ipv6" and value in ("on", "off"):
            continue
        raise ConfigError(
            f'invalid parameter "{word[:80]}" in "resolver": expected valid=TIME or ipv6=on|off',
            line=d.line,
        )
    return list(d.args)


def _zone_size(d: Directive) -> int:
    size = parse_size(d.args[1])
    if size is None:
        raise ConfigError(f'invalid zone size "{d.args[1][:80]}"', line=d.line)
    return size


def upstream_from_directive(
    block: Directive, *, clock: Callable[[], float] | None = None
) -> Upstream:
    """Build an :class:`~lbkit.Upstream` from a parsed ``upstream`` directive."""
    if block.block is None or len(block.args) != 1:
        raise ConfigError('expected "upstream NAME { ... }"', line=block.line)
    name = block.args[0]
    servers: list[Server] = []
    lines: list[int] = []
    method: Method = RoundRobin()
    keepalive: int | None = None
    zone: str | None = None
    zone_size: int | None = None
    sticky: Sticky | None = None
    sticky_seen = False
    routes: dict[str, str] = {}
    drained: list[str] = []
    resolver: dict[str, list[str]] = {}
    for d in block.block:
        if d.block is not None:
            raise ConfigError(f'"{d.name}" directive cannot have a block here', line=d.line)
        if d.name == "server":
            servers.append(_parse_server(d, routes, drained))
            lines.append(d.line)
        elif d.name in ("hash", "ip_hash", "least_conn", "least_time", "random"):
            method = _parse_method(d)
            # nginx's sticky wraps the method set before it; a method directive after
            # "sticky" replaces sticky's wrapper ("load balancing method redefined").
            sticky = None
        elif d.name == "sticky":
            if sticky_seen:
                raise ConfigError('"sticky" directive is duplicate', line=d.line)
            sticky_seen = True
            sticky = parse_sticky(d)
        elif d.name in ("resolver", "resolver_timeout"):
            if d.name in resolver:
                raise ConfigError(f'"{d.name}" directive is duplicate', line=d.line)
            resolver[d.name] = _resolver_words(d)
        elif d.name == "keepalive":
            keepalive = _keepalive(d)
        elif d.name == "zone":
            if len(d.args) not in (1, 2):
                raise ConfigError('invalid number of arguments in "zone"', line=d.line)
            zone = d.args[0]
            if len(d.args) == 2:
                zone_size = _zone_size(d)
        elif d.name in UPSTREAM_DIRECTIVES:
            if len(d.args) != 1:
                raise ConfigError(f'invalid number of arguments in "{d.name}"', line=d.line)
        else:
            raise ConfigError(
                f'unknown directive "{d.name}" in upstream {name}: expected one of '
                + ", ".join(UPSTREAM_DIRECTIVES),
                line=d.line,
            )
    if zone is None and any(s.resolvable for s in servers):
        raise ConfigError(
            f'resolving names at run time requires upstream "{name}" to be in shared memory: '
            'add "zone NAME SIZE;"',
            line=block.line,
        )
    if sticky is not None:
        sticky = attrs.evolve(sticky, routes=routes)
        if sticky.zone is not None:
            try:
                learn_zone = open_zone(sticky.zone, sticky.zone_size)
            except ConfigError as exc:
                raise _at_line(exc, block.line) from None
            method = StickyMethod(method, sticky, ZoneSessions(learn_zone, sticky.timeout))
        else:
            method = StickyMethod(method, sticky)
    try:
        upstream = Upstream(
            servers,
            method,
            name=name,
            keepalive=keepalive,
            zone=zone,
            zone_size=zone_size,
            resolver=[*resolver.get("resolver", ()), *resolver.get("resolver_timeout", ())],
            **({} if clock is None else {"clock": clock}),
        )
    except ServerConfigError as exc:
        raise _at_line(exc, lines[exc.index]) from None
    except ConfigError as exc:
        raise _at_line(exc, block.line) from None
    for address in drained:
        upstream.drain(address)
    return upstream
