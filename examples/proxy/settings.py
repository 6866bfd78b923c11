"""The ``proxy_*`` directives of an nginx.conf, merged per location as nginx merges them.

Sans-I/O: :func:`proxy_settings` walks the directive tree that
:func:`lbkit.nginx.load_config` kept (``NginxConfig.directives``) and gives, for each server
block and location, the settings nginx would use there (``ngx_http_proxy_merge_loc_conf``):
a value set on an inner level wins; ``proxy_set_header`` lines are inherited as a whole,
only when the inner level has none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from lbkit.errors import ConfigError
from lbkit.nginx.config import NginxConfig
from lbkit.nginx.durations import parse_duration
from lbkit.nginx.lexer import Directive
from lbkit.routing import Location

__all__ = ["NEXT_UPSTREAM_FLAGS", "ProxySettings", "SettingsTable", "proxy_settings"]

#: ``proxy_next_upstream`` flags (``ngx_http_proxy_next_upstream_masks``).
NEXT_UPSTREAM_FLAGS = frozenset(
    {
        "error",
        "timeout",
        "invalid_header",
        "non_idempotent",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
        "http_403",
        "http_404",
        "http_429",
        "updating",
        "off",
    }
)

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def _size(d: Directive) -> int:
    text = d.args[0].lower() if len(d.args) == 1 else ""
    unit = text[-1:] if text[-1:] in ("k", "m") else ""
    number = text[: len(text) - len(unit)]
    if not number.isdigit():
        raise ConfigError(f'invalid value in "{d.name}" in {d.where}: expected a size (16k, 1m)')
    return int(number) * _SIZE_UNITS[unit]


def _msec(d: Directive) -> float:
    ms = parse_duration(d.args[0], seconds=False) if len(d.args) == 1 else None
    if ms is None:
        raise ConfigError(f'invalid value in "{d.name}" in {d.where}: expected a time (60s)')
    return ms / 1000


def _flag(d: Directive) -> bool:
    if len(d.args) != 1 or d.args[0] not in ("on", "off"):
        raise ConfigError(f'invalid value in "{d.name}" in {d.where}: expected "on" or "off"')
    return d.args[0] == "on"


@attrs.frozen
class ProxySettings:
    """What nginx's proxy module uses for one location (nginx's defaults when unset).

    Times are seconds. ``next_upstream`` holds the ``proxy_next_upstream`` flags
    (``{"off"}`` for off); ``next_upstream_tries`` 0 and ``next_upstream_timeout`` 0 mean
    no limit. ``set_headers`` are the ``proxy_set_header`` lines in force, in order.
    ``client_body_buffer_size`` bounds the part of a request body kept for a retry.
    """

    set_headers: tuple[tuple[str, str], ...] = ()
    next_upstream: frozenset[str] = frozenset({"error", "timeout"})
    next_upstream_tries: int = 0
    next_upstream_timeout: float = 0.0
    connect_timeout: float = 60.0
    read_timeout: float = 60.0
    send_timeout: float = 60.0
    request_buffering: bool = True
    client_body_buffer_size: int = 16 * 1024
    pass_request_headers: bool = True

    def merged(self, block: tuple[Directive, ...]) -> ProxySettings:
        """These settings with the directives of one inner level applied."""
        changes: dict[str, object] = {}
        headers: list[tuple[str, str]] = []
        for d in block:
            name = d.name
            if name == "proxy_set_header":
                if len(d.args) != 2:
                    raise ConfigError(f'invalid number of arguments in "{name}" in {d.where}')
                headers.append((d.args[0], d.args[1]))
            elif name == "proxy_next_upstream":
                flags = frozenset(d.args)
                unknown = flags - NEXT_UPSTREAM_FLAGS
                if not flags or unknown:
                    raise ConfigError(
                        f'invalid value "{sorted(unknown)[0] if unknown else ""}" in "{name}" '
                        f"in {d.where}: expected {', '.join(sorted(NEXT_UPSTREAM_FLAGS))}"
                    )
                changes["next_upstream"] = frozenset({"off"}) if "off" in flags else flags
            elif name == "proxy_next_upstream_tries":
                if len(d.args) != 1 or not d.args[0].isdigit():
                    raise ConfigError(f'invalid value in "{name}" in {d.where}: expected a number')
                changes["next_upstream_tries"] = int(d.args[0])
            elif name == "proxy_next_upstream_timeout":
                changes["next_upstream_timeout"] = _msec(d)
            elif name in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
                changes[name.removeprefix("proxy_")] = _msec(d)
            elif name == "proxy_request_buffering":
                changes["request_buffering"] = _flag(d)
            elif name == "proxy_pass_request_headers":
                changes["pass_request_headers"] = _flag(d)
            elif name == "client_body_buffer_size":
                changes["client_body_buffer_size"] = _size(d)
        if headers:
            changes["set_headers"] = tuple(headers)
        return attrs.evolve(self, **changes) if changes else self  # type: ignore[arg-type]


def _location_key(server: int, d: Directive) -> tuple[int, int, str]:
    return (server, d.line, " ".join(d.args))


class SettingsTable:
    """The merged settings of every server block and location of one config."""

    def __init__(
        self,
        servers: Mapping[int, ProxySettings],
        locations: Mapping[tuple[int, int, str], ProxySettings],
    ) -> None:
        self._servers = dict(servers)
        self._locations = dict(locations)

    def lookup(self, server: int, location: Location | None) -> ProxySettings:
        """The settings of ``location`` in server block ``server`` (its index)."""
        if location is not None:
            found = self._locations.get((server, location.line, location.display))
            if found is not None:
                return found
        return self._servers.get(server, ProxySettings())


def _walk_locations(
    server: int, block: tuple[Directive, ...], outer: ProxySettings
) -> Iterator[tuple[tuple[int, int, str], ProxySettings]]:
    for d in block:
        if d.name == "location" and d.block is not None:
            here = outer.merged(d.block)
            yield _location_key(server, d), here
            yield from _walk_locations(server, d.block, here)


def proxy_settings(config: NginxConfig) -> SettingsTable:
    """The proxy settings of every server block and location of ``config``."""
    servers: dict[int, ProxySettings] = {}
    locations: dict[tuple[int, int, str], ProxySettings] = {}
    index = 0
    for http in config.directives:
        if http.name != "http" or http.block is None:
            continue
        base = ProxySettings().merged(http.block)
        for d in http.block:
            if d.name != "server" or d.block is None:
                continue
            server = base.merged(d.block)
            servers[index] = server
            locations.update(_walk_locations(index, d.block, server))
            index += 1
    return SettingsTable(servers, locations)
