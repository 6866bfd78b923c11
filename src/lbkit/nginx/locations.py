"""``location`` blocks of nginx text -> :class:`~lbkit.routing.Locations`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from lbkit.errors import ConfigError
from lbkit.nginx.lexer import Directive
from lbkit.routing._locations import Location, Locations, uri_part
from lbkit.routing._regex import compile_regex

__all__ = ["locations_from_directives", "parse_return"]

_PASS_DIRECTIVES = (
    "proxy_pass",
    "fastcgi_pass",
    "uwsgi_pass",
    "scgi_pass",
    "memcached_pass",
    "grpc_pass",
)


def _code(text: str) -> int | None:
    """nginx's ``ngx_atoi`` for a status code: ASCII digits only, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        return None
    return int(text)


def parse_return(d: Directive) -> tuple[int, str | None]:
    """A ``return`` directive's ``(code, text or URL)``: ``return URL`` is a 302."""
    args = d.args
    if not 1 <= len(args) <= 2:
        raise ConfigError('invalid number of arguments in "return" directive', line=d.line)
    code = _code(args[0])
    if len(args) == 1 and code is None and args[0].startswith(("http://", "https://", "$scheme")):
        return 302, args[0]  # "return URL"
    if code is None or not 0 <= code <= 999:
        raise ConfigError(f'invalid return code "{args[0][:32]}": expected 0..999', line=d.line)
    return code, (args[1] if len(args) == 2 else None)


def locations_from_directives(
    directives: Sequence[Directive],
    *,
    unknown: Callable[[Directive], None] | None = None,
    regex_engine: str = "auto",
) -> Locations:
    """Build one level of locations from parsed ``location`` directives.

    Directives inside a location other than ``*_pass``, ``return`` and ``location`` go to
    ``unknown`` (listed by ``load_config``), or are ignored without it.
    """
    return Locations([_location(d, unknown, regex_engine, None) for d in directives])


def _split(d: Directive) -> tuple[str, str]:
    args = d.args
    if len(args) == 2 and args[0] in ("=", "^~", "~", "~*"):
        return args[0], args[1]
    if len(args) != 1 or not args[0]:
        raise ConfigError('invalid number of arguments in "location" directive', line=d.line)
    arg = args[0]
    if arg.startswith("@"):
        return "@", arg
    for modifier in ("~*", "^~", "=", "~"):
        if arg.startswith(modifier) and len(arg) > len(modifier):
            return modifier, arg[len(modifier) :]
    return "", arg


def _check_nesting(d: Directive, modifier: str, name: str, parent: Location) -> None:
    if parent.modifier == "=":
        raise ConfigError(
            f'location "{name}" cannot be inside the exact location "{parent.name}"', line=d.line
        )
    if modifier == "@":
        raise ConfigError(f'named location "{name}" can be on the server level only', line=d.line)
    if (
        parent.modifier in ("", "^~")
        and modifier in ("", "^~", "=")
        and not name.startswith(parent.name)
    ):
        raise ConfigError(f'location "{name}" is outside location "{parent.name}"', line=d.line)


def _location(
    d: Directive, unknown: Callable[[Directive], None] | None, engine: str, parent: Location | None
) -> Location:
    modifier, name = _split(d)
    if parent is not None:
        _check_nesting(d, modifier, name, parent)
    regex = None
    if modifier in ("~", "~*"):
        try:
            regex = compile_regex(name, caseless=modifier == "~*", engine=engine)
        except ConfigError as exc:
            raise ConfigError(str(exc), line=d.line) from None
    proxy_pass: str | None = None
    ret: tuple[int, str | None] | None = None
    children: list[Directive] = []
    for item in d.block or ():
        if item.name in _PASS_DIRECTIVES:
            if len(item.args) != 1:
                raise ConfigError(f'invalid number of arguments in "{item.name}"', line=item.line)
            proxy_pass = item.args[0]
            if (
                item.name == "proxy_pass"
                and modifier in ("~", "~*", "@")
                and uri_part(proxy_pass)
                and "$" not in proxy_pass
            ):
                raise ConfigError(
                    '"proxy_pass" cannot have URI part in location given by regular '
                    'expression, or inside named location, or inside "if" statement, or inside '
                    '"limit_except" block',
                    line=item.line,
                )
        elif item.name == "return":
            if ret is None:
                ret = parse_return(item)
        elif item.name == "location":
            children.append(item)
        elif unknown is not None:
            unknown(item)
    this = Location(
        modifier,
        name,
        proxy_pass,
        ret,
        None,
        d.line,
        regex,
        auto_redirect=proxy_pass is not None and modifier in ("", "^~") and name.endswith("/"),
    )
    if children:
        nested = Locations([_location(c, unknown, engine, this) for c in children])
        this = attrs.evolve(this, nested=nested)
    return this
