"""``parse_upstream``: one nginx ``upstream NAME { ... }`` block -> :class:`~lbkit.Upstream`."""

from __future__ import annotations

from collections.abc import Callable

from lbkit.balancers import Hash, IpHash, LeastConn, Method, Random, RoundRobin
from lbkit.errors import ConfigError
from lbkit.nginx.durations import parse_duration
from lbkit.nginx.lexer import Directive, parse_directives
from lbkit.server import Server
from lbkit.upstream import Upstream

__all__ = ["UPSTREAM_DIRECTIVES", "parse_upstream", "upstream_from_directive"]

#: Directives accepted inside an upstream block.
UPSTREAM_DIRECTIVES = (
    "server",
    "hash",
    "ip_hash",
    "least_conn",
    "random",
    "keepalive",
    "keepalive_requests",
    "keepalive_time",
    "keepalive_timeout",
    "zone",
)

_SERVER_PARAMS = (
    "weight=N, max_fails=N, fail_timeout=TIME, max_conns=N, slow_start=TIME, backup, down"
)


def _int_param(token: str, prefix: str, line: int, minimum: int) -> int:
    digits = token[len(prefix) :]
    if not digits.isascii() or not digits.isdigit():
        raise ConfigError(
            f'invalid parameter "{token}": {prefix[:-1]} must be an integer >= {minimum}',
            line=line,
        )
    value = int(digits)
    if value < minimum:
        raise ConfigError(
            f'invalid parameter "{token}": {prefix[:-1]} must be an integer >= {minimum}',
            line=line,
        )
    return value


def _parse_server(d: Directive) -> Server:
    if not d.args:
        raise ConfigError('invalid number of arguments in "server" directive', line=d.line)
    address, *params = d.args
    kwargs: dict[str, int | bool] = {}
    for token in params:
        if token.startswith("weight="):
            kwargs["weight"] = _int_param(token, "weight=", d.line, 1)
        elif token.startswith("max_fails="):
            kwargs["max_fails"] = _int_param(token, "max_fails=", d.line, 0)
        elif token.startswith("max_conns="):
            kwargs["max_conns"] = _int_param(token, "max_conns=", d.line, 0)
        elif token.startswith("fail_timeout="):
            seconds = parse_duration(token[len("fail_timeout=") :])
            if seconds is None:
                raise ConfigError(
                    f'invalid parameter "{token}": expected a time such as 10, 10s, 1m or 1m 30s',
                    line=d.line,
                )
            kwargs["fail_timeout"] = seconds
        elif token.startswith("slow_start="):
            seconds = parse_duration(token[len("slow_start=") :])
            if seconds is None:
                raise ConfigError(
                    f'invalid parameter "{token}": expected a time such as 30s or 1m',
                    line=d.line,
                )
            kwargs["slow_start"] = seconds
        elif token == "backup":
            kwargs["backup"] = True
        elif token == "down":
            kwargs["down"] = True
        else:
            raise ConfigError(
                f'invalid parameter "{token}" of server {address}: expected {_SERVER_PARAMS}',
                line=d.line,
            )
    try:
        return Server(address, **kwargs)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(str(exc), line=d.line) from None


def _parse_method(d: Directive) -> Method:
    args = d.args
    if d.name == "least_conn" and not args:
        return LeastConn()
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
    down), ``hash KEY [consistent]``, ``ip_hash``, ``least_conn``, ``random [two
    [least_conn]]``, ``keepalive N`` and, recorded but without effect on the choice, ``zone``
    and the other ``keepalive_*`` directives. Anything else raises
    :class:`~lbkit.ConfigError` naming it and its line. ``clock`` is passed to the upstream
    (default :func:`time.monotonic`).
    """
    if not isinstance(text, str):
        raise ConfigError(f"parse_upstream takes str, not {type(text).__name__}")
    return upstream_from_directive(_find_upstream_block(text), clock=clock)


def upstream_from_directive(
    block: Directive, *, clock: Callable[[], float] | None = None
) -> Upstream:
    """Build an :class:`~lbkit.Upstream` from a parsed ``upstream`` directive."""
    if block.block is None or len(block.args) != 1:
        raise ConfigError('expected "upstream NAME { ... }"', line=block.line)
    name = block.args[0]
    servers: list[tuple[Server, int]] = []
    method: Method = RoundRobin()
    method_line = 0
    keepalive: int | None = None
    extras: dict[str, tuple[str, ...]] = {}
    assert block.block is not None
    for d in block.block:
        if d.block is not None:
            raise ConfigError(f'"{d.name}" directive cannot have a block here', line=d.line)
        if d.name == "server":
            servers.append((_parse_server(d), d.line))
        elif d.name in ("hash", "ip_hash", "least_conn", "random"):
            method = _parse_method(d)
            method_line = d.line
        elif d.name == "keepalive":
            if len(d.args) != 1:
                raise ConfigError('invalid number of arguments in "keepalive"', line=d.line)
            keepalive = _int_param("keepalive=" + d.args[0], "keepalive=", d.line, 1)
        elif d.name in UPSTREAM_DIRECTIVES:
            extras[d.name] = d.args
        else:
            raise ConfigError(
                f'unknown directive "{d.name}" in upstream {name}: expected one of '
                + ", ".join(UPSTREAM_DIRECTIVES),
                line=d.line,
            )
    if not servers:
        raise ConfigError(f'no servers in upstream "{name}"', line=block.line)
    if all(server.backup for server, _ in servers):
        raise ConfigError(
            f'no servers in upstream "{name}": every server is a backup', line=block.line
        )
    seen: dict[str, int] = {}
    for server, line in servers:
        if server.address in seen:
            raise ConfigError(
                f'duplicate server "{server.address}" in upstream "{name}" (first on line '
                f"{seen[server.address]})",
                line=line,
            )
        seen[server.address] = line
        for param, used in (("backup", server.backup), ("slow_start", server.slow_start)):
            if used and not method.supports_backup:
                raise ConfigError(
                    f'balancing method "{method.to_nginx().rstrip(";")}" (line {method_line}) '
                    f'does not support parameter "{param}" of server {server.address}',
                    line=line,
                )
    return Upstream(
        [s for s, _ in servers],
        method,
        name=name,
        keepalive=keepalive,
        directives=extras,
        **({} if clock is None else {"clock": clock}),
    )
