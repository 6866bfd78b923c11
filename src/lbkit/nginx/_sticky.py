"""The ``sticky`` directive of an upstream block, and the ``route=``/``drain`` server flags."""

from __future__ import annotations

from lbkit.balancers import Sticky
from lbkit.errors import ConfigError
from lbkit.nginx.lexer import Directive
from lbkit.upstream import parse_duration

__all__ = ["parse_size", "parse_sticky", "split_sticky_server_params"]

_UNITS = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def parse_size(text: str) -> int | None:
    """nginx's ``ngx_parse_size``: digits with an optional k, m or g (any case); ``None``
    for anything else."""
    unit = _UNITS.get(text[-1:].lower(), 1)
    digits = text[:-1] if unit != 1 else text
    if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
        return None
    return int(digits) * unit


_SAMESITE = ("strict", "lax", "none")


def _invalid(d: Directive, arg: str) -> ConfigError:
    return ConfigError(f'invalid parameter "{arg[:80]}" in "sticky"', line=d.line)


def _seconds(d: Directive, text: str, what: str) -> int:
    value = parse_duration(text)
    if value is None:
        raise ConfigError(f'invalid {what} "{text[:80]}" in "sticky"', line=d.line)
    return value


def _variables(d: Directive, text: str) -> tuple[str, ...]:
    names = tuple(text.split())
    if not names or any(not n.startswith("$") or len(n) < 2 for n in names):
        raise ConfigError(
            f'invalid variable "{text[:80]}" in "sticky": expected $name', line=d.line
        )
    return names


def _cookie(d: Directive, args: list[str]) -> Sticky:
    if not args or "=" in args[0]:
        raise ConfigError('"sticky cookie" needs the cookie name', line=d.line)
    fields: dict[str, object] = {"cookie": args[0]}
    for arg in args[1:]:
        key, eq, value = arg.partition("=")
        if key == "expires" and eq:
            fields["expires"] = -1 if value == "max" else _seconds(d, value, "expires")
        elif key in ("domain", "path") and eq and value:
            fields[key] = value
        elif key == "samesite" and eq and (value.lower() in _SAMESITE or "$" in value):
            fields["samesite"] = value
        elif arg in ("httponly", "secure"):
            fields[arg] = True
        else:
            raise _invalid(d, arg)
    return Sticky("cookie", **fields)  # type: ignore[arg-type]


def _learn(d: Directive, args: list[str]) -> Sticky:
    fields: dict[str, object] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if key in ("create", "lookup") and eq:
            fields["create" if key == "create" else "variables"] = (
                *fields.get("create" if key == "create" else "variables", ()),  # type: ignore[misc]
                *_variables(d, value),
            )
        elif key == "zone" and eq:
            name, colon, size = value.partition(":")
            if not name or not colon or not size:
                raise ConfigError(
                    f'invalid zone "{value[:80]}" in "sticky": expected NAME:SIZE', line=d.line
                )
            fields["zone"] = name
            fields["zone_size"] = parse_size(size)
            if fields["zone_size"] is None:
                raise ConfigError(f'invalid zone size "{size[:80]}" in "sticky"', line=d.line)
        elif key == "timeout" and eq:
            fields["timeout"] = _seconds(d, value, "timeout")
        elif arg in ("header", "sync"):
            fields[arg] = True
        else:
            raise _invalid(d, arg)
    for needed, field in (("create", "create"), ("lookup", "variables"), ("zone", "zone")):
        if field not in fields:
            raise ConfigError(f'"sticky learn" needs {needed}=', line=d.line)
    return Sticky("learn", **fields)  # type: ignore[arg-type]


def parse_sticky(d: Directive) -> Sticky:
    """``sticky cookie NAME [expires=T|max] [domain=D] [httponly] [samesite=S] [secure]
    [path=P]``, ``sticky route $v...`` or ``sticky learn create=$v lookup=$v zone=N:S
    [timeout=T] [header] [sync]`` (nginx 1.29.6+)."""
    if not d.args:
        raise ConfigError('invalid number of arguments in "sticky"', line=d.line)
    mode, *args = d.args
    if mode == "cookie":
        return _cookie(d, args)
    if mode == "route":
        if not args:
            raise ConfigError('"sticky route" needs at least one $variable', line=d.line)
        return Sticky("route", variables=tuple(n for a in args for n in _variables(d, a)))
    if mode == "learn":
        return _learn(d, args)
    raise ConfigError(
        f'invalid sticky mode "{mode[:80]}": expected cookie, route or learn', line=d.line
    )


def split_sticky_server_params(
    d: Directive, params: list[str]
) -> tuple[list[str], str | None, bool]:
    """Take nginx's sticky-only ``route=`` and ``drain`` out of a server's parameters:
    (the other parameters, the route, whether the server is drained)."""
    rest: list[str] = []
    route: str | None = None
    drain = False
    for p in params:
        if p.startswith("route="):
            route = p[6:]
            if not route:
                raise ConfigError("route is empty", line=d.line)
            if len(route.encode()) > 32:
                raise ConfigError(f'route "{route[:80]}" is longer than 32', line=d.line)
        elif p == "drain":
            drain = True
        else:
            rest.append(p)
    return rest, route, drain
