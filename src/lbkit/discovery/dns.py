"""DNS as a discovery source: nginx's ``server NAME resolve`` (A/AAAA) and ``service=`` (SRV).

Rules read in nginx's source (``ngx_http_upstream_zone_module.c``, ``ngx_resolver.c``):

- The name is looked up again when its answer expires: ``valid=`` seconds if given, else
  the record TTL (the smallest in the answer), plus one second (nginx's timer is
  ``1000 * (valid - now + 1)`` ms).
- A failed lookup other than NXDOMAIN keeps the peers and retries after
  ``max(resolver_timeout, 1 s)``; NXDOMAIN (or an empty answer) removes them all.
- A/AAAA: every address becomes a peer on the ``server`` line's port with its weight.
- SRV: the target's addresses on the SRV port; the SRV weight (0 read as 1) unless the
  ``server`` line sets a weight other than 1; records whose priority is not the lowest
  become ``backup`` peers. ``service=http`` asks for ``_http._tcp.NAME``; a service with a
  dot is joined to the name as it is (``service=_http._tcp`` -> ``_http._tcp.NAME``).

Each view maps ``ADDRESS:PORT`` to the rest of its ``server`` line (``weight=5 backup``), so an
:class:`~lbkit.discovery.UpstreamSink` turns it into ``Upstream.update(...)``. Needs dnspython
(``pip install lbkit[dns]``).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from lbkit.discovery.source import ErrorHandler, PollingSource, Sink
from lbkit.errors import ConfigError, DiscoveryError, ResolutionError
from lbkit.routing import Resolver, validate_name

__all__ = ["DnsAnswer", "DnsSource", "Record", "srv_name"]

MAX_RECORDS = 1024
NO_ANSWER_TTL = 10.0  # nginx caches a missing name for 10 s when valid= is not set


def srv_name(name: str, service: str) -> str:
    """The SRV name nginx asks for ``server NAME service=SERVICE``."""
    if not service or any(c.isspace() for c in service):
        raise ConfigError(f"invalid service={service!r}: expected a name such as 'http'")
    prefix = service if "." in service else f"_{service}._tcp"
    return validate_name(f"{prefix}.{name}")


@attrs.frozen(slots=True)
class Record:
    """One resolved peer: address, port, SRV weight and priority (1 and 0 for A/AAAA)."""

    address: str
    port: int
    weight: int = 1
    priority: int = 0

    @property
    def endpoint(self) -> str:
        """``ADDRESS:PORT`` with IPv6 in brackets, as nginx names a peer."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@attrs.frozen(slots=True)
class DnsAnswer:
    """What one lookup found: the records and the smallest TTL among them (seconds)."""

    records: tuple[Record, ...]
    ttl: float


class DnsSource(PollingSource):
    """Feeds its sinks the peers a DNS name resolves to, re-resolved as nginx does.

    ``DnsSource("app.example", port=8080, nameservers=["127.0.0.1:53"])`` is
    ``server app.example:8080 resolve;``; ``service="http"`` makes it
    ``server app.example service=http resolve;``. ``params`` are the rest of the ``server``
    line (``"max_fails=3 fail_timeout=5s"``), copied to every peer.

    Addresses are looked up through lbkit's :class:`~lbkit.routing.Resolver` (A, and AAAA
    unless ``ipv6=False``): pass ``resolver=`` to share one (and its cache) between sources
    and the router, or ``nameservers=``/``valid=``/``timeout=``/``ipv6=`` to make one. SRV
    records are asked of the same name servers.
    """

    _thread_name = "lbkit-dns-source"

    def __init__(
        self,
        name: str,
        sinks: Iterable[Sink] = (),
        *,
        resolver: Resolver | None = None,
        nameservers: Sequence[str] | None = None,
        port: int = 80,
        service: str | None = None,
        weight: int = 1,
        params: str = "",
        ipv6: bool | None = None,
        valid: float | None = None,
        timeout: float | None = None,
        on_error: ErrorHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = validate_name(name)
        self.query_name = srv_name(self.name, service) if service is not None else self.name
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"invalid port={port!r}: expected 1..65535")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            raise ConfigError(f"invalid weight={weight!r}: expected 1..1000 (nginx's limit)")
        if not isinstance(params, str) or "weight=" in params or ";" in params:
            raise ConfigError(
                f"invalid params={params!r}: expected server parameters without weight= or ';'"
            )
        if resolver is None:
            resolver = Resolver(
                nameservers if nameservers is not None else ("127.0.0.1:53",),
                valid=valid,
                timeout=2.0 if timeout is None else timeout,
                stale_for=0.0,  # a failure must show: the source keeps the last view itself
                ipv6=True if ipv6 is None else ipv6,
            )
        elif (nameservers, valid, timeout, ipv6) != (None, None, None, None):
            raise ConfigError("give resolver= or nameservers=/valid=/timeout=/ipv6=, not both")
        super().__init__(sinks, on_error)
        self.resolver = resolver
        self.port = port
        self.service = service
        self.weight = weight
        self.params = " ".join(params.split())
        self.timeout = resolver.core.settings.timeout
        self._clock = clock
        self._dns = _import_dns()
        self._srv_client = self._make_srv_client() if service is not None else None
        self.next_check: float | None = None

    def _make_srv_client(self) -> Any:
        import dns.nameserver

        r = self._dns.resolver.Resolver(configure=False)
        r.nameservers = [
            dns.nameserver.Do53Nameserver(h, p) for h, p in self.resolver.core.nameservers
        ]
        r.lifetime = self.timeout
        r.timeout = self.timeout
        r.cache = None
        return r

    def lookup(self) -> DnsAnswer:
        """Resolve once: the records, or DiscoveryError when DNS fails.

        A name that does not exist (or has no address) gives no records: nginx then removes
        its peers. The TTL is ``valid=`` when the resolver has one.
        """
        answer = self._lookup()
        valid = self.resolver.core.valid
        return answer if valid is None else DnsAnswer(answer.records, valid)

    def _lookup(self) -> DnsAnswer:
        if self.service is None:
            return self._addresses(self.query_name, self.port, 1, 0)
        answer = self._query_srv(self.query_name)
        if answer is None:
            return DnsAnswer((), NO_ANSWER_TTL)
        records: list[Record] = []
        ttl = float(answer.rrset.ttl)
        for rr in sorted(answer.rrset, key=lambda r: (r.priority, str(r.target), r.port)):
            target = str(rr.target).rstrip(".")
            found = self._addresses(target, int(rr.port), max(1, int(rr.weight)), rr.priority)
            records.extend(found.records)
            ttl = min(ttl, found.ttl)
        return DnsAnswer(tuple(records[:MAX_RECORDS]), ttl)

    def _addresses(self, name: str, port: int, weight: int, priority: int) -> DnsAnswer:
        try:
            found = self.resolver.resolve(name)
        except ResolutionError as exc:
            if self.resolver.cached(name) is None:
                return DnsAnswer((), NO_ANSWER_TTL)  # NXDOMAIN or no address: no peers
            raise DiscoveryError(str(exc)) from None
        entry = self.resolver.cached(name)
        ttl = entry.expires - entry.fetched if entry is not None else NO_ANSWER_TTL
        records = [Record(str(ipaddress.ip_address(a)), port, weight, priority) for a in found]
        records.sort(key=lambda r: (ipaddress.ip_address(r.address).version, r.address))
        return DnsAnswer(tuple(records[:MAX_RECORDS]), ttl)

    def _query_srv(self, name: str) -> Any:
        import dns.exception

        assert self._srv_client is not None
        try:
            answer = self._srv_client.resolve(name, "SRV", raise_on_no_answer=False, search=False)
        except self._dns.resolver.NXDOMAIN:
            return None
        except (dns.exception.DNSException, OSError) as exc:
            servers = ", ".join(f"{h}:{p}" for h, p in self.resolver.core.nameservers)
            raise DiscoveryError(
                f"cannot resolve {name!r} (SRV) at {servers}: {exc or type(exc).__name__}"
            ) from None
        return answer if answer.rrset else None

    def view_of(self, answer: DnsAnswer) -> dict[str, str]:
        """The view for an answer: ``ADDRESS:PORT`` -> ``weight=W [backup] PARAMS``."""
        lowest = min((r.priority for r in answer.records), default=0)
        view: dict[str, str] = {}
        for r in answer.records:
            if r.endpoint in view:
                continue
            weight = self.weight if self.weight != 1 or self.service is None else r.weight
            words = [f"weight={weight}" if weight != 1 else ""]
            words.append("backup" if r.priority != lowest else "")
            words.append(self.params)
            view[r.endpoint] = " ".join(w for w in words if w)
        return view

    def _poll(self) -> float:
        """Resolve, publish a changed view, return seconds until the next lookup."""
        try:
            answer = self.lookup()
        except DiscoveryError as exc:
            self._report(exc)
            delay = max(self.timeout, 1.0)
        else:
            self._publish(self.view_of(answer))
            delay = answer.ttl + 1.0
        self.next_check = self._clock() + delay
        return delay


def _import_dns() -> Any:
    try:
        import dns.nameserver
        import dns.resolver
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("DnsSource needs dnspython: pip install 'lbkit[dns]'") from exc
    return dns
