"""``Server``: one ``server`` line of an upstream, exactly as configured (immutable)."""

from __future__ import annotations

import attrs

from lbkit.errors import ConfigError

__all__ = ["MAX_ADDRESS_LENGTH", "Server", "split_address"]

#: Longest server address text accepted (nginx's own limit is far larger; this bounds input).
MAX_ADDRESS_LENGTH = 1024


def split_address(address: str) -> tuple[str, str | None]:
    """Split server address text into ``(host, port)`` the way nginx's ``hash consistent`` does.

    ``unix:/path`` gives ``("/path", None)``; otherwise the port is the run of digits after
    the last ``:`` (``"[::1]:8080"`` gives ``("[::1]", "8080")``), and text with no such run
    has no port (``"example.com"`` gives ``("example.com", None)``).
    """
    if address[:5].lower() == "unix:":
        return address[5:], None
    stripped = address.rstrip("0123456789")
    if stripped.endswith(":"):
        return stripped[:-1], address[len(stripped) :]
    return address, None


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
    if value[:5].lower() == "unix:":
        if len(value) == 5:
            raise ConfigError(f"invalid server address {value!r}: unix: needs a socket path")
        return
    host, port = _host_port_for_validation(value)
    if not host:
        raise ConfigError(f"invalid server address {value!r}: no host")
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
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


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"invalid {attribute.name}={value!r}: expected an integer >= 1")


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"invalid {attribute.name}={value!r}: expected an integer >= 0")


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
    to ``weight`` over that many seconds.
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

    def to_nginx(self) -> str:
        """Render this server as an nginx ``server`` directive (without indentation)."""
        parts = ["server", self.address]
        if self.weight != 1:
            parts.append(f"weight={self.weight}")
        if self.max_fails != 1:
            parts.append(f"max_fails={self.max_fails}")
        if self.fail_timeout != 10:
            parts.append(f"fail_timeout={self.fail_timeout}s")
        if self.max_conns:
            parts.append(f"max_conns={self.max_conns}")
        if self.slow_start:
            parts.append(f"slow_start={self.slow_start}s")
        if self.backup:
            parts.append("backup")
        if self.down:
            parts.append("down")
        return " ".join(parts) + ";"
