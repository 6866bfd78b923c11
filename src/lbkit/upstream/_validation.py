"""Whether a list of servers makes a valid upstream for a method: decided here, once.

Both :class:`~lbkit.Upstream` (at construction and on :meth:`~lbkit.Upstream.update`) and
the nginx loader (which adds the line numbers) rely on :func:`check_servers`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lbkit.errors import ConfigError
from lbkit.upstream._method import Method
from lbkit.upstream._server import MAX_NGX_INT, Server

__all__ = ["MAX_SERVERS", "ServerConfigError", "check_keepalive", "check_servers"]

#: Most servers one upstream may hold (bounds memory and the O(n) methods' cost per pick).
MAX_SERVERS = 10_000


class ServerConfigError(ConfigError):
    """A :class:`~lbkit.ConfigError` caused by one server: ``index`` is its position."""

    def __init__(self, message: str, *, index: int) -> None:
        self.index = index
        super().__init__(message)


def check_servers(servers: Sequence[object], method: Method, name: str) -> None:
    """Raise :class:`~lbkit.ConfigError` unless ``servers`` make a valid upstream.

    Refused: no servers, more than :data:`MAX_SERVERS`, objects that are not
    :class:`~lbkit.Server`, an address twice, ``backup`` or ``slow_start`` with a method
    that does not support them (hash, ip_hash, random), and only backup servers.
    """
    if not isinstance(name, str):
        raise ConfigError(f"upstream name must be str, not {type(name).__name__}")
    if not callable(getattr(method, "bind", None)) or getattr(method, "kind", None) is None:
        raise ConfigError(
            f"invalid method {method!r}: expected a balancing method such as lbkit.RoundRobin()"
        )
    if not servers:
        raise ConfigError(f'no servers in upstream "{name}": give at least one server')
    if len(servers) > MAX_SERVERS:
        raise ConfigError(
            f'{len(servers)} servers in upstream "{name}": at most {MAX_SERVERS} are allowed'
        )
    seen: set[str] = set()
    for index, server in enumerate(servers):
        if not isinstance(server, Server):
            raise ServerConfigError(f"expected lbkit.Server objects, got {server!r}", index=index)
        if server.address in seen:
            raise ServerConfigError(
                f'duplicate server "{server.address}" in upstream "{name}": each address may '
                "appear once",
                index=index,
            )
        seen.add(server.address)
        for param, used in (("backup", server.backup), ("slow_start", server.slow_start)):
            if used and not method.supports_backup:
                raise ServerConfigError(
                    f'balancing method "{method.kind}" does not support parameter "{param}" '
                    f"(server {server.address}): only round robin, least_conn and least_time do",
                    index=index,
                )
    if all(s.backup for s in servers):  # type: ignore[attr-defined]
        raise ConfigError(
            f'no servers in upstream "{name}": every server is a backup; at least one must not be'
        )


def check_keepalive(keepalive: object) -> None:
    """Refuse a ``keepalive`` that is not ``None`` or an integer 1..MAX_NGX_INT."""
    if keepalive is not None and (
        isinstance(keepalive, bool)
        or not isinstance(keepalive, int)
        or not 1 <= keepalive <= MAX_NGX_INT
    ):
        raise ConfigError(f"invalid keepalive {keepalive!r}: expected an integer 1..{MAX_NGX_INT}")
