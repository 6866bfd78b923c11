"""``Server``: one configured server of an upstream, exactly as written (immutable).

Also the text form of one server (``"10.0.0.1:80 weight=2 max_fails=3"``): the parameters
nginx's ``server`` directive takes, parsed here once for the nginx loader and for
:meth:`~lbkit.Upstream.update`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

from lbkit._port import port_number
from lbkit.errors import ConfigError
from lbkit.upstream._durations import parse_duration

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_NGX_INT",
    "SERVER_PARAMETERS",
    "Server",
    "parse_count",
    "parse_server_line",
    "server_from_params",
]

#: Longest server address text accepted (nginx's own limit is far larger; this bounds input).
MAX_ADDRESS_LENGTH = 1024
#: Largest integer nginx's ``ngx_atoi`` accepts (``NGX_MAX_INT_T_VALUE`` on 64-bit builds):
#: ``weight=``, ``max_fails=`` and ``max_conns=`` above it are refused, as nginx refuses them.
MAX_NGX_INT = 2**63 - 1
#: The parameters a server line may carry, for error messages.
SERVER_PARAMETERS = (
    "weight=N, max_fails=N, fail_timeout=TIME, max_conns=N, slow_start=TIME, backup, down, "
    "resolve, service=NAME"
)


def _check_address(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"server address must be str, not {type(value).__name__}")
    if not value or len(value) > MAX_ADDRESS_LENGTH:
        raise ConfigError(
            f"invalid server address {value[:64]!r}: expected HOST[:PORT], [IPv6][:PORT] or "
            f"unix:PATH of 1..{MAX_ADDRESS_LENGTH} characters"
        )
    if any(c.isspace() or c in ";{}\"'" for c in value):
        raise ConfigError(
            f"invalid server address {value!r}: whitespace, quotes, ';', '{{' and '}}' are not "
            "allowed"
        )
    if not value.isprintable():
        raise ConfigError(f"invalid server address {value!r}: control characters are not allowed")
    if value[:5].lower() == "unix:":
        if len(value) == 5:
            raise ConfigError(f"invalid server address {value!r}: unix: needs a socket path")
        return
    host, port = _host_port_for_validation(value)
    if not host:
        raise ConfigError(f"invalid server address {value!r}: no host")
    if port is not None and port_number(port) is None:  # nginx's rule: 000080 is 80
        raise ConfigError(f"invalid port in server address {value!r}: expected 1..65535")


def _host_port_for_validation(value: str) -> tuple[str, str | None]:
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigError(f"invalid server address {value!r}: unclosed '[' of an IPv6 address")
        rest = value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"invalid server address {value!r}: expected ':' after ']'")
        return value[1:end], (rest[1:] if rest else None)
    if value.count(":") > 1:
        raise ConfigError(
            f"invalid server address {value!r}: write IPv6 addresses in brackets, e.g. [::1]:80"
        )
    host, sep, port = value.partition(":")
    return host, (port if sep else None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _integer(attribute: attrs.Attribute[int], value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_NGX_INT:
        raise ConfigError(
            f"invalid {attribute.name}={value!r}: expected an integer {minimum}..{MAX_NGX_INT}"
        )


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    _integer(attribute, value, 1)


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    _integer(attribute, value, 0)


def _flag(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"invalid {attribute.name}={value!r}: expected True or False")


@attrs.frozen(slots=True)
class Server:
    """One upstream server as configured: nginx's ``server ADDRESS [parameters]``.

    ``address`` is kept exactly as written; it is the peer's ``name`` and, for
    ``hash ... consistent``, the text the ring points are derived from.
    ``fail_timeout`` is in whole seconds, as in nginx. ``max_conns=0`` means no limit and
    ``max_fails=0`` disables passive health accounting. ``slow_start`` is nginx Plus's
    parameter (not in nginx OSS): after a failed peer recovers, its weight grows from 1 back
    to ``weight`` over that many seconds. Integers above :data:`MAX_NGX_INT` are refused,
    as nginx refuses them.
    """

    address: str = attrs.field(validator=_check_address)
    weight: int = attrs.field(default=1, validator=_positive)
    max_fails: int = attrs.field(default=1, validator=_non_negative)
    fail_timeout: int = attrs.field(default=10, validator=_non_negative)
    backup: bool = attrs.field(default=False, validator=_flag)
    down: bool = attrs.field(default=False, validator=_flag)
    max_conns: int = attrs.field(default=0, validator=_non_negative)
    #: Seconds over which a recovered peer ramps its weight back up (nginx Plus
    #: ``slow_start``); 0 disables it. Round robin and least_conn only.
    slow_start: int = attrs.field(default=0, validator=_non_negative)
    #: nginx's ``resolve``: the address is a DNS name looked up again at run time (its
    #: peers are kept by :class:`~lbkit.discovery.ResolvingUpstream`); on an IP address
    #: it changes nothing, as in nginx.
    resolve: bool = attrs.field(default=False, validator=_flag)
    #: nginx's ``service=NAME``: ask DNS for the SRV records of ``_NAME._tcp.HOST`` (or
    #: ``NAME.HOST`` when NAME has a dot); needs ``resolve``, a name and no port.
    service: str | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        service = self.service
        if service is None:
            return
        if not isinstance(service, str) or not service:
            raise ConfigError(f"service is empty (server {self.address}): expected service=NAME")
        if any(c.isspace() or not c.isprintable() or c in ";{}\"'" for c in service):
            raise ConfigError(f"invalid service={service!r}: expected a name such as 'http'")
        if not self.resolve:
            raise ConfigError(f'service upstream "{self.address}" requires "resolve" parameter')
        host, port = _host_port_for_validation(self.address)
        if port is not None:
            raise ConfigError(f'service upstream "{self.address}" may not have port')
        if _is_ip(host) or self.address[:5].lower() == "unix:":
            raise ConfigError(f'service upstream "{self.address}" requires domain name')

    @property
    def resolvable(self) -> bool:
        """Whether this server's peers come from DNS at run time: ``resolve`` on a name
        (not an IP address, not ``unix:``)."""
        if not self.resolve or self.address[:5].lower() == "unix:":
            return False
        return not _is_ip(_host_port_for_validation(self.address)[0])

    @classmethod
    def parse(cls, text: str) -> Server:
        """A server from its text form, e.g. ``"10.0.0.1:80 weight=2 backup"``."""
        return parse_server_line(text)


def parse_count(digits: str, minimum: int = 0) -> int | None:
    """``digits`` as nginx's ``ngx_atoi`` reads them, or ``None`` where it refuses them or the
    value is below ``minimum``: ASCII digits only (not ``'²'``), at most :data:`MAX_NGX_INT`
    (so no 5,000-digit number reaches ``int()``)."""
    significant = digits.lstrip("0") or "0"
    if (
        not digits.isascii()
        or not digits.isdigit()
        or len(significant) > len(str(MAX_NGX_INT))
        or not minimum <= int(significant) <= MAX_NGX_INT
    ):
        return None
    return int(significant)


def _int_param(token: str, prefix: str, minimum: int) -> int:
    value = parse_count(token[len(prefix) :], minimum)
    if value is None:
        raise ConfigError(
            f'invalid parameter "{token[:80]}": {prefix[:-1]} must be an integer '
            f"{minimum}..{MAX_NGX_INT}"
        )
    return value


def _time_param(token: str, prefix: str) -> int:
    seconds = parse_duration(token[len(prefix) :])
    if seconds is None:
        raise ConfigError(
            f'invalid parameter "{token[:80]}": expected a time such as 10, 10s, 1m or 1m 30s'
        )
    return seconds


def server_from_params(address: str, params: Sequence[str]) -> Server:
    """A server from its address and parameter words (``weight=2``, ``backup``...).

    Raises :class:`~lbkit.ConfigError` naming the bad word and the accepted ones.
    """
    kwargs: dict[str, int | bool | str] = {}
    for token in params:
        if token.startswith("weight="):
            kwargs["weight"] = _int_param(token, "weight=", 1)
        elif token.startswith("max_fails="):
            kwargs["max_fails"] = _int_param(token, "max_fails=", 0)
        elif token.startswith("max_conns="):
            kwargs["max_conns"] = _int_param(token, "max_conns=", 0)
        elif token.startswith("fail_timeout="):
            kwargs["fail_timeout"] = _time_param(token, "fail_timeout=")
        elif token.startswith("slow_start="):
            kwargs["slow_start"] = _time_param(token, "slow_start=")
        elif token == "backup":
            kwargs["backup"] = True
        elif token == "down":
            kwargs["down"] = True
        elif token == "resolve":
            kwargs["resolve"] = True
        elif token.startswith("service="):
            if token == "service=":
                raise ConfigError(f"service is empty (server {address[:80]})")
            kwargs["service"] = token[8:]
        else:
            raise ConfigError(
                f'invalid parameter "{token[:80]}" of server {address[:80]}: expected '
                f"{SERVER_PARAMETERS}"
            )
    return Server(address, **kwargs)  # type: ignore[arg-type]


def parse_server_line(text: str) -> Server:
    """A server from ``"ADDRESS [parameters]"`` (an optional ``server`` word and ``;`` too)."""
    if not isinstance(text, str):
        raise ConfigError(f"server text must be str, not {type(text).__name__}")
    if len(text) > 4 * MAX_ADDRESS_LENGTH:
        raise ConfigError(f"server text of {len(text)} characters is too long")
    words = text.strip().removesuffix(";").split()
    if words and words[0] == "server":
        words = words[1:]
    if not words:
        raise ConfigError(f"empty server text {text!r}: expected ADDRESS [parameters]")
    return server_from_params(words[0], words[1:])
