"""Listen sockets as nginx's ``listen`` writes them: address, port, ``default_server``."""

from __future__ import annotations

import attrs

from lbkit._port import port_number
from lbkit.errors import ConfigError, RequestError

__all__ = ["Listen", "parse_listen_address", "socket_key"]

#: The wildcard addresses: ``*:80`` (IPv4, shown by nginx as ``0.0.0.0:80``) and ``[::]:80``.
WILDCARDS = ("*", "[::]")


def _port(text: str, source: str, error: type[Exception]) -> int:
    number = port_number(text)  # nginx's rule: leading zeros allowed (listen 000080)
    if number is None:
        raise error(f'invalid port in "{source}": expected 1..65535')
    return number


def parse_listen_address(text: str, *, error: type[Exception] = ConfigError) -> tuple[str, int]:
    """``"8080"``, ``"127.0.0.1"``, ``"*:80"``, ``"[::1]:443"``, ``"unix:/p"`` -> (addr, port).

    An address alone means port 80, a port alone ``*``; ``0.0.0.0`` is ``*`` and ``[::]``
    stays the IPv6 wildcard; a unix socket is ``("unix:/path", 0)``.
    """
    if not isinstance(text, str) or not text:
        raise error(f"invalid listen address {text!r}: expected ADDRESS[:PORT] or PORT")
    if text.startswith("unix:"):
        return text, 0
    if text.startswith("["):
        addr, sep, rest = text.partition("]")
        if not sep:
            raise error(f'invalid listen address "{text}": missing "]"')
        addr = addr.lower() + "]"
        if rest and not rest.startswith(":"):
            raise error(f'invalid listen address "{text}"')
        port = _port(rest[1:], text, error) if rest else 80
        return ("[::]" if addr in ("[::]", "[0:0:0:0:0:0:0:0]") else addr), port
    if text.isascii() and text.isdigit():
        return "*", _port(text, text, error)
    addr, sep, port_text = text.rpartition(":")
    if not sep:
        addr, port = text, 80
    else:
        port = _port(port_text, text, error)
    addr = addr.lower()
    return ("*" if addr in ("*", "0.0.0.0") else addr), port  # noqa: S104 - a name


def socket_key(listen: str | tuple[str, int]) -> tuple[str, int]:
    """A request's listen socket (``"127.0.0.1:8080"`` or ``("127.0.0.1", 8080)``) as a key."""
    if isinstance(listen, tuple) and len(listen) == 2:
        addr, port = listen
        if not isinstance(addr, str) or isinstance(port, bool) or not isinstance(port, int):
            raise RequestError(f"invalid listen={listen!r}: expected (address, port)")
        if ":" in addr and not addr.startswith("["):
            addr = f"[{addr}]"
        return parse_listen_address(f"{addr}:{port}", error=RequestError)
    if isinstance(listen, str):
        return parse_listen_address(listen, error=RequestError)
    raise RequestError(f"invalid listen={listen!r}: expected 'ADDRESS:PORT' or (address, port)")


def show(key: tuple[str, int]) -> str:
    """nginx's way of printing a socket: ``0.0.0.0:80``, ``127.0.0.1:8080``, ``[::]:80``."""
    addr, port = key
    if port == 0:
        return addr
    return f"{'0.0.0.0' if addr == '*' else addr}:{port}"  # noqa: S104 - nginx's text


@attrs.frozen(slots=True)
class Listen:
    """One ``listen`` of a server block: ``address`` (``*`` or ``[::]`` for any), ``port``,
    and whether it is that socket's ``default_server``."""

    address: str = "*"
    port: int = 80
    default: bool = False

    @property
    def key(self) -> tuple[str, int]:
        """The socket this listen names: ``(address, port)``."""
        return (self.address, self.port)

    @classmethod
    def parse(cls, args: tuple[str, ...] | list[str], *, line: int | None = None) -> Listen:
        """A ``listen`` directive's arguments (``127.0.0.1:80 default_server ssl``)."""
        if not args:
            raise ConfigError('invalid number of arguments in "listen" directive', line=line)
        try:
            addr, port = parse_listen_address(args[0])
        except ConfigError as exc:
            raise ConfigError(str(exc), line=line) from None
        default = any(a in ("default_server", "default") for a in args[1:])
        return cls(addr, port, default)
