"""An upstream's ``server NAME resolve`` servers kept in step with DNS, as nginx 1.27.3+ does.

What is a name to resolve is decided once, by :attr:`lbkit.Server.resolvable` (``resolve``
on a name; on an IP address it is a fixed server), and the rules of ``service=`` by
:class:`~lbkit.Server` (it needs ``resolve``, a name and no port), both read in nginx's
``ngx_http_upstream_server``; the default port is 80. Each name gets its own
:class:`~lbkit.discovery.DnsSource` feeding one part of an
:class:`~lbkit.discovery.UpstreamSink`, so every change updates the upstream with the fixed
servers and every name's current peers, atomically (peers that stay keep their state).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lbkit.discovery.dns import DnsSource
from lbkit.discovery.sinks import Updatable, UpstreamSink
from lbkit.discovery.source import ErrorHandler
from lbkit.errors import ConfigError
from lbkit.nginx.render import server_params
from lbkit.routing import Resolver
from lbkit.routing._address import port_number
from lbkit.routing._address import split_host_port as address_parts
from lbkit.upstream import Server, Upstream, parse_duration, parse_server_line

__all__ = ["ResolvingUpstream", "resolver_from_words", "split_host_port"]


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


def resolver_from_words(words: Sequence[str], upstream: str = "") -> Resolver:
    """A :class:`~lbkit.routing.Resolver` from nginx's ``resolver`` words
    (``["127.0.0.1:53", "valid=30s", "ipv6=off"]``; ``timeout=T`` is ``resolver_timeout``,
    nginx's default 30 s), as :attr:`lbkit.Upstream.resolver` keeps them."""
    nameservers: list[str] = []
    valid: int | None = None
    ipv6 = True
    timeout = 30
    for word in words:
        key, eq, value = word.partition("=")
        seconds = parse_duration(value) if key in ("valid", "timeout") else None
        if not eq:
            nameservers.append(word)
        elif key == "valid" and seconds is not None:
            valid = seconds
        elif key == "timeout" and seconds is not None:
            timeout = seconds
        elif key == "ipv6" and value in ("on", "off"):
            ipv6 = value == "on"
        else:
            raise ConfigError(f'invalid parameter "{word[:80]}" in "resolver"')
    if not nameservers:
        raise ConfigError(
            f'no resolver defined to resolve names at run time in upstream "{upstream}": '
            'add "resolver ADDRESS;" or pass resolver='
        )
    # stale_for=0: a failure must show (the DNS source keeps the last view itself)
    return Resolver(nameservers, valid=valid, timeout=max(timeout, 0.001), stale_for=0.0, ipv6=ipv6)


def _server(line: str | Server) -> Server:
    if isinstance(line, Server):
        return line
    if not isinstance(line, str) or not line.split():
        raise ConfigError(f"invalid server line {line!r}: expected 'ADDRESS [PARAMS]'")
    return parse_server_line(line)


class ResolvingUpstream:
    """Keeps an upstream's ``server NAME resolve`` peers in step with DNS.

    ``ResolvingUpstream(parse_upstream(text))`` takes the upstream's configured servers
    (:attr:`lbkit.Upstream.configured`) and its ``resolver`` (or ``resolver=``, a
    :class:`~lbkit.routing.Resolver`); ``ResolvingUpstream(up, ["app.internal:8080 weight=2
    resolve", "10.0.0.9:80 backup"], resolver=...)`` feeds any ``update()``-able object from
    server lines or :class:`~lbkit.Server` objects. ``start()`` resolves every name once,
    then re-resolves each at its TTL (or ``valid=``) in the background until ``stop()``;
    ``with ResolvingUpstream(up): ...`` does both.
    """

    def __init__(
        self,
        upstream: Updatable,
        servers: Sequence[str | Server] | None = None,
        *,
        resolver: Resolver | None = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        name = upstream.name if isinstance(upstream, Upstream) else ""
        if servers is None:
            if not isinstance(upstream, Upstream):
                raise ConfigError("give the server lines, or an lbkit.Upstream to take them from")
            servers = upstream.configured
        if isinstance(servers, str):
            raise ConfigError("servers must be a list of server lines, not one str")
        parsed = [_server(line) for line in servers]
        named = [s for s in parsed if s.resolvable]
        if resolver is None:
            words = upstream.resolver if isinstance(upstream, Upstream) else ()
            resolver = resolver_from_words(words, name)
        fixed = [_line(s) for s in parsed if not s.resolvable]
        self.feed = UpstreamSink(upstream, static=fixed)
        self.sources = []
        for index, server in enumerate(named):
            host, port = split_host_port(server.address)
            plain = attrs.evolve(server, resolve=False, service=None, weight=1)
            self.sources.append(
                DnsSource(
                    host,
                    [self.feed.part(f"{index} {server.address}")],
                    resolver=resolver,
                    port=port or 80,
                    service=server.service,
                    weight=server.weight,
                    params=server_params(plain),
                    on_error=on_error,
                )
            )

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


def _line(server: Server) -> str:
    """``server`` as the text of a ``server`` line without the directive word."""
    return f"{server.address} {server_params(server)}".strip()
