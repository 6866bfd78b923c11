"""An upstream's ``server NAME resolve`` lines kept in step with DNS, as nginx 1.27.3+ does.

Rules from ``ngx_http_upstream_server`` (nginx's C source): ``service=`` needs ``resolve``,
a name (not an address) and no port; ``resolve`` on an IP address is a fixed server; the
default port is 80. Lines without ``resolve`` stay as they are. Each name gets its own
:class:`~lbkit.discovery.DnsSource` feeding one part of an
:class:`~lbkit.discovery.UpstreamSink`, so every change updates the upstream with the fixed
servers and every name's current peers, atomically.
"""

from __future__ import annotations

from collections.abc import Sequence

from lbkit.discovery.dns import DnsSource
from lbkit.discovery.sinks import Updatable, UpstreamSink
from lbkit.discovery.source import ErrorHandler
from lbkit.errors import ConfigError
from lbkit.routing import Resolver
from lbkit.routing._address import is_address, port_number
from lbkit.routing._address import split_host_port as address_parts

__all__ = ["ResolvingUpstream", "split_host_port"]


def split_host_port(address: str) -> tuple[str, int | None]:
    """``"name:8080"`` -> ``("name", 8080)``; ``"name"`` -> ``("name", None)``; IPv6 in []."""
    if address.startswith("["):
        rest = address.partition("]")[2]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"invalid server address {address!r}")
    host, port_text = address_parts(address)
    if not port_text:
        return host, None
    port = port_number(port_text)
    if port is None:
        raise ConfigError(f"invalid port in {address!r}: expected 1..65535")
    return host, port


class ResolvingUpstream:
    """Feeds ``upstream.update`` from nginx ``server`` lines, re-resolving the ``resolve`` ones.

    ``ResolvingUpstream(up, ["app.internal:8080 weight=2 resolve", "10.0.0.9:80 backup"],
    resolver=Resolver(["127.0.0.1:53"]))``; ``start()`` resolves every name once, then
    re-resolves each at its TTL (or ``valid=``) in the background until ``stop()``.
    """

    def __init__(
        self,
        upstream: Updatable,
        servers: Sequence[str],
        *,
        resolver: Resolver,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if isinstance(servers, str):
            raise ConfigError("servers must be a list of server lines, not one str")
        fixed: list[str] = []
        named: list[tuple[str, str, int | None, str | None, int, str]] = []
        for line in servers:
            if not isinstance(line, str) or not line.split():
                raise ConfigError(f"invalid server line {line!r}: expected 'ADDRESS [PARAMS]'")
            address, *params = line.split()
            service = next((p[8:] for p in params if p.startswith("service=")), None)
            if "resolve" not in params:
                if service is not None:
                    raise ConfigError(f'service upstream "{address}" requires "resolve" parameter')
                fixed.append(line)
                continue
            host, port = split_host_port(address)
            if is_address(host):
                if service is not None:
                    raise ConfigError(f'service upstream "{address}" requires domain name')
                fixed.append(" ".join(p for p in [address, *params] if p != "resolve"))
                continue
            if service is not None and port is not None:
                raise ConfigError(f'service upstream "{address}" may not have port')
            weight = 1
            rest = []
            for p in params:
                if p.startswith("weight="):
                    text = p[7:]
                    if not (text.isascii() and text.isdigit()):
                        raise ConfigError(f'invalid parameter "{p}" in {line!r}')
                    weight = int(text)
                elif p != "resolve" and not p.startswith("service="):
                    rest.append(p)
            named.append((line, host, port, service, weight, " ".join(rest)))
        self.feed = UpstreamSink(upstream, static=fixed)
        self.sources = [
            DnsSource(
                host,
                [self.feed.part(line)],
                resolver=resolver,
                port=port or 80,
                service=service,
                weight=weight,
                params=rest,
                on_error=on_error,
            )
            for line, host, port, service, weight, rest in named
        ]

    def poll(self) -> None:
        """Resolve every name once now (in order) and update the upstream."""
        for source in self.sources:
            source.poll()

    def start(self) -> None:
        """Resolve every name, then keep re-resolving in the background."""
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        """Stop re-resolving (the upstream keeps its last servers)."""
        for source in self.sources:
            source.stop()

    def __enter__(self) -> ResolvingUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
